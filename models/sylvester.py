"""Sylvester: a stack of Sylvester flows (van den Berg et al., 2018, "Sylvester
Normalizing Flows for Variational Inference"), f(z) = z + Q R tanh(R̃ Qᵀ z + b) per layer
(`bijectors.Sylvester`), with Q orthogonal (Björck), Householder or a permutation.

Meant for variational inference: the forward (sampling) direction is the explicit map, as
in a flow posterior q(z|x). As a density estimator of data it is weak (each layer is one
residual tanh layer of M hidden units); `log_prob` inverts each layer by back-substitution
with scalar Newton solves (exact, with implicit gradients). Fresh layers are the identity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfp_flows.models.building_blocks import flow_model, trainable_stack
from tfp_flows.models.recipe import Recipe

from tfp_flows.bijectors import Sylvester
from tfp_flows.types import BoundsLike, DTypeLike, Seed

if TYPE_CHECKING:
    from tfp_flows import FlowModel


def build_sylvester(event_size: int, *, num_layers: int = 16, q_kind: str = "orthogonal",
                    num_hidden: int | None = None, dtype: DTypeLike = "float32", seed: Seed = None,
                    name: str = "sylvester", standardize: bool = True,
                    bounds: BoundsLike = None, base: str = "normal") -> FlowModel:
    """A `FlowModel` of `num_layers` trainable Sylvester layers on N(0, I).

    q_kind: 'orthogonal' (O-SNF), 'householder' (H-SNF) or 'triangular' (T-SNF: Q the
    identity or, on every other layer, the reversal permutation).
    num_hidden: M <= event_size (default event_size; 'triangular' needs M = event_size).
    standardize, bounds: the data end (`building_blocks.flow_model`): a Standardize fitted by
    `model.adapt(x_train)`, and the data's support, e.g. bounds="positive" or (0, 1).
    base: the base density, "normal" (N(0, I)) or "student-t" (heavy tails learnt
    per coordinate; see `building_blocks.student_t`).
    """
    def permute(i):  # T-SNF alternates Q = I and the reversal permutation
        return {"permute": bool(i % 2)} if q_kind == "triangular" else {}

    layers = trainable_stack(Sylvester, event_size, num_layers, seed, dtype, "sylvester",
                             permute, q_kind=q_kind, num_hidden=num_hidden)
    return flow_model(event_size, layers, dtype, name,
                      standardize=standardize, bounds=bounds, base=base)


RECIPES = {
    "sylvester": Recipe(
        build_sylvester, "Sylvester flows (for VI posteriors; a weak density estimator)",
        data_defaults={
            "*": {"learning_rate": 5e-3},
            "breast-cancer": {"batch_size": 64, "epochs": 100, "learning_rate": 2e-3,
                              "num_hidden": 8}}),
}
