import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from flow_checks import measure, perturb  # noqa: E402

from tfp_flows.bijectors import InvertibleDense  # noqa: E402
from tfp_flows.testing import check_bijector  # noqa: E402


@pytest.mark.parametrize("init", ["identity", "rotation"])
def test_init(init):
    bij = InvertibleDense.trainable(5, init=init, seed=0, dtype=tf.float64)
    w = bij.weight().numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(5), atol=1e-12)   # orthogonal at start
    if init == "identity":
        np.testing.assert_allclose(w, np.eye(5))
    # constant Jacobian: TFP allows a log-det without batch dimensions
    fldj = bij.forward_log_det_jacobian(np.zeros((1, 5)), event_ndims=1)
    np.testing.assert_allclose(fldj, 0.0, atol=1e-12)


@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_log_det_and_inverse(scale):
    bij = perturb(InvertibleDense.trainable(6, init="rotation", seed=1, dtype=tf.float64), scale)
    x = np.random.default_rng(0).standard_normal((32, 6))
    ldj_err, inv_err, ildj_err = measure(bij, x, 1)
    assert ldj_err < 1e-8 and inv_err < 1e-6 and ildj_err < 1e-12  # cond(W) ~ e^9 at 3.0
    w = bij.weight().numpy()
    np.testing.assert_allclose(bij.forward_log_det_jacobian(x[:1], event_ndims=1),
                               [np.linalg.slogdet(w)[1]], atol=1e-9)
    np.testing.assert_allclose(bij.inverse_weight().numpy() @ w, np.eye(6), atol=1e-8)


def test_float32_and_batch_shape():
    rng = np.random.default_rng(2)
    bij = InvertibleDense(rng.standard_normal((3, 4, 4)).astype(np.float32),
                          rng.standard_normal((3, 4)).astype(np.float32))
    assert bij.experimental_batch_shape() == [3]
    x = rng.standard_normal((7, 3, 4)).astype(np.float32)
    y = bij.forward(x)
    assert y.dtype == tf.float32 and y.shape == (7, 3, 4)
    np.testing.assert_allclose(bij[1].forward(x[:, 1]), y[:, 1], atol=1e-5)
    np.testing.assert_allclose(bij.inverse(tf.identity(y)), x, atol=1e-3)


def test_validation():
    with pytest.raises(ValueError, match="lower_upper must be"):
        InvertibleDense(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(tf.errors.InvalidArgumentError, match="permutation"):
        InvertibleDense(np.zeros((3, 3)), np.zeros(3), permutation=[0, 0, 1],
                        validate_args=True)


def test_check_bijector():
    rng = np.random.default_rng(3)
    lu, d = rng.standard_normal((3, 3)), rng.standard_normal(3) * 0.5

    def make(dt):
        c = dt.as_numpy_dtype
        return InvertibleDense(lu.astype(c), d.astype(c), sign_diag=[1.0, -1.0, 1.0],
                               permutation=[2, 0, 1], bias=np.ones(3, c))

    check_bijector(make, rng.standard_normal((16, 3)), saved_model=False)
