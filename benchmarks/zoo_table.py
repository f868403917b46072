"""The README's zoo table: every recipe of `tfp_flows.models` trained on its default data set
with its own defaults, measured on this machine.

    python benchmarks/zoo_table.py                     # every recipe, full default budgets
    python benchmarks/zoo_table.py --epochs-scale 0.1  # a tenth of each recipe's epochs
    python benchmarks/zoo_table.py --models maf,glow   # re-measure some; keeps the others
    python benchmarks/zoo_table.py --report            # re-render from benchmarks/results/zoo.json

Each recipe runs `tfp-flows train --model <name>` (nothing else set: the recipe's default
data set, epochs, batch size, learning rate and builder options; `--epochs-scale` scales
only the epochs, `--num-points` sets the size of the generated 2-D sets, `--jit-compile`
is passed on) one after another
in this process, with a time limit per recipe, so recipes added later are picked up
without touching this script and one that fails or runs out of time becomes a row that
says so. The run folder's figures are not drawn. Per recipe it records the test NLL in nats (for
image recipes the bits/dim, of the discrete data for digits) as `train` reports it, the
wall-clock time of `fit()` (compilation included), the number of parameters and the
budget. Results go to `benchmarks/results/zoo.json`; the table goes into the top-level
docs/benchmarks.md between the `<!-- generated:zoo -->` markers, with the date, the machine (CPU
model, cores) and the load average while it ran.
"""

import argparse
import contextlib
import io
import json
import os
import re
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import RESULTS, machine, put_block  # noqa: E402

REPO = HERE.parent
RESULTS_FILE = RESULTS / "zoo.json"


def _loadavg():
    return float(open("/proc/loadavg").read().split()[0])


class RecipeTimeout(Exception):
    """A recipe ran past --timeout."""


def _on_alarm(signum, frame):
    raise RecipeTimeout


def measure_one(name, epochs_scale, num_points, jit_compile="auto"):
    """Train recipe `name` through the CLI's `train`; its row of the table."""
    import keras

    from tfp_flows import cli, models

    recipe = models.RECIPES[name]
    _, training = recipe.defaults(recipe.default_data)
    epochs = training.get("epochs", cli.TRAINING_DEFAULTS["epochs"])
    epochs = max(1, round(epochs * epochs_scale))
    fitted = []  # (model, seconds) of every fit() call `train` makes
    original_fit = keras.Model.fit

    def timed_fit(self, *args, **kwargs):
        start = time.perf_counter()
        result = original_fit(self, *args, **kwargs)
        fitted.append((self, time.perf_counter() - start))
        return result

    stdout = io.StringIO()
    keras.Model.fit = timed_fit
    draw_figures = cli._figures
    cli._figures = lambda *args, **kwargs: []  # not measured; they cost minutes on a busy CPU
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            argv = ["train", "--model", name, "--epochs", str(epochs), "--run-dir", run_dir,
                    "--num-points", str(num_points), "--jit-compile", jit_compile,
                    "--no-export", "--verbose", "0"]
            with contextlib.redirect_stdout(stdout):
                code = cli.main(argv)
            printed = stdout.getvalue()
            if code != 0:
                raise RuntimeError(f"tfp-flows {' '.join(argv)} exited with {code}: {printed}")
            with open(os.path.join(run_dir, "config.json")) as f:
                config = json.load(f)
    finally:
        keras.Model.fit = original_fit
        cli._figures = draw_figures
    nll = re.search(r"test NLL: (\S+) nats \((\S+) bits/dim\)", printed)
    discrete = re.search(r"discrete data: (\S+) bits/dim", printed)
    model = fitted[-1][0]
    return {"model": name, "data": config["data"], "image": recipe.image,
            "epochs": config["epochs"], "batch_size": config["batch_size"],
            "learning_rate": config["learning_rate"],
            "test_nll": float(nll.group(1)) if nll else None,
            "bits_per_dim": (float(discrete.group(1)) if discrete else
                             float(nll.group(2)) if nll else None),
            "train_seconds": sum(seconds for _, seconds in fitted),
            "parameters": int(model.count_params())}


def measure(names, epochs_scale, num_points, timeout, jit_compile="auto", on_row=None):
    """{name: row}, one recipe after another; a failure or a timeout is that recipe's row.
    on_row(rows) runs after every recipe (to save what is measured so far)."""
    import keras

    signal.signal(signal.SIGALRM, _on_alarm)
    rows = {}
    for name in names:
        loads = [_loadavg()]
        start = time.time()
        keras.utils.set_random_seed(0)
        signal.alarm(timeout)
        try:
            row = measure_one(name, epochs_scale, num_points, jit_compile)
        except RecipeTimeout:
            row = {"model": name, "error": f"no result within {timeout} s"}
        except Exception as e:  # noqa: BLE001 (one recipe's failure is its row, not the end)
            if time.time() - start >= timeout:  # the alarm went off inside TF's C++ code
                row = {"model": name, "error": f"no result within {timeout} s"}
            else:
                row = {"model": name, "error": f"{type(e).__name__}: {e}"[:300]}
        finally:
            signal.alarm(0)
        loads.append(_loadavg())
        row.update(wall_seconds=round(time.time() - start, 1), loadavg=loads,
                   epochs_scale=epochs_scale, num_points=num_points, jit_compile=jit_compile)
        print(json.dumps(row), flush=True)
        rows[name] = row
        if on_row:
            on_row(rows)
    return rows


