"""Shared, framework-free benchmark harness (numpy only).

Every runner (TFP, zuko, nflows, flowjax) imports this module so that the data,
the batching order, the timing protocol and the quality metrics are literally the
same code for every library.  Only model construction and the three compiled
functions (train step, log_prob, sample) differ per library.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import targets  # noqa: E402

DATA_DIR = Path(os.environ.get("NF_BENCH_DATA", "/tmp/nf_peers_bench/data"))
N_TRAIN, N_TEST, N_SAMPLE = 50_000, 20_000, 10_000
THREADS = 2

# One MAF workload per config: `layers` MADE-conditioned affine MAF layers,
# MADE = `hidden_layers` x `hidden` ReLU units, reversal permutation between layers,
# standard-normal base, Adam(lr, b1=0.9, b2=0.999, eps=1e-8), batch `batch`.
CONFIGS = {
    "gmm8": dict(target="gmm8", D=8, hidden=128, hidden_layers=2, layers=5,
                 batch=512, lr=1e-3, steps=3000, window=100, skip_windows=2,
                 logprob_reps=5, sample_reps=3),
    "gmm32": dict(target="gmm32", D=32, hidden=512, hidden_layers=2, layers=5,
                  batch=1024, lr=1e-3, steps=int(os.environ.get("NF_BENCH_GMM32_STEPS", 1500)),
                  window=25, skip_windows=2, logprob_reps=3, sample_reps=1),
    "checker": dict(target="checker", D=2, hidden=64, hidden_layers=2, layers=5,
                    batch=512, lr=1e-3, steps=3000, window=100, skip_windows=2,
                    logprob_reps=5, sample_reps=3),
}
STEP_OVERRIDE = os.environ.get("NF_BENCH_STEPS")  # for smoke tests only
if STEP_OVERRIDE:
    for _c in CONFIGS.values():
        _c["steps"] = int(STEP_OVERRIDE)
        _c["window"] = min(_c["window"], max(1, int(STEP_OVERRIDE) // 5))
DATA_SEEDS = {"train": 11, "test": 22}
SEED = int(os.environ.get("NF_BENCH_SEED", 0))   # replicate index (0 = main run)
BATCH_SEED = 33 + SEED   # numpy RNG that shuffles the training set every epoch
MODEL_SEED = SEED        # each framework's own RNG seed for init / sampling


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def data_paths(target: str) -> dict:
    return {k: DATA_DIR / f"{target}_{k}.npy" for k in ("train", "test", "test_logp")}


def generate_data(force: bool = False) -> None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("gmm8", "gmm32", "checker"):
        p = data_paths(name)
        if not force and all(v.exists() for v in p.values()):
            continue
        t = targets.get_target(name)
        xtr = t.sample(N_TRAIN, np.random.default_rng(DATA_SEEDS["train"])).astype(np.float32)
        xte = t.sample(N_TEST, np.random.default_rng(DATA_SEEDS["test"])).astype(np.float32)
        # exact log density of the float32 test points, in float64
        lp = t.log_prob(xte.astype(np.float64))
        assert np.all(np.isfinite(lp)), name
        np.save(p["train"], xtr)
        np.save(p["test"], xte)
        np.save(p["test_logp"], lp)
        meta = t.describe()
        meta.update(n_train=N_TRAIN, n_test=N_TEST, seeds=DATA_SEEDS,
                    test_mean_logp=float(lp.mean()))
        (DATA_DIR / f"{name}_meta.json").write_text(json.dumps(meta, indent=1))


def load_data(cfg: dict):
    p = data_paths(cfg["target"])
    return (np.load(p["train"]), np.load(p["test"]), np.load(p["test_logp"]))


# --------------------------------------------------------------------------
# timing / training protocol (identical for every library)
# --------------------------------------------------------------------------
def train_loop(step, to_float, xtrain: np.ndarray, cfg: dict) -> dict:
    """Run cfg['steps'] optimisation steps.

    step(batch_np) -> loss handle;  to_float(loss handle) -> python float (forces sync).
    A new random permutation of the training set is drawn every epoch (numpy,
    fixed seed -> every library sees exactly the same batches in the same order).
    Timing windows of cfg['window'] steps are closed with a sync; the first
    cfg['skip_windows'] windows (compile/warm-up) are excluded from throughput.
    """
    B, W = cfg["batch"], cfg["window"]
    n = len(xtrain)
    nb = n // B                                   # drop remainder
    rng = np.random.default_rng(BATCH_SEED)
    xs = None
    win_times, win_losses = [], []
    t0 = time.perf_counter()
    tw = t0
    first_step_s = None
    loss = None
    for s in range(cfg["steps"]):
        k = s % nb
        if k == 0:
            xs = np.ascontiguousarray(xtrain[rng.permutation(n)])
        loss = step(xs[k * B:(k + 1) * B])
        if s == 0:
            to_float(loss)
            first_step_s = time.perf_counter() - t0
        if (s + 1) % W == 0:
            lv = to_float(loss)
            t = time.perf_counter()
            win_times.append(t - tw)
            win_losses.append(lv)
            tw = t
    final_loss = to_float(loss)
    wall = time.perf_counter() - t0
    steady = win_times[cfg["skip_windows"]:] or win_times[-1:]
    med = statistics.median(steady)
    return {
        "steps": cfg["steps"],
        "wall_s_incl_compile": wall,
        "first_step_s_incl_compile": first_step_s,
        "window_steps": W,
        "n_windows_timed": len(steady),
        "window_s_median": med,
        "window_s_min": min(steady),
        "window_s_max": max(steady),
        "train_samples_per_s": B * W / med,
        "train_steps_per_s": W / med,
        "train_ms_per_step": 1e3 * med / W,
        "loss_curve": [(W * (i + 1), loss) for i, loss in enumerate(win_losses)],
        "window_ms_per_step_all": [round(1e3 * w / W, 3) for w in win_times],
        "final_train_loss": final_loss,
    }


def time_call(fn, sync, reps: int, min_total_s: float = 1.0, max_reps: int = 50) -> dict:
    """First call (includes tracing/compilation), then at least `reps` timed calls,
    continuing until the timed calls add up to >= min_total_s (at most max_reps)."""
    t = time.perf_counter()
    out = fn()
    sync(out)
    first = time.perf_counter() - t
    times = []
    while len(times) < reps or (sum(times) < min_total_s and len(times) < max_reps):
        t = time.perf_counter()
        out = fn()
        sync(out)
        times.append(time.perf_counter() - t)
    return {"first_call_s_incl_compile": first, "reps": len(times),
            "median_s": statistics.median(times), "min_s": min(times),
            "max_s": max(times), "all_s": [round(x, 5) for x in times]}, out


def quality(logq_test: np.ndarray, logp_test: np.ndarray) -> dict:
    logq = np.asarray(logq_test, dtype=np.float64)
    diff = logp_test - logq
    finite = np.isfinite(logq)
    return {
        "test_nll": float(-logq.mean()),
        "kl_p_q": float(diff.mean()),
        "kl_p_q_stderr": float(diff.std(ddof=1) / np.sqrt(len(diff))),
        "target_entropy_est": float(-logp_test.mean()),
        "n_nonfinite_logq": int((~finite).sum()),
    }


def sample_quality(samples: np.ndarray, target_name: str) -> dict:
    t = targets.get_target(target_name)
    s = np.asarray(samples, dtype=np.float64)
    out = {"n": int(len(s)), "n_nonfinite": int((~np.isfinite(s)).any(-1).sum())}
    s = s[np.isfinite(s).all(-1)]
    if target_name == "checker":
        out["frac_in_support"] = float(t.in_support(s).mean())
    else:
        out["mean_true_logp_of_samples"] = float(t.log_prob(s).mean())
    return out


def matmul_gflops(mm, sync, n: int = 2048, reps: int = 20) -> dict:
    """float32 n x n @ n x n, `reps` timed calls after 3 warm-ups; median."""
    for _ in range(3):
        sync(mm())
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        sync(mm())
        times.append(time.perf_counter() - t)
    flop = 2.0 * n ** 3
    return {"n": n, "reps": reps, "median_s": statistics.median(times),
            "gflops_median": flop / statistics.median(times) / 1e9,
            "gflops_best": flop / min(times) / 1e9}


def made_matmul_flops_per_sample(cfg: dict) -> int:
    """Dense matmul FLOPs of one forward pass of the whole flow for one sample
    (masked weights are multiplied too, as every library does)."""
    D, H, L = cfg["D"], cfg["hidden"], cfg["layers"]
    sizes = [D] + [H] * cfg["hidden_layers"] + [2 * D]
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    return 2 * macs * L


def expected_param_count(cfg: dict) -> int:
    D, H, L = cfg["D"], cfg["hidden"], cfg["layers"]
    sizes = [D] + [H] * cfg["hidden_layers"] + [2 * D]
    return L * sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def base_record(lib: str, variant: str, cfg_name: str, versions: dict) -> dict:
    cfg = CONFIGS[cfg_name]
    return {
        "library": lib, "variant": variant, "config": cfg_name, "cfg": cfg, "seed": SEED,
        "versions": versions, "python": platform.python_version(),
        "threads": THREADS,
        "env": {k: os.environ.get(k) for k in (
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
            "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "XLA_FLAGS",
            "TF_XLA_FLAGS", "TF_ENABLE_ONEDNN_OPTS")},
        "expected_param_count": expected_param_count(cfg),
    }


def write_json(path: str, rec: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(rec, indent=1, default=float))


def run_benchmark(lib, variant, cfg_name, versions, out_path, build):
    """build(cfg, xtrain) -> dict with callables:
         step(batch_np) -> loss handle, to_float(handle) -> float,
         log_prob(x_np) -> handle, sample(n) -> handle, to_numpy(handle) -> ndarray,
         n_params (int), extra (dict, optional)
    """
    cfg = CONFIGS[cfg_name]
    rec = base_record(lib, variant, cfg_name, versions)
    xtrain, xtest, logp_test = load_data(cfg)
    t = time.perf_counter()
    m = build(cfg, xtrain)
    rec["build_s"] = time.perf_counter() - t
    rec["n_params"] = int(m["n_params"])
    rec["param_count_matches"] = rec["n_params"] == rec["expected_param_count"]
    rec.update(m.get("extra", {}))
    print(f"[{lib}/{variant}/{cfg_name}] params={rec['n_params']} "
          f"(expected {rec['expected_param_count']})", flush=True)

    rec["train"] = train_loop(m["step"], m["to_float"], xtrain, cfg)
    tr = rec["train"]
    print(f"  train: {tr['train_samples_per_s']:.0f} samples/s "
          f"({tr['train_ms_per_step']:.2f} ms/step), wall {tr['wall_s_incl_compile']:.1f}s, "
          f"first step {tr['first_step_s_incl_compile']:.2f}s, "
          f"final loss {tr['final_train_loss']:.4f}",
          flush=True)

    to_np = m["to_numpy"]
    lp_t, lq = time_call(lambda: m["log_prob"](xtest), to_np, cfg["logprob_reps"])
    lp_t["samples_per_s"] = len(xtest) / lp_t["median_s"]
    rec["log_prob"] = lp_t
    rec["quality"] = quality(to_np(lq), logp_test)
    print(f"  log_prob: {lp_t['samples_per_s']:.0f} samples/s; test NLL "
          f"{rec['quality']['test_nll']:.4f}, KL(p||q) {rec['quality']['kl_p_q']:.4f} "
          f"+- {rec['quality']['kl_p_q_stderr']:.4f}", flush=True)

    sm_t, smp = time_call(lambda: m["sample"](N_SAMPLE), to_np, cfg["sample_reps"])
    sm_t["samples_per_s"] = N_SAMPLE / sm_t["median_s"]
    rec["sample"] = sm_t
    rec["sample_quality"] = sample_quality(to_np(smp), cfg["target"])
    print(f"  sample: {sm_t['samples_per_s']:.0f} samples/s (first call "
          f"{sm_t['first_call_s_incl_compile']:.2f}s); {rec['sample_quality']}", flush=True)
    rec["status"] = "ok"
    write_json(out_path, rec)
    return rec


def cli(argv=None):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=list(CONFIGS), required=False)
    ap.add_argument("--out", required=False)
    ap.add_argument("--variant", default="default")
    ap.add_argument("--peak", action="store_true", help="only measure matmul GFLOP/s")
    return ap.parse_args(argv)
