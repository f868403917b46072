"""Circular spline flow: densities of angles on the torus [-pi, pi)^D (Rezende et al. 2020).

The base is uniform on the torus; each layer is a `tfb.RealNVP` coupling whose transformer
is a `bijectors.CircularSpline` (a rational-quadratic spline of [-pi, pi] onto itself with
equal end slopes, then a rotation mod 2 pi) of half the angles, its parameters an MLP of the
other half's (cos, sin); a reversal of the angles sits between layers. Every layer is a
diffeomorphism of the torus, so the density is periodic and normalised on [-pi, pi)^D. Data
must lie in [-pi, pi) (wrap other angles first); there is no standardisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import interleave, kernel_initializer
from tfp_flows.models.recipe import Recipe

from tfp_flows import FlowModel, nets
from tfp_flows.bijectors import CircularSplineCouplingFn, torus_uniform
from tfp_flows.types import DTypeLike, Seed

tfd, tfb = tfp.distributions, tfp.bijectors


def build_circular(event_size: int, *, num_layers: int = 4, hidden_units: Sequence[int] = (64, 64),
                   activation: str | Callable = "relu", num_bins: int = 8,
                   dtype: DTypeLike = "float32", seed: Seed = None,
                   name: str = "circular") -> FlowModel:
    """A `FlowModel` on [-pi, pi)^event_size: `num_layers` circular spline couplings of
    `num_bins` bins with the angles reversed between them, over the uniform base."""
    if event_size < 2:
        raise ValueError(f"circular: a coupling flow needs event_size >= 2; got {event_size}.")
    layers = [tfb.RealNVP(
        num_masked=event_size // 2,
        bijector_fn=CircularSplineCouplingFn(
            nets.CouplingMLP(hidden_units=hidden_units, activation=activation,
                             shift_only=True, dtype=dtype,
                             kernel_initializer=kernel_initializer(seed, i)),
            num_bins=num_bins),
        name=f"circular_{i}") for i in range(num_layers)]
    chain = tfb.Chain(interleave(layers, event_size, "reverse", seed), name=f"{name}_chain")
    return FlowModel(tfd.TransformedDistribution(torus_uniform(event_size, dtype), chain),
                     name=name)


RECIPES = {
    "circular": Recipe(
        build_circular,
        "circular rational-quadratic spline couplings on the torus [-pi, pi)^D",
        default_data="torus"),
}
