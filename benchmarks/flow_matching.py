"""FFJORD trained by flow matching against maximum likelihood: test NLL against training time.

    python benchmarks/flow_matching.py [--data two-moons checkerboard digits]
                                       [--budget 120] [--out benchmarks/results/flow_matching.json]

For each data set, one FFJORD network (one block, `nets.ODEDynamics`, same size, same initial
weights, Adam, batch 256) is trained three ways with fit() for about `--budget` seconds of
training each (by default the process's CPU time; `--clock wall` for wall time):

* `ml`: maximum likelihood (the `ffjord` recipe: ODE solve and trace in every step);
* `fm-independent`: conditional flow matching, x0 ~ N(0, I) independent of the batch;
* `fm-ot`: flow matching with minibatch optimal-transport pairs (exact assignment per batch,
  computed in the tf.data pipeline).

Every few epochs the training clock stops and the test NLL is measured with one evaluator for
all three: the same network in a FFJORD solved by Dormand-Prince (rtol = atol = 1e-5) with the
exact trace (2-D) or by RK4 with Hutchinson's trace averaged over passes (digits, 64-D: an
unbiased estimate). Printed: the NLL curve, the training time each flow-matching run needs to
reach the best NLL that maximum likelihood reached within its budget (and the ratio), and
the NLL each run reached within maximum likelihood's training time, by wall time and by the
process's CPU time (less sensitive to other load on a shared machine). Compare ratios within
one run, not absolute seconds across runs.
"""

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from tfp_flows import FlowModel, datasets, models  # noqa: E402
from tfp_flows.ffjord import (  # noqa: E402
    DormandPrinceSolver,
    ExactTrace,
    FixedStepSolver,
    HutchinsonTrace,
)
from tfp_flows.flow_matching import FlowMatching, _in_application_order  # noqa: E402

tfb, tfd = tfp.bijectors, tfp.distributions

SETTINGS = {  # per data set: network, ML solver, learning rates, evaluation
    "two-moons": dict(hidden=(64, 64), ml_solver="dopri5", lr_ml=3e-3, lr_fm=3e-3,
                      eval_every=(2, 20), eval_rows=500),
    "checkerboard": dict(hidden=(64, 64), ml_solver="dopri5", lr_ml=3e-3, lr_fm=3e-3,
                         eval_every=(2, 20), eval_rows=500),
    "digits": dict(hidden=(256, 256), ml_solver="rk4", lr_ml=1e-3, lr_fm=1e-3,
                   eval_every=(2, 40), eval_rows=None),
}


def load(name):
    train, _, test = datasets.load(name, seed=0)
    return train.reshape(len(train), -1), test.reshape(len(test), -1)


