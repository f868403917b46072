"""IAF: inverse autoregressive flow (Kingma et al., 2016).

The inverse of a MAF: `tfb.Invert(tfb.MaskedAutoregressiveFlow(MADE))`. Sampling is one
network pass per layer; density evaluation of new points needs D sequential passes.
"""

import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import flow_model, interleave
from tfp_flows.models.maf import maf_layers
from tfp_flows.models.recipe import Recipe

tfb = tfp.bijectors


def build_iaf(event_size, *, num_layers=5, hidden_units=(64, 64), activation="relu",
              permutation="reverse", context_size=None, dtype="float32", seed=None,
              name="iaf"):
    """An IAF `FlowModel`: inverted MAF layers with permutations between them.

    `context_size=k` makes it conditional, p(x | c) with c in R^k: train with fit(c, x).
    """
    layers = [tfb.Invert(maf, name=f"iaf_{i}") for i, maf in
              enumerate(maf_layers(event_size, num_layers, hidden_units, activation, dtype,
                                   seed, context_size))]
    return flow_model(event_size, interleave(layers, event_size, permutation, seed), dtype, name,
                      context_size)


RECIPES = {
    "iaf": Recipe(
        build_iaf, "inverse autoregressive flow: inverted MAF layers (fast sampling)",
        data_defaults={
            "8gaussians": {"num_layers": 8},
            "checkerboard": {"num_layers": 8, "hidden_units": (128, 128)},
            "breast-cancer": {"batch_size": 64, "epochs": 60, "learning_rate": 1e-3}}),
}
