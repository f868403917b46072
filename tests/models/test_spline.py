import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from tfp_flows.models.spline import build_spline  # noqa: E402

from tfp_flows import models, nets  # noqa: E402
from tfp_flows.datasets import two_moons  # noqa: E402
from tfp_flows.testing import check_bijector, grid_integral  # noqa: E402

tfb = tfp.bijectors


def test_conditioner_outputs_valid_spline_parameters():
    net = nets.SplineCouplingMLP(hidden_units=(8,), num_bins=5, bound=3.0, output_units=2)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    widths, heights, slopes = net(x)
    assert widths.shape == (4, 2, 5) and heights.shape == (4, 2, 5) and slopes.shape == (4, 2, 4)
    np.testing.assert_allclose(np.sum(widths, -1), 6.0, rtol=1e-5)
    np.testing.assert_allclose(widths, 1.2, rtol=1e-5)      # zero-initialised: uniform bins
    np.testing.assert_allclose(slopes, 1.0, rtol=1e-5)      # and unit slopes: the identity
    for w in net.weights:
        w.assign(np.random.default_rng(1).standard_normal(w.shape) * 3)
    widths, heights, slopes = net(x)
    np.testing.assert_allclose(np.sum(heights, -1), 6.0, rtol=1e-5)
    assert np.min(widths) >= 1e-3 and np.min(slopes) >= 1e-3
    clone = nets.SplineCouplingMLP.from_config(net.get_config())
    assert clone.num_bins == 5 and clone.bound == 3.0
    with pytest.raises(ValueError, match="num_bins"):
        nets.SplineCouplingMLP(num_bins=1)


def test_fresh_flow_is_identity_and_normalised():
    model = build_spline(2, num_layers=2, hidden_units=(16,), seed=0, permutation=None)
    x = two_moons(200, seed=1)
    np.testing.assert_allclose(model.distribution.bijector.forward(x), x, atol=1e-5)
    assert abs(grid_integral(model.log_prob, num=201) - 1) < 0.01
    assert "spline" in models.RECIPES


def test_spline_coupling_log_det_and_inverse():
    def make(dtype):
        net = nets.SplineCouplingMLP(hidden_units=(8,), num_bins=6, bound=4.0,
                                     dtype=dtype.name)
        bij = tfb.RealNVP(num_masked=2, bijector_fn=net.spline)
        bij.forward(tf.zeros([1, 4], dtype))
        rng = np.random.default_rng(2)
        for w in net.weights:
            w.assign(rng.standard_normal(w.shape) * 0.3)  # (0.7: float32 bins of 1e-3 fail)
        return bij

    # points inside and outside [-4, 4] (identity tails)
    x = np.random.default_rng(3).standard_normal((32, 4)) * 2.5
    check_bijector(make, x, saved_model=False)


@pytest.mark.slow
def test_spline_trains_on_two_moons():
    model = build_spline(2, num_layers=2, hidden_units=(32, 32), seed=0)
    x = two_moons(1000, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    before = -float(tf.reduce_mean(model.log_prob(x)))
    model.fit(x, epochs=6, batch_size=100, verbose=0)
    after = -float(tf.reduce_mean(model.log_prob(x)))
    assert after < before - 0.5
    assert abs(grid_integral(model.log_prob, num=201) - 1) < 0.01
    z = model.distribution.bijector.inverse(x[:64])
    back = model.distribution.bijector.forward(tf.identity(z))
    assert float(tf.reduce_max(tf.abs(back - x[:64]))) < 1e-4
