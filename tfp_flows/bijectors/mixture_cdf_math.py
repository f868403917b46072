"""The mixture-CDF math shared by `LogisticMixtureCDFTransformer` (Flow++) and `MixtureCDF`.

A K-component mixture of logistics or Gaussians on R, with weights pi = softmax(logits),
locations mu_k and scales s_k = exp(log_scales_k), z_k = (x - mu_k) / s_k:

    F(x)     = sum_k pi_k C(z_k),          C = sigmoid (logistic) or Phi (Gaussian),
    1 - F(x) = sum_k pi_k C(-z_k),         (both distributions are symmetric)
    f(x)     = sum_k pi_k c(z_k) / s_k,    c = sigmoid(z) sigmoid(-z) or N(z; 0, 1).

`mixture_log_cdf_sf_pdf` returns log F, log(1 - F) and log f, each a logsumexp over the
components of log pi_k plus log_sigmoid(+-z_k) / log_ndtr(+-z_k) / the log-pdf, so none of
them rounds to 0 or 1: logit F(x) = log F - log(1 - F) is finite and accurate for every
finite x, far in both tails too. Both bijectors are functions of this logit (Flow++ scales
and shifts it; the CDF flow passes it through a sigmoid), and both invert it with
`solve_logit_cdf`:

Bisection on l(x) = logit F(x) = u. l is strictly increasing from -inf to +inf. The root lies
in a bracket read off the components: for logistics, x_lo = min_k (mu_k + s_k u) and
x_hi = max_k (mu_k + s_k u) (at x_lo every component has C(z_k) <= sigmoid(u), so
F(x_lo) <= sigmoid(u); likewise at x_hi); for Gaussians, since Phi(t) >= sigmoid(t) for
t >= 0 (and <= for t <= 0), the component quantiles lie between mu_k and mu_k + s_k u, so
x_lo = min_k (mu_k + s_k min(u, 0)), x_hi = max_k (mu_k + s_k max(u, 0)). A fixed number N of
halvings (`bisection.bisect_increasing`, a `tf.while_loop`, so it runs under XLA with static
shapes and no host syncs) leaves a bracket of width W 2^-N, W the initial width; the midpoint
is returned, so the error in x is at most W 2^-(N+1) or the floating-point resolution at x,
whichever is larger.
Defaults: N = 60 in float32 and 100 in float64 (`default_bisection_iterations`), which
reach the resolution for any W up to 2^36 |x| (float32) / 2^47 |x| (float64).

Gradients: the loop runs on stopped gradients; the result x* is returned as
x* - (g - stop_gradient(g)) / l'(x*) with g = l(x*; params) - u, whose value is exactly x*
and whose gradient is the implicit-function gradient dx/dθ = -(dg/dθ) / l'(x*), l' > 0.
"""

import math

import numpy as np
import tensorflow as tf
from tensorflow_probability.python.internal import special_math

from tfp_flows.bijectors.bisection import bisect_increasing, default_iterations

MIXTURE_KINDS = ("logistic", "gaussian")

_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)

# log s of a unit-variance component (a logistic with scale s has variance pi^2 s^2 / 3):
# the initial log-scales, so that both kinds start with the same spread.
UNIT_VARIANCE_LOG_SCALE = {"gaussian": 0.0, "logistic": math.log(math.sqrt(3.0) / math.pi)}


def check_kind(kind):
    if kind not in MIXTURE_KINDS:
        raise ValueError(f"kind must be one of {MIXTURE_KINDS}; got {kind!r}.")
    return kind


def check_num_components(name, tensors):
    """Raise ValueError unless logits, locs and log_scales share a static trailing K axis."""
    sizes = {int(t.shape[-1]) for t in tensors if t.shape.rank and t.shape[-1] is not None}
    if len(sizes) > 1:
        raise ValueError(f"{name}: logits, locs and log_scales need the same number of "
                         f"components K on their last axis; got {sorted(sizes)}.")
    if any(t.shape.rank == 0 for t in tensors):
        raise ValueError(f"{name}: logits, locs and log_scales need a trailing component axis "
                         f"[..., K]; got a scalar.")


# Bisection steps used by default: 60 for float32 (and narrower), 100 for float64.
default_bisection_iterations = default_iterations


def mixture_log_cdf_sf_pdf(x, logits, locs, log_scales, kind="logistic"):
    """(log F(x), log(1 - F(x)), log f(x)) of a mixture, elementwise in x.

    Args:
      x: float tensor [...].
      logits, locs, log_scales: float tensors [..., K] (unnormalised log-weights, locations,
        log-scales), broadcast against x[..., None].
      kind: 'logistic' or 'gaussian'.

    Returns:
      Three tensors of the broadcast shape of x and the parameters' batch shape.
    """
    check_kind(kind)
    log_weights = tf.nn.log_softmax(logits, axis=-1)
    z = (x[..., tf.newaxis] - locs) * tf.exp(-log_scales)
    if kind == "logistic":
        log_cdf_k = tf.math.log_sigmoid(z)
        log_sf_k = tf.math.log_sigmoid(-z)
        log_pdf_k = log_cdf_k + log_sf_k - log_scales
    else:
        log_cdf_k = special_math.log_ndtr(z)
        log_sf_k = special_math.log_ndtr(-z)
        log_pdf_k = -0.5 * tf.square(z) - log_scales - _HALF_LOG_TWO_PI

    def mix(log_k):
        return tf.reduce_logsumexp(log_weights + log_k, axis=-1)

    return mix(log_cdf_k), mix(log_sf_k), mix(log_pdf_k)


