"""Data in its own units through the zoo: Standardize at the data end, fitted by
FlowModel.adapt; context standardisation; bounded and positive data (bounds=)."""

import inspect
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from tfp_flows.models.building_blocks import standard_normal

from tfp_flows import FlowDataError, FlowModel, datasets, models
from tfp_flows.bijectors import Standardize
from tfp_flows.bijectors.standardize import StandardizationWarning
from tfp_flows.testing import grid_integral


def real_units_moons(n, seed=0):
    """Two moons in 'prices' units: x about 50000 +- 2000, y about -3 +- 0.01."""
    raw = datasets.two_moons(n, standardize=False, seed=seed)
    return (raw * [2000.0, 0.01] + [50000.0, -3.0]).astype(np.float32)


def data_end_standardize(model):
    return next(b for b in model.distribution.bijector.bijectors if isinstance(b, Standardize))


def fit_quietly(model, *data, epochs, batch_size=256, learning_rate=1e-3):
    model.compile(keras.optimizers.Adam(learning_rate))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StandardizationWarning)
        model.fit(*data, epochs=epochs, batch_size=batch_size, verbose=0)
    return model


def test_real_units_nll_equals_standardised_nll_plus_sum_log_scale():
    data = real_units_moons(3000)
    train, test = data[:2500], data[2500:]
    keras.utils.set_random_seed(0)
    model = models.build("maf", 2, hidden_units=(32, 32), data=train)
    standardize = data_end_standardize(model)
    loc, scale = standardize.loc.numpy().copy(), standardize.scale.numpy().copy()
    np.testing.assert_allclose(loc, train.mean(0), rtol=1e-6)
    np.testing.assert_allclose(scale, train.std(0), rtol=1e-4)
    fit_quietly(model, train, epochs=4, batch_size=128, learning_rate=3e-3)
    # Non-trainable: training leaves the statistics alone.
    np.testing.assert_array_equal(standardize.loc.numpy(), loc)
    np.testing.assert_array_equal(standardize.scale.numpy(), scale)
    nll_data = -model.log_prob(test).numpy().mean()

    keras.utils.set_random_seed(0)
    reference = models.build("maf", 2, hidden_units=(32, 32), standardize=False)
    fit_quietly(reference, (train - loc) / scale, epochs=4, batch_size=128, learning_rate=3e-3)
    nll_standardised = -reference.log_prob((test - loc) / scale).numpy().mean()
    assert abs(nll_data - (nll_standardised + np.log(scale).sum())) < 0.1
    # Better than a Gaussian fitted to the data (5.01 nats on these units).
    gaussian = -np.mean(np.sum(-0.5 * ((test - loc) / scale) ** 2
                               - 0.5 * np.log(2 * np.pi) - np.log(scale), 1))
    assert nll_data < gaussian - 0.3
    samples = model.sample(2000, seed=1).numpy()  # in data units
    assert np.all(np.abs(samples.mean(0) - loc) < 0.2 * scale)
    assert np.all(np.abs(samples.std(0) / scale - 1) < 0.2)


def test_every_vector_recipe_takes_standardize_and_bounds():
    # circular models angles on the torus: a periodic domain has no standardisation.
    vector = [name for name in models.RECIPES if name not in models.IMAGE_RECIPES
              and name != "circular"]
    assert len(vector) >= 10
    for name in vector:
        parameters = inspect.signature(models.RECIPES[name].build).parameters
        assert parameters["standardize"].default is True, name
        assert parameters["bounds"].default is None, name
    for name in ("maf", "realnvp", "planar"):
        model = models.build(name, 2)
        first = model.distribution.bijector.bijectors[0]
        assert isinstance(first, Standardize) and first.is_identity, name
        assert not any(v.trainable for v in (first.loc, first.scale))
        unstandardized = models.build(name, 2, standardize=False)
        assert len(unstandardized.weights) == len(model.weights) - 2, name


def test_adapt_without_standardize_says_how_to_add_one():
    for model in (models.build("maf", 2, standardize=False),
                  FlowModel(standard_normal(2))):
        with pytest.raises(ValueError, match="standardize=True"):
            model.adapt(np.zeros((10, 2), np.float32))
    with pytest.raises(ValueError, match="no context"):
        models.build("maf", 2).adapt(np.ones((10, 2), np.float32), np.ones((10, 1), np.float32))


