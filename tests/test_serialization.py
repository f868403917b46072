""".keras round trips of FlowModels: the zoo, our bijectors, TFP compositions; clear errors
for what cannot be saved, and save_weights + rebuilding code for those."""

import inspect
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import FlowModel, bijectors, models, nets
from tfp_flows.serialization import NotSerializableError, deserialize, serialize

tfd, tfb = tfp.distributions, tfp.bijectors

# Bijectors of tfp_flows.bijectors whose trainable() cannot be saved as a config, and why.
UNSERIALISABLE_BIJECTORS = {}
# Bijectors whose range is not all of R^3 (log_prob is -inf elsewhere): where to compare.
IN_RANGE_POINTS = {"MixtureCDF": lambda rng: rng.uniform(0.05, 0.95, (64, 3))}


def _perturb(model, scale=0.1):
    """Move every trainable weight off its initial value, reproducibly."""
    for i, v in enumerate(model.trainable_variables):
        v.assign(v + scale * tf.random.stateless_normal(v.shape, [i, 1], dtype=v.dtype))


def _max_relative_difference(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def _as_json(config):
    return json.loads(json.dumps(config))  # (Keras' own configs hold tuples that come back lists)


def _round_trip(model, tmp_path, x, seed=7):
    """Save as .keras, load with safe_mode=True; compare weights, log-probs and samples."""
    path = str(tmp_path / f"{model.name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is FlowModel and loaded.name == model.name
    assert _as_json(loaded.get_config()) == _as_json(model.get_config())
    assert len(loaded.weights) == len(model.weights)
    for got, want in zip(loaded.weights, model.weights, strict=True):
        np.testing.assert_array_equal(np.array(got), np.array(want))
    expected = model.log_prob(x).numpy()
    difference = _max_relative_difference(loaded.log_prob(x).numpy(), expected)
    assert difference <= 1e-6
    samples_equal = np.array_equal(loaded.sample(5, seed=seed).numpy(),
                                   model.sample(5, seed=seed).numpy())
    assert samples_equal
    return loaded, difference


DISCRETE_IMAGE_OPTIONS = {
    "glow": dict(num_scales=2, num_steps=1, hidden_channels=4, dequantization="variational",
                 dequantizer_hidden_units=(8,)),
    "flowpp": dict(num_layers=2, hidden_units=(8,), num_components=2, dequantizer_layers=1,
                   dequantizer_hidden_units=(8,)),
}


def _small_options(name):
    """Small versions of a zoo recipe: only options that its builder takes."""
    if name == "pixelmaf":
        # (the DSF transformer's bijector_fn is the NAF's, covered there; sampling it over
        # images is slow)
        return (4, 4, 1), dict(num_layers=2, filters=8, num_blocks=1)
    if name in DISCRETE_IMAGE_OPTIONS:  # dequantized recipes: 4x4 images of integer levels
        return (4, 4, 1), DISCRETE_IMAGE_OPTIONS[name]
    wanted = dict(num_layers=2, hidden_units=(8,), hidden_size=3, degree=6)  # degree: bernstein
    if name == "ffjord":  # (TFP's adaptive solver is slow in eager mode; rk4 is tested there)
        wanted.update(num_layers=1, solver="rk4", num_steps=4)
    accepted = inspect.signature(models.RECIPES[name][0]).parameters
    return 2, {k: v for k, v in wanted.items() if k in accepted}


@pytest.mark.parametrize("name", sorted(models.RECIPES))
def test_every_zoo_model_round_trips_through_a_keras_file(name, tmp_path, moons):
    event, options = _small_options(name)
    model = models.build(name, event, seed=0, **options)
    if name == "pixelmaf":
        x = np.random.default_rng(0).uniform(0.1, 0.9, (16, 4, 4, 1)).astype("float32")
    elif name in DISCRETE_IMAGE_OPTIONS:
        x = np.random.default_rng(0).integers(0, 17, (16, 4, 4, 1)).astype("float32")
    else:
        x = moons[2][:200]
    before = model.log_prob(x).numpy()
    _perturb(model)
    # The comparison below can fail: the perturbed weights give other log-probabilities.
    assert _max_relative_difference(model.log_prob(x).numpy(), before) > 1e-3
    loaded, difference = _round_trip(model, tmp_path, x)
    print(f"{name}: .keras round trip max relative log-prob difference {difference:.3g}, "
          f"samples identical")
    assert loaded.bits_per_dim == model.bits_per_dim


def _bijector_classes():
    return sorted(name for name in dir(bijectors)
                  if inspect.isclass(getattr(bijectors, name))
                  and issubclass(getattr(bijectors, name), tfb.Bijector)
                  and hasattr(getattr(bijectors, name), "trainable"))


@pytest.mark.parametrize("name", _bijector_classes())
def test_every_trainable_bijector_of_the_package_round_trips(name, tmp_path, rng):
    bijector = getattr(bijectors, name).trainable(3, seed=0)
    model = FlowModel(tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(3)),
                                                  bijector), name=f"flow_{name.lower()}")
    _perturb(model, 0.05)
    if name in UNSERIALISABLE_BIJECTORS:
        with pytest.raises(NotSerializableError, match=UNSERIALISABLE_BIJECTORS[name]):
            model.get_config()
        return
    points = IN_RANGE_POINTS.get(name, lambda r: 0.5 * r.standard_normal((64, 3)))(rng)
    _round_trip(model, tmp_path, points.astype("float32"))


