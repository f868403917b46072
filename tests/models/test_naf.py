import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import contextlib  # noqa: E402
import io  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from tfp_flows.models import RECIPES, build, build_maf, build_naf, build_pixelmaf  # noqa: E402

from tfp_flows import FlowModel, nets, testing  # noqa: E402

tfb, tfd = tfp.bijectors, tfp.distributions


def ring_of_gaussians(n, seed):
    """8 Gaussians (std 0.2) evenly spaced on the circle of radius 2: a multimodal 2-D set."""
    rng = np.random.default_rng(seed)
    angle = 2 * np.pi * rng.integers(8, size=n) / 8
    centres = 2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return (centres + 0.2 * rng.standard_normal((n, 2))).astype("float32")


def num_params(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def test_recipes_are_listed():
    assert RECIPES["naf"][0] is build_naf and RECIPES["pixelmaf"][0] is build_pixelmaf
    from tfp_flows import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli.main(["list"])
    assert "naf " in out.getvalue() and "pixelmaf" in out.getvalue()
    with pytest.raises(ValueError, match="square number of pixels"):
        build("pixelmaf", 10)


def test_naf_flow_is_triangular_and_consistent():
    model = build_naf(3, num_layers=2, hidden_units=(16,), hidden_size=4, seed=0,
                      dtype="float64")
    rng = np.random.default_rng(0)
    for v in model.trainable_variables:  # leave the near-identity start
        v.assign(v + 0.3 * rng.standard_normal(v.shape))
    chain = model.distribution.bijector
    naf_layer = [b for b in chain.bijectors if isinstance(b, tfb.MaskedAutoregressiveFlow)][0]
    x = tf.constant(rng.standard_normal((16, 3)), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = naf_layer.inverse(x)
    jac = tape.batch_jacobian(z, x).numpy()
    upper = np.abs(np.triu(jac, 1)).max()
    print(f"NAF layer (MADE conditioner): max |upper entries| = {upper}")
    assert upper == 0.0 and np.abs(np.tril(jac, -1)).max() > 1e-3
    assert np.all(np.diagonal(jac, axis1=1, axis2=2) > 0)   # increasing in each x_i
    # Whole flow: log_prob = base log-prob + log|det| of the autodiff Jacobian.
    x = tf.identity(x)  # a fresh tensor: TFP's bijector cache would cut the tape
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = chain.inverse(x)
    _, logdet = np.linalg.slogdet(tape.batch_jacobian(z, x).numpy())
    base = model.distribution.distribution.log_prob(z)  # the (Student-t) base's own
    np.testing.assert_allclose(model.log_prob(x), base + logdet, atol=1e-9)
    # Sampling inverts every DSF with the root finder: samples map back to their noise.
    samples = model.sample(20, seed=3)
    z = chain.inverse(tf.identity(samples))
    x_back = chain.forward(tf.identity(z))
    assert float(tf.reduce_max(tf.abs(x_back - samples))) < 1e-9


def test_xla_compiles_dsf_sampling_and_both_conv_conditioners():
    """The one XLA test: jit-compiled log_prob/sampling of NAF, PixelCNN- and WaveNet-MAFs."""
    naf = build_naf(2, num_layers=1, hidden_units=(8,), hidden_size=3, seed=0)
    for v in naf.trainable_variables:
        v.assign(v + 0.3 * tf.random.stateless_normal(v.shape, [0, 1]))
    x = tf.constant(ring_of_gaussians(8, 0))
    lp_xla = tf.function(naf.distribution.log_prob, jit_compile=True)(x)
    np.testing.assert_allclose(lp_xla, naf.log_prob(x), rtol=1e-4, atol=1e-4)
    # Sampling direction: each DSF is inverted by its tf.while_loop root finder.
    z = tf.constant(np.random.default_rng(0).normal(size=(5, 2)), tf.float32)
    push = lambda z: naf.distribution.bijector.forward(tf.identity(z))  # noqa: E731
    np.testing.assert_allclose(tf.function(push, jit_compile=True)(z), push(z), atol=1e-4)

    pixel = nets.PixelCNN((4, 4, 1), filters=8, num_layers=1, zero_init_output=False)
    wave = nets.WaveNet(16, filters=8, dilations=(1, 2), zero_init_output=False)
    flows = [(tfb.MaskedAutoregressiveFlow(pixel, event_ndims=3), (3, 4, 4, 1)),
             (tfb.MaskedAutoregressiveFlow(wave), (3, 16))]
    for maf, shape in flows:
        y = tf.constant(np.random.default_rng(1).normal(size=shape), tf.float32)
        nd = len(shape) - 1
        f = lambda y, maf=maf, nd=nd: maf.inverse_log_det_jacobian(y, event_ndims=nd)  # noqa: E731
        np.testing.assert_allclose(tf.function(f, jit_compile=True)(y), f(y), atol=1e-4)
    # ... and a compiled training step of a PixelCNN MAF.
    model = build_pixelmaf((4, 4, 1), num_layers=1, filters=8, num_blocks=1, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    data = np.random.default_rng(2).uniform(size=(64, 4, 4, 1)).astype("float32")
    loss = model.fit(data, epochs=2, batch_size=32, verbose=0).history["loss"]
    assert np.all(np.isfinite(loss)) and loss[1] < loss[0]


@pytest.mark.slow
def test_naf_beats_affine_maf_of_equal_size_and_integrates_to_one():
    x_train, x_test = ring_of_gaussians(4000, 0), ring_of_gaussians(1000, 1)
    results = {}
    for name, builder, options in [
            # one Gaussian base for both, so that only the transformers differ
            ("naf", build_naf, dict(num_layers=2, hidden_units=(24, 24), hidden_size=6,
                                    base="normal")),
            ("maf", build_maf, dict(num_layers=4, hidden_units=(24, 24), base="normal"))]:
        keras.utils.set_random_seed(0)
        model = builder(2, seed=0, **options)
        model.compile(optimizer=keras.optimizers.Adam(5e-3), jit_compile=False)
        model.fit(x_train, epochs=15, batch_size=200, verbose=0)
        nll = -float(np.mean(model.log_prob(x_test)))
        results[name] = (model, nll, num_params(model))
    (naf, naf_nll, naf_size), (_, maf_nll, maf_size) = results["naf"], results["maf"]
    integral = testing.grid_integral(naf.log_prob)
    print(f"ring of 8 Gaussians: NAF NLL {naf_nll:.3f} ({naf_size} params), affine MAF NLL "
          f"{maf_nll:.3f} ({maf_size} params); NAF grid integral {integral:.4f}")
    assert abs(naf_size - maf_size) <= 0.05 * maf_size
    assert naf_nll < maf_nll - 0.1
    assert abs(integral - 1.0) < 0.01
    assert isinstance(naf, FlowModel)
