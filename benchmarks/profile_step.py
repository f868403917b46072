"""Where a training step's time goes: the step split into compiled pieces, each timed alone.

    .venv/bin/python benchmarks/profile_step.py --config gmm8 [--out results/profile.json]

On the peer benchmark's model (`run_tfp_flows.build_model`), each piece is a
`tf.function(jit_compile=True)` timed over `--reps` calls after warm-up (median of 5 blocks):
  log_prob         forward pass only (the NLL of one batch)
  loss+grad        forward and backward, as TFP's MAF runs it (two MADE passes per layer)
  ... reused       the same with nets.made.reuse_outputs() (one pass), as FlowModel's loss
  loss+grad+check  + the finiteness check FlowModel.train_step makes
  adam apply       Adam update of every variable from fixed gradients
  full hand step   loss + grad + Adam, as the hand-written loop (with the reuse)
  fit() step       FlowModel.train_step through fit() (steps_per_execution=20, tf.data)
  no-op            an XLA call that only reads the variables (launch + variable overhead)
and the dense-matmul time the step would take at the measured tf.matmul peak.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run_tfp_flows as ours  # noqa: E402  (sets threads, imports the peer harness)

common, tf, keras, np = ours.common, ours.tf, ours.keras, ours.np


FIRST = {}


def timeit(fn, reps, name=None):
    t = time.perf_counter()
    np.asarray(fn())
    if name:
        FIRST[name] = time.perf_counter() - t
    for _ in range(3):
        fn()
    blocks = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            out = fn()
        np.asarray(out)
        blocks.append((time.perf_counter() - t) / reps)
    return 1e3 * statistics.median(blocks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="gmm8")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--out")
    a = ap.parse_args()
    cfg = common.CONFIGS[a.config]
    xtrain = common.load_data(cfg)[0]
    x = tf.constant(xtrain[: cfg["batch"]])
    model, _ = ours.build_model(cfg)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True,
                  steps_per_execution=20)
    variables = model.trainable_variables
    opt = model.optimizer
    opt.build(variables)
    dist = model.distribution
    xla = lambda f: tf.function(f, jit_compile=True)  # noqa: E731

    @xla
    def log_prob(x):
        return -tf.reduce_mean(dist.log_prob(x))

    @xla
    def loss_grad(x):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(dist.log_prob(x))
        return loss, tape.gradient(loss, variables)

    @xla
    def loss_grad_reuse(x):
        with tf.GradientTape() as tape, ours.nets.made.reuse_outputs():
            loss = -tf.reduce_mean(dist.log_prob(x))
        return loss, tape.gradient(loss, variables)

    @xla
    def loss_grad_check(x):
        with tf.GradientTape() as tape, ours.nets.made.reuse_outputs():
            loss = -tf.reduce_mean(dist.log_prob(x))
        g = tape.gradient(loss, variables)
        ok = tf.reduce_all([tf.math.is_finite(loss)]
                           + [tf.reduce_all(tf.math.is_finite(t)) for t in g])
        return loss, ok

    grads = [tf.zeros_like(v) for v in variables]

    @xla
    def apply():
        opt.apply_gradients(zip(grads, variables, strict=True))
        return tf.constant(0.0)

    step = ours.hand_step(model, True)

    @xla
    def noop():
        return tf.add_n([tf.reduce_sum(v[:1]) for v in variables])

    pieces = [("log_prob (forward)", lambda: log_prob(x)),
              ("loss+grad (TFP: each MADE evaluated twice)", lambda: loss_grad(x)[0]),
              ("loss+grad, MADE output reused", lambda: loss_grad_reuse(x)[0]),
              ("loss+grad+finiteness check", lambda: loss_grad_check(x)[0]),
              ("Adam apply (30 variables)", apply),
              ("full hand step", lambda: step(x)),
              ("no-op reading the variables", noop)]
    rows = {name: timeit(fn, a.reps, name) for name, fn in pieces}
    # fit(): same batch repeated, steps_per_execution=20
    n = 20 * (a.reps // 20 + 1) * 6
    data = tf.data.Dataset.from_tensors(x).repeat(n).prefetch(2)
    ends = []
    cb = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: ends.append(
        time.perf_counter()))
    t = time.perf_counter()
    model.fit(data, epochs=1, verbose=0, callbacks=[cb], shuffle=False)
    FIRST["fit() step (steps_per_execution=20)"] = ends[0] - t
    per = [(t1 - t0) / 20 for t0, t1 in zip(ends[2:-1], ends[3:], strict=False)]
    rows["fit() step (steps_per_execution=20)"] = 1e3 * statistics.median(per)
    peak = common.matmul_gflops(lambda: tf.matmul(tf.ones([2048, 2048]), tf.ones([2048, 2048])),
                                lambda o: o.numpy(), reps=10)["gflops_median"]
    flops = 3 * common.made_matmul_flops_per_sample(cfg) * cfg["batch"]
    rows["dense matmuls at tf.matmul peak"] = 1e3 * flops / (peak * 1e9)
    print(f"{a.config}: ms per call, first call s (tf.matmul peak {peak:.0f} GFLOP/s)")
    for k, v in rows.items():
        print(f"  {k:40s} {v:8.3f}  {FIRST.get(k, float('nan')):6.2f}")
    if a.out:
        ours.save_keyed_result(a.out, a.config,
                               {"ms": rows, "first_call_s": FIRST, "peak_gflops": peak})


if __name__ == "__main__":
    main()
