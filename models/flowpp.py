"""Flow++ (Ho et al. 2019): logistic-mixture CDF couplings with variational dequantization.

The density model over pixel values v in [0, 1]^D (images flattened to D = H W C) is, in
the data -> latent direction, the inverse logit map (`building_blocks.unit_interval_bijector`),
then `num_layers` steps of

    ActNorm (data-initialised) -> logistic-mixture CDF coupling -> fixed random permutation,

each coupling `bijectors.logistic_mixture_coupling`: half of the coordinates pass and set,
through a `nets.CouplingMLP`, the K-component logistic mixture, scale and shift of
y = exp(a) logit(MixLogCDF(x)) + b for each of the others (closed form in this direction;
sampling bisects). The base is N(0, I_D).

Dequantization (Flow++ section 3.1): `dequantization="variational"` (default) learns
q(u | k) = sigmoid(f(eps; k)) with f a flow of the same logistic-mixture couplings in their
closed-form sampling direction, conditioned on the integer image k; it is trained jointly
with the density by `fit()` through `DequantizedDistribution`, whose `log_prob(k)` is the
bound E_q[log p((k + u)/L) - D log L - log q(u | k)] <= log P(k). "uniform" uses q = U[0,1)^D.
The model's `bits_per_dim` is that of the discrete data, -bound / (D ln 2).

Simplifications with respect to the paper: couplings on the flattened image with MLP
conditioners (no convolutional/self-attention conditioners, no multi-scale), suited to 8x8
digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import tensorflow as tf
import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import (
    check_dequantization,
    kernel_initializer,
    levels_model,
    permutation,
)
from tfp_flows.models.pixelmaf import image_shape
from tfp_flows.models.recipe import Recipe

from tfp_flows.bijectors import ActNorm, logistic_mixture_coupling
from tfp_flows.dequantization import VariationalDequantizer
from tfp_flows.types import DTypeLike, Seed

if TYPE_CHECKING:
    from tfp_flows import FlowModel

tfb, tfd = tfp.bijectors, tfp.distributions


def mixture_coupling_noise_flow(event_size, *, num_layers=2, num_components=4,
                                hidden_units=(32,), dtype="float32", seed=None):
    """Flow++'s dequantization flow f(eps; k): logistic-mixture couplings in their
    closed-form sampling direction whose conditioners also take the context k (size D),
    with fixed random permutations between them."""
    layers = []
    for i in range(num_layers):
        if i:
            layers.append(permutation(event_size, "random", 100 + i, seed))
        layers.append(logistic_mixture_coupling(
            event_size // 2, num_components=num_components, hidden_units=tuple(hidden_units),
            context_size=event_size, density_direction=False, dtype=dtype,
            kernel_initializer=kernel_initializer(seed, 100 + i),
            name=f"dequantizer_coupling_{i}"))
    return tfb.Chain(layers[::-1], name="dequantizer_flow")


def build_flowpp(event_shape: Sequence[int] = (8, 8, 1), *, num_layers: int = 4,
                 num_components: int = 4, hidden_units: Sequence[int] = (64, 64),
                 num_levels: int = 17, dequantization: str = "variational",
                 dequantizer_layers: int = 2, dequantizer_hidden_units: Sequence[int] = (32,),
                 alpha: float = 0.05, dtype: DTypeLike = "float32", seed: Seed = None,
                 name: str = "flowpp") -> FlowModel:
    """A Flow++ `FlowModel` over integer images with `num_levels` levels (module docstring).

    Args:
      event_shape: (H, W, C), (H, W), or an int number of pixels of a square image.
      num_layers: ActNorm + coupling steps of the density flow.
      num_components: K, logistic components per transformed coordinate.
      hidden_units: of each coupling's `nets.CouplingMLP`.
      num_levels: L; the data are integer levels 0..L-1.
      dequantization: "variational" (Flow++) or "uniform".
      dequantizer_layers, dequantizer_hidden_units: of the variational dequantizer's flow.
      alpha: the logit margin of the map to the unit interval.
    """
    check_dequantization(dequantization)
    shape = image_shape(event_shape)
    size = shape[0] * shape[1] * shape[2]
    if size < 2:
        raise ValueError(f"flowpp's couplings need at least 2 pixels; got shape {shape}.")
    steps = []  # Chain order: the data side first
    for i in range(num_layers):
        steps.append(ActNorm.trainable(size, dtype=dtype, name=f"actnorm_{i}"))
        steps.append(logistic_mixture_coupling(
            size // 2, num_components=num_components, hidden_units=tuple(hidden_units),
            dtype=dtype, kernel_initializer=kernel_initializer(seed, i),
            name=f"mixture_coupling_{i}"))
        if i < num_layers - 1:
            steps.append(permutation(size, "random", i, seed))
    base = tfd.MultivariateNormalDiag(loc=tf.zeros([size], dtype))
    dequantizer = None
    if dequantization == "variational":
        noise_flow = mixture_coupling_noise_flow(
            size, num_layers=dequantizer_layers, num_components=num_components,
            hidden_units=dequantizer_hidden_units, dtype=dtype, seed=seed)
        dequantizer = VariationalDequantizer(noise_flow, size)
    return levels_model(base, [tfb.Reshape(list(shape), [size], name="to_image"), *steps],
                        num_levels, alpha=alpha, dequantizer=dequantizer, seed=seed,
                        name=name)


RECIPES = {
    "flowpp": Recipe(
        build_flowpp, "Flow++: logistic-mixture CDF couplings + variational dequantization "
        "(bits/dim)", image=True, default_data="digits", discrete=True,
        data_defaults={"digits": {"epochs": 40, "batch_size": 128, "learning_rate": 1e-3}}),
}
