import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from tfp_flows import testing  # noqa: E402
from tfp_flows.bijectors import DeepSigmoidal  # noqa: E402

tfb = tfp.bijectors


def random_dsf(shape, dtype=tf.float64, scale=2.0, seed=0):
    rng = np.random.default_rng(seed)
    return DeepSigmoidal(tf.constant(scale * rng.standard_normal(shape), dtype))


def test_log_det_matches_autodiff_derivative():
    dsf = random_dsf([5, 24])                                   # D = 5 dims, K = 8 units
    x = tf.constant(np.random.default_rng(1).standard_normal((400, 5)) * 6, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = dsf.forward(x)
    dydx = tape.gradient(y, x)                                  # elementwise: the diagonal
    fldj = dsf.forward_log_det_jacobian(x, event_ndims=0)
    assert float(tf.reduce_max(tf.abs(fldj - tf.math.log(dydx)))) < 1e-10
    summed = dsf.forward_log_det_jacobian(x, event_ndims=1)
    assert summed.shape == [400]
    np.testing.assert_allclose(summed, tf.reduce_sum(fldj, -1), rtol=1e-12)


def test_event_log_det_matches_slogdet_of_batch_jacobian():
    dsf = DeepSigmoidal.trainable(3, seed=0, dtype=tf.float64, hidden_size=4)
    rng = np.random.default_rng(2)
    for v in dsf.trainable_variables:  # move away from the start, like flowcheck
        v.assign(v + 0.3 * rng.standard_normal(v.shape.as_list()))
    x = tf.constant(rng.standard_normal((32, 3)) * 1.5, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = dsf.forward(x)
    _, logdet = tf.linalg.slogdet(tape.batch_jacobian(y, x))
    err = tf.reduce_max(tf.abs(dsf.forward_log_det_jacobian(x, event_ndims=1) - logdet))
    assert float(err) < 1e-10


@pytest.mark.parametrize("dtype,tol", [(tf.float64, 1e-10), (tf.float32, 1e-4)])
def test_inverse_root_finder_recovers_x(dtype, tol):
    dsf = random_dsf([5, 24], dtype=dtype)
    x = tf.constant(np.random.default_rng(3).standard_normal((400, 5)) * 5, dtype)
    y = tf.identity(dsf.forward(x))         # a fresh tensor: defeats the bijector cache
    x_back = DeepSigmoidal(dsf.unnormalized_params).inverse(y)
    err = tf.abs(x_back - x) / (1 + tf.abs(x))
    assert float(tf.reduce_max(err)) < tol
    # ... and the inverse log-det is minus the forward one at the recovered point.
    ildj = DeepSigmoidal(dsf.unnormalized_params).inverse_log_det_jacobian(y, event_ndims=0)
    np.testing.assert_allclose(ildj, -dsf.forward_log_det_jacobian(x, event_ndims=0),
                               atol=100 * tol)


def test_inverse_of_extreme_values_in_float64():
    dsf = random_dsf([3, 24])
    y = tf.constant(np.linspace(-60, 60, 241)[:, None] * np.ones(3), tf.float64)
    x = dsf.inverse(y)
    assert bool(tf.reduce_all(tf.math.is_finite(x)))
    y_back = DeepSigmoidal(dsf.unnormalized_params).forward(tf.identity(x))
    assert float(tf.reduce_max(tf.abs(y_back - y))) < 1e-9


def test_strictly_increasing_and_stable_in_the_tails():
    dsf = random_dsf([1, 48], dtype=tf.float32, scale=3.0)
    x = tf.constant(np.linspace(-200, 200, 40001)[:, None], tf.float32)
    y = dsf.forward(x)[:, 0].numpy()
    assert np.all(np.isfinite(y))
    assert np.all(np.diff(y) > 0)
    assert dsf._is_increasing()
    ldj = dsf.forward_log_det_jacobian(x, event_ndims=0).numpy()
    assert np.all(np.isfinite(ldj))
    # log-space evaluation: no overflow, and y is affine with slope min/max a_k far out.
    huge = tf.constant([[-1e4], [1e4]], tf.float32)
    assert bool(tf.reduce_all(tf.math.is_finite(dsf.forward(huge))))
    assert bool(tf.reduce_all(tf.math.is_finite(
        dsf.forward_log_det_jacobian(huge, event_ndims=0))))


def test_implicit_gradients_of_the_inverse():
    params = tf.Variable(np.random.default_rng(4).standard_normal((2, 12)), dtype=tf.float64)
    y = tf.constant([[0.3, -1.2], [2.0, 0.5]], tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(y)
        x = DeepSigmoidal(params).inverse(y)
        total = tf.reduce_sum(x)
    dxdy = tape.gradient(total, y)
    ildj = DeepSigmoidal(params).inverse_log_det_jacobian(tf.identity(y), event_ndims=0)
    np.testing.assert_allclose(dxdy, tf.exp(ildj), rtol=1e-8)
    grad = tape.gradient(total, params).numpy()
    eps = 1e-6
    i, j = 1, 5
    bumped = params.numpy()
    bumped[i, j] += eps
    up = tf.reduce_sum(DeepSigmoidal(tf.constant(bumped)).inverse(y))
    bumped[i, j] -= 2 * eps
    down = tf.reduce_sum(DeepSigmoidal(tf.constant(bumped)).inverse(y))
    assert abs(grad[i, j] - float(up - down) / (2 * eps)) < 1e-6
    assert abs(grad[i, j]) > 1e-4  # the parameter matters


def test_trainable_starts_near_identity_with_distinct_units():
    dsf = DeepSigmoidal.trainable(4, seed=0, hidden_size=6)
    assert dsf.hidden_size == 6
    assert len(dsf.trainable_variables) == 1
    assert dsf.trainable_variables[0].shape == [4, 18]
    x = tf.constant(np.linspace(-5, 5, 101)[:, None] * np.ones(4), tf.float32)
    assert float(tf.reduce_max(tf.abs(dsf.forward(x) - x))) < 0.25
    # Zero parameters: the fixed offsets make units differ, so their gradients differ.
    params = tf.Variable(tf.zeros([1, 18]))
    with tf.GradientTape() as tape:
        y = DeepSigmoidal(params).forward(tf.constant([[0.7]]))
    grad_b = tape.gradient(y, params).numpy()[0, 6:12]
    assert np.ptp(grad_b) > 1e-3


def test_validation_of_parameters():
    with pytest.raises(ValueError, match="3 \\* K"):
        DeepSigmoidal(tf.zeros([2, 7]))
    bad = tf.constant([[0.0, np.nan, 0.0]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="finite"):
        DeepSigmoidal(bad, validate_args=True).forward(tf.constant([1.0]))
    assert np.isnan(DeepSigmoidal(bad).forward(tf.constant([1.0])).numpy()).all()


def test_inside_a_masked_autoregressive_flow():
    from tfp_flows import nets

    made = nets.MADE(3, params=3 * 4, hidden_units=(16,), zero_init_output=False,
                     dtype="float64")
    maf = tfb.MaskedAutoregressiveFlow(
        bijector_fn=lambda y: tfb.Invert(DeepSigmoidal(made(y))))
    x = tf.constant(np.random.default_rng(5).standard_normal((8, 3)), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = maf.inverse(x)                     # data -> noise: closed-form DSF
    jac = tape.batch_jacobian(z, x).numpy()
    assert np.abs(np.triu(jac, 1)).max() == 0.0
    assert np.abs(np.tril(jac, -1)).max() > 1e-3
    _, logdet = np.linalg.slogdet(jac)
    np.testing.assert_allclose(maf.inverse_log_det_jacobian(x, event_ndims=1), logdet,
                               atol=1e-10)
    x_back = maf.forward(tf.identity(z))       # noise -> data: D root-finding passes
    assert float(tf.reduce_max(tf.abs(x_back - x))) < 1e-9


@pytest.mark.skipif(not hasattr(testing, "check_bijector"),
                    reason="tfp_flows.testing.check_bijector not available yet")
def test_project_check_bijector():
    params = 1.5 * np.random.default_rng(6).standard_normal((2, 24))
    x = np.random.default_rng(7).standard_normal((64, 2)) * 2
    report = testing.check_bijector(lambda dtype: DeepSigmoidal(tf.constant(params, dtype)), x,
                                    rtol={"float32": 1e-4, "float64": 1e-9},
                                    atol={"float32": 1e-4, "float64": 1e-9}, saved_model=False)
    print(report)
    # The trainable form too (a tf.Variable parameter), float64, with the SavedModel check.
    dsf = DeepSigmoidal.trainable(2, seed=0, dtype=tf.float64, init_scale=1.0)
    testing.check_bijector(dsf, x, rtol=1e-9, atol=1e-9)
