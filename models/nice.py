"""NICE: additive coupling layers and a diagonal scaling (Dinh et al., 2015).

Additive couplings y1 = x1 + m(x0) have log-det 0 (volume preserving); the final diagonal
scaling y = exp(s) * x, with s trainable, is the only change of volume (log-det sum(s)).
"""

import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import flow_model, interleave
from tfp_flows.models.maf import input_bound_for
from tfp_flows.models.realnvp import coupling_layers
from tfp_flows.models.recipe import Recipe

from tfp_flows.bijectors import NICEScaling

tfb = tfp.bijectors

# The couplings' input clamp c tanh(x0 / c) (nets.CouplingMLP), in standard deviations of the
# standardised data. Wider than MAF's and RealNVP's 4: the couplings see the data divided by
# the final scaling exp(s), which stretches concentrated data several-fold (benchmarks/tails.py,
# ring8: test NLL 3.50 with no clamp, 4.36 with c = 4, 3.30 with c = 10).
STANDARDIZED_INPUT_BOUND = 10.0


def build_nice(event_size, *, num_layers=4, hidden_units=(64, 64), activation="relu",
               permutation="reverse", dtype="float32", seed=None, name="nice",
               standardize=True, bounds=None, base="normal", input_bound="auto"):
    """A NICE `FlowModel`: additive couplings, permutations, then a trainable scaling.

    standardize, bounds: the data end (`building_blocks.flow_model`): a Standardize fitted by
    `model.adapt(x_train)`, and the data's support, e.g. bounds="positive" or (0, 1).
    input_bound: each CouplingMLP's smooth clamp of its inputs, c tanh(x0 / c) (see
    `nets.CouplingMLP`); 'auto' is c = 10 with standardize, None without. Far from the data
    each coupling is then a fixed shift, instead of a ReLU network's linear extrapolation.
    base: the base density, "normal" (N(0, I)) or "student-t" (heavy tails learnt
    per coordinate; see `building_blocks.student_t`).
    """
    layers = coupling_layers(event_size, num_layers, hidden_units, activation, dtype, seed,
                             shift_only=True, prefix="nice",
                             input_bound=input_bound_for(input_bound, standardize,
                                                         STANDARDIZED_INPUT_BOUND))
    scaling = NICEScaling.trainable(event_size, dtype=dtype, name="nice_scaling")
    # Chain applies the last bijector first: base -> couplings -> scaling -> data.
    return flow_model(event_size, [scaling, *interleave(layers, event_size, permutation, seed)],
                      dtype, name,
                      standardize=standardize, bounds=bounds, base=base)


RECIPES = {
    "nice": Recipe(
        build_nice, "NICE: additive couplings and a diagonal scaling",
        data_defaults={
            "8gaussians": {"num_layers": 6},
            "checkerboard": {"num_layers": 6, "hidden_units": (128, 128)},
            "breast-cancer": {"batch_size": 64, "epochs": 100, "learning_rate": 1e-3}}),
}
