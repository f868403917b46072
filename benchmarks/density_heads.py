"""Flows as density heads of Keras networks: measured against Gaussian heads and the truth.

    python benchmarks/density_heads.py [--epochs-scale 1.0] [--seed 0]

(a) Probabilistic regression. x ~ U(-2, 2); the 2-D target y changes shape with x:
    y1 = (0.5 + 0.25 |x|) t,  t ~ N(0, 1)                      (heteroscedastic)
    y2 = 0.5 x y1^2 + 1.5 max(x, 0) m + 0.2 e,  m = +-1, e ~ N(0, 1)
    a banana whose curvature follows x, split into two modes 3x apart for x > 0.
    Heads on the same MLP (1 -> 64 -> 64, ReLU): a conditional MAF (4 layers, MADE 64-64)
    fed 8 features (`FlowModel(..., context_encoder=...)`), a full-covariance Gaussian (mean
    and Cholesky factor, 5 outputs) and a diagonal Gaussian (4 outputs). Held-out NLL in nats
    per example (lower is better) next to the exact NLL of the true law, the floor.
(b) Simulation-based inference with a learned summary. theta ~ N(0, 2^2 I) in R^2; the
    simulator returns 20 observations obs_i ~ N(theta, I). A DeepSets encoder (per-observation
    MLP 2 -> 32 -> 32 -> 8, mean pool) feeds a conditional MAF trained on (obs, theta). The
    posterior is Gaussian in closed form (`simulators.GaussianMeanPosterior`); reported:
    KL(true posterior || flow) averaged over 200 held-out observation sets (Monte Carlo,
    500 draws each), and the same flow given the sufficient statistic (the mean of the
    observations) instead of a learned summary, as the reference.

Results go to benchmarks/results/density_heads.json; a table is printed.
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from tfp_flows import models  # noqa: E402
from tfp_flows.layers import with_context_encoder  # noqa: E402
from tfp_flows.simulators import GaussianMeanPosterior  # noqa: E402

tfd = tfp.distributions
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "density_heads.json")


# ---------------------------------------------------------------------------- (a) regression
def regression_data(n, seed):
    """(x [n, 1], y [n, 2]) float32 from the shape-changing conditional law above."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, size=(n, 1))
    t, e = rng.normal(size=(n, 1)), rng.normal(size=(n, 1))
    m = rng.choice([-1.0, 1.0], size=(n, 1))
    y1 = (0.5 + 0.25 * np.abs(x)) * t
    y2 = 0.5 * x * y1**2 + 1.5 * np.maximum(x, 0.0) * m + 0.2 * e
    return x.astype(np.float32), np.concatenate([y1, y2], 1).astype(np.float32)


def regression_log_prob(x, y):
    """The exact log p(y | x) of `regression_data` (float64): y1 | x is N(0, s(x)^2), and
    y2 | y1, x an equal mixture of N(0.5 x y1^2 +- 1.5 max(x, 0), 0.2^2)."""
    x, y = np.asarray(x, np.float64)[:, 0], np.asarray(y, np.float64)
    scale = 0.5 + 0.25 * np.abs(x)
    log_y1 = -0.5 * (y[:, 0] / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)
    centre, split = 0.5 * x * y[:, 0] ** 2, 1.5 * np.maximum(x, 0.0)
    modes = np.stack([-0.5 * ((y[:, 1] - centre - sign * split) / 0.2) ** 2 for sign in (1, -1)])
    log_y2 = (np.logaddexp(modes[0], modes[1]) - np.log(2.0) - np.log(0.2)
              - 0.5 * np.log(2 * np.pi))
    return log_y1 + log_y2


def mlp(input_shape, width=64, out=8, name="encoder"):
    inputs = keras.Input(input_shape)
    h = keras.layers.Dense(width, activation="relu")(inputs)
    h = keras.layers.Dense(width, activation="relu")(h)
    return keras.Model(inputs, keras.layers.Dense(out)(h), name=name)


def flow_head(seed, features=8, num_layers=4, hidden=(64, 64)):
    keras.utils.set_random_seed(seed)
    flow = models.build_maf(2, context_size=features, num_layers=num_layers,
                            hidden_units=hidden, seed=seed, base="normal")  # as measured
    return with_context_encoder(flow, mlp((1,), out=features), name="flow_head")


class GaussianNLL(keras.losses.Loss):
    """-log N(y; mean, L L^T) from [mean (2), raw Cholesky entries (3) or log-scales (2)]."""

    def __init__(self, full=True, **kwargs):
        super().__init__(**kwargs)
        self.full = full

    def call(self, y_true, y_pred):
        loc = y_pred[:, :2]
        if self.full:
            tril = tfp.math.fill_triangular(y_pred[:, 2:5])
            tril = tf.linalg.set_diag(tril, tf.math.softplus(tf.linalg.diag_part(tril)) + 1e-4)
            dist = tfd.MultivariateNormalTriL(loc, tril)
        else:
            dist = tfd.MultivariateNormalDiag(loc, tf.math.softplus(y_pred[:, 2:4]) + 1e-4)
        return -dist.log_prob(y_true)


def gaussian_head(seed, full=True):
    keras.utils.set_random_seed(seed)
    model = mlp((1,), out=5 if full else 4, name="gaussian_head")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=GaussianNLL(full))
    return model


