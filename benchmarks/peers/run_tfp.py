"""Raw TFP runner: tfb.AutoregressiveNetwork + tfb.MaskedAutoregressiveFlow,
hand-written tf.function training step (variant 'graph' or 'xla' = jit_compile=True).

Run inside /tmp/tfenv.  Variants:
  graph : @tf.function                      (train step, log_prob, sample)
  xla   : @tf.function(jit_compile=True)    (train step, log_prob, sample)
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

args = common.cli()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(common.THREADS)
tf.config.threading.set_inter_op_parallelism_threads(common.THREADS)

import tensorflow_probability as tfp  # noqa: E402
import tf_keras  # noqa: E402

tfd, tfb = tfp.distributions, tfp.bijectors


def versions():
    import keras
    return {"tensorflow": tf.__version__, "tensorflow_probability": tfp.__version__,
            "tf_keras": tf_keras.__version__, "keras(3, unused)": keras.__version__,
            "numpy": np.__version__}


def peak():
    n = 2048
    a = tf.random.normal([n, n], seed=1)
    b = tf.random.normal([n, n], seed=2)
    r_tf = common.matmul_gflops(lambda: tf.matmul(a, b), lambda o: o.numpy())
    mm_xla = tf.function(lambda: tf.matmul(a, b), jit_compile=True)
    r_xla = common.matmul_gflops(mm_xla, lambda o: o.numpy())
    an, bn = a.numpy(), b.numpy()
    r_np = common.matmul_gflops(lambda: an @ bn, lambda o: o)
    try:
        np_cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # pragma: no cover
        np_cfg = None
    return {"tf.matmul": r_tf, "tf.matmul(jit_compile)": r_xla, "numpy": r_np,
            "numpy_blas": np_cfg, "versions": versions()}


def build_factory(jit):
    def build(cfg, xtrain):
        tf.random.set_seed(common.MODEL_SEED)
        D, H, L = cfg["D"], cfg["hidden"], cfg["layers"]
        mades, bijs = [], []
        for i in range(L):
            made = tfb.AutoregressiveNetwork(
                params=2, event_shape=[D], hidden_units=[H] * cfg["hidden_layers"],
                activation="relu")                       # defaults: glorot_uniform / zeros
            mades.append(made)
            bijs.append(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made))
            if i < L - 1:
                bijs.append(tfb.Permute(permutation=list(range(D))[::-1]))
        flow_bij = tfb.Chain(list(reversed(bijs)))
        base = tfd.Sample(tfd.Normal(tf.zeros([]), 1.0), sample_shape=[D])
        dist = tfd.TransformedDistribution(base, flow_bij)
        dist.log_prob(xtrain[:2])                        # builds the Keras layers
        tvars = [v for m in mades for v in m.trainable_variables]
        n_params = int(sum(np.prod(v.shape) for v in tvars))
        opt = tf_keras.optimizers.Adam(learning_rate=cfg["lr"], beta_1=0.9,
                                       beta_2=0.999, epsilon=1e-8)
        opt.build(tvars)

        @tf.function(jit_compile=jit, reduce_retracing=True)
        def train_step(x):
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(dist.log_prob(x))
            grads = tape.gradient(loss, tvars)
            # tf_keras optimizers re-apply the MADE mask via kernel_constraint after
            # each update: TFP's AutoregressiveNetwork does NOT multiply by the mask
            # in the forward pass, it relies on the constraint.
            opt.apply_gradients(zip(grads, tvars, strict=False))
            return loss

        @tf.function(jit_compile=jit)
        def log_prob(x):
            return dist.log_prob(x)

        @tf.function(jit_compile=jit)
        def sample(n):
            return dist.sample(n)

        def mask_violation():
            # max |w| over weights that the MADE mask should keep at zero
            worst = 0.0
            for m in mades:
                kernels = [v for v in m.trainable_variables if "kernel" in v.name]
                for k, mask in zip(kernels, m._masks, strict=False):
                    worst = max(worst, float(np.abs(k.numpy() * (1 - mask)).max()))
            return worst

        n_sample = tf.constant(common.N_SAMPLE)
        return {
            "step": lambda b: train_step(tf.constant(b)),
            "to_float": lambda h: float(h.numpy()),
            "log_prob": lambda x: log_prob(tf.constant(x)),
            "sample": lambda n: sample(n_sample if n == common.N_SAMPLE else tf.constant(n)),
            "to_numpy": lambda t: t.numpy(),
            "n_params": n_params,
            "extra": {"mask_violation_fn": mask_violation},
        }
    return build


if __name__ == "__main__":
    if args.peak:
        r = peak()
        r["status"] = "ok"
        common.write_json(args.out, r)
        sys.exit(0)
    jit = args.variant == "xla"
    variant = "tf.function+XLA(jit_compile=True)" if jit else "tf.function (no XLA)"
    holder = {}

    def build(cfg, xtrain):
        m = build_factory(jit)(cfg, xtrain)
        holder["mv"] = m["extra"].pop("mask_violation_fn")
        return m

    rec = common.run_benchmark("tfp", variant, args.config, versions(), args.out, build)
    rec["mask_violation_after_training"] = holder["mv"]()
    print("  max |masked weight| after training:", rec["mask_violation_after_training"])
    common.write_json(args.out, rec)
