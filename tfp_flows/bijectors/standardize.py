"""Standardisation fitted to data, the data end of a flow.

    x = loc + scale ⊙ z,    log|det ∂x/∂z| = Σ_i log scale_i,

elementwise over the event (`forward_min_event_ndims=0`; loc and scale have the event's
shape and broadcast against batches). Put last in the forward direction (first in a
`tfb.Chain` list), it lets the rest of the flow see standardised values z = (x - loc) / scale
while the flow's `log_prob`, `sample`, saved files and exports speak data units:

    log p_X(x) = log p_Z((x - loc) / scale) - Σ_i log scale_i.

loc and scale are data statistics, not parameters: `Standardize.identity(...)` holds them
as non-trainable `tf.Variable`s (so `fit()` leaves them alone while `.keras` files and
SavedModels keep them), and `adapt(y)` sets them to the per-coordinate mean and standard
deviation of data y, as `keras.layers.Normalization.adapt` does. A (numerically) constant
coordinate gets scale 1 and a warning: a density of a constant coordinate is unbounded.
`FlowModel.adapt(x)` finds the Standardize at the data end of a flow and calls `adapt` on
the data mapped through any fixed bijectors before it (e.g. `Bounded`).
"""

import warnings

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.bijectors.chain import _Chain
from tensorflow_probability.python.internal import (
    dtype_util,
    parameter_properties,
    tensor_util,
)

from tfp_flows.data_checks import FlowDataError
from tfp_flows.variable_discovery import find_trainables

tfb = tfp.bijectors


class ConstantColumnWarning(UserWarning):
    """`Standardize.adapt` met a coordinate with (numerically) zero variance."""


class StandardizationWarning(UserWarning):
    """Training data far from standardised meets a flow whose `Standardize` is not fitted."""


