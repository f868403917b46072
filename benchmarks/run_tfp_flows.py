"""tfp-flows runner for the peer benchmark harness (`benchmarks/peers/`, see its README).

The same MAF as every peer (5 affine MAF layers, MADE 2 x H ReLU, reversal permutations,
standard-normal base, Adam 1e-3, plain exp(log-scale)) built from `tfp_flows.FlowModel` +
`tfp_flows.nets.MADE(..., log_scale_bound=None)` and trained with `FlowModel.fit()` over
exactly the batches `common.train_loop` feeds every other runner (same permutation seed
`common.BATCH_SEED`, remainder dropped, one epoch of `steps` batches). A timing callback
records the same windows as `common.train_loop` (a window ends when its last step's loss
is on the host). `--mode loop` trains the same model with a hand-written `tf.function`
step through `common.train_loop` instead (the reference for "fit() vs a hand loop").

Differences from the peers, all chosen by the library's defaults: MADE's output layer
starts at zero (`zero_init_output=True`, a fresh flow is the identity); the kernels are
multiplied by their masks in the forward pass. The MAF layers are
`tfp_flows.bijectors.FastSamplingMAF` (TFP's MAF with the same density code; its sampling
runs each MADE only on the units each output needs); `--maf tfp` uses
`tfb.MaskedAutoregressiveFlow` itself.

    .venv/bin/python benchmarks/run_tfp_flows.py --config gmm8 --out /tmp/x.json
    .venv/bin/python benchmarks/run_tfp_flows.py --config gmm8 --jit false --spe 1 \
        --data numpy --out /tmp/x.json        # plain fit(x, batch_size=B): the levers off

Options: --jit auto|true|false (compile(jit_compile=...)), --spe K (steps_per_execution,
rounded down to a divisor of the timing window), --data tfdata|numpy (a tf.data pipeline of
index batches gathered from the training set with prefetch, or the batches as one NumPy
array with shuffle=False), --check batch|none (keep fit()'s per-batch StopOnNonFiniteLoss, or
replace it by a no-op to measure its cost), --eval xla|graph|eager (how log_prob and sample
are compiled: tf.function(jit_compile=True), tf.function, or the eager methods). Not the
library's choices, to measure what the peers' choices change: --init torch (every kernel and
bias from U(+-1/sqrt(fan_in)), PyTorch's nn.Linear default, which zuko and nflows get),
--param normalizing (MADE outputs (t, s) with z = x exp(s) + t, as nflows, zuko and flowjax
parameterise the MAF, instead of TFP's z = (x - shift) exp(-log_scale); with --maf tfp).
"""

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
PEERS = Path(os.environ.get("NF_BENCH_PEERS", REPO / "benchmarks" / "peers"))
sys.path.insert(0, str(PEERS))
import common  # noqa: E402  (the peer harness: data, batch order, timing, metrics)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

try:  # as the peers do; impossible once TF has started (e.g. imported by the test suite)
    tf.config.threading.set_intra_op_parallelism_threads(common.THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(common.THREADS)
except RuntimeError:
    pass

import keras  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import tfp_flows  # noqa: E402
from tfp_flows import nets  # noqa: E402

tfd, tfb = tfp.distributions, tfp.bijectors


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=list(common.CONFIGS))
    ap.add_argument("--out")
    ap.add_argument("--mode", choices=["fit", "loop"], default="fit")
    ap.add_argument("--jit", choices=["auto", "true", "false"], default="true")
    ap.add_argument("--spe", type=int, default=20, help="steps_per_execution")
    ap.add_argument("--data", choices=["tfdata", "numpy"], default="tfdata")
    ap.add_argument("--check", choices=["batch", "none"], default="batch")
    ap.add_argument("--eval", choices=["xla", "graph", "eager"], default="xla")
    ap.add_argument("--reuse", choices=["on", "off"], default="on",
                    help="off: FlowModel's loss evaluates each MADE twice, as TFP's MAF asks")
    ap.add_argument("--maf", choices=["fast", "tfp"], default="fast",
                    help="fast: tfp_flows.bijectors.FastSamplingMAF (blockwise sampling); "
                         "tfp: tfb.MaskedAutoregressiveFlow (D full MADE passes per sample)")
    ap.add_argument("--zero-init", choices=["on", "off"], default="on",
                    help="MADE's output layer starts at zero (on: the library default, a "
                         "fresh flow is the identity) or Glorot-uniform like the peers'")
    ap.add_argument("--init", choices=["library", "torch"], default="library",
                    help="library: Glorot-uniform kernels, zero biases (and --zero-init); "
                         "torch: every kernel and bias uniform in +-1/sqrt(fan_in), PyTorch's "
                         "nn.Linear default, which the zuko and nflows runners get (implies "
                         "--zero-init off)")
    ap.add_argument("--param", choices=["tfp", "normalizing"], default="tfp",
                    help="tfp: MADE outputs TFP's (shift, log_scale), z = (x - shift) "
                         "exp(-log_scale); normalizing: MADE outputs (t, s) with z = x exp(s) "
                         "+ t, the parameterisation of nflows, zuko and flowjax (needs --maf "
                         "tfp)")
    ap.add_argument("--peak", action="store_true", help="only measure matmul GFLOP/s")
    return ap.parse_args(argv)


