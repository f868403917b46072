"""Variational inference with flows (`tfp_flows.VariationalFit`) on targets with known answers.

    python benchmarks/vi.py [--steps 2000] [--parts energies logreg]
                            [--out benchmarks/results/vi.json]

(a) 2-D energies whose normaliser Z is known in closed form: a ring, a banana and a mixture
    of 8 well-separated Gaussians. A RealNVP (6 couplings of 64x64 MLPs) is fitted by the
    ELBO (reverse KL) and by the importance-weighted bound (alpha = 0, K = 16). Printed: the
    log Z estimate log mean(p~ / q) from 100000 fresh samples against the truth, the ELBO,
    the effective sample size over n, and for the mixture how many modes hold at least 2%
    of q's samples.
(b) Bayesian logistic regression on scikit-learn's breast-cancer data (569 rows,
    30 standardised features + intercept, D = 31, prior N(0, I)): a RealNVP fitted by the
    ELBO against a reference of NUTS chains (tfp.mcmc, 4 chains x 2000 draws after 1000
    adaptation steps, XLA-compiled). Printed: the MMD (Gaussian kernel, median bandwidth)
    between 4000 VI samples and the 8000 NUTS draws next to the MMD between two halves of the
    NUTS draws (the noise floor), and posterior means and standard deviations side by side.
"""

import argparse
import json
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from tfp_flows import VariationalFit, models  # noqa: E402

tfd = tfp.distributions


# ---------------------------------------------------------------------------- 2-D energies
def ring(x, r=3.0, s=0.3):
    return -((tf.norm(x, axis=-1) - r) ** 2) / (2 * s * s)


def ring_log_z(r=3.0, s=0.3):
    # Z = 2 pi int_0^inf rho exp(-(rho - r)^2 / 2 s^2) d rho
    phi = 0.5 * (1 + math.erf(r / (s * math.sqrt(2))))
    return math.log(2 * math.pi * (s * s * math.exp(-r * r / (2 * s * s))
                                   + r * s * math.sqrt(2 * math.pi) * phi))


A, B, S = 1.5, 0.5, 0.5


def banana(x):
    return (-x[..., 0] ** 2 / (2 * A * A)
            - (x[..., 1] - B * (x[..., 0] ** 2 - A * A)) ** 2 / (2 * S * S))


MODES = np.stack([4 * np.cos(2 * np.pi * np.arange(8) / 8),
                  4 * np.sin(2 * np.pi * np.arange(8) / 8)], 1).astype(np.float32)
MIX_SD = 0.4


def mixture(x):
    d2 = tf.reduce_sum((x[..., None, :] - MODES) ** 2, -1)
    return tf.reduce_logsumexp(-d2 / (2 * MIX_SD**2), -1)


ENERGIES = {  # name: (log p~, true log Z)
    "ring": (ring, ring_log_z()),
    "banana": (banana, math.log(2 * math.pi * A * S)),
    "mixture-8": (mixture, math.log(8 * 2 * math.pi * MIX_SD**2)),
}


def modes_found(x):
    nearest = np.argmin(((x[:, None, :] - MODES) ** 2).sum(-1), 1)
    share = np.bincount(nearest, minlength=len(MODES)) / len(x)
    return int(np.sum(share >= 0.02)), share.round(3).tolist()


