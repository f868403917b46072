"""FastSamplingMAF: the blockwise forward equals TFP's while_loop forward; density unchanged."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import tfp_flows  # noqa: E402
from tfp_flows import nets  # noqa: E402
from tfp_flows.bijectors import FastSamplingMAF  # noqa: E402
from tfp_flows.bijectors import fast_sampling_maf as module  # noqa: E402
from tfp_flows.testing import check_bijector, grid_integral  # noqa: E402

tfd, tfb = tfp.distributions, tfp.bijectors
RNG = np.random.default_rng(0)


def _made(size, hidden, dtype="float32", scale=0.3, **kwargs):
    made = nets.MADE(size, params=2, hidden_units=hidden, zero_init_output=False, dtype=dtype,
                     **kwargs)
    context = kwargs.get("context_size")
    made(np.zeros((1, size), dtype), None if context is None else np.zeros((1, context), dtype))
    rng = np.random.default_rng(size)
    for v in made.weights:
        v.assign(scale * rng.standard_normal(v.shape).astype(dtype))
    return made


@pytest.mark.parametrize("size, hidden, bound, dtype", [
    (1, [8], "auto", "float32"),          # the first dimension alone: output bias only
    (2, [16, 16], None, "float32"),
    (5, [7, 9, 6], "auto", "float64"),    # three hidden layers, widths not multiples of D
    (13, [32, 32], "auto", "float32"),    # 8 blocks of unequal length (1 or 2 dimensions)
    (20, [40], None, "float64"),          # one hidden layer, blocks of 2-3 dimensions
])
def test_forward_equals_tfp_while_loop(size, hidden, bound, dtype):
    made = _made(size, hidden, dtype, log_scale_bound=bound)
    x = tf.constant(RNG.standard_normal((4, 3, size)).astype(dtype))
    ref = tfb.MaskedAutoregressiveFlow(made).forward(x).numpy()
    fast = FastSamplingMAF(made)
    eager = fast.forward(tf.identity(x)).numpy()
    xla = tf.function(lambda t: fast.forward(t), jit_compile=True)(tf.identity(x)).numpy()
    single = fast.forward(tf.identity(x[1, 2])).numpy()  # an unbatched event
    tol = 1e-5 if dtype == "float32" else 1e-12
    # measured: <= 6e-7 (float32), <= 3e-12 relative... here absolute <= 1e-6 / 1e-13
    for got in (eager, xla):
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(single, ref[1, 2], rtol=tol, atol=tol)
    assert eager.dtype == np.dtype(dtype)


def test_fast_path_is_taken_and_fallbacks():
    calls = []
    original = module._blockwise_made_forward

    def spy(made, x):
        calls.append(made.name)
        return original(made, x)

    module._blockwise_made_forward = spy
    try:
        x = tf.constant(RNG.standard_normal((5, 4)).astype("float32"))
        FastSamplingMAF(_made(4, [8])).forward(x)
        assert len(calls) == 1
        for made in (_made(4, [8], input_order="right-to-left"),
                     _made(4, [8], input_order=[2, 1, 4, 3])):
            ref = tfb.MaskedAutoregressiveFlow(made).forward(x).numpy()
            np.testing.assert_allclose(FastSamplingMAF(made).forward(tf.identity(x)).numpy(),
                                       ref, rtol=1e-6, atol=1e-6)
        cond = _made(4, [8], context_size=3)
        c = tf.constant(RNG.standard_normal((5, 3)).astype("float32"))
        ref = tfb.MaskedAutoregressiveFlow(cond).forward(x, conditional_input=c).numpy()
        got = FastSamplingMAF(cond).forward(tf.identity(x), conditional_input=c).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
        assert len(calls) == 1  # no fast path for other orders or with a context
    finally:
        module._blockwise_made_forward = original


def test_check_bijector_and_trainable():
    x = RNG.standard_normal((16, 6))
    report = check_bijector(FastSamplingMAF(_made(6, [24, 24], "float64")), x)
    assert report.errors["float64"]["inverse(forward(x))"] < 1e-10
    fresh = FastSamplingMAF.trainable(3, hidden_units=[8])
    y = fresh.forward(tf.ones([2, 3]))  # builds its MADE, then the identity (zero output)
    np.testing.assert_array_equal(y.numpy(), np.ones([2, 3], "float32"))
    assert fresh.forward(tf.ones([2, 3]) * 2.0).shape == (2, 3)


def test_flow_model_density_and_samples_match_tfp_maf():
    """The same MADEs in TFP's MAF and in FastSamplingMAF: identical log_prob (the density
    path is TFP's), samples equal to float rounding, the 2-D density integrates to 1."""
    mades = [_made(2, [16, 16], scale=0.25) for _ in range(3)]

    def flow(cls):
        layers = []
        for m in mades:
            layers += [cls(m), tfb.Permute([1, 0])]
        return tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [2]),
                                           tfb.Chain(layers[:-1][::-1]))

    ours = tfp_flows.FlowModel(flow(FastSamplingMAF))
    tfps = tfp_flows.FlowModel(flow(tfb.MaskedAutoregressiveFlow))
    x = RNG.standard_normal((64, 2)).astype("float32")
    np.testing.assert_array_equal(ours.log_prob(x).numpy(), tfps.log_prob(x).numpy())
    a = ours.sample(500, seed=3).numpy()
    b = tfps.sample(500, seed=3).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    integral = grid_integral(ours.log_prob, low=-8.0, high=8.0, num=241)
    assert abs(integral - 1.0) < 0.01, integral  # measured: 1.0000


def test_zoo_maf_and_iaf_layers_are_fast_sampling_mafs_on_the_fast_path():
    """The zoo's maf (sampling) and iaf (density) run the blockwise forward; its values
    equal TFP's while_loop forward on the same trained-looking weights."""
    from tfp_flows import models

    x = RNG.normal(size=(6, 5)).astype("float32")
    for name in ("maf", "iaf"):
        model = models.build(name, 5, num_layers=2, hidden_units=(16, 16), seed=0)
        model.log_prob(x)  # builds the MADEs
        layers = [b for b in model.distribution.bijector.bijectors
                  if isinstance(getattr(b, "bijector", b), FastSamplingMAF)]
        assert len(layers) == 2, name
        for layer in layers:
            maf = getattr(layer, "bijector", layer)
            made = maf._shift_and_log_scale_fn
            rng = np.random.default_rng(1)
            for v in made.weights:
                v.assign(0.3 * rng.standard_normal(v.shape).astype("float32"))
            assert maf._fast_path_made(tf.constant(x), {}) is made
            np.testing.assert_allclose(maf.forward(x),
                                       tfb.MaskedAutoregressiveFlow(made).forward(x),
                                       rtol=1e-5, atol=1e-5)
