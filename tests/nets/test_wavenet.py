import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from tfp_flows import FlowModel, nets  # noqa: E402

tfb, tfd = tfp.bijectors, tfp.distributions
T = 16


def wavenet(**options):
    options = {"filters": 8, "dilations": (1, 2, 4), "zero_init_output": False,
               "kernel_initializer": keras.initializers.GlorotUniform(seed=0), **options}
    return nets.WaveNet(T, params=2, **options)


def test_causal_conv_sees_only_the_past():
    conv = nets.CausalConv1D(1, kernel_size=3, dilation_rate=2, exclusive=True,
                             kernel_initializer="ones")
    x = np.zeros((1, 10, 1), "float32")
    x[0, 5, 0] = 1.0
    out = conv(x).numpy()[0, :, 0]
    # taps at t-4, t-2 (t itself is masked): the impulse at 5 reaches 7 and 9 only.
    np.testing.assert_array_equal(np.nonzero(out)[0], [7, 9])
    inclusive = nets.CausalConv1D(1, kernel_size=3, dilation_rate=2, kernel_initializer="ones")
    np.testing.assert_array_equal(np.nonzero(inclusive(x).numpy()[0, :, 0])[0], [5, 7, 9])
    with pytest.raises(ValueError, match="kernel_size >= 2"):
        nets.CausalConv1D(4, kernel_size=1, exclusive=True)


def test_conditioner_is_strictly_causal_with_the_stated_receptive_field():
    net = wavenet()
    x = tf.constant(np.random.default_rng(0).normal(size=(4, T)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = net(x)                                           # [4, T, 2]
    dep = np.abs(tape.batch_jacobian(out, x).numpy()).max(axis=(0, 2))   # [t_out, t_in]
    assert np.abs(np.triu(dep)).max() == 0.0                   # diagonal included: x_<t only
    lags = (2 - 1) * (1 + 1 + 2 + 4)                           # sees x_{t-8} .. x_{t-1}
    for t in range(T):
        for s in range(t):
            if t - s <= lags:
                assert dep[t, s] > 0, (t, s)
            else:
                assert dep[t, s] == 0, (t, s)


def test_maf_jacobian_is_lower_triangular_and_inverts():
    maf = tfb.MaskedAutoregressiveFlow(wavenet())
    x = tf.constant(np.random.default_rng(1).normal(size=(3, T)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = maf.inverse(x)
    jac = tape.batch_jacobian(z, x).numpy()
    upper = np.abs(np.triu(jac, 1)).max()
    print(f"wavenet MAF T={T}: max |upper entries| = {upper}")
    assert upper == 0.0
    assert np.abs(np.tril(jac, -1)).max() > 1e-2
    _, logdet = np.linalg.slogdet(jac)
    np.testing.assert_allclose(maf.inverse_log_det_jacobian(x, event_ndims=1), logdet,
                               atol=1e-4)
    x_back = maf.forward(tf.identity(z))
    assert float(tf.reduce_max(tf.abs(x_back - x))) < 1e-4


def test_identity_at_start_batch_shapes_and_config_round_trip(tmp_path):
    net = nets.WaveNet(T, params=3, filters=8, dilations=(1, 2))
    x = np.random.default_rng(2).normal(size=(2, 5, T)).astype("float32")
    out = net(x)
    assert out.shape == (2, 5, T, 3) and float(tf.reduce_max(tf.abs(out))) == 0.0
    for v in net.trainable_variables:
        v.assign(tf.random.normal(v.shape, seed=4) * 0.3)
    clone = nets.WaveNet.from_config(net.get_config())
    clone(x)
    clone.set_weights(net.get_weights())
    np.testing.assert_allclose(clone(x), net(x), atol=1e-6)
    inputs = keras.Input((T,))
    model = keras.Model(inputs, net(inputs))
    model.save(tmp_path / "wavenet.keras")
    loaded = keras.models.load_model(tmp_path / "wavenet.keras")
    np.testing.assert_allclose(loaded(x[0]), net(x[0]), atol=1e-6)


def ar2_sequences(n, seed=0):
    """x_t = 1.2 x_{t-1} - 0.5 x_{t-2} + 0.3 e_t: strongly dependent, stationary."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, T + 20))
    for t in range(2, T + 20):
        x[:, t] = 1.2 * x[:, t - 1] - 0.5 * x[:, t - 2] + 0.3 * rng.standard_normal(n)
    return x[:, 20:].astype("float32")


@pytest.mark.slow
def test_wavenet_maf_learns_an_autoregressive_process_and_exports(tmp_path):
    keras.utils.set_random_seed(0)
    x = ar2_sequences(2500)
    maf = tfb.MaskedAutoregressiveFlow(nets.WaveNet(T, filters=16, dilations=(1, 2)))
    dist = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [T]), maf)
    model = FlowModel(dist)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    history = model.fit(x[:2000], epochs=4, batch_size=100, verbose=0)
    nll = -float(np.mean(model.log_prob(x[2000:])))
    # The true conditional density: N(1.2 x_{t-1} - 0.5 x_{t-2}, 0.3^2) for t >= 2.
    true_cond = T * (0.5 * np.log(2 * np.pi * 0.09) + 0.5)
    iid_gauss = T * 0.5 * (np.log(2 * np.pi * np.var(x)) + 1)
    print(f"wavenet MAF on AR(2): test NLL {nll:.2f} nats (iid Gaussian {iid_gauss:.2f}, "
          f"true conditionals about {true_cond:.2f}); loss {history.history['loss'][-1]:.2f}")
    assert nll < iid_gauss - 7           # learnt the dependence (iid: ~13.9 nats)
    assert nll > true_cond - 1           # and no better than the truth allows
    path = model.export(str(tmp_path / "wavenet_maf"))
    loaded = tf.saved_model.load(path)
    lp = loaded.signatures["log_prob"](x=tf.constant(x[:4]))["log_prob"]
    np.testing.assert_allclose(lp, model.log_prob(x[:4]), rtol=1e-5, atol=1e-4)
