"""Image flows on scikit-learn's 8x8 digits in bits/dim: glow, realnvp and flowpp, each
trained with dequantization on the integer pixel values (17 levels), measured on this machine.

    python benchmarks/image_flows.py                       # the budgets below
    python benchmarks/image_flows.py --epochs-scale 0.5    # half of each model's epochs
    python benchmarks/image_flows.py --models glow         # re-measure some; keeps the others
    python benchmarks/image_flows.py --report              # re-render from the results file

Models (all `FlowModel(DequantizedDistribution(...), bits_per_dim=True)`, so the loss is the
negative dequantization bound of the discrete data and bits/dim = -bound / (64 ln 2); the
map to [0, 1] (inverse logit) is part of each flow, so no separate scaling term is left):

* glow: the zoo's `build_glow` (2 scales x 4 steps, uniform dequantization), ActNorms
  initialised from the first training batch;
* realnvp: the zoo's `build_realnvp(64)` (6 affine couplings, MLP 64-64) on the flattened
  image, with the same inverse-logit map and uniform dequantization (fresh noise each step)
  through `building_blocks.on_discrete_levels`, as `tfp-flows train --model realnvp --data
  digits` builds it;
* flowpp: the zoo's `build_flowpp` (4 ActNorm + logistic-mixture couplings, variational
  dequantization trained jointly).

Same split as `tfp-flows train` (datasets.load("digits", dequantize=False): 1438 / 180 /
179 images), Adam, batch 128, seed 0. The test bits/dim average 10 independent noise draws
per test image (each draw a single-sample bound). Writes docs/figures/<model>_digits_samples.png
(test images, their reconstructions through the flow, samples) and the table into docs/benchmarks.md
between the `<!-- generated:image-flows -->` markers; results in
benchmarks/results/image_flows.json.
"""

import argparse
import json
import math
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import RESULTS, machine, put_block  # noqa: E402

REPO = HERE.parent
RESULTS_FILE = RESULTS / "image_flows.json"
FIGURES = REPO / "docs" / "figures"
LEVELS = 17

# model: (epochs, learning rate); chosen to keep the whole run to a few minutes on 2 cores
BUDGETS = {"glow": (8, 1e-3), "realnvp": (20, 1e-3), "flowpp": (8, 1e-3)}
DESCRIPTIONS = {
    "glow": "glow: 2 scales x 4 steps (ActNorm, 1x1 conv, affine coupling), uniform deq.",
    "realnvp": "realnvp: 6 affine couplings on the flattened 64-D image, uniform deq.",
    "flowpp": "flowpp: 4 x (ActNorm, logistic-mixture coupling K=4), variational deq.",
}


def build(name, seed=0):
    from tfp_flows.models.building_blocks import on_discrete_levels

    from tfp_flows import models

    if name != "realnvp":
        return models.build(name, (8, 8, 1), seed=seed)
    # what `tfp-flows train --model realnvp --data digits` builds (on flattened images)
    return on_discrete_levels(models.build_realnvp(64, seed=seed), LEVELS, seed=seed)


def measure(name, epochs_scale):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from tfp_flows import datasets
    from tfp_flows.bijectors import initialize_actnorms
    from tfp_flows.plotting import plot_image_samples

    epochs, lr = BUDGETS[name]
    epochs = max(1, round(epochs * epochs_scale))
    keras.utils.set_random_seed(0)
    train, val, test = datasets.load("digits", dequantize=False)
    if name == "realnvp":  # a vector recipe: flattened images
        train, val, test = (part.reshape(len(part), 64) for part in (train, val, test))
    model = build(name)
    initialize_actnorms(model, train[:128])
    model.compile(optimizer=keras.optimizers.Adam(lr))
    load_before = float(open("/proc/loadavg").read().split()[0])
    start = time.perf_counter()
    history = model.fit(train, epochs=epochs, batch_size=128, validation_data=val, verbose=2)
    seconds = time.perf_counter() - start
    draws = np.stack([model.log_prob(test).numpy() for _ in range(10)])  # [draws, images]
    nll = float(-draws.mean())
    stderr = float(draws.mean(0).std() / math.sqrt(draws.shape[1]))
    bpd = nll / (64 * math.log(2))
    FIGURES.mkdir(parents=True, exist_ok=True)
    figure = FIGURES / f"{name}_digits_samples.png"
    plot_image_samples(model, test, str(figure), num=24, seed=1,
                       title=f"{name} on digits: {bpd:.3f} bits/dim (test)")
    return {"model": name, "description": DESCRIPTIONS[name], "epochs": epochs,
            "learning_rate": lr, "batch_size": 128, "parameters": int(model.count_params()),
            "fit_seconds": round(seconds, 1), "test_nll_nats": round(nll, 3),
            "test_bits_per_dim": round(bpd, 4),
            "test_bits_per_dim_stderr": round(stderr / (64 * math.log(2)), 4),
            "final_val_bits_per_dim": round(history.history["val_bits_per_dim"][-1], 4),
            "figure": str(figure.relative_to(REPO)), "loadavg_at_start": load_before}


def table(results):
    rows = ["| model | parameters | epochs (batch 128) | fit() time | test bits/dim "
            "(discrete, bound) | samples |", "|---|---|---|---|---|---|"]
    for name in BUDGETS:
        r = results["rows"].get(name)
        if r is None:
            continue
        rows.append(f"| {r['description']} | {r['parameters']:,} | {r['epochs']} | "
                    f"{r['fit_seconds']:.0f} s | **{r['test_bits_per_dim']:.3f}** "
                    f"± {r['test_bits_per_dim_stderr']:.3f} | "
                    f"[png]({r['figure'].removeprefix('docs/')}) |")  # docs/benchmarks.md's link
    m = results["machine"]
    note = (f"Measured {results['date']} on {m['cpu']} ({m['cores']} cores; load "
            f"average {' '.join(m['loadavg'])} at the end), CPU only, by "
            f"`python benchmarks/image_flows.py`; fit() time includes graph tracing. Test "
            f"bits/dim: mean of 10 single-sample dequantization bounds per test image (179 "
            f"images; ± one standard error over images); a uniform pmf over the 17 levels "
            f"scores log2 17 = 4.087. These are short budgets, not converged models.")
    return "\n".join(rows) + "\n\n" + note


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(BUDGETS))
    parser.add_argument("--epochs-scale", type=float, default=1.0)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args(argv)
    results = {"rows": {}}
    if RESULTS_FILE.exists():
        results = json.loads(RESULTS_FILE.read_text())
    if not args.report:
        for name in [n for n in args.models.split(",") if n]:
            if name not in BUDGETS:
                parser.error(f"unknown model {name!r}; choose from {', '.join(BUDGETS)}")
            row = measure(name, args.epochs_scale)
            print(json.dumps(row), flush=True)
            results["rows"][name] = row
            results["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
            results["machine"] = machine()
            RESULTS.mkdir(parents=True, exist_ok=True)
            RESULTS_FILE.write_text(json.dumps(results, indent=2))
    text = table(results)
    print(text)
    put_block(REPO / "docs" / "benchmarks.md", "image-flows", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
