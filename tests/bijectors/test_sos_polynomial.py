"""SOS polynomial flow: closed form vs quadrature, root-finder inverse, SOS MAF, FlowModel."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from flow_checks import check_in_chain_with_tfp_flows  # noqa: E402

from tfp_flows.bijectors import SOSAutoregressive, SOSPolynomial, sos_maf  # noqa: E402
from tfp_flows.testing import check_bijector  # noqa: E402

tfd, tfb = tfp.distributions, tfp.bijectors
RNG = np.random.default_rng(0)
X = RNG.standard_normal((16, 2)) * 2.0
A = RNG.standard_normal((2, 3, 3))  # [d, K, r+1]


def _sos(a, c):
    return lambda dt: SOSPolynomial(tf.constant(a, dt), tf.constant(c, dt))


@pytest.mark.parametrize("scale, x_scale", [(1.0, 1.0), (10.0, 30.0), (1e-2, 1.0)])
def test_check_bijector_float32_float64(scale, x_scale):
    report = check_bijector(_sos(A * scale, [0.3, -1.0]), X * x_scale, rtol=1e-3, atol=1e-3,
                            saved_model=False)
    assert report.errors["float64"]["inverse(forward(x))"] < 1e-9 * x_scale


def test_check_bijector_default_tolerances_with_saved_model():
    report = check_bijector(_sos(A, [0.3, -1.0]), X)
    assert report.errors["float64"]["saved_model"] == 0.0


def test_closed_form_matches_quadrature_of_the_integrand():
    a = RNG.standard_normal((4, 3))  # K = 4, r = 2: degree-5 polynomial
    c = 0.7
    b = SOSPolynomial(a, c)
    z = np.linspace(-3.0, 3.0, 13)
    nodes, weights = np.polynomial.legendre.leggauss(50)  # Gauss-Legendre on [0, z]
    u = 0.5 * z[:, None] * (nodes[None, :] + 1.0)
    integrand = sum(np.polyval(a[k, ::-1], u) ** 2 for k in range(a.shape[0]))
    quadrature = c + 0.5 * z * (integrand * weights).sum(axis=1)
    closed = b.forward(z).numpy()
    err = np.max(np.abs(closed - quadrature))
    assert err < 1e-10 * np.max(np.abs(quadrature))
    # The log-det is log of the integrand.
    integrand_z = sum(np.polyval(a[k, ::-1], z) ** 2 for k in range(a.shape[0]))
    np.testing.assert_allclose(b.forward_log_det_jacobian(z, event_ndims=0),
                               np.log(integrand_z), rtol=1e-12)


def test_inverse_converges_far_out_and_has_implicit_gradient():
    b = SOSPolynomial(A, [0.3, -1.0])
    y = tf.constant([[1e6, -1e6], [1e-8, 3.0]], tf.float64)
    x = b.inverse(y)
    np.testing.assert_allclose(b.forward(tf.identity(x)), y, rtol=1e-12, atol=1e-15)
    with tf.GradientTape() as tape:
        tape.watch(y)
        x = b.inverse(tf.identity(y))
    dx_dy = tape.gradient(x, y)
    np.testing.assert_allclose(dx_dy, np.exp(-b.forward_log_det_jacobian(x, 0)), rtol=1e-10)


def test_trainable_near_identity_batch_shapes_validation():
    b = SOSPolynomial.trainable(3, seed=0, dtype=tf.float64, num_polynomials=2,
                                polynomial_degree=3)
    assert [v.shape.as_list() for v in b.trainable_variables] == [[3, 2, 4], [3]]
    x = np.random.default_rng(5).uniform(-1.0, 1.0, (4, 3))
    np.testing.assert_allclose(b.forward(x), x, atol=0.05)  # near T(z) = z
    assert b.experimental_batch_shape() == [3]
    assert b[1:].experimental_batch_shape() == [2]
    assert SOSPolynomial(tf.ones([5, 1, 2, 3]), tf.zeros([4])).experimental_batch_shape() == [5, 4]
    assert b._is_increasing()
    with pytest.raises(tf.errors.InvalidArgumentError, match="all coefficients"):
        SOSPolynomial(tf.zeros([2, 2, 3]), validate_args=True)


def test_sos_maf_density_direction_is_closed_form_and_sampling_inverts_it():
    maf = sos_maf(2, hidden_units=(8,), dtype=tf.float64, seed=0)
    assert isinstance(maf, SOSAutoregressive)
    for w in maf.made.trainable_weights:
        w.assign(w + 0.3 * RNG.standard_normal(w.shape))
    # Density direction: inverse(x) = T(x; params(x)), the polynomial (no root finder).
    x = tf.constant(X)
    z = maf.inverse(x)
    out = maf.made(x)
    coeffs = tf.reshape(out[..., 1:], [16, 2, 3, 3]) + tf.constant([1 / np.sqrt(3), 0, 0],
                                                                    tf.float64)
    t = SOSPolynomial(coeffs, out[..., 0])
    np.testing.assert_allclose(z, t.forward(x), rtol=1e-12)
    np.testing.assert_allclose(maf.inverse_log_det_jacobian(x, event_ndims=1),
                               tf.reduce_sum(t.forward_log_det_jacobian(x, 0), -1), rtol=1e-12)
    # Sampling: forward (root finder, d passes) inverts the density direction.
    z = RNG.standard_normal((64, 2))
    x_s = maf.forward(z)
    np.testing.assert_allclose(maf.inverse(tf.identity(x_s)), z, atol=1e-9)
    np.testing.assert_allclose(maf.forward_log_det_jacobian(tf.identity(z), event_ndims=1),
                               -maf.inverse_log_det_jacobian(tf.identity(x_s), event_ndims=1),
                               rtol=1e-9)



@pytest.mark.slow
@pytest.mark.parametrize("kind", ["elementwise", "autoregressive"])
def test_in_flow_model_integrates_trains_samples_exports(kind, tmp_path):
    if kind == "elementwise":  # Invert: the density direction is the closed-form T
        bijector = tfb.Invert(SOSPolynomial.trainable(2, seed=0))
    else:
        bijector = SOSAutoregressive.trainable(2, seed=0, hidden_units=(8,))
    # The export of a chain with root finders is checked once, for the autoregressive kind.
    check_in_chain_with_tfp_flows(bijector, tmp_path / "1" if kind != "elementwise" else None)


def test_sos_maf_samples_and_evaluates_under_xla():
    maf = sos_maf(2, hidden_units=(8,), seed=0)
    for w in maf.made.trainable_weights:
        w.assign(w + 0.3 * RNG.standard_normal(w.shape).astype("float32"))
    z = tf.constant(RNG.standard_normal((32, 2)), tf.float32)
    x = tf.function(maf.forward, jit_compile=True)(z)  # root finder in a compiled loop
    z_back = tf.function(maf.inverse, jit_compile=True)(tf.identity(x))
    np.testing.assert_allclose(z_back, z, atol=1e-4)
