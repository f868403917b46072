"""PixelCNN-style masked 2-D convolutions: an autoregressive conditioner for images.

PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural
Networks", ICML; van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders", NeurIPS) orders the entries of an image [H, W, C] in raster order, pixel by
pixel (row by row, left to right) and, within a pixel, channel by channel. A convolution
kernel is multiplied by a mask that zeroes the taps below the centre row and right of the
centre in the centre row; at the centre tap, the feature maps are split into C groups
(group g belongs to channel g) and

  * type A (first layer): output group g sees input channels < g at the same pixel,
  * type B (later layers): output group g sees input groups <= g at the same pixel.

So after one type-A layer and any number of type-B layers, the outputs for entry (i, j, c)
depend only on entries before (i, j, c) in the raster order: the Jacobian of the outputs
with respect to the input is strictly triangular, as `tfb.MaskedAutoregressiveFlow` with
`event_ndims=3` needs. (Stacked masked convolutions have PixelCNN's known "blind spot" to
the upper right; it limits what the conditioner sees but never breaks the order.)

The masks are applied in the forward pass (kernel * mask), so they hold under any
optimizer, under XLA and in an exported SavedModel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
from keras import ops


def _groups(num_features, channels):
    """The channel group (0..channels-1) of each of num_features feature maps (contiguous)."""
    return (np.arange(num_features) * channels) // num_features


def pixelcnn_mask(kernel_size, in_features, out_features, mask_type, channels,
                  in_groups=None, out_groups=None):
    """The [kh, kw, in, out] float32 mask of a PixelCNN masked convolution.

    in_groups / out_groups: the channel group of each input / output feature map; by
    default the feature maps are split into `channels` contiguous groups.
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B'; got {mask_type!r}.")
    kh, kw = kernel_size
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"Masked convolutions need odd kernel sizes; got {kernel_size}.")
    ci, cj = kh // 2, kw // 2
    in_groups = _groups(in_features, channels) if in_groups is None else np.asarray(in_groups)
    out_groups = (_groups(out_features, channels) if out_groups is None
                  else np.asarray(out_groups))
    mask = np.zeros([kh, kw, in_features, out_features], np.float32)
    mask[:ci] = 1.0                     # rows above the centre
    mask[ci, :cj] = 1.0                 # left of the centre in the centre row
    if mask_type == "A":
        centre = in_groups[:, None] < out_groups[None, :]
    else:
        centre = in_groups[:, None] <= out_groups[None, :]
    mask[ci, cj] = centre.astype(np.float32)
    return mask


@keras.saving.register_keras_serializable(package="tfp_flows")
class MaskedConv2D(keras.layers.Layer):
    """A 2-D convolution ('same' padding, stride 1) whose kernel is masked in call().

    Args:
      filters: output feature maps.
      kernel_size: int or (kh, kw), odd.
      mask_type: 'A' (strict: excludes the current entry) or 'B' (includes it).
      channels: C, the number of channels of the image (groups of feature maps).
      in_groups, out_groups: optional explicit channel groups of the input / output feature
        maps (lists of ints in 0..C-1); default: contiguous groups.
      kernel_initializer, bias_initializer: Keras initializers.
    """

    def __init__(self, filters: int, kernel_size: int, mask_type: str = "B", channels: int = 1,
                 in_groups: int | None = None, out_groups: int | None = None,
                 kernel_initializer: str | Callable = "glorot_uniform",
                 bias_initializer: str | Callable = "zeros", **kwargs) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.kernel_size = tuple(int(k) for k in ks)
        self.mask_type = mask_type
        self.channels = int(channels)
        self.in_groups = None if in_groups is None else [int(g) for g in in_groups]
        self.out_groups = None if out_groups is None else [int(g) for g in out_groups]
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        # Validate early (odd kernel, mask type).
        pixelcnn_mask(self.kernel_size, self.channels, self.filters, mask_type, self.channels,
                      out_groups=self.out_groups)

    def build(self, input_shape):
        in_features = int(input_shape[-1])
        self.kernel = self.add_weight(shape=(*self.kernel_size, in_features, self.filters),
                                      initializer=self.kernel_initializer, name="kernel")
        self.bias = self.add_weight(shape=(self.filters,), initializer=self.bias_initializer,
                                    name="bias")
        # Kept as NumPy and made a tensor in call(): a tensor made here would belong to the
        # graph of whichever tf.function first built the layer.
        self.mask = pixelcnn_mask(self.kernel_size, in_features, self.filters, self.mask_type,
                                  self.channels, self.in_groups, self.out_groups)

    def call(self, x):
        mask = ops.convert_to_tensor(self.mask, dtype=self.kernel.dtype)
        return ops.conv(x, self.kernel * mask, strides=1, padding="same") + self.bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=list(self.kernel_size),
                      mask_type=self.mask_type, channels=self.channels,
                      in_groups=self.in_groups, out_groups=self.out_groups,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      bias_initializer=keras.initializers.serialize(self.bias_initializer))
        return config


