"""NICE: additive coupling layers and a diagonal scaling (Dinh et al., 2015).

Additive couplings y1 = x1 + m(x0) have log-det 0 (volume preserving); the final diagonal
scaling y = exp(s) * x, with s trainable, is the only change of volume (log-det sum(s)).
"""

import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import flow_model, interleave
from tfp_flows.models.realnvp import coupling_layers
from tfp_flows.models.recipe import Recipe

from tfp_flows.bijectors import NICEScaling

tfb = tfp.bijectors


def build_nice(event_size, *, num_layers=4, hidden_units=(64, 64), activation="relu",
               permutation="reverse", dtype="float32", seed=None, name="nice"):
    """A NICE `FlowModel`: additive couplings, permutations, then a trainable scaling."""
    layers = coupling_layers(event_size, num_layers, hidden_units, activation, dtype, seed,
                             shift_only=True, prefix="nice")
    scaling = NICEScaling.trainable(event_size, dtype=dtype, name="nice_scaling")
    # Chain applies the last bijector first: base -> couplings -> scaling -> data.
    return flow_model(event_size, [scaling, *interleave(layers, event_size, permutation, seed)],
                      dtype, name)


RECIPES = {
    "nice": Recipe(
        build_nice, "NICE: additive couplings and a diagonal scaling",
        data_defaults={
            "8gaussians": {"num_layers": 6},
            "checkerboard": {"num_layers": 6, "hidden_units": (128, 128)},
            "breast-cancer": {"batch_size": 64, "epochs": 100, "learning_rate": 1e-3}}),
}
