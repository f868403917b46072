"""BNAF bijector: check_bijector (float32, float64) at initialisation and away from it,
triangular structure, gradients through the numerical inverse, argument errors."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfp_flows.bijectors import BNAF, num_bnaf_params  # noqa: E402
from tfp_flows.testing import check_bijector  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((6, 2)) * 2.0


def perturbed(dtype, scale=0.5):
    b = BNAF.trainable(2, seed=1, dtype=dtype, hidden_factor=3)
    noise = scale * np.random.default_rng(2).standard_normal(b.params.shape)
    b.params.assign(b.params + noise)
    return b


def test_check_bijector_at_initialisation_and_perturbed_float32_float64():
    report = check_bijector(lambda dt: BNAF.trainable(2, seed=1, dtype=dt, hidden_factor=3), X)
    assert report.errors["float64"]["forward_log_det_jacobian"] < 1e-12
    report = check_bijector(perturbed, X * 3.0, saved_model=False)
    assert report.errors["float64"]["inverse(forward(x))"] < 1e-10


def test_jacobian_is_lower_triangular_with_positive_diagonal():
    b = perturbed(tf.float64)
    x = tf.constant(X, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = b.forward(x)
    jac = tape.batch_jacobian(y, x).numpy()
    assert np.abs(np.triu(jac, 1)).max() == 0.0
    assert np.abs(np.tril(jac, -1)).max() > 1e-3
    assert np.all(np.diagonal(jac, axis1=1, axis2=2) > 0)


def test_inverse_gradients_are_the_implicit_function_gradients():
    b = perturbed(tf.float64)
    y = tf.constant(X, tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(y)
        x = b.inverse(y)
        loss = tf.reduce_sum(tf.sin(x))
    grad_params = tape.gradient(loss, b.params)
    jac_inv = tape.batch_jacobian(x, y)
    # dx/dy is the inverse of the forward Jacobian.
    x_fresh = tf.identity(x)
    with tf.GradientTape() as t2:
        t2.watch(x_fresh)
        y2 = b.forward(x_fresh)
    jac = t2.batch_jacobian(y2, x_fresh)
    np.testing.assert_allclose(tf.matmul(jac_inv, jac), np.broadcast_to(np.eye(2), jac.shape),
                               atol=1e-9)
    # d loss / d params against central differences.
    p0 = b.params.numpy()
    direction = np.random.default_rng(5).standard_normal(p0.shape)
    eps = 1e-6
    values = []
    for sign in (1, -1):
        b.params.assign(p0 + sign * eps * direction)
        values.append(float(tf.reduce_sum(tf.sin(b.inverse(tf.identity(y))))))
    b.params.assign(p0)
    numeric = (values[0] - values[1]) / (2 * eps)
    np.testing.assert_allclose(float(np.dot(grad_params.numpy(), direction)), numeric,
                               rtol=1e-5)


def test_argument_errors_and_validation():
    # layer 1: [2*3, 2*1] weights + 2 * 6 gains and biases; layer 2: [2, 6] + 2 * 2; gates 2
    assert num_bnaf_params(2, 3, 1) == (12 + 12) + (12 + 4) + 2
    with pytest.raises(ValueError, match="vector of 42 numbers"):
        BNAF(tf.zeros([7]), event_size=2, hidden_factor=3, num_hidden_layers=1)
    with pytest.raises(ValueError, match=">= 1"):
        BNAF(tf.zeros([7]), event_size=2, hidden_factor=3, num_hidden_layers=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be finite"):
        BNAF(tf.fill([42], np.nan), event_size=2, hidden_factor=3, num_hidden_layers=1,
             validate_args=True)
