import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from flow_checks import measure, perturb  # noqa: E402

from tfp_flows.bijectors import Invertible1x1Conv  # noqa: E402
from tfp_flows.testing import check_bijector  # noqa: E402


def test_rotation_init_is_volume_preserving():
    bij = Invertible1x1Conv.trainable(4, seed=0, dtype=tf.float64)
    x = np.random.default_rng(0).standard_normal((3, 8, 8, 4))
    np.testing.assert_allclose(bij.forward_log_det_jacobian(x, event_ndims=3), 0.0, atol=1e-12)
    assert np.max(np.abs(bij.forward(x) - x)) > 0.1  # a mixing, not the identity
    assert len(bij.trainable_variables) == 2          # no bias by default


def test_equals_conv2d_and_log_det_is_hw_log_det_w():
    bij = perturb(Invertible1x1Conv.trainable(3, seed=1, dtype=tf.float64), 0.5)
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 3))
    w = bij.weight().numpy()
    conv = tf.nn.conv2d(x, w.T[None, None], strides=1, padding="VALID")
    np.testing.assert_allclose(bij.forward(x), conv, atol=1e-12)
    fldj = bij.forward_log_det_jacobian(x, event_ndims=3)
    np.testing.assert_allclose(fldj, np.full(2, 64 * np.linalg.slogdet(w)[1]), atol=1e-9)


def test_autodiff_on_small_images_and_vectors():
    bij = perturb(Invertible1x1Conv.trainable(2, seed=2, dtype=tf.float64), 1.0)
    rng = np.random.default_rng(2)
    ldj_err, inv_err, _ = measure(bij, rng.standard_normal((4, 4, 4, 2)), 3)
    assert ldj_err < 1e-9 and inv_err < 1e-10
    ldj_err, inv_err, _ = measure(bij, rng.standard_normal((16, 2)), 1)
    assert ldj_err < 1e-10 and inv_err < 1e-10


def test_check_bijector_images():
    rng = np.random.default_rng(3)
    lu, d = rng.standard_normal((2, 2)), rng.standard_normal(2) * 0.5

    def make(dt):
        return Invertible1x1Conv(lu.astype(dt.as_numpy_dtype), d.astype(dt.as_numpy_dtype))

    check_bijector(make, rng.standard_normal((4, 4, 4, 2)), event_ndims=3, saved_model=False)
