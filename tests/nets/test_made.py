import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import nets


def _jacobian(made, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = made(x)
    return tape.batch_jacobian(out, x).numpy()  # [batch, D, params, D]


@pytest.mark.parametrize("order", ["left-to-right", "right-to-left", [3, 1, 4, 2]])
def test_outputs_depend_only_on_earlier_inputs(order):
    made = nets.MADE(4, params=3, hidden_units=[16, 16], input_order=order,
                     zero_init_output=False)
    jac = _jacobian(made, np.random.default_rng(0).normal(size=(8, 4)).astype("float32"))
    degrees = nets.made_degrees(4, [16, 16], order)[0]
    for i in range(4):
        for j in range(4):
            dep = np.abs(jac[:, i, :, j]).max()
            if degrees[j] >= degrees[i]:
                assert dep == 0.0, (i, j)
            elif degrees[j] == degrees[i] - 1:
                assert dep > 0.0, (i, j)  # the immediate predecessor is always connected


def test_zero_initialised_output_and_bounded_log_scale():
    made = nets.MADE(3, params=2, hidden_units=[8])
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    assert np.all(made(x).numpy() == 0.0)
    made.kernels[-1].assign(1e3 * tf.ones_like(made.kernels[-1]))
    out = made(100 * x).numpy()
    assert np.all(np.abs(out[..., 1]) <= 6.0) and np.abs(out[..., 0]).max() > 6.0
    with pytest.raises(ValueError, match="log_scale_bound needs params=2"):
        nets.MADE(3, params=4, log_scale_bound=3.0)
    assert nets.MADE(3, params=4).log_scale_bound is None


def test_config_round_trip_and_errors():
    made = nets.MADE(3, params=2, hidden_units=[8, 4], activation="tanh",
                     input_order=[2, 3, 1])
    clone = nets.MADE.from_config(made.get_config())
    assert clone.get_config() == made.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(made))
    assert isinstance(restored, nets.MADE)
    with pytest.raises(ValueError, match="permutation of 1..3"):
        nets.MADE(3, input_order=[1, 1, 2])
    with pytest.raises(ValueError, match="built for event_size=3"):
        nets.MADE(3)(np.zeros((2, 4), "float32"))


def test_first_call_inside_tf_function_then_eager():
    made = nets.MADE(3, params=2, hidden_units=[8])
    x = tf.ones([2, 3])
    traced = tf.function(lambda t: made(t))(x)
    np.testing.assert_allclose(made(x).numpy(), traced.numpy())
