"""BoxPreserving: any increasing transformer rescaled to map [-B, B] onto itself."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.bijectors import Bernstein, BoxPreserving, DeepSigmoidal, SOSPolynomial
from tfp_flows.testing import check_bijector

tfb = tfp.bijectors


def _transformers(dtype):
    rng = np.random.default_rng(3)
    cast = lambda a: tf.constant(a, dtype)  # noqa: E731
    return {"sos": SOSPolynomial(cast(rng.uniform(-1, 1, [3, 3, 3])), cast(rng.normal(size=3))),
            "dsf": DeepSigmoidal(cast(3.0 * rng.normal(size=[3, 24]))),
            "bernstein": Bernstein.from_raw(cast(rng.normal(size=[3, 9])), 2.0)}


@pytest.mark.parametrize("kind", ["sos", "dsf", "bernstein"])
def test_passes_check_bijector_in_float32_and_float64(kind, rng):
    x = rng.uniform(-9.0, 9.0, [12, 3])  # inside [-3, 3] and on both tails
    check_bijector(lambda dtype: BoxPreserving(_transformers(dtype)[kind], 3.0,
                                               min_derivative=0.05), x, saved_model=False)


@pytest.mark.parametrize("kind", ["sos", "dsf", "bernstein"])
def test_maps_the_box_onto_itself_and_is_c1_with_linear_tails(kind):
    b, m = 3.0, 0.05
    transformer = _transformers(tf.float64)[kind]
    bij = BoxPreserving(transformer, b, min_derivative=m)
    ends = bij.forward(tf.constant([[-b] * 3, [b] * 3], tf.float64)).numpy()
    np.testing.assert_allclose(ends, [[-b] * 3, [b] * 3], atol=1e-12)
    # the rescaled T inside the box: m x + (1 - m) (-B + 2B (T(x) - T(-B)) / (T(B) - T(-B)))
    x = np.linspace(-b, b, 61)[:, None] * np.ones(3)
    t = transformer.forward(x).numpy()
    lo, hi = transformer.forward(-b * np.ones(3)).numpy(), transformer.forward(
        b * np.ones(3)).numpy()
    expected = m * x + (1 - m) * (-b + 2 * b * (t - lo) / (hi - lo))
    np.testing.assert_allclose(bij.forward(x).numpy(), expected, rtol=1e-12, atol=1e-12)
    for edge in (-b, b):  # value and slope continuous across the bounds
        inside = np.full([1, 3], edge * (1 - 1e-9))
        outside = np.full([1, 3], edge * (1 + 1e-9))
        np.testing.assert_allclose(bij.forward(inside).numpy(), bij.forward(outside).numpy(),
                                   atol=1e-7)
        np.testing.assert_allclose(
            bij.forward_log_det_jacobian(inside, event_ndims=0).numpy(),
            bij.forward_log_det_jacobian(outside, event_ndims=0).numpy(), atol=1e-6)
    # slope floor m everywhere, linear (constant slope) in the tails
    grid = np.linspace(-5 * b, 5 * b, 401)[:, None] * np.ones(3)
    log_slope = bij.forward_log_det_jacobian(grid, event_ndims=0).numpy()
    assert log_slope.min() >= np.log(m) - 1e-12
    far = grid[grid[:, 0] > 1.01 * b]
    np.testing.assert_allclose(np.ptp(bij.forward_log_det_jacobian(far, event_ndims=0)
                                      .numpy(), axis=0), 0.0, atol=1e-12)


def test_a_stack_keeps_points_of_the_box_inside_it_where_the_plain_transformers_do_not():
    """Five SOS layers with steep random polynomials: the plain stack throws points of the
    box far out (and its log N(z) with them); the rescaled stack keeps every coordinate
    within B, so log N(z) >= -D B^2 / 2 - D/2 log(2 pi)."""
    rng = np.random.default_rng(0)
    b = 4.0
    x = rng.uniform(-b, b, [2000, 2])
    plain, boxed = x, x
    for _ in range(5):
        coefficients = rng.uniform(-2.0, 2.0, [2, 3, 3])
        shift = rng.normal(scale=3.0, size=2)
        plain = SOSPolynomial(coefficients, shift, tail_bound=b).forward(plain).numpy()
        boxed = BoxPreserving(SOSPolynomial(coefficients, shift), b).forward(boxed).numpy()
    assert np.abs(plain).max() > 100 * b
    assert np.abs(boxed).max() <= b + 1e-9


def test_saturated_transformer_stays_finite_and_bad_arguments_are_refused():
    # every sigmoid unit saturated on the box in float32: T is constant there
    dsf = DeepSigmoidal(tf.constant(np.tile([[0.0, -400.0, 0.0]], [2, 1]), tf.float32))
    bij = BoxPreserving(dsf, 4.0, min_derivative=0.01)
    x = tf.constant([[-3.0, 0.5], [2.0, 9.0]])
    assert np.all(np.isfinite(bij.forward(x).numpy()))
    assert np.all(np.isfinite(bij.forward_log_det_jacobian(x, event_ndims=0).numpy()))
    with pytest.raises(ValueError, match="bound must be > 0"):
        BoxPreserving(dsf, 0.0)
    with pytest.raises(ValueError, match="min_derivative"):
        BoxPreserving(dsf, 4.0, min_derivative=1.0)
    with pytest.raises(ValueError, match="elementwise"):
        BoxPreserving(tfb.Reshape([2], [1, 2]), 4.0)
