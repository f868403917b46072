"""The `glow` recipe: multi-scale shapes and exact inverses on 8x8 digits, ActNorm
data-dependent initialisation through the dequantizer, a few training steps lower the
dequantization bound."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import models
from tfp_flows.bijectors import ActNorm, initialize_actnorms
from tfp_flows.dequantization import DequantizedDistribution, VariationalDequantizer


@pytest.fixture(scope="module")
def levels():
    """scikit-learn's digits as integer pixel values 0..16, [1797, 8, 8, 1]."""
    from tfp_flows import datasets

    return datasets.digits(dequantize=False)


@pytest.mark.slow
def test_glow_inverts_exactly_keeps_shapes_and_trains(levels):
    """Two scales, one step each. Measured (seed 0): round trip 3.9e-7 (perturbed weights);
    bound NLL on 512 digits 239.0 nats at
    init -> 166.8 after initialize_actnorms -> 160.1 after 8 Adam steps (3e-3, batch 64).
    Thresholds: round trip 1e-4 on [0, 1] pixel values; a drop > 3 nats from training."""
    keras.utils.set_random_seed(0)
    model = models.build("glow", (8, 8, 1), seed=0, num_steps=1, hidden_channels=8)
    dist = model.distribution
    assert isinstance(dist, DequantizedDistribution) and dist.num_levels == 17
    assert model.event_shape == (8, 8, 1)
    x = levels[:512]
    flow = dist.distribution.bijector
    for i, v in enumerate(flow.trainable_variables):  # off the identity-like init
        v.assign(v + 0.05 * np.random.default_rng(i).standard_normal(v.shape).astype("float32"))
    v = (x[:64] + 0.5) / 17
    z = flow.inverse(v)
    assert z.shape == (64, 8, 8, 1)
    err = float(tf.reduce_max(tf.abs(flow.forward(tf.identity(z)) - v)))
    print("round trip max error", err)
    assert err < 1e-4, err
    np.testing.assert_array_equal(dist.reconstruct(x[:64]).numpy(), x[:64])

    model = models.build("glow", (8, 8, 1), seed=0, num_steps=1, hidden_channels=8)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = model.evaluate(x, verbose=0)[0]
    assert initialize_actnorms(model, x[:256]) == 2
    for b in model.distribution.distribution.bijector.bijectors[1].bijectors:
        if isinstance(b, ActNorm):
            assert bool(b.initialized.numpy())
    after_init = model.evaluate(x, verbose=0)[0]
    model.fit(x, epochs=1, batch_size=64, verbose=0)
    after = model.evaluate(x, verbose=0)[0]
    print({"before": before, "after_init": after_init, "after": after})
    assert after_init < before and after < after_init - 3.0
    samples = model.sample(6, seed=0).numpy()
    assert samples.shape == (6, 8, 8, 1)
    assert set(np.unique(samples)) <= set(range(17))
    # bits/dim of the discrete data: the bound's NLL / (64 ln 2)
    logs = model.evaluate(x, verbose=0, return_dict=True)
    assert abs(logs["bits_per_dim"] - logs["nll"] / (64 * np.log(2))) < 1e-4


def test_glow_options_and_errors(levels):
    model = models.build("glow", (8, 8, 1), num_scales=3, num_steps=1, hidden_channels=4,
                         dequantization="variational", dequantizer_hidden_units=(8,))
    assert isinstance(model.distribution.dequantizer, VariationalDequantizer)
    flow = model.distribution.distribution.bijector
    v = (levels[:4] + 0.5) / 17
    assert flow.inverse(v).shape == (4, 8, 8, 1)
    assert np.all(np.isfinite(model.log_prob(levels[:4]).numpy()))
    with pytest.raises(ValueError, match="divisible by 2\\*\\*num_scales"):
        models.build("glow", (6, 6, 1), num_scales=2, num_steps=1)
    with pytest.raises(ValueError, match="dequantization must be"):
        models.build("glow", (8, 8, 1), dequantization="gaussian")


def test_cli_loads_the_digits_as_levels_for_dequantizing_recipes():
    """`tfp-flows train --model glow` gets integer pixel values, and so do vector recipes
    (flattened; the CLI wraps them in a dequantization bound); pixelmaf, an image recipe
    of [0, 1] pixels, keeps the once-dequantized data; all split the same images the same
    way."""
    from tfp_flows import cli

    config = {"data": "digits", "model": "glow", "num_points": 0, "seed": 0}
    train, val, test = cli._load_data(config)
    assert train.shape[1:] == (8, 8, 1) and len(train) + len(val) + len(test) == 1797
    assert train.max() == 16 and np.all(train == np.round(train))
    flat = cli._load_data({**config, "model": "realnvp"})[0]
    np.testing.assert_array_equal(flat, train.reshape(len(train), 64))
    continuous = cli._load_data({**config, "model": "pixelmaf"})[0]
    assert continuous.shape[1:] == (8, 8, 1) and continuous.max() < 1.0
    np.testing.assert_array_equal(np.floor(continuous * 17), train)
