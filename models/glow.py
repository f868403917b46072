"""Glow: a multi-scale flow of ActNorm, invertible 1x1 convolutions and affine couplings
(Kingma & Dhariwal 2018), on discrete images through dequantization.

In the data -> latent direction, each scale squeezes the image (space-to-depth,
[H, W, C] -> [H/2, W/2, 4C]), applies K steps of flow, each

    ActNorm -> invertible 1x1 convolution (LU) -> affine coupling (channel mask, parity
    alternating; `nets.ConvCouplingNet` with a zero-initialised last layer),

then factors out half of the channels (they go to the latent unchanged) and continues
with the other half at the next, coarser scale; the last scale keeps all its channels.
Every factored-out part is un-squeezed back, so the latent has the data's shape and the
base density is N(0, I) over [H, W, C].

Pixel values: the flow's output y lives on R^D and is mapped to v = (sigmoid(y) - alpha) /
(1 - 2 alpha) (pixelmaf's inverse logit preprocessing, part of the flow, so its log-det is
in the density of v). The images are integer levels k in {0..L-1} (digits: L = 17), and
`DequantizedDistribution` turns the density of v = (k + u)/L into a lower bound of
log P(k): uniform noise u (default) or a variational dequantizer q(u | k) trained jointly
(`dequantization="variational"`). `log_prob(k)` is that bound, and the model's
`bits_per_dim` metric is the bits/dim of the discrete data, -bound / (D ln 2).

ActNorm's data-dependent initialisation: `initialize_actnorms(model, k_batch)` (the CLI
runs it on the first training batch before `fit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import tensorflow as tf
import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import check_dequantization, levels_model
from tfp_flows.models.pixelmaf import image_shape
from tfp_flows.models.recipe import Recipe

from tfp_flows.bijectors import (
    ActNorm,
    FactorOut,
    ImageAffineCoupling,
    Invertible1x1Conv,
    Squeeze,
)
from tfp_flows.dequantization import VariationalDequantizer
from tfp_flows.types import DTypeLike, Seed

if TYPE_CHECKING:
    from tfp_flows import FlowModel

tfb, tfd = tfp.bijectors, tfp.distributions


def glow_step(shape, index, hidden_channels, dtype, seed):
    """One step of flow on [H, W, C], in Chain order (data side first): in the data -> latent
    direction ActNorm, then the 1x1 convolution, then the coupling."""
    c = shape[-1]
    step_seed = None if seed is None else seed * 1000 + index
    return [ImageAffineCoupling.trainable(c, image_shape=shape, mask="channel",
                                          parity=index % 2, hidden_channels=hidden_channels,
                                          seed=step_seed, dtype=dtype,
                                          name=f"coupling_{index}"),
            Invertible1x1Conv.trainable(c, seed=step_seed, dtype=dtype,
                                        name=f"invertible_1x1_conv_{index}"),
            ActNorm.trainable(c, dtype=dtype, name=f"actnorm_{index}")]


def multiscale_glow(shape, num_scales, num_steps, hidden_channels, dtype, seed, first_index=0):
    """Squeeze -> `num_steps` Glow steps -> factor out half -> the next scale (recursively),
    as a bijector from latents of `shape` to images of `shape`."""
    h, w, c = shape
    if h % 2 or w % 2:
        raise ValueError(f"glow: every scale squeezes 2x2 blocks, so the image height and "
                         f"width must be divisible by 2**num_scales; got {shape} at a scale "
                         f"with num_scales={num_scales} left.")
    squeezed = (h // 2, w // 2, 4 * c)
    steps = []
    for i in range(num_steps):
        steps += glow_step(squeezed, first_index + i, hidden_channels, dtype, seed)
    deeper = []
    if num_scales > 1:
        kept = (squeezed[-1] + 1) // 2
        inner = multiscale_glow((squeezed[0], squeezed[1], kept), num_scales - 1, num_steps,
                                hidden_channels, dtype, seed, first_index + num_steps)
        deeper = [FactorOut(inner, num_kept=kept, name=f"factor_out_{first_index}")]
    return tfb.Chain([tfb.Invert(Squeeze(), name=f"unsqueeze_{first_index}"), *steps, *deeper,
                      Squeeze(name=f"squeeze_{first_index}")], name=f"scale_{first_index}")


def build_glow(event_shape: Sequence[int] = (8, 8, 1), *, num_scales: int = 2, num_steps: int = 4,
               hidden_channels: int = 32, num_levels: int = 17, dequantization: str = "uniform",
               dequantizer_layers: int = 2, dequantizer_hidden_units: Sequence[int] = (64,),
               alpha: float = 0.05, dtype: DTypeLike = "float32", seed: Seed = None,
               name: str = "glow") -> FlowModel:
    """A multi-scale Glow `FlowModel` over integer images with `num_levels` levels.

    Args:
      event_shape: (H, W, C), (H, W), or an int number of pixels of a square image.
      num_scales: squeeze/steps/factor-out levels (H and W divisible by 2**num_scales).
      num_steps: K, steps of flow per scale.
      hidden_channels: width of each coupling's `nets.ConvCouplingNet`.
      num_levels: L; the data are integer levels 0..L-1.
      dequantization: "uniform" or "variational" (an IAF q(u | k) trained jointly, with
        `dequantizer_layers` MADE layers of `dequantizer_hidden_units`).
      alpha: the logit margin of the map to the unit interval.
    """
    check_dequantization(dequantization)
    shape = image_shape(event_shape)
    flow = multiscale_glow(shape, int(num_scales), int(num_steps), int(hidden_channels),
                           dtype, seed)
    base = tfd.Sample(tfd.Normal(tf.constant(0.0, dtype), tf.constant(1.0, dtype)),
                      sample_shape=shape)
    dequantizer = None
    if dequantization == "variational":
        size = shape[0] * shape[1] * shape[2]
        dequantizer = VariationalDequantizer.trainable(
            size, num_layers=dequantizer_layers, hidden_units=dequantizer_hidden_units,
            dtype=dtype, seed=seed)
    return levels_model(base, [flow], num_levels, alpha=alpha, dequantizer=dequantizer,
                        seed=seed, name=name)


RECIPES = {
    "glow": Recipe(
        build_glow, "Glow: multi-scale ActNorm + 1x1 conv + affine coupling, dequantized "
        "(bits/dim)", image=True, default_data="digits", discrete=True,
        data_defaults={"digits": {"epochs": 40, "batch_size": 128, "learning_rate": 1e-3}}),
}
