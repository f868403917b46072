import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from flow_checks import fit_two_moons, measure, perturb, two_moons_model  # noqa: E402

from tfp_flows.bijectors import Sylvester  # noqa: E402
from tfp_flows.bijectors.sylvester import bjorck_orthonormalize  # noqa: E402
from tfp_flows.testing import check_bijector  # noqa: E402

tfb, tfd = tfp.bijectors, tfp.distributions
KINDS = ["orthogonal", "householder", "triangular"]


@pytest.mark.parametrize("kind", KINDS)
def test_trainable_starts_at_identity(kind):
    bij = Sylvester.trainable(4, q_kind=kind, seed=0, dtype=tf.float64)
    x = tf.constant(np.random.default_rng(0).standard_normal((10, 4)))
    np.testing.assert_allclose(bij.forward(x), x, atol=1e-15)
    np.testing.assert_allclose(bij.forward_log_det_jacobian(x, event_ndims=1), 0, atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_q_has_orthonormal_columns(kind):
    bij = perturb(Sylvester.trainable(5, num_hidden=5 if kind == "triangular" else 3,
                                      q_kind=kind, seed=1, dtype=tf.float64), 1.0)
    q = bij.q()
    m = q.shape[-1]
    np.testing.assert_allclose(tf.matmul(q, q, transpose_a=True), np.eye(m), atol=1e-12)


@pytest.mark.parametrize("kind,dim,hidden", [("orthogonal", 2, 2), ("orthogonal", 5, 3),
                                             ("householder", 2, 2), ("householder", 5, 3),
                                             ("triangular", 2, 2), ("triangular", 4, 4)])
@pytest.mark.parametrize("scale", [1.5])
def test_log_det_and_inverse_random_parameters(kind, dim, hidden, scale):
    bij = Sylvester.trainable(dim, num_hidden=hidden, q_kind=kind, seed=3, dtype=tf.float64,
                              permute=True)
    perturb(bij, scale, seed=4)
    x = np.random.default_rng(5).standard_normal((64, dim)) * 2
    ldj_err, inv_err, ildj_err = measure(bij, x, 1)
    assert ldj_err < 1e-10 and inv_err < 1e-10 and ildj_err < 1e-10


@pytest.mark.parametrize("kind", KINDS)
def test_extreme_parameters(kind):
    # Diagonal products r_ii r̃_ii -> ±1 (tanh of ±6), large off-diagonals and biases.
    d = 3
    rng = np.random.default_rng(7)
    r = np.triu(rng.standard_normal((d, d)) * 10) + np.diag([6.0, -6.0, 6.0])
    r_tilde = np.triu(rng.standard_normal((d, d)) * 10) + np.diag([-6.0, 6.0, 6.0])
    q = {"orthogonal": rng.standard_normal((d, d)), "householder": rng.standard_normal((d, d)),
         "triangular": None}[kind]
    bij = Sylvester(r, r_tilde, rng.standard_normal(d) * 5, q, q_kind=kind)
    x = rng.standard_normal((100, d)) * 4
    ldj_err, inv_err, _ = measure(bij, x, 1)
    assert ldj_err < 1e-6 and inv_err < 1e-8


def test_float32():
    bij = perturb(Sylvester.trainable(3, q_kind="householder", seed=0), 1.0)
    x = tf.constant(np.random.default_rng(0).standard_normal((32, 3)), tf.float32)
    assert bij.forward(x).dtype == tf.float32
    ldj_err, inv_err, _ = measure(bij, x, 1)
    assert ldj_err < 1e-4 and inv_err < 1e-4


def test_bjorck_converges_from_ill_conditioned_start():
    v = np.array([[1.0, 0.0], [0.0, 1e-3], [0.0, 0.0]])
    q = bjorck_orthonormalize(v)
    np.testing.assert_allclose(tf.matmul(q, q, transpose_a=True), np.eye(2), atol=1e-12)


def test_bad_arguments_raise():
    z = np.zeros((2, 2))
    with pytest.raises(ValueError, match="q_kind"):
        Sylvester(z, z, np.zeros(2), q_kind="diagonal")
    with pytest.raises(ValueError, match="needs q_params"):
        Sylvester(z, z, np.zeros(2), q_kind="orthogonal")
    with pytest.raises(ValueError, match="num_hidden = event_size"):
        Sylvester.trainable(3, q_kind="triangular", num_hidden=2)
    with pytest.raises(ValueError, match="share M"):
        Sylvester(z, np.zeros((3, 3)), np.zeros(2), q_kind="triangular")


def test_batch_of_parameters_and_slicing():
    rng = np.random.default_rng(1)
    bij = Sylvester(rng.standard_normal((4, 2, 2)), rng.standard_normal((4, 2, 2)),
                    rng.standard_normal((4, 2)), rng.standard_normal((4, 3, 2)))
    assert bij.experimental_batch_shape() == [4]
    x = rng.standard_normal((5, 4, 3))
    y = bij.forward(x)
    np.testing.assert_allclose(bij[2].forward(x[:, 2]), y[:, 2], atol=1e-12)
    np.testing.assert_allclose(bij.inverse(tf.identity(y)), x, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_sample_and_log_prob_for_variational_inference(kind):
    bij = tfb.Chain([perturb(Sylvester.trainable(3, q_kind=kind, seed=i, dtype=tf.float64,
                                                 permute=bool(i % 2)), 0.8, seed=i)
                     for i in range(3)])
    q = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(3, tf.float64)), bij)
    x, lp = q.experimental_sample_and_log_prob(256, seed=[1, 2])
    assert x.shape == (256, 3) and lp.shape == (256,)
    # the same density through the inverse (root finding) path
    np.testing.assert_allclose(lp, q.log_prob(tf.identity(x)), atol=1e-9)


def test_check_bijector():
    rng = np.random.default_rng(2)
    r, rt = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    b, v = rng.standard_normal(3), rng.standard_normal((4, 3))

    def make(dtype):
        c = dtype.as_numpy_dtype
        return Sylvester(r.astype(c), rt.astype(c), b.astype(c), v.astype(c),
                         q_kind="orthogonal")

    check_bijector(make, rng.standard_normal((32, 4)), saved_model=False)


@pytest.mark.slow
def test_sylvester_flow_trains_and_stays_normalised():
    # one model with all three variants of Q
    bij = tfb.Chain([Sylvester.trainable(2, q_kind=kind, seed=i, permute=bool(i % 2))
                     for i, kind in enumerate(KINDS)])
    out = fit_two_moons(two_moons_model(bij), epochs=10)
    assert abs(out["grid_before"] - 1) < 0.01 and abs(out["grid_after"] - 1) < 0.01
    assert out["nll_after"] < out["nll_before"] - 0.2