def versions():
    import importlib.metadata as md

    return {"tfp_flows": tfp_flows.__version__, "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "tfp_flows_dist": md.version("tfp-flows")}


def variant_name(a):
    if a.mode == "loop":
        return f"hand loop, tf.function(jit_compile={a.jit == 'true'}); eval {a.eval}"
    return (f"fit(): jit_compile={a.jit}, steps_per_execution={a.spe}, data={a.data}, "
            f"non-finite check={a.check}, MADE reuse={a.reuse}, MAF={a.maf}{init_note(a)}; "
            f"eval {a.eval}")


def init_note(a):
    if a.init == "torch":
        return ", init=torch (U(+-1/sqrt(fan_in)) kernels and biases)"
    note = ", zero-init output off" if a.zero_init == "off" else ""
    return note + (", MADE outputs z = x exp(s) + t" if a.param == "normalizing" else "")


class NormalizingMADE(nets.MADE):
    """MADE whose outputs (t, s) mean z = x exp(s) + t, as in nflows, zuko and flowjax;
    handed to TFP's MAF as shift = -t exp(-s), log_scale = -s (the same bijection)."""

    def _forward_pass(self, x, conditional_input=None):
        h = super()._forward_pass(x, conditional_input)
        t, s = h[..., 0], h[..., 1]
        return tf.stack([-t * tf.exp(-s), -s], axis=-1)


def build_model(cfg, seed=None, maf="fast", zero_init_output=True, init="library",
                param="tfp"):
    """FlowModel of the common workload; returns (model, n_params).

    `init="torch"` draws every kernel and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the
    default of PyTorch's nn.Linear (zuko's and nflows' MADE layers), instead of the library's
    Glorot-uniform kernels, zero biases and zero output layer.
    """
    if param == "normalizing" and maf != "tfp":
        raise ValueError("--param normalizing needs --maf tfp (FastSamplingMAF reads MADE's "
                         "kernels directly)")
    made_class = NormalizingMADE if param == "normalizing" else nets.MADE
    torch_init = init == "torch"
    if torch_init:  # VarianceScaling(1/3, fan_in, uniform): limit sqrt(3 * (1/3) / fan_in)
        zero_init_output = False
    seed = common.MODEL_SEED if seed is None else seed
    keras.utils.set_random_seed(seed)
    D, H, L = cfg["D"], cfg["hidden"], cfg["layers"]
    maf_class = {"fast": tfp_flows.bijectors.FastSamplingMAF,
                 "tfp": tfb.MaskedAutoregressiveFlow}[maf]
    bijectors, mades = [], []
    for i in range(L):
        made = made_class(D, params=2, hidden_units=[H] * cfg["hidden_layers"],
                         activation="relu", log_scale_bound=None,  # plain exp, like the peers
                         zero_init_output=zero_init_output,
                         kernel_initializer=keras.initializers.VarianceScaling(
                             1 / 3, "fan_in", "uniform", seed=seed + i) if torch_init
                         else "glorot_uniform")
        mades.append(made)
        bijectors.append(maf_class(made, name=f"maf_{i}"))
        if i < L - 1:
            bijectors.append(tfb.Permute(list(range(D))[::-1]))
    dist = tfd.TransformedDistribution(
        tfd.Sample(tfd.Normal(tf.zeros([]), 1.0), sample_shape=[D]),
        tfb.Chain(list(reversed(bijectors))))
    model = tfp_flows.FlowModel(dist)
    if torch_init:
        model.log_prob(tf.zeros([1, D]))  # builds the MADEs
        rng = np.random.default_rng(seed)
        for made in mades:
            for kernel, bias in zip(made.kernels, made.biases, strict=True):
                limit = 1 / math.sqrt(kernel.shape[0])
                bias.assign(rng.uniform(-limit, limit, bias.shape).astype(np.float32))
    n_params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    return model, n_params


def save_keyed_result(path, key, record, time_format="%H:%M"):
    """Store `record`, stamped with the UTC time and the load average, under `key` in the
    JSON file at `path` (other keys kept): the profiling scripts' per-config results."""
    p = Path(path)
    old = json.loads(p.read_text()) if p.exists() else {}
    old[key] = {**record, "time_utc": time.strftime(time_format, time.gmtime()),
                "loadavg": open("/proc/loadavg").read().split()[:3]}
    p.write_text(json.dumps(old, indent=1))


def batch_indices(n, cfg):
    """Row indices [steps, B] of exactly the batches `common.train_loop` would feed."""
    B, steps = cfg["batch"], cfg["steps"]
    nb = n // B
    rng = np.random.default_rng(common.BATCH_SEED)
    out = np.empty((steps, B), np.int32)
    perm = None
    for s in range(steps):
        k = s % nb
        if k == 0:
            perm = rng.permutation(n)
        out[s] = perm[k * B:(k + 1) * B]
    return out


class _NoCheck(tfp_flows.StopOnNonFiniteLoss):
    """Stands in for fit()'s StopOnNonFiniteLoss to measure what its per-batch read costs."""

    def on_train_batch_end(self, batch, logs=None):
        pass


class WindowTimer(keras.callbacks.Callback):
    """The windows of `common.train_loop`: the clock is read once the loss of a window's
    last step has reached the host (Keras converts the logs to Python floats at every batch
    end, which is that sync)."""

    def __init__(self, window, t0):
        super().__init__()
        self.window, self.t0 = window, t0
        self.tw = t0
        self.first = None
        self.win_times, self.win_losses = [], []
        self.last_loss = None

    def on_train_batch_end(self, batch, logs=None):
        s = batch + 1
        loss = float((logs or {}).get("loss", float("nan")))
        self.last_loss = loss
        t = time.perf_counter()
        if self.first is None:
            self.first = (s, t - self.t0)
        if s % self.window == 0:
            self.win_times.append(t - self.tw)
            self.win_losses.append(loss)
            self.tw = t


def train_with_fit(model, xtrain, cfg, a):
    B, W = cfg["batch"], cfg["window"]
    idx = batch_indices(len(xtrain), cfg)
    if a.data == "tfdata":
        xt = tf.constant(xtrain)
        kwargs = {"shuffle": False}
        data = (tf.data.Dataset.from_tensor_slices(idx)
                .map(lambda i: tf.gather(xt, i), num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
                .prefetch(tf.data.AUTOTUNE))
    else:
        data = xtrain[idx.reshape(-1)]  # every batch in order, as one array
        kwargs = {"batch_size": B, "shuffle": False}
    t0 = time.perf_counter()
    timer = WindowTimer(W, t0)
    callbacks = [timer] + ([_NoCheck()] if a.check == "none" else [])
    model.fit(data, epochs=1, verbose=0, callbacks=callbacks, **kwargs)
    wall = time.perf_counter() - t0
    steady = timer.win_times[cfg["skip_windows"]:] or timer.win_times[-1:]
    med = statistics.median(steady)
    return {
        "steps": cfg["steps"], "wall_s_incl_compile": wall,
        "first_step_s_incl_compile": timer.first[1],
        "first_execution_steps": timer.first[0],
        "window_steps": W, "n_windows_timed": len(steady),
        "window_s_median": med, "window_s_min": min(steady), "window_s_max": max(steady),
        "train_samples_per_s": B * W / med, "train_steps_per_s": W / med,
        "train_ms_per_step": 1e3 * med / W,
        "loss_curve": [(W * (i + 1), v) for i, v in enumerate(timer.win_losses)],
        "loss_curve_is": "Keras' running mean of the epoch's loss at the window end",
        "window_ms_per_step_all": [round(1e3 * w / W, 3) for w in timer.win_times],
        "final_train_loss": timer.last_loss,
        "timed_through": "FlowModel.fit() over the batches of common.train_loop",
    }


def hand_step(model, jit):
    """A hand-written train step on the same model: NLL, gradients, Adam; no checks. The
    loss shares each MADE's output between TFP's two uses, as FlowModel's loss does."""
    variables = model.trainable_variables
    opt = model.optimizer

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def step(x):
        with tf.GradientTape() as tape, nets.made.reuse_outputs():
            loss = -tf.reduce_mean(model.distribution.log_prob(x))
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables, strict=True))
        return loss

    return step


