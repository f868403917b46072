"""Variational inference: fit a flow q to a target known up to its normaliser, p~(x) = Z p(x).

Given log p~(x) as a function (a Bayesian posterior's log joint, an energy -E(x)), a flow q
(any `FlowModel`) is fitted without data by maximising the evidence lower bound (ELBO) with
reparameterised samples x = f(z), z ~ base (Rezende & Mohamed 2015):

    log w(x) = log p~(x) - log q(x),
    ELBO = E_q[log w] = log Z - KL(q || p) <= log Z,

so maximising the ELBO minimises the reverse KL divergence. Reverse KL is mode-seeking: q
may settle on some modes of a multimodal p. The importance-weighted / alpha-divergence
option uses the variational Renyi bound (Li & Turner 2016) over groups of K samples,

    L_alpha = 1 / (1 - alpha) log (1/K) sum_k w_k^(1 - alpha),

alpha = 1 being the ELBO (the limit), alpha = 0 the importance-weighted bound of Burda et
al. (2016), log Z >= L_0 >= ELBO; alpha < 1 pulls q towards covering more of p.

Diagnostics (per step as metrics, and from fresh samples by `VariationalFit.diagnostics`):

* `elbo`: mean log w, a lower bound on log Z;
* `log_z`: log (1/n) sum w, the importance-sampling estimate of log Z (consistent; its
  expectation is below log Z by Jensen, by little when the weights are even);
* `ess`: the importance-sampling effective sample size as a fraction of n,
  (sum w)^2 / (n sum w^2) in (0, 1]; 1 when q = p, small when q misses mass of p.

Amortised (conditional) VI: with a conditional flow q(x | c) and a target log p~(x | c)
(e.g. a posterior over x given observations c), `fit(contexts)` trains one q for every c;
each step draws `num_samples` samples per context of the batch.
"""

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from tfp_flows import conditioning, data_checks
from tfp_flows.flow_model import FlowModel, StopOnNonFiniteLoss, flow_bijector


def _log_mean_exp(x, axis):
    n = tf.cast(tf.shape(x)[axis], x.dtype)
    return tf.reduce_logsumexp(x, axis=axis) - tf.math.log(n)


def ess_fraction(log_w, axis=0):
    """Effective sample size over n of self-normalised importance weights exp(log_w):
    (sum w)^2 / (n sum w^2), along `axis`."""
    log_w = tf.convert_to_tensor(log_w)
    n = tf.cast(tf.shape(log_w)[axis], log_w.dtype)
    return tf.exp(2.0 * tf.reduce_logsumexp(log_w, axis=axis)
                  - tf.reduce_logsumexp(2.0 * log_w, axis=axis)) / n


