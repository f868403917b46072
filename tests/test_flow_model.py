"""FlowModel: training every kind of parameter, the Keras API, bad input, non-finite loss."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_flows
from tfp_flows import nets
from tfp_flows.testing import grid_integral

tfd, tfb = tfp.distributions, tfp.bijectors


def issue_example_flow():
    """The flow of the README / issue example: MAF, permutation, RealNVP."""
    flow = tfb.Chain([
        tfb.MaskedAutoregressiveFlow(nets.MADE(event_size=2, params=2, hidden_units=[32, 32])),
        tfb.Permute([1, 0]),
        tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=nets.CouplingMLP(hidden_units=[32, 32])),
    ])
    return tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)), flow)


def test_issue_example_trains_and_stays_normalised(moons):
    train, val, test = moons
    keras.utils.set_random_seed(0)
    model = tfp_flows.FlowModel(issue_example_flow())
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = model.evaluate(test, verbose=0)[0]
    history = model.fit(train, epochs=6, batch_size=256, validation_data=val, verbose=0)
    after = model.evaluate(test, verbose=0)[0]
    assert set(history.history) >= {"loss", "nll", "val_loss", "val_nll"}
    # N(0, I) on standardised data: NLL = log(2 pi) + 1 = 2.84; training must get well below.
    assert before == pytest.approx(np.log(2 * np.pi) + 1, abs=0.1)
    assert after < before - 0.3
    assert abs(grid_integral(model.log_prob) - 1.0) < 0.01
    lp = model.log_prob(test[:7])
    assert lp.shape == (7,)
    np.testing.assert_allclose(model.predict(test[:7], verbose=0), lp.numpy(), rtol=1e-5)
    samples = model.sample(500, seed=1)
    assert samples.shape == (500, 2)
    np.testing.assert_array_equal(samples.numpy(), model.sample(500, seed=1).numpy())
    assert np.all(np.isfinite(samples.numpy()))


def test_every_trainable_variable_gets_a_nonzero_gradient(moons):
    """Keras 3 layers, a raw tf.Variable, a TransformedVariable, a closure over a layer."""
    shift = tf.Variable([0.1, -0.2], name="raw_shift")
    scale = tfp.util.TransformedVariable([1.2, 0.8], tfb.Softplus(), name="scale")
    dense = keras.layers.Dense(2, name="closure_dense")
    maf = tfb.MaskedAutoregressiveFlow(bijector_fn=lambda x: tfb.Shift(0.1 * dense(x[..., :1])
                                                                       * [[0.0, 1.0]]))
    dist = tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(tf.zeros(2)),
        tfb.Chain([tfb.Shift(shift), tfb.ScaleMatvecDiag(scale), maf,
                   issue_example_flow().bijector]))
    model = tfp_flows.FlowModel(dist)
    names = [v.name for v in model.trainable_variables]
    assert any("raw_shift" in n for n in names)
    assert len(model.trainable_variables) == 12 + 2 + 2
    # Give the zero-initialised output layers a nudge so every weight is reachable.
    for v in model.trainable_variables:
        v.assign(v + 0.05 * tf.random.stateless_normal(v.shape, [1, 2], dtype=v.dtype))
    x = tf.constant(moons[0][:256])
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(model.log_prob(x))
    grads = tape.gradient(loss, model.trainable_variables)
    for v, g in zip(model.trainable_variables, grads, strict=True):
        assert g is not None, v.name
        assert float(tf.reduce_max(tf.abs(g))) > 0.0, v.name
    # And fit() really moves each of them.
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(moons[0][:512], epochs=1, batch_size=256, verbose=0)
    for v, b in zip(model.trainable_variables, before, strict=True):
        assert not np.allclose(v.numpy(), b), f"{v.name} did not change under fit()"


def test_keras_variable_that_tfp_freezes_is_refused():
    kv = keras.Variable([0.3, 0.1], name="keras_shift")
    dist = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)), tfb.Shift(kv))
    with pytest.raises(ValueError, match="frozen: keras_shift"):
        tfp_flows.FlowModel(dist)


def test_tfp_autoregressive_network_masks_hold_under_keras3(moons):
    """TFP's own MADE keeps its masks through tf_keras constraints; FlowModel honours them."""
    keras.utils.set_random_seed(1)
    made = tfb.AutoregressiveNetwork(params=2, hidden_units=[32, 32], event_shape=[2])
    dist = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)),
                                       tfb.MaskedAutoregressiveFlow(made))
    model = tfp_flows.FlowModel(dist)
    assert len(model.trainable_variables) == 6
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(moons[0], epochs=3, batch_size=256, verbose=0)
    x = tf.constant(moons[2][:32])
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = dist.bijector.inverse(x)
    jac = tape.batch_jacobian(z, x).numpy()
    assert np.max(np.abs(jac[:, 0, 1])) == 0.0  # z_0 must not depend on x_1
    assert np.min(np.abs(jac[:, 1, 0])) > 0.0 or np.max(np.abs(jac[:, 1, 0])) > 0.0
    assert abs(grid_integral(model.log_prob) - 1.0) < 0.01