def eval_fns(model, how):
    if how == "eager":
        return model.log_prob, lambda n: model.sample(n)
    jit = how == "xla"
    lp = tf.function(lambda x: model.log_prob(x), jit_compile=jit)
    sm = tf.function(lambda n: model.sample(n), jit_compile=jit)
    return lp, sm


def build_factory(a, holder):
    def build(cfg, xtrain):
        if a.reuse == "off":  # the lever switched off (FlowModel looks it up at call time)
            import contextlib

            nets.made.reuse_outputs = contextlib.nullcontext
        model, n_params = build_model(cfg, maf=a.maf, zero_init_output=a.zero_init == "on",
                                      init=a.init, param=a.param)
        print(f"  tfp_flows MAF: {n_params} trainable parameters "
              f"(common workload expects {common.expected_param_count(cfg)})", flush=True)
        jit = {"auto": "auto", "true": True, "false": False}[a.jit]
        spe = max(1, math.gcd(a.spe, cfg["window"]))
        holder["spe"] = spe
        model.compile(optimizer=keras.optimizers.Adam(cfg["lr"], beta_1=0.9, beta_2=0.999,
                                                      epsilon=1e-8),
                      jit_compile=jit, steps_per_execution=spe)
        holder["jit_compile_resolved"] = bool(model.jit_compile)
        holder["model"] = model
        lp, sm = eval_fns(model, a.eval)
        n_sample = tf.constant(common.N_SAMPLE)
        m = {
            "to_float": lambda v: float(v),
            "log_prob": lambda x: lp(tf.constant(x)),
            "sample": lambda n: sm(n_sample if a.eval != "eager" else n),
            "to_numpy": lambda t: np.asarray(t),
            "n_params": n_params,
        }
        if a.mode == "loop":
            model.optimizer.build(model.trainable_variables)
            step = hand_step(model, jit is True)
            m["step"] = lambda b: step(tf.constant(b))
        else:
            m["step"] = None
        return m
    return build


