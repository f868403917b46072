import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from flow_checks import fit_two_moons, measure, perturb, two_moons_model  # noqa: E402

from tfp_flows.bijectors import Planar  # noqa: E402
from tfp_flows.bijectors.planar import planar_u_hat  # noqa: E402
from tfp_flows.testing import check_bijector  # noqa: E402

tfb = tfp.bijectors


def test_trainable_starts_at_identity():
    bij = Planar.trainable(3, seed=0, dtype=tf.float64)
    x = tf.constant(np.random.default_rng(0).standard_normal((10, 3)))
    np.testing.assert_allclose(bij.forward(x), x, atol=1e-15)
    np.testing.assert_allclose(bij.forward_log_det_jacobian(x, event_ndims=1), 0.0, atol=1e-15)
    assert len(bij.trainable_variables) == 3


@pytest.mark.parametrize("dim", [2, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_det_and_inverse_random_parameters(dim, seed):
    bij = perturb(Planar.trainable(dim, seed=seed, dtype=tf.float64), 1.0, seed)
    x = np.random.default_rng(seed).standard_normal((64, dim)) * 2
    ldj_err, inv_err, ildj_err = measure(bij, x, 1)
    assert ldj_err < 1e-10 and inv_err < 1e-10 and ildj_err < 1e-10


@pytest.mark.parametrize("w_dot_u", [-200.0, -3.0, 0.0, 50.0])
def test_extreme_parameters_stay_invertible(w_dot_u):
    # u chosen with w·u far below -1: the û reparametrisation must keep w·û > -1.
    w = np.array([8.0, -3.0, 0.5])
    u = w_dot_u * w / np.sum(w * w) + np.array([0.0, 1.0, 6.0])
    u -= (np.sum(w * u) - w_dot_u) * w / np.sum(w * w)
    bij = Planar(w=w, u=u, b=np.float64(4.0), validate_args=True)
    assert float(tf.reduce_sum(bij.w * bij.u_hat())) > -1.0 - 1e-12
    x = np.random.default_rng(0).standard_normal((200, 3)) * 3
    ldj_err, inv_err, _ = measure(bij, x, 1)
    assert ldj_err < 1e-6 and inv_err < 1e-9


def test_float32():
    bij = Planar(w=np.float32([2.0, -1.0]), u=np.float32([-5.0, 1.0]), b=np.float32(0.3))
    x = tf.constant(np.random.default_rng(3).standard_normal((64, 2)), tf.float32)
    y = bij.forward(x)
    assert y.dtype == tf.float32
    ldj_err, inv_err, _ = measure(bij, x, 1)
    assert ldj_err < 1e-4 and inv_err < 1e-5


def test_u_hat_reparametrisation():
    rng = np.random.default_rng(0)
    w, u = rng.standard_normal((1000, 4)) * 3, rng.standard_normal((1000, 4)) * 30
    dots = tf.reduce_sum(w * planar_u_hat(u, w), -1).numpy()
    assert dots.min() > -1.0 - 1e-12  # = -1 + softplus(w·u), rounded
    np.testing.assert_allclose(dots, np.logaddexp(0, np.sum(w * u, -1)) - 1, atol=1e-10)
    # w = 0 leaves u unchanged (f is then a shift, still a bijection)
    np.testing.assert_allclose(planar_u_hat(u[:1], np.zeros((1, 4))), u[:1])


def test_batch_of_parameters_and_slicing():
    rng = np.random.default_rng(1)
    bij = Planar(w=rng.standard_normal((3, 2)), u=rng.standard_normal((3, 2)),
                 b=rng.standard_normal(3))
    assert bij.experimental_batch_shape() == [3]
    x = rng.standard_normal((5, 3, 2))
    y = bij.forward(x)
    assert y.shape == (5, 3, 2)
    np.testing.assert_allclose(bij[1].forward(x[:, 1]), y[:, 1], atol=1e-12)
    np.testing.assert_allclose(bij.inverse(tf.identity(y)), x, atol=1e-10)


def test_validate_args_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="same event size"):
        Planar(w=[1.0, 2.0], u=[1.0, 2.0, 3.0], b=0.0, validate_args=True)


def test_inverse_under_xla_matches_eager():
    bij = perturb(Planar.trainable(2, seed=0), 1.0)
    y = tf.constant(np.random.default_rng(0).standard_normal((32, 2)), tf.float32)
    xla = tf.function(lambda t: bij.inverse(t), jit_compile=True)(y)
    np.testing.assert_allclose(xla, bij.inverse(tf.identity(y)), atol=1e-5)


def test_gradient_through_inverse_matches_finite_differences():
    # log_prob of a density flow differentiates through the root finder (implicit gradient).
    bij = perturb(Planar.trainable(2, seed=0, dtype=tf.float64), 0.8)
    y = tf.constant(np.random.default_rng(1).standard_normal((16, 2)))
    with tf.GradientTape() as tape:
        val = tf.reduce_sum(bij.inverse(tf.identity(y)) ** 2)
    grads = tape.gradient(val, bij.trainable_variables)
    v, g = bij.trainable_variables[1], grads[1].numpy()
    eps, i = 1e-6, 0
    base = v.numpy().copy()
    v.assign(base + eps * np.eye(2)[i])
    plus = float(tf.reduce_sum(bij.inverse(tf.identity(y)) ** 2))
    v.assign(base - eps * np.eye(2)[i])
    minus = float(tf.reduce_sum(bij.inverse(tf.identity(y)) ** 2))
    v.assign(base)
    assert abs((plus - minus) / (2 * eps) - g[i]) < 1e-5 * max(1.0, abs(g[i]))


def test_check_bijector():
    rng = np.random.default_rng(2)
    w, u, b = rng.standard_normal(3) * 2, rng.standard_normal(3) * 2 - 2, 0.7

    def make(dtype):
        np_dtype = dtype.as_numpy_dtype
        return Planar(w=w.astype(np_dtype), u=u.astype(np_dtype), b=np_dtype(b))

    check_bijector(make, rng.standard_normal((32, 3)), saved_model=False)


@pytest.mark.slow
def test_planar_flow_trains_and_stays_normalised():
    bij = tfb.Chain([Planar.trainable(2, seed=i) for i in range(6)])
    out = fit_two_moons(two_moons_model(bij), epochs=8)
    assert abs(out["grid_before"] - 1) < 0.01 and abs(out["grid_after"] - 1) < 0.01
    assert out["nll_after"] < out["nll_before"] - 0.2
    assert out["history"]["loss"][-1] < out["history"]["loss"][0]
