"""The box of sos and bernstein (their default) and naf (an option): every transformer is a
`BoxPreserving`, the flow stays normalised and invertible, and it saves and reloads."""

import keras
import numpy as np
import pytest
import tensorflow_probability as tfp

from tfp_flows import models
from tfp_flows.bijectors import BoxPreserving
from tfp_flows.testing import grid_integral

tfb = tfp.bijectors


def _transformers(model, x):
    """The transformer of each autoregressive layer at x (in the flow's own units)."""
    found = []
    for layer in model.distribution.bijector.bijectors:
        if isinstance(layer, tfb.MaskedAutoregressiveFlow):
            inverted = layer._bijector_fn(x)  # noqa: SLF001 (TFP keeps it private)
            found.append(inverted.bijector)
    return found


@pytest.mark.parametrize("name, options", [
    ("naf", {"box_bound": 4.0, "hidden_size": 4}),
    ("bernstein", {"degree": 4}),
    ("sos", {}),
], ids=["naf", "bernstein", "sos"])
def test_box_option_builds_box_preserving_layers_that_train_save_and_reload(
        name, options, moons, tmp_path):
    train = moons[0][:1024]
    model = models.build(name, 2, num_layers=2, hidden_units=(16,), seed=0, data=train,
                         **options)
    layers = _transformers(model, train[:4])
    assert len(layers) == 2 and all(isinstance(t, BoxPreserving) for t in layers)
    assert all(t.bound == 4.0 and t.min_derivative == 0.05 for t in layers)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(train, epochs=1, batch_size=256, verbose=0)
    assert abs(grid_integral(model.log_prob, num=201) - 1.0) < 0.01
    samples = model.sample(64, seed=1).numpy()
    assert np.all(np.isfinite(samples)) and np.all(np.isfinite(model.log_prob(samples)))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.log_prob(train[:64]).numpy(),
                                  model.log_prob(train[:64]).numpy())


def test_without_the_box_the_layers_are_the_plain_transformers(moons):
    train = moons[0][:500]
    for name, options in (("naf", {}), ("bernstein", {"box": False}), ("sos", {"box": False})):
        model = models.build(name, 2, num_layers=1, hidden_units=(8,), seed=0, data=train,
                             **options)
        assert not any(isinstance(t, BoxPreserving) for t in _transformers(model, train[:4]))


@pytest.mark.parametrize("name, options, message", [
    ("bernstein", {"box": "maybe"}, "box must be true or false"),
    ("sos", {"box": 1}, "box must be true or false"),
    ("naf", {"box_bound": "abc"}, "box_bound must be a number > 0"),
    ("naf", {"box_bound": -1.0}, "box_bound must be a number > 0"),
])
def test_a_wrong_box_option_is_refused_in_one_line(name, options, message):
    with pytest.raises(ValueError, match=message):
        models.build(name, 2, num_layers=1, hidden_units=(8,), **options)