def test_made_maf_jacobian_triangular_after_training(moons):
    made = nets.MADE(event_size=3, params=2, hidden_units=[16, 16])
    dist = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(3)),
                                       tfb.MaskedAutoregressiveFlow(made))
    model = tfp_flows.FlowModel(dist)
    data = np.concatenate([moons[0], moons[0][:, :1] ** 2], axis=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(data, epochs=2, batch_size=256, verbose=0)
    x = tf.constant(data[:16])
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = dist.bijector.inverse(x)
    jac = tape.batch_jacobian(z, x).numpy()
    upper = jac[:, np.triu_indices(3, 1)[0], np.triu_indices(3, 1)[1]]
    assert np.max(np.abs(upper)) == 0.0
    np.testing.assert_allclose(dist.bijector.forward(z).numpy(), data[:16], atol=1e-4)


def test_fit_on_tf_data_with_xla(moons):
    keras.utils.set_random_seed(2)
    model = tfp_flows.FlowModel(issue_example_flow())
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)
    ds = tf.data.Dataset.from_tensor_slices(moons[0]).shuffle(2048, seed=0).batch(256)
    history = model.fit(ds.prefetch(2), epochs=3, verbose=0,
                        validation_data=tf.data.Dataset.from_tensor_slices(moons[1]).batch(512))
    assert model.jit_compile is True
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert np.isfinite(history.history["val_nll"][-1])


def test_bits_per_dim_metric(moons):
    model = tfp_flows.FlowModel(issue_example_flow(), bits_per_dim=True)
    model.compile()
    logs = model.evaluate(moons[2], verbose=0, return_dict=True)
    assert logs["bits_per_dim"] == pytest.approx(logs["nll"] / (2 * np.log(2)), rel=1e-5)


def test_callbacks_and_weights_round_trip(moons, tmp_path):
    train, val, test = moons
    model = tfp_flows.FlowModel(issue_example_flow())
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    best = str(tmp_path / "best.weights.h5")
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(best, monitor="val_loss", save_best_only=True,
                                        save_weights_only=True),
        keras.callbacks.TensorBoard(log_dir=str(tmp_path / "tb")),
        keras.callbacks.BackupAndRestore(backup_dir=str(tmp_path / "backup")),
    ]
    model.fit(train, epochs=3, batch_size=512, validation_data=val, callbacks=callbacks,
              verbose=0)
    assert (tmp_path / "best.weights.h5").exists()
    assert any((tmp_path / "tb").rglob("events.out.tfevents.*"))
    path = str(tmp_path / "flow.weights.h5")
    model.save_weights(path)
    fresh = tfp_flows.FlowModel(issue_example_flow())
    assert not np.allclose(fresh.log_prob(test[:50]), model.log_prob(test[:50]))
    fresh.load_weights(path)
    np.testing.assert_allclose(fresh.log_prob(test[:50]), model.log_prob(test[:50]), rtol=1e-6)


