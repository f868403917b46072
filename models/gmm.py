"""Gaussian mixture: a baseline density with no flow layers.

p(x) = sum_k pi_k N(x; mu_k, Sigma_k), K components with trainable weights (softmax of
logits), means and full covariances Sigma_k = L_k L_k^T (L_k lower triangular with a
positive diagonal, `tfb.FillScaleTriL`) or diagonal ones. Fitted by maximum likelihood with
the same `fit()` as every flow, so it is the yardstick for the zoo's tables: a flow that does
not beat a mixture of a few Gaussians has learnt little. The data end (`Standardize`,
`Bounded`) is that of every vector recipe, so the mixture lives in standardised units.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tfp_flows.models.building_blocks import data_end
from tfp_flows.models.recipe import Recipe

from tfp_flows import FlowModel
from tfp_flows.types import BoundsLike, DTypeLike, Seed

tfd, tfb = tfp.distributions, tfp.bijectors


def gaussian_mixture(event_size, num_components, *, covariance="full", init_scale=1.0,
                     dtype="float32", seed=None):
    """`tfd.MixtureSameFamily` of `num_components` Gaussians with trainable tf.Variables.

    Means start at seeded standard-normal draws (spread over the standardised data), every
    component at scale `init_scale` and equal weights. covariance: 'full' (a lower-triangular
    scale per component) or 'diagonal'.
    """
    if covariance not in ("full", "diagonal"):
        raise ValueError(f"covariance must be 'full' or 'diagonal'; got {covariance!r}.")
    dtype = tf.as_dtype(dtype)
    d, k = int(event_size), int(num_components)
    rng = np.random.default_rng(0 if seed is None else seed)
    loc = tf.Variable(rng.standard_normal([k, d]).astype(dtype.as_numpy_dtype), name="loc")
    logits = tf.Variable(tf.zeros([k], dtype), name="logits")
    if covariance == "full":
        scale = tfp.util.TransformedVariable(
            tf.eye(d, batch_shape=[k], dtype=dtype) * init_scale, tfb.FillScaleTriL(),
            name="scale_tril")
        components = tfd.MultivariateNormalTriL(loc=loc, scale_tril=scale)
    else:
        scale = tfp.util.TransformedVariable(tf.fill([k, d], tf.constant(init_scale, dtype)),
                                             tfb.Softplus(), name="scale_diag")
        components = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
    return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), components)


def build_gmm(event_size: int, *, num_components: int = 8, covariance: str = "full",
              init_scale: float = 0.5, dtype: DTypeLike = "float32", seed: Seed = None,
              name: str = "gmm", standardize: bool = True,
              bounds: BoundsLike = None) -> FlowModel:
    """A `FlowModel` of a K-component Gaussian mixture (`gaussian_mixture`).

    standardize, bounds: the data end (`building_blocks.data_end`): a Standardize fitted by
    `model.adapt(x_train)`, and the data's support, e.g. bounds="positive" or (0, 1).
    """
    mixture = gaussian_mixture(event_size, num_components, covariance=covariance,
                               init_scale=init_scale, dtype=dtype, seed=seed)
    chain = data_end(event_size, dtype, standardize=standardize, bounds=bounds)
    dist = tfd.TransformedDistribution(mixture, tfb.Chain(chain, name=f"{name}_chain"))
    return FlowModel(dist, name=name)


RECIPES = {
    "gmm": Recipe(build_gmm, "Gaussian mixture baseline: K full-covariance Gaussians, no flow",
                  data_defaults={"8gaussians": {"num_components": 8},
                                 "checkerboard": {"num_components": 16}}),
}
