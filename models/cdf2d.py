"""The 2-D autoregressive CDF flow of seed 003 ("2-D Autoregressive Flow: Two Moons").

Base Uniform(0, 1)^2; data -> base:

    z1 = F1(x1)            F1 a K-component mixture CDF with free parameters,
    z2 = F2(x2; x1)        F2 a K-component mixture CDF whose weights, locations and scales
                           are the outputs of a Keras 3 MLP of x1,

so log p(x1, x2) = log f1(x1) + log f2(x2 | x1): an autoregressive mixture density. The
network of x1 needs no invertibility (x1 is known when inverting z2). log_prob is closed
form; sampling inverts each CDF by bisection (`tfp_flows.bijectors.MixtureCDF`).

Pieces: `tfb.RealNVP(num_masked=1)` with `MixtureCDFCouplingFn` over a
`nets.CouplingMLP(shift_only=True)` (x2 given x1), then `tfb.Blockwise` applying
`MixtureCDF.trainable(1)` to x1, inverted inside `cdf_flow_distribution`'s uniform base.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import data_end, kernel_initializer
from tfp_flows.models.recipe import Recipe

from tfp_flows import FlowModel, nets
from tfp_flows.bijectors import MixtureCDF, MixtureCDFCouplingFn, cdf_flow_distribution
from tfp_flows.types import BoundsLike, DTypeLike, Seed

tfb, tfd = tfp.bijectors, tfp.distributions


def build_cdf2d(event_size: int = 2, *, num_components: int = 5, kind: str = "gaussian",
                hidden_units: Sequence[int] = (64, 64), activation: str | Callable = "relu",
                dtype: DTypeLike = "float32", seed: Seed = None, name: str = "cdf2d",
                standardize: bool = True, bounds: BoundsLike = None) -> FlowModel:
    """The 2-D autoregressive CDF flow `FlowModel` (Uniform(0, 1)^2 base).

    num_components: K of both mixtures (seed 003 uses 5).
    kind: 'gaussian' (seed 003's mixtures of Gaussians) or 'logistic'.
    hidden_units, activation: the MLP of x1 giving x2's 3K mixture parameters.
    standardize, bounds: the data end (`building_blocks.flow_model`): a Standardize fitted by
    `model.adapt(x_train)`, and the data's support, e.g. bounds="positive" or (0, 1).
    """
    if int(event_size) != 2:
        raise ValueError(f"cdf2d is the 2-D autoregressive CDF flow: event_size must be 2, got "
                         f"{event_size}. For other sizes use an elementwise MixtureCDF with "
                         f"tfp_flows.bijectors.cdf_flow_distribution, or a coupling flow.")
    first = MixtureCDF.trainable(1, num_components=num_components, kind=kind, seed=seed,
                                 dtype=dtype, name="cdf_x1")
    conditioner = nets.CouplingMLP(hidden_units=hidden_units, activation=activation,
                                   shift_only=True, dtype=dtype,
                                   kernel_initializer=kernel_initializer(seed, 0),
                                   name="mixture_params_of_x1")
    second = tfb.RealNVP(num_masked=1,
                         bijector_fn=MixtureCDFCouplingFn(conditioner, num_components, kind),
                         name="cdf_x2_given_x1")
    cdf = tfb.Chain([tfb.Blockwise([first, tfb.Identity()], block_sizes=[1, 1],
                                   name="cdf_x1_block"), second], name=f"{name}_cdf")
    dist = cdf_flow_distribution(cdf, 2, dtype)
    layers = data_end(2, dtype, standardize=standardize, bounds=bounds)
    if layers:  # the data end maps data -> standardised values before the CDFs
        chain = tfb.Chain([*layers, dist.bijector], name=f"{name}_chain")
        dist = tfd.TransformedDistribution(dist.distribution, chain)
    return FlowModel(dist, name=name)


RECIPES = {
    "cdf2d": Recipe(
        build_cdf2d, "2-D autoregressive CDF flow: mixture CDFs onto Uniform(0,1)^2, x2's "
        "mixture from an MLP of x1",
        data_defaults={"*": {"epochs": 40, "batch_size": 128, "learning_rate": 5e-3}}),
}
