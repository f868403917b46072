"""Variational autoencoders with flow posteriors (seed 002, §4.1), as a Keras 3 model.

    encoder:  x -> h = MLP(x)                            (h: the amortising hidden vector)
    base:     z0 = loc(h) + exp(log_scale(h)) ⊙ ε,  ε ~ N(0, I)    (q0(z | x), diagonal)
    flow:     z = f_h(z0)   planar / radial / Sylvester (`bijectors.AmortizedFlow`, its
              parameters a linear map of h) or IAF (MADE layers with context h)
    decoder:  p(x | z) = Bernoulli(logits = MLP(z)),  p(z) = N(0, I)

The loss is the negative ELBO with one sample of ε per example:

    -ELBO(x) = -[log p(x | z) + log p(z) - log q(z | x)],
    log q(z | x) = log N(ε; 0, I) - log|det ∂(f_h ∘ a_h)/∂ε|,

so the flow's log-det enters through the forward log-det at ε (no inverse is ever needed).
`importance_log_likelihood(x, num_samples=500)` estimates log p(x) by importance sampling
with q as proposal: log (1/k) Σ_k p(x, z_k) / q(z_k | x), a logsumexp over k samples per
example, computed in batches; it is a lower bound on log p(x) in expectation, tighter than
the ELBO (which is its k = 1 case).

Posterior kinds (`POSTERIORS`): "diagonal" (q0 alone), "planar", "radial",
"sylvester-orthogonal", "sylvester-householder", "sylvester-triangular", "iaf".
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import conditioning
from tfp_flows.bijectors.amortized_flow import AmortizedFlow
from tfp_flows.nets import made
from tfp_flows.nets.amortized_flow_params import FLOW_KINDS, AmortizedFlowParameters

tfb = tfp.bijectors

POSTERIORS = ("diagonal", *FLOW_KINDS, "iaf")


def binarized_digits(*, seed=0):
    """scikit-learn's 8x8 digits as 64-D binary vectors, float32 [1797, 64].

    Each pixel k/16 becomes 1 with probability k/16 (one fixed-seed Bernoulli draw, the
    "statically binarised" form), so the data set is the same on every call.
    """
    from sklearn.datasets import load_digits

    probs = load_digits().images.reshape(-1, 64) / 16.0
    rng = np.random.default_rng(seed)
    return (rng.random(probs.shape) < probs).astype(np.float32)


def _mlp(units, activation, seed, name):
    return [keras.layers.Dense(u, activation=activation, name=f"{name}_{i}",
                               kernel_initializer=keras.initializers.GlorotUniform(
                                   seed=None if seed is None else seed * 100 + i))
            for i, u in enumerate(units)]


@keras.saving.register_keras_serializable(package="tfp_flows")
class FlowVAE(keras.Model):
    """A VAE with Bernoulli decoder and a flow posterior; train with `fit(x)` (binary x).

    Args:
      data_size: number of binary inputs (64 for the digits).
      latent_size: dimension of z.
      posterior: one of POSTERIORS.
      num_flow_layers: flow layers of the posterior (ignored for "diagonal").
      encoder_units: hidden widths of the encoder MLP; the last one is h.
      decoder_units: hidden widths of the decoder MLP.
      iaf_hidden_units: hidden widths of each IAF layer's MADE (context h).
      num_hidden: M of the Sylvester layers (default latent_size).
      activation: activation of the MLPs.
      seed: seed of the initial weights and of the training noise.

    Metrics: `loss` = -ELBO (nats per example, one sample), `reconstruction` =
    -log p(x | z), `kl` = log q(z | x) - log p(z) (its one-sample estimate).
    """

    def __init__(self, data_size=64, latent_size=4, posterior="planar", num_flow_layers=4,
                 encoder_units=(128, 64), decoder_units=(64, 128), iaf_hidden_units=(32, 32),
                 num_hidden=None, activation="relu", seed=None, **kwargs):
        super().__init__(**kwargs)
        if posterior not in POSTERIORS:
            raise ValueError(f"posterior must be one of {POSTERIORS}; got {posterior!r}.")
        if not encoder_units:
            raise ValueError("encoder_units needs at least one layer (its output is h).")
        self.data_size, self.latent_size = int(data_size), int(latent_size)
        self.posterior, self.num_flow_layers = posterior, int(num_flow_layers)
        self.encoder_units = [int(u) for u in encoder_units]
        self.decoder_units = [int(u) for u in decoder_units]
        self.iaf_hidden_units = [int(u) for u in iaf_hidden_units]
        self.num_hidden = num_hidden
        self.activation, self.seed = activation, seed
        h_size = self.encoder_units[-1]
        self.encoder = _mlp(self.encoder_units, activation, seed, "encoder")
        self.decoder = _mlp(self.decoder_units, activation, None if seed is None else seed + 1,
                            "decoder")
        self.decoder_logits = keras.layers.Dense(self.data_size, name="decoder_logits")
        flow_kind = posterior if posterior in FLOW_KINDS else None
        self.posterior_parameters = AmortizedFlowParameters(
            flow_kind, self.latent_size, self.num_flow_layers if flow_kind else 0, h_size,
            location_scale=True, num_hidden=num_hidden, seed=seed, name="posterior_parameters")
        parts = [AmortizedFlow(self.posterior_parameters, name="amortized_posterior")]
        self.iaf_nets = []
        if posterior == "iaf":
            from tfp_flows.models.building_blocks import interleave
            from tfp_flows.models.maf import maf_layers

            mafs = maf_layers(self.latent_size, self.num_flow_layers, self.iaf_hidden_units,
                              activation, "float32", seed, h_size)
            self.iaf_nets = [m._shift_and_log_scale_fn for m in mafs]
            iafs = [tfb.Invert(m, name=f"iaf_{i}") for i, m in enumerate(mafs)]
            # Chain applies right to left: the base affine map first, then iaf_0, iaf_1, ...
            parts = list(reversed(interleave(iafs, self.latent_size, "reverse"))) + parts
        self.posterior_flow = tfb.Chain(parts, name="posterior_flow")
        self._noise = keras.random.SeedGenerator(seed)
        self._loss_tracker = keras.metrics.Mean(name="loss")
        self._recon_tracker = keras.metrics.Mean(name="reconstruction")
        self._kl_tracker = keras.metrics.Mean(name="kl")
        self.elbo(tf.zeros([1, self.data_size]))  # build every weight now
        self.built = True

    # ------------------------------------------------------------------ pieces
    def encode(self, x):
        """h, the hidden vector that amortises q(z | x)."""
        h = tf.cast(x, self.compute_dtype)
        for layer in self.encoder:
            h = layer(h)
        return h

    def decoder_log_likelihood(self, x, z):
        """log p(x | z) under the Bernoulli decoder; z [..., B, latent], x [B, data]."""
        h = z
        for layer in self.decoder:
            h = layer(h)
        logits = self.decoder_logits(h)
        x = tf.broadcast_to(tf.cast(x, logits.dtype), tf.shape(logits))
        return -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits),
                              axis=-1)

    def sample_posterior(self, h, num_samples=None):
        """z ~ q(z | x) and log q(z | x): shapes [B, latent] and [B], or with `num_samples`
        [k, B, latent] and [k, B]."""
        shape = tf.concat([[] if num_samples is None else [num_samples],
                           tf.shape(h)[:-1], [self.latent_size]], 0)
        eps = keras.random.normal(shape, dtype=h.dtype, seed=self._noise)
        kwargs = conditioning.context_kwargs(self.posterior_flow, h)
        with made.reuse_outputs():  # one MADE pass for the IAF's forward and its log-det
            z = self.posterior_flow.forward(eps, **kwargs)
            log_det = self.posterior_flow.forward_log_det_jacobian(eps, event_ndims=1,
                                                                   **kwargs)
        log_base = -0.5 * tf.reduce_sum(tf.square(eps), -1) - 0.5 * self.latent_size * np.log(
            2 * np.pi)
        return z, log_base - log_det

    def _log_prior(self, z):
        return -0.5 * tf.reduce_sum(tf.square(z), -1) - 0.5 * self.latent_size * np.log(
            2 * np.pi)

    def elbo_terms(self, x):
        """(log p(x | z), log q(z | x) - log p(z)) per example, one posterior sample."""
        z, log_q = self.sample_posterior(self.encode(x))
        return self.decoder_log_likelihood(x, z), log_q - self._log_prior(z)

    def elbo(self, x):
        """One-sample ELBO per example (nats)."""
        recon, kl = self.elbo_terms(x)
        return recon - kl

    def call(self, x, training=False):
        return self.elbo(x)

    def log_weights(self, x, num_samples):
        """log p(x, z_k) - log q(z_k | x) for k samples per example: [num_samples, B]."""
        z, log_q = self.sample_posterior(self.encode(x), num_samples)
        return self.decoder_log_likelihood(x, z) + self._log_prior(z) - log_q

    def importance_log_likelihood(self, x, num_samples=500, batch_size=50, jit_compile=False):
        """IW estimate of log p(x) per example (NumPy [n]): logsumexp_k(log w_k) - log k.

        Batches of `batch_size` examples, each with `num_samples` posterior samples.
        """
        x = np.asarray(x, np.float32)

        @tf.function(jit_compile=jit_compile)
        def estimate(batch):
            log_w = self.log_weights(batch, num_samples)
            return tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(
                tf.cast(num_samples, log_w.dtype))

        return np.concatenate([estimate(tf.constant(x[i:i + batch_size])).numpy()
                               for i in range(0, len(x), batch_size)])

    def evaluate_elbo(self, x, batch_size=500, num_passes=1, jit_compile=False):
        """Mean one-sample ELBO over x, averaged over `num_passes` draws (NumPy float)."""
        x = np.asarray(x, np.float32)
        fn = tf.function(self.elbo, jit_compile=jit_compile)
        passes = [sum(float(fn(tf.constant(x[i:i + batch_size])).numpy().sum())
                      for i in range(0, len(x), batch_size)) / len(x)
                  for _ in range(num_passes)]
        return float(np.mean(passes))

    # ------------------------------------------------------------------ training
    @property
    def metrics(self):
        return [self._loss_tracker, self._recon_tracker, self._kl_tracker]

    def _step_metrics(self, x):
        recon, kl = self.elbo_terms(x)
        loss = tf.reduce_mean(kl - recon)
        return loss, recon, kl

    def _record(self, loss, recon, kl):
        self._loss_tracker.update_state(loss)
        self._recon_tracker.update_state(-tf.reduce_mean(recon))
        self._kl_tracker.update_state(tf.reduce_mean(kl))
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            loss, recon, kl = self._step_metrics(x)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
        return self._record(loss, recon, kl)

    def test_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        return self._record(*self._step_metrics(x))

    def get_config(self):
        config = super().get_config()
        config.update(data_size=self.data_size, latent_size=self.latent_size,
                      posterior=self.posterior, num_flow_layers=self.num_flow_layers,
                      encoder_units=self.encoder_units, decoder_units=self.decoder_units,
                      iaf_hidden_units=self.iaf_hidden_units, num_hidden=self.num_hidden,
                      activation=self.activation, seed=self.seed)
        return config
