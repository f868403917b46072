"""PReLU: the parametric rectified linear unit as an elementwise bijector."""

from __future__ import annotations

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


class PReLU(tfb.Bijector):
    """Elementwise parametric ReLU with a positive negative-side slope.

    Transformation (He et al. 2015, "Delving deep into rectifiers"; used as a flow layer in
    e.g. Oliva et al. 2018, "Transformation autoregressive networks"):

        y = x          for x >= 0
        y = alpha * x  for x <  0,        alpha > 0

    Inverse: x = y for y >= 0, x = y / alpha for y < 0 (the sign is preserved).
    Log-det-Jacobian: log|dy/dx| = log(alpha) where x < 0 and 0 where x >= 0; over an event
    it is the sum of log(alpha) over the negative entries. The map is strictly increasing.

    `alpha` has the bijector's batch shape; with `trainable(event_size)` it holds one slope
    per dimension (shape [event_size]), positive by parametrisation (a
    `tfp.util.TransformedVariable` through a Softplus), starting at 1 (the identity).

    Args:
      alpha: positive float tensor, `tf.Variable` or `tfp.util.TransformedVariable`.
      validate_args: check that alpha > 0 (raises `InvalidArgumentError` otherwise).
      name: name scope.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) alpha in [1e-3, 1e3] and |x| <= 1e3. Domain: all
    of R (log_prob is finite for every finite x); alpha <= 0 is no bijection and raises under
    validate_args.
    """

    def __init__(self, alpha: TensorLike, validate_args: bool = False, name: str = "prelu") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([alpha], dtype_hint=tf.float32)
            self._alpha = tensor_util.convert_nonref_to_tensor(alpha, dtype=dtype, name="alpha")
            super().__init__(forward_min_event_ndims=0, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    @classmethod
    def trainable(cls, event_size: int, *, seed: Seed = None, dtype: DTypeLike = tf.float32,
                  init_alpha: float = 1.0, validate_args: bool = False,
                  name: str = "prelu") -> PReLU:
        """A PReLU owning one slope per dimension, alpha = softplus(v), starting at init_alpha.

        `seed` is accepted for a uniform API; the start is deterministic (the identity).
        """
        del seed
        alpha = tfp.util.TransformedVariable(
            tf.fill([int(event_size)], tf.constant(init_alpha, dtype)), tfb.Softplus(),
            name="alpha")
        return cls(alpha, validate_args=validate_args, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {"alpha": parameter_properties.ParameterProperties(
            default_constraining_bijector_fn=(
                lambda: tfb.Softplus(low=dtype_util.eps(dtype))))}

    @property
    def alpha(self):
        """The slope on the negative side."""
        return self._alpha

    def _is_increasing(self):
        return True

    def _forward(self, x):
        alpha = tf.convert_to_tensor(self.alpha)
        return tf.where(x < 0, alpha * x, x)

    def _inverse(self, y):
        alpha = tf.convert_to_tensor(self.alpha)
        return tf.where(y < 0, y / alpha, y)

    def _forward_log_det_jacobian(self, x):
        log_alpha = tf.math.log(tf.convert_to_tensor(self.alpha))
        return tf.where(x < 0, log_alpha, tf.zeros_like(log_alpha))

    def _inverse_log_det_jacobian(self, y):
        log_alpha = tf.math.log(tf.convert_to_tensor(self.alpha))
        return tf.where(y < 0, -log_alpha, tf.zeros_like(log_alpha))

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args:
            return []
        if is_init == tensor_util.is_ref(self.alpha):
            return []
        return [assert_util.assert_positive(
            self.alpha, message="PReLU: argument `alpha` must be positive (y = alpha * x for "
                                "x < 0 is invertible only for alpha > 0).")]
