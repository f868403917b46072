"""Activation normalisation, ActNorm (Kingma & Dhariwal, 2018, "Glow", section 3.1).

    y = exp(log_scale) ⊙ x + shift,    per channel (the last axis),

    log|det ∂y/∂x| = (number of positions) · Σ_c log_scale_c   (H·W·Σ log s for images).

Elementwise (`forward_min_event_ndims=0`): log_scale and shift have shape [C] and broadcast
against events [..., C], so the same layer works on vectors (C = D) and on images
[H, W, C]; TFP sums the per-element log-det over the event, which gives the H·W factor.

Data-dependent initialisation (Glow): the parameters are set from a batch so that the
*inverse* (data → latent direction of a TFP flow, where data flow during density
estimation) outputs zero mean and unit variance per channel: shift = mean(y),
log_scale = log std(y), with statistics over every axis but the last.
`ActNorm.initialize(y)` does this for one layer given its inputs in the data direction;
`initialize_actnorms(flow, x)` runs data x backwards through a whole flow (a FlowModel,
TransformedDistribution, Chain or bijector), initialising every ActNorm on the way with
the activations that reach it. Calling either again re-runs the initialisation; the flag
`initialized` (a non-trainable tf.Variable saved with the weights) records that it ran.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.bijectors.chain import _Chain
from tensorflow_probability.python.internal import (
    dtype_util,
    parameter_properties,
    tensor_util,
)

from tfp_flows.types import DTypeLike, Seed, TensorLike

tfb, tfd = tfp.bijectors, tfp.distributions


class ActNorm(tfb.Bijector):
    """y = exp(log_scale) * x + shift per channel (last axis); see the module docstring.

    Args:
      log_scale: float tensor [..., C].
      shift: float tensor [..., C].
      initialized: optional bool tf.Variable recording data-dependent initialisation.
      validate_args: check that log_scale and shift have the same shape.
      name: name of the bijector.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) |log_scale| <= 20, |shift| <= 100 and |x| <= 1e3.
    Domain: all of R; every parameter value is allowed.
    """

    def __init__(self, log_scale: TensorLike, shift: TensorLike,
                 initialized: tf.Variable | None = None, validate_args: bool = False,
                 name: str = "actnorm") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([log_scale, shift], dtype_hint=tf.float32)
            self._log_scale = tensor_util.convert_nonref_to_tensor(log_scale, dtype=dtype,
                                                                   name="log_scale")
            self._shift = tensor_util.convert_nonref_to_tensor(shift, dtype=dtype, name="shift")
            if (self._log_scale.shape.is_fully_defined() and self._shift.shape.is_fully_defined()
                    and self._log_scale.shape != self._shift.shape):
                raise ValueError(f"ActNorm: log_scale and shift must have the same shape; got "
                                 f"{self._log_scale.shape} and {self._shift.shape}.")
            self.initialized = initialized
            super().__init__(forward_min_event_ndims=0, is_constant_jacobian=True,
                             validate_args=validate_args, dtype=dtype,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(log_scale=parameter_properties.ParameterProperties(event_ndims=0),
                    shift=parameter_properties.ParameterProperties(event_ndims=0))

    @classmethod
    def trainable(cls, event_size: int, *, seed: Seed = None, dtype: DTypeLike = tf.float32,
                  name: str = "actnorm") -> ActNorm:
        """An ActNorm with fresh tf.Variables over `event_size` channels, at the identity.

        For vectors event_size is the dimension D; for images [H, W, C] pass C (the
        parameters broadcast over H and W). Call `initialize`/`initialize_actnorms` with
        data for Glow's data-dependent initialisation. `seed` is unused (deterministic).
        """
        dtype = tf.as_dtype(dtype)
        zeros = np.zeros([int(event_size)], dtype.as_numpy_dtype)
        return cls(tf.Variable(zeros, name="log_scale"), tf.Variable(zeros, name="shift"),
                   initialized=tf.Variable(False, trainable=False, name="initialized"),
                   name=name)

    @property
    def log_scale(self):
        return self._log_scale

    @property
    def shift(self):
        return self._shift

    def _is_increasing(self):
        return True

    def _forward(self, x):
        return x * tf.exp(self._log_scale) + self._shift

    def _inverse(self, y):
        return (y - self._shift) * tf.exp(-tf.convert_to_tensor(self._log_scale))

    def _forward_log_det_jacobian(self, x):
        return tf.identity(tf.convert_to_tensor(self._log_scale))

    def initialize(self, y, *, epsilon=1e-6):
        """Set shift, log_scale so that inverse(y) has mean 0, std 1 per channel.

        y: a batch of this layer's outputs (inputs in the data → latent direction),
        shape [N, ..., C]. Needs the parameters to be tf.Variables (as from `trainable`).
        Returns inverse(y) after the update.
        """
        if not (isinstance(self._log_scale, tf.Variable) and isinstance(self._shift, tf.Variable)):
            raise TypeError("ActNorm.initialize needs log_scale and shift to be tf.Variables; "
                            "build the layer with ActNorm.trainable(...).")
        y = tf.convert_to_tensor(y, self.dtype)
        axes = list(range(y.shape.rank - 1))
        mean, var = tf.nn.moments(y, axes=axes)
        self._shift.assign(tf.broadcast_to(mean, self._shift.shape))
        self._log_scale.assign(tf.broadcast_to(0.5 * tf.math.log(var + epsilon),
                                               self._log_scale.shape))
        if self.initialized is not None:
            self.initialized.assign(True)
        return self.inverse(tf.identity(y))


def initialize_actnorms(flow: object, x: TensorLike) -> int:
    """Data-dependent initialisation of every ActNorm in `flow` from the data batch `x`.

    flow: a FlowModel, a TransformedDistribution, or a bijector (Chains are walked, the
    bijectors applied in the inverse order, i.e. from the data side). Each ActNorm is
    initialised with the activations that reach it. Returns the number of ActNorms set
    (0, without running the flow, when it has none). For a `DequantizedDistribution`, x
    holds integer levels, dequantized with fresh noise before entering the flow.
    """
    bijector = flow if hasattr(flow, "dequantize") else getattr(flow, "distribution", flow)
    x = tf.convert_to_tensor(x)
    if hasattr(bijector, "dequantize"):  # a DequantizedDistribution: the flow sees v
        x, _ = bijector.dequantize(x)
        bijector = bijector.distribution
    if isinstance(bijector, tfd.Distribution):  # a (_)TransformedDistribution
        bijector = bijector.bijector
    if not _holds_actnorm(bijector):  # nothing to do: skip the pass through the flow
        return 0
    count = [0]

    def backwards(bij, y):
        if isinstance(bij, _Chain):  # tfb.Chain(...) builds a _Chain when it holds Variables
            for b in bij.bijectors:  # Chain applies its last bijector first in forward
                y = backwards(b, y)
            return y
        if isinstance(bij, ActNorm):
            count[0] += 1
            return bij.initialize(y)
        inner = getattr(bij, "bijector", None)
        if isinstance(inner, tfb.Bijector) and hasattr(bij, "initialize_inner"):
            return bij.initialize_inner(lambda b, t: backwards(b, t), y)
        return bij.inverse(tf.identity(y))

    dtype = bijector.dtype or x.dtype
    backwards(bijector, tf.cast(x, dtype))
    return count[0]


def _holds_actnorm(bijector):
    """Whether `initialize_actnorms` would reach an ActNorm (through Chains and the inner
    bijector of parts with `initialize_inner`, such as FactorOut)."""
    if isinstance(bijector, ActNorm):
        return True
    if isinstance(bijector, _Chain):
        return any(_holds_actnorm(b) for b in bijector.bijectors)
    inner = getattr(bijector, "bijector", None)
    return (isinstance(inner, tfb.Bijector) and hasattr(bijector, "initialize_inner")
            and _holds_actnorm(inner))
