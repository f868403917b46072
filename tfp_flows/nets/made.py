"""MADE: masked autoencoder for distribution estimation (Germain et al., 2015).

A feed-forward network whose weight matrices are multiplied by fixed binary masks so that
output i depends only on inputs that come before i in a chosen order. Each input gets a
degree m(d) in 1..D (its position in the order), each hidden unit a degree in 1..D-1; a
hidden unit of degree k sees inputs of degree <= k, and the outputs for input d see
hidden units of degree < m(d). The Jacobian of the outputs with respect to the inputs is
then strictly triangular in that order, which is what a masked autoregressive flow
(Papamakarios et al., 2017) needs.

The masks are applied in the forward pass (kernel * mask), not through kernel
constraints, so they hold whatever optimizer trains the weights.
"""

import contextlib
import threading

import keras
import numpy as np
from keras import ops

from tfp_flows.nets.dense_stack import add_dense_stack_weights

DEFAULT_LOG_SCALE_BOUND = 6.0
_REUSE = threading.local()


@contextlib.contextmanager
def reuse_outputs():
    """Inside this block a MADE called again on the very same input tensor (and context)
    returns the output of its first call instead of evaluating the network again.

    TFP's MaskedAutoregressiveFlow runs its conditioner twice per log_prob (once in the
    inverse, once in the inverse log-det-Jacobian); graph optimisers merge the two forward
    passes but not their backward passes, so a training step back-propagates through every
    MADE twice. `FlowModel` computes its loss inside this block (no weight changes there), so
    both uses share one evaluation and one backward pass. Only for code that does not update
    the weights inside the block.
    """
    previous = getattr(_REUSE, "cache", None)
    _REUSE.cache = {}
    try:
        yield
    finally:
        _REUSE.cache = previous


def made_degrees(event_size, hidden_units, input_order="left-to-right"):
    """Degrees of the input and hidden units (lists of int NumPy arrays)."""
    if isinstance(input_order, str):
        if input_order == "left-to-right":
            in_degrees = np.arange(1, event_size + 1)
        elif input_order == "right-to-left":
            in_degrees = np.arange(event_size, 0, -1)
        else:
            raise ValueError(f"input_order must be 'left-to-right', 'right-to-left' or a "
                             f"permutation of 1..{event_size}; got {input_order!r}.")
    else:
        in_degrees = np.asarray(input_order, dtype=int)
        if sorted(in_degrees.tolist()) != list(range(1, event_size + 1)):
            raise ValueError(f"input_order must be a permutation of 1..{event_size} "
                             f"(the position of each input in the order); got "
                             f"{list(input_order)}.")
    degrees = [in_degrees]
    top = max(event_size - 1, 1)
    for units in hidden_units:
        # Spread degrees 1..D-1 evenly over the units, as in TFP's "equal" scheme.
        degrees.append(np.ceil(np.arange(1, units + 1) * top / units).astype(int))
    return degrees


def made_masks(event_size, hidden_units, params, input_order="left-to-right"):
    """Binary masks [fan_in, fan_out] of each layer; the last maps to event_size * params."""
    degrees = made_degrees(event_size, hidden_units, input_order)
    masks = [(d_out[None, :] >= d_in[:, None])
             for d_in, d_out in zip(degrees[:-1], degrees[1:], strict=True)]
    out_degrees = np.repeat(degrees[0], params)  # output (i, p) flattened as i * params + p
    masks.append(degrees[-1][:, None] < out_degrees[None, :])
    return [m.astype("float32") for m in masks]


