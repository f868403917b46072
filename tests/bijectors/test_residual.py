"""Residual flow: check_bijector, fixed-point inverse, unbiased log-det estimator, FlowModel."""

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from flow_checks import check_in_chain_with_tfp_flows  # noqa: E402

from tfp_flows import datasets, nets  # noqa: E402
from tfp_flows.bijectors import (  # noqa: E402
    Residual,
    ResidualInverseError,
    ResidualInverseWarning,
)
from tfp_flows.testing import check_bijector  # noqa: E402

tfd, tfb = tfp.distributions, tfp.bijectors
X = np.random.default_rng(0).standard_normal((16, 2)) * 2.0


def _perturbed(event_size, dtype, scale=0.5, seed=0, **kwargs):
    b = Residual.trainable(event_size, seed=seed, dtype=dtype, hidden_units=(16,), **kwargs)
    rng = np.random.default_rng(seed)
    for v in b.trainable_variables:
        v.assign(v + scale * rng.standard_normal(v.shape))
    return b


@pytest.mark.parametrize("scale", [0.5, 50.0])  # moderate and huge raw weights
def test_check_bijector_float32_float64(scale):
    dtypes = [tf.float32, tf.float64] if scale < 1 else [tf.float64]
    report = check_bijector(lambda dt: _perturbed(2, dt, scale), X, saved_model=scale < 1,
                            dtypes=dtypes)
    assert report.errors["float64"]["inverse(forward(x))"] < 1e-9


def test_far_points():
    b = _perturbed(2, tf.float64, 2.0)
    check_bijector(b, np.concatenate([X * 1e3, X * 1e-5]), saved_model=False)


def test_lipschitz_bound_holds_for_any_weights():
    g = nets.LipschitzMLP(3, hidden_units=(8, 8), lipschitz_constant=0.7, dtype="float64")
    g.build((None, 3))
    rng = np.random.default_rng(1)
    for w in g.trainable_weights:
        w.assign(100.0 * rng.standard_normal(w.shape))
    assert float(g.lipschitz_bound()) <= 0.7 + 1e-9
    x1, x2 = rng.standard_normal((500, 3)), rng.standard_normal((500, 3))
    ratio = (np.linalg.norm(g(x1) - g(x2), axis=1) / np.linalg.norm(x1 - x2, axis=1)).max()
    assert ratio <= 0.7 + 1e-9


def test_fixed_point_inverse_converges_geometrically():
    b = _perturbed(2, tf.float64, 2.0, lipschitz_constant=0.9)
    y = tf.constant(X)
    x, iterations, step, converged = b.inverse_diagnostics(y)
    assert bool(converged) and 5 < int(iterations) < 1000
    assert float(step) < 1e-10
    np.testing.assert_allclose(b.forward(x), y, atol=1e-10)


