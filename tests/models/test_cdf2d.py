"""The 2-D autoregressive CDF flow (zoo recipe cdf2d, seed 003) on two moons."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import FlowModel, models
from tfp_flows.testing import grid_integral


def test_refuses_other_event_sizes():
    for size in (1, 3):
        with pytest.raises(ValueError, match="event_size must be 2"):
            models.build("cdf2d", size)


def test_logistic_kind_builds_normalised_and_samples_in_float64():
    model = models.build("cdf2d", 2, kind="logistic", num_components=3, hidden_units=(8,),
                         dtype="float64", seed=1)
    assert model.distribution.dtype == tf.float64
    assert abs(grid_integral(model.log_prob, dtype=tf.float64) - 1.0) < 0.01
    assert np.all(np.isfinite(model.sample(100, seed=2).numpy()))


@pytest.mark.slow
def test_trains_on_two_moons_stays_normalised_and_inverts(moons):
    """4800 training points, 10 epochs of batch 128, Adam 5e-3 (seed 0).

    Measured: test NLL 3.099 -> 1.706 nats (15 epochs: 1.699); grid integral on [-6, 6]^2
    0.999997 before, 1.000000 after; float32 round trip max |forward(inverse(x)) - x| 1.6e-6
    over the 1200 test points. Thresholds: NLL < 2.0, |integral - 1| < 0.01, round trip < 1e-3. For
    scale: the elementwise CDF flow reaches 2.54, RealNVP 1.82 (30 epochs).
    """
    keras.utils.set_random_seed(0)
    model = models.build("cdf2d", 2, seed=0)
    assert isinstance(model, FlowModel)
    integral0 = grid_integral(model.log_prob)
    model.compile(optimizer=keras.optimizers.Adam(5e-3))
    before = model.evaluate(moons[2], verbose=0)[0]
    model.fit(moons[0], epochs=10, batch_size=128, verbose=0)
    after = model.evaluate(moons[2], verbose=0)[0]
    integral1 = grid_integral(model.log_prob)
    bijector = model.distribution.bijector
    x = tf.constant(moons[2])
    back = bijector.forward(tf.identity(bijector.inverse(x))).numpy()
    round_trip = float(np.abs(back - moons[2]).max())
    print(f"cdf2d: test NLL {before:.3f} -> {after:.3f}; integral {integral0:.6f} -> "
          f"{integral1:.6f}; round trip {round_trip:.2e}")
    assert abs(integral0 - 1.0) < 0.01 and abs(integral1 - 1.0) < 0.01
    assert after < 2.0 and after < before - 0.5
    assert round_trip < 1e-3
    # x2's mixture depends on x1: log p(x2 = 0 | x1) - log p(x2 = 1 | x1) (p(x1) cancels)
    # differs between x1 = -1 and x1 = 1.
    lp = model.log_prob(tf.constant([[-1.0, 0.0], [-1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])).numpy()
    assert abs((lp[0] - lp[1]) - (lp[2] - lp[3])) > 0.5
    samples = model.sample(2000, seed=1).numpy()
    assert np.all(np.isfinite(samples))
    np.testing.assert_allclose(samples.mean(0), moons[0].mean(0), atol=0.1)