def fit(flow, target, steps, lr, alpha=1.0, k=1, seed=0):
    vi = VariationalFit(flow, target, num_samples=256, alpha=alpha, num_importance=k,
                        seed=seed)
    vi.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        lr, steps)), jit_compile=False)  # XLA compiles take minutes on a busy CPU
    start = time.perf_counter()
    vi.fit(epochs=10, steps_per_epoch=steps // 10, verbose=0)
    return vi, time.perf_counter() - start


def energies(steps):
    out = {}
    print(f"\n(a) 2-D energies, RealNVP 6 x (64, 64), {steps} steps of 256 samples")
    print(f"{'target':10s} {'objective':10s} {'log Z est':>10s} {'+-':>6s} {'true':>7s} "
          f"{'ELBO':>7s} {'ESS/n':>6s} {'modes':>6s} {'train s':>8s}")
    for name, (target, true) in ENERGIES.items():
        for objective, alpha, k in (("elbo", 1.0, 1), ("iw-16", 0.0, 16)):
            keras.utils.set_random_seed(0)
            flow = models.build_realnvp(2, num_layers=6, hidden_units=(64, 64), seed=0,
                                        base="normal")  # as the tables were measured
            vi, seconds = fit(flow, target, steps, 3e-3, alpha, k)
            d = vi.diagnostics(100000)
            row = {**d, "true_log_z": true, "train_s": seconds}
            modes = ""
            if name.startswith("mixture"):
                found, share = modes_found(flow.sample(20000, seed=1).numpy())
                row.update(modes_found=found, mode_share=share)
                modes = f"{found}/8"
            out[f"{name}/{objective}"] = row
            print(f"{name:10s} {objective:10s} {d['log_z']:10.4f} {d['log_z_se']:6.4f} "
                  f"{true:7.4f} {d['elbo']:7.4f} {d['ess']:6.3f} {modes:>6s} {seconds:8.1f}",
                  flush=True)
    return out


# ---------------------------------------------------------------------------- logistic regression
def logistic_regression_target():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = (data.data - data.data.mean(0)) / data.data.std(0)
    features = tf.constant(np.concatenate([np.ones((len(x), 1)), x], 1), tf.float32)
    labels = tf.constant(2.0 * data.target - 1.0, tf.float32)  # +-1

    def log_joint(w):  # w [..., 31]
        logits = tf.einsum("...d,nd->...n", w, features)
        return (tf.reduce_sum(tf.math.log_sigmoid(labels * logits), -1)
                - 0.5 * tf.reduce_sum(w * w, -1))

    return log_joint, features.shape[1]


def nuts(log_joint, dim, chains=4, draws=2000, burnin=1000, seed=0):
    kernel = tfp.mcmc.DualAveragingStepSizeAdaptation(
        tfp.mcmc.NoUTurnSampler(log_joint, step_size=0.05, max_tree_depth=8),
        num_adaptation_steps=int(0.8 * burnin))

    @tf.function(jit_compile=True)
    def run():
        return tfp.mcmc.sample_chain(
            draws, tf.zeros([chains, dim]), kernel=kernel, num_burnin_steps=burnin,
            trace_fn=lambda _, r: r.inner_results.leapfrogs_taken,
            seed=tf.constant([seed, 1]))

    start = time.perf_counter()
    samples, leapfrogs = run()
    seconds = time.perf_counter() - start
    samples = samples.numpy()
    rhat = tfp.mcmc.potential_scale_reduction(samples).numpy()
    ess = tfp.mcmc.effective_sample_size(samples, cross_chain_dims=1).numpy()
    return samples.reshape(-1, dim), seconds, float(np.max(rhat)), float(np.min(ess)), \
        float(np.mean(leapfrogs))


def mmd(x, y, bandwidth=None, max_rows=4000, seed=0):
    """Unbiased squared MMD with a Gaussian kernel (median heuristic on the pooled sample)."""
    rng = np.random.default_rng(seed)
    x = x[rng.permutation(len(x))[:max_rows]].astype(np.float64)
    y = y[rng.permutation(len(y))[:max_rows]].astype(np.float64)
    z = np.concatenate([x, y])
    if bandwidth is None:
        sub = z[rng.permutation(len(z))[:1000]]
        d2 = ((sub[:, None] - sub[None]) ** 2).sum(-1)
        bandwidth = float(np.sqrt(0.5 * np.median(d2[d2 > 0])))

    def k(a, b):
        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
        return np.exp(-d2 / (2 * bandwidth**2))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1))
                 + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()), bandwidth


