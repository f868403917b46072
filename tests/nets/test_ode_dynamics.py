"""ODEDynamics: shapes, identity start, time dependence, dtypes, config round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import nets


def _perturb(layer, scale=0.5):
    for i, v in enumerate(layer.weights):
        v.assign(v + scale * tf.random.stateless_normal(v.shape, [i, 2], dtype=v.dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zero_at_start_then_a_function_of_time_and_state(dtype, rng):
    layer = nets.ODEDynamics(hidden_units=(8, 8), dtype=dtype)
    x = tf.constant(rng.standard_normal((5, 3)), dtype)
    out = layer(0.5, x)
    assert out.shape == (5, 3) and out.dtype == dtype
    assert np.abs(out.numpy()).max() == 0.0  # zero-initialised output: identity flow
    _perturb(layer)
    at_0, at_1 = layer(tf.constant(0.0, dtype), x).numpy(), layer(1.0, x).numpy()
    assert np.abs(at_0 - at_1).max() > 1e-2  # time enters through the gates and shifts
    assert np.abs(layer(0.0, x[::-1]).numpy() - at_0[::-1]).max() < 1e-6  # rows independent
    assert len(layer.trainable_weights) == 15  # 3 x (kernel, bias, gate w, gate b, shift)


def test_config_round_trip_gives_the_same_function(rng):
    layer = nets.ODEDynamics(hidden_units=(4,), activation="softplus", zero_init_output=False)
    x = tf.constant(rng.standard_normal((3, 2)), "float32")
    layer(0.2, x)
    _perturb(layer)
    clone = nets.ODEDynamics.from_config(layer.get_config())
    clone(0.2, x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(0.2, x).numpy(), layer(0.2, x).numpy())
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert again.get_config() == layer.get_config()


def test_bad_hidden_units_are_named():
    with pytest.raises(ValueError, match="hidden_units must be positive"):
        nets.ODEDynamics(hidden_units=(8, 0))