def evaluator(model, event_size):
    """Test NLL of `model`'s network under one common solver (see the module docstring)."""
    parts = _in_application_order(model.distribution.bijector)
    i = next(j for j, p in enumerate(parts) if isinstance(p, tfb.FFJORD))
    exact = event_size <= 2
    ffjord = tfb.FFJORD(
        state_time_derivative_fn=parts[i]._state_time_derivative_fn,
        ode_solve_fn=DormandPrinceSolver(1e-5, 1e-5) if exact else FixedStepSolver(16),
        trace_augmentation_fn=ExactTrace() if exact else HutchinsonTrace(),
        name="eval_ffjord")
    chain = tfb.Chain([*parts[i + 1:][::-1], ffjord, *parts[:i][::-1]])
    dist = tfd.TransformedDistribution(model.distribution.distribution, chain)
    log_prob = tf.function(dist.log_prob)
    passes = 1 if exact else 4

    def nll(x):
        total = 0.0
        for _ in range(passes):
            total += np.mean(np.concatenate([log_prob(tf.constant(b)).numpy()
                                             for b in np.array_split(x, max(1, len(x) // 500))]))
        return -total / passes
    return nll


def build(method, event_size, s, seed):
    keras.utils.set_random_seed(seed)
    solver = s["ml_solver"] if method == "ml" else "rk4"
    base = models.build_ffjord(event_size, hidden_units=s["hidden"], solver=solver,
                               num_steps=8, seed=seed)
    if method == "ml":
        return base
    return FlowMatching(base.distribution, coupling=method.split("-")[1], seed=seed)


def run(name, method, budget, seed=0, clock_kind="cpu"):
    s = SETTINGS[name]
    train, test = load(name)
    if s["eval_rows"]:
        test = test[: s["eval_rows"]]
    d = train.shape[1]
    model = build(method, d, s, seed)
    if hasattr(FlowModel, "adapt"):
        model.adapt(train)
    lr = s["lr_ml"] if method == "ml" else s["lr_fm"]
    model.compile(optimizer=keras.optimizers.Adam(lr), jit_compile=False)  # same for all
    nll = evaluator(model, d)
    every = s["eval_every"][0 if method == "ml" else 1]
    curve = [(0.0, 0, float(nll(test)), 0.0)]
    clock, cpu, epochs = 0.0, 0.0, 0
    while (cpu if clock_kind == "cpu" else clock) < budget:
        start, start_cpu = time.perf_counter(), time.process_time()
        model.fit(train, epochs=epochs + every, initial_epoch=epochs, batch_size=256,
                  verbose=0)
        clock += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        epochs += every
        curve.append((clock, epochs, float(nll(test)), cpu))
        print(f"  {name:12s} {method:15s} {clock:7.1f} s ({cpu:7.1f} s CPU)  epoch "
              f"{epochs:4d}  test NLL {curve[-1][2]:.3f}", flush=True)
    return curve


def time_to_reach(curve, target, column=0):
    for point in curve:
        if point[2] <= target:
            return point[column]
    return None


def nll_at(curve, t_max, column=0):
    return min(p[2] for p in curve if p[column] <= t_max * 1.0001)


def summarize(name, curves):
    """Time to reach ML's final NLL, and NLL within ML's time, for each method; printed."""
    entry = {"curves": curves}
    if "ml" in curves:
        ml = curves["ml"]
        # The target: the best NLL maximum likelihood reached in its budget (evaluations are
        # noisy; its last one can be above its best), and when it first got there.
        target = min(p[2] for p in ml)
        t_best, cpu_best = time_to_reach(ml, target), time_to_reach(ml, target, 3)
        t_ml, cpu_ml = ml[-1][0], ml[-1][3]
        entry.update(ml_best_nll=target, ml_time_to_best_s=t_best, ml_cpu_to_best_s=cpu_best,
                     ml_time_s=t_ml, ml_cpu_s=cpu_ml)
        for m, c in curves.items():
            reach, reach_cpu = time_to_reach(c, target), time_to_reach(c, target, 3)
            entry[m] = {"time_to_ml_nll_s": reach, "cpu_to_ml_nll_s": reach_cpu,
                        "speedup_vs_ml": None if reach is None else t_best / max(reach, 1e-9),
                        "cpu_speedup_vs_ml": (None if reach_cpu is None
                                              else cpu_best / max(reach_cpu, 1e-9)),
                        "nll_in_ml_time": nll_at(c, t_ml),
                        "nll_in_ml_cpu_time": nll_at(c, cpu_ml, 3),
                        "best_nll": min(p[2] for p in c)}
    nan = float("nan")
    print(f"\n{name}: ML's best test NLL {entry.get('ml_best_nll', nan):.3f} nats after "
          f"{entry.get('ml_time_to_best_s', nan):.0f} s of training "
          f"({entry.get('ml_cpu_to_best_s', nan):.0f} s CPU); budget used "
          f"{entry.get('ml_time_s', nan):.0f} s ({entry.get('ml_cpu_s', nan):.0f} s CPU)")
    print(f"{'method':16s} {'time to ML NLL':>15s} {'ML time / it':>13s} "
          f"{'(CPU time)':>11s} {'NLL in ML time':>15s} {'(CPU time)':>11s} {'best NLL':>9s}")
    for m in curves:
        if m not in entry:
            continue
        e = entry[m]
        reach = "not reached" if e["time_to_ml_nll_s"] is None else \
            f"{e['time_to_ml_nll_s']:.0f} s"
        ratio = "" if e["speedup_vs_ml"] is None else f"x{e['speedup_vs_ml']:.1f}"
        cpu_ratio = "" if e["cpu_speedup_vs_ml"] is None else f"x{e['cpu_speedup_vs_ml']:.1f}"
        print(f"{m:16s} {reach:>15s} {ratio:>13s} {cpu_ratio:>11s} "
              f"{e['nll_in_ml_time']:15.3f} {e['nll_in_ml_cpu_time']:11.3f} "
              f"{e['best_nll']:9.3f}", flush=True)
    return entry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["two-moons", "checkerboard", "digits"])
    parser.add_argument("--methods", nargs="+", default=["ml", "fm-independent", "fm-ot"])
    parser.add_argument("--budget", type=float, default=120.0,
                        help="training seconds per run (digits: twice this)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="which clock the budget counts: the process's CPU time (robust "
                             "to other load on the machine) or wall time")
    parser.add_argument("--out", default="benchmarks/results/flow_matching.json")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="train nothing: combine the curves of earlier runs (e.g. one "
                             "method per process) into --out and print the tables")
    args = parser.parse_args(argv)
    if args.merge:
        merged = None
        for path in args.merge:
            with open(path) as f:
                part = json.load(f)
            merged = merged or {**part, "data": {}, "merged_from": args.merge}
            for name, entry in part["data"].items():
                merged["data"].setdefault(name, {}).update(entry["curves"])
        merged["data"] = {name: summarize(name, curves)
                          for name, curves in merged["data"].items()}
        save(merged, args.out)
        return
    results = {"machine": platform.processor() or platform.machine(),
               "cpus": os.cpu_count(), "budget_s": args.budget, "clock": args.clock,
               "load_average_at_start": os.getloadavg(), "data": {}}
    for name in args.data:
        budget = args.budget * (2 if name == "digits" else 1)
        curves = {}
        for m in args.methods:
            curves[m] = run(name, m, budget, clock_kind=args.clock)
            results["data"][name] = {"curves": curves}  # kept if a later run is cut short
            save(results, args.out)
        results["data"][name] = summarize(name, curves)
        save(results, args.out)


def save(results, path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
