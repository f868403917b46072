"""Bernstein-polynomial transformer: a monotone polynomial on an interval with linear tails
(Sick et al. 2020, "Deep transformation models", https://arxiv.org/abs/2004.00464; Arpogaus
et al. 2022, "Short-term density forecasting of low-voltage load using Bernstein-polynomial
normalizing flows", https://arxiv.org/abs/2204.13939; zuko's BPF).

On [-B, B], with u = (x + B) / (2B) in [0, 1] and degree M,

    f(x) = sum_{k=0}^{M} theta_k C(M, k) u^k (1 - u)^(M - k),
    f'(x) = M / (2B) sum_{k=0}^{M-1} (theta_{k+1} - theta_k) C(M-1, k) u^k (1 - u)^(M-1-k),

strictly increasing when theta_0 < theta_1 < ... < theta_M (`from_raw` builds them as a
start plus a cumulative sum of softplus increments). Outside [-B, B], f continues linearly
with its end slopes f'(+-B) = M (theta_M - theta_{M-1}) / (2B) and M (theta_1 - theta_0) /
(2B), so f is a C^1 bijection of R. Both f and f' are evaluated by de Casteljau's
recursion (stable, no powers of u). log|f'(x)| is the log-det in closed form.
The coefficients theta_k = -B + 2B k / M give f(x) = x (Bernstein polynomials reproduce
linear functions): `from_raw` of zeros is the identity.

Inverse: on the tails in closed form; inside [f(-B), f(B)] by bisection in [-B, B]
(`bisection.bisect_increasing`), then one Newton step from the bisection's result, which
carries the implicit-function gradients (dx/dy = 1 / f', dx/dtheta = -(df/dtheta) / f').
"""

from __future__ import annotations

import math

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import dtype_util, parameter_properties, tensor_util

from tfp_flows.bijectors.bisection import bisect_increasing, default_iterations
from tfp_flows.types import TensorLike

tfb = tfp.bijectors

# The smallest increment theta_{k+1} - theta_k `from_raw` makes, as a share of the identity's.
MIN_INCREMENT_FRACTION = 1e-3


def _de_casteljau(coefficients, u):
    """sum_k c_k C(n, k) u^k (1 - u)^(n - k) for coefficients [..., n + 1], u [...]."""
    beta = coefficients
    u = u[..., None]
    for _ in range(coefficients.shape[-1] - 1):  # n steps, n the static degree
        beta = (1.0 - u) * beta[..., :-1] + u * beta[..., 1:]
    return beta[..., 0]


