"""Dequantization: a continuous flow as a model of discrete data (Flow++, Ho et al. 2019, §3.1).

Data with L levels per dimension, k ∈ {0, …, L−1}^D (pixel values; the digits have L = 17),
has a probability mass function, not a density. A continuous density p on the scaled cube
(a flow over v ∈ [0, 1]^D) defines one: the mass of the cell of k,

    P(k) = ∫_{v ∈ [k/L, (k+1)/L)} p(v) dv = ∫_{[0,1)^D} p((k + u)/L) L^{-D} du

(change of variables v = (k + u)/L, dv = L^{-D} du). For any density q(u | k) on [0, 1)^D,
Jensen's inequality gives the dequantization lower bound

    log P(k) ≥ E_{u ~ q(·|k)} [ log p((k + u)/L) − D log L − log q(u | k) ],

with equality iff q(u | k) ∝ p((k + u)/L) on the cell. `DequantizedDistribution.log_prob(k)`
returns a single-sample estimate of this bound (fresh u at every call, so at every training
step), so `FlowModel.fit()` maximises it and its NLL is an upper bound of −log P(k) in
expectation; the bits/dim of the discrete data are −bound / (D ln 2) (`FlowModel(...,
bits_per_dim=True)` reports exactly that).

* `UniformDequantizer`: q = U[0, 1)^D, log q = 0 (Theis et al. 2016; "uniform
  dequantization"). The bound is then log p(v) − D log L, i.e. the continuous NLL in nats
  plus D log L, in bits/dim the continuous bits/dim + log2 L.
* `VariationalDequantizer`: u = sigmoid(f(ε; k)), ε ~ N(0, I), f a conditional flow (an IAF:
  inverted MAF layers whose MADEs take the context k/(L−1) − 1/2), so
  log q(u | k) = log N(ε) − log|det ∂f/∂ε| − Σ log σ'(f(ε; k)). Its networks are Keras 3
  layers inside the distribution, found and trained by `FlowModel.fit()` jointly with p
  (Flow++'s variational dequantization). It can only tighten the bound relative to a q it
  can represent; the gap log P(k) − bound is KL(q(·|k) ‖ p(·|k, cell)).

Noise is drawn with stateless ops from (seed, counter), the counter a non-trainable int64
tf.Variable advanced at every `log_prob` call (saved with the weights), so training runs are
reproducible and the draws work under XLA (`jit_compile=True`). Samples are discrete:
`sample()` draws v from p and returns floor(L v) clipped to {0, …, L−1} (the mass of p
outside [0, 1)^D, small for the zoo's recipes, which map into the unit interval, is moved
to the nearest level).

Data: integer-valued arrays (any numeric dtype) with every entry in {0, …, L−1};
`FlowModel` calls `check_data` before fit/evaluate/predict/log_prob, which raises
`FlowDataError` naming the rows with non-integer, out-of-range or non-finite entries.

Serving: an exported model (`tfp_flows.export`) cannot rely on that host-side check, nor
answer the same request with different numbers. Its `log_prob` runs `check_data_in_graph`
(the same three checks as graph assertions, one line each) and is traced inside
`fixed_noise(K)`, where `log_prob` is `fixed_noise_log_prob(k, K)`: the importance-weighted
bound over K fixed noise draws shared by all rows: deterministic, and a lower bound of
log P(k) whose expectation over the draws is the training bound for K = 1 and rises towards
log P(k) as K grows (Burda et al. 2016). `tfp_flows.export` uses K = 8 unless told.
"""

import contextlib
import math
import threading

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import parameter_properties

from tfp_flows import conditioning
from tfp_flows.data_checks import FlowDataError
from tfp_flows.serialization import register_serializable

tfd, tfb = tfp.distributions, tfp.bijectors


