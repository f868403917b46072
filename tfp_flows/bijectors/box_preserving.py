"""BoxPreserving: an increasing transformer rescaled to map [-B, B] onto itself.

The rational-quadratic splines of Durkan, Bekasov, Murray & Papamakarios (2019, "Neural
Spline Flows", NeurIPS, sec. 3.1) map the interval [-B, B] onto itself, with the identity
outside. Stacked in a flow, a point inside the box never leaves it, so its base point lies
within B of the origin in every coordinate and the density cannot fall off a cliff there,
however the layers were trained. Polynomial, sigmoidal and Bernstein transformers have no
such property: a layer may move a point from the edge of the data far out, the next layer
moves it further, and a point a little off the training sample ends hundreds of nats below
the truth. This bijector gives any strictly increasing elementwise transformer T the
spline's property.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import dtype_util, parameter_properties

from tfp_flows.bijectors.bisection import bisect_increasing, default_iterations

tfb = tfp.bijectors


class BoxPreserving(tfb.Bijector):
    """S(x): an increasing elementwise transformer T rescaled to map [-B, B] onto itself.

    Inside the box, with T(-B) = lo and T(B) = hi,

        S(x) = m x + (1 - m) (-B + 2B (T(x) - lo) / (hi - lo)),      |x| <= B,

    so S(-B) = -B and S(B) = B whatever T is; T's own shift and scale cancel. Outside, S is
    continued linearly by its slopes at the bounds, S(x) = B + S'(B) (x - B) for x > B and
    likewise below -B: continuous, strictly increasing, C^1 where T is, with a learnt tail
    slope (heavier or lighter tails than the base) as in the linear tails of a spline.

        log S'(x) = log(m + (1 - m) 2B T'(x) / (hi - lo))     inside, from T's log-det,
                  = log S'(+-B)                                 in the tails.

    The floor m (min_derivative) keeps S' >= m everywhere: in a flow of L such layers in D
    dimensions a point of the box keeps log q >= log N(z) + L D log m with |z_i| <= B.

    Inverse: explicit in the tails; inside, a bisection of S on [-B, B]
    (`bisection.bisect_increasing`), then one Newton step that attaches the gradient of the
    implicit function. It needs only T's forward map, so T may be any strictly increasing
    elementwise bijector (T's own inverse is never called).

    Args:
      transformer: a strictly increasing elementwise `tfb.Bijector` (forward_min_event_ndims
        0), e.g. `SOSPolynomial`, `DeepSigmoidal` or `Bernstein`; its parameters set the
        batch shape.
      bound: B > 0, the half-width of the box (in a standardised flow, standard deviations).
      min_derivative: m in [0, 1).
      num_iterations: bisection steps of the inverse; default 60 (float32), 100 (float64).
      validate_args: check that T maps the box to an interval of positive length.
      name: name scope.

    Domain: all of R. Accurate for (float64; tests/bijectors/test_properties.py: finite, round
    trip within 1e-7, log-det = autodiff within 1e-6) the transformers above with their
    parameters in the ranges their own docstrings state, B in [1, 6] and |x| <= 3 B.
    """

    def __init__(self, transformer: tfb.Bijector, bound: float = 4.0, *,
                 min_derivative: float = 0.0, num_iterations: int | None = None,
                 validate_args: bool = False, name: str = "box_preserving") -> None:
        parameters = dict(locals())
        if not float(bound) > 0:
            raise ValueError(f"BoxPreserving: bound must be > 0; got {bound!r}.")
        if not 0.0 <= float(min_derivative) < 1.0:
            raise ValueError(f"BoxPreserving: min_derivative must be in [0, 1); got "
                             f"{min_derivative!r}.")
        if transformer.forward_min_event_ndims != 0:
            raise ValueError("BoxPreserving needs an elementwise transformer "
                             f"(forward_min_event_ndims 0); got {transformer.name!r} with "
                             f"{transformer.forward_min_event_ndims}.")
        with tf.name_scope(name) as name:
            self._transformer = transformer
            self._bound = float(bound)
            self._min_derivative = float(min_derivative)
            dtype = dtype_util.as_numpy_dtype(transformer.dtype or tf.float32)
            self._num_iterations = int(num_iterations or default_iterations(dtype))
            super().__init__(forward_min_event_ndims=0, validate_args=validate_args,
                             dtype=transformer.dtype, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {"transformer": parameter_properties.BatchedComponentProperties()}

    @property
    def transformer(self) -> tfb.Bijector:
        return self._transformer

    @property
    def bound(self) -> float:
        return self._bound

    @property
    def min_derivative(self) -> float:
        return self._min_derivative

    def _is_increasing(self):
        return True

    # ------------------------------------------------------------------ the map
    def _evaluate(self, x):
        """T and log T' at x (clipped to the box) and at -B and B, in one call each: the
        three points stacked on a new leading axis, which broadcasts against T's parameters."""
        b = tf.constant(self._bound, x.dtype) * tf.ones_like(x)
        points = tf.stack([tf.clip_by_value(x, -b, b), -b, b])
        values = self._transformer.forward(points)
        log_slopes = self._transformer.forward_log_det_jacobian(points, event_ndims=0)
        return tf.unstack(values), tf.unstack(log_slopes)

    def _width(self, lo, hi):
        """T(B) - T(-B), floored: a saturated T (constant on the box in floating point) would
        divide 0 by 0; the floor keeps S finite and increasing (through m) instead of NaN."""
        if self.validate_args:
            hi = tf.debugging.assert_greater(
                hi, lo, message="BoxPreserving: T(B) <= T(-B); the transformer must be "
                                "strictly increasing on [-B, B].")
        tiny = dtype_util.eps(lo.dtype) * (1.0 + tf.abs(lo) + tf.abs(hi))
        return tf.maximum(hi - lo, tiny)

    def _rescale(self, x, t, lo, width):
        """S(x) for |x| <= B from t = T(x)."""
        b, m = self._bound, self._min_derivative
        value = -b + 2.0 * b * (t - lo) / width
        return m * x + (1.0 - m) * value if m else value

    def _rescale_log_slope(self, log_t_slope, width):
        """log S'(x) for |x| <= B from log T'(x)."""
        m = self._min_derivative
        log_slope = log_t_slope + tf.math.log(2.0 * self._bound / width)
        return tf.math.log(m + (1.0 - m) * tf.exp(log_slope)) if m else log_slope

    def _values(self, x):
        """(S(x), log S'(x)) on all of R."""
        b = self._bound
        (t, lo, hi), (log_t, log_lo, log_hi) = self._evaluate(x)
        width = self._width(lo, hi)
        inner = tf.clip_by_value(x, -b, b)  # T is evaluated in the box only
        value = self._rescale(inner, t, lo, width)
        log_slope = self._rescale_log_slope(log_t, width)
        tail_log_slope = self._rescale_log_slope(tf.where(x > b, log_hi, log_lo), width)
        outside = tf.abs(x) > b
        value = value + tf.where(outside, tf.exp(tail_log_slope), 0.0) * (x - inner)
        return value, tf.where(outside, tail_log_slope, log_slope)

    def _forward(self, x):
        return self._values(x)[0]

    def _forward_log_det_jacobian(self, x):
        return self._values(x)[1]

    def _inverse(self, y):
        b = self._bound
        y_const = tf.stop_gradient(y)
        (_, lo, hi), (_, log_lo, log_hi) = self._evaluate(y_const)  # y and T's batch, broadcast
        lo, hi, log_lo, log_hi = (tf.stop_gradient(v) for v in (lo, hi, log_lo, log_hi))
        width = self._width(lo, hi)
        y_b = tf.broadcast_to(y_const, tf.shape(lo))
        inner = tf.clip_by_value(y_b, -b, b)

        def rescaled(x):
            return tf.stop_gradient(self._rescale(x, self._transformer.forward(x), lo, width))

        inside = bisect_increasing(rescaled, inner, -b * tf.ones_like(inner),
                                   b * tf.ones_like(inner), self._num_iterations)
        low = self._rescale_log_slope(log_lo, width)
        high = self._rescale_log_slope(log_hi, width)
        x0 = tf.where(y_b > b, b + (y_b - b) * tf.exp(-high),
                      tf.where(y_b < -b, -b + (y_b + b) * tf.exp(-low), inside))
        x0 = tf.stop_gradient(x0)
        value, log_slope = self._values(x0)
        return x0 - (value - y) * tf.exp(-log_slope)  # one Newton step: implicit gradients

    def _inverse_log_det_jacobian(self, y):
        return -self._forward_log_det_jacobian(self._inverse(y))
