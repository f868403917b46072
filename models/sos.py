"""SOS: sum-of-squares polynomial flow (Jaini, Selby & Yu, 2019, "Sum-of-Squares
Polynomial Flow", ICML).

Each layer is `bijectors.SOSAutoregressive`: every coordinate goes through its own
strictly increasing polynomial z_i = c + int_0^{x_i} sum_k (sum_l a_kl u^l)^2 du of degree
2r + 1, with coefficients a(x_<i) and shift c(x_<i) from a `nets.MADE`. Density
evaluation (training) is one MADE pass per layer in closed form; sampling solves each
coordinate's polynomial by a bracketed root search, D sequential MADE passes per layer.
Layers are separated by permutations. Fresh layers are the identity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import flow_model, interleave
from tfp_flows.models.maf import input_bound_for
from tfp_flows.models.recipe import Recipe

from tfp_flows.bijectors import sos_maf
from tfp_flows.types import BoundsLike, DTypeLike, Seed

if TYPE_CHECKING:
    from tfp_flows import FlowModel

tfb = tfp.bijectors


def build_sos(event_size: int, *, num_layers: int = 3, num_polynomials: int = 3,
              polynomial_degree: int = 2, hidden_units: Sequence[int] = (64, 64),
              activation: str | Callable = "relu", permutation: str | None = "reverse",
              context_size: int | None = None, dtype: DTypeLike = "float32", seed: Seed = None,
              name: str = "sos", standardize: bool = True, bounds: BoundsLike = None,
              base: str = "normal",
              tail_bound: float | str | None = "auto", input_bound: float | str | None = "auto",
              min_derivative: float = 0.05, box: bool = True) -> FlowModel:
    """An SOS-flow `FlowModel`: `num_layers` SOS autoregressive layers with permutations.

    num_polynomials: K squared polynomials per coordinate; polynomial_degree: r (each
    transformer has degree 2r + 1). context_size: k makes it conditional, p(x | c) with
    c in R^k fed to every MADE: train with fit(c, x). The default r = 2 (quintic) is safe
    because of the box below; without it the composition of the layers (degree 5^L) overflowed
    float32 to NaN at |x| ~ 6 on two-moons, and r = 1 was the default.
    standardize, bounds: the data end (`building_blocks.flow_model`): a Standardize fitted by
    `model.adapt(x_train)`, and the data's support, e.g. bounds="positive" or (0, 1).
    tail_bound: each transformer is its polynomial on [-B, B] and linear outside
    (`SOSPolynomial`); input_bound: the MADEs' input clamp c tanh(x / c) (`nets.MADE`), which
    keeps the coefficients bounded far from the data. 'auto' (both): 4 (standard deviations)
    with standardize, None without. Without them the composed polynomial (degree 27 for
    three cubic layers, coefficients growing with |x|) overflowed float32 to NaN log-densities
    within three times the data's range. min_derivative: m, each transformer's T' >= m
    (`SOSPolynomial`), which bounds how far the linear tails stretch the base's tails: with
    m = 0 a trained flow's tail slope was tiny and KL(q || p) 5.8e10 nats on the swirl of
    benchmarks/tails.py (samples at |x| ~ 1e5), with m = 0.05 4.7.
    box: each polynomial rescaled to map [-B, B] (B = tail_bound) onto itself, linear
    outside with slope >= m (`bijectors.BoxPreserving`; off without a tail bound): a point
    of the box never leaves it, so no layer throws a point the training sample did not
    cover into the base's far tail. Measured on benchmarks/tails.py (20 epochs): on the
    swirl the linear tails alone left a fresh point 18406 nats below its true log-density
    (fresh-sample NLL 4.16 against a split NLL of 2.10), the box 10 (2.21 against 2.19);
    two-moons test NLL 1.722 (r = 1, no box) -> 1.761.
    base: the base density, "normal" (N(0, I)) or "student-t" (heavy tails learnt
    per coordinate; see `building_blocks.student_t`).
    """
    if not isinstance(box, bool):
        raise ValueError(f"sos: box must be true or false; got {box!r}.")
    tail_bound = input_bound_for(tail_bound, standardize)
    input_bound = input_bound_for(input_bound, standardize)
    layers = [sos_maf(event_size, num_polynomials=num_polynomials,
                      polynomial_degree=polynomial_degree, hidden_units=hidden_units,
                      activation=activation, dtype=dtype, context_size=context_size,
                      tail_bound=tail_bound, input_bound=input_bound,
                      min_derivative=min_derivative, box=box and tail_bound is not None,
                      seed=None if seed is None else seed * 1000 + i, name=f"sos_{i}")
              for i in range(num_layers)]
    return flow_model(event_size, interleave(layers, event_size, permutation, seed), dtype, name,
                      context_size,
                      standardize=standardize, bounds=bounds, base=base)


RECIPES = {
    "sos": Recipe(
        build_sos, "sum-of-squares polynomial flow: MADE-conditioned SOS transformers",
        data_defaults={
            # measured (40 epochs): test NLL 1.729 with K = 5, 1.942 with K = 3; grid integral
            # 0.99984 (4 layers with K = 5: 1.730, but NaN log-densities at |x| ~ 6)
            "two-moons": {"num_polynomials": 5},
            "checkerboard": {"num_layers": 4},
            "breast-cancer": {"batch_size": 64, "epochs": 100, "learning_rate": 1e-3}}),
}
