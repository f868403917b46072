"""Flows as density heads: FlowModel(context_encoder=...), ConditionalDensity in the
functional API, and p(x | c) as a tfd.Distribution (distribution_at)."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_flows
from tfp_flows import FlowDataError, FlowModel, models
from tfp_flows.layers import ConditionalDensity, ConditionedFlow, with_context_encoder

tfd = tfp.distributions


def _perturb(model, scale=0.3):
    """Move the weights off the start (a fresh MAF ignores its context)."""
    for i, v in enumerate(model.trainable_variables):
        v.assign(v + scale * tf.random.stateless_normal(v.shape, [i, 3], dtype=v.dtype))


def _set_encoder(num_obs=6, width=4):
    """DeepSets: one MLP per observation, mean over the set. Input [num_obs, 2]."""
    inputs = keras.Input((num_obs, 2))
    h = keras.layers.Dense(16, activation="tanh")(inputs)
    h = keras.layers.Dense(width)(h)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(h), name="deepsets")


@pytest.fixture(scope="module")
def head():
    keras.utils.set_random_seed(0)
    flow = models.build_maf(2, context_size=4, num_layers=2, hidden_units=(16,), seed=0)
    model = with_context_encoder(flow, _set_encoder())
    _perturb(model)
    rng = np.random.default_rng(0)
    c = rng.normal(size=(5, 6, 2)).astype(np.float32)
    x = rng.normal(size=(5, 2)).astype(np.float32)
    return model, c, x


# ---------------------------------------------------------------------------- distribution_at
def test_distribution_at_scores_samples_and_composes_with_tfp(head):
    model, c, x = head
    live = model.log_prob(x, c).numpy()
    dist = model.distribution_at(c)
    assert isinstance(dist, ConditionedFlow) and isinstance(dist, tfd.Distribution)
    assert dist.batch_shape == [5] and dist.event_shape == [2]
    np.testing.assert_allclose(dist.log_prob(x), live, rtol=1e-5, atol=1e-5)
    assert dist.sample(3, seed=[1, 2]).shape == (3, 5, 2)
    assert dist.sample([2, 3], seed=[1, 2]).shape == (2, 3, 5, 2)
    samples, log_prob = dist.experimental_sample_and_log_prob(4, seed=[0, 7])
    assert samples.shape == (4, 5, 2) and log_prob.shape == (4, 5)
    np.testing.assert_allclose(log_prob, dist.log_prob(samples), rtol=1e-4, atol=1e-4)
    # Same draws as model.sample with the same seed.
    np.testing.assert_allclose(samples, model.sample(4, c, seed=tf.constant([0, 7])),
                               rtol=1e-5, atol=1e-5)
    # TFP's tools: Independent sums over the batch; a mixture over the contexts.
    np.testing.assert_allclose(tfd.Independent(dist, 1).log_prob(x), live.sum(), rtol=1e-5)
    mixture = tfd.MixtureSameFamily(tfd.Categorical(logits=tf.zeros(5)), dist)
    each = np.stack([model.log_prob(x, np.repeat(c[k:k + 1], 5, 0)).numpy() for k in range(5)])
    want = np.log(np.mean(np.exp(each.astype(np.float64)), axis=0))
    np.testing.assert_allclose(mixture.log_prob(x), want, rtol=1e-5, atol=1e-5)
    assert mixture.sample(3, seed=[2, 2]).shape == (3, 2)
    # One context row: batch shape [].
    single = model.distribution_at(c[0])
    assert single.batch_shape == [] and single.sample(3, seed=[1, 1]).shape == (3, 2)
    np.testing.assert_allclose(single.log_prob(x[:1]), live[:1], rtol=1e-5, atol=1e-5)


def test_distribution_at_gives_gradients_to_flow_and_encoder(head):
    model, c, _ = head
    with tf.GradientTape() as tape:
        _, log_prob = model.distribution_at(c).experimental_sample_and_log_prob(8, seed=[3, 4])
        loss = tf.reduce_mean(log_prob)  # e.g. the entropy term of a VI objective
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, grads, strict=True)
               if g is None or not np.any(g.numpy())]
    assert not missing
    encoder_paths = {v.path for v in model.get_layer("deepsets").trainable_variables}
    assert encoder_paths <= {v.path for v in model.trainable_variables}


def test_distribution_at_errors():
    with pytest.raises(ValueError, match="unconditional: model.distribution is its"):
        models.build_maf(2, num_layers=1, hidden_units=(4,)).distribution_at([0.0])
    model = models.build_maf(2, context_size=3, num_layers=1, hidden_units=(4,))
    with pytest.raises(ValueError, match=r"context must have shape \[\.\.\., 3\]; got \[4, 2\]"):
        model.distribution_at(np.zeros((4, 2), np.float32))


# ---------------------------------------------------------------------------- context_encoder
def test_encoder_trains_jointly_on_raw_inputs_with_checks_and_guard(tmp_path):
    keras.utils.set_random_seed(1)
    flow = models.build_maf(2, context_size=4, num_layers=2, hidden_units=(16,), seed=1)
    model = with_context_encoder(flow, _set_encoder())
    assert model.context_shape == [6, 2]
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(2000, 2)).astype(np.float32)
    obs = (theta[:, None] + 0.5 * rng.normal(size=(2000, 6, 2))).astype(np.float32)
    encoder = model.get_layer("deepsets")
    before = [w.numpy().copy() for w in encoder.weights]
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)  # under XLA
    history = model.fit(obs, theta, epochs=4, batch_size=100, verbose=0)
    losses = history.history["loss"]
    # The posterior has std ~0.2 per axis: the NLL must fall well below the prior's 2.84.
    assert losses[-1] < 1.5 < losses[0] + 1.0
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, encoder.weights,
                                                                 strict=True))
    # FlowModel's input checks on raw inputs.
    bad = obs[:10].copy()
    bad[3, 2, 1] = np.nan
    with pytest.raises(FlowDataError, match="context"):
        model.fit(bad, theta[:10], verbose=0)
    with pytest.raises(FlowDataError):
        model.log_prob(theta[:3], obs[:3, :5])
    # The non-finite-step guard: a NaN target batch is skipped, training stops.
    weights = [w.numpy().copy() for w in model.trainable_variables]
    nan_x = theta[:100].copy()
    nan_x[:] = np.inf
    ds = tf.data.Dataset.from_tensor_slices((obs[:100], nan_x)).batch(100)
    with pytest.warns(tfp_flows.NonFiniteLossWarning):
        model.fit(ds, epochs=2, verbose=0, shuffle=False)
    for w, v in zip(weights, model.trainable_variables, strict=True):
        np.testing.assert_array_equal(w, v.numpy())


def test_encoder_runs_in_training_mode_in_fit_only():
    """Dropout and batch normalisation in the encoder: training behaviour inside fit(),
    inference behaviour in log_prob."""
    keras.utils.set_random_seed(3)
    flow = models.build_maf(2, context_size=4, num_layers=1, hidden_units=(8,), seed=3)
    encoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8),
                                keras.layers.BatchNormalization(), keras.layers.Dropout(0.5),
                                keras.layers.Dense(4)], name="encoder")
    model = with_context_encoder(flow, encoder)
    rng = np.random.default_rng(3)
    c = (5.0 + rng.normal(size=(512, 3))).astype(np.float32)
    x = rng.normal(size=(512, 2)).astype(np.float32)
    model.compile(optimizer="adam")
    model.fit(c, x, epochs=1, batch_size=128, verbose=0)
    moving_mean = encoder.layers[1].moving_mean.numpy()
    assert np.all(np.abs(moving_mean) > 0.01)  # updated from batches, as in training mode
    np.testing.assert_array_equal(model.log_prob(x[:8], c[:8]), model.log_prob(x[:8], c[:8]))


def test_encoder_model_saves_and_exports_with_raw_input_signatures(head, tmp_path):
    model, c, x = head
    path = str(tmp_path / "head.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.context_shape == [6, 2]
    np.testing.assert_allclose(loaded.log_prob(x, c), model.log_prob(x, c), rtol=1e-6,
                               atol=1e-6)
    version = model.export(str(tmp_path / "export"))
    np.savez(tmp_path / "inputs.npz", x=x, c=c)
    script = textwrap.dedent("""
        import sys
        for name in ("tfp_flows", "tensorflow_probability"):
            sys.modules[name] = None  # "import name" now raises ImportError
        import numpy as np
        import tensorflow as tf
        data = np.load(sys.argv[2])
        sig = tf.saved_model.load(sys.argv[1]).signatures
        out = sig["log_prob"](x=tf.constant(data["x"]), context=tf.constant(data["c"]))
        samples = sig["sample"](n=tf.constant(3), seed=tf.constant([0, 5]),
                                context=tf.constant(data["c"]))["samples"]
        np.savez(sys.argv[3], log_prob=out["log_prob"].numpy(), samples=samples.numpy())
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script, version, str(tmp_path / "inputs.npz"),
         str(tmp_path / "served.npz")], cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:]
    served = np.load(tmp_path / "served.npz")
    np.testing.assert_allclose(served["log_prob"], model.log_prob(x, c), rtol=1e-5, atol=1e-5)
    assert served["samples"].shape == (3, 5, 2)


