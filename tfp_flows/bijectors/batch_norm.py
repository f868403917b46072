"""Batch normalisation as a flow layer, for Keras 3 models (Dinh et al. 2017, "Density
estimation using Real NVP", section 3.7, https://arxiv.org/abs/1605.08803; Papamakarios et
al. 2017, "Masked autoregressive flow", section 3.4, https://arxiv.org/abs/1705.07057).

In the density (inverse) direction, per coordinate d,

    z_d = exp(log_scale_d) (x_d - m_d) / sqrt(v_d + eps) + shift_d,
    log|dz/dx| = sum_d [log_scale_d - 0.5 log(v_d + eps)],

and the sampling (forward) direction is its inverse. (m, v) are moving averages of the mean
and variance of the batches reaching the layer, held by the bijector as non-trainable
tf.Variables. Inside `batch_norm_training()` (which `FlowModel.train_step` enters) the first
use of the layer in a step moves them towards the batch's statistics,
m <- momentum m + (1 - momentum) mean (v likewise), in-graph (XLA-compatible); the transform
itself always uses the moving statistics, so training optimises the exact likelihood that
evaluation, sampling and saved models report (a normalised density at every step).

That differs from the papers, which normalise each training batch with its own statistics
and back-propagate through them. Measured on two moons (3 couplings of 32 x 32 units, Adam
5e-3, batch 256): with batch statistics (gradients through them) the couplings' outputs
drifted to variance 5e4 within two epochs (the loss is invariant to their overall scale and
shift, and Adam's steps are not), the moving averages lagged, and the test NLL was 16.4 against
2.86 at initialisation; with batch statistics as constants, the training loss rose over six
epochs (2.31, 2.46, 2.52); with the moving statistics, as here, the test NLL fell 2.46, 2.33,
2.33 and matched the training loss. TFP's `tfb.BatchNormalization` wraps a tf_keras layer
whose updates Keras 3's fit() never runs; this one keeps its state in the bijector.
"""

from __future__ import annotations

import contextlib
import threading

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import (
    assert_util,
    dtype_util,
    parameter_properties,
    tensor_util,
)

from tfp_flows.types import DTypeLike, Seed, TensorLike

tfb = tfp.bijectors

_STATE = threading.local()


@contextlib.contextmanager
def batch_norm_training(training: bool = True):
    """Inside this block (with training=True), each `BatchNorm` moves its moving statistics
    towards those of the first batch it transforms in the density direction (once per block:
    one training step); outside it they stay fixed."""
    previous = getattr(_STATE, "updated", None)
    _STATE.updated = set() if training else None
    try:
        yield
    finally:
        _STATE.updated = previous


