"""CircularSpline: a diffeomorphism of the circle (check_bijector, continuity at the seam)."""

import math

import numpy as np
import pytest

from tfp_flows.bijectors import CircularSpline
from tfp_flows.testing import check_bijector


def _spline(rng, dtype, k=5):
    raw = rng.standard_normal([3, 3 * k])  # batch of 3 angles, each its own spline
    return CircularSpline.from_raw(raw.astype(dtype))


def test_circular_spline_passes_check_bijector_in_float32_and_float64(rng):
    x = rng.uniform(-3.0, 3.0, [16, 3])  # away from the seam, where wrap is discontinuous
    check_bijector(lambda dtype: _spline(np.random.default_rng(5), dtype.as_numpy_dtype), x,
                   saved_model=False)


def test_is_a_circle_map_continuous_at_the_seam_with_equal_end_slopes(rng):
    bij = _spline(rng, np.float64)
    eps = 1e-7
    lo = np.full([1, 3], -math.pi)
    hi = np.full([1, 3], math.pi - eps)
    y_lo, y_hi = bij.forward(lo).numpy(), bij.forward(hi).numpy()
    # y(pi - eps) and y(-pi) are the same point of the circle, eps apart
    gap = np.mod(y_lo - y_hi + math.pi, 2 * math.pi) - math.pi
    np.testing.assert_allclose(gap, eps, rtol=1e-3)
    np.testing.assert_allclose(bij.forward_log_det_jacobian(lo, event_ndims=0).numpy(),
                               bij.forward_log_det_jacobian(hi, event_ndims=0).numpy(),
                               atol=1e-5)
    x = rng.uniform(-math.pi, math.pi, [200, 3])
    y = bij.forward(x).numpy()
    assert y.min() >= -math.pi and y.max() < math.pi
    np.testing.assert_allclose(bij.inverse(y).numpy(), x, atol=1e-9)
    outside = np.array([[4.0, -3.5, 10.0]])  # not on the circle: passed through, density 0
    np.testing.assert_array_equal(bij.inverse(outside).numpy(), outside)
    assert np.all(np.isneginf(bij.inverse_log_det_jacobian(outside, event_ndims=0).numpy()))


def test_zero_raw_is_the_identity_and_bad_raw_is_refused(rng):
    x = rng.uniform(-math.pi, math.pi, [10, 2])
    bij = CircularSpline.from_raw(np.zeros([2, 12]))
    np.testing.assert_allclose(bij.forward(x).numpy(), x, atol=1e-12)
    with pytest.raises(ValueError, match="needs 3K raw numbers"):
        CircularSpline.from_raw(np.zeros([2, 7]))
