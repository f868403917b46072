import warnings

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import FlowDataError
from tfp_flows.bijectors import ConstantColumnWarning, Standardize
from tfp_flows.bijectors.standardize import Moments, far_from_standardized
from tfp_flows.testing import check_bijector

tfb, tfd = tfp.bijectors, tfp.distributions

LOC = np.array([5e4, -3.0, 0.0])
SCALE = np.array([2e3, 0.01, 1.0])


def test_passes_check_bijector_in_float32_and_float64():
    z = np.random.default_rng(0).standard_normal((16, 3))
    report = check_bijector(
        lambda dtype: Standardize(LOC.astype(dtype.as_numpy_dtype),
                                  SCALE.astype(dtype.as_numpy_dtype)),
        z, y=LOC + SCALE * z)
    assert report.errors["float64"]["forward_log_det_jacobian"] < 1e-12


def test_forward_is_loc_plus_scale_z_with_closed_form_log_det():
    bij = Standardize(LOC, SCALE)
    z = np.random.default_rng(1).standard_normal((5, 3))
    np.testing.assert_allclose(bij.forward(z), LOC + SCALE * z, rtol=1e-14)
    np.testing.assert_allclose(bij.inverse(LOC + SCALE * z), z, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bij.forward_log_det_jacobian(z, event_ndims=1),
                               np.full(5, np.log(SCALE).sum()), rtol=1e-14)


def test_data_unit_nll_is_standardised_nll_plus_sum_log_scale():
    """log p_X(x) = log p_Z((x - loc) / scale) - sum log scale, for a non-trivial flow."""
    inner = tfb.Chain([tfb.Shift(np.array([0.3, -0.2, 0.1])),
                       tfb.Scale(np.array([1.5, 0.7, 2.0])), tfb.Sinh()])
    base = tfd.MultivariateNormalDiag(tf.zeros(3, tf.float64))
    standardised = tfd.TransformedDistribution(base, inner)
    in_data_units = tfd.TransformedDistribution(
        base, tfb.Chain([Standardize(LOC, SCALE), inner]))
    x = LOC + SCALE * np.random.default_rng(2).standard_normal((50, 3))
    nll_data = -in_data_units.log_prob(x).numpy().mean()
    nll_std = -standardised.log_prob((x - LOC) / SCALE).numpy().mean()
    assert abs(nll_data - (nll_std + np.log(SCALE).sum())) < 1e-10


def test_identity_holds_non_trainable_variables_that_adapt_sets():
    bij = Standardize.identity(3, dtype=tf.float64)
    assert isinstance(bij.loc, tf.Variable) and not bij.loc.trainable
    assert isinstance(bij.scale, tf.Variable) and not bij.scale.trainable
    assert bij.is_identity
    y = LOC + SCALE * np.random.default_rng(3).standard_normal((4000, 3))
    loc, scale = bij.adapt(y)
    np.testing.assert_allclose(loc, y.mean(0), rtol=1e-12)
    np.testing.assert_allclose(scale, y.std(0), rtol=1e-12)
    np.testing.assert_allclose(bij.loc.numpy(), y.mean(0), rtol=1e-12)
    assert not bij.is_identity
    z = bij.inverse(y).numpy()
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(z.std(0), 1, rtol=1e-9)


def test_batched_moments_match_one_pass_for_data_far_from_zero():
    y = 1e6 + np.random.default_rng(4).standard_normal((1000, 2)) * [1e-2, 5.0]
    moments = Moments([2])
    for start in range(0, 1000, 96):
        moments.update(y[start:start + 96])
    mean, std = moments.result()
    np.testing.assert_allclose(mean, y.mean(0), rtol=1e-14)
    np.testing.assert_allclose(std, y.std(0), rtol=1e-9)
    bij = Standardize.identity(2, dtype=tf.float64)
    bij.adapt(iter([y[:500], y[500:]]))
    np.testing.assert_allclose(bij.scale.numpy(), y.std(0), rtol=1e-9)


def test_constant_column_gets_scale_one_and_a_warning_naming_it():
    y = np.random.default_rng(5).standard_normal((100, 3)).astype(np.float32)
    y[:, 1] = 7.0
    bij = Standardize.identity(3)
    with pytest.warns(ConstantColumnWarning, match=r"coordinate\(s\) \[1\]"):
        _, scale = bij.adapt(y)
    assert scale[1] == 1.0 and np.all(scale[[0, 2]] != 1.0)
    assert np.all(np.isfinite(bij.inverse(y).numpy()))


def test_too_few_rows_and_wrong_shapes_are_refused():
    bij = Standardize.identity(3)
    with pytest.raises(FlowDataError, match="at least 2 rows"):
        bij.adapt(np.zeros((1, 3), np.float32))
    with pytest.raises(FlowDataError, match="shape"):
        bij.adapt(np.zeros((10, 2), np.float32))
    with pytest.raises(TypeError, match="Standardize.identity"):
        Standardize(LOC, SCALE).adapt(np.zeros((10, 3)))


def test_validate_args_refuses_non_positive_scale():
    with pytest.raises(tf.errors.InvalidArgumentError, match="positive"):
        Standardize([0.0], [-1.0], validate_args=True).forward([1.0])


def test_far_from_standardized_thresholds():
    assert far_from_standardized([0.0, 1.0], [1.0, 50.0]) is None
    assert far_from_standardized([5e4, -3.0], [2e3, 0.01]) is not None
    assert far_from_standardized([0.0], [5e-3]) is not None
    assert far_from_standardized([50.0], [1.0]) is not None


def test_no_warning_for_ordinary_data():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Standardize.identity(2).adapt(np.random.default_rng(6).standard_normal((50, 2)))
