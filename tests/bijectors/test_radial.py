"""Radial flow: check_bijector at ordinary and extreme parameters, closed forms, FlowModel."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from flow_checks import check_in_chain_with_tfp_flows  # noqa: E402

from tfp_flows.bijectors import Radial  # noqa: E402
from tfp_flows.testing import check_bijector  # noqa: E402

tfd, tfb = tfp.distributions, tfp.bijectors
RNG = np.random.default_rng(0)
X = RNG.standard_normal((16, 2)) * 2.0


def _radial(center, alpha, beta):
    return lambda dt: Radial(tf.constant(center, dt), tf.constant(alpha, dt),
                             tf.constant(beta, dt))


@pytest.mark.parametrize("center, alpha, beta", [
    ([0.5, -1.0], 0.7, -0.6),      # contraction, beta close to -alpha
    ([0.0, 0.0], 1e-3, 50.0),      # tiny alpha, large expansion
    ([2.0, 1.0], 100.0, -99.9),    # large alpha
    ([0.1, 0.1], 1.0, -1.0 + 1e-6),  # beta at the edge of invertibility
])
def test_check_bijector_float32_float64(center, alpha, beta):
    report = check_bijector(_radial(center, alpha, beta), X, rtol=1e-3, atol=1e-3,
                            saved_model=False)
    # In float64 the closed forms are exact to round-off whatever the parameters.
    check_bijector(_radial(center, alpha, beta)(tf.float64), X)
    assert report.errors["float64"]["inverse(forward(x))"] < 1e-9


def test_points_far_from_and_at_the_centre():
    far = np.concatenate([X * 1e4, X * 1e-6, np.zeros((2, 2))])  # includes z = z0 exactly
    report = check_bijector(_radial([0.0, 0.0], 0.5, 2.0), far, saved_model=False)
    assert report.errors["float64"]["forward(inverse(y))"] < 1e-8 * 1e4 * 10


def test_log_det_matches_seed_eq_18():
    z0, alpha, beta = np.array([0.3, -0.2, 1.0]), 0.8, 1.5
    b = Radial(z0, alpha, beta)
    z = RNG.standard_normal((5, 3))
    r = np.linalg.norm(z - z0, axis=-1)
    h, hp = 1 / (alpha + r), -1 / (alpha + r) ** 2
    expected = np.log((1 + beta * h + beta * hp * r) * (1 + beta * h) ** 2)
    np.testing.assert_allclose(b.forward_log_det_jacobian(z, event_ndims=1), expected,
                               rtol=1e-12)


def test_trainable_starts_at_identity_and_stays_invertible():
    b = Radial.trainable(2, seed=0, dtype=tf.float64)
    np.testing.assert_allclose(b.forward(X), X, atol=1e-12)
    assert len(b.trainable_variables) == 3
    for value in (-20.0, 20.0):  # any free parameters: beta > -alpha
        for v in b.trainable_variables:
            v.assign(tf.fill(v.shape, tf.constant(value, tf.float64)))
        beta, alpha = tf.convert_to_tensor(b.beta), tf.convert_to_tensor(b.alpha)
        assert float(beta + alpha) > 0
    variables = {v.name.split(":")[0]: v for v in b.trainable_variables}
    assert set(variables) == {"alpha", "beta_free", "center"}
    variables["alpha"].assign(tf.constant(1.0, tf.float64))
    variables["beta_free"].assign(tf.constant(-3.0, tf.float64))  # beta = -alpha + 0.049
    variables["center"].assign(tf.constant([0.5, -0.5], tf.float64))
    check_bijector(b, X)


def test_batch_shapes_and_validation():
    b = Radial(tf.zeros([4, 1, 2]), tf.ones([3]), tf.zeros([4, 3]))
    assert b.experimental_batch_shape() == [4, 3]
    assert b[:2].experimental_batch_shape() == [2, 3]
    y = b.forward(tf.ones([5, 1, 1, 2]))
    assert y.shape == [5, 4, 3, 2]
    assert b.forward_log_det_jacobian(tf.ones([5, 1, 1, 2]), 1).shape == [5, 4, 3]
    with pytest.raises(tf.errors.InvalidArgumentError, match="alpha` must be positive"):
        Radial([0.0, 0.0], -1.0, 0.0, validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="beta >= -alpha"):
        Radial([0.0, 0.0], 1.0, -2.0, validate_args=True)



@pytest.mark.slow
def test_in_flow_model_integrates_trains_samples_exports(tmp_path):
    model = check_in_chain_with_tfp_flows(Radial.trainable(2, seed=0), tmp_path / "1")
    assert abs(float(tf.convert_to_tensor(model.distribution.bijector.bijectors[1].beta))) > 0