def test_inverse_has_implicit_function_gradients():
    b = _perturbed(3, tf.float64, 1.0)
    y = tf.constant(np.random.default_rng(2).standard_normal((5, 3)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(y)
        x = b.inverse(tf.identity(y))
        loss = tf.reduce_sum(x ** 2)
    _, jac = b.g.call_and_jacobian(x)
    expected = tf.linalg.inv(tf.eye(3, dtype=tf.float64) + jac)
    np.testing.assert_allclose(tape.batch_jacobian(x, y), expected, atol=1e-12)
    grad = float(tape.gradient(loss, b.g.trainable_weights)[0][0, 0])
    w = b.g.trainable_weights[0]
    w0, eps = w.numpy(), 1e-6
    bump = np.zeros_like(w0)
    bump[0, 0] = eps
    losses = []
    for sign in (1.0, -1.0):
        w.assign(w0 + sign * bump)
        losses.append(float(tf.reduce_sum(b.inverse(tf.identity(y)) ** 2)))
    w.assign(w0)
    np.testing.assert_allclose(grad, (losses[0] - losses[1]) / (2 * eps), rtol=1e-6)


def test_nonconvergence_warns_or_raises():
    b = _perturbed(2, tf.float64, 2.0, max_inverse_iterations=3)
    with pytest.warns(ResidualInverseWarning, match="did not reach tolerance"):
        b.inverse(tf.constant(X))
    b = _perturbed(2, tf.float64, 2.0, max_inverse_iterations=3, on_nonconvergence="raise")
    with pytest.raises(ResidualInverseError, match="in 3 iterations"):
        b.inverse(tf.constant(X))
    b = _perturbed(2, tf.float64, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converging: no warning
        b.inverse(tf.constant(X))


def test_log_det_estimator_is_unbiased():
    b = _perturbed(4, tf.float64, 1.0, seed=3, log_det="estimator", lipschitz_constant=0.95)
    x = tf.constant(np.repeat(np.random.default_rng(4).standard_normal((1, 4)), 400, axis=0))
    exact = float(b.exact_log_det(x[:1])[0])
    assert abs(exact) > 0.1  # a non-trivial Jacobian
    # Each call draws one truncation N (shared by the batch) and 400 Hutchinson vectors:
    # the call means are i.i.d. unbiased estimates.
    means = np.array([float(tf.reduce_mean(b.log_det_estimate(x))) for _ in range(30)])
    se = means.std(ddof=1) / np.sqrt(len(means))
    assert abs(means.mean() - exact) < 4 * se
    assert se < 0.05 * abs(exact) + 0.01
    # Gradients flow through the estimator to g's weights.
    with tf.GradientTape() as tape:
        est = tf.reduce_mean(b.forward_log_det_jacobian(x[:8], event_ndims=1))
    grads = tape.gradient(est, b.g.trainable_weights)
    assert all(np.all(np.isfinite(g)) for g in grads if g is not None)
    assert sum(float(tf.norm(g)) for g in grads if g is not None) > 0


def test_auto_mode_and_arguments():
    assert Residual.trainable(2).log_det_mode == "exact"
    assert Residual.trainable(32, hidden_units=(8,)).log_det_mode == "estimator"
    with pytest.raises(ValueError, match="lipschitz_constant must lie in"):
        nets.LipschitzMLP(2, lipschitz_constant=1.0)
    with pytest.raises(ValueError, match="log_det must be"):
        Residual.trainable(2, log_det="hutch")



@pytest.mark.slow
def test_in_flow_model_integrates_trains_samples_exports(tmp_path):
    # i-ResNet orientation: the density direction is the explicit map x + g(x).
    check_in_chain_with_tfp_flows(tfb.Invert(Residual.trainable(2, seed=0, hidden_units=(8,))),
                                  tmp_path / "1")


def test_log_prob_gradient_and_sampling_compile_under_xla():
    x = tf.constant(datasets.two_moons(64, seed=0))
    for log_det in ("exact", "estimator"):
        residual = Residual.trainable(2, seed=0, hidden_units=(8,), log_det=log_det)
        for w in residual.g.trainable_weights:
            w.assign(w + 0.3 * np.random.default_rng(0).standard_normal(w.shape))
        dist = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)),
                                           tfb.Invert(residual))

        def nll_and_grads(x, dist=dist, residual=residual):
            with tf.GradientTape() as tape:
                nll = -tf.reduce_mean(dist.log_prob(x))
            return nll, tape.gradient(nll, residual.g.trainable_weights)

        nll, grads = tf.function(nll_and_grads, jit_compile=True)(x)
        assert np.isfinite(float(nll)) and all(np.all(np.isfinite(g)) for g in grads)
        if log_det == "exact":  # deterministic: XLA agrees with eager
            nll_eager, grads_eager = nll_and_grads(x)
            np.testing.assert_allclose(nll, nll_eager, rtol=1e-5)
            np.testing.assert_allclose(grads[0], grads_eager[0], rtol=1e-3, atol=1e-5)
    sample = tf.function(lambda: dist.sample(16, seed=[0, 1]), jit_compile=True)
    assert np.all(np.isfinite(sample()))
