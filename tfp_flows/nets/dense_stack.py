"""The weights of a plain stack of dense layers, for layers that apply them by hand."""

import keras


def add_dense_stack_weights(layer, sizes, kernel_initializer, zero_init_output):
    """Add kernels [sizes[i], sizes[i+1]] and zero biases to `layer`; return both lists.

    With `zero_init_output` the last kernel starts at zero, so the stack outputs its (zero)
    bias at first: the identity start of a flow layer. Layers that mask or rescale their
    kernels in `call` (MADE, LipschitzMLP) create their weights with this.
    """
    kernels, biases = [], []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = i == len(sizes) - 2
        init = "zeros" if last and zero_init_output else kernel_initializer
        kernels.append(layer.add_weight(shape=(fan_in, fan_out), initializer=init,
                                        name=f"kernel_{i}"))
        biases.append(layer.add_weight(shape=(fan_out,), initializer="zeros",
                                       name=f"bias_{i}"))
    return kernels, biases


def build_in_sequence(layers, input_shape):
    """Build Keras layers applied one after the other to inputs of `input_shape`."""
    shape = tuple(input_shape)
    for layer in layers:
        layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape


def build_context_projection(layer, units, kernel_initializer):
    """A bias-free Dense c [..., context_size] -> [..., units], built, for `layer`'s context.

    Conditioners of conditional flows add it to their first pre-activation:
    h1 = act(W x + V c + b), so c reaches every later unit.
    """
    projection = keras.layers.Dense(units, use_bias=False, kernel_initializer=kernel_initializer,
                                    dtype=layer.dtype_policy, name="context")
    projection.build((layer.context_size,))
    return projection
