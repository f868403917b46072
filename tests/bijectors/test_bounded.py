import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import FlowDataError
from tfp_flows.bijectors import Bounded
from tfp_flows.testing import check_bijector, grid_integral

tfb, tfd = tfp.bijectors, tfp.distributions

# One coordinate of each kind: low only, high only, both, neither.
LOW = np.array([0.0, -np.inf, -1.0, -np.inf])
HIGH = np.array([np.inf, 2.0, 3.0, np.inf])


def test_passes_check_bijector_for_every_kind_of_bound():
    rng = np.random.default_rng(0)
    x = 3 * rng.standard_normal((16, 4))
    y = np.stack([rng.uniform(0.1, 5, 16), rng.uniform(-5, 1.9, 16),
                  rng.uniform(-0.9, 2.9, 16), rng.standard_normal(16)], 1)
    check_bijector(lambda dtype: Bounded(LOW.astype(dtype.as_numpy_dtype),
                                         HIGH.astype(dtype.as_numpy_dtype)), x, y=y)


def test_each_kind_maps_as_documented():
    bij = Bounded(LOW, HIGH)
    x = np.array([[0.5, -0.3, 1.2, 4.0]])
    sigmoid = 1 / (1 + np.exp(-1.2))
    want = [np.exp(0.5), 2.0 - np.exp(0.3), -1.0 + 4.0 * sigmoid, 4.0]
    np.testing.assert_allclose(bij.forward(x)[0], want, rtol=1e-14)
    want_ldj = 0.5 + 0.3 + np.log(4.0 * sigmoid * (1 - sigmoid))
    np.testing.assert_allclose(bij.forward_log_det_jacobian(x, event_ndims=1), [want_ldj],
                               rtol=1e-12)


def test_log_prob_is_minus_inf_outside_the_box_and_finite_inside():
    dist = tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(tf.zeros(4, tf.float64)),
        tfb.Chain([Bounded(LOW, HIGH), tfb.Shift(np.full(4, 0.1))]))
    y = np.array([[1.0, 0.0, 0.0, 0.0],    # inside
                  [-1.0, 0.0, 0.0, 0.0],   # below low
                  [1.0, 2.5, 0.0, 0.0],    # above high
                  [1.0, 0.0, 3.0, 0.0],    # on the (excluded) bound
                  [1.0, 0.0, -4.0, 9.0]])  # below low
    lp = dist.log_prob(y).numpy()
    assert np.isfinite(lp[0])
    np.testing.assert_array_equal(lp[1:], -np.inf)


def test_box_density_integrates_to_one_and_samples_stay_inside():
    # A Gaussian far from centred in the unconstrained space puts mass near the box edges.
    dist = tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag([0.5, -1.0], [1.5, 0.7]),
        Bounded.from_bounds((-1.0, 2.0), 2))
    integral = grid_integral(dist.log_prob, low=-1.0, high=2.0, num=601)
    assert abs(integral - 1.0) < 0.01, integral
    samples = dist.sample(20000, seed=1).numpy()
    assert samples.min() > -1.0 and samples.max() < 2.0
    assert np.all(np.isfinite(dist.log_prob(samples).numpy()))


def test_saturated_forward_stays_strictly_inside_the_box():
    bij = Bounded.from_bounds([(0.0, 1.0), "positive", (None, 5.0)], 3)
    x = tf.constant([[-200.0, -200.0, 200.0], [200.0, 200.0, -200.0]])
    y = bij.forward(x).numpy()
    assert np.all(y[:, 0] > 0) and np.all(y[:, 0] < 1)
    assert np.all(y[:, 1] > 0) and np.all(np.isfinite(y[:, 1]))
    assert np.all(y[:, 2] < 5) and np.all(np.isfinite(y[:, 2]))
    assert np.all(np.isfinite(bij.inverse_log_det_jacobian(y, event_ndims=1).numpy()))


def test_from_bounds_reads_every_spelling():
    def sides(bounds, d):
        b = Bounded.from_bounds(bounds, d)
        return b.low.numpy().tolist(), b.high.numpy().tolist()

    assert sides("positive", 2) == ([0, 0], [np.inf, np.inf])
    assert sides((0, 1), 2) == ([0, 0], [1, 1])
    assert sides((None, 1), 1) == ([-np.inf], [1])
    assert sides([(0, 1), "positive", None], 3) == ([0, 0, -np.inf], [1, np.inf, np.inf])
    assert sides([(0, 1), (2, 3)], 2) == ([0, 2], [1, 3])
    with pytest.raises(ValueError, match="one entry per coordinate"):
        Bounded.from_bounds([(0, 1), (0, 1)], 3)
    with pytest.raises(ValueError, match="below high"):
        Bounded.from_bounds((1, 0), 2)
    with pytest.raises(ValueError, match="'positive'"):
        Bounded.from_bounds("negative", 2)


def test_check_data_names_rows_outside_the_box():
    bij = Bounded.from_bounds([(0, 1), "positive"], 2)
    x = np.array([[0.5, 1.0], [1.5, 1.0], [0.5, 0.0], [0.2, 3.0]], np.float32)
    with pytest.raises(FlowDataError, match=r"rows \[1, 2\]"):
        bij.check_data(x)
    assert bij.check_data(x[[0, 3]]) is not None


def test_validate_args_refuses_low_above_high():
    with pytest.raises(tf.errors.InvalidArgumentError, match="below high"):
        Bounded([1.0], [0.0], validate_args=True).forward([0.0])
