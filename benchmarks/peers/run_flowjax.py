"""flowjax runner (JAX, CPU, jax.jit).  Run inside /tmp/jaxenv.

  --variant exp     MaskedAutoregressive with Affine(loc, scale=exp(s)) transformer
  --variant native  flowjax default transformer (scale = softplus(u) + 1e-2)

The flow is built like flowjax.flows.masked_autoregressive_flow (vmapped layers,
Scan, Invert so that log_prob is the single-pass direction), except that the
between-layer permutation is a reversal (Flip) instead of flowjax's default random
permutation, to match the common workload.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

args = common.cli()

from functools import partial  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import paramax  # noqa: E402
from flowjax.bijections import Affine, Chain, Flip, Invert, MaskedAutoregressive, Scan  # noqa: E402
from flowjax.distributions import StandardNormal, Transformed  # noqa: E402


def versions():
    import importlib.metadata as md
    return {k: md.version(k) for k in ("jax", "jaxlib", "flowjax", "equinox", "optax",
                                        "paramax", "numpy")}


def peak():
    n = 2048
    a = jr.normal(jr.key(1), (n, n), jnp.float32)
    b = jr.normal(jr.key(2), (n, n), jnp.float32)
    mm = jax.jit(lambda a, b: a @ b)
    r = common.matmul_gflops(lambda: mm(a, b), lambda o: o.block_until_ready())
    return {"jax.numpy.matmul(jit)": r, "versions": versions()}


def build(cfg, xtrain):
    D, H, L = cfg["D"], cfg["hidden"], cfg["layers"]
    if args.variant == "exp":
        transformer = eqx.tree_at(lambda a: a.scale, Affine(),
                                  replace=paramax.Parameterize(jnp.exp, jnp.zeros(())))
    else:
        from flowjax.flows import _affine_with_min_scale
        transformer = _affine_with_min_scale()

    def make_layer(key):
        ma = MaskedAutoregressive(key, transformer=transformer, dim=D, nn_width=H,
                                  nn_depth=cfg["hidden_layers"], nn_activation=jax.nn.relu)
        return Chain([ma, Flip((D,))]).merge_chains()

    keys = jr.split(jr.key(common.MODEL_SEED), L)
    layers = eqx.filter_vmap(make_layer)(keys)
    flow = Transformed(StandardNormal((D,)), Invert(Scan(layers)))

    params, static = eqx.partition(
        flow, eqx.is_inexact_array,
        is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable))
    n_params = int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
    opt = optax.adam(cfg["lr"], b1=0.9, b2=0.999, eps=1e-8)
    opt_state = opt.init(params)

    def dist_of(p):
        return paramax.unwrap(eqx.combine(p, static))

    def loss_fn(p, x):
        return -dist_of(p).log_prob(x).mean()

    @partial(jax.jit, donate_argnums=(0, 1))
    def train_step(p, s, x):
        loss, g = jax.value_and_grad(loss_fn)(p, x)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    @jax.jit
    def log_prob(p, x):
        return dist_of(p).log_prob(x)

    @partial(jax.jit, static_argnums=(2,))
    def sample(p, key, n):
        return dist_of(p).sample(key, (n,))

    state = {"p": params, "s": opt_state, "key": jr.key(common.MODEL_SEED + 1)}

    def step(b):
        state["p"], state["s"], loss = train_step(state["p"], state["s"], b)
        return loss

    def sm(n):
        state["key"], k = jr.split(state["key"])
        return sample(state["p"], k, n)

    return {"step": step, "to_float": lambda h: float(h),
            "log_prob": lambda x: log_prob(state["p"], x), "sample": sm,
            "to_numpy": lambda t: np.asarray(t), "n_params": n_params,
            "extra": {"jax_devices": str(jax.devices())}}


if __name__ == "__main__":
    if args.peak:
        r = peak()
        r["status"] = "ok"
        common.write_json(args.out, r)
        sys.exit(0)
    variant = {"exp": "jax.jit, exp(log-scale) affine",
               "native": "jax.jit, library-default affine"}.get(args.variant, args.variant)
    if args.variant not in ("exp", "native"):
        raise SystemExit("variant must be exp or native")
    common.run_benchmark("flowjax", variant, args.config, versions(), args.out, build)
