"""DeepSigmoidal: the deep sigmoidal flow (DSF) transformer of neural autoregressive flows."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import (
    assert_util,
    dtype_util,
    parameter_properties,
    tensor_util,
)
from tensorflow_probability.python.internal import (
    prefer_static as ps,
)

from tfp_flows.types import DTypeLike, Seed, TensorLike

tfb = tfp.bijectors

# softplus^{-1}(1): a zero pre-activation gives the slope a_k = 1.
_SOFTPLUS_INV_ONE = float(np.log(np.expm1(1.0)))


def unit_offsets(hidden_size, dtype=np.float32):
    """The fixed offsets beta_k added to the biases: evenly spread over [-1, 1]."""
    if hidden_size == 1:
        return np.zeros([1], dtype)
    return np.linspace(-1.0, 1.0, hidden_size).astype(dtype)


class DeepSigmoidal(tfb.Bijector):
    """Elementwise deep sigmoidal flow (DSF) transformer, strictly increasing R -> R.

    Neural autoregressive flows (Huang, Krueger, Lacoste & Courville 2018, "Neural
    Autoregressive Flows", ICML, arXiv:1804.00779) replace the affine transformer of a MAF
    by a monotone neural network per dimension. The DSF is a one-hidden-layer sigmoidal
    network with K units and positive weights:

        y = logit( sum_k w_k * sigmoid(a_k * x + b_k) ),
        a_k = softplus(pa_k + softplus^{-1}(1)) > 0,     (pa_k = 0 gives a_k = 1)
        b_k = pb_k + beta_k,                             (beta_k fixed, spread over [-1, 1])
        w   = softmax(pw)                                (w_k > 0, sum_k w_k = 1)

    from unconstrained per-dimension parameters `unnormalized_params` [..., 3K], read as
    (pa, pb, pw) = split(params, 3). Because the inner sum is a convex combination of
    sigmoids in (0, 1), logit of it covers R and y is a strictly increasing bijection.
    The fixed offsets beta_k make the K units differ when the parameters are all zero (a
    zero-initialised conditioner would otherwise give K identical units whose gradients
    never separate); zero parameters then give a map close to the identity (slope 1 in
    the tails and about 0.9 at 0 for K = 8).

    Log-space evaluation (stable for any x; no sigmoid is ever evaluated as 1 - s):
    with z_k = a_k x + b_k, log w = log_softmax(pw) and using 1 - s = sum_k w_k sigmoid(-z_k),

        log s       = logsumexp_k(log w_k + log sigmoid(z_k))
        log(1 - s)  = logsumexp_k(log w_k + log sigmoid(-z_k))
        y           = log s - log(1 - s)
        log dy/dx   = logsumexp_k(log w_k + log a_k + log sigmoid(z_k) + log sigmoid(-z_k))
                      - log s - log(1 - s)

    (dy/dx = s'/(s(1-s)) and s' = sum_k w_k a_k sigmoid(z_k) sigmoid(-z_k).)

    Inverse: a safeguarded Newton iteration in a `tf.while_loop`, inside the exact bracket
    lo = min_k (y - b_k) / a_k, hi = max_k (y - b_k) / a_k (logit s lies between the
    smallest and the largest z_k, so the root lies in [lo, hi]). Each step shrinks the
    bracket to the sign change and takes the Newton step when it stays inside the bracket
    and at least halves the step before last, and bisects otherwise (Numerical Recipes'
    `rtsafe`), so it converges for every y, quadratically near the root. It stops when
    every element's last step is below `tolerance * (1 + |x|)` (default 1e-6 in float32,
    1e-12 in float64) or after `max_iterations` steps (default 100; bisection alone would
    shrink the bracket by 2^-100).
    The result carries implicit-function gradients (dx/dtheta = -(df/dtheta) / f'(x)), so
    gradients flow through the inverse without differentiating the loop.

    Used inside `tfb.MaskedAutoregressiveFlow(bijector_fn=...)` with a `nets.MADE`
    producing [..., D, 3K] parameters, it gives a NAF; `models.build_naf` puts
    `tfb.Invert(DeepSigmoidal(...))` there so that density evaluation (data -> noise) uses
    the closed-form forward and sampling uses the root finder.

    Args:
      unnormalized_params: float tensor [..., 3K]; the bijector's batch shape is its shape
        without the last axis, and it acts elementwise on x of that (broadcast) shape.
      tolerance: stopping tolerance of the inverse (see above); None for the default.
      max_iterations: maximum number of root-finding steps of the inverse.
      validate_args: check that the parameters are finite (raises `InvalidArgumentError`).
        The last axis is always checked to hold a multiple of 3 values.
      name: name scope.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) |unnormalized_params| <= 5, K <= 4 and |x| <= 10.
    Domain: all of R; non-finite parameters give NaN, or raise under validate_args.
    """

    def __init__(self, unnormalized_params: TensorLike, *, tolerance: float | None = None,
                 max_iterations: int = 100, validate_args: bool = False,
                 name: str = "deep_sigmoidal") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([unnormalized_params], dtype_hint=tf.float32)
            self._unnormalized_params = tensor_util.convert_nonref_to_tensor(
                unnormalized_params, dtype=dtype, name="unnormalized_params")
            num_params = tf.compat.dimension_value(self._unnormalized_params.shape[-1])
            if num_params is None:
                raise ValueError("DeepSigmoidal needs a static last axis (3 * hidden_size) "
                                 "of unnormalized_params.")
            if num_params % 3 or num_params == 0:
                raise ValueError(f"The last axis of unnormalized_params must hold 3 * K "
                                 f"values (slopes, biases, weights of K units); got "
                                 f"{num_params}.")
            self._hidden_size = num_params // 3
            if tolerance is None:
                tolerance = 1e-12 if dtype == tf.float64 else 1e-6
            self._tolerance = float(tolerance)
            self._max_iterations = int(max_iterations)
            super().__init__(forward_min_event_ndims=0, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    @classmethod
    def trainable(cls, event_size: int, *, seed: Seed = None, dtype: DTypeLike = tf.float32,
                  hidden_size: int = 8, init_scale: float = 0.01,
                  **hyperparameters) -> DeepSigmoidal:
        """A DSF owning a `tf.Variable` [event_size, 3 * hidden_size] of parameters.

        The variable starts at init_scale * N(0, 1) (drawn from `seed`), i.e. close to zero
        parameters: a map close to the identity with distinct units.
        """
        shape = [int(event_size), 3 * int(hidden_size)]
        rng = np.random.default_rng(seed)
        init = init_scale * rng.standard_normal(shape)
        params = tf.Variable(tf.constant(init, dtype), name="dsf_params")
        return cls(params, **hyperparameters)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {"unnormalized_params": parameter_properties.ParameterProperties(
            event_ndims=1,
            default_constraining_bijector_fn=parameter_properties.BIJECTOR_NOT_IMPLEMENTED)}

    @property
    def unnormalized_params(self):
        return self._unnormalized_params

    @property
    def hidden_size(self):
        """K, the number of sigmoid units per dimension."""
        return self._hidden_size

    @property
    def tolerance(self):
        return self._tolerance

    @property
    def max_iterations(self):
        return self._max_iterations

    def _is_increasing(self):
        return True

    # ------------------------------------------------------------------ parameters
    def _unit_parameters(self):
        """(log a, a, b, log w), each [..., K]."""
        params = tf.convert_to_tensor(self.unnormalized_params)
        pa, pb, pw = tf.split(params, 3, axis=-1)
        pre_a = pa + tf.constant(_SOFTPLUS_INV_ONE, params.dtype)
        a = tf.math.softplus(pre_a)
        # log softplus(t) ~ t for t << 0, where softplus(t) itself would underflow to 0.
        very_negative = pre_a < -15.0
        safe = tf.where(very_negative, tf.zeros_like(pre_a), pre_a)
        log_a = tf.where(very_negative, pre_a, tf.math.log(tf.math.softplus(safe)))
        b = pb + tf.constant(unit_offsets(self._hidden_size), params.dtype)
        log_w = tf.nn.log_softmax(pw, axis=-1)
        return log_a, a, b, log_w

    def _evaluate(self, x, units):
        """(y, log dy/dx) at x, from the unit parameters; x broadcasts with the batch."""
        log_a, a, b, log_w = units
        z = a * x[..., tf.newaxis] + b
        log_sig, log_sig_neg = tf.math.log_sigmoid(z), tf.math.log_sigmoid(-z)
        log_s = tf.reduce_logsumexp(log_w + log_sig, axis=-1)
        log_1ms = tf.reduce_logsumexp(log_w + log_sig_neg, axis=-1)
        log_ds = tf.reduce_logsumexp(log_w + log_a + log_sig + log_sig_neg, axis=-1)
        return log_s - log_1ms, log_ds - log_s - log_1ms

    # ------------------------------------------------------------------ bijector API
    def _forward(self, x):
        y, _ = self._evaluate(x, self._unit_parameters())
        return y

    def _forward_log_det_jacobian(self, x):
        _, ldj = self._evaluate(x, self._unit_parameters())
        return ldj

    def _inverse(self, y):
        units = self._unit_parameters()
        _, a, b, _ = units
        shape = ps.broadcast_shape(ps.shape(y), ps.shape(b)[:-1])
        y = tf.broadcast_to(y, shape)
        roots = (y[..., tf.newaxis] - b) / a
        lo = tf.stop_gradient(tf.reduce_min(roots, axis=-1))
        hi = tf.stop_gradient(tf.reduce_max(roots, axis=-1))
        stop_units = tuple(tf.stop_gradient(u) for u in units)
        y_stop = tf.stop_gradient(y)
        tol = tf.constant(self._tolerance, y.dtype)

        def body(i, x, lo, hi, dx_old, dx, done):
            fx, log_dfx = self._evaluate(x, stop_units)
            r = fx - y_stop
            lo = tf.where(r < 0, x, lo)
            hi = tf.where(r > 0, x, hi)
            newton = x - r * tf.exp(-log_dfx)
            # rtsafe rule: bisect when Newton leaves the bracket or does not at least halve
            # the step before last (slow progress far from the root).
            use_newton = ((newton > lo) & (newton < hi) & tf.math.is_finite(newton)
                          & (2 * tf.abs(newton - x) <= tf.abs(dx_old)))
            x_new = tf.where(use_newton, newton, 0.5 * (lo + hi))
            x_new = tf.where(done, x, x_new)
            step = tf.abs(x_new - x)
            scale = tol * (1 + tf.abs(x))
            done = done | (step <= scale) | tf.equal(r, 0) | (hi - lo <= scale)
            return i + 1, x_new, lo, hi, dx, step, done

        def cond(i, x, lo, hi, dx_old, dx, done):
            return tf.logical_not(tf.reduce_all(done))

        x0 = 0.5 * (lo + hi)
        width = hi - lo
        _, x, _, _, _, _, _ = tf.while_loop(
            cond, body, (tf.constant(0), x0, lo, hi, width, width, tf.zeros(shape, tf.bool)),
            maximum_iterations=self._max_iterations)
        x = tf.stop_gradient(x)
        # Implicit-function gradients: value x, gradient -(df/dtheta - dy/dtheta) / f'(x).
        fx, log_dfx = self._evaluate(x, units)
        correction = (fx - y) * tf.exp(-tf.stop_gradient(log_dfx))
        return x - (correction - tf.stop_gradient(correction))

    def _inverse_log_det_jacobian(self, y):
        return -self._forward_log_det_jacobian(self._inverse(y))

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args:
            return []
        if is_init == tensor_util.is_ref(self.unnormalized_params):
            return []
        return [assert_util.assert_equal(
            tf.reduce_all(tf.math.is_finite(self.unnormalized_params)), True,
            message="DeepSigmoidal: unnormalized_params must be finite.")]
