import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from flow_checks import measure  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from tfp_flows import FlowModel  # noqa: E402
from tfp_flows.bijectors import (  # noqa: E402
    ActNorm,
    FactorOut,
    ImageAffineCoupling,
    Invertible1x1Conv,
    Squeeze,
    initialize_actnorms,
)

tfb, tfd = tfp.bijectors, tfp.distributions


def glow_step(shape, parity, mask, dtype, seed):
    c = shape[-1]
    return [ImageAffineCoupling.trainable(c, image_shape=shape, mask=mask, parity=parity,
                                          hidden_channels=16, seed=seed, dtype=dtype),
            Invertible1x1Conv.trainable(c, seed=seed, dtype=dtype),
            ActNorm.trainable(c, dtype=dtype)]


def multiscale_glow(dtype=tf.float32):
    """Two scales on [8, 8, 1]: squeeze -> 2 steps on [4,4,4] -> factor out 2 channels ->
    squeeze -> 1 step on [2,2,8]. Listed in Chain order (the data side first)."""
    inner = tfb.Chain([tfb.Invert(Squeeze()), *glow_step([2, 2, 8], 0, "channel", dtype, 3),
                       Squeeze()])
    return tfb.Chain([tfb.Invert(Squeeze()),
                      *glow_step([4, 4, 4], 1, "channel", dtype, 1),
                      *glow_step([4, 4, 4], 0, "checkerboard", dtype, 2),
                      FactorOut(inner), Squeeze()])


@pytest.fixture(scope="module")
def digits():
    rng = np.random.default_rng(0)
    x = (load_digits().images[:, :, :, None] + rng.uniform(size=(1797, 8, 8, 1))) / 17.0
    return (x - 0.5).astype(np.float32)


def test_factor_out_only_touches_kept_channels():
    scale = tfb.Scale(np.float64(3.0))
    fo = FactorOut(scale, num_kept=1, event_ndims=1)
    x = np.random.default_rng(0).standard_normal((5, 3))
    y = fo.forward(x).numpy()
    np.testing.assert_allclose(y[:, 0], 3 * x[:, 0])
    np.testing.assert_array_equal(y[:, 1:], x[:, 1:])
    np.testing.assert_allclose(fo.forward_log_det_jacobian(x, event_ndims=1),
                               np.full(5, np.log(3.0)))
    with pytest.raises(ValueError, match="num_kept"):
        FactorOut(scale, num_kept=4, event_ndims=1).forward(x)


def test_multiscale_shapes_and_exact_inverse_on_digits(digits):
    flow = multiscale_glow()
    for b in flow.trainable_variables:
        b.assign(b + 0.05 * np.random.default_rng(1).standard_normal(b.shape).astype(np.float32))
    x = digits[:64]
    z = flow.inverse(x)
    assert z.shape == (64, 8, 8, 1)
    x_back = flow.forward(tf.identity(z))
    assert x_back.shape == (64, 8, 8, 1)
    assert float(tf.reduce_max(tf.abs(x_back - x))) < 1e-5
    # the factored-out channels (last 2 of the first squeeze) skip the deeper scale
    assert flow.forward_event_shape([8, 8, 1]) == [8, 8, 1]


def test_multiscale_log_det_matches_autodiff_float64(digits):
    flow = multiscale_glow(tf.float64)
    rng = np.random.default_rng(2)
    for v in flow.trainable_variables:
        v.assign(v + 0.1 * rng.standard_normal(v.shape))
    ldj_err, inv_err, ildj_err = measure(flow, digits[:6].astype(np.float64), 3)
    assert ldj_err < 1e-9 and inv_err < 1e-10 and ildj_err < 1e-9


@pytest.mark.slow
def test_multiscale_glow_trains_on_digits(digits):
    flow = multiscale_glow()
    base = tfd.Sample(tfd.Normal(np.float32(0), np.float32(1)), [8, 8, 1])
    model = FlowModel(tfd.TransformedDistribution(base, flow), bits_per_dim=True)
    x = digits[:512]
    nll0 = -float(tf.reduce_mean(model.log_prob(x)))
    assert initialize_actnorms(model, x[:256]) == 3
    nll_init = -float(tf.reduce_mean(model.log_prob(x)))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    hist = model.fit(x, epochs=2, batch_size=64, verbose=0).history
    nll1 = -float(tf.reduce_mean(model.log_prob(x)))
    print({"nll0": nll0, "nll_init": nll_init, "nll_after": nll1, "loss": hist["loss"]})
    assert nll_init < nll0 and nll1 < nll_init - 5.0
    z = model.distribution.bijector.inverse(x[:32])
    err = float(tf.reduce_max(tf.abs(model.distribution.bijector.forward(tf.identity(z)) - x[:32])))
    assert err < 1e-4
