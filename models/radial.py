"""Radial: a stack of radial flows (Rezende & Mohamed, 2015, "Variational Inference with
Normalizing Flows"), f(z) = z + β (z - z₀) / (α + |z - z₀|) per layer (`bijectors.Radial`).

Meant for variational inference: the forward (sampling) direction is the explicit map, as
in a flow posterior q(z|x). As a density estimator of data it is weak (each layer only
contracts or expands space around one centre); `log_prob` inverts each layer in closed
form. Fresh layers are the identity; their centres start at N(0, I) draws, one per layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfp_flows.models.building_blocks import flow_model, trainable_stack
from tfp_flows.models.recipe import Recipe

from tfp_flows.bijectors import Radial
from tfp_flows.types import BoundsLike, DTypeLike, Seed

if TYPE_CHECKING:
    from tfp_flows import FlowModel


def build_radial(event_size: int, *, num_layers: int = 32, dtype: DTypeLike = "float32",
                 seed: Seed = None, name: str = "radial", standardize: bool = True,
                 bounds: BoundsLike = None, base: str = "normal") -> FlowModel:
    """A `FlowModel` of `num_layers` trainable radial layers on N(0, I).

    standardize, bounds: the data end (`building_blocks.flow_model`): a Standardize fitted by
    `model.adapt(x_train)`, and the data's support, e.g. bounds="positive" or (0, 1).
    base: the base density, "normal" (N(0, I)) or "student-t" (heavy tails learnt
    per coordinate; see `building_blocks.student_t`).
    """
    return flow_model(event_size, trainable_stack(Radial, event_size, num_layers, seed, dtype,
                                                  "radial"), dtype, name,
                      standardize=standardize, bounds=bounds, base=base)


RECIPES = {
    "radial": Recipe(
        build_radial, "radial flows (for VI posteriors; a weak density estimator)",
        data_defaults={
            "*": {"learning_rate": 2e-2},
            "breast-cancer": {"batch_size": 64, "epochs": 100, "learning_rate": 2e-3}}),
}
