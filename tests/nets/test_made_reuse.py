"""nets.made.reuse_outputs: one MADE evaluation per input tensor inside FlowModel's loss."""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_flows
from tfp_flows import nets
from tfp_flows.nets import made as made_module

tfd, tfb = tfp.distributions, tfp.bijectors


def _maf(D=3, layers=2, seed=0):
    keras.utils.set_random_seed(seed)
    bij = []
    for i in range(layers):
        bij.append(tfb.MaskedAutoregressiveFlow(
            nets.MADE(D, hidden_units=[8, 8], zero_init_output=False)))
        if i < layers - 1:
            bij.append(tfb.Permute(list(range(D))[::-1]))
    return tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [D]), tfb.Chain(bij))


def test_same_tensor_is_evaluated_once_and_values_and_gradients_are_unchanged(monkeypatch):
    dist = _maf()
    arr = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    # two tensors: TFP caches bijector results per input tensor, across tapes
    x, x2 = tf.constant(arr), tf.constant(arr)
    model = tfp_flows.FlowModel(dist)
    variables = model.trainable_variables
    calls = []
    orig = made_module.MADE._forward_pass

    def counting(self, *args, **kwargs):
        calls.append(self.name)
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(made_module.MADE, "_forward_pass", counting)
    with tf.GradientTape() as tape:
        plain = dist.log_prob(x)
    g_plain = tape.gradient(plain, variables)
    assert len(calls) == 4  # TFP's MAF: inverse and log-det each run the network
    calls.clear()
    with tf.GradientTape() as tape, made_module.reuse_outputs():
        shared = dist.log_prob(x2)
    g_shared = tape.gradient(shared, variables)
    assert len(calls) == 2  # once per layer
    np.testing.assert_allclose(shared.numpy(), plain.numpy(), rtol=1e-6, atol=1e-6)
    for a, b in zip(g_plain, g_shared, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_cache_is_scoped_to_the_block_and_to_the_very_same_tensor():
    made = nets.MADE(2, hidden_units=[4], zero_init_output=False)
    x = tf.constant([[0.5, -1.0]])
    with made_module.reuse_outputs():
        a, b = made(x), made(x)
        c = made(tf.constant([[0.5, -1.0]]))  # equal values, another tensor: evaluated again
        assert a is b and c is not a
        np.testing.assert_allclose(c.numpy(), a.numpy())
    made.kernels[0].assign(made.kernels[0] + 1.0)  # outside the block nothing is cached
    assert not np.allclose(made(x).numpy(), a.numpy())
    assert getattr(made_module._REUSE, "cache", None) is None


def test_fit_uses_one_pass_per_layer_in_the_compiled_step():
    dist = _maf()
    model = tfp_flows.FlowModel(dist)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = np.random.default_rng(1).normal(size=(64, 3)).astype(np.float32)
    before = model.evaluate(x, verbose=0)
    model.fit(x, batch_size=32, epochs=3, verbose=0)
    assert model.evaluate(x, verbose=0) < before


def test_flow_model_log_prob_runs_each_made_once(monkeypatch):
    dist = _maf()
    model = tfp_flows.FlowModel(dist)
    arr = np.random.default_rng(2).normal(size=(16, 3)).astype(np.float32)
    expected = dist.log_prob(tf.constant(arr)).numpy()
    calls = []
    orig = made_module.MADE._forward_pass

    def counting(self, *args, **kwargs):
        calls.append(self.name)
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(made_module.MADE, "_forward_pass", counting)
    got = model.log_prob(arr).numpy()
    assert len(calls) == 2  # once per MAF layer (TFP alone asks for 4)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    calls.clear()
    np.testing.assert_allclose(model.predict(arr, verbose=0), expected, rtol=1e-6, atol=1e-6)
    assert len(calls) == 2  # predict() traces its step once: one pass per layer