class BatchNorm(tfb.Bijector):
    """Batch normalisation with moving statistics held as tf.Variables (module docstring).

    Args:
      moving_mean, moving_variance: [D] tf.Variables (non-trainable; updated inside
        `batch_norm_training()`) or fixed tensors. moving_variance must be >= 0.
      log_scale, shift: [D] (trainable) affine parameters of the normalised output;
        default 0 (no rescaling).
      momentum: weight of the old moving average in each update, in [0, 1).
      epsilon: added to the variances.
      validate_args: check moving_variance >= 0.
      name: name scope.

    Elementwise and increasing in each coordinate; the batch axes are all but the last.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) |moving_mean| <= 100,
    moving_variance in [1e-6, 1e6], |log_scale| <= 10, |shift| <= 100 and |x| <= 1e3.
    """

    def __init__(self, moving_mean: TensorLike, moving_variance: TensorLike,
                 log_scale: TensorLike | None = None, shift: TensorLike | None = None,
                 momentum: float = 0.9, epsilon: float = 1e-3, validate_args: bool = False,
                 name: str = "batch_norm") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([moving_mean, moving_variance, log_scale, shift],
                                            dtype_hint=tf.float32)
            self._moving_mean = tensor_util.convert_nonref_to_tensor(
                moving_mean, dtype=dtype, name="moving_mean")
            self._moving_variance = tensor_util.convert_nonref_to_tensor(
                moving_variance, dtype=dtype, name="moving_variance")
            zeros = tf.zeros_like(self._moving_mean)
            self._log_scale = tensor_util.convert_nonref_to_tensor(
                zeros if log_scale is None else log_scale, dtype=dtype, name="log_scale")
            self._shift = tensor_util.convert_nonref_to_tensor(
                zeros if shift is None else shift, dtype=dtype, name="shift")
            if not 0.0 <= float(momentum) < 1.0:
                raise ValueError(f"BatchNorm: momentum must be in [0, 1); got {momentum!r}.")
            if not float(epsilon) > 0.0:
                raise ValueError(f"BatchNorm: epsilon must be positive; got {epsilon!r}.")
            self._momentum = float(momentum)
            self._epsilon = float(epsilon)
            super().__init__(forward_min_event_ndims=0, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    @classmethod
    def trainable(cls, event_size: int, *, seed: Seed = None, dtype: DTypeLike = tf.float32,
                  momentum: float = 0.9, epsilon: float = 1e-3, validate_args: bool = False,
                  name: str = "batch_norm") -> BatchNorm:
        """A BatchNorm with trainable log_scale and shift (start 0) and moving statistics
        (start mean 0, variance 1): the identity up to epsilon until trained.

        `seed` is accepted for a uniform API; the start is deterministic.
        """
        del seed
        d = int(event_size)
        return cls(tf.Variable(tf.zeros([d], dtype), trainable=False, name="moving_mean"),
                   tf.Variable(tf.ones([d], dtype), trainable=False, name="moving_variance"),
                   tf.Variable(tf.zeros([d], dtype), name="log_scale"),
                   tf.Variable(tf.zeros([d], dtype), name="shift"),
                   momentum=momentum, epsilon=epsilon, validate_args=validate_args, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return dict(
            moving_mean=parameter_properties.ParameterProperties(),
            moving_variance=parameter_properties.ParameterProperties(
                default_constraining_bijector_fn=parameter_properties
                .BIJECTOR_NOT_IMPLEMENTED),
            log_scale=parameter_properties.ParameterProperties(),
            shift=parameter_properties.ParameterProperties())

    @property
    def moving_mean(self):
        return self._moving_mean

    @property
    def moving_variance(self):
        return self._moving_variance

    @property
    def log_scale(self):
        return self._log_scale

    @property
    def shift(self):
        return self._shift

    def _is_increasing(self):
        return True

    def _update(self, y):
        """Inside `batch_norm_training()`, the first call per step moves the moving statistics
        towards the batch's (mean and variance over all axes but the last)."""
        updated = getattr(_STATE, "updated", None)
        if updated is None or id(self) in updated:
            return
        if not (isinstance(self.moving_mean, tf.Variable)
                and isinstance(self.moving_variance, tf.Variable)):
            return
        updated.add(id(self))
        mean, variance = tf.nn.moments(tf.stop_gradient(y), axes=list(range(y.shape.rank - 1)))
        m = tf.constant(self._momentum, self.dtype)
        self.moving_mean.assign(m * self.moving_mean + (1 - m) * mean)
        self.moving_variance.assign(m * self.moving_variance + (1 - m) * variance)

    def _forward(self, x):
        mean = tf.convert_to_tensor(self.moving_mean)
        std = tf.sqrt(tf.convert_to_tensor(self.moving_variance) + self._epsilon)
        return ((x - tf.convert_to_tensor(self.shift))
                * tf.exp(-tf.convert_to_tensor(self.log_scale)) * std + mean)

    def _inverse(self, y):
        self._update(y)
        mean = tf.convert_to_tensor(self.moving_mean)
        variance = tf.convert_to_tensor(self.moving_variance)
        return ((y - mean) * tf.math.rsqrt(variance + self._epsilon)
                * tf.exp(tf.convert_to_tensor(self.log_scale)) + tf.convert_to_tensor(self.shift))

    def _log_det(self, variance):
        return tf.convert_to_tensor(self.log_scale) - 0.5 * tf.math.log(variance + self._epsilon)

    def _forward_log_det_jacobian(self, x):
        return -self._log_det(tf.convert_to_tensor(self.moving_variance)) + tf.zeros_like(x)

    def _inverse_log_det_jacobian(self, y):
        self._update(y)
        return self._log_det(tf.convert_to_tensor(self.moving_variance)) + tf.zeros_like(y)

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args:
            return []
        if is_init == tensor_util.is_ref(self.moving_variance):
            return []
        return [assert_util.assert_non_negative(
            self.moving_variance, message="BatchNorm: moving_variance must be >= 0.")]