def test_weights_round_trip_covers_tfp_held_variables(tmp_path):
    def build():
        scale = tfp.util.TransformedVariable([1.0, 1.0], tfb.Softplus())
        return tfp_flows.FlowModel(tfd.TransformedDistribution(
            tfd.MultivariateNormalDiag(tf.zeros(2)),
            tfb.Chain([tfb.Shift(tf.Variable([0.0, 0.0])), tfb.ScaleMatvecDiag(scale)])))

    model = build()
    for v in model.trainable_variables:
        v.assign(v + 0.7)
    model.save_weights(str(tmp_path / "w.weights.h5"))
    fresh = build()
    fresh.load_weights(str(tmp_path / "w.weights.h5"))
    x = np.array([[0.3, -1.0]], np.float32)
    np.testing.assert_allclose(fresh.log_prob(x), model.log_prob(x), rtol=1e-6)


def test_bad_inputs_raise_clear_errors(moons):
    model = tfp_flows.FlowModel(issue_example_flow())
    model.compile()
    with pytest.raises(tfp_flows.FlowDataError,
                       match=r"events of shape \[3\].*event shape is \[2\]"):
        model.fit(np.zeros((10, 3), np.float32), verbose=0)
    bad = moons[0][:100].copy()
    bad[7, 1] = np.nan
    bad[42, 0] = np.inf
    with pytest.raises(tfp_flows.FlowDataError, match=r"NaN or Inf values in rows \[7, 42\]"):
        model.fit(bad, verbose=0)
    with pytest.raises(tfp_flows.FlowDataError, match="validation_data.*NaN"):
        model.fit(moons[0][:100], validation_data=bad, verbose=0)
    with pytest.raises(tfp_flows.FlowDataError, match="dtype int64.*floating-point"):
        model.fit(np.zeros((10, 2), np.int64), verbose=0)
    with pytest.raises(tfp_flows.FlowDataError, match="non-numeric"):
        model.log_prob(np.array([["a", "b"]]))
    with pytest.raises(tfp_flows.FlowDataError, match=r"shape \[2\]"):
        model.log_prob(np.zeros((2,), np.float32))
    with pytest.raises(ValueError, match="unconditional"):
        model.fit(moons[0][:100], moons[0][:100], verbose=0)
    with pytest.raises(ValueError, match="takes no loss"):
        model.compile(loss="mse")
    ds = tf.data.Dataset.from_tensor_slices(np.zeros((10, 5), np.float32)).batch(5)
    with pytest.raises(tfp_flows.FlowDataError, match=r"Dataset.*event shape is \[2\]"):
        model.fit(ds, verbose=0)
    # float64 data is cast to the model's float32 without complaint
    assert model.log_prob(moons[2][:3].astype(np.float64)).dtype == tf.float32


class _ExplodingShift(tfb.Shift):
    """A shift whose log-det turns NaN once its parameter passes a threshold."""

    def _forward_log_det_jacobian(self, x):
        gap = tf.math.log(2.0 - tf.reduce_max(self.shift))
        return gap - gap  # 0 while shift < 2, NaN beyond


def test_non_finite_loss_stops_training_and_keeps_last_finite_weights(moons):
    shift = tf.Variable([1.5, 1.5])
    dist = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)),
                                       _ExplodingShift(shift, validate_args=False))
    model = tfp_flows.FlowModel(dist)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    # Data far to the right pushes the shift up; past 2 the log-det is NaN.
    data = np.full((64, 2), 6.0, np.float32)
    with pytest.warns(tfp_flows.NonFiniteLossWarning, match=r"epoch \d+, batch \d+"):
        history = model.fit(data, epochs=50, batch_size=16, verbose=0)
    assert len(history.history["loss"]) < 50
    assert "batch" in model.nonfinite_report
    # The step that crossed the threshold had a finite loss and was applied; the next one
    # (NaN) was skipped, so the weights are finite and sit where the loss turned NaN.
    assert np.all(np.isfinite(shift.numpy())) and shift.numpy().max() >= 2.0
    assert np.isnan(model.evaluate(data, verbose=0)[0])