class VariationalFit(keras.Model):
    """Fits `flow` (a `FlowModel`) to the unnormalised density exp(`target_log_prob`).

    ```python
    vi = tfp_flows.VariationalFit(flow, target_log_prob, num_samples=256)
    vi.compile(optimizer=keras.optimizers.Adam(1e-3))
    vi.fit(epochs=10, steps_per_epoch=100)        # unconditional: no data
    vi.diagnostics(20000)                         # {'elbo', 'log_z', 'ess', ...}
    flow.sample(1000)                             # the fitted q
    ```

    Conditional flows (amortised VI): `target_log_prob(x, context)` and
    `vi.fit(contexts, batch_size=..., epochs=...)`; each step draws `num_samples` samples per
    context row of the batch.

    Training is Keras' `fit()`: callbacks, progress bar, `keras.utils.set_random_seed` (and
    the `seed` argument, which fixes the training noise) work as for `FlowModel`. A step whose
    loss is not finite (e.g. log p~ = -inf where q put a sample), or whose update would make
    a weight non-finite, is undone inside the compiled step (weights and optimizer state)
    and fit() stops with a `NonFiniteLossWarning`; the flow keeps the weights of the last
    finite step. The fitted flow is `vi.flow`; save it, not this wrapper
    (the target function has no config). Training runs on one device (tf.distribute
    strategies are not supported by this train step); `jit_compile=True` works.

    Metrics: `loss` (the negative bound), `elbo`, `log_z` and `ess` (see the module
    docstring), averaged over the epoch's steps (for a conditional flow, over contexts too).

    Args:
      flow: a `FlowModel` (unconditional, or conditional for amortised VI). A flow of a
        base (`tfd.TransformedDistribution`) gives samples and their log q in one pass of
        the bijector's forward direction (fast for IAF, RealNVP, splines; D passes for a
        MAF); any other distribution must be reparameterised (sample, then log_prob).
        The zoo's maf, iaf, realnvp, nice and sos builders clamp their conditioners' inputs
        at 4 (10 for nice) by default, a bound meant for data standardised by `adapt()`; a
        VI target is in its own units, so build them with `input_bound=None` unless the
        target lives within a few units of the origin (on a banana of std 1.5 the clamp
        cost 0.03 nats of log Z). Their maf, realnvp, iaf, naf and householder start from
        a Student-t base, made for data with points far out or between modes: for a
        light-tailed target pass `base="normal"` (docs/vi.md measures both).
      target_log_prob: x [..., *event_shape] -> log p~(x) [...], TensorFlow ops (it runs in
        the compiled step); conditional: (x, context) with context broadcast to x's leading
        shape, [..., *context_shape].
      num_samples: samples per step (per context for a conditional flow).
      alpha: 1 for the ELBO (reverse KL); alpha < 1 (0: importance-weighted bound) for the
        Renyi bound over groups of `num_importance` samples.
      num_importance: K, the group size of the Renyi bound; divides `num_samples`.
      seed: int or None, the training noise (None: from Keras' global seed).
    """

    def __init__(self, flow: FlowModel, target_log_prob: Callable, *, num_samples: int = 256,
                 alpha: float = 1.0, num_importance: int = 1, seed: int | None = None,
                 name: str = "variational_fit", **kwargs):
        super().__init__(name=name, **kwargs)
        if not isinstance(flow, FlowModel):
            raise TypeError(f"VariationalFit needs a tfp_flows.FlowModel as the flow; got "
                            f"{type(flow).__name__}.")
        if not callable(target_log_prob):
            raise TypeError("target_log_prob must be a function x -> log p~(x) (or "
                            "(x, context) -> log p~(x | context) for a conditional flow).")
        num_samples, num_importance, alpha = int(num_samples), int(num_importance), float(alpha)
        if num_samples < 1 or num_importance < 1 or num_samples % num_importance:
            raise ValueError(f"num_samples ({num_samples}) must be a positive multiple of "
                             f"num_importance ({num_importance}).")
        if alpha != 1.0 and num_importance < 2:
            raise ValueError(f"alpha={alpha} needs groups of samples: pass num_importance >= 2 "
                             f"(with K = 1 every Renyi bound equals the ELBO).")
        self.flow = flow
        self.target_log_prob = target_log_prob
        self.num_samples, self.alpha, self.num_importance = num_samples, alpha, num_importance
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed)
        self._bijector = flow_bijector(flow.distribution)
        self._trackers = {k: keras.metrics.Mean(name=k) for k in ("loss", "elbo", "log_z", "ess")}
        self.nonfinite_report = None
        self._probe_target()

    @property
    def metrics(self):
        return list(self._trackers.values())

    # ------------------------------------------------------------------ pieces
    def _probe_target(self):
        """Call the target once on a probe, so a wrong signature fails at construction."""
        x = tf.zeros([2, *self.flow.event_shape.as_list()], self.flow.distribution.dtype)
        try:
            if self.flow.is_conditional:
                c = tf.zeros([2, *self.flow.context_shape.as_list()], x.dtype)
                lp = self.target_log_prob(x, c)
            else:
                lp = self.target_log_prob(x)
        except TypeError as e:
            what = "(x, context)" if self.flow.is_conditional else "(x)"
            raise TypeError(f"target_log_prob could not be called as target_log_prob{what} "
                            f"on a batch of 2 events: {e}") from e
        if tuple(tf.convert_to_tensor(lp).shape) != (2,):
            raise ValueError(f"target_log_prob must return one value per event: on x of shape "
                             f"{tuple(x.shape)} it returned shape {tuple(lp.shape)}.")

    def _stateless_seed(self):
        return keras.random.randint([2], 0, 2**31 - 1, seed=self._seed_generator, dtype="int32")

    def sample_and_log_prob(self, n: int, context=None, seed=None, training=False):
        """(x, log q(x)) for n reparameterised samples, [n, (batch,) *event_shape] and
        [n, (batch)]; `seed` a stateless seed (shape [2] int), None: this model's."""
        seed = self._stateless_seed() if seed is None else seed
        dist = self.flow.distribution
        if self._bijector is None:
            x = dist.sample(n, seed=seed)
            return x, dist.log_prob(x)
        base = dist.distribution
        event_ndims = len(self.flow.event_shape)
        if context is None:
            z = base.sample(n, seed=seed)
            kwargs = {}
        else:
            batch = tf.shape(context)[: tf.rank(context) - self.flow.context_shape.rank]
            z = base.sample(tf.concat([[n], batch], 0), seed=seed)
            # As FlowModel does: the context standardised and encoded as the flow has it.
            kwargs = conditioning.fill_template(
                self.flow._routing, self.flow._prepare_context(context, training))
        x = self._bijector.forward(z, **kwargs)
        log_q = base.log_prob(z) - self._bijector.forward_log_det_jacobian(
            z, event_ndims=event_ndims, **kwargs)
        return x, log_q

    def log_weights(self, n: int, context=None, seed=None, training=False):
        """log w = log p~(x) - log q(x) for n samples of q: shape [n] (or [n, batch])."""
        x, log_q = self.sample_and_log_prob(n, context, seed, training)
        if context is None:
            log_p = self.target_log_prob(x)
        else:  # the target sees the contexts as given, one per sample
            shape = tf.concat([[n], tf.shape(context)], 0)
            log_p = self.target_log_prob(x, tf.broadcast_to(context[tf.newaxis], shape))
        return tf.cast(log_p, log_q.dtype) - log_q

    def bound(self, log_w):
        """The training objective per context from log w [n, ...]: the ELBO or Renyi bound."""
        if self.alpha == 1.0:
            return tf.reduce_mean(log_w, axis=0)
        k = self.num_importance
        groups = tf.reshape(log_w, tf.concat([[-1, k], tf.shape(log_w)[1:]], 0))
        a = 1.0 - self.alpha
        return tf.reduce_mean(_log_mean_exp(a * groups, axis=1), axis=0) / a

    # ------------------------------------------------------------------ Keras
    def _context(self, data):
        if not self.flow.is_conditional:
            return None
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return tf.cast(x, self.flow.distribution.dtype)

    def _record(self, loss, log_w):
        finite_w = tf.where(tf.math.is_finite(log_w), log_w, tf.constant(-np.inf, log_w.dtype))
        values = {"loss": loss, "elbo": tf.reduce_mean(tf.reduce_mean(log_w, axis=0)),
                  "log_z": tf.reduce_mean(_log_mean_exp(finite_w, axis=0)),
                  "ess": tf.reduce_mean(ess_fraction(finite_w, axis=0))}
        for k, v in values.items():
            self._trackers[k].update_state(v)
        return {k: t.result() for k, t in self._trackers.items()}

    def train_step(self, data):
        context = self._context(data)
        variables = self.flow.trainable_variables
        with tf.GradientTape() as tape:
            log_w = self.log_weights(self.num_samples, context, training=True)
            loss = -tf.reduce_mean(self.bound(log_w))
        finite = self.flow._apply_or_undo(tape.gradient(loss, variables), variables,
                                          tf.math.is_finite(loss), self.optimizer)
        # A rejected step enters the loss tracker as NaN: the epoch's logs show it too.
        return self._record(tf.where(finite, loss, tf.constant(np.nan, loss.dtype)), log_w)

    def test_step(self, data):
        context = self._context(data)
        log_w = self.log_weights(self.num_samples, context)
        return self._record(-tf.reduce_mean(self.bound(log_w)), log_w)

    def _steps(self, steps):
        return tf.data.Dataset.from_tensors(tf.zeros([1])).repeat(steps)

    def _checked_contexts(self, contexts, what):
        if not self.flow.is_conditional:
            if contexts is not None:
                raise ValueError(f"VariationalFit.{what} of an unconditional flow takes no "
                                 f"data: the flow's own samples are the batches. Use "
                                 f"{what}(epochs=..., steps_per_epoch=...).")
            return None
        if contexts is None:
            raise ValueError(f"This flow is conditional: {what}(contexts, batch_size=...) "
                             f"with contexts of shape [n, "
                             f"{', '.join(map(str, self.flow.context_shape.as_list()))}].")
        if isinstance(contexts, tf.data.Dataset):
            return contexts
        return data_checks.check_array(contexts, self.flow.context_shape,
                                       self.flow.distribution.dtype, f"{what}: contexts")

    def fit(self, x=None, y=None, *, epochs: int = 1, steps_per_epoch: int | None = None,
            callbacks=None, **kwargs):
        """Unconditional: `fit(epochs=..., steps_per_epoch=...)` (no data; default 100 steps
        per epoch). Conditional: `fit(contexts, batch_size=..., epochs=...)`."""
        if y is not None:
            raise ValueError("VariationalFit.fit takes no targets: the target density is "
                             "target_log_prob.")
        contexts = self._checked_contexts(x, "fit")
        callbacks = list(callbacks or [])
        if not any(isinstance(c, StopOnNonFiniteLoss) for c in callbacks):
            callbacks.append(StopOnNonFiniteLoss())
        self.nonfinite_report = None
        kwargs.setdefault("shuffle", contexts is not None and not isinstance(
            contexts, tf.data.Dataset))
        if contexts is None:
            steps_per_epoch = 100 if steps_per_epoch is None else int(steps_per_epoch)
            return super().fit(self._steps(epochs * steps_per_epoch), epochs=epochs,
                               steps_per_epoch=steps_per_epoch, callbacks=callbacks, **kwargs)
        return super().fit(contexts, epochs=epochs, steps_per_epoch=steps_per_epoch,
                           callbacks=callbacks, **kwargs)

    def evaluate(self, x=None, y=None, *, steps: int | None = None, **kwargs):
        """Mean metrics over `steps` batches of fresh samples (unconditional, default 10), or
        over the given contexts."""
        contexts = self._checked_contexts(x, "evaluate")
        if contexts is None:
            steps = 10 if steps is None else int(steps)
            return super().evaluate(self._steps(steps), steps=steps, **kwargs)
        return super().evaluate(contexts, steps=steps, **kwargs)

    def diagnostics(self, num_samples: int = 10000, context=None, *, seed: int = 0,
                    batch_size: int = 10000) -> dict:
        """ELBO, log Z estimate and ESS from `num_samples` fresh samples of q.

        Returns a dict of floats (arrays of one value per context row when `context` is
        given): `elbo` and `elbo_se` (its standard error), `log_z` (log mean w) and `log_z_se`
        (delta method: std(w) / (sqrt(n) mean(w)); trustworthy only when `ess` is not
        small), `ess` (effective sample size / n), `num_samples`.
        """
        if self.flow.is_conditional:
            if context is None:
                raise ValueError("This flow is conditional: diagnostics(n, context) takes "
                                 "the contexts to evaluate, shape [batch, *context_shape].")
            context = tf.convert_to_tensor(self._checked_contexts(context, "diagnostics"))
        elif context is not None:
            raise ValueError("This flow is unconditional: diagnostics() takes no context.")
        chunks, done, i = [], 0, 0
        @tf.function
        def step(n, s):
            return self.log_weights(n, context, seed=s)

        while done < num_samples:
            n = min(int(batch_size), num_samples - done)
            chunks.append(step(n, tf.constant([int(seed), i], tf.int32)).numpy())
            done, i = done + n, i + 1
        log_w = np.concatenate(chunks, axis=0).astype(np.float64)
        finite = np.where(np.isfinite(log_w), log_w, -np.inf)
        m = np.max(finite, axis=0)
        w = np.exp(finite - m)
        mean_w = w.mean(axis=0)
        result = {
            "elbo": log_w.mean(axis=0), "elbo_se": log_w.std(axis=0, ddof=1) / num_samples**0.5,
            "log_z": m + np.log(mean_w),
            "log_z_se": w.std(axis=0, ddof=1) / (num_samples**0.5 * mean_w),
            "ess": w.sum(axis=0) ** 2 / (num_samples * (w**2).sum(axis=0)),
            "num_samples": num_samples}
        if context is None:
            result = {k: float(v) if k != "num_samples" else v for k, v in result.items()}
        return result


__all__ = ["VariationalFit", "ess_fraction"]
