"""The same VAE on binarised digits with each flow posterior; writes the README table.

    python benchmarks/vae_posteriors.py [--epochs 20] [--posteriors planar iaf ...]

For every posterior kind of `tfp_flows.vae.POSTERIORS`: a `FlowVAE` (latent size 4,
encoder 64-128-64, decoder 4-64-128-64, 4 flow layers, Bernoulli decoder) trained with
fit() for a fixed number of epochs (Adam 1e-3, batch 64, one posterior sample per example)
on the training split of `binarized_digits()` (fixed-seed Bernoulli binarisation of
scikit-learn's 8x8 digits; `datasets.train_val_test` split 1438 / 180 / 179, seed 0).
Reported on the test split: the ELBO (one sample per example, averaged over 10 passes) and
the importance-weighted log p(x) estimate with k = 500 samples, in nats per image; the
parameter count and the wall-clock training time (fit only) on the machine that ran it.
Results go to benchmarks/results/vae_posteriors.json and the README block between
<!-- generated:vae --> and <!-- /generated:vae -->.
"""

import argparse
import json
import os
import platform
import re
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfp_flows.datasets import train_val_test  # noqa: E402
from tfp_flows.vae import POSTERIORS, FlowVAE, binarized_digits  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "vae_posteriors.json")
README = os.path.join(ROOT, "docs", "benchmarks.md")
START, END = "<!-- generated:vae -->", "<!-- /generated:vae -->"


def run_one(posterior, data, epochs, seed):
    train, _, test = data
    keras.utils.set_random_seed(seed)
    model = FlowVAE(data_size=64, latent_size=4, posterior=posterior, num_flow_layers=4,
                    encoder_units=(128, 64), decoder_units=(64, 128), seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    start = time.perf_counter()
    history = model.fit(train, epochs=epochs, batch_size=64, verbose=0)
    train_time = time.perf_counter() - start
    elbo = model.evaluate_elbo(test, num_passes=10)
    iw = float(np.mean(model.importance_log_likelihood(test, num_samples=500, batch_size=60)))
    return {"posterior": posterior, "test_elbo": elbo, "test_iw_log_px_k500": iw,
            "final_train_loss": float(history.history["loss"][-1]),
            "params": int(model.count_params()), "train_seconds": train_time,
            "epochs": epochs}


def table(rows, epochs, machine):
    lines = [f"Same VAE, {epochs} epochs each (latent 4, 4 flow layers, one seed), test split "
             f"of binarised digits (179 images); nats per image, higher is better. "
             f"Measured on {machine}.", "",
             "| posterior | test ELBO | test log p(x), IW k=500 | parameters | training time |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['posterior']} | {r['test_elbo']:.2f} | "
                     f"{r['test_iw_log_px_k500']:.2f} | {r['params']:,} | "
                     f"{r['train_seconds']:.0f} s |")
    return "\n".join(lines)


def write_readme(text):
    with open(README) as f:
        readme = f.read()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise SystemExit(f"docs/benchmarks.md has no {START} ... {END} block.")
    with open(README, "w") as f:
        f.write(pattern.sub(lambda _: f"{START}\n{text}\n{END}", readme))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--posteriors", nargs="+", default=list(POSTERIORS),
                        choices=POSTERIORS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    data = train_val_test(binarized_digits())
    rows, loads = [], [os.getloadavg()[0]]
    for posterior in args.posteriors:
        row = run_one(posterior, data, args.epochs, args.seed)
        loads.append(os.getloadavg()[0])
        print(json.dumps(row), flush=True)
        rows.append(row)
    machine = (f"{platform.machine()} CPU, {os.cpu_count()} cores shared with other jobs "
               f"(1-minute load average {min(loads):.0f} to {max(loads):.0f} between runs)")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"machine": machine, "rows": rows}, f, indent=1)
    if not args.no_readme:
        write_readme(table(rows, args.epochs, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
