"""Bernstein transformer: monotone, C^1 across the ends of its interval, exact inverse."""

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import comb

from tfp_flows.bijectors import Bernstein
from tfp_flows.testing import check_bijector


def _raw(dtype):
    return np.random.default_rng(1).standard_normal([3, 9]).astype(dtype.as_numpy_dtype)


def test_bernstein_passes_check_bijector_in_float32_and_float64(rng):
    x = rng.uniform(-6.0, 6.0, [32, 3])  # inside [-4, 4] and on both tails
    check_bijector(lambda dtype: Bernstein.from_raw(_raw(dtype), 4.0), x, saved_model=False)


def test_matches_the_bernstein_sum_and_is_c1_with_linear_tails(rng):
    bij = Bernstein.from_raw(_raw(tf.float64), 2.0)
    theta = bij.coefficients.numpy()
    assert np.all(np.diff(theta, axis=-1) > 0)
    x = rng.uniform(-2.0, 2.0, [50, 3])
    u = (x + 2.0) / 4.0
    m = theta.shape[-1] - 1
    k = np.arange(m + 1)
    basis = comb(m, k) * u[..., None] ** k * (1 - u[..., None]) ** (m - k)
    np.testing.assert_allclose(bij.forward(x).numpy(), (basis * theta).sum(-1), rtol=1e-12)
    for edge in (-2.0, 2.0):
        inside, outside = np.full([1, 3], edge * (1 - 1e-9)), np.full([1, 3], edge * (1 + 1e-9))
        np.testing.assert_allclose(bij.forward(inside).numpy(), bij.forward(outside).numpy(),
                                   atol=1e-7)
        np.testing.assert_allclose(bij.forward_log_det_jacobian(inside, event_ndims=0).numpy(),
                                   bij.forward_log_det_jacobian(outside, event_ndims=0).numpy(),
                                   atol=1e-6)
    far = np.array([[-50.0, 30.0, 1e3]])
    np.testing.assert_allclose(bij.inverse(bij.forward(far)).numpy(), far, rtol=1e-12)


def test_zero_raw_is_the_identity_and_bad_arguments_are_refused(rng):
    x = rng.uniform(-8.0, 8.0, [20, 2])
    bij = Bernstein.from_raw(np.zeros([2, 7]), 3.0)
    np.testing.assert_allclose(bij.forward(x).numpy(), x, atol=1e-12)
    np.testing.assert_allclose(bij.forward_log_det_jacobian(x, event_ndims=1).numpy(), 0.0,
                               atol=1e-12)
    with pytest.raises(ValueError, match="M >= 1"):
        Bernstein(np.zeros([2, 1]))
    with pytest.raises(ValueError, match="bound must be positive"):
        Bernstein(np.array([0.0, 1.0]), bound=0.0)
