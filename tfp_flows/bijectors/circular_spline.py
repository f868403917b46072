"""Circular rational-quadratic splines: flows on the circle and the torus (Rezende et al. 2020,
"Normalizing flows on tori and spheres", https://arxiv.org/abs/2002.02428, section 2.1;
Durkan et al. 2019, "Neural spline flows", https://arxiv.org/abs/1906.04032).

An angle x in [-pi, pi) is mapped by

    y = wrap(s(x) + phi),        wrap(a) = ((a + pi) mod 2 pi) - pi,

s a monotone rational-quadratic spline of K bins from [-pi, pi] onto itself (bin widths and
heights positive and summing to 2 pi, positive interior knot slopes) whose slopes at both ends
are equal (both 1, as in TFP's `tfb.RationalQuadraticSpline`), and phi a rotation. Because
s(-pi) = -pi, s(pi) = pi and s'(-pi) = s'(pi), s is a diffeomorphism of the circle, and so is
the rotation: the density stays continuous across the seam at +-pi. log|dy/dx| = log s'(x)
(rotations preserve volume); the inverse is s^-1(wrap(y - phi)), in closed form (a quadratic
per bin, as for any rational-quadratic spline). Angles outside [-pi, pi] are passed through
unchanged with inverse log-det -inf (so they stay outside and the uniform base scores them -inf): a
density on the torus is 0 outside [-pi, pi)^D rather than repeated periodically.

`CircularSpline` is the elementwise bijector (parameters with a trailing bin axis);
`CircularSplineCouplingFn` makes one from a coupling conditioner fed the periodic features
(cos x0, sin x0) of the other angles, for `tfb.RealNVP` couplings on the torus [-pi, pi)^D.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import dtype_util, parameter_properties, tensor_util

from tfp_flows.types import TensorLike

tfb = tfp.bijectors

# Bins narrower than this share of 2 pi, or slopes below this, make the spline's inverse
# ill-conditioned; the parametrisation from raw outputs keeps every bin and slope above them.
MIN_BIN_FRACTION = 1e-3
MIN_SLOPE = 1e-3


def wrap(a):
    """a mapped onto [-pi, pi) modulo 2 pi."""
    pi = tf.constant(math.pi, a.dtype)
    return tf.math.floormod(a + pi, 2.0 * pi) - pi


class CircularSpline(tfb.Bijector):
    """y = wrap(s(x) + phi) elementwise on angles in [-pi, pi) (see the module docstring).

    Args:
      bin_widths, bin_heights: [..., K] positive, each summing to 2 pi over the last axis.
      knot_slopes: [..., K - 1] positive slopes at the interior knots (the end slopes are 1).
      rotation: [...] the angle phi added after the spline (default 0).
      validate_args: let TFP's spline check its parameters.
      name: name scope.

    `from_raw` builds one from unconstrained numbers (a conditioner's outputs), at zero the
    identity.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) `from_raw` of raw numbers
    in [-3, 3], K <= 8 and angles in [-pi, pi). (x = pi is the seam's other side: it returns
    as -pi.)
    """

    def __init__(self, bin_widths: TensorLike, bin_heights: TensorLike, knot_slopes: TensorLike,
                 rotation: TensorLike | None = None, validate_args: bool = False,
                 name: str = "circular_spline") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([bin_widths, bin_heights, knot_slopes, rotation],
                                            dtype_hint=tf.float32)
            self._bin_widths = tensor_util.convert_nonref_to_tensor(bin_widths, dtype=dtype)
            self._bin_heights = tensor_util.convert_nonref_to_tensor(bin_heights, dtype=dtype)
            self._knot_slopes = tensor_util.convert_nonref_to_tensor(knot_slopes, dtype=dtype)
            self._rotation = tensor_util.convert_nonref_to_tensor(
                0.0 if rotation is None else rotation, dtype=dtype)
            super().__init__(forward_min_event_ndims=0, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    @classmethod
    def from_raw(cls, raw: TensorLike, *, validate_args: bool = False,
                 name: str = "circular_spline") -> CircularSpline:
        """A CircularSpline from raw [..., 3K] numbers: K width logits, K height logits, K - 1
        slope pre-activations and the rotation. All zeros give the identity."""
        raw = tf.convert_to_tensor(raw)
        k = (raw.shape[-1] + 0) // 3
        if raw.shape[-1] is None or raw.shape[-1] != 3 * k or k < 1:
            raise ValueError(f"CircularSpline.from_raw needs 3K raw numbers on the last axis; "
                             f"got shape {raw.shape}.")
        two_pi = tf.constant(2.0 * math.pi, raw.dtype)

        def bins(logits):
            return two_pi * (MIN_BIN_FRACTION + (1.0 - k * MIN_BIN_FRACTION)
                             * tf.nn.softmax(logits, axis=-1))

        offset = math.log(math.expm1(1.0 - MIN_SLOPE))  # slope 1 at raw 0
        slopes = MIN_SLOPE + tf.nn.softplus(raw[..., 2 * k:3 * k - 1] + offset)
        return cls(bins(raw[..., :k]), bins(raw[..., k:2 * k]), slopes, raw[..., 3 * k - 1],
                   validate_args=validate_args, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return dict(
            bin_widths=parameter_properties.ParameterProperties(
                event_ndims=1, default_constraining_bijector_fn=parameter_properties
                .BIJECTOR_NOT_IMPLEMENTED),
            bin_heights=parameter_properties.ParameterProperties(
                event_ndims=1, default_constraining_bijector_fn=parameter_properties
                .BIJECTOR_NOT_IMPLEMENTED),
            knot_slopes=parameter_properties.ParameterProperties(
                event_ndims=1, default_constraining_bijector_fn=parameter_properties
                .BIJECTOR_NOT_IMPLEMENTED),
            rotation=parameter_properties.ParameterProperties())

    def _spline(self):
        return tfb.RationalQuadraticSpline(
            tf.convert_to_tensor(self._bin_widths), tf.convert_to_tensor(self._bin_heights),
            tf.convert_to_tensor(self._knot_slopes),
            range_min=tf.constant(-math.pi, self.dtype), validate_args=self.validate_args)

    def _is_increasing(self):
        return True  # on [-pi, pi) up to the seam: a circle map of degree 1

    def _forward(self, x):
        y = wrap(self._spline().forward(x) + tf.convert_to_tensor(self._rotation))
        return tf.where(_inside(x), y, x)

    def _inverse(self, y):
        x = self._spline().inverse(wrap(y - tf.convert_to_tensor(self._rotation)))
        return tf.where(_inside(y), x, y)

    def _forward_log_det_jacobian(self, x):
        return _on_circle(x, self._spline().forward_log_det_jacobian(x, event_ndims=0), np.inf)

    def _inverse_log_det_jacobian(self, y):
        return _on_circle(y, self._spline().inverse_log_det_jacobian(
            wrap(y - tf.convert_to_tensor(self._rotation)), event_ndims=0), -np.inf)


def _inside(angle):
    pi = tf.constant(math.pi, angle.dtype)
    return (angle >= -pi) & (angle <= pi)


def _on_circle(angle, log_det, outside):
    """log_det where the angle lies in [-pi, pi], `outside` (-inf for the inverse log-det,
    +inf for the forward one, so that ildj(y) = -fldj(x) holds there too) elsewhere: outside
    the circle the map is not defined, so a density pushed through it is 0 there."""
    return tf.where(_inside(angle), log_det, tf.constant(outside, angle.dtype))


@keras.saving.register_keras_serializable(package="tfp_flows")
class CircularSplineCouplingFn:
    """`bijector_fn` for `tfb.RealNVP` on angles: x0 -> `CircularSpline` of x1.

    The conditioner (a `nets.CouplingMLP(shift_only=True)`, zero-initialised output) sees
    (cos x0, sin x0), so the layer is periodic in the conditioning angles too, and returns 3K
    raw numbers per angle of x1 (`CircularSpline.from_raw`); a fresh layer is the identity.
    """

    def __init__(self, conditioner: Callable, num_bins: int = 8) -> None:
        self.conditioner = conditioner
        self.num_bins = int(num_bins)
        if self.num_bins < 1:
            raise ValueError(f"num_bins must be a positive integer; got {num_bins!r}.")

    def __call__(self, x0, output_units, **condition_kwargs):
        features = tf.concat([tf.cos(x0), tf.sin(x0)], axis=-1)
        params = 3 * self.num_bins
        out, _ = self.conditioner(features, int(output_units) * params, **condition_kwargs)
        shape = tf.concat([tf.shape(out)[:-1], [int(output_units), params]], 0)
        return CircularSpline.from_raw(tf.reshape(out, shape))

    def get_config(self):
        return {"conditioner": self.conditioner, "num_bins": self.num_bins}


def torus_uniform(event_size: int, dtype="float32"):
    """The uniform density on the torus [-pi, pi)^event_size, the base of circular flows."""
    d = int(event_size)
    low = tf.constant(np.full([d], -math.pi), dtype)
    return tfp.distributions.Independent(
        tfp.distributions.Uniform(low=low, high=-low), reinterpreted_batch_ndims=1)
