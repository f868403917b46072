import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import nets

tfb = tfp.bijectors


def test_fresh_realnvp_is_identity_and_output_units_come_from_tfp():
    net = nets.CouplingMLP(hidden_units=[16, 16])
    bij = tfb.RealNVP(num_masked=2, shift_and_log_scale_fn=net)
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    np.testing.assert_array_equal(bij.forward(x).numpy(), x)
    assert net.output_units == 3
    assert float(tf.reduce_max(tf.abs(bij.forward_log_det_jacobian(x, event_ndims=1)))) == 0.0
    with pytest.raises(ValueError, match="built for 3 output units"):
        net(x[:, :2], 4)


def test_shift_only_is_volume_preserving_and_log_scale_is_bounded():
    net = nets.CouplingMLP(hidden_units=[8], shift_only=True, output_units=2)
    shift, log_scale = net(np.ones((3, 2), "float32"))
    assert log_scale is None and shift.shape == (3, 2)
    bounded = nets.CouplingMLP(hidden_units=[8], output_units=2, log_scale_bound=2.0)
    bounded(np.ones((1, 2), "float32"))
    bounded.output_layer.kernel.assign(50 * tf.ones_like(bounded.output_layer.kernel))
    _, log_scale = bounded(100 * np.ones((3, 2), "float32"))
    assert np.all(np.abs(log_scale.numpy()) <= 2.0) and np.abs(log_scale.numpy()).max() > 1.9


def test_config_round_trip_and_missing_output_size():
    net = nets.CouplingMLP(hidden_units=[8, 8], activation="tanh", output_units=3)
    assert nets.CouplingMLP.from_config(net.get_config()).get_config() == net.get_config()
    with pytest.raises(ValueError, match="does not know its output size"):
        nets.CouplingMLP()(np.ones((2, 2), "float32"))