def run(a):
    holder = {}
    build = build_factory(a, holder)
    if a.mode == "loop":
        rec = common.run_benchmark("tfp_flows", variant_name(a), a.config, versions(),
                                   a.out, build)
    else:
        # common.run_benchmark with fit() in place of common.train_loop (see README there).
        orig = common.train_loop

        def fit_loop(step, to_float, xtrain, cfg_):
            return train_with_fit(holder["model"], xtrain, cfg_, a)

        common.train_loop = fit_loop
        try:
            rec = common.run_benchmark("tfp_flows", variant_name(a), a.config, versions(),
                                       a.out, build)
        finally:
            common.train_loop = orig
    rec["steps_per_execution_used"] = holder["spe"]
    rec["jit_compile_resolved"] = holder["jit_compile_resolved"]
    rec["options"] = vars(a)
    rec["peak_rss_mb_self"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    common.write_json(a.out, rec)
    print(f"  peak RSS {rec['peak_rss_mb_self']:.0f} MB", flush=True)
    return rec


def peak(out):
    n = 2048
    x = tf.random.normal([n, n], seed=1)
    y = tf.random.normal([n, n], seed=2)
    r = common.matmul_gflops(lambda: tf.matmul(x, y), lambda o: o.numpy())
    common.write_json(out, {"tf.matmul": r, "status": "ok", "versions": versions()})


if __name__ == "__main__":
    args = parse_args()
    if args.peak:
        peak(args.out)
    else:
        run(args)
