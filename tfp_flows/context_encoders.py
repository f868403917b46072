"""Context encoders: any Keras network in front of a conditional flow's context input.

`FlowModel(dist, context_encoder=net)` models p(x | c) = flow(x | net(c)): the raw input c
(a vector, an image, a set of observations, ...) goes through `net`, whose output is the
context the flow's conditioners take (`context_size=k` = the width of `net`'s output). The
encoder is trained jointly with the flow by maximum likelihood. These helpers check, when the
model is built, that the encoder fits: a known input shape, and an output of the flow's dtype
with one row per input row.
"""

import keras
import tensorflow as tf


def encoder_input_shape(encoder: keras.layers.Layer, context_shape=None) -> tf.TensorShape:
    """The shape of one raw context: `context_shape`, or read off the encoder's `Input`.

    Raises ValueError (one line saying what to do) when neither gives it, when the two
    disagree, or when the encoder takes several inputs.
    """
    if not isinstance(encoder, keras.layers.Layer):
        raise TypeError(f"context_encoder must be a Keras 3 layer or model (keras.Sequential, "
                        f"a functional keras.Model, a Layer subclass); got "
                        f"{type(encoder).__name__}.")
    inputs = None
    try:
        inputs = encoder.inputs
    except (AttributeError, ValueError):
        inputs = None
    declared = None
    if inputs:
        if len(inputs) != 1:
            raise ValueError(f"context_encoder {encoder.name!r} takes {len(inputs)} inputs; "
                             f"FlowModel passes it one tensor. Concatenate or stack the inputs "
                             f"into one array, or wrap the network in a model of one input.")
        declared = tf.TensorShape(inputs[0].shape[1:])
    if context_shape is None:
        if declared is None or not declared.is_fully_defined():
            raise ValueError(f"FlowModel cannot tell the shape of one raw context for "
                             f"context_encoder {encoder.name!r}: pass context_shape=[...] (the "
                             f"shape of one input row, before the encoder), or build the "
                             f"encoder from keras.Input(shape=...).")
        return declared
    context_shape = tf.TensorShape(context_shape)
    if declared is not None and not declared.is_compatible_with(context_shape):
        raise ValueError(f"context_shape {context_shape.as_list()} does not match the input "
                         f"of context_encoder {encoder.name!r}, {declared.as_list()}; with an "
                         f"encoder, context_shape is the shape of one raw input row.")
    return context_shape


def check_encoder_output(encoder: keras.layers.Layer, context_shape, dtype) -> tf.TensorShape:
    """Run `encoder` on one zero row (building it); returns the output shape of one row.

    The output must be a single tensor of the flow's dtype with one row per input row.
    """
    probe = tf.zeros([2, *tf.TensorShape(context_shape).as_list()], dtype)
    try:
        features = encoder(probe)
    except Exception as e:  # noqa: BLE001 -- any failure is reported in one line
        raise ValueError(f"context_encoder {encoder.name!r} could not run on a batch of raw "
                         f"contexts of shape [batch, {', '.join(map(str, context_shape))}] "
                         f"and dtype {tf.as_dtype(dtype).name}: {e}") from e
    if isinstance(features, (list, tuple, dict)) or not hasattr(features, "shape"):
        raise ValueError(f"context_encoder {encoder.name!r} must return one tensor; got "
                         f"{type(features).__name__}.")
    if tf.as_dtype(features.dtype) != tf.as_dtype(dtype):
        raise TypeError(f"context_encoder {encoder.name!r} returns {features.dtype.name} but the "
                        f"flow is {tf.as_dtype(dtype).name}: build the encoder's layers with "
                        f"dtype='{tf.as_dtype(dtype).name}'.")
    if features.shape.rank is None or features.shape.rank < 2 or features.shape[0] != 2:
        raise ValueError(f"context_encoder {encoder.name!r} must return one feature row per "
                         f"input row, [batch, k]; for 2 rows it returned shape "
                         f"{features.shape.as_list()}.")
    return tf.TensorShape(features.shape[1:])
