import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from flow_checks import measure, perturb  # noqa: E402

from tfp_flows import nets  # noqa: E402
from tfp_flows.bijectors import ImageAffineCoupling, channel_mask, checkerboard_mask  # noqa: E402
from tfp_flows.testing import check_bijector  # noqa: E402


def test_masks():
    cb = checkerboard_mask([4, 4, 3])
    assert cb.shape == (4, 4, 3) and cb.sum() == 24
    assert cb[0, 0, 0] == 0 and cb[0, 1, 2] == 1 and cb[1, 1, 1] == 0
    np.testing.assert_array_equal(checkerboard_mask([4, 4, 3], parity=1), 1 - cb)
    ch = channel_mask([2, 2, 4])
    np.testing.assert_array_equal(ch[1, 0], [1, 1, 0, 0])
    np.testing.assert_array_equal(channel_mask([3], parity=1), [0, 0, 1])
    np.testing.assert_array_equal(checkerboard_mask([4]), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="at least 2 channels"):
        channel_mask([4, 4, 1])


def test_conv_net_zero_initialised_output():
    net = nets.ConvCouplingNet(hidden_channels=8, output_channels=3)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 5)).astype(np.float32)
    shift, log_scale = net(x)
    assert shift.shape == (2, 8, 8, 3) and log_scale.shape == (2, 8, 8, 3)
    assert np.all(shift.numpy() == 0) and np.all(log_scale.numpy() == 0)
    clone = nets.ConvCouplingNet.from_config(net.get_config())
    assert clone.hidden_channels == 8 and clone.output_channels == 3


@pytest.mark.parametrize("mask", ["checkerboard", "channel"])
def test_identity_at_init_then_log_det_and_inverse(mask):
    bij = ImageAffineCoupling.trainable(2, image_shape=[4, 4, 2], mask=mask, seed=0,
                                        hidden_channels=8, dtype=tf.float64)
    x = np.random.default_rng(1).standard_normal((4, 4, 4, 2))
    np.testing.assert_array_equal(bij.forward(x), x)
    perturb(bij, 0.3, seed=2)
    y = bij.forward(x).numpy()
    m = bij.mask.astype(bool)
    np.testing.assert_array_equal(y[:, m], x[:, m])       # conditioning half unchanged
    assert np.max(np.abs(y - x)) > 1e-2
    ldj_err, inv_err, ildj_err = measure(bij, x, 3)
    assert ldj_err < 1e-10 and inv_err < 1e-12 and ildj_err < 1e-12


def test_vectors_and_float32():
    bij = perturb(ImageAffineCoupling.trainable(5, mask="checkerboard", seed=1), 0.3)
    x = np.random.default_rng(3).standard_normal((16, 5)).astype(np.float32)
    y = bij.forward(x)
    assert y.dtype == tf.float32 and y.shape == (16, 5)
    ldj_err, inv_err, _ = measure(bij, x, 1)
    assert ldj_err < 1e-4 and inv_err < 1e-5


def test_log_scale_is_soft_clamped():
    bij = ImageAffineCoupling.trainable(2, image_shape=[2, 2, 2], seed=0, dtype=tf.float64)
    out = bij.conditioner.conv_out
    out.bias.assign(np.full(out.bias.shape, 100.0))          # raw log-scale 100
    fldj = bij.forward_log_det_jacobian(np.zeros((1, 2, 2, 2)), event_ndims=3)
    np.testing.assert_allclose(fldj, [3.0 * np.tanh(100 / 3.0) * 4], rtol=1e-12)


def test_bad_mask_raises():
    with pytest.raises(ValueError, match="binary"):
        ImageAffineCoupling(lambda x: (x, x), np.ones((2, 2, 1)))


def test_check_bijector():
    def make(dt):
        bij = ImageAffineCoupling.trainable(2, image_shape=[4, 4, 2], mask="checkerboard",
                                            seed=0, hidden_channels=4, dtype=dt)
        for w in bij.conditioner.weights:
            w.assign(keras.random.normal(w.shape, stddev=0.3, seed=1, dtype=dt.name))
        return bij

    x = np.random.default_rng(4).standard_normal((3, 4, 4, 2))
    check_bijector(make, x, event_ndims=3, saved_model=False)
