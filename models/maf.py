"""MAF: masked autoregressive flow (Papamakarios et al., 2017).

Each layer is TFP's `tfb.MaskedAutoregressiveFlow` (as `bijectors.FastSamplingMAF`, whose
sampling runs blockwise) with a `nets.MADE` conditioner:
x_i = z_i exp(a_i(x_<i)) + m_i(x_<i). Density evaluation is one network pass;
sampling is D sequential passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import flow_model, interleave, kernel_initializer
from tfp_flows.models.recipe import Recipe

from tfp_flows import nets
from tfp_flows.bijectors import FastSamplingMAF
from tfp_flows.types import BoundsLike, DTypeLike, Seed

if TYPE_CHECKING:
    from tfp_flows import FlowModel

tfb = tfp.bijectors

# The zoo's clamps for MADE-conditioned layers (benchmarks/tails.py measures them): inputs
# x -> c tanh(x / c) with c = 4 standard deviations of the standardised data, so that far from
# the data every layer is a fixed affine map instead of a ReLU network's linear extrapolation
# (whose shifts and scales compound over layers into log-densities ~1e15 nats below the
# truth on a grid three times the data's range), and log-scale bounds that share one budget:
# the log-scales a coordinate gets from all the layers that transform it sum to at most
# LOG_SCALE_BUDGET (a stretch of e^5 ~ 150 in either direction), whatever the number of
# layers. With 2 per layer (10 over a 5-layer MAF), trained MAFs put points between the
# modes of a ring of Gaussians 82 nats below the truth; with the budget (1 per layer) 45.
STANDARDIZED_INPUT_BOUND = 4.0
LOG_SCALE_BUDGET = 5.0
LOG_SCALE_BOUND = 2.0  # the per-layer bound of recipes that do not share the budget
# the per-coupling bound of the couplings that have a PReLU or BatchNorm between them, whose
# own scales add to the couplings' (measured on benchmarks/tails.py; see build_prelu)
INTERLEAVED_COUPLING_LOG_SCALE_BOUND = 1.0


def input_bound_for(input_bound, standardize, standardized_bound=STANDARDIZED_INPUT_BOUND):
    """input_bound 'auto': `standardized_bound` when the data end standardises (the bound is
    in standard deviations), else None (no clamp: the data's scale is unknown)."""
    if input_bound == "auto":
        return standardized_bound if standardize else None
    return input_bound


def log_scale_bound_for(log_scale_bound, layers_per_coordinate):
    """log_scale_bound 'auto': LOG_SCALE_BUDGET / layers_per_coordinate, the per-layer
    bound b that keeps a coordinate's total log-scale within the budget."""
    if log_scale_bound == "auto":
        return LOG_SCALE_BUDGET / max(1, int(layers_per_coordinate))
    return log_scale_bound


def maf_layers(event_size, num_layers, hidden_units, activation, dtype, seed,
               context_size=None, log_scale_bound="auto", input_bound=None):
    """MAF layers: `bijectors.FastSamplingMAF` (TFP's MAF, same density code, whose forward
    pass - MAF sampling, IAF density - runs each MADE only on the units each output
    needs; conditional MADEs take TFP's forward)."""
    return [FastSamplingMAF(
                nets.MADE(event_size, params=2, hidden_units=hidden_units,
                          activation=activation, dtype=dtype, context_size=context_size,
                          log_scale_bound=log_scale_bound, input_bound=input_bound,
                          kernel_initializer=kernel_initializer(seed, i)),
                name=f"maf_{i}")
            for i in range(num_layers)]


def build_maf(event_size: int, *, num_layers: int = 5, hidden_units: Sequence[int] = (64, 64),
              activation: str | Callable = "relu", permutation: str | None = "reverse",
              context_size: int | None = None, dtype: DTypeLike = "float32", seed: Seed = None,
              name: str = "maf", standardize: bool = True, bounds: BoundsLike = None,
              base: str = "student-t",
              log_scale_bound: float | str | None = "auto",
              input_bound: float | str | None = "auto") -> FlowModel:
    """A MAF `FlowModel`: `num_layers` MADE-conditioned affine layers with permutations.

    `context_size=k` makes it conditional, p(x | c) with c in R^k: train with fit(c, x).
    standardize, bounds: the data end (`building_blocks.flow_model`): a Standardize fitted by
    `model.adapt(x_train)`, and the data's support, e.g. bounds="positive" or (0, 1).
    log_scale_bound, input_bound: each MADE's smooth clamps of its log-scale output,
    b tanh(s / b), and of its inputs, c tanh(x / c) (see `nets.MADE`); log_scale_bound 'auto'
    is b = 5 / num_layers (a coordinate's log-scales sum to at most 5 over the flow), and
    input_bound 'auto' c = 4 with standardize, None without. Far from the data each layer is
    then affine with fixed parameters, so log q falls like a Gaussian's there instead of off a
    cliff.
    base: the base density, "student-t" (the default: heavy tails learnt per coordinate, see
    `building_blocks.student_t`) or "normal" (N(0, I)). Shifts that add up over the layers
    can push a point between two modes of the data far into the base's tail, where a
    Gaussian's log-density falls like -z^2 / 2 and the Student-t's like -log|z|. On
    benchmarks/tails.py (20 epochs, seeds 0, 1, 2) the worst of 10000 fresh points lay 45,
    33 and 50 nats below its true log-density on the ring of Gaussians with N(0, I), 22, 12
    and 11 with the Student-t (swirl: 44, 50, 40 against 14, 13, 11); mean fresh NLL ring
    2.85 -> 2.79, swirl 2.02 -> 2.10; two moons (the zoo table) 1.743 -> 1.693. As a
    variational posterior of a light-tailed target, base="normal" fits a little better
    (docs/vi.md).
    """
    layers = maf_layers(event_size, num_layers, hidden_units, activation, dtype, seed,
                        context_size, log_scale_bound_for(log_scale_bound, num_layers),
                        input_bound_for(input_bound, standardize))
    return flow_model(event_size, interleave(layers, event_size, permutation, seed), dtype, name,
                      context_size,
                      standardize=standardize, bounds=bounds, base=base)


RECIPES = {
    "maf": Recipe(
        build_maf, "masked autoregressive flow: MADE-conditioned affine layers",
        data_defaults={
            # SBI: posterior p(theta | observation); measured KL to the analytic one 0.062 nats
            "sbi-gaussian-mean": {"num_layers": 3, "hidden_units": [32, 32], "epochs": 12,
                                  "batch_size": 128, "learning_rate": 3e-3},
            "8gaussians": {"num_layers": 8},
            "checkerboard": {"num_layers": 8, "hidden_units": (128, 128)},
            "breast-cancer": {"batch_size": 64, "epochs": 100, "learning_rate": 1e-3}}),
}
