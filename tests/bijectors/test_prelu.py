"""PReLU bijector: check_bijector at ordinary and extreme slopes, validation, FlowModel."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from flow_checks import check_in_chain_with_tfp_flows  # noqa: E402

from tfp_flows.bijectors import PReLU  # noqa: E402
from tfp_flows.testing import check_bijector  # noqa: E402

tfd, tfb = tfp.distributions, tfp.bijectors
RNG = np.random.default_rng(0)
X = RNG.standard_normal((16, 2)) * 3.0


@pytest.mark.parametrize("alpha", [[0.3, 2.0], [1e-3, 1e3], [1.0, 1.0]])
def test_check_bijector_float32_float64(alpha):
    report = check_bijector(lambda dt: PReLU(tf.constant(alpha, dt)), X)
    assert report.errors["float64"]["inverse(forward(x))"] < 1e-12
    assert report.errors["float64"]["forward_log_det_jacobian"] < 1e-12


def test_far_points_and_trainable():
    far = np.concatenate([X * 1e4, X * 1e-4])
    check_bijector(lambda dt: PReLU(tf.constant([0.05, 20.0], dt)), far)
    b = PReLU.trainable(3, dtype=tf.float64)
    assert [v.shape.as_list() for v in b.trainable_variables] == [[3]]
    np.testing.assert_allclose(b.forward(X[:, :1] * np.ones((1, 3))), X[:, :1] * np.ones((1, 3)))
    b.trainable_variables[0].assign([-5.0, 0.0, 5.0])  # any value: alpha stays positive
    check_bijector(b, RNG.standard_normal((8, 3)))


def test_closed_form_values_and_log_det():
    b = PReLU(tf.constant([0.5, 2.0], tf.float64))
    x = tf.constant([[-2.0, -3.0], [1.0, -1.0]], tf.float64)
    np.testing.assert_allclose(b.forward(x), [[-1.0, -6.0], [1.0, -2.0]])
    np.testing.assert_allclose(b.forward_log_det_jacobian(x, event_ndims=1),
                               [np.log(0.5) + np.log(2.0), np.log(2.0)])
    np.testing.assert_allclose(b.forward_log_det_jacobian(x, event_ndims=0),
                               [[np.log(0.5), np.log(2.0)], [0.0, np.log(2.0)]])
    assert b._is_increasing()


def test_batch_shape_slicing_and_validation():
    b = PReLU(tf.fill([4, 3], 0.5))
    assert b.experimental_batch_shape() == [4, 3]
    assert b[1:3].experimental_batch_shape() == [2, 3]
    assert b.experimental_batch_shape(x_event_ndims=1) == [4]
    with pytest.raises(tf.errors.InvalidArgumentError, match="alpha` must be positive"):
        PReLU(tf.constant([1.0, -0.5]), validate_args=True)
    v = tf.Variable([1.0, 1.0])
    b = PReLU(v, validate_args=True)
    v.assign([1.0, 0.0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="positive"):
        b.forward(tf.ones([2]))



@pytest.mark.slow
def test_in_flow_model_integrates_trains_samples_exports(tmp_path):
    model = check_in_chain_with_tfp_flows(PReLU.trainable(2, seed=0), tmp_path / "1")
    alpha = model.distribution.bijector.bijectors[1].alpha
    assert not np.allclose(tf.convert_to_tensor(alpha), 1.0)  # the slopes were trained
