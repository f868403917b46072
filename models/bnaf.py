"""BNAF: block neural autoregressive flow (De Cao, Titov & Aziz 2019).

Each layer is one `bijectors.BNAF`: a feed-forward network with block-triangular weights
(positive diagonal blocks, weight normalisation, tanh units, a gated residual connection)
mapping data to noise, z = BNAF(x). Density evaluation is one network pass per layer with
the log-det accumulated from the diagonal blocks; sampling inverts each layer by D
sequential bisections. In the chain (noise -> data order) a layer is
`tfb.Invert(BNAF(...))`; layers alternate with permutations, as in the paper's stacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import interleaved_flow_model
from tfp_flows.models.recipe import Recipe

from tfp_flows.bijectors import BNAF
from tfp_flows.types import BoundsLike, DTypeLike, Seed

if TYPE_CHECKING:
    from tfp_flows import FlowModel

tfb = tfp.bijectors


def build_bnaf(event_size: int, *, num_layers: int = 2, hidden_factor: int = 8,
               num_hidden_layers: int = 2, permutation: str | None = "reverse",
               dtype: DTypeLike = "float32", seed: Seed = None, name: str = "bnaf",
               standardize: bool = True, bounds: BoundsLike = None,
               base: str = "normal") -> FlowModel:
    """A BNAF `FlowModel`: `num_layers` BNAF networks (`num_hidden_layers` tanh layers of
    `hidden_factor` units per dimension each) with permutations between them.

    standardize, bounds: the data end (`building_blocks.flow_model`): a Standardize fitted by
    `model.adapt(x_train)`, and the data's support, e.g. bounds="positive" or (0, 1).
    base: the base density, "normal" (N(0, I)) or "student-t" (heavy tails learnt
    per coordinate; see `building_blocks.student_t`).
    """
    layers = [tfb.Invert(BNAF.trainable(int(event_size), seed=(seed or 0) * 1000 + i,
                                        dtype=dtype, hidden_factor=hidden_factor,
                                        num_hidden_layers=num_hidden_layers,
                                        name=f"bnaf_{i}"))
              for i in range(num_layers)]
    return interleaved_flow_model(event_size, layers, dtype, name, permutation=permutation,
                                  seed=seed, standardize=standardize, bounds=bounds, base=base)


RECIPES = {
    "bnaf": Recipe(
        build_bnaf, "block neural autoregressive flow: monotone block-triangular networks",
        data_defaults={
            "8gaussians": {"num_layers": 3},
            "checkerboard": {"num_layers": 3, "hidden_factor": 16},
            "breast-cancer": {"batch_size": 64, "epochs": 100, "learning_rate": 1e-3}}),
}
