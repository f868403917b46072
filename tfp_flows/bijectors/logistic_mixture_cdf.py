"""Flow++'s logistic-mixture CDF coupling transformer (Ho et al. 2019, eq. 7), and a coupling
layer built from it with a Keras 3 conditioner.

Ho, Chen, Srinivas, Duan & Abbeel (2019), "Flow++: Improving flow-based generative models
with variational dequantization and architecture design", ICML, section 3.2. Elementwise,
with K logistic components (weights pi = softmax(logits), locations mu, scales
s = exp(log_scales)):

    y = exp(a) * sigmoid^{-1}(MixLogCDF(x; pi, mu, s)) + b,
    MixLogCDF(x) = F(x) = sum_k pi_k sigmoid((x - mu_k) / s_k).

Log-det (closed form; l = logit F(x), f the mixture pdf):

    log dy/dx = log f(x) - log(sigmoid(l) (1 - sigmoid(l))) + a
              = log f(x) - log F(x) - log(1 - F(x)) + a,

computed from the logsumexp forms of `mixture_cdf_math.mixture_log_cdf_sf_pdf`, so l and
the log-det are finite and accurate for every finite x (F never rounds to 0 or 1).

Inverse: u = (y - b) exp(-a), then x = l^{-1}(u) by bisection (`solve_logit_cdf`): a fixed
number of halvings (60 in float32, 100 in float64 by default; `num_iterations`) of the
bracket [min_k(mu_k + s_k u), max_k(mu_k + s_k u)], which always contains the root; the
returned midpoint is within W 2^-(N+1) of the root (W the bracket width) or at the
floating-point resolution. Measured round trips: see tests/bijectors/test_logistic_mixture_cdf.py.
Inverse gradients are the implicit-function ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
    check_num_components,
    coupling_outputs,
    mixture_log_cdf_sf_pdf,
    solve_logit_cdf,
    split_mixture_outputs,
)
from tfp_flows.serialization import register_serializable
from tfp_flows.types import DTypeLike, Seed, TensorLike

tfb = tfp.bijectors


class LogisticMixtureCDFTransformer(tfb.Bijector):
    """y = exp(a) logit(MixLogCDF(x)) + b, elementwise (Flow++; see the module docstring).

    Args:
      logits: float tensor [..., K], unnormalised log mixture weights.
      locs: float tensor [..., K], component locations mu_k.
      log_scales: float tensor [..., K], component log-scales log s_k.
      a: float tensor [...], log of the output scale (default 0).
      b: float tensor [...], output shift (default 0).
      num_iterations: bisection steps of the inverse; default 60 (float32) / 100 (float64).
      validate_args: check that the parameters are finite.
      name: name scope.

    The parameters broadcast against x: x [...] meets the mixture parameters [..., K]
    through x[..., None]; the batch shape is the broadcast of logits/locs/log_scales
    without their K axis and a, b. Network outputs of shape [batch, d, K] and [batch, d]
    give a per-example, per-coordinate transformer (as in a coupling's `bijector_fn`).

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) |logits| <= 5, |locs| <= 5, log_scales in [-3,
    2], |a| <= 3, |b| <= 5, K <= 4 and |x| <= 20. Domain: all of R; non-finite parameters raise
    under validate_args.
    """

    def __init__(self, logits: TensorLike, locs: TensorLike, log_scales: TensorLike,
                 a: TensorLike = 0.0, b: TensorLike = 0.0, num_iterations: int | None = None,
                 validate_args: bool = False,
                 name: str = "logistic_mixture_cdf_transformer") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([logits, locs, log_scales, a, b],
                                            dtype_hint=tf.float32)
            convert = tensor_util.convert_nonref_to_tensor
            self._logits = convert(logits, dtype=dtype, name="logits")
            self._locs = convert(locs, dtype=dtype, name="locs")
            self._log_scales = convert(log_scales, dtype=dtype, name="log_scales")
            self._a = convert(a, dtype=dtype, name="a")
            self._b = convert(b, dtype=dtype, name="b")
            check_num_components(type(self).__name__,
                                  [self._logits, self._locs, self._log_scales])
            self._num_iterations = num_iterations
            super().__init__(forward_min_event_ndims=0, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    @classmethod
    def trainable(cls, event_size: int, *, num_components: int = 4, seed: Seed = None,
                  dtype: DTypeLike = tf.float32, loc_spread: float = 1.0,
                  validate_args: bool = False,
                  name: str = "logistic_mixture_cdf_transformer") -> LogisticMixtureCDFTransformer:
        """An elementwise transformer over R^event_size owning fresh variables.

        Starts with equal weights, unit scales, a = b = 0 and locations
        loc_spread * linspace(-1, 1, K) plus 0.1 N(0, 1) jitter drawn from `seed`, so the
        components differ (identical ones would stay identical under training).
        """
        dtype = tf.as_dtype(dtype)
        d, k = int(event_size), int(num_components)
        seed = [0, 0] if seed is None else [0, int(seed)]
        spread = tf.linspace(tf.constant(-loc_spread, dtype), tf.constant(loc_spread, dtype), k)
        jitter = 0.1 * tf.random.stateless_normal([d, k], seed=seed, dtype=dtype)
        return cls(tf.Variable(tf.zeros([d, k], dtype), name="logits"),
                   tf.Variable(spread + jitter, name="locs"),
                   tf.Variable(tf.zeros([d, k], dtype), name="log_scales"),
                   tf.Variable(tf.zeros([d], dtype), name="a"),
                   tf.Variable(tf.zeros([d], dtype), name="b"),
                   validate_args=validate_args, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {
            "logits": parameter_properties.ParameterProperties(event_ndims=1),
            "locs": parameter_properties.ParameterProperties(event_ndims=1),
            "log_scales": parameter_properties.ParameterProperties(event_ndims=1),
            "a": parameter_properties.ParameterProperties(),
            "b": parameter_properties.ParameterProperties(),
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
    def a(self):
        return self._a

    @property
    def b(self):
        return self._b

    @property
    def num_iterations(self):
        return self._num_iterations

    def _is_increasing(self):
        return True

    def _mixture(self):
        return (tf.convert_to_tensor(self._logits), tf.convert_to_tensor(self._locs),
                tf.convert_to_tensor(self._log_scales))

    def _forward(self, x):
        log_cdf, log_sf, _ = mixture_log_cdf_sf_pdf(x, *self._mixture(), kind="logistic")
        return tf.exp(tf.convert_to_tensor(self._a)) * (log_cdf - log_sf) + self._b

    def _forward_log_det_jacobian(self, x):
        log_cdf, log_sf, log_pdf = mixture_log_cdf_sf_pdf(x, *self._mixture(), kind="logistic")
        return log_pdf - log_cdf - log_sf + self._a

    def _inverse(self, y):
        u = (y - self._b) * tf.exp(-tf.convert_to_tensor(self._a))
        return solve_logit_cdf(u, *self._mixture(), kind="logistic",
                               num_iterations=self._num_iterations)

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args:
            return []
        assertions = []
        for name in ("logits", "locs", "log_scales", "a", "b"):
            value = getattr(self, f"_{name}")
            if is_init != tensor_util.is_ref(value):
                assertions.append(assert_util.assert_equal(
                    tf.reduce_all(tf.math.is_finite(value)), True,
                    message=f"{type(self).__name__}: argument `{name}` must be finite."))
        return assertions


@register_serializable(name="tfp_flows.bijectors.LogisticMixtureCouplingFn")
class LogisticMixtureCouplingFn:
    """`bijector_fn` for `tfb.RealNVP`: x0 -> `LogisticMixtureCDFTransformer` of x1.

    The conditioner, a `nets.CouplingMLP(shift_only=True)`, outputs 3K + 2 numbers per
    coordinate of x1: K logits, K locations (plus fixed offsets loc_spread linspace(-1, 1, K)),
    K log-scales (softly bounded by 7), a and b (a softly bounded by `log_scale_bound`).
    A class with a config (not a closure) so that the flow saves to a `.keras` file;
    `FlowModel` finds the conditioner through the `conditioner` attribute.
    """

    def __init__(self, conditioner: Callable, num_components: int = 4, loc_spread: float = 1.0,
                 log_scale_bound: float = 5.0, num_iterations: int | None = None) -> None:
        self.conditioner = conditioner
        self.num_components = int(num_components)
        self.loc_spread = float(loc_spread)
        self.log_scale_bound = float(log_scale_bound)
        self.num_iterations = num_iterations
        if self.num_components < 1:
            raise ValueError(f"num_components must be >= 1; got {num_components}.")

    def __call__(self, x0, output_units, **condition_kwargs):
        raw = coupling_outputs(self.conditioner, x0, output_units, 3 * self.num_components + 2,
                               **condition_kwargs)
        logits, locs, log_scales, a, b = split_mixture_outputs(
            raw, self.num_components, num_extra=2, loc_spread=self.loc_spread)
        bound = self.log_scale_bound
        return LogisticMixtureCDFTransformer(logits, locs, log_scales, bound * tf.tanh(a / bound),
                                             b, num_iterations=self.num_iterations)

    def get_config(self):
        return {"conditioner": self.conditioner, "num_components": self.num_components,
                "loc_spread": self.loc_spread, "log_scale_bound": self.log_scale_bound,
                "num_iterations": self.num_iterations}


def logistic_mixture_coupling(num_masked: int, *, num_components: int = 4,
                              hidden_units: Sequence[int] = (64, 64),
                              activation: str | Callable = "relu", context_size: int | None = None,
                              density_direction: bool = True,
                              kernel_initializer: str | Callable = "glorot_uniform",
                              loc_spread: float = 1.0, num_iterations: int | None = None,
                              dtype: DTypeLike = "float32",
                              name: str = "logistic_mixture_coupling") -> tfb.Bijector:
    """A Flow++ coupling layer: TFP's `tfb.RealNVP` with a logistic-mixture CDF transformer.

    The first `num_masked` coordinates x0 pass unchanged; each of the others is transformed
    by `LogisticMixtureCDFTransformer` with parameters from a `nets.CouplingMLP` of x0
    (zero-initialised output layer, `context_size` for conditional flows).

    density_direction: True (default) returns `ClosedFormLogProbInvert(RealNVP(...))`: its
      inverse, the direction `TransformedDistribution.log_prob` takes from data to base, is
      the closed-form transformer, its log-det is the closed-form one (never bisects in
      log_prob, see `ClosedFormLogProbInvert`), and sampling bisects (Flow++'s
      data -> noise orientation: train by maximum likelihood). False returns the `RealNVP`
      itself: sampling and `experimental_sample_and_log_prob` are closed form and `log_prob`
      bisects (variational inference, or a dequantization noise flow).

    Put it in a `tfb.Chain` with permutations between layers, like any RealNVP.
    """
    from tfp_flows import nets

    conditioner = nets.CouplingMLP(hidden_units=hidden_units, activation=activation,
                                   shift_only=True, context_size=context_size,
                                   kernel_initializer=kernel_initializer, dtype=dtype,
                                   name=f"{name}_conditioner")
    coupling = tfb.RealNVP(
        num_masked=int(num_masked),
        bijector_fn=LogisticMixtureCouplingFn(conditioner, num_components, loc_spread,
                                              num_iterations=num_iterations),
        name=name)
    if density_direction:
        return ClosedFormLogProbInvert(coupling, name=f"{name}_inverted")
    return coupling