def check_context(layer, context):
    """The context as a tensor of the layer's dtype, or None; clear errors on misuse."""
    if layer.context_size is None:
        if context is not None:
            raise ValueError(f"{type(layer).__name__} {layer.name!r} was built without "
                             "context_size but received a context; build it with "
                             "context_size=<context length> for a conditional flow.")
        return None
    if context is None:
        raise ValueError(f"{type(layer).__name__} {layer.name!r} is conditional "
                         f"(context_size={layer.context_size}) but got no context: pass "
                         "conditional_input=c (FlowModel(..., context_shape=...) does it).")
    context = ops.cast(context, layer.compute_dtype)
    if context.shape[-1] is not None and context.shape[-1] != layer.context_size:
        raise ValueError(f"{type(layer).__name__} {layer.name!r} expects a context of size "
                         f"{layer.context_size}, got shape {list(context.shape)}.")
    return context


@keras.saving.register_keras_serializable(package="tfp_flows")
class MADE(keras.layers.Layer):
    """Masked autoregressive network: x [..., D] -> parameters [..., D, params].

    Usable as `shift_and_log_scale_fn` of `tfb.MaskedAutoregressiveFlow` (params=2: shift
    and log-scale) and as the conditioner inside any `bijector_fn` (any params).

    Args:
      event_size: D, the number of inputs.
      params: parameters produced per input dimension.
      hidden_units: widths of the hidden layers.
      activation: Keras activation of the hidden layers.
      input_order: 'left-to-right', 'right-to-left', or a permutation of 1..D giving the
        position of each input in the autoregressive order.
      kernel_initializer: initializer of the hidden kernels.
      zero_init_output: start the output layer at zero, so that a fresh MAF is the
        identity (shift 0, log-scale 0). Default True.
      context_size: size of an optional context vector c (conditional flows). c feeds
        every layer, hidden and output, through its own unmasked kernel, so the
        autoregressive masks still hold for x whatever c is. Call as
        `made(x, conditional_input=c)`; TFP's MaskedAutoregressiveFlow passes it on from
        `bijector_kwargs` (see `tfp_flows.conditioning`).
      log_scale_bound: smooth clamp of the log-scale, for the affine MAF (params=2, outputs
        [..., 0] = shift and [..., 1] = log-scale): log_scale = b * tanh(raw / b), which is
        the identity near 0 and bounded by b. Without it a ReLU network extrapolates
        linearly, so far from the data the scales overflow and log_prob turns NaN.
        'auto' (default): b = 6 when params == 2, no clamp otherwise; None: no clamp.
      input_bound: smooth clamp of the inputs, x -> c * tanh(x / c), before the first layer
        (None, the default: no clamp). Elementwise, so the masks still hold. The outputs are
        then bounded functions of x that turn constant where |x_j| >> c: a MAF or SOS layer
        conditioned by this MADE is a fixed transformer of x_i (affine for the MAF) far from
        the data, instead of following the linear extrapolation of a ReLU network, whose
        shifts, scales and polynomial coefficients grow without bound there and compound
        over layers into log-densities thousands of nats below the truth (and into float32
        overflow). Give c in the units the layer sees (a few standard deviations of it).
    """

    def __init__(self, event_size, params=2, hidden_units=(64, 64), activation="relu",
                 input_order="left-to-right", kernel_initializer="glorot_uniform",
                 zero_init_output=True, log_scale_bound="auto", context_size=None,
                 input_bound=None, **kwargs):
        super().__init__(**kwargs)
        if int(event_size) < 1 or int(params) < 1:
            raise ValueError(f"event_size and params must be >= 1; got {event_size}, {params}.")
        self.event_size = int(event_size)
        self.params = int(params)
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = keras.activations.get(activation)
        self.input_order = input_order if isinstance(input_order, str) else [
            int(d) for d in input_order]
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.zero_init_output = bool(zero_init_output)
        if log_scale_bound == "auto":
            log_scale_bound = DEFAULT_LOG_SCALE_BOUND if self.params == 2 else None
        if log_scale_bound is not None and (self.params != 2 or float(log_scale_bound) <= 0):
            raise ValueError("log_scale_bound needs params=2 (shift, log-scale) and a bound "
                             f"> 0; got params={self.params}, bound={log_scale_bound}.")
        self.log_scale_bound = None if log_scale_bound is None else float(log_scale_bound)
        self.context_size = None if context_size is None else int(context_size)
        if input_bound is not None and not float(input_bound) > 0:
            raise ValueError(f"input_bound must be a number > 0 or None; got {input_bound}.")
        self.input_bound = None if input_bound is None else float(input_bound)
        self._masks_np = made_masks(self.event_size, self.hidden_units, self.params,
                                    self.input_order)

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.event_size:
            raise ValueError(f"MADE was built for event_size={self.event_size} but got inputs "
                             f"with {input_shape[-1]} features (shape {list(input_shape)}).")
        sizes = [self.event_size, *self.hidden_units, self.event_size * self.params]
        self.kernels, self.biases = add_dense_stack_weights(
            self, sizes, self.kernel_initializer, self.zero_init_output)
        self.context_kernels = []
        if self.context_size:
            for i, fan_out in enumerate(sizes[1:]):
                last = i == len(sizes) - 2
                init = "zeros" if last and self.zero_init_output else self.kernel_initializer
                self.context_kernels.append(self.add_weight(
                    shape=(self.context_size, fan_out), initializer=init,
                    name=f"context_kernel_{i}"))

    def call(self, x, conditional_input=None):
        cache = getattr(_REUSE, "cache", None)
        if cache is None:
            return self._forward_pass(x, conditional_input)
        key = (id(self), id(x), id(conditional_input))
        hit = cache.get(key)  # the inputs are kept alive in the entry, so ids stay unique
        if hit is not None and hit[0] is x and hit[1] is conditional_input:
            return hit[2]
        out = self._forward_pass(x, conditional_input)
        cache[key] = (x, conditional_input, out)
        return out

    def masked_kernels(self):
        """The kernels multiplied by their autoregressive masks (what the network applies)."""
        # Masks stay NumPy until here: a tensor made in build() would belong to whatever
        # graph first called the layer (e.g. a tf.function) and break later eager calls.
        return [kernel * ops.convert_to_tensor(mask, dtype=self.compute_dtype)
                for kernel, mask in zip(self.kernels, self._masks_np, strict=True)]

    def bound_log_scale(self, raw_log_scale):
        """The log-scale output from its raw pre-activation (the smooth clamp, if any)."""
        if self.log_scale_bound is None:
            return raw_log_scale
        b = self.log_scale_bound
        return b * ops.tanh(raw_log_scale / b)

    def bound_inputs(self, x):
        """The inputs the first layer sees: c * tanh(x / c) with c = input_bound, if any."""
        if self.input_bound is None:
            return x
        c = self.input_bound
        return c * ops.tanh(x / c)

    def _forward_pass(self, x, conditional_input=None):
        context = check_context(self, conditional_input)
        h = self.bound_inputs(x)
        last = len(self.kernels) - 1
        layers = zip(self.masked_kernels(), self.biases, strict=True)
        for i, (kernel, bias) in enumerate(layers):
            h = ops.matmul(h, kernel) + bias
            if context is not None:  # [..., C] @ [C, H] broadcasts against x's batch
                h = h + ops.matmul(context, self.context_kernels[i])
            if i < last:
                h = self.activation(h)
        h = ops.reshape(h, (*ops.shape(h)[:-1], self.event_size, self.params))
        if self.log_scale_bound is None:
            return h
        return ops.stack([h[..., 0], self.bound_log_scale(h[..., 1])], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.event_size, self.params)

    def get_config(self):
        config = super().get_config()
        config.update(event_size=self.event_size, params=self.params,
                      hidden_units=self.hidden_units,
                      activation=keras.activations.serialize(self.activation),
                      input_order=self.input_order,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      zero_init_output=self.zero_init_output,
                      log_scale_bound=self.log_scale_bound, context_size=self.context_size,
                      input_bound=self.input_bound)
        return config
