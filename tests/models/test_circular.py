"""The circular spline flow on the torus: normalised over [-pi, pi)^2 and periodic, before and
after training on the von Mises mixture, whose exact NLL it approaches."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import datasets, models
from tfp_flows.testing import grid_integral


def _torus_integral(log_prob):
    return grid_integral(log_prob, low=-math.pi, high=math.pi, num=201)


def test_torus_data_and_exact_density():
    x = datasets.torus(2000, seed=1)
    assert x.shape == (2000, 2) and x.min() >= -math.pi and x.max() < math.pi
    exact = _torus_integral(lambda t: datasets.torus_log_density(t.numpy()))
    assert abs(exact - 1.0) < 1e-6


def test_circular_flow_is_normalised_periodic_and_trains():
    train, _, test = datasets.load("torus", 6000, seed=0)
    keras.utils.set_random_seed(3)
    model = models.build("circular", 2, seed=3, num_layers=4, hidden_units=(32, 32))
    assert abs(_torus_integral(model.log_prob) - 1.0) < 1e-3
    model.compile(optimizer=keras.optimizers.Adam(5e-3))
    before = model.evaluate(test, verbose=0)[0]
    assert before == pytest.approx(math.log(4 * math.pi ** 2), abs=1e-4)  # uniform start
    model.fit(train, epochs=4, batch_size=256, verbose=0)
    after = model.evaluate(test, verbose=0)[0]
    exact = -datasets.torus_log_density(test).mean()
    # measured: 3.676 -> 2.312 nats, exact 2.276
    assert after < exact + 0.15, (after, exact)
    assert abs(_torus_integral(model.log_prob) - 1.0) < 1e-3
    eps = 1e-4
    edge = tf.constant([[math.pi - eps, 0.3], [0.5, math.pi - eps]])
    seam = tf.constant([[-math.pi, 0.3], [0.5, -math.pi]])
    np.testing.assert_allclose(model.log_prob(edge), model.log_prob(seam), atol=5e-3)
    outside = tf.constant([[math.pi + 0.1, 0.3], [0.5, -math.pi - 0.1], [7.0, 7.0]])
    assert np.all(np.isneginf(model.log_prob(outside).numpy()))  # support: the torus only
    samples = model.sample(500, seed=1).numpy()
    assert samples.min() >= -math.pi and samples.max() < math.pi


def test_short_training_keeps_the_circular_flow_normalised():
    train, _, test = datasets.load("torus", 2000, seed=0)
    keras.utils.set_random_seed(3)
    model = models.build("circular", 2, seed=3, num_layers=2, hidden_units=(16,), num_bins=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(train, epochs=2, batch_size=200, verbose=0)
    assert model.evaluate(test, verbose=0)[0] < math.log(4 * math.pi ** 2) - 0.5
    assert abs(_torus_integral(model.log_prob) - 1.0) < 1e-3
    # zero outside the torus: the integral over a wider square is the same
    wider = grid_integral(model.log_prob, low=-4.0, high=4.0, num=201)
    assert abs(wider - 1.0) < 0.02, wider


def test_circular_needs_two_angles():
    with pytest.raises(ValueError, match="needs event_size >= 2"):
        models.build("circular", 1)
