"""Pieces shared by the zoo's recipes: the base density, permutations, the final model."""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import FlowModel
from tfp_flows.bijectors import Bounded, Standardize
from tfp_flows.dequantization import DequantizedDistribution
from tfp_flows.flow_model import flow_bijector

tfd, tfb = tfp.distributions, tfp.bijectors


def standard_normal(event_size, dtype="float32"):
    """N(0, I) over R^event_size, the default base density of the recipes."""
    return tfd.MultivariateNormalDiag(loc=tf.zeros([event_size], dtype))


BASES = ("normal", "student-t")
# Degrees of freedom of a fresh Student-t base, and their floor (nu = 1 is the Cauchy).
STUDENT_T_INITIAL_DF = 10.0
STUDENT_T_MIN_DF = 1.0


def student_t(event_size, dtype="float32"):
    """Independent standard Student-t marginals over R^event_size, one trainable degrees of
    freedom nu_i per coordinate (nu_i = 1 + exp(u_i), starting at 10): the base of
    tail-adaptive flows (Jaini, Kobyzev, Yu and Brubaker, 2020, "Tails of Lipschitz
    triangular flows", ICML; Laszkiewicz, Lederer and Fischer, 2022, "Marginal tail-adaptive
    normalizing flows", ICML).

    A flow whose layers are Lipschitz (the zoo's clamped conditioners, linear spline tails)
    keeps the tails of its base: on a Gaussian base, log q falls like -|x|^2 far out, while
    data with power-law tails falls like -(nu + d) log|x|. The base's nu_i learn the tails'
    weight per coordinate from the data, log p_i(z) = log Gamma((nu+1)/2) - log Gamma(nu/2)
    - log(nu pi) / 2 - (nu + 1) / 2 log(1 + z^2 / nu).
    """
    dtype = tf.as_dtype(dtype)
    df = tfp.util.TransformedVariable(
        tf.fill([int(event_size)], tf.constant(STUDENT_T_INITIAL_DF, dtype)),
        # log-parametrised: an optimizer step moves log(nu - 1), so nu travels from 10 to 3
        # in about as many steps as from 10 to 30
        tfb.Chain([tfb.Shift(tf.constant(STUDENT_T_MIN_DF, dtype)), tfb.Exp()]), name="base_df")
    return tfd.Independent(tfd.StudentT(df=df, loc=tf.zeros([int(event_size)], dtype),
                                        scale=tf.ones([int(event_size)], dtype)),
                           reinterpreted_batch_ndims=1, name="student_t_base")


def base_distribution(event_size, dtype="float32", base="normal"):
    """The base density a recipe's flow pushes forward: base 'normal' (N(0, I), the default)
    or 'student-t' (`student_t`: heavy tails, learnt per coordinate)."""
    if base == "normal":
        return standard_normal(event_size, dtype)
    if base == "student-t":
        return student_t(event_size, dtype)
    raise ValueError(f"base must be one of {', '.join(map(repr, BASES))}; got {base!r}.")


def permutation(event_size, kind, layer_index, seed=None):
    """A `tfb.Permute` put between flow layers, or None for kind=None.

    kind: 'reverse' (reverse the order) or 'random' (a fixed random permutation per layer,
    drawn from `seed` and the layer index).
    """
    if kind is None or event_size == 1:
        return None
    if kind == "reverse":
        order = np.arange(event_size)[::-1]
    elif kind == "random":
        order = np.random.default_rng([seed or 0, layer_index]).permutation(event_size)
    else:
        raise ValueError(f"permutation must be 'reverse', 'random' or None; got {kind!r}.")
    return tfb.Permute(permutation=order.tolist(), name=f"permute_{layer_index}")


def interleave(layers, event_size, kind, seed=None, between=None):
    """layers with a permutation between consecutive ones, as a list for tfb.Chain.

    between: None, or a callable i -> list of bijectors put before layer i >= 1, ahead of
    that place's permutation (e.g. a normalisation or a learnt rotation), called in order.
    """
    out = []
    for i, layer in enumerate(layers):
        if i:
            if between is not None:
                out.extend(between(i))
            perm = permutation(event_size, kind, i, seed)
            if perm is not None:
                out.append(perm)
        out.append(layer)
    return out


def kernel_initializer(seed, index):
    """Glorot-uniform, seeded per layer when `seed` is given."""
    return keras.initializers.GlorotUniform(seed=None if seed is None else seed * 1000 + index)


def data_end(event_size, dtype, *, standardize=True, bounds=None):
    """The fixed bijectors at the data end of a vector flow (first in a tfb.Chain list).

    bounds: None, or the support of the data (`Bounded.from_bounds`: "positive", a pair
    (low, high) for every coordinate, or one pair / "positive" / None per coordinate): a
    `Bounded` map puts the density on that box. standardize: a `Standardize` (identity
    until `FlowModel.adapt(x_train)` fits it), on the unconstrained side of the bounds.
    """
    layers = []
    if bounds is not None:
        layers.append(Bounded.from_bounds(bounds, event_size, dtype=dtype, name="bounds"))
    if standardize:
        layers.append(Standardize.identity(event_size, dtype=dtype, name="standardize"))
    return layers