def test_adapt_from_a_dataset_matches_adapt_from_an_array():
    data = real_units_moons(1000)
    from_array, from_dataset = models.build("maf", 2), models.build("maf", 2)
    from_array.adapt(data)
    from_dataset.adapt(tf.data.Dataset.from_tensor_slices(data).batch(128))
    for a, b in zip((data_end_standardize(from_array).loc, data_end_standardize(from_array).scale),
                    (data_end_standardize(from_dataset).loc,
                     data_end_standardize(from_dataset).scale), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


def test_fit_warns_once_on_unstandardised_data_until_adapted():
    data = real_units_moons(300)
    # epochs=0: the check runs before training starts.
    model = models.build("maf", 2, hidden_units=(8,))
    model.compile(keras.optimizers.Adam(1e-3))
    with pytest.warns(StandardizationWarning, match=r"call model.adapt\(x_train\) before"):
        model.fit(data, epochs=0, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StandardizationWarning)
        model.fit(data, epochs=0, verbose=0)  # once per model
        adapted = models.build("maf", 2, hidden_units=(8,), data=data)
        adapted.compile(keras.optimizers.Adam(1e-3))
        adapted.fit(data, epochs=0, verbose=0)
        plain = models.build("maf", 2, hidden_units=(8,))
        plain.compile(keras.optimizers.Adam(1e-3))
        plain.fit(datasets.two_moons(300), epochs=0, verbose=0)
    conditional = models.build("maf", 2, hidden_units=(8,), context_size=1)
    conditional.compile(keras.optimizers.Adam(1e-3))
    with pytest.warns(StandardizationWarning, match=r"the context .* is far from standardised"
                      r".*adapt\(x_train, context_train\)"):
        conditional.fit(data[:, :1] * 0 + 1e5, datasets.two_moons(300), epochs=0, verbose=0)


def test_standardisation_survives_keras_files_and_saved_models(tmp_path):
    rng = np.random.default_rng(0)
    context = (rng.standard_normal((500, 3)) * 1e4 + 3e5).astype(np.float32)
    x = rng.uniform(0.1, 40.0, (500, 2)).astype(np.float32)
    model = models.build("maf", 2, hidden_units=(16,), num_layers=2, context_size=3,
                         bounds=[(0, 50), "positive"], data=x, context=context)
    np.testing.assert_allclose(model._context_standardizer.loc.numpy(), context.mean(0),
                               rtol=1e-6)
    fit_quietly(model, context, x, epochs=1)
    want = model.log_prob(x[:8], context[:8]).numpy()
    model.save(tmp_path / "flow.keras")
    loaded = keras.saving.load_model(tmp_path / "flow.keras")
    np.testing.assert_allclose(loaded.log_prob(x[:8], context[:8]).numpy(), want, rtol=1e-6)
    exported = tf.saved_model.load(model.export(str(tmp_path / "export")))
    got = exported.signatures["log_prob"](x=tf.constant(x[:8]), context=tf.constant(context[:8]))
    np.testing.assert_allclose(got["log_prob"].numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(exported.signatures["log_prob"](
        x=tf.constant([[60.0, 1.0]]), context=tf.constant(context[:1]))["log_prob"], [-np.inf])


def test_conditional_flow_on_odd_unit_contexts_trains_as_on_standardised_ones():
    rng = np.random.default_rng(0)
    context = rng.standard_normal((2000, 2)).astype(np.float32)
    x = (np.stack([context[:, 0] + context[:, 1], np.sin(2 * context[:, 0])], 1)
         + 0.3 * rng.standard_normal((2000, 2))).astype(np.float32)
    odd = (context * 1e4 + 3e5).astype(np.float32)
    nll = {}
    for name, c in (("standardised", context), ("odd", odd)):
        keras.utils.set_random_seed(0)
        model = models.build("maf", 2, context_size=2, hidden_units=(32, 32), num_layers=3,
                             data=x[:1600], context=c[:1600])
        fit_quietly(model, c[:1600], x[:1600], epochs=4, batch_size=128, learning_rate=3e-3)
        nll[name] = -model.log_prob(x[1600:], c[1600:]).numpy().mean()
    assert abs(nll["odd"] - nll["standardised"]) < 0.05, nll
    # The true conditional NLL is 0.43; a Gaussian that ignores the context scores 2.9, and
    # the same flow without context standardisation 2e8 on the odd units.
    assert nll["odd"] < 1.6, nll


def test_bounded_box_density_integrates_to_one_and_samples_stay_inside():
    rng = np.random.default_rng(0)
    x = np.stack([rng.beta(2, 5, 2000), rng.beta(5, 2, 2000)], 1).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = models.build("realnvp", 2, hidden_units=(32, 32), bounds=(0, 1), data=x)
    fit_quietly(model, x, epochs=3)
    integral = grid_integral(model.log_prob, low=0.0, high=1.0, num=301)
    assert abs(integral - 1.0) < 0.01, integral
    samples = model.sample(5000, seed=1).numpy()
    assert samples.min() > 0.0 and samples.max() < 1.0
    outside = np.array([[0.5, 1.5], [0.2, 0.3], [-0.1, 0.5]], np.float32)
    lp = model.log_prob(outside).numpy()
    assert np.isfinite(lp[1]) and lp[0] == -np.inf and lp[2] == -np.inf
    with pytest.raises(FlowDataError, match=r"rows \[0, 2\]"):
        model.fit(outside, epochs=1, verbose=0)
    with pytest.raises(FlowDataError, match="rows"):
        model.adapt(outside)


def test_positive_data_is_modelled_on_the_log_scale():
    rng = np.random.default_rng(0)
    # Log-normal data spanning orders of magnitude, e.g. prices.
    x = np.exp(rng.standard_normal((3000, 2)) * [1.0, 0.5] + [3.0, 10.0]).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = models.build("maf", 2, hidden_units=(16,), num_layers=2, bounds="positive",
                         data=x[:2500])
    standardize = data_end_standardize(model)
    np.testing.assert_allclose(standardize.loc.numpy(), np.log(x[:2500]).mean(0), rtol=1e-4)
    fit_quietly(model, x[:2500], epochs=3)
    test = x[2500:].astype(np.float64)
    true_nll = -np.mean(np.sum(-0.5 * ((np.log(test) - [3.0, 10.0]) / [1.0, 0.5]) ** 2
                               - 0.5 * np.log(2 * np.pi) - np.log([1.0, 0.5]) - np.log(test),
                               1))
    nll = -model.log_prob(x[2500:]).numpy().mean()
    assert abs(nll - true_nll) < 0.1, (nll, true_nll)
    assert model.sample(2000, seed=2).numpy().min() > 0
    with pytest.raises(FlowDataError, match=r"rows \[1\]"):
        model.fit(np.array([[1.0, 1.0], [0.0, 1.0]], np.float32), epochs=1, verbose=0)
