"""Training-time scaling of one MAF workload: ours (fit()) or flowjax, one process per point.

    .venv/bin/python benchmarks/scaling.py --lib tfp_flows --D 32 --hidden 128 --batch 512 \
        --out /tmp/s.json
    /tmp/jaxenv/bin/python benchmarks/scaling.py --lib flowjax ... (same flags)

Same architecture as the peer benchmark (5 MAF layers, MADE 2 x hidden, reversal, Adam 1e-3);
the data are standard-normal draws (only the time is measured, so any data will do), fed in
the order of `common.train_loop`. Writes steps/s, ms/step and samples/s of the steady-state
windows.
"""

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = Path(os.environ.get("NF_BENCH_PEERS", HERE / "peers"))
sys.path.insert(0, str(PEERS))
sys.path.insert(0, str(HERE))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", choices=["tfp_flows", "flowjax"], required=True)
    ap.add_argument("--D", type=int, required=True)
    ap.add_argument("--hidden", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import common
    import numpy as np

    cfg = dict(target="synthetic", D=a.D, hidden=a.hidden, hidden_layers=2, layers=5,
               batch=a.batch, lr=1e-3, steps=a.steps, window=a.window, skip_windows=2,
               logprob_reps=1, sample_reps=1)
    x = np.random.default_rng(0).standard_normal((common.N_TRAIN, a.D)).astype(np.float32)
    if a.lib == "flowjax":
        sys.argv = [sys.argv[0], "--variant", "exp"]
        import run_flowjax  # the peer runner's own build()

        m = run_flowjax.build(cfg, x)
        rec = common.train_loop(m["step"], m["to_float"], x, cfg)
    else:
        import keras
        import run_tfp_flows as ours

        model, _ = ours.build_model(cfg)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True,
                      steps_per_execution=a.window)
        opts = ours.parse_args([])
        rec = ours.train_with_fit(model, x, cfg, opts)
    rec.pop("loss_curve", None)
    out = {"lib": a.lib, "D": a.D, "hidden": a.hidden, "batch": a.batch,
           "fwd_flops_per_sample": common.made_matmul_flops_per_sample(cfg),
           "train": rec, "status": "ok"}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"{a.lib} D={a.D} H={a.hidden} B={a.batch}: {rec['train_ms_per_step']:.2f} ms/step")


if __name__ == "__main__":
    main()