def flow_model(event_size, bijectors, dtype, name, context_size=None, *, standardize=True,
               bounds=None, base="normal"):
    """`FlowModel` of the base density (`base_distribution`: N(0, I) by default) pushed
    through the chain of `bijectors`.

    With `context_size`, the model is conditional: p(x | context), context of that size.
    standardize: put a `Standardize` at the data end (and standardise the contexts of a
    conditional model); fit both with `model.adapt(x_train[, context_train])` before
    training, so the networks see standardised values while log_prob, sample and saved
    files speak data units. bounds: the data's support, see `data_end`. base: 'normal' or
    'student-t' (heavy tails, see `student_t`).
    """
    chain = [*data_end(event_size, dtype, standardize=standardize, bounds=bounds), *bijectors]
    dist = tfd.TransformedDistribution(base_distribution(event_size, dtype, base),
                                       tfb.Chain(chain, name=f"{name}_chain"))
    context_shape = None if context_size is None else [int(context_size)]
    context_standardizer = None
    if context_size is not None and standardize:
        context_standardizer = Standardize.identity(int(context_size), dtype=dtype,
                                                    name="context_standardize")
    return FlowModel(dist, context_shape=context_shape, name=name,
                     context_standardizer=context_standardizer)


def interleaved_flow_model(event_size, layers, dtype, name, context_size=None, *, permutation,
                           seed, between=None, standardize=True, bounds=None, base="normal"):
    """`flow_model` of `layers` with `interleave`'s permutations (and `between(i)`) between
    consecutive ones: the assembly of the stacked recipes."""
    return flow_model(event_size, interleave(layers, event_size, permutation, seed, between),
                      dtype, name, context_size, standardize=standardize, bounds=bounds,
                      base=base)


def trainable_stack(bijector_class, event_size, num_layers, seed, dtype, prefix,
                    layer_options=None, **options):
    """`num_layers` fresh `bijector_class.trainable(event_size, ...)` layers, for tfb.Chain.

    Each layer gets its own seed, seed * 1000 + index (seed None counts as 0, so stacked
    layers never share an initial value), the name prefix_index, `options`, and
    `layer_options(index)` (a dict) when given.
    """
    return [bijector_class.trainable(int(event_size), seed=(seed or 0) * 1000 + i,
                                     dtype=dtype, name=f"{prefix}_{i}", **options,
                                     **(layer_options(i) if layer_options else {}))
            for i in range(num_layers)]


def unit_interval_bijector(alpha, dtype):
    """y in R -> v = (sigmoid(y) - alpha) / (1 - 2 alpha): the inverse logit preprocessing."""
    return tfb.Chain([tfb.Scale(tf.constant(1.0 / (1.0 - 2.0 * alpha), dtype)),
                      tfb.Shift(tf.constant(-alpha, dtype)), tfb.Sigmoid()],
                     name="to_unit_interval")


def check_dequantization(dequantization):
    """Raise unless `dequantization` names a dequantizer ('uniform' or 'variational')."""
    if dequantization not in ("uniform", "variational"):
        raise ValueError(f"dequantization must be 'uniform' or 'variational'; got "
                         f"{dequantization!r}.")


def levels_model(base, bijectors, num_levels, *, alpha, dequantizer=None, seed=None, name,
                 chain_name=None):
    """A `FlowModel` of integer data k in {0, ..., L-1}^D, reporting bits/dim.

    The continuous density is `base` pushed through `bijectors` (Chain order: the data side
    first) and then into the unit cube by `unit_interval_bijector(alpha)`; a
    `DequantizedDistribution` (uniform, or `dequantizer`) turns it into the dequantization
    bound of log P(k), with fresh noise at every training step (`tfp_flows.dequantization`).
    """
    flow = tfb.Chain([unit_interval_bijector(alpha, base.dtype), *bijectors],
                     name=chain_name or f"{name}_chain")
    dist = DequantizedDistribution(tfd.TransformedDistribution(base, flow), num_levels,
                                   dequantizer, seed=seed or 0)
    return FlowModel(dist, bits_per_dim=True, name=name)


def on_discrete_levels(model, num_levels, *, alpha=0.05, seed=None):
    """A vector recipe's `FlowModel` as a model of integer data k in {0, ..., L-1}^D.

    The flow's density is pushed into the unit cube by `unit_interval_bijector(alpha)`
    (so every sample lands in a cell) and wrapped in a `DequantizedDistribution` with
    uniform dequantization (`levels_model`): fresh noise u at every training step,
    v = (k + u) / L, and the loss is the dequantization bound of log P(k) in bits/dim of the
    discrete data. The networks are the model's own (same variables).
    """
    if model.is_conditional:
        raise ValueError("on_discrete_levels takes an unconditional model.")
    flow = model.distribution
    bijector = flow_bijector(flow)
    if bijector is None:
        raise ValueError(f"on_discrete_levels needs a TransformedDistribution; got "
                         f"{type(flow).__name__}.")
    return levels_model(flow.distribution, [bijector], num_levels, alpha=alpha,
                        seed=seed, name=model.name, chain_name=f"{model.name}_levels_chain")
