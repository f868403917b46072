"""Simulators with known conditional densities, to train and check conditional flows.

Each gives (context, x) pairs drawn jointly, and the exact log p(x | context), so the
KL divergence from the truth to a trained conditional flow can be measured:

    KL(p(. | c) || q(. | c)) = E_{x ~ p(. | c)} [log p(x | c) - log q(x | c)],

estimated by Monte Carlo with `ConditionalGaussianTask.kl_to_model`.

* `LinearGaussian`: x | c ~ N(A c + b, L L^T), c ~ N(0, I).
* `GaussianMeanPosterior`, the simulation-based-inference example: a parameter
  theta ~ N(0, tau^2 I) (the prior), m observations y_j ~ N(theta, sigma^2 I), summarised
  by their mean ybar (sufficient). Context = ybar, x = theta, and the posterior is
  conjugate: theta | ybar ~ N(s^2 (m / sigma^2) ybar, s^2 I), 1/s^2 = 1/tau^2 + m/sigma^2.
  A flow trained with fit(ybar, theta) on simulated pairs learns that posterior.
"""

import numpy as np


class ConditionalGaussianTask:
    """x | c ~ N(mean(c), cov) with cov fixed; subclasses define `simulate` and `mean`."""

    cov: np.ndarray

    def mean(self, context):
        raise NotImplementedError

    def simulate(self, n, seed=0):
        """n joint draws: (context [n, k], x [n, d]), float32."""
        raise NotImplementedError

    def sample(self, context, num_samples, rng):
        """x ~ p(x | c): [num_samples, batch, d]."""
        chol = np.linalg.cholesky(self.cov)
        noise = rng.standard_normal((num_samples, len(context), self.cov.shape[0]))
        return self.mean(context)[None] + noise @ chol.T

    def log_prob(self, x, context):
        """Exact log p(x | c) for x [..., batch, d] and context [batch, k]."""
        d = self.cov.shape[0]
        diff = x - self.mean(context)
        prec = np.linalg.inv(self.cov)
        _, logdet = np.linalg.slogdet(self.cov)
        maha = np.einsum("...i,ij,...j->...", diff, prec, diff)
        return -0.5 * (maha + logdet + d * np.log(2 * np.pi))

    def kl_to_model(self, model, contexts, num_samples=1000, seed=0):
        """Mean over contexts of KL(p(.|c) || model(.|c)), and its Monte Carlo standard error.

        `model` is a conditional `FlowModel`; `contexts` [batch, k].
        """
        contexts = np.asarray(contexts, np.float64)
        x = self.sample(contexts, num_samples, np.random.default_rng(seed))  # [S, B, d]
        true_lp = self.log_prob(x, contexts)
        flat_x = x.reshape(-1, x.shape[-1]).astype(np.float32)
        flat_c = np.broadcast_to(contexts, x.shape[:2] + contexts.shape[1:]).reshape(
            -1, contexts.shape[-1]).astype(np.float32)
        model_lp = np.asarray(model.predict((flat_c, flat_x), batch_size=8192, verbose=0))
        gap = true_lp - model_lp.reshape(true_lp.shape)  # [S, B]
        per_context = gap.mean(axis=0)
        stderr = gap.std() / np.sqrt(gap.size)
        return float(per_context.mean()), float(stderr)


class LinearGaussian(ConditionalGaussianTask):
    """x | c ~ N(A c + b, L L^T), c ~ N(0, I): a conditional density known in closed form."""

    def __init__(self, weight, bias, scale_tril):
        self.weight = np.asarray(weight, np.float64)
        self.bias = np.asarray(bias, np.float64)
        scale_tril = np.asarray(scale_tril, np.float64)
        self.cov = scale_tril @ scale_tril.T

    def mean(self, context):
        return np.asarray(context) @ self.weight.T + self.bias

    def simulate(self, n, seed=0):
        rng = np.random.default_rng(seed)
        context = rng.standard_normal((n, self.weight.shape[1]))
        x = self.sample(context, 1, rng)[0]
        return context.astype(np.float32), x.astype(np.float32)


class GaussianMeanPosterior(ConditionalGaussianTask):
    """Posterior of a Gaussian mean theta given the mean of m noisy observations."""

    def __init__(self, dim=2, prior_std=2.0, noise_std=1.0, num_observations=5):
        self.dim = int(dim)
        self.prior_std = float(prior_std)
        self.noise_std = float(noise_std)
        self.num_observations = int(num_observations)
        precision = 1 / self.prior_std**2 + self.num_observations / self.noise_std**2
        self.posterior_var = 1 / precision
        self.cov = self.posterior_var * np.eye(self.dim)

    def mean(self, context):
        """Posterior mean E[theta | ybar]."""
        gain = self.posterior_var * self.num_observations / self.noise_std**2
        return gain * np.asarray(context)

    def simulate(self, n, seed=0):
        """(ybar, theta) pairs: theta from the prior, ybar from the simulator."""
        rng = np.random.default_rng(seed)
        theta = self.prior_std * rng.standard_normal((n, self.dim))
        y = theta[:, None, :] + self.noise_std * rng.standard_normal(
            (n, self.num_observations, self.dim))
        return y.mean(axis=1).astype(np.float32), theta.astype(np.float32)
