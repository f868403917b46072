"""Reproducible runs on CPU: a fixed seed gives bitwise-identical weights and samples.

What is needed (measured here): `keras.utils.set_random_seed(s)` before building and
training (it seeds Python, NumPy, TensorFlow and Keras' own seed generator: initialisers
without a seed and fit()'s shuffling), or a recipe's `seed=` for its initialisers. On CPU
`tf.config.experimental.enable_op_determinism()` is NOT needed: the runs below are
bitwise equal without it (these tests check that it is off).
"""

import keras
import numpy as np
import pytest
from tensorflow.python.framework import config as tf_config

from tfp_flows import models


def train(recipe, data, *, seed, recipe_seed):
    keras.utils.set_random_seed(seed)
    model = models.build(recipe, 2, num_layers=2, hidden_units=(8,), seed=recipe_seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(data, epochs=2, batch_size=128, shuffle=True, verbose=0)
    return model, history.history["loss"]


@pytest.mark.slow
@pytest.mark.parametrize("recipe, recipe_seed", [("maf", 3), ("realnvp", None)])
def test_same_seed_gives_bitwise_identical_weights(moons, recipe, recipe_seed):
    """Two trainings in one process (shuffled batches; realnvp's initialisers unseeded, so
    only set_random_seed fixes them). Measured: every weight bitwise equal, losses equal
    (maf, seed 7: 2.80973, 2.71895 nats both times; realnvp: 2.81144, 2.72847); realnvp with
    global seed 8 instead: 2.79954, 2.69147, other weights."""
    assert not tf_config.is_op_determinism_enabled()  # no public getter in TF 2.21
    data = moons[0][:512]
    first, loss_1 = train(recipe, data, seed=7, recipe_seed=recipe_seed)
    second, loss_2 = train(recipe, data, seed=7, recipe_seed=recipe_seed)
    assert loss_1 == loss_2
    weights_1, weights_2 = first.get_weights(), second.get_weights()
    assert len(weights_1) == len(weights_2) > 0
    for a, b in zip(weights_1, weights_2, strict=True):
        assert np.array_equal(a, b)
    if recipe_seed is not None:
        return  # the unseeded recipe below shows that the global seed matters
    other, loss_3 = train(recipe, data, seed=8, recipe_seed=recipe_seed)
    assert loss_3 != loss_1
    assert not all(np.array_equal(a, b) for a, b in zip(weights_1, other.get_weights(),
                                                         strict=True))


def test_sample_with_a_seed_is_reproducible():
    model = models.build("maf", 2, num_layers=2, hidden_units=(8,), seed=0)
    a = model.sample(64, seed=5).numpy()
    assert np.array_equal(a, model.sample(64, seed=5).numpy())
    assert not np.array_equal(a, model.sample(64, seed=6).numpy())
    # A rebuilt model with the same recipe seed draws the same samples.
    again = models.build("maf", 2, num_layers=2, hidden_units=(8,), seed=0)
    assert np.array_equal(a, again.sample(64, seed=5).numpy())
    assert np.all(np.isfinite(a))
