"""Bounded: R onto a box (low, high) per coordinate, for bounded or positive data.

Elementwise (`forward_min_event_ndims=0`), each coordinate by the kind of its bounds
(low, high may be -inf / +inf for an open side):

    both finite:  y = low + (high - low) σ(x),  log|dy/dx| = log(high - low) + log σ(x) σ(-x)
    low only:     y = low + exp(x),             log|dy/dx| = x
    high only:    y = high - exp(-x),           log|dy/dx| = -x
    neither:      y = x,                        log|dy/dx| = 0

with inverses x = log(y - low) - log(high - y), log(y - low), -log(high - y), y. A flow put
through it (first in a `tfb.Chain` list, the data end) has its density on the open box and
zero outside: for y outside, `inverse_log_det_jacobian` is -inf (and `inverse` a finite
placeholder), so `log_prob` is -inf there. The sigmoid side is the logit preprocessing of
Dinh et al. (2017, RealNVP) with general bounds; the one-sided map is the log transform of
positive data (a log-normal-style tail). Forward outputs are kept strictly inside the box
(one ulp from a bound at most), so every sample has a finite log_prob.

`check_data(x)` is the host-side check `FlowModel.fit` runs: rows outside the open box
raise `tfp_flows.FlowDataError` naming them. `Bounded.from_bounds(bounds, D)` reads the zoo
builders' `bounds=` option.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import (
    dtype_util,
    parameter_properties,
    tensor_util,
)

from tfp_flows.data_checks import FlowDataError

tfb = tfp.bijectors


def _side(value, infinity):
    return infinity if value is None else float(value)


class Bounded(tfb.Bijector):
    """R -> (low, high) per coordinate; see the module docstring.

    Args:
      low: float tensor of the event's shape (or broadcastable), -inf where unbounded below.
      high: like low, +inf where unbounded above; low < high everywhere.
      validate_args: check low < high.
      name: name of the bijector.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) any mix of the four
    kinds of bounds with |low| <= 10, high - low in [0.1, 100] and |x| <= 15.
    Accuracy (float32): inside the box the round trip is within a few ulps of the
    unconstrained value for |x| <= 15 (both bounds) or |x| <= 80 (one bound); beyond,
    forward saturates at one ulp inside the bound.
    """

    def __init__(self, low, high, validate_args=False, name="bounded"):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([low, high], dtype_hint=tf.float32)
            self._low = tensor_util.convert_nonref_to_tensor(low, dtype=dtype, name="low")
            self._high = tensor_util.convert_nonref_to_tensor(high, dtype=dtype, name="high")
            super().__init__(forward_min_event_ndims=0, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        not_implemented = parameter_properties.BIJECTOR_NOT_IMPLEMENTED
        return dict(low=parameter_properties.ParameterProperties(
                        event_ndims=0, default_constraining_bijector_fn=not_implemented),
                    high=parameter_properties.ParameterProperties(
                        event_ndims=0, default_constraining_bijector_fn=not_implemented))

    @classmethod
    def from_bounds(cls, bounds, event_size, *, dtype=tf.float32, name="bounds"):
        """A Bounded for `event_size` coordinates from a bounds spec:

        * "positive": every coordinate in (0, inf);
        * a pair (low, high): the same bounds for every coordinate;
        * a list of `event_size` entries, one per coordinate, each a pair (low, high),
          "positive", or None (unbounded).

        In a pair, None or -inf/inf leave that side open; e.g. (0, None) is (0, inf).
        """
        def pair(entry, where):
            if entry is None:
                return -np.inf, np.inf
            if isinstance(entry, str):
                if entry != "positive":
                    raise ValueError(f"bounds{where}: {entry!r} is not a bound; use "
                                     f"'positive', a pair (low, high) or None.")
                return 0.0, np.inf
            if len(entry) != 2:
                raise ValueError(f"bounds{where}: need a pair (low, high); got {entry!r}.")
            low, high = _side(entry[0], -np.inf), _side(entry[1], np.inf)
            if not low < high:
                raise ValueError(f"bounds{where}: low must be below high; got ({low}, {high}).")
            return low, high

        def scalar(v):
            return v is None or np.ndim(v) == 0 and not isinstance(v, str)

        if isinstance(bounds, str) or (isinstance(bounds, (tuple, list)) and len(bounds) == 2
                                       and all(scalar(v) for v in bounds)):
            pairs = [pair(bounds, "")] * int(event_size)
        elif isinstance(bounds, (tuple, list)):
            if len(bounds) != int(event_size):
                raise ValueError(f"bounds: give one entry per coordinate ({event_size}), or one "
                                 f"pair (low, high) for all; got {len(bounds)} entries.")
            pairs = [pair(entry, f"[{i}]") for i, entry in enumerate(bounds)]
        else:
            raise ValueError(f"bounds must be 'positive', a pair (low, high) or one entry per "
                             f"coordinate; got {bounds!r}.")
        dtype = tf.as_dtype(dtype).as_numpy_dtype
        low, high = (np.array(side, dtype) for side in zip(*pairs, strict=True))
        return cls(low, high, name=name)

    @property
    def low(self):
        return self._low

    @property
    def high(self):
        return self._high

    def _is_increasing(self):
        return True

    def _sides(self):
        low, high = tf.convert_to_tensor(self._low), tf.convert_to_tensor(self._high)
        has_low, has_high = tf.math.is_finite(low), tf.math.is_finite(high)
        zero = tf.zeros([], low.dtype)
        low0, high0 = tf.where(has_low, low, zero), tf.where(has_high, high, zero)
        both = has_low & has_high
        width = tf.where(both, high0 - low0, tf.ones([], low.dtype))
        return has_low, has_high, both, low0, high0, width

    def _forward(self, x):
        has_low, has_high, both, low0, high0, width = self._sides()
        zero = tf.zeros([], x.dtype)
        # Each branch sees safe inputs where it is not used (no inf, no NaN gradients).
        xb = tf.where(both, x, zero)
        y_both = tf.where(xb < 0, low0 + width * tf.math.sigmoid(xb),
                          high0 - width * tf.math.sigmoid(-xb))
        y_low = low0 + tf.exp(tf.where(has_low & ~has_high, x, zero))
        y_high = high0 - tf.exp(-tf.where(has_high & ~has_low, x, zero))
        y = tf.where(both, y_both, tf.where(has_low, y_low, tf.where(has_high, y_high, x)))
        # Keep y strictly inside the box (and finite), so every sample has a finite log_prob;
        # the tiny step keeps a bound at 0 off denormals, which some CPUs flush to zero.
        big = tf.constant(np.finfo(x.dtype.as_numpy_dtype).max, x.dtype)
        tiny = tf.constant(np.finfo(x.dtype.as_numpy_dtype).tiny, x.dtype)
        inside_low = tf.where(has_low, tf.maximum(tf.math.nextafter(low0, big), low0 + tiny),
                              -big)
        inside_high = tf.where(has_high, tf.minimum(tf.math.nextafter(high0, -big),
                                                    high0 - tiny), big)
        return tf.clip_by_value(y, inside_low, inside_high)

    def _distances(self, y):
        """(y - low, high - y) with 1 on open sides and outside the box, and the inside mask."""
        has_low, has_high, both, low0, high0, width = self._sides()
        one = tf.ones([], y.dtype)
        d_low = tf.where(has_low, y - low0, one)
        d_high = tf.where(has_high, high0 - y, one)
        inside = (d_low > 0) & (d_high > 0)
        return tf.where(inside, d_low, one), tf.where(inside, d_high, one), inside, width

    def _inverse(self, y):
        has_low, has_high = tf.math.is_finite(self._low), tf.math.is_finite(self._high)
        d_low, d_high, _, _ = self._distances(y)
        bounded = tf.math.log(d_low) - tf.math.log(d_high)  # log 1 = 0 on an open side
        return tf.where(has_low | has_high, bounded, y)

    def _inverse_log_det_jacobian(self, y):
        d_low, d_high, inside, width = self._distances(y)
        value = tf.math.log(width) - tf.math.log(d_low) - tf.math.log(d_high)
        return tf.where(inside, value, tf.constant(-np.inf, y.dtype))

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args:
            return []
        return [tf.debugging.assert_less(self._low, self._high,
                                         message="Bounded: low must be below high.")]

    def check_data(self, x, what="x"):
        """Raise `FlowDataError` naming the rows of x (NumPy, [N, ..., D]) outside the open
        box; returns x. Runs on the host, before training."""
        values = np.asarray(x)
        low, high = np.asarray(self._low), np.asarray(self._high)
        outside = ~((values > low) & (values < high))
        rows = np.argwhere(outside.reshape(len(values), -1).any(axis=1))[:, 0]
        if len(rows):
            shown = ", ".join(str(int(r)) for r in rows[:10])
            more = f", ... ({len(rows)} rows in all)" if len(rows) > 10 else ""
            coords = sorted({int(c) for c in np.argwhere(outside[rows])[:, -1]})
            bounds = ", ".join(f"{c}: ({np.broadcast_to(low, values.shape[1:])[..., c].flat[0]}"
                               f", {np.broadcast_to(high, values.shape[1:])[..., c].flat[0]})"
                               for c in coords[:5])
            raise FlowDataError(f"{what} has rows outside the flow's bounds (bounds excluded) "
                                f"in rows [{shown}{more}]; coordinate bounds {bounds}. Fix "
                                f"the data or the bounds= option.")
        return x
