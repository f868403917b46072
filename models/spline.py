"""Neural spline flow (recipe "spline"): rational-quadratic spline couplings (Durkan et al.,
2019). The recipe was called "nsf" before issue 6 named it "spline".

Each layer is TFP's `tfb.RealNVP` whose transformer is a monotone rational-quadratic
spline (`tfb.RationalQuadraticSpline`, K bins on [-B, B], identity tails) with bin
widths, heights and knot slopes from `nets.SplineCouplingMLP` of the conditioning half.
Both directions are one network pass (the spline inverts in closed form by solving a
quadratic). Fresh layers are the identity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import flow_model, interleave, kernel_initializer
from tfp_flows.models.recipe import Recipe

from tfp_flows import nets
from tfp_flows.serialization import register_serializable
from tfp_flows.types import BoundsLike, DTypeLike, Seed

if TYPE_CHECKING:
    from tfp_flows import FlowModel

tfb = tfp.bijectors


@register_serializable(name="tfp_flows.models.SplineBijectorFn")
class SplineBijectorFn:
    """`bijector_fn` for `tfb.RealNVP`: x0 -> rational-quadratic spline of x1.

    A class with a config rather than a bound method, so an NSF saves to a `.keras` file.
    `FlowModel` finds the conditioner through the `conditioner` attribute.
    """

    def __init__(self, conditioner):
        self.conditioner = conditioner

    def __call__(self, x0, output_units, **condition_kwargs):  # conditional_input=c
        return self.conditioner.spline(x0, output_units, **condition_kwargs)

    def get_config(self):
        return {"conditioner": self.conditioner}


def build_spline(event_size: int, *, num_layers: int = 4, num_bins: int = 8, bound: float = 5.0,
                 hidden_units: Sequence[int] = (64, 64), activation: str | Callable = "relu",
                 permutation: str | None = "reverse", context_size: int | None = None,
                 dtype: DTypeLike = "float32", seed: Seed = None, name: str = "spline",
                 standardize: bool = True, bounds: BoundsLike = None,
                 base: str = "normal") -> FlowModel:
    """A neural-spline-flow `FlowModel`: spline couplings with permutations between them.

    bound: B; the data (after the later layers) should mostly lie inside [-B, B], where
    the splines act (outside, each layer is the identity).
    context_size: k makes it conditional, p(x | c) with c in R^k (joined to each
        conditioner's input): train with fit(c, x).
    standardize, bounds: the data end (`building_blocks.flow_model`): a Standardize fitted by
    `model.adapt(x_train)`, and the data's support, e.g. bounds="positive" or (0, 1).
    base: the base density, "normal" (N(0, I)) or "student-t" (heavy tails learnt
    per coordinate; see `building_blocks.student_t`).
    """
    if event_size < 2:
        raise ValueError(f"A coupling flow needs event_size >= 2; got {event_size}.")
    layers = [tfb.RealNVP(num_masked=event_size // 2,
                          bijector_fn=SplineBijectorFn(nets.SplineCouplingMLP(
                              hidden_units=hidden_units, num_bins=num_bins, bound=bound,
                              activation=activation, dtype=dtype, context_size=context_size,
                              kernel_initializer=kernel_initializer(seed, i))),
                          name=f"spline_{i}")
              for i in range(num_layers)]
    return flow_model(event_size, interleave(layers, event_size, permutation, seed), dtype, name,
                      context_size,
                      standardize=standardize, bounds=bounds, base=base)


RECIPES = {
    "spline": Recipe(
        build_spline, "neural spline flow: rational-quadratic spline couplings",
        data_defaults={
            "checkerboard": {"num_layers": 6, "num_bins": 12},
            "breast-cancer": {"batch_size": 64, "epochs": 100, "learning_rate": 1e-3}}),
}