def check_discrete_data(x, num_levels, what="x"):
    """x as a float NumPy array after checking every entry is an integer in [0, num_levels).

    Raises `FlowDataError` naming up to ten offending rows (first axis) and what is wrong.
    """
    if isinstance(x, tf.Tensor):
        x = x.numpy()
    x = np.asarray(x)
    if x.dtype == object or x.dtype.kind not in "biuf":
        raise FlowDataError(f"{what} holds non-numeric values (dtype {x.dtype}); a dequantized "
                            f"flow takes integer levels 0..{num_levels - 1}.")
    values = x.astype(np.float64).reshape(len(x), -1) if x.ndim else x.reshape(1, 1)
    problems = (("non-finite", ~np.isfinite(values)),
                ("non-integer", np.isfinite(values) & (values != np.round(values))),
                (f"out-of-range (not in 0..{num_levels - 1})",
                 np.isfinite(values) & ((values < 0) | (values > num_levels - 1))))
    for kind, bad in problems:
        rows = np.flatnonzero(bad.any(axis=1))
        if len(rows):
            shown = ", ".join(str(r) for r in rows[:10])
            more = f", ... ({len(rows)} rows in all)" if len(rows) > 10 else ""
            example = float(values[rows[0]][bad[rows[0]]][0])
            raise FlowDataError(
                f"{what} has {kind} values in rows [{shown}{more}] (e.g. {example!r}); this "
                f"model dequantizes discrete data and takes integer levels 0..{num_levels - 1} "
                f"(e.g. the digits' pixel values 0..16 for 17 levels), not data already "
                f"scaled to [0, 1].")
    return x if x.dtype.kind == "f" else x.astype(np.float32)


_FIXED_NOISE = threading.local()
FIXED_NOISE_STREAM = -1
"""The stateless seed of fixed noise is (seed, FIXED_NOISE_STREAM); training uses (seed, n),
n = 1, 2, ..., so fixed draws never repeat a training step's."""


@contextlib.contextmanager
def fixed_noise(num_draws: int = 8):
    """Inside this block (at trace time), `DequantizedDistribution.log_prob` returns
    `fixed_noise_log_prob(k, num_draws)`: deterministic, no noise counter advanced.

    A SavedModel's `log_prob` is traced in it (`tfp_flows.export`), so equal requests get
    equal answers. Per thread; has no effect on other distributions.
    """
    previous = getattr(_FIXED_NOISE, "draws", None)
    _FIXED_NOISE.draws = int(num_draws)
    try:
        yield
    finally:
        _FIXED_NOISE.draws = previous


@register_serializable(name="tfp_flows.UniformDequantizer")
class UniformDequantizer(tf.Module):
    """q(u | k) = U[0, 1)^D: u drawn uniformly, log q = 0."""

    def __init__(self, name="uniform_dequantizer"):
        super().__init__(name=name)

    def noise(self, k, num_levels, event_ndims, seed):
        """(u of k's shape, log q(u | k) over k's batch shape) from a stateless seed."""
        return self.transform(k, self.base_noise(tf.shape(k), seed, k.dtype), num_levels,
                              event_ndims)

    def base_noise(self, shape, seed, dtype):
        """The noise that `transform` maps to u: U[0, 1) of `shape`."""
        return tf.random.stateless_uniform(shape, seed, dtype=dtype)

    def transform(self, k, base, num_levels, event_ndims):
        """(u, log q(u | k)) from base noise `base` (broadcast to k's shape): u = base."""
        del num_levels
        u = tf.broadcast_to(tf.cast(base, k.dtype), tf.shape(k))
        return u, tf.zeros(tf.shape(k)[: tf.rank(k) - event_ndims], k.dtype)

    def get_config(self):
        return {"name": self.name}


