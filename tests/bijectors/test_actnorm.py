import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from flow_checks import fit_two_moons, measure, perturb, two_moons_model  # noqa: E402

from tfp_flows.bijectors import (  # noqa: E402
    ActNorm,
    FactorOut,
    ImageAffineCoupling,
    InvertibleDense,
    initialize_actnorms,
)
from tfp_flows.testing import check_bijector  # noqa: E402

tfb = tfp.bijectors


def test_identity_at_init_and_vector_log_det():
    bij = ActNorm.trainable(3, dtype=tf.float64)
    x = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_allclose(bij.forward(x), x)
    perturb(bij, 1.0)
    ldj_err, inv_err, ildj_err = measure(bij, x, 1)
    assert ldj_err < 1e-12 and inv_err < 1e-12 and ildj_err < 1e-12


def test_image_log_det_is_hw_times_sum_of_log_scales():
    bij = perturb(ActNorm.trainable(3, dtype=tf.float64), 1.0, seed=1)
    x = np.random.default_rng(1).standard_normal((4, 5, 6, 3))
    fldj = bij.forward_log_det_jacobian(x, event_ndims=3)
    np.testing.assert_allclose(fldj, np.full(4, 30 * bij.log_scale.numpy().sum()), rtol=1e-12)
    ldj_err, inv_err, _ = measure(bij, x, 3)
    assert ldj_err < 1e-10 and inv_err < 1e-12


def test_data_dependent_initialisation_and_rerun():
    rng = np.random.default_rng(2)
    data = rng.standard_normal((500, 4, 4, 2)) * [3.0, 0.2] + [5.0, -1.0]
    bij = ActNorm.trainable(2, dtype=tf.float64)
    assert not bool(bij.initialized)
    z = bij.initialize(data)
    assert bool(bij.initialized)
    np.testing.assert_allclose(np.mean(z, axis=(0, 1, 2)), 0.0, atol=1e-10)
    np.testing.assert_allclose(np.std(z, axis=(0, 1, 2)), 1.0, atol=1e-4)  # eps 1e-6 in var
    # re-running on other data re-initialises
    bij.initialize(data[:100] * 2.0)
    np.testing.assert_allclose(np.std(bij.inverse(tf.constant(data[:100] * 2.0)), (0, 1, 2)),
                               1.0, atol=1e-5)


def test_initialize_actnorms_walks_chain_and_factor_out():
    rng = np.random.default_rng(3)
    inner, outer = ActNorm.trainable(2, dtype=tf.float64), ActNorm.trainable(4, dtype=tf.float64)
    mix = perturb(InvertibleDense.trainable(4, init="rotation", seed=0, dtype=tf.float64), 0.5)
    # data side first: Chain([outer, mix, FactorOut(inner)]) applies outer last in forward
    flow = tfb.Chain([outer, mix, FactorOut(inner, event_ndims=1)])
    data = rng.standard_normal((1000, 4)) @ rng.standard_normal((4, 4)) + 3.0
    assert initialize_actnorms(flow, data) == 2
    h = outer.inverse(tf.constant(data))
    np.testing.assert_allclose(np.std(h, 0), 1.0, atol=1e-5)
    h2 = mix.inverse(h)[:, :2]
    z = inner.inverse(h2)
    np.testing.assert_allclose(np.mean(z, 0), 0.0, atol=1e-8)
    np.testing.assert_allclose(np.std(z, 0), 1.0, atol=1e-5)


def test_initialize_needs_variables():
    with pytest.raises(TypeError, match="tf.Variables"):
        ActNorm(np.zeros(2), np.zeros(2)).initialize(np.ones((3, 2)))
    with pytest.raises(ValueError, match="same shape"):
        ActNorm(np.zeros(2), np.zeros(3))


def test_check_bijector():
    check_bijector(lambda dt: ActNorm(np.array([0.3, -1.2], dt.as_numpy_dtype),
                                      np.array([2.0, -1.0], dt.as_numpy_dtype)),
                   np.random.default_rng(4).standard_normal((16, 2)), saved_model=False)


@pytest.mark.slow
def test_glow_steps_on_two_moons_train_with_data_dependent_init():
    # Glow's step of flow on vectors: actnorm, invertible dense (LU), affine coupling.
    layers = []
    for i in range(2):
        layers += [ActNorm.trainable(2), InvertibleDense.trainable(2, seed=i, init="rotation"),
                   ImageAffineCoupling.trainable(2, seed=i, parity=i % 2, hidden_channels=32)]
    model = two_moons_model(tfb.Chain(layers))
    out = fit_two_moons(model, epochs=10,
                        before=lambda m, x: initialize_actnorms(m, x[:500]))
    assert abs(out["grid_before"] - 1) < 0.01 and abs(out["grid_after"] - 1) < 0.01
    assert out["nll_after"] < out["nll_before"] - 0.3
    assert out["nll_after"] < out["nll_after_init"]
