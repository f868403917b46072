"""Property-based tests (hypothesis) of every bijector in tfp_flows.bijectors.

For each bijector: parameters drawn over wide ranges and random inputs, in float64 eager,
then (1) forward, inverse and both log-dets are finite, (2) inverse(forward(x)) = x within
tolerance (a fresh tensor, so TFP's cache is missed), (3) the forward log-det equals
log|det J| of the autodiff Jacobian, and the inverse log-det at y is its negative. A
failure is shrunk by hypothesis to a minimal case. The ranges drawn here are the ones each
bijector's docstring states as "Accurate for ...".

Tolerances (float64): round trip |x' - x| <= 1e-7 (1 + |x|), plus 1e-7 (1 + |y|) / (dy/dx)
for elementwise maps (an inverse accurate in y, where the map is nearly flat); log-dets
within 1e-6 (1 + |log-det|) of autodiff.
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tfp_flows import bijectors as fb

F64 = tf.float64
# Few examples (each is a few eager TF calls): 3 per bijector, 2 for the slow ones (root
# finders, networks); derandomized so CI is reproducible, no example database on disk.
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
SLOW = {"AmortizedFlow", "SOSAutoregressive", "FastSamplingMAF", "Residual",
        "ImageAffineCoupling", "Sylvester", "MixtureCDF", "LogisticMixtureCDFTransformer",
        "ClosedFormLogProbInvert", "BNAF", "Bernstein", "BoxPreserving"}
ROUND_TRIP_TOL = 1e-7
LOG_DET_TOL = 1e-6


def floats(data, lo, hi, shape=()):
    """An array of `shape` floats in [lo, hi] (float64)."""
    n = int(np.prod(shape))
    values = data.draw(st.lists(st.floats(lo, hi, allow_nan=False, allow_infinity=False),
                                min_size=n, max_size=n))
    return np.asarray(values, np.float64).reshape(shape)


def log_uniform(data, lo, hi, shape=()):
    return np.exp(floats(data, np.log(lo), np.log(hi), shape))


def seed_of(data):
    return data.draw(st.integers(0, 2**16))


def perturb_weights(bij, data, lo=0.1, hi=1.0):
    """Move a network-backed bijector away from its identity start: every trainable weight
    becomes N(0, scale^2) with one drawn scale (seeded, so hypothesis can shrink it)."""
    scale = floats(data, lo, hi)
    rng = np.random.default_rng(seed_of(data))
    for v in bij.trainable_variables:
        v.assign(scale * rng.standard_normal(v.shape))
    return bij


def autodiff_log_det(bij, x, **kwargs):
    """log|det dy/dx| per example, from the full autodiff Jacobian of the flattened event."""
    x = tf.identity(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = bij.forward(x, **kwargs)
    jac = tape.batch_jacobian(y, x)
    n, d = int(x.shape[0]), int(np.prod(x.shape[1:]))
    return tf.linalg.slogdet(tf.reshape(jac, [n, d, d]))[1]


def check_properties(bij, x, event_ndims, **kwargs):
    """The three properties; x: [n, *event] float64 with event of rank event_ndims; kwargs
    (a context) go to every call."""
    x = tf.constant(x, F64)
    assert x.shape.rank == event_ndims + 1
    y = bij.forward(tf.identity(x), **kwargs)
    x_back = bij.inverse(tf.identity(y), **kwargs)
    fldj = bij.forward_log_det_jacobian(tf.identity(x), event_ndims=event_ndims, **kwargs)
    ildj = bij.inverse_log_det_jacobian(tf.identity(y), event_ndims=event_ndims, **kwargs)
    for name, t in (("forward", y), ("inverse", x_back), ("fldj", fldj), ("ildj", ildj)):
        assert t.dtype == F64, f"{name} returned {t.dtype.name}"
        assert np.all(np.isfinite(t.numpy())), f"{name} not finite: {t.numpy()}"
    x_np = x.numpy()
    allowed = ROUND_TRIP_TOL * (1.0 + np.abs(x_np))
    if bij.forward_min_event_ndims == 0:
        # An elementwise inverse accurate to ROUND_TRIP_TOL relative in y is off in x by up
        # to that divided by dy/dx (large where the map is nearly flat).
        log_slope = bij.forward_log_det_jacobian(tf.identity(x), event_ndims=0).numpy()
        allowed = allowed + ROUND_TRIP_TOL * (1.0 + np.abs(y.numpy())) * np.exp(-log_slope)
    err = np.abs(x_back.numpy() - x_np)
    assert np.all(err <= allowed), f"round trip: error {err.max():.3e} (x {x_np})"
    fldj = np.broadcast_to(fldj.numpy(), [x.shape[0]])
    reference = autodiff_log_det(bij, x, **kwargs).numpy()
    err = np.abs(fldj - reference) / (1.0 + np.abs(reference))
    assert err.max() <= LOG_DET_TOL, f"fldj vs autodiff: {fldj} vs {reference}"
    err = np.abs(np.broadcast_to(ildj.numpy(), fldj.shape) + fldj) / (1.0 + np.abs(fldj))
    assert err.max() <= LOG_DET_TOL, f"ildj(y) != -fldj(x): {ildj.numpy()} vs {fldj}"


# Each case: data -> (bijector, x, event_ndims). The ranges are those in the docstrings.
def case_prelu(data):
    alpha = log_uniform(data, 1e-3, 1e3, [3])
    return fb.PReLU(alpha), floats(data, -1e3, 1e3, [4, 3]), 1


def case_nice_scaling(data):
    return fb.NICEScaling(floats(data, -20.0, 20.0, [3])), floats(data, -1e3, 1e3, [4, 3]), 1


def case_actnorm(data):
    bij = fb.ActNorm(floats(data, -20.0, 20.0, [3]), floats(data, -100.0, 100.0, [3]))
    return bij, floats(data, -1e3, 1e3, [4, 3]), 1


def case_radial(data):
    alpha = log_uniform(data, 1e-3, 1e2)
    bij = fb.Radial(floats(data, -10.0, 10.0, [3]), alpha,
                    beta_unconstrained=floats(data, -20.0, 20.0))
    return bij, floats(data, -50.0, 50.0, [4, 3]), 1


def case_planar(data):
    bij = fb.Planar(floats(data, -5.0, 5.0, [3]), floats(data, -5.0, 5.0, [3]),
                    floats(data, -5.0, 5.0))
    return bij, floats(data, -20.0, 20.0, [4, 3]), 1


def case_sylvester(data):
    kind = data.draw(st.sampled_from(["orthogonal", "householder", "triangular"]))
    d, m = 3, (3 if kind == "triangular" else 2)
    q = {"orthogonal": [d, m], "householder": [2, d], "triangular": None}[kind]
    q_params = None if q is None else floats(data, -3.0, 3.0, q)
    # Outside the domain (NaN): a rank-deficient V ("orthogonal"), a zero v_k ("householder").
    if kind == "orthogonal":
        assume(np.linalg.cond(q_params) < 1e3)
    if kind == "householder":
        assume(np.linalg.norm(q_params, axis=-1).min() > 1e-3)
    bij = fb.Sylvester(floats(data, -3.0, 3.0, [m, m]), floats(data, -3.0, 3.0, [m, m]),
                       floats(data, -3.0, 3.0, [m]), q_params, q_kind=kind)
    return bij, floats(data, -20.0, 20.0, [4, d]), 1


def _lu(data, c):
    lu = floats(data, -2.0, 2.0, [c, c])
    log_diag = floats(data, -3.0, 3.0, [c])
    sign = np.where(floats(data, -1.0, 1.0, [c]) < 0, -1.0, 1.0)
    return lu, log_diag, sign


def case_invertible_dense(data):
    lu, log_diag, sign = _lu(data, 3)
    bij = fb.InvertibleDense(lu, log_diag, sign_diag=sign, bias=floats(data, -10.0, 10.0, [3]))
    return bij, floats(data, -100.0, 100.0, [4, 3]), 1


def case_invertible_1x1_conv(data):
    lu, log_diag, sign = _lu(data, 3)
    bij = fb.Invertible1x1Conv(lu, log_diag, sign_diag=sign)
    return bij, floats(data, -100.0, 100.0, [2, 2, 2, 3]), 3


def case_squeeze(data):
    return fb.Squeeze(), floats(data, -1e3, 1e3, [2, 4, 4, 2]), 3


def case_factor_out(data):
    inner = fb.NICEScaling(floats(data, -5.0, 5.0, [2]))
    return fb.FactorOut(inner, num_kept=2, event_ndims=1), floats(data, -100.0, 100.0,
                                                                  [4, 4]), 1


def case_deep_sigmoidal(data):
    k = data.draw(st.integers(1, 4))
    params = floats(data, -5.0, 5.0, [3, 3 * k])
    return fb.DeepSigmoidal(params), floats(data, -10.0, 10.0, [4, 3]), 1


def case_bnaf(data):
    params = floats(data, -2.0, 2.0, [fb.num_bnaf_params(2, 2, 1)])
    return (fb.BNAF(params, event_size=2, hidden_factor=2, num_hidden_layers=1),
            floats(data, -10.0, 10.0, [4, 2]), 1)


def case_umnn(data):
    # the log-det is the quadrature sum's own slope, so any number of nodes
    embedding = floats(data, -2.0, 2.0, [3, 3])
    integrand = floats(data, -2.0, 2.0, [fb.num_integrand_params(2, (4,))])
    return (fb.UMNN(embedding, integrand, hidden_units=(4,), num_nodes=8),
            floats(data, -10.0, 10.0, [4, 3]), 1)


def case_sos_polynomial(data):
    k, r = data.draw(st.integers(1, 3)), data.draw(st.integers(0, 2))
    coefficients = floats(data, -2.0, 2.0, [3, k, r + 1])
    # All-zero coefficients (T constant) are outside the domain: keep one away from 0.
    coefficients[:, 0, 0] = np.where(coefficients[:, 0, 0] < 0, -1.0, 1.0) * np.maximum(
        np.abs(coefficients[:, 0, 0]), 0.1)
    bij = fb.SOSPolynomial(coefficients, floats(data, -5.0, 5.0, [3]))
    return bij, floats(data, -3.0, 3.0, [4, 3]), 1


def _mixture(data, k):
    return (floats(data, -5.0, 5.0, [3, k]), floats(data, -5.0, 5.0, [3, k]),
            floats(data, -3.0, 2.0, [3, k]))


def case_logistic_mixture_cdf(data):
    logits, locs, log_scales = _mixture(data, data.draw(st.integers(1, 4)))
    bij = fb.LogisticMixtureCDFTransformer(logits, locs, log_scales,
                                           floats(data, -3.0, 3.0, [3]),
                                           floats(data, -5.0, 5.0, [3]))
    return bij, floats(data, -20.0, 20.0, [4, 3]), 1


def case_mixture_cdf(data):
    kind = data.draw(st.sampled_from(["gaussian", "logistic"]))
    bij = fb.MixtureCDF(*_mixture(data, data.draw(st.integers(1, 4))), kind=kind)
    return bij, floats(data, -8.0, 8.0, [4, 3]), 1


def case_closed_form_log_prob_invert(data):
    logits, locs, log_scales = _mixture(data, data.draw(st.integers(1, 3)))
    inner = fb.LogisticMixtureCDFTransformer(logits, locs, log_scales)
    return fb.ClosedFormLogProbInvert(inner), floats(data, -20.0, 20.0, [4, 3]), 1


def case_residual(data):
    lip = floats(data, 0.1, 0.9)
    bij = fb.Residual.trainable(3, seed=seed_of(data), dtype=F64, hidden_units=(8,),
                                lipschitz_constant=float(lip))
    return bij, floats(data, -10.0, 10.0, [4, 3]), 1


def case_sos_autoregressive(data):
    bij = fb.SOSAutoregressive.trainable(2, seed=seed_of(data), dtype=F64,
                                         hidden_units=(8,))
    bij.forward(tf.zeros([1, 2], F64))  # build the MADE
    return perturb_weights(bij, data, 0.05, 0.5), floats(data, -3.0, 3.0, [3, 2]), 1


def case_fast_sampling_maf(data):
    bij = fb.FastSamplingMAF.trainable(3, hidden_units=(8,), dtype="float64")
    bij.forward(tf.zeros([1, 3], F64))
    return perturb_weights(bij, data), floats(data, -20.0, 20.0, [4, 3]), 1


def case_image_affine_coupling(data):
    mask = data.draw(st.sampled_from(["channel", "checkerboard"]))
    bij = fb.ImageAffineCoupling.trainable(2, image_shape=[2, 2, 2], mask=mask,
                                           seed=seed_of(data), dtype=F64, hidden_channels=4)
    return perturb_weights(bij, data), floats(data, -20.0, 20.0, [2, 2, 2, 2]), 3


def case_amortized_flow(data):
    from tfp_flows.nets import AmortizedFlowParameters
    from tfp_flows.nets.amortized_flow_params import FLOW_KINDS

    kind = data.draw(st.sampled_from(FLOW_KINDS))
    net = AmortizedFlowParameters(kind, 3, 2, 2, hidden_units=(8,),
                                  location_scale=data.draw(st.booleans()),
                                  seed=seed_of(data), dtype="float64")
    bij = fb.AmortizedFlow(net)
    context = floats(data, -3.0, 3.0, [4, 2])
    bij.forward(tf.zeros([4, 3], F64), conditional_input=context)  # build the network
    perturb_weights(bij.parameter_network, data, 0.1, 1.0)
    return bij, floats(data, -10.0, 10.0, [4, 3]), 1, {"conditional_input": context}


def case_standardize(data):
    bij = fb.Standardize(floats(data, -1e3, 1e3, [3]), log_uniform(data, 1e-3, 1e3, [3]))
    return bij, floats(data, -1e3, 1e3, [4, 3]), 1


BOUND_KINDS = ("both", "low", "high", "neither")


def case_bounded(data):
    # one kind of bounds per coordinate: both finite, low only, high only, neither
    kinds = [data.draw(st.sampled_from(BOUND_KINDS)) for _ in range(4)]
    low = floats(data, -10.0, 10.0, [4])
    high = low + log_uniform(data, 0.1, 100.0, [4])
    low = np.where(np.isin(kinds, ["both", "low"]), low, -np.inf)
    high = np.where(np.isin(kinds, ["both", "high"]), high, np.inf)
    return fb.Bounded(low, high), floats(data, -15.0, 15.0, [4, 4]), 1


def case_householder(data):
    k = data.draw(st.integers(1, 4))
    direction = floats(data, -1.0, 1.0, [k, 3])
    assume(np.linalg.norm(direction, axis=-1).min() > 1e-3)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    vectors = direction * log_uniform(data, 1e-3, 1e3, [k, 1])
    return fb.Householder(vectors), floats(data, -1e3, 1e3, [4, 3]), 1


def case_batch_norm(data):
    bij = fb.BatchNorm(floats(data, -100.0, 100.0, [3]), log_uniform(data, 1e-6, 1e6, [3]),
                       floats(data, -10.0, 10.0, [3]), floats(data, -100.0, 100.0, [3]))
    return bij, floats(data, -1e3, 1e3, [4, 3]), 1


def case_bernstein(data):
    degree = data.draw(st.integers(1, 8))
    bound = floats(data, 1.0, 10.0)
    bij = fb.Bernstein.from_raw(floats(data, -3.0, 3.0, [3, degree + 1]), float(bound))
    return bij, floats(data, -20.0, 20.0, [4, 3]), 1


def case_box_preserving(data):
    transformer = data.draw(st.sampled_from([case_sos_polynomial, case_deep_sigmoidal,
                                             case_bernstein]))(data)[0]
    bound = float(floats(data, 1.0, 6.0))
    bij = fb.BoxPreserving(transformer, bound, min_derivative=float(floats(data, 0.0, 0.5)))
    return bij, floats(data, -3.0 * bound, 3.0 * bound, [4, 3]), 1


def case_circular_spline(data):
    k = data.draw(st.integers(1, 8))
    bij = fb.CircularSpline.from_raw(floats(data, -3.0, 3.0, [3, 3 * k]))
    x = floats(data, -np.pi, np.pi, [4, 3])
    return bij, np.where(x >= np.pi, -np.pi, x), 1  # angles in [-pi, pi)


CASES = {
    "PReLU": case_prelu, "NICEScaling": case_nice_scaling, "ActNorm": case_actnorm,
    "Radial": case_radial, "Planar": case_planar, "Sylvester": case_sylvester,
    "InvertibleDense": case_invertible_dense, "Invertible1x1Conv": case_invertible_1x1_conv,
    "Squeeze": case_squeeze, "FactorOut": case_factor_out, "DeepSigmoidal": case_deep_sigmoidal,
    "BNAF": case_bnaf, "UMNN": case_umnn,
    "SOSPolynomial": case_sos_polynomial,
    "LogisticMixtureCDFTransformer": case_logistic_mixture_cdf,
    "MixtureCDF": case_mixture_cdf, "Residual": case_residual,
    "ClosedFormLogProbInvert": case_closed_form_log_prob_invert,
    "AmortizedFlow": case_amortized_flow,
    "SOSAutoregressive": case_sos_autoregressive, "FastSamplingMAF": case_fast_sampling_maf,
    "ImageAffineCoupling": case_image_affine_coupling,
    "Standardize": case_standardize, "Bounded": case_bounded, "Householder": case_householder,
    "BatchNorm": case_batch_norm, "Bernstein": case_bernstein,
    "CircularSpline": case_circular_spline, "BoxPreserving": case_box_preserving,
}


def test_every_bijector_has_a_property_case():
    """Each tfb.Bijector subclass exported by tfp_flows.bijectors is covered here."""
    exported = {name for name in fb.__all__
                if isinstance(getattr(fb, name), type)
                and issubclass(getattr(fb, name), tf.Module)
                and hasattr(getattr(fb, name), "forward")}
    assert exported - set(CASES) == set(), "bijectors without a property case"


@pytest.mark.parametrize("name", sorted(set(CASES) - SLOW))
@settings(max_examples=3, **SETTINGS)
@given(data=st.data())
def test_properties(name, data):
    bij, x, event_ndims, *kwargs = CASES[name](data)
    check_properties(bij, x, event_ndims, **(kwargs[0] if kwargs else {}))


@pytest.mark.parametrize("name", sorted(SLOW))
@settings(max_examples=2, **SETTINGS)
@given(data=st.data())
def test_properties_of_slow_bijectors(name, data):
    bij, x, event_ndims, *kwargs = CASES[name](data)
    check_properties(bij, x, event_ndims, **(kwargs[0] if kwargs else {}))


# ------------------------------------------------------------------ outside the domain
def test_mixture_cdf_outside_unit_interval():
    """MixtureCDF's inverse is defined on [0, 1]: outside, the inverse is -inf/+inf and the
    inverse log-det -inf (so log_prob is -inf there); validate_args raises."""
    params = (np.zeros([1, 2]), np.array([[-1.0, 1.0]]), np.zeros([1, 2]))
    y = tf.constant([[-0.5], [1.5]], F64)
    x = fb.MixtureCDF(*params).inverse(y).numpy()
    assert x[0, 0] == -np.inf and x[1, 0] == np.inf
    ildj = fb.MixtureCDF(*params).inverse_log_det_jacobian(y, event_ndims=0).numpy()
    assert np.all(ildj == -np.inf)
    with pytest.raises(tf.errors.InvalidArgumentError):
        fb.MixtureCDF(*params, validate_args=True).inverse(y)


def test_planar_with_zero_normal_is_a_translation():
    """w = 0: f(z) = z + u tanh(b), log-det 0 and an exact inverse (the smallest case
    hypothesis drew; before the fix the log-det was log(log 2) = -0.367)."""
    bij = fb.Planar(np.zeros(3), np.array([0.5, -2.0, 1.0]), np.float64(0.3))
    z = tf.constant([[1.0, 2.0, 3.0], [-4.0, 0.0, 5.0]], F64)
    y = bij.forward(z)
    np.testing.assert_allclose(y.numpy(), z.numpy() + np.tanh(0.3) * np.array([0.5, -2, 1]))
    assert np.all(bij.forward_log_det_jacobian(z, event_ndims=1).numpy() == 0.0)
    np.testing.assert_allclose(bij.inverse(tf.identity(y)).numpy(), z.numpy(), atol=1e-12)