def test_encoder_mistakes_get_one_clear_line():
    flow = models.build_maf(2, context_size=4, num_layers=1, hidden_units=(8,))
    unbuilt = keras.Sequential([keras.layers.Dense(4)])
    with pytest.raises(ValueError, match=r"pass context_shape=\[\.\.\.\]"):
        FlowModel(flow.distribution, context_encoder=unbuilt)
    model = FlowModel(flow.distribution, context_encoder=keras.Sequential(
        [keras.layers.Dense(4)]), context_shape=[3])
    assert model.context_shape == [3]
    wrong_width = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5)])
    with pytest.raises(ValueError, match=r"context_size=5"):
        FlowModel(flow.distribution, context_encoder=wrong_width)
    with pytest.raises(ValueError, match=r"does not match the input"):
        FlowModel(flow.distribution, context_encoder=wrong_width, context_shape=[7])
    with pytest.raises(TypeError, match="Keras 3 layer or model"):
        FlowModel(flow.distribution, context_encoder=lambda c: c)


# ---------------------------------------------------------------------------- functional API
def test_conditional_density_layer_in_a_functional_model():
    keras.utils.set_random_seed(2)
    # The Student-t base holds a tf.Variable outside Keras (its degrees of freedom), which
    # the enclosing model lists among its weights, reads the Keras attributes of and trains.
    flow = models.build_maf(2, context_size=4, num_layers=2, hidden_units=(16,), seed=2,
                            base="student-t")
    (df,) = [v for v in flow.tf_variables if "base_df" in v.name]
    df_before = df.numpy().copy()
    c_in, x_in = keras.Input((6, 2)), keras.Input((2,))
    density = ConditionalDensity(flow)
    log_prob = density([_set_encoder()(c_in), x_in])
    net = keras.Model([c_in, x_in], log_prob)
    rng = np.random.default_rng(2)
    theta = rng.normal(size=(1000, 2)).astype(np.float32)
    obs = (theta[:, None] + 0.5 * rng.normal(size=(1000, 6, 2))).astype(np.float32)
    net.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = net.fit([obs, theta], epochs=4, batch_size=100, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] - 0.5
    assert any(v is df for v in net.trainable_variables)
    assert np.all(df.numpy() != df_before)
    features = net.get_layer("deepsets")(obs[:4])
    np.testing.assert_allclose(net.predict([obs[:4], theta[:4]], verbose=0),
                               flow.log_prob(theta[:4], features), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- vs Gaussian head
def _benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "density_heads.py"
    spec = importlib.util.spec_from_file_location("density_heads", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flow_head_beats_gaussian_head_on_a_shape_changing_regression():
    """The benchmark's regression task, shortened: held-out NLL, flow head vs the best of
    a full- and a diagonal-covariance Gaussian head on the same MLP encoder."""
    bench = _benchmark()
    rows = bench.run_regression(n_train=2000, n_test=3000, epochs=6, seed=0, batch_size=100,
                                flow_kwargs=dict(num_layers=3, hidden=(32, 32)))
    flow = rows["flow head (MAF)"]["test_nll"]
    gaussian = min(rows["Gaussian head (full)"]["test_nll"],
                   rows["Gaussian head (diag)"]["test_nll"])
    assert flow < gaussian - 0.25, rows


def test_functional_model_with_conditional_density_saves(tmp_path):
    flow = models.build_maf(2, context_size=4, num_layers=2, hidden_units=(8,), seed=4)
    _perturb(flow)
    c_in, x_in = keras.Input((3,)), keras.Input((2,))
    features = keras.layers.Dense(4, name="encoder")(c_in)
    net = keras.Model([c_in, x_in], ConditionalDensity(flow, name="density")([features, x_in]))
    rng = np.random.default_rng(4)
    c, x = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    net.save(str(tmp_path / "net.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "net.keras"), safe_mode=True)
    assert isinstance(loaded.get_layer("density"), ConditionalDensity)
    np.testing.assert_allclose(loaded.predict([c, x], verbose=0), net.predict([c, x], verbose=0),
                               rtol=1e-6, atol=1e-6)