def run_regression(n_train=6000, n_test=4000, epochs=40, seed=0, batch_size=200,
                   flow_kwargs=None):
    x, y = regression_data(n_train, seed)
    x_test, y_test = regression_data(n_test, seed + 1000)
    rows = {"truth (analytic)": {"test_nll": float(-np.mean(regression_log_prob(x_test, y_test))),
                                 "seconds": 0.0}}
    start = time.perf_counter()
    head = flow_head(seed, **(flow_kwargs or {}))
    head.adapt(y)  # the flow's data-end standardisation (data units stay in log_prob)
    head.compile(optimizer=keras.optimizers.Adam(2e-3))
    head.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    rows["flow head (MAF)"] = {"test_nll": float(-np.mean(head.log_prob(y_test, x_test))),
                               "seconds": time.perf_counter() - start}
    for full in (True, False):
        start = time.perf_counter()
        model = gaussian_head(seed, full)
        model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
        nll = float(np.mean(GaussianNLL(full, reduction=None)(y_test, model(x_test))))
        rows["Gaussian head (" + ("full" if full else "diag") + ")"] = {
            "test_nll": nll, "seconds": time.perf_counter() - start}
    return rows


# ---------------------------------------------------------------------------- (b) SBI
def sbi_data(n, task, seed):
    """(obs [n, m, 2], theta [n, 2]) from the prior and the simulator."""
    rng = np.random.default_rng(seed)
    theta = task.prior_std * rng.normal(size=(n, task.dim))
    obs = theta[:, None] + task.noise_std * rng.normal(size=(n, task.num_observations, task.dim))
    return obs.astype(np.float32), theta.astype(np.float32)


def deepsets(num_observations, dim=2, width=32, out=8):
    inputs = keras.Input((num_observations, dim))
    h = keras.layers.Dense(width, activation="relu")(inputs)  # the same MLP per observation
    h = keras.layers.Dense(width, activation="relu")(h)
    h = keras.layers.Dense(out)(h)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(h), name="deepsets")


def posterior_kl(task, dist, obs, num_samples=500, seed=0):
    """Mean over observation sets of KL(p(theta | obs) || q(theta | obs)), and its s.e.

    `dist`: q(. | obs) for the B held-out sets, a distribution of batch shape [B]
    (`FlowModel.distribution_at`), scored on [num_samples, B, 2] draws in one call."""
    rng = np.random.default_rng(seed)
    ybar = obs.mean(axis=1).astype(np.float64)
    theta = task.sample(ybar, num_samples, rng)  # [S, B, d]
    gap = task.log_prob(theta, ybar) - dist.log_prob(theta.astype(np.float32)).numpy()
    return float(gap.mean()), float(gap.mean(axis=0).std() / np.sqrt(gap.shape[1]))


def run_sbi(n_train=20000, epochs=30, seed=0, num_observations=20, n_test=200):
    task = GaussianMeanPosterior(dim=2, prior_std=2.0, noise_std=1.0,
                                 num_observations=num_observations)
    obs, theta = sbi_data(n_train, task, seed)
    obs_test, _ = sbi_data(n_test, task, seed + 1000)
    rows = {}
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    flow = models.build_maf(2, context_size=8, num_layers=3, hidden_units=(32, 32), seed=seed,
                            base="normal")  # as measured
    model = with_context_encoder(flow, deepsets(num_observations), name="sbi_deepsets")
    model.adapt(theta)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(obs, theta, epochs=epochs, batch_size=256, verbose=0)
    kl, se = posterior_kl(task, model.distribution_at(obs_test), obs_test, seed=seed)
    rows["DeepSets summary (learned)"] = {"kl": kl, "kl_se": se,
                                          "seconds": time.perf_counter() - start}
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    oracle = models.build_maf(2, context_size=2, num_layers=3, hidden_units=(32, 32), seed=seed,
                              base="normal")
    oracle.adapt(theta, obs.mean(axis=1))
    oracle.compile(optimizer=keras.optimizers.Adam(2e-3))
    oracle.fit(obs.mean(axis=1), theta, epochs=epochs, batch_size=256, verbose=0)
    ybar_test = obs_test.mean(axis=1)
    kl, se = posterior_kl(task, oracle.distribution_at(ybar_test), obs_test, seed=seed)
    rows["sufficient statistic (mean)"] = {"kl": kl, "kl_se": se,
                                           "seconds": time.perf_counter() - start}
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    scale = args.epochs_scale
    regression = run_regression(epochs=max(1, round(40 * scale)), seed=args.seed)
    sbi = run_sbi(epochs=max(1, round(30 * scale)), seed=args.seed)
    machine = {"platform": platform.platform(), "python": sys.version.split()[0],
               "tensorflow": tf.__version__, "devices": [d.device_type for d in
                                                         tf.config.list_logical_devices()]}
    result = {"machine": machine, "seed": args.seed, "epochs_scale": scale,
              "regression": regression, "sbi": sbi}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=1)
    print("(a) probabilistic regression, held-out NLL (nats/example)")
    best_gauss = min(r["test_nll"] for k, r in regression.items() if k.startswith("Gaussian"))
    for name, row in regression.items():
        print(f"  {name:28s} {row['test_nll']:8.3f}   {row['seconds']:6.1f} s")
    print(f"  flow head - best Gaussian head: "
          f"{regression['flow head (MAF)']['test_nll'] - best_gauss:+.3f} nats")
    print("(b) SBI posterior, KL(true || flow) in nats over held-out observation sets")
    for name, row in sbi.items():
        print(f"  {name:28s} {row['kl']:8.4f} +- {row['kl_se']:.4f}   {row['seconds']:6.1f} s")
    print(f"wrote {os.path.relpath(RESULTS, ROOT)}")


if __name__ == "__main__":
    main()
