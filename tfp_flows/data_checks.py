"""Checks on data given to a flow, with errors that name the problem.

They run on the host, once, before training or evaluation, never inside a compiled step.
"""

import numpy as np
import tensorflow as tf


class FlowDataError(ValueError):
    """Data that a flow cannot take: wrong shape, wrong dtype, NaN or Inf."""


def _describe_rows(rows, limit=10):
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    more = f", ... ({len(rows)} rows in all)" if len(rows) > limit else ""
    return f"[{shown}{more}]"


def check_dtype(dtype, what):
    dtype = tf.as_dtype(dtype)
    if not dtype.is_floating:
        hint = ""
        if dtype.is_integer or dtype.is_bool:
            hint = (" Cast it to float yourself (e.g. x.astype('float32')); discrete data "
                    "such as pixel values also needs dequantizing before a flow sees it.")
        raise FlowDataError(
            f"{what} has dtype {dtype.name}, but a flow models real-valued data and needs "
            f"floating-point input.{hint}")


def check_event_shape(shape, event_shape, what):
    shape = tf.TensorShape(shape)
    event_shape = tf.TensorShape(event_shape)
    n = event_shape.rank
    if shape.rank is not None and shape.rank < n + 1:
        raise FlowDataError(
            f"{what} has shape {shape.as_list()}, but this flow needs a batch of events of "
            f"shape {event_shape.as_list()}, i.e. shape {[None, *event_shape.as_list()]}.")
    if n and shape.rank is not None and not shape[-n:].is_compatible_with(event_shape):
        raise FlowDataError(
            f"{what} has events of shape {shape[-n:].as_list()} (full shape {shape.as_list()}), "
            f"but this flow's event shape is {event_shape.as_list()}.")


def check_array(x, event_shape, dtype, what="x"):
    """Validate an in-memory array (NumPy or eager tensor) and return it as `dtype` NumPy.

    Raises `FlowDataError` for a non-floating dtype, a wrong event shape, or NaN/Inf values;
    the NaN/Inf error names the offending rows.
    """
    if isinstance(x, tf.Tensor):
        x = x.numpy()
    x = np.asarray(x)
    if x.dtype == object or x.dtype.kind in "USV":
        raise FlowDataError(f"{what} holds non-numeric values (dtype {x.dtype}); a flow needs "
                            "floating-point numbers.")
    check_dtype(x.dtype, what)
    check_event_shape(x.shape, event_shape, what)
    n = tf.TensorShape(event_shape).rank
    finite = np.isfinite(x).reshape(x.shape[: x.ndim - n] + (-1,)).all(axis=-1)
    if not finite.all():
        bad = np.argwhere(~finite)
        rows = bad[:, 0] if bad.shape[1] == 1 else [tuple(b) for b in bad]
        kind = "NaN" if np.isnan(x).any() else "Inf"
        raise FlowDataError(f"{what} contains {kind} or Inf values in rows "
                            f"{_describe_rows(np.asarray(rows))}; remove or impute them "
                            "before training.")
    return x.astype(tf.as_dtype(dtype).as_numpy_dtype, copy=False)


def check_dataset_spec(dataset, event_shape, what="dataset", *, context_shape=None):
    """Check a `tf.data.Dataset`'s element spec (shape and dtype) without iterating it.

    Unconditional flows take datasets of x; conditional ones (`context_shape` given) of
    (context, x) pairs.
    """
    spec = dataset.element_spec
    if context_shape is not None:
        if not isinstance(spec, tuple) or len(spec) != 2:
            raise FlowDataError(f"{what} must yield (context, x) pairs for a conditional flow.")
        check_dtype(spec[0].dtype, f"{what}: context")
        check_event_shape(spec[0].shape, context_shape, f"{what}: context")
        spec, what = spec[1], f"{what}: x"
    elif isinstance(spec, tuple):
        if len(spec) == 1 or (len(spec) >= 2 and spec[1] is None):
            spec = spec[0]
        else:
            raise FlowDataError(
                f"{what} yields tuples of {len(spec)} tensors, but an unconditional flow "
                "is trained on the data alone (no targets): yield just x.")
    if not isinstance(spec, tf.TensorSpec):
        raise FlowDataError(f"{what} yields {type(spec).__name__}, not tensors of data.")
    check_dtype(spec.dtype, what)
    check_event_shape(spec.shape, event_shape, what)
