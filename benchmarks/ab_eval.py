"""Same-process A/B of the log_prob and sampling levers, interleaved (robust to foreign load).

    .venv/bin/python benchmarks/ab_eval.py --config gmm8 [--rounds 11] [--out results/ab_eval.json]

On the peer benchmark's model (`run_tfp_flows.build_model`, trained for a few steps so the
weights are not at the identity start), each variant is a `tf.function(jit_compile=True)`;
the variants are called in turn, round after round, and each is summarised by the median
over rounds of its call time (one call per round, after one warm-up call). On a shared
machine the absolute times drift with the load; the ratios between variants of the same
round much less.

log_prob variants (20,000 test points, as the benchmark):
  dist.log_prob       the TFP distribution directly: TFP's MAF runs each MADE twice
  FlowModel.log_prob  the model's method: input checks (traced away) + one MADE pass per layer
  no masks            (timing only, wrong densities) MADE without the kernel * mask products
sample variants (10,000 samples; gmm32 2,000):
  tfb.MaskedAutoregressiveFlow  TFP's while_loop: D full MADE passes per layer
  FastSamplingMAF               blockwise passes over the units each output needs
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run_tfp_flows as ours  # noqa: E402  (sets threads, imports the peer harness)

common, tf, keras, np, tfb, tfd = ours.common, ours.tf, ours.keras, ours.np, ours.tfb, ours.tfd
made_module = ours.nets.made


def _unmasked_forward(self, x, conditional_input=None):
    h = x
    last = len(self.kernels) - 1
    for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
        h = tf.matmul(h, kernel) + bias
        if i < last:
            h = self.activation(h)
    return tf.reshape(h, [-1, self.event_size, self.params])


def variants(model, cfg, what):
    dist = model.distribution
    xla = lambda f: tf.function(f, jit_compile=True)  # noqa: E731
    if what == "log_prob":
        x = tf.constant(common.load_data(cfg)[1])

        def no_masks(x):
            original = made_module.MADE._forward_pass
            made_module.MADE._forward_pass = _unmasked_forward
            try:
                with made_module.reuse_outputs():
                    return dist.log_prob(x)
            finally:
                made_module.MADE._forward_pass = original

        fns = {"dist.log_prob (TFP: two MADE passes per layer)": xla(dist.log_prob),
               "FlowModel.log_prob (one pass per layer)": xla(model.log_prob),
               "no masks (timing only, wrong densities)": xla(no_masks)}
        return fns, x, len(x)

    def rebuilt(cls):
        layers = [cls(b._shift_and_log_scale_fn) if isinstance(b, tfb.MaskedAutoregressiveFlow)
                  else b for b in dist.bijector.bijectors]
        return tfd.TransformedDistribution(dist.distribution, tfb.Chain(layers))

    n = 2000 if cfg["D"] > 16 else common.N_SAMPLE
    slow, fast = rebuilt(tfb.MaskedAutoregressiveFlow), rebuilt(ours.tfp_flows.bijectors
                                                                .FastSamplingMAF)
    fns = {"tfb.MaskedAutoregressiveFlow sample": xla(lambda n: slow.sample(n, seed=[0, 1])),
           "FastSamplingMAF sample": xla(lambda n: fast.sample(n, seed=[0, 1]))}
    return fns, tf.constant(n), n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="gmm8")
    ap.add_argument("--what", choices=["log_prob", "sample"], default="sample")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--out")
    a = ap.parse_args()
    cfg = common.CONFIGS[a.config]
    model, _ = ours.build_model(cfg)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    model.fit(common.load_data(cfg)[0][:cfg["batch"] * 10], batch_size=cfg["batch"], epochs=2,
              verbose=0)
    fns, arg, count = variants(model, cfg, a.what)
    first, outs = {}, {}
    for name, f in fns.items():
        t = time.perf_counter()
        outs[name] = np.asarray(f(arg))
        first[name] = time.perf_counter() - t
    names = list(fns)
    diffs = {k: float(np.abs(outs[k] - outs[names[0]]).max()) for k in names[1:]}
    times = {k: [] for k in names}
    for _ in range(a.rounds):
        for name, f in fns.items():
            t = time.perf_counter()
            np.asarray(f(arg))
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times[names[0]])
    rows = {}
    print(f"{a.config} {a.what}: {a.rounds} rounds, load average "
          f"{open('/proc/loadavg').read().split()[:3]}")
    for name in names:
        med = statistics.median(times[name])
        rows[name] = {"ms_median": 1e3 * med, "samples_per_s": count / med,
                      "speedup_vs_first": base / med, "first_call_s": first[name],
                      "max_abs_diff_vs_first": diffs.get(name, 0.0),
                      "ms_all": [round(1e3 * t, 2) for t in times[name]]}
        print(f"  {name:50s} {1e3 * med:9.1f} ms  {count / med:10.0f}/s  x{base / med:.2f}  "
              f"first call {first[name]:.1f} s  max|diff| {diffs.get(name, 0.0):.2g}")
    if a.out:
        ours.save_keyed_result(a.out, f"{a.config} {a.what}", {"rows": rows})


if __name__ == "__main__":
    main()