class Standardize(tfb.Bijector):
    """x = loc + scale * z elementwise; see the module docstring.

    Args:
      loc: float tensor of the event's shape (or broadcastable to it), the data mean.
      scale: positive float tensor like loc, the data standard deviation.
      validate_args: check that scale is positive.
      name: name of the bijector.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) |loc| <= 1e3, scale in [1e-3, 1e3] and |x| <= 1e3.
    Domain: all of R. Exact up to rounding for any loc and any scale > 0 (float32: forward
    and inverse round trip within a few ulps of max(|x|, |loc|)).
    """

    def __init__(self, loc, scale, validate_args=False, name="standardize"):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([loc, scale], dtype_hint=tf.float32)
            self._loc = tensor_util.convert_nonref_to_tensor(loc, dtype=dtype, name="loc")
            self._scale = tensor_util.convert_nonref_to_tensor(scale, dtype=dtype, name="scale")
            super().__init__(forward_min_event_ndims=0, is_constant_jacobian=True,
                             validate_args=validate_args, dtype=dtype,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(
            loc=parameter_properties.ParameterProperties(event_ndims=0),
            scale=parameter_properties.ParameterProperties(
                event_ndims=0,
                default_constraining_bijector_fn=(
                    lambda: tfb.Softplus(low=dtype_util.eps(dtype)))))

    @classmethod
    def identity(cls, event_shape, *, dtype=tf.float32, name="standardize"):
        """A Standardize at the identity (loc 0, scale 1), ready for `adapt`.

        event_shape: an int D (vectors) or a shape such as [D]. loc and scale are
        non-trainable tf.Variables: training does not move them, saving keeps them.
        """
        dtype = tf.as_dtype(dtype)
        shape = [int(event_shape)] if np.ndim(event_shape) == 0 else list(event_shape)
        return cls(tf.Variable(np.zeros(shape, dtype.as_numpy_dtype), trainable=False,
                               name="loc"),
                   tf.Variable(np.ones(shape, dtype.as_numpy_dtype), trainable=False,
                               name="scale"),
                   name=name)

    @property
    def loc(self):
        return self._loc

    @property
    def scale(self):
        return self._scale

    @property
    def is_identity(self):
        """Whether loc is 0 and scale is 1 everywhere (e.g. not adapted yet); eager only."""
        return bool(np.all(tf.convert_to_tensor(self._loc).numpy() == 0)
                    and np.all(tf.convert_to_tensor(self._scale).numpy() == 1))

    def _is_increasing(self):
        return True

    def _forward(self, x):
        return self._loc + self._scale * x

    def _inverse(self, y):
        return (y - self._loc) / self._scale

    def _forward_log_det_jacobian(self, x):
        return tf.math.log(tf.convert_to_tensor(self._scale))

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args or is_init != tensor_util.is_ref(self._scale):
            return []
        return [tf.debugging.assert_positive(self._scale, message="Standardize: scale must "
                                             "be positive.")]

    def adapt(self, y, *, what="x"):
        """Set loc, scale to the mean and standard deviation of y per coordinate.

        y: data in this bijector's output units, an array [N, *event_shape], an iterable
        of such batches (e.g. a tf.data.Dataset of x), or a `Moments` accumulated from them.
        Statistics are over every axis but the event's (float64 on the host). Needs loc and
        scale to be tf.Variables (as from `identity`). Coordinates whose standard deviation
        is 0 or below rounding (10 ulps of their mean) get scale 1, with a
        `ConstantColumnWarning` naming them.
        Returns (loc, scale) as NumPy arrays.
        """
        if not (isinstance(self._loc, tf.Variable) and isinstance(self._scale, tf.Variable)):
            raise TypeError("Standardize.adapt needs loc and scale to be tf.Variables; build "
                            "it with Standardize.identity(event_shape).")
        event_shape = tuple(self._loc.shape)
        moments = Moments(event_shape)
        if isinstance(y, Moments):
            moments = y
        elif isinstance(y, (np.ndarray, tf.Tensor)):
            moments.update(y)
        else:
            for batch in y:
                moments.update(batch)
        mean, std = moments.result(what)
        dtype = self.dtype.as_numpy_dtype
        floor = 10 * np.finfo(dtype).eps * np.abs(mean)
        constant = ~(std > floor)
        if constant.any():
            columns = [int(i[0]) if len(i) == 1 else tuple(int(j) for j in i)
                       for i in np.argwhere(constant)]
            warnings.warn(f"{what} is constant in coordinate(s) {columns}: their "
                          f"standardisation scale is set to 1, and a flow's density of a "
                          f"constant coordinate is unbounded (drop such columns).",
                          ConstantColumnWarning, stacklevel=2)
            std = np.where(constant, 1.0, std)
        self._loc.assign(mean.astype(dtype))
        self._scale.assign(std.astype(dtype))
        return mean.astype(dtype), std.astype(dtype)


class Moments:
    """Running per-coordinate mean and variance over batches [N, *event_shape] (float64;
    Chan et al.'s pairwise update, so batches far from zero do not lose precision)."""

    def __init__(self, event_shape):
        self.event_shape = tuple(event_shape)
        self.count = 0
        self.mean = np.zeros(self.event_shape)
        self.m2 = np.zeros(self.event_shape)

    def update(self, batch):
        batch = np.asarray(batch, np.float64)
        n_event = len(self.event_shape)
        if batch.ndim < n_event + 1 or tuple(batch.shape[batch.ndim - n_event:]) \
                != self.event_shape:
            raise FlowDataError(f"expected batches of shape [N, "
                                f"{', '.join(map(str, self.event_shape))}]; got "
                                f"{list(batch.shape)}.")
        batch = batch.reshape((-1, *self.event_shape))
        n = len(batch)
        if n == 0:
            return
        mean = batch.mean(0)
        m2 = ((batch - mean) ** 2).sum(0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.count * n / total)
        self.count = total

    def result(self, what="x"):
        """(mean, std) with the population standard deviation (divisor N)."""
        if self.count < 2:
            raise FlowDataError(f"{what}: standardisation needs at least 2 rows; got "
                                f"{self.count}.")
        return self.mean, np.sqrt(self.m2 / self.count)


def _is_fixed(bijector):
    """Whether `bijector` holds no trainable state (no layers, no trainable variables)."""
    found = find_trainables(bijector)
    return not (found.keras_layers or found.keras_variables
                or any(v.trainable for v in found.tf_variables))


def data_end(bijector):
    """(fixed, standardize): the Standardize nearest the data end of `bijector` and the
    fixed bijectors before it (data side first), or (fixed, None) when the data end holds
    no Standardize before the first trainable part.

    The data end of a `tfb.Chain` is its first bijector (Chain applies its list from the
    last in forward); nested Chains are walked. x reaches the Standardize as
    `b.inverse(...)` through each fixed b in order.
    """
    fixed = []

    def walk(bij):  # a Standardize, None (keep walking) or False (stop: trainable part)
        if isinstance(bij, _Chain):
            for part in bij.bijectors:
                found = walk(part)
                if found is not None:
                    return found
            return None
        if isinstance(bij, Standardize):
            return bij
        if _is_fixed(bij):
            fixed.append(bij)
            return None
        return False

    found = walk(bijector) if isinstance(bijector, tfb.Bijector) else None
    return fixed, found if isinstance(found, Standardize) else None


def far_from_standardized(mean, std):
    """A description of how per-coordinate (mean, std) is far from (0, 1), or None.

    Far: some std outside [1e-2, 1e2], or some |mean| above 10 max(std, 1).
    """
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if np.all((std >= 1e-2) & (std <= 1e2) & (np.abs(mean) <= 10 * np.maximum(std, 1.0))):
        return None
    return (f"per-coordinate std from {std.min():.3g} to {std.max():.3g}, |mean| up to "
            f"{np.abs(mean).max():.3g}")