def _composed_flow(shared_made=None):
    """TFP's Chain/RealNVP/MAF/Permute/Invert, our conditioners and bijectors, a MADE used by
    two layers, a TransformedVariable and a tf.Variable parameter."""
    made = shared_made or nets.MADE(3, params=2, hidden_units=(8,), name="shared_made")
    scale = tfp.util.TransformedVariable(np.full(3, 1.5, np.float32), tfb.Softplus(),
                                         name="scale")
    chain = tfb.Chain([
        tfb.Shift(tf.Variable(np.zeros(3, np.float32), name="shift"), name="shift"),
        tfb.Scale(scale, name="scale"),
        tfb.MaskedAutoregressiveFlow(made, name="maf_a"),
        tfb.Permute([2, 0, 1], name="permute"),
        tfb.Invert(tfb.MaskedAutoregressiveFlow(made, name="maf_b"), name="iaf"),
        tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=nets.CouplingMLP(hidden_units=(8,)),
                    name="coupling"),
        bijectors.NICEScaling.trainable(3),
    ], name="composed")
    base = tfd.MultivariateNormalDiag(loc=tf.zeros(3), scale_diag=tf.ones(3))
    return FlowModel(tfd.TransformedDistribution(base, chain), bits_per_dim=True,
                     name="composed")


def test_composed_flow_round_trips_and_keeps_a_shared_layer_shared(tmp_path, rng):
    model = _composed_flow()
    assert len(model._conditioner_layers) == 2  # the shared MADE counts once
    _perturb(model)
    config = model.get_config()
    json.dumps(config)  # plain JSON
    assert config["bits_per_dim"] is True
    if "context_shape" in inspect.signature(FlowModel.__init__).parameters:
        assert "context_shape" in config
    loaded, _ = _round_trip(model, tmp_path, rng.standard_normal((64, 3)).astype("float32"))
    chain = loaded.distribution.bijector
    assert [b.name for b in chain.bijectors] == [b.name for b in
                                                 model.distribution.bijector.bijectors]
    assert chain.bijectors[2].parameters["shift_and_log_scale_fn"] is \
        chain.bijectors[4].bijector.parameters["shift_and_log_scale_fn"]
    assert loaded.bits_per_dim is True


def test_optimizer_state_survives_the_keras_file(tmp_path, moons):
    model = models.build("maf", 2, num_layers=1, hidden_units=(8,), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    model.fit(moons[0][:256], epochs=1, batch_size=64, verbose=0)
    model.save(str(tmp_path / "trained.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "trained.keras"))
    assert int(loaded.optimizer.iterations.numpy()) == 4
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for got, want in zip(loaded.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.array(got), np.array(want))


def _lambda_flow():
    made = nets.MADE(2, params=2, hidden_units=(8,), name="made")
    maf = tfb.MaskedAutoregressiveFlow(
        bijector_fn=lambda y: tfb.Shift(made(y)[..., 0]), name="shift_only_maf")
    return FlowModel(tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)), maf))


def test_unserialisable_flow_says_so_and_save_weights_with_rebuilding_works(tmp_path, moons):
    model = _lambda_flow()
    _perturb(model)
    for attempt in (model.get_config, lambda: model.save(str(tmp_path / "flow.keras"))):
        with pytest.raises(NotSerializableError) as error:
            attempt()
        message = str(error.value)
        assert "distribution.bijector.bijector_fn" in message and "a lambda" in message
        assert "save_weights" in message and "rebuild" in message
    assert not (tmp_path / "flow.keras").exists()  # no empty file left behind
    model.save_weights(str(tmp_path / "flow.weights.h5"))
    rebuilt = _lambda_flow()
    x = moons[2][:100]
    assert _max_relative_difference(rebuilt.log_prob(x), model.log_prob(x)) > 1e-3
    rebuilt.load_weights(str(tmp_path / "flow.weights.h5"))
    np.testing.assert_array_equal(rebuilt.log_prob(x).numpy(), model.log_prob(x).numpy())


