"""WaveNet-style causal dilated 1-D convolutions: an autoregressive conditioner for sequences.

WaveNet (van den Oord et al. 2016, "WaveNet: A Generative Model for Raw Audio",
arXiv:1609.03499) models a sequence x_1..x_T autoregressively with stacks of causal
convolutions: the output at time t is computed from inputs at times <= t only (padding on
the left), and dilations 1, 2, 4, ... make the receptive field grow exponentially with
depth. Here the first convolution is *strictly* causal: its kernel is multiplied by a mask
that removes the tap at the current time, so it sees x_<t; every later layer is causal
(sees times <= t of its input). Hence the parameters produced for time t depend on x_<t
only, the Jacobian of the outputs with respect to the inputs is strictly lower triangular
in time, and the network can condition `tfb.MaskedAutoregressiveFlow` on sequences.

Blocks are WaveNet's gated residual blocks: h = tanh(W_f * x) . sigmoid(W_g * x), then a
1x1 convolution back to the residual stream and a 1x1 convolution to the skip stream;
the last block has no residual output. The sum of the skips goes through ReLU, 1x1, ReLU,
1x1 to the outputs.

The masks are applied in the forward pass (kernel * mask), so they hold under any
optimizer, under XLA and in an exported SavedModel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="tfp_flows")
class CausalConv1D(keras.layers.Layer):
    """Causal dilated 1-D convolution [batch, T, in] -> [batch, T, filters].

    The output at time t sees inputs at t - (k-1)d, ..., t - d, t (left zero padding of
    (k-1)d). With `exclusive=True` the kernel tap at t is masked out in call(), so the output
    sees times < t only.

    Args:
      filters: output channels.
      kernel_size: taps k.
      dilation_rate: d.
      exclusive: mask out the current time step (strictly causal).
      kernel_initializer, bias_initializer: Keras initializers.
    """

    def __init__(self, filters: int, kernel_size: int = 2, dilation_rate: int = 1,
                 exclusive: bool = False, kernel_initializer: str | Callable = "glorot_uniform",
                 bias_initializer: str | Callable = "zeros", **kwargs) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.dilation_rate = int(dilation_rate)
        self.exclusive = bool(exclusive)
        if self.exclusive and self.kernel_size < 2:
            raise ValueError("An exclusive (strictly causal) convolution needs kernel_size >= 2:"
                             " with one tap it would see nothing.")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        self.kernel = self.add_weight(shape=(self.kernel_size, in_channels, self.filters),
                                      initializer=self.kernel_initializer, name="kernel")
        self.bias = self.add_weight(shape=(self.filters,), initializer=self.bias_initializer,
                                    name="bias")
        mask = np.ones([self.kernel_size, in_channels, self.filters], np.float32)
        if self.exclusive:
            mask[-1] = 0.0  # the last tap is the current time step
        self.mask = mask  # NumPy; a tensor in call() (see MaskedConv2D.build)

    def call(self, x):
        pad = (self.kernel_size - 1) * self.dilation_rate
        x = ops.pad(x, [[0, 0], [pad, 0], [0, 0]])
        mask = ops.convert_to_tensor(self.mask, dtype=self.kernel.dtype)
        return ops.conv(x, self.kernel * mask, strides=1, padding="valid",
                        dilation_rate=self.dilation_rate) + self.bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size,
                      dilation_rate=self.dilation_rate, exclusive=self.exclusive,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      bias_initializer=keras.initializers.serialize(self.bias_initializer))
        return config


@keras.saving.register_keras_serializable(package="tfp_flows")
class WaveNet(keras.layers.Layer):
    """Causal dilated conditioner: sequences [..., T] -> parameters [..., T, params].

    Usable as `shift_and_log_scale_fn` of `tfb.MaskedAutoregressiveFlow` over events [T]
    (params=2: shift and log-scale per time step) or as the conditioner inside its
    `bijector_fn` (any params). The output for time t depends on x_<t only.

    Args:
      sequence_length: T.
      params: numbers produced per time step.
      filters: channels of the residual stream.
      dilations: dilation of each gated residual block; the outputs for time t see
        x_{t-L}, ..., x_{t-1} with L = (kernel_size - 1) * (1 + sum(dilations)).
      kernel_size: taps of the causal convolutions.
      kernel_initializer: initializer of the hidden kernels.
      zero_init_output: start the output layer at zero (identity flow). Default True.
    """

    def __init__(self, sequence_length: int, params: int = 2, filters: int = 32,
                 dilations: Sequence[int] = (1, 2, 4, 8), kernel_size: int = 2,
                 kernel_initializer: str | Callable = "glorot_uniform",
                 zero_init_output: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sequence_length = int(sequence_length)
        self.params = int(params)
        self.filters = int(filters)
        self.dilations = [int(d) for d in dilations]
        if not self.dilations:
            raise ValueError("WaveNet needs at least one dilated block (dilations=()).")
        self.kernel_size = int(kernel_size)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.zero_init_output = bool(zero_init_output)
        common = dict(kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy)
        self.input_layer = CausalConv1D(self.filters, self.kernel_size, 1, exclusive=True,
                                        name="causal_exclusive", **common)
        self.filter_layers, self.gate_layers = [], []
        self.residual_layers, self.skip_layers = [], []
        for i, d in enumerate(self.dilations):
            self.filter_layers.append(CausalConv1D(self.filters, self.kernel_size, d,
                                                   name=f"filter_{i}", **common))
            self.gate_layers.append(CausalConv1D(self.filters, self.kernel_size, d,
                                                 name=f"gate_{i}", **common))
            if i < len(self.dilations) - 1:  # the last block feeds the skips only
                self.residual_layers.append(CausalConv1D(self.filters, 1,
                                                         name=f"residual_{i}", **common))
            self.skip_layers.append(CausalConv1D(self.filters, 1, name=f"skip_{i}", **common))
        self.head = CausalConv1D(self.filters, 1, name="head", **common)
        out_common = dict(common)
        if self.zero_init_output:
            out_common["kernel_initializer"] = "zeros"
        self.output_layer = CausalConv1D(self.params, 1, name="output", **out_common)

    def build(self, input_shape):
        if input_shape[-1] is not None and int(input_shape[-1]) != self.sequence_length:
            raise ValueError(f"WaveNet was built for sequences of length {self.sequence_length} "
                             f"but got inputs of shape {list(input_shape)}.")
        t = self.sequence_length
        self.input_layer.build((None, t, 1))
        for layers in (self.filter_layers, self.gate_layers, self.residual_layers,
                       self.skip_layers):
            for layer in layers:
                layer.build((None, t, self.filters))
        self.head.build((None, t, self.filters))
        self.output_layer.build((None, t, self.filters))

    def call(self, x):
        t = self.sequence_length
        batch_shape = ops.shape(x)[:-1]
        h = self.input_layer(ops.reshape(x, (-1, t, 1)))
        skips = 0.0
        last = len(self.dilations) - 1
        for i, (f, g, skip) in enumerate(zip(self.filter_layers, self.gate_layers,
                                             self.skip_layers, strict=True)):
            gated = ops.tanh(f(h)) * ops.sigmoid(g(h))
            skips = skips + skip(gated)
            if i < last:
                h = h + self.residual_layers[i](gated)
        out = self.output_layer(ops.relu(self.head(ops.relu(skips))))
        return ops.reshape(out, (*batch_shape, t, self.params))

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.params)

    def get_config(self):
        config = super().get_config()
        config.update(sequence_length=self.sequence_length, params=self.params,
                      filters=self.filters, dilations=self.dilations,
                      kernel_size=self.kernel_size,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      zero_init_output=self.zero_init_output)
        return config