def logreg(steps):
    log_joint, dim = logistic_regression_target()
    print(f"\n(b) Bayesian logistic regression, breast cancer, D = {dim}")
    ref, nuts_s, rhat, min_ess, leapfrogs = nuts(log_joint, dim)
    print(f"NUTS: 4 x 2000 draws in {nuts_s:.1f} s (with XLA compilation), max R-hat "
          f"{rhat:.3f}, min ESS {min_ess:.0f}, {leapfrogs:.1f} leapfrogs per draw", flush=True)
    keras.utils.set_random_seed(0)
    flow = models.build_realnvp(dim, num_layers=6, hidden_units=(128, 128), seed=0,
                                base="normal")  # as the tables were measured
    vi, seconds = fit(flow, log_joint, steps, 1e-3)
    d = vi.diagnostics(20000)
    q = flow.sample(8000, seed=1).numpy()
    dist, bandwidth = mmd(q, ref)
    half = len(ref) // 2
    floor, _ = mmd(ref[:half], ref[half:], bandwidth)
    # A diagonal Gaussian with NUTS' own means and stds: what ignoring correlations costs.
    rng = np.random.default_rng(0)
    diag = ref.mean(0) + ref.std(0) * rng.normal(size=ref.shape)
    diag_mmd, _ = mmd(diag, ref, bandwidth)
    print(f"VI (RealNVP 6 x 128-128, {steps} steps): {seconds:.1f} s; ELBO {d['elbo']:.2f}, "
          f"log Z (evidence) {d['log_z']:.2f} +- {d['log_z_se']:.2f}, ESS/n {d['ess']:.3f}")
    print(f"MMD^2 (bandwidth {bandwidth:.2f}): VI vs NUTS {dist:.5f}; NUTS half vs half "
          f"{floor:.5f}; diagonal Gaussian with NUTS moments vs NUTS {diag_mmd:.5f}")
    names = ["intercept", *[f"w{i}" for i in range(1, dim)]]
    print(f"{'coef':10s} {'NUTS mean':>10s} {'VI mean':>9s} {'NUTS std':>9s} {'VI std':>8s}")
    for i in range(dim):
        print(f"{names[i]:10s} {ref[:, i].mean():10.3f} {q[:, i].mean():9.3f} "
              f"{ref[:, i].std():9.3f} {q[:, i].std():8.3f}")
    err_mean = np.abs(q.mean(0) - ref.mean(0)) / ref.std(0)
    std_ratio = q.std(0) / ref.std(0)
    print(f"|mean difference| / NUTS std: median {np.median(err_mean):.3f}, max "
          f"{err_mean.max():.3f}; VI std / NUTS std: from {std_ratio.min():.2f} to "
          f"{std_ratio.max():.2f} (median {np.median(std_ratio):.2f})")
    return {"nuts": {"seconds": nuts_s, "max_rhat": rhat, "min_ess": min_ess,
                     "leapfrogs_per_draw": leapfrogs, "mean": ref.mean(0).tolist(),
                     "std": ref.std(0).tolist()},
            "vi": {**d, "train_s": seconds, "steps": steps, "mean": q.mean(0).tolist(),
                   "std": q.std(0).tolist()},
            "mmd2_vi_vs_nuts": dist, "mmd2_nuts_halves": floor,
            "mmd2_diagonal_gaussian_vs_nuts": diag_mmd, "bandwidth": bandwidth,
            "mean_error_over_std_median": float(np.median(err_mean)),
            "mean_error_over_std_max": float(err_mean.max()),
            "std_ratio_min": float(std_ratio.min()), "std_ratio_max": float(std_ratio.max())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--parts", nargs="+", default=["energies", "logreg"])
    parser.add_argument("--out", default="benchmarks/results/vi.json")
    args = parser.parse_args(argv)
    results = {"steps": args.steps}
    if "energies" in args.parts:
        results["energies"] = energies(args.steps)
    if "logreg" in args.parts:
        results["logistic_regression"] = logreg(args.steps * 2)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
