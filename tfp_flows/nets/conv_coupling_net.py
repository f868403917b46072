"""ConvCouplingNet: the convolutional conditioner of an image affine coupling layer.

RealNVP (Dinh et al. 2017) and Glow (Kingma & Dhariwal 2018, section 3.3) compute the
shift and log-scale of the transformed half of an image from the other half with a small
CNN: conv 3×3 → ReLU → conv 1×1 → ReLU → conv 3×3. Glow initialises the last convolution
to zero, so each fresh coupling layer is the identity; this net does the same.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfp_flows")
class ConvCouplingNet(keras.layers.Layer):
    """Images [N, H, W, C_in] -> (shift, log_scale), each [N, H, W, output_channels].

    Args:
      hidden_channels: width of the hidden convolutions.
      output_channels: channels of shift and log_scale (default: C_in).
      kernel_size: spatial size of the first and last convolution (the middle one is 1×1).
      activation: Keras activation of the hidden layers.
      kernel_initializer: initializer of the hidden kernels (the last one is zeros).
    """

    def __init__(self, hidden_channels: int = 64, output_channels: int | None = None,
                 kernel_size: int = 3, activation: str | Callable = "relu",
                 kernel_initializer: str | Callable = "glorot_uniform", **kwargs) -> None:
        super().__init__(**kwargs)
        self.hidden_channels = int(hidden_channels)
        self.output_channels = None if output_channels is None else int(output_channels)
        self.kernel_size = int(kernel_size)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        out = self.output_channels or int(input_shape[-1])
        self.output_channels = out
        conv = keras.layers.Conv2D
        self.conv_in = conv(self.hidden_channels, self.kernel_size, padding="same",
                            activation=self.activation, dtype=self.dtype_policy,
                            kernel_initializer=self.kernel_initializer, name="conv_in")
        self.conv_mid = conv(self.hidden_channels, 1, activation=self.activation,
                             dtype=self.dtype_policy,
                             kernel_initializer=self.kernel_initializer, name="conv_mid")
        self.conv_out = conv(2 * out, self.kernel_size, padding="same", dtype=self.dtype_policy,
                             kernel_initializer="zeros", bias_initializer="zeros",
                             name="conv_out")
        shape = tuple(input_shape)
        self.conv_in.build(shape)
        shape = (*shape[:-1], self.hidden_channels)
        self.conv_mid.build(shape)
        self.conv_out.build(shape)

    def call(self, x):
        out = self.conv_out(self.conv_mid(self.conv_in(x)))
        shift, log_scale = ops.split(out, 2, axis=-1)
        return shift, log_scale

    def get_config(self):
        config = super().get_config()
        config.update(hidden_channels=self.hidden_channels,
                      output_channels=self.output_channels, kernel_size=self.kernel_size,
                      activation=keras.activations.serialize(self.activation),
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config
