"""PixelMAF: a masked autoregressive flow over images with PixelCNN masked convolutions.

Each layer is TFP's `tfb.MaskedAutoregressiveFlow(event_ndims=3)` over images [H, W, C]
in raster order (pixel by pixel, then channel by channel), conditioned by a
`nets.PixelCNN` (one type-A masked convolution, then type-B ones). The transformer is
affine (PixelCNN gives shift and log-scale per entry, Papamakarios et al. 2017) or, with
`transformer="dsf"`, the deep sigmoidal transformer of neural autoregressive flows
(Huang et al. 2018). Consecutive layers alternate between raster order and its reverse
(the image turned by 180 degrees and, for C > 1, the channels reversed).

With `unit_interval=True` (default) the model's density lives on pixel values in [0, 1]:
the flow's output y in R is mapped to v = (sigmoid(y) - alpha) / (1 - 2 alpha), the
inverse of the usual logit preprocessing y = logit(alpha + (1 - 2 alpha) v), so its
log-det is part of `log_prob` and the NLL is that of v itself. For 8-bit-like data with
L levels dequantised as v = (x + u) / L, u ~ U[0, 1)^D, the bits per dimension of the
discrete data are bounded by

    bits/dim = ( E[-log p(v)] + D log L ) / (D ln 2) = bits_per_dim(v) + log2(L).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import kernel_initializer, unit_interval_bijector
from tfp_flows.models.naf import dsf_bijector_fn
from tfp_flows.models.recipe import Recipe

from tfp_flows import FlowModel, nets
from tfp_flows.types import DTypeLike, Seed

tfb, tfd = tfp.bijectors, tfp.distributions


def image_shape(event_shape):
    """(H, W, C) from (H, W, C), (H, W) or an int D = H * H (one channel, square image)."""
    if isinstance(event_shape, (int, np.integer)):
        side = math.isqrt(int(event_shape))
        if side * side != int(event_shape):
            raise ValueError(f"pixelmaf models images: an int event size must be a square "
                             f"number of pixels (e.g. 64 for 8x8); got {event_shape}. Pass "
                             f"the image shape (H, W, C) otherwise.")
        return (side, side, 1)
    shape = tuple(int(s) for s in event_shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3:
        raise ValueError(f"pixelmaf needs an image shape (H, W, C); got {event_shape}.")
    return shape


def reverse_raster(shape, index):
    """The image turned by 180 degrees (and channels reversed): reverses the raster order."""
    h, w, c = shape
    flips = [tfb.Permute(list(range(h))[::-1], axis=-3, name=f"flip_rows_{index}"),
             tfb.Permute(list(range(w))[::-1], axis=-2, name=f"flip_cols_{index}")]
    if c > 1:
        flips.append(tfb.Permute(list(range(c))[::-1], axis=-1, name=f"flip_channels_{index}"))
    return flips


def _layer(shape, index, transformer, hidden_size, conditioner_options, dtype, seed):
    params = 2 if transformer == "affine" else 3 * hidden_size
    net = nets.PixelCNN(shape, params=params, dtype=dtype,
                        kernel_initializer=kernel_initializer(seed, index),
                        name=f"pixelcnn_{index}", **conditioner_options)
    if transformer == "affine":
        return tfb.MaskedAutoregressiveFlow(net, event_ndims=3, name=f"pixelmaf_{index}")
    return tfb.MaskedAutoregressiveFlow(bijector_fn=dsf_bijector_fn(net), event_ndims=3,
                                        name=f"pixelnaf_{index}")


def build_pixelmaf(event_shape: Sequence[int] = (8, 8, 1), *, num_layers: int = 2,
                   filters: int = 32, num_blocks: int = 2, first_kernel_size: int = 5,
                   kernel_size: int = 3, activation: str | Callable = "relu",
                   transformer: str = "affine", hidden_size: int = 4, unit_interval: bool = True,
                   alpha: float = 0.05, dtype: DTypeLike = "float32", seed: Seed = None,
                   name: str = "pixelmaf") -> FlowModel:
    """A masked-convolution MAF `FlowModel` over images, reporting bits/dim.

    Args:
      event_shape: (H, W, C), (H, W), or an int number of pixels of a square image.
      num_layers: MAF layers (raster order and its reverse alternate).
      filters, num_blocks, first_kernel_size, kernel_size, activation: of each
        `nets.PixelCNN` (num_blocks = its residual type-B blocks).
      transformer: 'affine' (shift and log-scale) or 'dsf' (`bijectors.DeepSigmoidal`
        with `hidden_size` sigmoid units).
      unit_interval: model pixel values in [0, 1] through the inverse logit map (see the
        module docstring); False: the flow lives on R^D.
      alpha: the logit margin.
    """
    if transformer not in ("affine", "dsf"):
        raise ValueError(f"transformer must be 'affine' or 'dsf'; got {transformer!r}.")
    shape = image_shape(event_shape)
    options = dict(filters=filters, num_layers=num_blocks, first_kernel_size=first_kernel_size,
                   kernel_size=kernel_size, activation=activation)
    bijectors = []
    for i in range(num_layers):
        if i:
            bijectors.extend(reverse_raster(shape, i))
        bijectors.append(_layer(shape, i, transformer, hidden_size, options, dtype, seed))
    if unit_interval:
        bijectors.append(unit_interval_bijector(alpha, dtype))
    base = tfd.Sample(tfd.Normal(tf.constant(0.0, dtype), tf.constant(1.0, dtype)),
                      sample_shape=shape)
    # Chain applies its last bijector first: base -> MAF layers -> [0, 1].
    dist = tfd.TransformedDistribution(base, tfb.Chain(bijectors[::-1], name=f"{name}_chain"))
    return FlowModel(dist, bits_per_dim=True, name=name)


RECIPES = {
    "pixelmaf": Recipe(
        build_pixelmaf, "MAF over images with PixelCNN masked convolutions (bits/dim)",
        image=True, default_data="digits",
        data_defaults={"digits": {"batch_size": 64, "epochs": 20, "learning_rate": 1e-3}}),
}
