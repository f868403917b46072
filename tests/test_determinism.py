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


def train(data, seed):
    """maf with unseeded initialisers: only set_random_seed fixes them and the shuffling."""
    keras.utils.set_random_seed(seed)
    model = models.build("maf", 2, num_layers=2, hidden_units=(8,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(data, epochs=2, batch_size=128, shuffle=True, verbose=0)
    return model, history.history["loss"]


@pytest.mark.slow
def test_same_seed_gives_bitwise_identical_weights(moons):
    """Two trainings in one process (shuffled batches, 2 epochs of 4). Measured: every
    weight bitwise equal, losses equal (2.81442, 2.73257 nats both times); global seed 8
    instead of 7: 2.80257, 2.69575, and other weights."""
    assert not tf_config.is_op_determinism_enabled()  # no public getter in TF 2.21
    data = moons[0][:512]
    first, loss_1 = train(data, seed=7)
    second, loss_2 = train(data, seed=7)
    assert loss_1 == loss_2
    weights_1, weights_2 = first.get_weights(), second.get_weights()
    assert len(weights_1) == len(weights_2) > 0
    for a, b in zip(weights_1, weights_2, strict=True):
        assert np.array_equal(a, b)
    other, loss_3 = train(data, seed=8)
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