def test_float64_flow_trains_in_float64(moons):
    flow = tfb.MaskedAutoregressiveFlow(nets.MADE(2, hidden_units=[16], dtype="float64"))
    dist = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2, tf.float64)), flow)
    model = tfp_flows.FlowModel(dist)
    assert all(v.dtype == tf.float64 for v in model.trainable_variables)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(moons[0][:512], epochs=1, batch_size=256, verbose=0)
    assert model.log_prob(moons[2][:4]).dtype == tf.float64


def test_conditioner_in_wrong_dtype_is_reported():
    flow = tfb.MaskedAutoregressiveFlow(nets.MADE(2, hidden_units=[8]))  # float32 layer
    dist = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2, tf.float64)), flow)
    with pytest.raises((TypeError, ValueError), match="dtype"):
        tfp_flows.FlowModel(dist)


def test_mixed_precision_is_refused_clearly():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        with pytest.raises(ValueError, match="mixed precision is not supported"):
            tfp_flows.FlowModel(issue_example_flow())
    finally:
        keras.config.set_dtype_policy("float32")


def _small_maf():
    return tfp_flows.models.build("maf", 2, num_layers=2, hidden_units=(8,), seed=0)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_update_that_makes_weights_non_finite_is_undone(moons, jit_compile):
    """Adam with epsilon=0 divides 0 by 0 on the MADE's masked (zero-gradient) weights at the
    first step: that update is undone, weights and optimizer state stay those before it."""
    model = _small_maf()
    model.compile(optimizer=keras.optimizers.Adam(epsilon=0.0), jit_compile=jit_compile)
    weights = [v.numpy().copy() for v in model.trainable_variables]
    with pytest.warns(tfp_flows.NonFiniteLossWarning, match="epoch 1, batch 1.*undone"):
        history = model.fit(moons[0][:256], epochs=2, batch_size=128, verbose=0)
    assert len(history.history["loss"]) == 1 and "batch 1" in model.nonfinite_report
    for v, w in zip(model.trainable_variables, weights, strict=True):
        np.testing.assert_array_equal(v.numpy(), w)
    assert int(model.optimizer.iterations.numpy()) == 0
    assert all(np.all(np.isfinite(v.numpy())) for v in model.optimizer.variables)
    assert np.isfinite(model.evaluate(moons[2], verbose=0)[0])


def test_learning_rate_that_turns_nan_after_compile_leaves_the_weights(moons):
    model = _small_maf()
    with pytest.raises(ValueError, match="learning_rate is nan: give a finite number"):
        model.compile(optimizer=keras.optimizers.Adam(float("nan")))
    with pytest.raises(ValueError, match="learning_rate is -0.1"):
        model.compile(optimizer=keras.optimizers.SGD(-0.1))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(moons[0][:256], epochs=1, batch_size=128, verbose=0)
    weights = [v.numpy().copy() for v in model.trainable_variables]
    state = [v.numpy().copy() for v in model.optimizer.variables]
    model.optimizer.learning_rate.assign(float("nan"))
    with pytest.warns(tfp_flows.NonFiniteLossWarning):
        model.fit(moons[0][:256], epochs=2, batch_size=128, verbose=0)
    for v, w in zip(model.trainable_variables, weights, strict=True):
        np.testing.assert_array_equal(v.numpy(), w)
    for v, s in zip(model.optimizer.variables, state, strict=True):
        if "learning_rate" not in v.path:
            np.testing.assert_array_equal(v.numpy(), s)


def test_metrics_take_log_probabilities_and_supervised_ones_are_refused(moons):
    model = _small_maf()
    for bad in ("mae", keras.metrics.MeanSquaredError(), keras.metrics.AUC()):
        with pytest.raises(ValueError, match="no targets for supervised metrics"):
            model.compile(metrics=[bad])
    with pytest.raises(ValueError, match="no weighted_metrics"):
        model.compile(weighted_metrics=["mae"])
    model.compile(optimizer=keras.optimizers.SGD(0.0),
                  metrics=[keras.metrics.Mean(name="mean_log_prob")])
    x = moons[0][:300]
    history = model.fit(x, epochs=1, batch_size=64, verbose=0, validation_data=x).history
    logs = model.evaluate(x, batch_size=64, verbose=0, return_dict=True)
    expected = float(np.mean(model.log_prob(x)))
    for value in (history["mean_log_prob"][0], history["val_mean_log_prob"][0],
                  logs["mean_log_prob"]):
        assert value == pytest.approx(expected, abs=2e-6)
    assert logs["nll"] == pytest.approx(-expected, abs=2e-6)