def test_tf_keras_conditioner_is_named_as_not_serialisable():
    import tf_keras

    net = tfb.AutoregressiveNetwork(params=2, hidden_units=[4])
    assert isinstance(net, tf_keras.layers.Layer)
    model = FlowModel(tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(tf.zeros(2)), tfb.MaskedAutoregressiveFlow(net)))
    with pytest.raises(NotSerializableError, match="tf_keras"):
        model.get_config()


def test_keras_safe_mode_is_respected_inside_the_distribution(tmp_path, rng):
    conditioner = keras.Sequential([nets.MADE(2, params=2, hidden_units=(8,)),
                                    keras.layers.Lambda(lambda t: 0.5 * t)])
    model = FlowModel(tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(tf.zeros(2)), tfb.MaskedAutoregressiveFlow(conditioner)))
    _perturb(model)
    path = str(tmp_path / "lambda_layer.keras")
    model.save(path)
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(path, safe_mode=True)
    loaded = keras.saving.load_model(path, safe_mode=False)
    x = rng.standard_normal((32, 2)).astype("float32")
    np.testing.assert_array_equal(loaded.log_prob(x).numpy(), model.log_prob(x).numpy())


@pytest.mark.parametrize("key", ["os.system", "builtins.eval", "tfp_flows.flow_model:FlowModel",
                                 "tfb.__class__", "tfd.tf", "keras:tfp_flows>FlowModel",
                                 "keras:not_registered>Anything"])
def test_only_allow_listed_classes_are_rebuilt(key):
    with pytest.raises(NotSerializableError, match="not allowed"):
        deserialize({"__kind__": "tfp", "class": key, "parameters": {}})


def test_values_round_trip_exactly():
    values = [np.float32(0.1), np.arange(6, dtype=np.int64).reshape(2, 3),
              tf.constant([[1e-38, -3.4e38]], tf.float32), (1, "a", None), {"k": [True, 2.5]},
              tf.float64, tf.TensorShape([None, 3])]
    config = serialize(values, "values")
    restored = deserialize(json.loads(json.dumps(config)))
    for got, want in zip(restored, values, strict=True):
        if isinstance(want, (np.ndarray, np.generic, tf.Tensor)):
            assert np.asarray(got).dtype == np.asarray(want).dtype
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
            assert isinstance(got, tf.Tensor) == isinstance(want, tf.Tensor)
        else:
            assert got == want and type(got) is type(want)


def test_conditional_model_round_trips_with_its_context_shape(tmp_path, rng):
    model = models.build_maf(2, context_size=3, num_layers=2, hidden_units=(8,), seed=0)
    _perturb(model)
    assert model.get_config()["context_shape"] == {"__kind__": "shape", "dims": [3]}
    model.save(str(tmp_path / "conditional.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "conditional.keras"), safe_mode=True)
    assert loaded.context_shape == model.context_shape
    x = rng.standard_normal((16, 2)).astype(np.float32)
    context = rng.standard_normal((16, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.log_prob(x, context).numpy(),
                                  model.log_prob(x, context).numpy())
    np.testing.assert_array_equal(loaded.sample(4, context[:2], seed=1).numpy(),
                                  model.sample(4, context[:2], seed=1).numpy())


@keras.saving.register_keras_serializable(package="test_serialization")
class KerasRegisteredShiftFn:
    """A RealNVP bijector_fn registered with Keras (not with tfp_flows): saved by get_config."""

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, x, output_units, **kwargs):
        return tfb.Shift(self.layer(x)[..., :output_units])

    def get_config(self):
        return {"layer": self.layer}


def test_keras_registered_classes_are_accepted_and_rebuilt(tmp_path, rng):
    layer = keras.layers.Dense(1, kernel_initializer="glorot_normal")
    bijector = tfb.RealNVP(num_masked=1, bijector_fn=KerasRegisteredShiftFn(layer))
    model = FlowModel(tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [2]),
                                                  bijector))
    config = model.get_config()["distribution"]["parameters"]["bijector"]["parameters"]
    assert config["bijector_fn"]["class"] == "keras:test_serialization>KerasRegisteredShiftFn"
    loaded, difference = _round_trip(model, tmp_path, rng.standard_normal((16, 2)).astype(
        "float32"))
    assert isinstance(loaded.distribution.bijector._bijector_fn, KerasRegisteredShiftFn)
    assert difference <= 1e-6