def logit_cdf_bracket(u, locs, log_scales, kind="logistic"):
    """[x_lo, x_hi] containing the x with logit F(x) = u (see the module docstring)."""
    u = u[..., tf.newaxis]
    scales = tf.exp(log_scales)
    if kind == "logistic":
        lo = hi = locs + scales * u
    else:
        lo = locs + scales * tf.minimum(u, 0.0)
        hi = locs + scales * tf.maximum(u, 0.0)
    return tf.reduce_min(lo, axis=-1), tf.reduce_max(hi, axis=-1)


@tf.function(autograph=False, reduce_retracing=True)
def _bisect(u, logits, locs, log_scales, kind, num_iterations):
    """`bisection.bisect_increasing` on logit F in its bracket, a tf.function so that eager
    calls do not run it op by op (inside a graph or under XLA it is inlined)."""
    lo, hi = logit_cdf_bracket(u, locs, log_scales, kind)
    shape = tf.broadcast_dynamic_shape(tf.shape(lo), tf.shape(u))
    lo, hi = tf.broadcast_to(lo, shape), tf.broadcast_to(hi, shape)

    def logit_cdf(x):
        log_cdf, log_sf, _ = mixture_log_cdf_sf_pdf(x, logits, locs, log_scales, kind)
        return log_cdf - log_sf

    return bisect_increasing(logit_cdf, u, lo, hi, num_iterations)


def solve_logit_cdf(u, logits, locs, log_scales, kind="logistic", num_iterations=None):
    """The x with logit F(x) = log F(x) - log(1 - F(x)) = u, elementwise, by bisection.

    u must be finite (callers map out-of-domain inputs themselves). Differentiable in u and
    the parameters through the implicit-function gradient (module docstring).
    """
    dtype = tf.convert_to_tensor(u).dtype
    n = default_bisection_iterations(dtype) if num_iterations is None else int(num_iterations)
    if n < 1:
        raise ValueError(f"num_iterations must be >= 1; got {num_iterations}.")
    sg = tf.stop_gradient
    x = sg(_bisect(*(sg(tf.convert_to_tensor(t, dtype)) for t in (u, logits, locs, log_scales)),
                   kind=kind, num_iterations=n))
    log_cdf, log_sf, log_pdf = mixture_log_cdf_sf_pdf(x, logits, locs, log_scales, kind)
    g = log_cdf - log_sf - u
    slope = sg(tf.exp(log_pdf - log_cdf - log_sf))  # l'(x) = f / (F (1 - F)) > 0
    tiny = np.finfo(dtype.as_numpy_dtype).tiny
    return x - (g - sg(g)) / tf.maximum(slope, tiny)


def split_mixture_outputs(raw, num_components, num_extra=0, loc_spread=1.0,
                          log_scale_bound=7.0, log_scale_offset=0.0):
    """Network outputs [..., 3K + num_extra] -> (logits, locs, log_scales, extras...).

    The locations get fixed offsets loc_spread * linspace(-1, 1, K), so a zero-initialised
    network starts with distinct components (identical components would get identical
    gradients and never separate); log-scales are log_scale_offset plus the raw ones softly
    bounded by log_scale_bound * tanh(raw / log_scale_bound). Used by the coupling
    `bijector_fn`s.
    """
    k = int(num_components)
    logits, locs, log_scales = raw[..., :k], raw[..., k:2 * k], raw[..., 2 * k:3 * k]
    offsets = np.linspace(-1.0, 1.0, k) if k > 1 else np.zeros(1)
    locs = locs + tf.constant(loc_spread * offsets, raw.dtype)
    if log_scale_bound is not None:
        log_scales = log_scale_bound * tf.tanh(log_scales / log_scale_bound)
    log_scales = log_scales + log_scale_offset
    extras = [raw[..., 3 * k + i] for i in range(num_extra)]
    return (logits, locs, log_scales, *extras)


def coupling_outputs(conditioner, x0, output_units, params_per_unit, **condition_kwargs):
    """Call an additive `nets.CouplingMLP` (shift_only=True) for `params_per_unit` numbers
    per transformed coordinate: returns [..., output_units, params_per_unit]."""
    if not getattr(conditioner, "shift_only", False):
        raise ValueError("The mixture couplings need a nets.CouplingMLP(shift_only=True) "
                         "conditioner (one raw output per parameter).")
    out, _ = conditioner(x0, int(output_units) * int(params_per_unit), **condition_kwargs)
    shape = tf.concat([tf.shape(out)[:-1], [int(output_units), int(params_per_unit)]], 0)
    return tf.reshape(out, shape)
