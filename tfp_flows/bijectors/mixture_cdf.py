"""CDF flows (seed 003): an elementwise mixture CDF from R onto (0, 1), for density models
with a Uniform(0, 1) base.

For a K-component mixture of Gaussians or of logistics (seed 003: "cumulative density
functions, e.g. CDF of mixture of Gaussians or weighted sum of logistics"),

    y = F(x) = sum_k pi_k C((x - mu_k) / s_k),   pi = softmax(logits), s = exp(log_scales),
    log dy/dx = log f(x),  f the mixture density.

With z = F(x) and a Uniform(0, 1) base, log p(x) = log p_Z(F(x)) + log f(x) = log f(x): the
flow's maximum-likelihood objective is the mixture's own (seed 003, "CDF flows"). On R^D,
elementwise, log p(x) = sum_i log f_i(x_i) (`cdf_flow_distribution`); the 2-D
autoregressive version (x2's mixture from a network of x1) is the zoo recipe `cdf2d`.

F, log F, log(1 - F) and log f come from `mixture_cdf_math.mixture_log_cdf_sf_pdf` (shared
with Flow++'s `LogisticMixtureCDFTransformer`); F is exp(log F) below 1/2 and
-expm1(log(1 - F)) above, so it is accurate near 1 too. The inverse solves
logit F(x) = logit y by the same bisection (`solve_logit_cdf`; bracket, iteration count and
error bound in that module's docstring), with implicit-function gradients.

Domain of the inverse: y in [0, 1]. The end points 0 and 1, which float rounding produces
from F within half an ulp of them (and which a Uniform sampler can return), are read as the
nearest interior values (tiny, 1 - eps/2), so they give finite x. Outside [0, 1]
the inverse is -inf (y < 0), +inf (y > 1) or NaN (y NaN), the inverse log-det is -inf and
the forward log-det at x = +-inf is taken as 0, so a density over (0, 1) built with this
bijector gives log_prob -inf there (NaN for NaN); with `validate_args=True` such inputs
raise `InvalidArgumentError` instead.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import (
    assert_util,
    dtype_util,
    parameter_properties,
    tensor_util,
)

from tfp_flows.bijectors.closed_form_log_prob_invert import ClosedFormLogProbInvert
from tfp_flows.bijectors.mixture_cdf_math import (
    UNIT_VARIANCE_LOG_SCALE,
    check_kind,
    check_num_components,
    coupling_outputs,
    mixture_log_cdf_sf_pdf,
    solve_logit_cdf,
    split_mixture_outputs,
)
from tfp_flows.serialization import register_serializable
from tfp_flows.types import DTypeLike, Seed, TensorLike

tfb, tfd = tfp.bijectors, tfp.distributions


class MixtureCDF(tfb.Bijector):
    """y = F(x), the CDF of a mixture of Gaussians or logistics: R -> (0, 1), elementwise.

    Args:
      logits: float tensor [..., K], unnormalised log mixture weights.
      locs: float tensor [..., K], component locations.
      log_scales: float tensor [..., K], component log-scales.
      kind: 'gaussian' (default, as in seed 003's two-moons example) or 'logistic'.
      num_iterations: bisection steps of the inverse; default 60 (float32) / 100 (float64).
      validate_args: check finite parameters and inverse inputs in [0, 1].
      name: name scope.

    Parameters broadcast against x[..., None]; the batch shape is theirs without the K axis.
    See the module docstring for the inverse's domain.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) |logits| <= 5, |locs| <= 5, log_scales in [-3,
    2], K <= 4 and |x| <= 8 (both kinds). Domain of the inverse: [0, 1] (see the module
    docstring: -inf/+inf outside, so log_prob -inf; raises under validate_args).
    """

    def __init__(self, logits: TensorLike, locs: TensorLike, log_scales: TensorLike,
                 kind: str = "gaussian", num_iterations: int | None = None,
                 validate_args: bool = False, name: str = "mixture_cdf") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([logits, locs, log_scales], dtype_hint=tf.float32)
            convert = tensor_util.convert_nonref_to_tensor
            self._logits = convert(logits, dtype=dtype, name="logits")
            self._locs = convert(locs, dtype=dtype, name="locs")
            self._log_scales = convert(log_scales, dtype=dtype, name="log_scales")
            check_num_components(type(self).__name__,
                                  [self._logits, self._locs, self._log_scales])
            self._kind = check_kind(kind)
            self._num_iterations = num_iterations
            super().__init__(forward_min_event_ndims=0, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    @classmethod
    def trainable(cls, event_size: int, *, num_components: int = 5, kind: str = "gaussian",
                  seed: Seed = None, dtype: DTypeLike = tf.float32, loc_spread: float = 1.5,
                  init_log_scale: float | None = None, validate_args: bool = False,
                  name: str = "mixture_cdf") -> MixtureCDF:
        """An elementwise mixture CDF over R^event_size owning fresh variables.

        Starts with equal weights, scales exp(init_log_scale) (default: unit-variance
        components, s = 1 for Gaussians and sqrt(3) / pi for logistics) and locations
        loc_spread * linspace(-1, 1, K) plus 0.1 N(0, 1) jitter drawn from `seed` (distinct
        components; identical ones would stay identical under training). The defaults
        suit standardised data.
        """
        dtype = tf.as_dtype(dtype)
        d, k = int(event_size), int(num_components)
        if init_log_scale is None:
            init_log_scale = UNIT_VARIANCE_LOG_SCALE[check_kind(kind)]
        seed = [0, 0] if seed is None else [0, int(seed)]
        spread = tf.linspace(tf.constant(-loc_spread, dtype), tf.constant(loc_spread, dtype), k)
        jitter = 0.1 * tf.random.stateless_normal([d, k], seed=seed, dtype=dtype)
        return cls(tf.Variable(tf.zeros([d, k], dtype), name="logits"),
                   tf.Variable(spread + jitter, name="locs"),
                   tf.Variable(tf.fill([d, k], tf.constant(init_log_scale, dtype)),
                               name="log_scales"),
                   kind=kind, validate_args=validate_args, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {
            "logits": parameter_properties.ParameterProperties(event_ndims=1),
            "locs": parameter_properties.ParameterProperties(event_ndims=1),
            "log_scales": parameter_properties.ParameterProperties(event_ndims=1),
        }

    @property
    def logits(self):
        return self._logits

    @property
    def locs(self):
        return self._locs

    @property
    def log_scales(self):
        return self._log_scales

    @property
    def kind(self):
        return self._kind

    @property
    def num_iterations(self):
        return self._num_iterations

    def _is_increasing(self):
        return True

    def _mixture(self, x):
        return mixture_log_cdf_sf_pdf(x, tf.convert_to_tensor(self._logits),
                                      tf.convert_to_tensor(self._locs),
                                      tf.convert_to_tensor(self._log_scales), self._kind)

    def _forward(self, x):
        log_cdf, log_sf, _ = self._mixture(x)
        return tf.where(log_cdf < np.log(0.5), tf.exp(log_cdf), -tf.math.expm1(log_sf))

    def _forward_log_det_jacobian(self, x):
        log_pdf = self._mixture(x)[2]
        # x = +-inf is what the inverse returns outside [0, 1]; a log-det of 0 there keeps a
        # density built on the CDF's range at -inf (TFP evaluates the log-det at x).
        return tf.where(tf.math.is_inf(x), tf.zeros_like(log_pdf), log_pdf)

    def _checked(self, y):
        if not self.validate_args:
            return y
        with tf.control_dependencies([
                assert_util.assert_greater_equal(y, tf.zeros([], y.dtype), message=(
                    "MixtureCDF: inverse input must lie in [0, 1] (the CDF's range).")),
                assert_util.assert_less_equal(y, tf.ones([], y.dtype), message=(
                    "MixtureCDF: inverse input must lie in [0, 1] (the CDF's range)."))]):
            return tf.identity(y)

    def _inverse(self, y):
        y = self._checked(y)
        info = np.finfo(y.dtype.as_numpy_dtype)
        inside = (y >= 0) & (y <= 1)
        y_in = tf.clip_by_value(tf.where(inside, y, 0.5), info.tiny, 1.0 - info.eps / 2)
        u = tf.math.log(y_in) - tf.math.log1p(-y_in)
        x = solve_logit_cdf(u, tf.convert_to_tensor(self._logits),
                            tf.convert_to_tensor(self._locs),
                            tf.convert_to_tensor(self._log_scales), self._kind,
                            self._num_iterations)
        inf = tf.constant(np.inf, y.dtype)
        nan = tf.fill(tf.shape(y), tf.constant(np.nan, y.dtype))
        return tf.where(inside, x, tf.where(y < 0, -inf, tf.where(y > 1, inf, nan)))

    def _inverse_log_det_jacobian(self, y):
        y = self._checked(y)
        x = self.inverse(y)
        inside = (y >= 0) & (y <= 1)
        log_pdf = self._mixture(tf.where(inside, x, tf.zeros_like(x)))[2]
        return tf.where(inside, -log_pdf, tf.constant(-np.inf, y.dtype))

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args:
            return []
        assertions = []
        for name in ("logits", "locs", "log_scales"):
            value = getattr(self, f"_{name}")
            if is_init != tensor_util.is_ref(value):
                assertions.append(assert_util.assert_equal(
                    tf.reduce_all(tf.math.is_finite(value)), True,
                    message=f"MixtureCDF: argument `{name}` must be finite."))
        return assertions


@register_serializable(name="tfp_flows.bijectors.MixtureCDFCouplingFn")
class MixtureCDFCouplingFn:
    """`bijector_fn` for `tfb.RealNVP`: x0 -> `MixtureCDF` of x1 (an autoregressive CDF flow).

    The conditioner, a `nets.CouplingMLP(shift_only=True)`, outputs 3K numbers per coordinate
    of x1: K logits, K locations (plus fixed offsets loc_spread * linspace(-1, 1, K), so a
    zero-initialised network starts with distinct components) and K log-scales (softly
    bounded by 7, offset to unit-variance components at zero output). A class with a config
    so that the flow saves to a `.keras` file.
    """

    def __init__(self, conditioner: Callable, num_components: int = 5, kind: str = "gaussian",
                 loc_spread: float = 1.5, num_iterations: int | None = None) -> None:
        self.conditioner = conditioner
        self.num_components = int(num_components)
        self.kind = check_kind(kind)
        self.loc_spread = float(loc_spread)
        self.num_iterations = num_iterations
        if self.num_components < 1:
            raise ValueError(f"num_components must be >= 1; got {num_components}.")

    def __call__(self, x0, output_units, **condition_kwargs):
        raw = coupling_outputs(self.conditioner, x0, output_units, 3 * self.num_components,
                               **condition_kwargs)
        logits, locs, log_scales = split_mixture_outputs(
            raw, self.num_components, loc_spread=self.loc_spread,
            log_scale_offset=UNIT_VARIANCE_LOG_SCALE[self.kind])
        return MixtureCDF(logits, locs, log_scales, kind=self.kind,
                          num_iterations=self.num_iterations)

    def get_config(self):
        return {"conditioner": self.conditioner, "num_components": self.num_components,
                "kind": self.kind, "loc_spread": self.loc_spread,
                "num_iterations": self.num_iterations}


def cdf_flow_distribution(cdf: tfb.Bijector, event_size: int,
                          dtype: DTypeLike = "float32") -> tfd.Distribution:
    """The density on R^event_size whose data -> base map is `cdf` (onto (0, 1)^D).

    `tfd.TransformedDistribution(Uniform(0, 1)^D, ClosedFormLogProbInvert(cdf))`:
    log_prob(x) = log Uniform(cdf(x)) + log|det d cdf/dx| = the log-det, in closed form (no
    bisection); sampling pushes uniform draws through cdf's inverse (bisection). For an
    elementwise `MixtureCDF`, log p(x) = sum_i log f_i(x_i). `cdf` may be a composite (a
    `tfb.Chain` of `MixtureCDF`s in `tfb.Blockwise` and couplings, as in the zoo's cdf2d).
    """
    d = int(event_size)
    base = tfd.Independent(tfd.Uniform(low=tf.zeros([d], dtype), high=tf.ones([d], dtype)),
                           reinterpreted_batch_ndims=1)
    return tfd.TransformedDistribution(base, ClosedFormLogProbInvert(cdf))