@register_serializable(name="tfp_flows.VariationalDequantizer")
class VariationalDequantizer(tf.Module):
    """q(u | k): u = sigmoid(f(ε; k)), ε ~ N(0, I_D), f a conditional flow (module docstring).

    Args:
      noise_flow: a bijector over vectors [D] whose conditional parts take the context
        c = k/(L−1) − 1/2 (flattened, size D) as `conditional_input`; see `trainable`.
      event_size: D, the number of entries of one data point.
      name: module name.
    """

    def __init__(self, noise_flow, event_size, name="variational_dequantizer"):
        super().__init__(name=name)
        self.noise_flow = noise_flow
        self.event_size = int(event_size)

    @classmethod
    def trainable(cls, event_size, *, num_layers=2, hidden_units=(64,), activation="relu",
                  dtype="float32", seed=None, name="variational_dequantizer"):
        """An IAF noise flow (inverted MAF layers, MADE conditioners with a context of size
        D, reversed order between layers), the identity at initialisation."""
        from tfp_flows.models.building_blocks import interleave
        from tfp_flows.models.maf import maf_layers

        event_size = int(event_size)
        layers = [tfb.Invert(maf, name=f"dequantizer_iaf_{i}") for i, maf in
                  enumerate(maf_layers(event_size, num_layers, tuple(hidden_units), activation,
                                       dtype, seed, context_size=event_size))]
        flow = tfb.Chain(interleave(layers, event_size, "reverse", seed)[::-1],
                         name="dequantizer_flow")
        return cls(flow, event_size, name=name)

    def noise(self, k, num_levels, event_ndims, seed):
        """(u of k's shape, log q(u | k) over k's batch shape) from a stateless seed."""
        # Drawn as [N, D], as the noise of every earlier version was: same seed, same u.
        eps = self.base_noise(tf.shape(tf.reshape(k, [-1, self.event_size])), seed, k.dtype)
        return self.transform(k, tf.reshape(eps, tf.shape(k)), num_levels, event_ndims)

    def base_noise(self, shape, seed, dtype):
        """The noise ε that `transform` maps to u: N(0, I) of `shape`."""
        return tf.random.stateless_normal(shape, seed, dtype=dtype)

    def transform(self, k, base, num_levels, event_ndims):
        """(u, log q(u | k)) from ε = `base` (broadcast to k's shape): u = sigmoid(f(ε; k))."""
        shape = tf.shape(k)
        flat = tf.reshape(k, [-1, self.event_size])
        context = flat / tf.cast(max(num_levels - 1, 1), k.dtype) - 0.5
        eps = tf.reshape(tf.broadcast_to(tf.cast(base, k.dtype), shape), [-1, self.event_size])
        kwargs = conditioning.context_kwargs(self.noise_flow, context)
        y = self.noise_flow.forward(eps, **kwargs)
        log_det = self.noise_flow.forward_log_det_jacobian(eps, event_ndims=1, **kwargs)
        log_normal = -0.5 * tf.reduce_sum(tf.square(eps), -1) \
            - 0.5 * self.event_size * math.log(2.0 * math.pi)
        # log σ'(y) = log σ(y) + log σ(−y) = −softplus(−y) − softplus(y)
        log_sigmoid_slope = -tf.reduce_sum(tf.nn.softplus(-y) + tf.nn.softplus(y), -1)
        log_q = log_normal - log_det - log_sigmoid_slope
        u = tf.reshape(tf.sigmoid(y), shape)
        return u, tf.reshape(log_q, shape[: tf.rank(k) - event_ndims])

    def get_config(self):
        return {"noise_flow": self.noise_flow, "event_size": self.event_size,
                "name": self.name}


