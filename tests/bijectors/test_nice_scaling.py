import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from flow_checks import fit_two_moons, measure, perturb  # noqa: E402
from tfp_flows.models.nice import build_nice  # noqa: E402

from tfp_flows import nets  # noqa: E402
from tfp_flows.bijectors import NICEScaling  # noqa: E402
from tfp_flows.testing import check_bijector  # noqa: E402

tfb = tfp.bijectors


def test_log_det_is_sum_of_log_scales():
    s = np.array([0.5, -2.0, 3.0])
    bij = NICEScaling(s)
    x = np.random.default_rng(0).standard_normal((7, 3))
    np.testing.assert_allclose(bij.forward(x), x * np.exp(s), rtol=1e-12)
    np.testing.assert_allclose(bij.forward_log_det_jacobian(x, event_ndims=1),
                               np.full(7, s.sum()), rtol=1e-12)
    assert bij._is_increasing()


@pytest.mark.parametrize("scale", [0.3, 8.0])
def test_autodiff_log_det_and_inverse(scale):
    bij = perturb(NICEScaling.trainable(4, dtype=tf.float64), scale)
    ldj_err, inv_err, ildj_err = measure(bij, np.random.default_rng(1).standard_normal((32, 4)),
                                         1)
    assert ldj_err < 1e-10 and inv_err < 1e-10 and ildj_err < 1e-10


def test_check_bijector_and_float32():
    check_bijector(lambda dt: NICEScaling(np.array([0.3, -0.7], dt.as_numpy_dtype)),
                   np.random.default_rng(2).standard_normal((16, 2)), saved_model=False)
    assert NICEScaling.trainable(3).forward(tf.ones([2, 3])).dtype == tf.float32


def test_additive_coupling_is_volume_preserving():
    # NICE's additive coupling: TFP's RealNVP with a shift-only CouplingMLP; log-det is
    # exactly 0 whatever the network's weights.
    net = nets.CouplingMLP(hidden_units=(16,), shift_only=True, dtype="float64")
    coupling = tfb.RealNVP(num_masked=2, shift_and_log_scale_fn=net)
    x = tf.constant(np.random.default_rng(3).standard_normal((16, 4)))
    coupling.forward(x)
    for w in net.weights:
        w.assign(np.random.default_rng(4).standard_normal(w.shape))
    fresh = tf.identity(x)
    assert np.all(coupling.forward_log_det_jacobian(fresh, event_ndims=1).numpy() == 0.0)
    ldj_err, inv_err, _ = measure(coupling, x, 1)
    assert ldj_err < 1e-12 and inv_err < 1e-12
    assert np.max(np.abs(coupling.forward(tf.identity(x)) - x)) > 1e-2  # not the identity


def test_build_nice_uses_nice_scaling():
    model = build_nice(2, num_layers=2, hidden_units=(8,), seed=0)
    found = [b for b in model.distribution.bijector.bijectors if isinstance(b, NICEScaling)]
    assert len(found) == 1


@pytest.mark.slow
def test_nice_trains_and_stays_normalised():
    model = build_nice(2, num_layers=3, hidden_units=(32, 32), seed=0)
    out = fit_two_moons(model, epochs=10)
    assert abs(out["grid_before"] - 1) < 0.01 and abs(out["grid_after"] - 1) < 0.01
    assert out["nll_after"] < out["nll_before"] - 0.3
    scaling = [b for b in model.distribution.bijector.bijectors if isinstance(b, NICEScaling)][0]
    assert np.max(np.abs(scaling.log_scale.numpy())) > 0.05  # the scaling was trained
