"""UMNN-MAF: masked autoregressive flow with the UMNN transformer (Wehenkel & Louppe 2019).

Each layer is TFP's `tfb.MaskedAutoregressiveFlow` whose `bijector_fn` turns the output of
a `nets.MADE` (an embedding h_i and an offset beta_i per dimension, from x_<i) into an
elementwise `bijectors.UMNN`: z_i = integral_0^{x_i} g(t, h_i) dt + beta_i, with one
integrand network g > 0 per layer shared by all dimensions, in the data -> noise
direction. Density evaluation is one MADE pass and one quadrature per layer; sampling is D
sequential passes, each inverting the UMNN by bisection. A MAF layer computes x = f(z) in
the noise -> data direction, so the layer's transformer is `tfb.Invert(UMNN(...))`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import interleaved_flow_model, kernel_initializer
from tfp_flows.models.recipe import Recipe

from tfp_flows import nets
from tfp_flows.bijectors import UMNN
from tfp_flows.bijectors.umnn import initial_integrand_params
from tfp_flows.serialization import register_serializable
from tfp_flows.types import BoundsLike, DTypeLike, Seed

if TYPE_CHECKING:
    from tfp_flows import FlowModel

tfb = tfp.bijectors


@register_serializable(name="tfp_flows.models.InvertedUMNNFn")
class InvertedUMNNFn:
    """`bijector_fn` for `tfb.MaskedAutoregressiveFlow`: conditioner output -> inverted UMNN.

    Holds the conditioner (`FlowModel` finds it through the `conditioner` attribute) and the
    integrand network's weights, a `tf.Variable` (a saved value is turned back into one).
    """

    def __init__(self, conditioner, integrand_params, hidden_units=(32, 32), num_nodes=32):
        self.conditioner = conditioner
        if not isinstance(integrand_params, tf.Variable):
            integrand_params = tf.Variable(integrand_params, name="umnn_integrand")
        self.integrand_params = integrand_params
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.num_nodes = int(num_nodes)

    def __call__(self, y, **condition_kwargs):
        return tfb.Invert(UMNN(self.conditioner(y, **condition_kwargs), self.integrand_params,
                               hidden_units=self.hidden_units, num_nodes=self.num_nodes))

    def get_config(self):
        return {"conditioner": self.conditioner, "integrand_params": self.integrand_params,
                "hidden_units": list(self.hidden_units), "num_nodes": self.num_nodes}


def build_umnn(event_size: int, *, num_layers: int = 2, hidden_units: Sequence[int] = (64, 64),
               embedding_size: int = 4, integrand_units: Sequence[int] = (32, 32),
               num_nodes: int = 32, activation: str | Callable = "relu",
               permutation: str | None = "reverse", dtype: DTypeLike = "float32", seed: Seed = None,
               name: str = "umnn", standardize: bool = True,
               bounds: BoundsLike = None, base: str = "normal") -> FlowModel:
    """A UMNN-MAF `FlowModel`: `num_layers` MADE-conditioned UMNN layers with permutations.

    hidden_units: the MADE's hidden widths; embedding_size: E, the embedding h_i per
    dimension; integrand_units: the integrand network's tanh widths; num_nodes: the
    Gauss-Legendre nodes of the integral.
    standardize, bounds: the data end (`building_blocks.flow_model`): a Standardize fitted by
    `model.adapt(x_train)`, and the data's support, e.g. bounds="positive" or (0, 1).
    base: the base density, "normal" (N(0, I)) or "student-t" (heavy tails learnt
    per coordinate; see `building_blocks.student_t`).
    """
    layers = []
    for i in range(num_layers):
        made = nets.MADE(event_size, params=int(embedding_size) + 1, hidden_units=hidden_units,
                         activation=activation, dtype=dtype,
                         kernel_initializer=kernel_initializer(seed, i), name=f"umnn_made_{i}")
        rng = np.random.default_rng([seed or 0, i])
        integrand = tf.Variable(tf.constant(
            initial_integrand_params(embedding_size, integrand_units, rng), dtype),
            name=f"umnn_integrand_{i}")
        fn = InvertedUMNNFn(made, integrand, hidden_units=integrand_units, num_nodes=num_nodes)
        layers.append(tfb.MaskedAutoregressiveFlow(bijector_fn=fn, name=f"umnn_{i}"))
    return interleaved_flow_model(event_size, layers, dtype, name, permutation=permutation,
                                  seed=seed, standardize=standardize, bounds=bounds, base=base)


RECIPES = {
    "umnn": Recipe(
        build_umnn, "UMNN-MAF: MADE-conditioned monotone transformers by integration of "
                    "a positive network",
        data_defaults={
            "8gaussians": {"num_layers": 3},
            "checkerboard": {"num_layers": 3},
            "breast-cancer": {"batch_size": 64, "epochs": 100, "learning_rate": 1e-3}}),
}