@register_serializable(name="tfp_flows.DequantizedDistribution")
class DequantizedDistribution(tfd.Distribution):
    """A distribution over integer levels k ∈ {0..L−1}^D from a continuous density on [0, 1]^D.

    log_prob(k) = log p((k + u)/L) − D log L − log q(u | k), u ~ q(·|k) drawn fresh at each
    call: a single-sample estimate of a lower bound of log P(k), P(k) the mass p gives to the
    cell of k (see the module docstring for the derivation). sample() returns floor(L v),
    v ~ p, clipped to the levels.

    Args:
      distribution: p, the continuous distribution of v = (k + u)/L (e.g. a flow whose last
        bijector maps into the unit interval).
      num_levels: L.
      dequantizer: `UniformDequantizer()` (None, the default) or a `VariationalDequantizer`.
      seed: int; the noise at the n-th call of log_prob comes from the stateless seed
        (seed, n).
      validate_args: also check inside log_prob that k holds valid levels (graph
        assertions; `FlowModel` already checks arrays on the host before anything runs).
      name: name of the distribution.
    """

    def __init__(self, distribution, num_levels, dequantizer=None, seed=0,
                 validate_args=False, name="dequantized"):
        parameters = dict(locals())
        if int(num_levels) != num_levels or int(num_levels) < 2:
            raise ValueError(f"num_levels must be an integer >= 2; got {num_levels!r}.")
        if not tf.TensorShape(distribution.event_shape).is_fully_defined():
            raise ValueError("DequantizedDistribution needs a distribution with a fully "
                             f"defined event shape; got {distribution.event_shape}.")
        self._distribution = distribution
        self._num_levels = int(num_levels)
        self._dequantizer = UniformDequantizer() if dequantizer is None else dequantizer
        self._seed = int(seed)
        self._noise_draws = tf.Variable(0, dtype=tf.int64, trainable=False, name="noise_draws")
        with tf.name_scope(name) as name:
            super().__init__(dtype=distribution.dtype,
                             reparameterization_type=tfd.NOT_REPARAMETERIZED,
                             validate_args=validate_args, allow_nan_stats=True,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(distribution=parameter_properties.BatchedComponentProperties())

    @property
    def distribution(self):
        """p, the continuous distribution of v = (k + u)/L."""
        return self._distribution

    @property
    def num_levels(self):
        return self._num_levels

    @property
    def dequantizer(self):
        return self._dequantizer

    @property
    def seed(self):
        return self._seed

    @property
    def event_size(self):
        return int(tf.TensorShape(self._distribution.event_shape).num_elements())

    def _event_shape(self):
        return self._distribution.event_shape

    def _event_shape_tensor(self):
        return self._distribution.event_shape_tensor()

    def _batch_shape(self):
        return self._distribution.batch_shape

    def _batch_shape_tensor(self):
        return self._distribution.batch_shape_tensor()

    def check_data(self, x, what="x"):
        """Host-side check used by `FlowModel`: integer levels in range (else FlowDataError)."""
        return check_discrete_data(x, self._num_levels, what)

    def check_data_in_graph(self, k, what="x"):
        """k after in-graph checks that it holds finite integer levels 0..L-1 (for served
        requests, which `check_data` does not see); a failure raises InvalidArgumentError
        with one line saying what is wrong, e.g. that the data look scaled to [0, 1]."""
        k = tf.convert_to_tensor(k, self.dtype)
        top = self._num_levels - 1
        flat = tf.reshape(k, [-1])
        finite = tf.math.is_finite(flat)
        safe = tf.where(finite, flat, tf.zeros_like(flat))
        expected = f"{what} must hold integer levels 0..{top}"
        checks = [
            (finite, f"{expected}; got non-finite values (NaN or Inf), e.g."),
            (tf.equal(safe, tf.round(safe)),
             f"{expected}; got non-integer values — did you scale the data to [0, 1]? Send "
             f"the levels themselves (e.g. pixel values 0..{top}). First such value:"),
            (tf.logical_and(safe >= 0, safe <= top),
             f"{expected}; got values outside 0..{top}, e.g.")]
        for ok, message in checks:
            bad = tf.boolean_mask(flat, tf.logical_not(ok))[:1]
            with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(ok),
                                                              [message, bad])]):
                flat = tf.identity(flat)
        return tf.reshape(flat, tf.shape(k))

    def fixed_noise_log_prob(self, k, num_draws=8):
        """A deterministic estimate of log P(k): the importance-weighted bound over K =
        `num_draws` fixed noise draws u_1..u_K (Burda et al. 2016),

            log (1/K) Σ_j exp(log p((k + u_j)/L) − D log L − log q(u_j | k)),

        a lower bound of log P(k) whose expectation over the draws is at least the training
        bound (the K = 1 case, what `log_prob` returns in training) and rises to log P(k) as
        K grows. The base noise (U[0, 1)^D, or the variational dequantizer's ε) comes from
        the stateless seed (seed, FIXED_NOISE_STREAM) and is shared by every row, so a row's
        value depends on that row alone (not on its batch or position). Dequantizers without
        `base_noise`/`transform` draw per position from the same fixed seed instead.
        """
        k = tf.convert_to_tensor(k, self.dtype)
        num_draws = int(num_draws)
        event_shape = tf.TensorShape(self._distribution.event_shape)
        event_ndims = event_shape.rank
        seed = tf.constant([self._seed, FIXED_NOISE_STREAM], tf.int64)
        tiled = tf.broadcast_to(k[tf.newaxis], tf.concat([[num_draws], tf.shape(k)], 0))
        if hasattr(self._dequantizer, "base_noise") and hasattr(self._dequantizer, "transform"):
            base = self._dequantizer.base_noise([num_draws, *event_shape.as_list()], seed,
                                                k.dtype)
            batch_ndims = tf.rank(k) - event_ndims
            base = tf.reshape(base, tf.concat([[num_draws], tf.ones([batch_ndims], tf.int32),
                                               event_shape.as_list()], 0))
            u, log_q = self._dequantizer.transform(tiled, base, self._num_levels, event_ndims)
        else:
            u, log_q = self._dequantizer.noise(tiled, self._num_levels, event_ndims, seed)
        v = (tiled + u) / tf.cast(self._num_levels, k.dtype)
        # One batch axis for p (image bijectors take [batch, H, W, C]), then back.
        batch_shape = tf.shape(log_q)
        log_p = self._distribution.log_prob(
            tf.reshape(v, tf.concat([[-1], event_shape.as_list()], 0)))
        log_cell_volume = tf.cast(self.event_size * math.log(self._num_levels), k.dtype)
        bounds = tf.reshape(log_p, batch_shape) - log_cell_volume - log_q
        return tf.reduce_logsumexp(bounds, axis=0) - tf.cast(math.log(num_draws), k.dtype)

    def _next_noise_seed(self):
        count = self._noise_draws.assign_add(1)
        return tf.stack([tf.constant(self._seed, tf.int64), count])

    def dequantize(self, k):
        """(v = (k + u)/L, log q(u | k)) with fresh noise u ~ q(·|k)."""
        k = tf.convert_to_tensor(k, self.dtype)
        if self.validate_args:
            levels = tf.cast(self._num_levels - 1, k.dtype)
            with tf.control_dependencies([
                    tf.debugging.assert_equal(k, tf.round(k),
                                              message="data must hold integer levels"),
                    tf.debugging.assert_non_negative(k, message="levels must be >= 0"),
                    tf.debugging.assert_less_equal(k, levels, message="levels too large")]):
                k = tf.identity(k)
        event_ndims = tf.TensorShape(self._distribution.event_shape).rank
        u, log_q = self._dequantizer.noise(k, self._num_levels, event_ndims,
                                           self._next_noise_seed())
        return (k + u) / tf.cast(self._num_levels, k.dtype), log_q

    def _log_prob(self, k):
        draws = getattr(_FIXED_NOISE, "draws", None)
        if draws is not None:  # inside fixed_noise(): deterministic, for serving
            return self.fixed_noise_log_prob(k, draws)
        v, log_q = self.dequantize(k)
        log_cell_volume = self.event_size * math.log(self._num_levels)
        return self._distribution.log_prob(v) - tf.cast(log_cell_volume, v.dtype) - log_q

    def _sample_n(self, n, seed=None):
        v = self._distribution.sample(n, seed=seed)
        levels = tf.floor(v * tf.cast(self._num_levels, v.dtype))
        return tf.clip_by_value(levels, 0.0, tf.cast(self._num_levels - 1, v.dtype))

    def reconstruct(self, k):
        """k -> the latent of the cell centre (k + 1/2)/L -> back to levels: the round trip of
        the continuous flow (a `TransformedDistribution`), as discrete levels."""
        bijector = self._distribution.bijector
        v = (tf.convert_to_tensor(k, self.dtype) + 0.5) / self._num_levels
        back = bijector.forward(tf.identity(bijector.inverse(v)))
        return tf.clip_by_value(tf.floor(back * self._num_levels), 0.0, self._num_levels - 1.0)