def test_frozen_parts_keep_their_weights_while_the_rest_trains(moons):
    """The first MAF layer's MADE frozen as a Keras layer, a TFP-held tf.Variable frozen with
    freeze(); then the whole model frozen: a warning and no change."""
    shift = tf.Variable([0.1, -0.2], name="frozen_shift")
    first_made = nets.MADE(event_size=2, params=2, hidden_units=[16])
    flow = tfb.Chain([
        tfb.Shift(shift),
        tfb.MaskedAutoregressiveFlow(nets.MADE(event_size=2, params=2, hidden_units=[16])),
        tfb.Permute([1, 0]),
        tfb.MaskedAutoregressiveFlow(first_made),  # the first layer from the base
    ])
    model = tfp_flows.FlowModel(tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(tf.zeros(2)), flow))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(moons[0][:256], epochs=1, batch_size=128, verbose=0)  # trained, then frozen
    madeless = [v for v in model.trainable_variables if not any(v is w for w in
                                                                first_made.weights)]
    first_made.trainable = False
    model.freeze(shift)
    assert len(model.trainable_variables) == len(madeless) - 1
    frozen = [v.numpy().copy() for v in first_made.weights] + [shift.numpy().copy()]
    others = {v.path if hasattr(v, "path") else v.name: v.numpy().copy()
              for v in model.trainable_variables}
    model.fit(moons[0][:512], epochs=2, batch_size=128, verbose=0)
    for v, f in zip(list(first_made.weights) + [shift], frozen, strict=True):
        np.testing.assert_array_equal(v.numpy(), f)
    for v in model.trainable_variables:
        key = v.path if hasattr(v, "path") else v.name
        assert not np.array_equal(v.numpy(), others[key]), key
    with pytest.raises(ValueError, match="holds no parameters of this FlowModel"):
        model.freeze(tf.Variable([1.0]))

    model.trainable = False
    everything = [v.numpy().copy() for v in model.weights]
    with pytest.warns(UserWarning, match="Every weight of this FlowModel is frozen"):
        history = model.fit(moons[0][:256], epochs=1, batch_size=128, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for v, w in zip(model.weights, everything, strict=True):
        np.testing.assert_array_equal(v.numpy(), w)


def test_summary_lists_parameters_held_as_tf_variables():
    model = tfp_flows.models.build("prelu", 2, num_layers=2, hidden_units=(8,), seed=0)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "coupling_mlp" in text  # Keras' own rows stay
    held = text[text.index("Parameters held by TFP objects"):text.index("Total params")]
    assert "(PReLU)" in held and "alpha [2]" in held
    assert "(Standardize)" in held and "(non-trainable)" in held
    total = int(text.split("Total params:")[1].split("(")[0].replace(",", ""))
    assert total == sum(int(np.prod(v.shape)) for v in model.weights)


def test_one_device_strategies_train_like_no_strategy(moons):
    """A MirroredStrategy over one device (as on a CPU-only machine) and a OneDeviceStrategy
    give the losses of no strategy (measured: equal to the last bit)."""
    def run(scope):
        keras.utils.set_random_seed(0)
        with scope:
            model = _small_maf()
            model.compile(optimizer=keras.optimizers.Adam(3e-3))
        history = model.fit(moons[0][:600], epochs=2, batch_size=256, shuffle=False, verbose=0)
        return history.history["loss"] + [model.evaluate(moons[2], verbose=0)[0]]

    base = run(tf.distribute.get_strategy().scope())
    for strategy in (tf.distribute.MirroredStrategy(["/cpu:0"]),
                     tf.distribute.OneDeviceStrategy("/cpu:0")):
        np.testing.assert_allclose(run(strategy.scope()), base, atol=1e-6)
