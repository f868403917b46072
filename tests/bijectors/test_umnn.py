"""UMNN transformer: check_bijector (float32, float64) at initialisation and away from it,
the quadrature error of the log-det, gradients through the bisection inverse, errors."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfp_flows.bijectors import UMNN, num_integrand_params  # noqa: E402
from tfp_flows.testing import check_bijector  # noqa: E402

X = np.random.default_rng(0).standard_normal((8, 3)) * 2.0


def perturbed(dtype, scale=0.3, num_nodes=32):
    b = UMNN.trainable(3, seed=1, dtype=dtype, num_nodes=num_nodes)
    rng = np.random.default_rng(2)
    for v in (b.embedding, b.integrand_params):
        v.assign(v + scale * rng.standard_normal(v.shape))
    return b


def test_check_bijector_at_initialisation_and_perturbed_float32_float64():
    check_bijector(lambda dt: UMNN.trainable(3, seed=1, dtype=dt), X)
    # the log-det is the quadrature sum's own slope: autodiff within the default tolerances
    report = check_bijector(perturbed, X, saved_model=False)
    assert report.errors["float64"]["inverse(forward(x))"] < 1e-10


def test_log_det_is_the_quadrature_slope_and_log_g_its_limit():
    """The log-det is log f' of the quadrature sum f (= autodiff to rounding, any number of
    nodes); the paper's log g (the exact integral's slope) differs by the quadrature error,
    which falls with the nodes."""
    x = tf.constant(np.linspace(-3, 3, 101)[:, None] * np.ones((1, 3)))
    errors = []
    for nodes in (8, 32):
        b = perturbed(tf.float64, num_nodes=nodes)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = b.forward(x)
        log_slope = np.log(tape.gradient(y, x).numpy())
        log_det = b.forward_log_det_jacobian(x, event_ndims=0).numpy()
        assert np.abs(log_det - log_slope).max() < 1e-12
        h, _, layers, _ = b._all_parts()
        log_g = b._log_integrand(x[..., None], tf.broadcast_to(h, [101, 3, h.shape[-1]]),
                                 layers)[..., 0]
        errors.append(float(np.abs(log_slope - log_g.numpy()).max()))
    print("max |log f' - log g|, 8 and 32 nodes:", errors)
    assert errors[1] < 1e-3 and errors[1] < errors[0] / 4


def test_inverse_gradients_are_the_implicit_function_gradients():
    b = perturbed(tf.float64)
    y = tf.constant(X, tf.float64)
    with tf.GradientTape() as tape:
        x = b.inverse(y)
        loss = tf.reduce_sum(tf.sin(x))
    grad = tape.gradient(loss, b.embedding).numpy()
    e0 = b.embedding.numpy()
    direction = np.random.default_rng(5).standard_normal(e0.shape)
    values = []
    for sign in (1, -1):
        b.embedding.assign(e0 + sign * 1e-6 * direction)
        values.append(float(tf.reduce_sum(tf.sin(b.inverse(tf.identity(y))))))
    b.embedding.assign(e0)
    np.testing.assert_allclose(np.sum(grad * direction), (values[0] - values[1]) / 2e-6,
                               rtol=1e-5)


def test_identity_at_initialisation_and_argument_errors():
    b = UMNN.trainable(2, seed=0, dtype=tf.float64)
    x = tf.constant(X[:, :2], tf.float64)
    np.testing.assert_allclose(b.forward(x), x, atol=1e-12)
    assert b._is_increasing()
    assert num_integrand_params(4, (8,)) == 5 * 8 + 8 + 8 + 1
    with pytest.raises(ValueError, match="vector of 57 numbers"):
        UMNN(tf.zeros([2, 5]), tf.zeros([3]), hidden_units=(8,))
    with pytest.raises(ValueError, match="num_nodes must be >= 1"):
        UMNN(tf.zeros([2, 5]), tf.zeros([57]), hidden_units=(8,), num_nodes=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="embedding must be finite"):
        UMNN(tf.fill([2, 5], np.nan), tf.zeros([57]), hidden_units=(8,), validate_args=True)
