"""Trainable parameters for bijectors you write yourself, without TFP's internal modules.

A TFP bijector trains a parameter only if it keeps the *variable* and reads its value where
it computes (in `_forward`, `_inverse`, `_forward_log_det_jacobian`). Two helpers make that
the easy path:

* `trainable_parameter(initial, constraint=...)` creates the variable: a `tf.Variable`
  (unconstrained), or a `tfp.util.TransformedVariable` that stays in its domain whatever the
  optimizer does (`"positive"`: softplus; `"unit_interval"`: sigmoid; or any bijector).
* `as_parameter(value)` is what a bijector's `__init__` does with an argument: variables
  (and TransformedVariables, DeferredTensors) are kept as they are, anything else becomes a
  tensor. Calling `tf.convert_to_tensor(variable)` in `__init__` instead would read the value
  once and train nothing; `FlowModel` refuses such a flow with a message saying so.

```python
class Scale(tfb.Bijector):
    def __init__(self, scale, validate_args=False, name="scale"):
        parameters = dict(locals())          # needed to save the flow as a .keras file
        self._scale = as_parameter(scale)    # the variable itself, not its current value
        super().__init__(forward_min_event_ndims=0, dtype=self._scale.dtype,
                         validate_args=validate_args, parameters=parameters, name=name)

    def _forward(self, x):
        return tf.convert_to_tensor(self._scale) * x   # read where it is used
    ...

Scale(trainable_parameter(1.0, constraint="positive", name="scale"))
```
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

CONSTRAINTS = ("positive", "unit_interval")


def _is_reference(value) -> bool:
    """A variable-like value a bijector must keep (not read once): tf/keras Variables,
    `tfp.util.TransformedVariable`, `tfp.util.DeferredTensor`."""
    return isinstance(value, (tf.Variable, tfp.util.DeferredTensor, keras.Variable))


def as_parameter(value, *, dtype=None, name: str | None = None):
    """`value` as a bijector parameter: variables kept, everything else a tensor.

    The public equivalent of what TFP's own bijectors do in `__init__`
    (`tensor_util.convert_nonref_to_tensor`): a `tf.Variable`, a
    `tfp.util.TransformedVariable` or a `tfp.util.DeferredTensor` comes back unchanged, so
    reading it later (`tf.convert_to_tensor(self._param)` inside `_forward`) sees the trained
    value; a Python number, list or NumPy array becomes a constant tensor of `dtype` (default:
    the value's own floating dtype, else float32).

    Args:
      value: the parameter.
      dtype: the dtype wanted; a variable of another dtype raises `TypeError`.
      name: name of the constant tensor.
    """
    if _is_reference(value):
        if dtype is not None and tf.as_dtype(dtype) != tf.as_dtype(value.dtype):
            raise TypeError(f"Parameter {getattr(value, 'name', '')!r} is "
                            f"{tf.as_dtype(value.dtype).name} but the bijector needs "
                            f"{tf.as_dtype(dtype).name}; create it in that dtype.")
        return value
    if dtype is None:
        dtype = _default_dtype(value)
    return tf.convert_to_tensor(value, dtype=dtype, name=name)


def _default_dtype(value):
    if isinstance(value, (tf.Tensor, np.ndarray, np.generic)) and \
            tf.as_dtype(value.dtype).is_floating:
        return tf.as_dtype(value.dtype)
    return tf.float32


def _constraint_bijector(constraint, dtype):
    if constraint is None:
        return None
    if isinstance(constraint, tfb.Bijector):
        return constraint
    if constraint == "positive":
        return tfb.Softplus(low=np.finfo(dtype.as_numpy_dtype).tiny)
    if constraint == "unit_interval":
        return tfb.Sigmoid()
    raise ValueError(f"constraint must be None, 'positive', 'unit_interval' or a tfb.Bijector "
                     f"mapping R onto the parameter's domain; got {constraint!r}.")


def trainable_parameter(initial, *, constraint=None, dtype=None, name: str | None = None
                        ) -> tf.Variable | tfp.util.TransformedVariable:
    """A trainable bijector parameter starting at `initial`, kept in its domain.

    * `constraint=None`: a `tf.Variable` (any real value);
    * `"positive"`: a `tfp.util.TransformedVariable` through a softplus, value > 0 after any
      update (the optimizer moves the unconstrained softplus^{-1}(value));
    * `"unit_interval"`: through a sigmoid, value in (0, 1);
    * a `tfb.Bijector` b: value = b(v) with v unconstrained (b must map R onto the domain).

    Pass it to your bijector as an argument, keep it with `as_parameter` (not
    `tf.convert_to_tensor`) in `__init__`, and read it with `tf.convert_to_tensor(...)` where
    it is used. `FlowModel` finds it and trains it; a `.keras` file saves it.

    Args:
      initial: the starting value (a number or array; its shape is the parameter's).
      constraint: None, "positive", "unit_interval" or a `tfb.Bijector`.
      dtype: float32 (default, or the array's floating dtype) or float64.
      name: the variable's name.
    """
    dtype = tf.as_dtype(dtype) if dtype is not None else _default_dtype(initial)
    if not dtype.is_floating:
        raise TypeError(f"A trainable parameter needs a floating dtype; got {dtype.name}.")
    value = tf.convert_to_tensor(initial, dtype=dtype)
    bijector = _constraint_bijector(constraint, dtype)
    name = name or "parameter"
    if bijector is None:
        return tf.Variable(value, name=name)
    if constraint in CONSTRAINTS:
        low, high = (0.0, np.inf) if constraint == "positive" else (0.0, 1.0)
        inside = np.all((value.numpy() > low) & (value.numpy() < high))
        if not inside:
            domain = "> 0" if constraint == "positive" else "in (0, 1)"
            raise ValueError(f"trainable_parameter {name!r}: the initial value must be "
                             f"{domain} for constraint={constraint!r}; got {value.numpy()}.")
    variable = tfp.util.TransformedVariable(value, bijector, dtype=dtype, name=name)
    if not np.all(np.isfinite(variable.pretransformed_input.numpy())):
        raise ValueError(f"trainable_parameter {name!r}: the constraint bijector "
                         f"{bijector.name} cannot reach the initial value {value.numpy()}.")
    return variable
