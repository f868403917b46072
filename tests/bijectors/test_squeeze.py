import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from tfp_flows.bijectors import Squeeze  # noqa: E402
from tfp_flows.testing import check_bijector  # noqa: E402

tfb = tfp.bijectors


@pytest.fixture(scope="module")
def digits():
    return (load_digits().images[:, :, :, None] / 16.0).astype(np.float32)   # [1797, 8, 8, 1]


def test_digits_shapes_and_exact_inverse(digits):
    sq = Squeeze()
    once = sq.forward(digits)
    twice = sq.forward(once)
    assert once.shape == (1797, 4, 4, 4) and twice.shape == (1797, 2, 2, 16)
    back = sq.inverse(tf.identity(sq.inverse(tf.identity(twice))))
    assert np.array_equal(back.numpy(), digits)          # a permutation: bit-exact
    assert sq.forward_event_shape([8, 8, 1]) == [4, 4, 4]
    assert sq.inverse_event_shape([2, 2, 16]) == [4, 4, 4]
    np.testing.assert_array_equal(sq.forward_event_shape_tensor([8, 8, 1]), [4, 4, 4])
    assert float(tf.reduce_max(tf.abs(sq.forward_log_det_jacobian(digits, 3)))) == 0.0


def test_matches_space_to_depth_and_batch_ranks():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 6, 5))
    y = Squeeze().forward(x)                                       # two batch axes
    ref = tf.nn.space_to_depth(x.reshape(6, 4, 6, 5), 2).numpy().reshape(2, 3, 2, 3, 20)
    np.testing.assert_array_equal(y, ref)
    y3 = Squeeze(factor=3).forward(np.ones((1, 6, 9, 2)))
    assert y3.shape == (1, 2, 3, 18)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="divisible"):
        Squeeze().forward(np.zeros((1, 5, 4, 1)))
    with pytest.raises(ValueError, match="divisible by 4"):
        Squeeze().inverse(np.zeros((1, 2, 2, 3)))


def test_check_bijector():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((3, 4, 4, 2)), rng.standard_normal((3, 2, 2, 8))
    check_bijector(lambda dt: Squeeze(), x, y=y, event_ndims=3, saved_model=False)