def _number(value, digits):
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(result):
    lines = ["| model | data | test NLL (nats) | bits/dim | epochs | batch | lr | train time (s) "
             "| parameters |", "|---|---|---|---|---|---|---|---|---|"]
    for name, row in sorted(result["rows"].items()):
        if "error" in row:
            lines.append(f"| {name} | not measured: {row['error']} | | | | | | | |")
            continue
        bpd = _number(row["bits_per_dim"], 3) if row["image"] else ""
        lines.append(f"| {name} | {row['data']} | {_number(row['test_nll'], 3)} | {bpd} | "
                     f"{row['epochs']} | {row['batch_size']} | {row['learning_rate']:g} | "
                     f"{row['train_seconds']:.0f} | {row['parameters']:,} |")
    m, rows = result["machine"], result["rows"].values()
    loads = [x for row in rows for x in row.get("loadavg", [])]
    scales = sorted({row.get("epochs_scale", 1) for row in rows})
    budget = ("each recipe's default epochs" if scales == [1] else
              f"each recipe's default epochs times {', '.join(f'{s:g}' for s in scales)}")
    budget += " (the epochs column)"
    points = sorted({row.get("num_points", 10000) for row in rows})
    budget += f"; generated 2-D sets of {', '.join(map(str, points))} points"
    jit = sorted({row.get("jit_compile", "auto") for row in rows})
    budget += f"; `--jit-compile {', '.join(jit)}`"
    commands = {}  # invocation -> the rows it measured
    for name, row in sorted(result["rows"].items()):
        commands.setdefault(row["arguments"], []).append(name)
    by = "; ".join(f"`python benchmarks/zoo_table.py{c}`" +
                   (f" ({', '.join(names)})" if len(commands) > 1 else "")
                   for c, names in commands.items())
    shared = ("; above that the machine was shared, so the times are only comparable within "
              "this table" if max(loads) > m["cores"] + 0.5 else "")
    lines.append("")
    lines.append(
        f"Measured {result['date']} on {m['cpu']} ({m['cores']} cores) by {by}; "
        f"budget: {budget}; "
        f"{sum(row.get('wall_seconds', 0) for row in rows) / 60:.0f} min in all; 1-minute load "
        f"average {min(loads):.1f} to {max(loads):.1f} while the recipes ran (the training "
        f"itself counts for up to {m['cores']}{shared}). Test NLL on the "
        f"data set's fixed test split (nats per example); bits/dim for image recipes (of the "
        f"17-level discrete data for digits), as `train` reports them. Train time: `fit()`, "
        f"graph tracing (and XLA compilation where on) included.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=None, help="comma-separated; default: every recipe")
    parser.add_argument("--epochs-scale", type=float, default=1.0,
                        help="multiply each recipe's default epochs (at least 1 epoch)")
    parser.add_argument("--quick", action="store_true", help="same as --epochs-scale 0.05")
    parser.add_argument("--num-points", type=int, default=10000,
                        help="size of the generated 2-D data sets (as `train --num-points`)")
    parser.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto",
                        help="as `train --jit-compile` (XLA compilation dominates short runs)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per recipe")
    parser.add_argument("--report", action="store_true", help="only re-render the table")
    args = parser.parse_args(argv)
    scale = 0.05 if args.quick else args.epochs_scale
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = json.loads(RESULTS_FILE.read_text()) if RESULTS_FILE.exists() else {"rows": {}}
    if not args.report:
        from tfp_flows import models

        names = args.models.split(",") if args.models else list(models.RECIPES)
        unknown = sorted(set(names) - set(models.RECIPES))
        if unknown:
            parser.error(f"unknown models {unknown}; the zoo has: {', '.join(models.RECIPES)}")
        if not args.models:  # a full run replaces the table, so removed recipes drop out
            result["rows"] = {}
        earlier = dict(result["rows"])

        command = "".join(f" {a}" for a in (argv or sys.argv[1:]))

        def save(rows):  # after every recipe, so an interrupted run keeps what it measured
            for row in rows.values():
                row.setdefault("arguments", command)
            result["rows"] = {**earlier, **rows}
            result.update(date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                          machine=machine())
            RESULTS.mkdir(exist_ok=True)
            RESULTS_FILE.write_text(json.dumps(result, indent=1))

        measure(names, scale, args.num_points, args.timeout, args.jit_compile, save)
    text = table(result)
    print(text)
    if not put_block(REPO / "docs" / "benchmarks.md", "zoo", text):
        print("docs/benchmarks.md has no <!-- generated:zoo --> markers; table not written there.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