@keras.saving.register_keras_serializable(package="tfp_flows")
class PixelCNN(keras.layers.Layer):
    """Masked-convolution conditioner: images [..., H, W, C] -> [..., H, W, C, params].

    Architecture: a type-A masked convolution (`first_kernel_size`), `num_layers` residual
    blocks of a type-B masked convolution (`kernel_size`) with `activation`, then a type-B
    1x1 hidden layer and a type-B 1x1 output layer giving `params` numbers per entry. The
    output layer starts at zero (`zero_init_output`), so a fresh MAF is the identity.

    Usable as `shift_and_log_scale_fn` of `tfb.MaskedAutoregressiveFlow(event_ndims=3)`
    (params=2: shift and log-scale per entry) or as the conditioner in its `bijector_fn`
    (any params, e.g. the 3K parameters of `bijectors.DeepSigmoidal`).

    Args:
      event_shape: (H, W, C) of the images.
      params: numbers produced per image entry.
      filters: feature maps of the hidden layers (split into C groups).
      num_layers: residual type-B blocks after the type-A layer.
      first_kernel_size: odd kernel size of the type-A layer.
      kernel_size: odd kernel size of the type-B layers.
      activation: Keras activation.
      kernel_initializer: initializer of the hidden kernels.
      zero_init_output: start the output layer at zero (identity flow). Default True.
    """

    def __init__(self, event_shape: Sequence[int], params: int = 2, filters: int = 32,
                 num_layers: int = 2, first_kernel_size: int = 5, kernel_size: int = 3,
                 activation: str | Callable = "relu",
                 kernel_initializer: str | Callable = "glorot_uniform",
                 zero_init_output: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        event_shape = [int(s) for s in event_shape]
        if len(event_shape) != 3:
            raise ValueError(f"PixelCNN needs event_shape (H, W, C); got {event_shape}.")
        self.event_shape = event_shape
        self.params = int(params)
        self.filters = int(filters)
        if self.filters < event_shape[2]:
            raise ValueError(f"filters ({filters}) must be at least the number of channels "
                             f"({event_shape[2]}): every channel needs its own group.")
        self.num_layers = int(num_layers)
        self.first_kernel_size = int(first_kernel_size)
        self.kernel_size = int(kernel_size)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.zero_init_output = bool(zero_init_output)
        channels = event_shape[2]
        common = dict(channels=channels, kernel_initializer=self.kernel_initializer,
                      dtype=self.dtype_policy)
        self.input_layer = MaskedConv2D(self.filters, self.first_kernel_size, "A",
                                        name="masked_a", **common)
        self.hidden_layers = [MaskedConv2D(self.filters, self.kernel_size, "B",
                                           name=f"masked_b_{i}", **common)
                              for i in range(self.num_layers)]
        self.head = MaskedConv2D(self.filters, 1, "B", name="head", **common)
        out_groups = np.repeat(np.arange(channels), self.params).tolist()  # (c, p) -> c
        out_common = dict(common)
        if self.zero_init_output:
            out_common["kernel_initializer"] = "zeros"
        self.output_layer = MaskedConv2D(channels * self.params, 1, "B", out_groups=out_groups,
                                         name="output", **out_common)

    def build(self, input_shape):
        h, w, c = self.event_shape
        if tuple(input_shape[-3:]) != (h, w, c):
            raise ValueError(f"PixelCNN was built for images {self.event_shape} but got "
                             f"inputs of shape {list(input_shape)}.")
        shape = (None, h, w, c)
        self.input_layer.build(shape)
        shape = (None, h, w, self.filters)
        for layer in self.hidden_layers:
            layer.build(shape)
        self.head.build(shape)
        self.output_layer.build(shape)

    def call(self, x):
        h, w, c = self.event_shape
        batch_shape = ops.shape(x)[:-3]
        images = ops.reshape(x, (-1, h, w, c))
        hidden = self.activation(self.input_layer(images))
        for layer in self.hidden_layers:
            hidden = hidden + self.activation(layer(hidden))
        hidden = self.activation(self.head(hidden))
        out = self.output_layer(hidden)
        return ops.reshape(out, (*batch_shape, h, w, c, self.params))

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.params)

    def get_config(self):
        config = super().get_config()
        config.update(event_shape=self.event_shape, params=self.params, filters=self.filters,
                      num_layers=self.num_layers, first_kernel_size=self.first_kernel_size,
                      kernel_size=self.kernel_size,
                      activation=keras.activations.serialize(self.activation),
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      zero_init_output=self.zero_init_output)
        return config
