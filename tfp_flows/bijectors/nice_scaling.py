"""NICE's diagonal scaling layer (Dinh, Krueger & Bengio, 2015, "NICE", section 3.3).

    y = exp(s) ⊙ x,      log|det ∂y/∂x| = Σ_i s_i,

the last layer of NICE: its additive couplings are volume preserving (log-det exactly 0),
so this diagonal scaling is the only change of volume in the model and lets it weight the
importance of each dimension. Elementwise (`forward_min_event_ndims=0`) with s broadcast
against the event's last axes, always increasing; the log-det is closed form.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import (
    dtype_util,
    parameter_properties,
    tensor_util,
)

from tfp_flows.types import DTypeLike, Seed, TensorLike

tfb = tfp.bijectors


class NICEScaling(tfb.Bijector):
    """y = exp(log_scale) * x, elementwise; log-det = Σ log_scale over the event.

    Args:
      log_scale: float tensor s, broadcast against x (e.g. shape [D] for vectors).
      validate_args: Python bool (there is nothing to validate: every s is allowed).
      name: name of the bijector.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) |log_scale| <= 20 and |x| <= 1e3. Domain: all of
    R; every log_scale is allowed.
    """

    def __init__(self, log_scale: TensorLike, validate_args: bool = False,
                 name: str = "nice_scaling") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([log_scale], dtype_hint=tf.float32)
            self._log_scale = tensor_util.convert_nonref_to_tensor(log_scale, dtype=dtype,
                                                                   name="log_scale")
            super().__init__(forward_min_event_ndims=0, is_constant_jacobian=True,
                             validate_args=validate_args, dtype=dtype,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(log_scale=parameter_properties.ParameterProperties(event_ndims=0))

    @classmethod
    def trainable(cls, event_size: int, *, seed: Seed = None, dtype: DTypeLike = tf.float32,
                  name: str = "nice_scaling") -> NICEScaling:
        """A scaling owning a fresh tf.Variable log_scale [event_size] = 0 (the identity).

        `seed` is accepted for a uniform interface; the initialisation is deterministic.
        """
        dtype = tf.as_dtype(dtype)
        s = tf.Variable(np.zeros([int(event_size)], dtype.as_numpy_dtype), name="log_scale")
        return cls(s, name=name)

    @property
    def log_scale(self):
        return self._log_scale

    def _is_increasing(self):
        return True

    def _forward(self, x):
        return x * tf.exp(self._log_scale)

    def _inverse(self, y):
        return y * tf.exp(-tf.convert_to_tensor(self._log_scale))

    def _forward_log_det_jacobian(self, x):
        return tf.identity(tf.convert_to_tensor(self._log_scale))
