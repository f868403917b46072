"""Squeeze, space-to-depth (Dinh, Sohl-Dickstein & Bengio, 2017, "RealNVP", section 3.6;
used in every level of Glow's multi-scale architecture).

    [H, W, C] → [H/f, W/f, f·f·C]:  every f×f spatial block becomes f·f channels,

    y[i, j, (a·f + b)·C + c] = x[i·f + a, j·f + b, c],

the layout of `tf.nn.space_to_depth`. A permutation of the entries, so log-det = 0 and
the inverse (depth-to-space) is exact. Events are channels-last images
(`forward_min_event_ndims=3`); H and W must be divisible by `factor`.

Parameter-free, so there is no `trainable` constructor: build it as `Squeeze()`.
In a TFP flow (forward = latent → data) the data-side squeeze of RealNVP/Glow is
`tfb.Invert(Squeeze())` placed on the data side, or `Squeeze()` inside a `FactorOut`
sandwich; see `FactorOut`.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors


class Squeeze(tfb.Bijector):
    """Space-to-depth on channels-last image events [..., H, W, C].

    Args:
      factor: block size f (default 2).
      validate_args: Python bool; shape errors are raised statically when shapes are known.
      name: name of the bijector.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) every finite input (a reshape: exact). Domain:
    images whose H and W divide by `factor`; other shapes raise a ValueError.
    """

    def __init__(self, factor: int = 2, validate_args: bool = False, name: str = "squeeze") -> None:
        parameters = dict(locals())
        self._factor = int(factor)
        if self._factor < 1:
            raise ValueError(f"Squeeze: factor must be a positive integer; got {factor}.")
        with tf.name_scope(name) as name:
            super().__init__(forward_min_event_ndims=3, inverse_min_event_ndims=3,
                             is_constant_jacobian=True, validate_args=validate_args,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    @property
    def factor(self):
        return self._factor

    def _forward_event_shape(self, input_shape):
        h, w, c = tf.TensorShape(input_shape)[-3:]
        f = self._factor
        if h is not None and h % f or w is not None and w % f:
            raise ValueError(f"Squeeze: height and width must be divisible by {f}; got image "
                             f"shape {input_shape}.")
        return tf.TensorShape([None if h is None else h // f, None if w is None else w // f,
                               None if c is None else c * f * f])

    def _forward_event_shape_tensor(self, input_shape):
        f = self._factor
        return tf.stack([input_shape[-3] // f, input_shape[-2] // f, input_shape[-1] * f * f])

    def _inverse_event_shape(self, output_shape):
        h, w, c = tf.TensorShape(output_shape)[-3:]
        f = self._factor
        if c is not None and c % (f * f):
            raise ValueError(f"Squeeze: inverse needs channels divisible by {f * f}; got "
                             f"{output_shape}.")
        return tf.TensorShape([None if h is None else h * f, None if w is None else w * f,
                               None if c is None else c // (f * f)])

    def _inverse_event_shape_tensor(self, output_shape):
        f = self._factor
        return tf.stack([output_shape[-3] * f, output_shape[-2] * f,
                         output_shape[-1] // (f * f)])

    def _forward(self, x):
        f = self._factor
        shape = tf.shape(x)
        batch, (h, w, c) = shape[:-3], (shape[-3], shape[-2], shape[-1])
        if x.shape.rank is None:
            raise ValueError("Squeeze needs inputs of known rank.")
        self._forward_event_shape(x.shape[-3:])
        nb = x.shape.rank - 3
        t = tf.reshape(x, tf.concat([batch, [h // f, f, w // f, f, c]], 0))
        perm = list(range(nb)) + [nb, nb + 2, nb + 1, nb + 3, nb + 4]
        t = tf.transpose(t, perm)                  # [..., H/f, W/f, f(a), f(b), C]
        return tf.reshape(t, tf.concat([batch, [h // f, w // f, f * f * c]], 0))

    def _inverse(self, y):
        f = self._factor
        if y.shape.rank is None:
            raise ValueError("Squeeze needs inputs of known rank.")
        self._inverse_event_shape(y.shape[-3:])
        shape = tf.shape(y)
        batch, (h, w, c) = shape[:-3], (shape[-3], shape[-2], shape[-1])
        nb = y.shape.rank - 3
        t = tf.reshape(y, tf.concat([batch, [h, w, f, f, c // (f * f)]], 0))
        perm = list(range(nb)) + [nb, nb + 2, nb + 1, nb + 3, nb + 4]
        t = tf.transpose(t, perm)                  # [..., H, f(a), W, f(b), C']
        return tf.reshape(t, tf.concat([batch, [h * f, w * f, c // (f * f)]], 0))

    def _forward_log_det_jacobian(self, x):
        return tf.zeros([], dtype=x.dtype)

    def _inverse_log_det_jacobian(self, y):
        return tf.zeros([], dtype=y.dtype)
