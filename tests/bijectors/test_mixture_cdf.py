"""CDF flows: MixtureCDF (R -> (0, 1)) at random and extreme parameters, its out-of-domain
inverse, the bisection round trip, and the elementwise density with a Uniform base."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from scipy import stats  # noqa: E402
from scipy.special import softmax  # noqa: E402

import tfp_flows.bijectors.mixture_cdf as mixture_cdf_module  # noqa: E402
from tfp_flows import FlowModel  # noqa: E402
from tfp_flows.bijectors import ClosedFormLogProbInvert, MixtureCDF, cdf_flow_distribution  # noqa: E402
from tfp_flows.testing import check_bijector, grid_integral  # noqa: E402

tfd, tfb = tfp.distributions, tfp.bijectors
RNG = np.random.default_rng(0)
X = RNG.standard_normal((16, 3))
Y = RNG.uniform(0.01, 0.99, (16, 3))


def _params(seed, k=4, loc_scale=1.0, log_scale_shift=0.0, logit_scale=1.0):
    r = np.random.default_rng(seed)
    return (logit_scale * r.standard_normal((3, k)), loc_scale * r.standard_normal((3, k)),
            log_scale_shift + 0.5 * r.standard_normal((3, k)))


def _factory(params, kind):
    return lambda dt: MixtureCDF(*(tf.constant(p, dt) for p in params), kind=kind)


def _scipy_cdf_pdf(x, params, kind):
    logits, locs, log_scales = params
    w, s = softmax(logits, axis=-1), np.exp(log_scales)
    dist = stats.norm if kind == "gaussian" else stats.logistic
    z = (x[..., None] - locs) / s
    return np.sum(w * dist.cdf(z), -1), np.sum(w * dist.pdf(z) / s, -1)


@pytest.mark.parametrize("kind, params", [
    ("gaussian", _params(1)),                                          # random
    ("logistic", _params(1)),
    ("logistic", _params(2, k=1)),                                     # one component
    ("gaussian", _params(3, logit_scale=8.0)),                         # near one-hot weights
    ("gaussian", _params(4, loc_scale=0.01, log_scale_shift=-5.0)),    # scales ~ 0.007
    ("logistic", _params(5, loc_scale=10.0, log_scale_shift=3.0)),     # scales ~ 20
])
def test_check_bijector_float32_float64(kind, params):
    """x are the float64 quantiles of y in (0.01, 0.99), so that F(x) is not within float32
    rounding of 0 or 1 (there no float32 CDF flow can invert: the error in x is the CDF's
    resolution, 6e-8, over the density). Measured largest |inverse(forward(x)) - x|:
    float64 1.6e-14, float32 2.3e-5 (both for scales ~ 20, |x| up to ~ 60); elsewhere
    float64 <= 1.8e-15, float32 <= 1.9e-6."""
    x = _factory(params, kind)(tf.float64).inverse(tf.constant(Y)).numpy()
    y = RNG.uniform(0.01, 0.99, (16, 3))
    report = check_bijector(_factory(params, kind), x, y=y,
                            saved_model=params[0].shape[-1] == 1)
    print(kind, report)
    scale = max(1.0, float(np.abs(x).max()))
    assert report.errors["float64"]["inverse(forward(x))"] < 1e-12 * scale
    assert report.errors["float64"]["forward(inverse(y))"] < 1e-12
    bij = _factory(params, kind)(tf.float64)
    cdf, pdf = _scipy_cdf_pdf(x, params, kind)
    np.testing.assert_allclose(bij.forward(x), cdf, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(bij.forward_log_det_jacobian(x, event_ndims=0), np.log(pdf),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["gaussian", "logistic"])
def test_inverse_round_trip_over_the_whole_unit_interval(kind):
    """y from 1e-300 to 1 - 1e-16 (float64), 1e-30 to 1 - 6e-8 (float32): forward(inverse(y))
    returns y to relative 1e-12 (float64) / 2e-6 (float32)."""
    bij64 = _factory(_params(6), kind)(tf.float64)
    y = np.concatenate([np.logspace(-300, -1, 60), 1 - np.logspace(-1, -16, 60)])
    y = np.repeat(y[:, None], 3, axis=1)
    x = bij64.inverse(tf.constant(y)).numpy()
    assert np.all(np.isfinite(x)) and np.all(np.diff(x, axis=0) > 0)
    back = bij64.forward(tf.identity(x)).numpy()
    rel = np.minimum(np.abs(back - y) / y, np.abs(back - y) / (1 - y))
    print(f"{kind} float64: max relative error of y (or 1 - y) {rel.max():.2e}")
    assert rel.max() < 1e-12
    bij32 = _factory(_params(6), kind)(tf.float32)
    y32 = np.concatenate([np.logspace(-30, -1, 30), 1 - np.logspace(-1, -7.2, 30)])
    y32 = np.repeat(y32[:, None], 3, axis=1).astype("float32")
    back32 = bij32.forward(tf.identity(bij32.inverse(tf.constant(y32)))).numpy()
    rel32 = np.minimum(np.abs(back32 - y32) / y32, np.abs(back32 - y32) / (1 - y32))
    print(f"{kind} float32: max relative error of y (or 1 - y) {rel32.max():.2e}")
    assert rel32.max() < 2e-6


def test_out_of_domain_inverse_inputs():
    bij = _factory(_params(7), "gaussian")(tf.float32)
    y = tf.constant([-0.1, 0.0, 1.0, 1.1, np.nan], tf.float32)[:, None] * tf.ones([1, 3])
    x = bij.inverse(y).numpy()
    assert np.all(x[0] == -np.inf) and np.all(x[3] == np.inf) and np.all(np.isnan(x[4]))
    assert np.all(np.isfinite(x[1:3])) and np.all(x[1] < -4) and np.all(x[2] > 4)
    ildj = bij.inverse_log_det_jacobian(y, event_ndims=0).numpy()
    assert np.all(ildj[[0, 3, 4]] == -np.inf) and np.all(np.isfinite(ildj[1:3]))
    # A density on (0, 1)^3 with this CDF as its forward map: -inf outside.
    dist = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(3)), bij)
    lp = dist.log_prob(tf.constant([[0.2, 0.5, 0.7], [0.2, 1.5, 0.7], [-0.2, 0.5, 0.7]]))
    assert np.isfinite(lp[0]) and lp[1] == -np.inf and lp[2] == -np.inf
    checked = MixtureCDF(*_params(7), kind="gaussian", validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must lie in \[0, 1\]"):
        checked.inverse(tf.constant([[0.5, 1.5, 0.5]], tf.float64))
    checked.inverse(tf.constant([[0.0, 1.0, 0.5]], tf.float64))  # end points are allowed


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        MixtureCDF(tf.zeros([2]), tf.zeros([2]), tf.zeros([2]), kind="laplace")
    with pytest.raises(ValueError, match="same number of components"):
        MixtureCDF(tf.zeros([2]), tf.zeros([3]), tf.zeros([2]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="`locs` must be finite"):
        MixtureCDF([0.0, 0.0], [0.0, np.nan], [0.0, 0.0], validate_args=True)


def test_trainable_parameters_and_batch_shape():
    bij = MixtureCDF.trainable(3, num_components=5, kind="logistic", seed=0)
    assert bij.kind == "logistic" and len(bij.trainable_variables) == 3
    assert bij.experimental_batch_shape(x_event_ndims=0) == [3]
    assert bij.experimental_batch_shape(x_event_ndims=1) == []
    assert bij._is_increasing()
    assert bij[1:].forward(tf.zeros([4, 2])).shape == [4, 2]


def test_log_prob_of_the_cdf_flow_is_closed_form_and_never_bisects(monkeypatch):
    """log p(x) = sum_i log f_i(x_i), the same as a plain tfb.Invert, without the inverse."""
    bij = MixtureCDF(*_params(8), kind="gaussian")
    plain = tfd.TransformedDistribution(
        tfd.Independent(tfd.Uniform(tf.zeros(3, tf.float64), tf.ones(3, tf.float64)), 1),
        tfb.Invert(bij)).log_prob(X)

    def refuse(*args, **kwargs):
        raise AssertionError("log_prob ran the bisection")

    monkeypatch.setattr(mixture_cdf_module, "solve_logit_cdf", refuse)
    dist = cdf_flow_distribution(bij, 3, tf.float64)
    assert isinstance(dist.bijector, ClosedFormLogProbInvert)
    lp = dist.log_prob(X)
    _, pdf = _scipy_cdf_pdf(X, _params(8), "gaussian")
    np.testing.assert_allclose(lp, np.log(pdf).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(lp, plain, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gaussian", "logistic"])
def test_elementwise_cdf_flow_density_on_two_moons(kind, moons):
    """Uniform(0, 1)^2 base, one 5-component mixture CDF per coordinate, 10 epochs.

    Measured test NLL (seed 0): gaussian 3.08 -> 2.54, logistic 3.06 -> 2.54 nats (an
    independent-coordinates model cannot do much better: the product of the two-moons
    marginals); grid integral 0.99970-1.00000 before, 1.00000 after. Thresholds: NLL < 2.65,
    |integral - 1| < 0.01.
    """
    keras.utils.set_random_seed(0)
    model = FlowModel(cdf_flow_distribution(MixtureCDF.trainable(2, kind=kind, seed=0), 2))
    assert abs(grid_integral(model.log_prob) - 1.0) < 0.01
    model.compile(optimizer=keras.optimizers.Adam(3e-2))
    before = model.evaluate(moons[2], verbose=0)[0]
    model.fit(moons[0], epochs=10, batch_size=256, verbose=0)
    after = model.evaluate(moons[2], verbose=0)[0]
    integral = grid_integral(model.log_prob)
    print(f"{kind}: test NLL {before:.3f} -> {after:.3f}; integral {integral:.6f}")
    assert after < 2.65 and after < before - 0.3
    assert abs(integral - 1.0) < 0.01
    samples = model.sample(2000, seed=1).numpy()
    assert np.all(np.isfinite(samples))
    # Marginal means and spreads of the samples match the (standardised) data's.
    np.testing.assert_allclose(samples.mean(0), moons[0].mean(0), atol=0.1)
    np.testing.assert_allclose(samples.std(0), moons[0].std(0), atol=0.1)