class Bernstein(tfb.Bijector):
    """Elementwise y = f(x), the Bernstein polynomial with linear tails (module docstring).

    Args:
      coefficients: [..., M + 1] strictly increasing theta_k (M >= 1); leading axes are
        the batch shape (e.g. [batch, D] from a MADE).
      bound: B > 0, the half-width of the polynomial's interval [-B, B].
      num_iterations: bisection steps of the inverse (default 60 in float32, 100 in float64).
      validate_args: check that the coefficients increase.
      name: name scope.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) `from_raw` of raw numbers
    in [-3, 3], M <= 8, B in [1, 10] and |x| <= 20 (both tails included).
    """

    def __init__(self, coefficients: TensorLike, bound: float = 4.0, *,
                 num_iterations: int | None = None, validate_args: bool = False,
                 name: str = "bernstein") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([coefficients], dtype_hint=tf.float32)
            self._coefficients = tensor_util.convert_nonref_to_tensor(
                coefficients, dtype=dtype, name="coefficients")
            degree = tf.compat.dimension_value(self._coefficients.shape[-1])
            if degree is None or degree < 2:
                raise ValueError(f"Bernstein: coefficients must be [..., M + 1] with M >= 1 "
                                 f"known statically; got shape {self._coefficients.shape}.")
            if not float(bound) > 0:
                raise ValueError(f"Bernstein: bound must be positive; got {bound!r}.")
            self._bound = float(bound)
            self._num_iterations = (default_iterations(dtype) if num_iterations is None
                                    else int(num_iterations))
            super().__init__(forward_min_event_ndims=0, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    @classmethod
    def from_raw(cls, raw: TensorLike, bound: float = 4.0, **kwargs) -> Bernstein:
        """A Bernstein transformer from unconstrained [..., M + 1] numbers: theta_0 = -B +
        raw_0, theta_k = theta_{k-1} + softplus(raw_k + c) (c: the identity's increment
        2B / M at raw 0, plus a floor). All zeros give the identity."""
        raw = tf.convert_to_tensor(raw)
        m = raw.shape[-1] - 1
        if m < 1:
            raise ValueError(f"Bernstein.from_raw needs M + 1 >= 2 numbers on the last axis; "
                             f"got shape {raw.shape}.")
        step = 2.0 * bound / m
        floor = MIN_INCREMENT_FRACTION * step
        offset = math.log(math.expm1(step - floor))
        increments = floor + tf.nn.softplus(raw[..., 1:] + offset)
        start = raw[..., :1] - bound
        theta = tf.concat([start, start + tf.cumsum(increments, axis=-1)], axis=-1)
        return cls(theta, bound, **kwargs)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {"coefficients": parameter_properties.ParameterProperties(
            event_ndims=1, default_constraining_bijector_fn=parameter_properties
            .BIJECTOR_NOT_IMPLEMENTED)}

    @property
    def coefficients(self):
        return self._coefficients

    @property
    def bound(self):
        return self._bound

    def _is_increasing(self):
        return True

    def _values(self, x):
        """(f(x), f'(x)), with the linear tails."""
        theta = tf.convert_to_tensor(self.coefficients)
        b = tf.constant(self._bound, theta.dtype)
        m = theta.shape[-1] - 1
        diff = (theta[..., 1:] - theta[..., :-1]) * (m / (2.0 * self._bound))
        u = tf.clip_by_value((x + b) / (2.0 * b), 0.0, 1.0)
        value = _de_casteljau(theta, u)
        slope = _de_casteljau(diff, u)
        low_value, high_value = theta[..., 0], theta[..., -1]
        low_slope, high_slope = diff[..., 0], diff[..., -1]
        value = tf.where(x < -b, low_value + low_slope * (x + b),
                         tf.where(x > b, high_value + high_slope * (x - b), value))
        return value, slope

    def _forward(self, x):
        return self._values(x)[0]

    def _forward_log_det_jacobian(self, x):
        return tf.math.log(self._values(x)[1])

    def _inverse(self, y):
        theta = tf.convert_to_tensor(self.coefficients)
        b = tf.constant(self._bound, theta.dtype)
        low_value, high_value = theta[..., 0], theta[..., -1]
        m = theta.shape[-1] - 1
        low_slope = (theta[..., 1] - theta[..., 0]) * (m / (2.0 * self._bound))
        high_slope = (theta[..., -1] - theta[..., -2]) * (m / (2.0 * self._bound))
        y_const = tf.stop_gradient(y)
        shape = tf.broadcast_dynamic_shape(tf.shape(y), tf.shape(low_value))
        y_b = tf.broadcast_to(y_const, shape)
        frozen = Bernstein(tf.stop_gradient(theta), self._bound)
        inside = bisect_increasing(lambda t: frozen._values(t)[0], y_b,
                                   tf.fill(shape, -b), tf.fill(shape, b),
                                   self._num_iterations)
        x0 = tf.where(y_b < low_value, -b + (y_b - low_value) / low_slope,
                      tf.where(y_b > high_value, b + (y_b - high_value) / high_slope, inside))
        x0 = tf.stop_gradient(x0)
        value, slope = self._values(x0)
        return x0 - (value - y) / slope  # one Newton step: implicit-function gradients

    def _inverse_log_det_jacobian(self, y):
        return -self._forward_log_det_jacobian(self._inverse(y))
