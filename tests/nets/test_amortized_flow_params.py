"""nets.AmortizedFlowParameters: batched free parameters, constrained by the bijectors' code."""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfp_flows.bijectors.amortized_flow import AmortizedFlow, radial_alpha_constraint  # noqa: E402
from tfp_flows.bijectors.planar import planar_u_hat  # noqa: E402
from tfp_flows.bijectors.sylvester import upper_with_tanh_diagonal  # noqa: E402
from tfp_flows.nets.amortized_flow_params import (  # noqa: E402
    FLOW_KINDS,
    AmortizedFlowParameters,
    fill_upper_triangle,
)
from tfp_flows.testing import check_bijector  # noqa: E402

D, C, B = 3, 5, 256


def randomised(kind, scale=3.0, dtype="float64", num_layers=3, **kwargs):
    """A parameter network with large random weights: arbitrary, far-from-identity outputs."""
    net = AmortizedFlowParameters(kind, D, num_layers, C, hidden_units=(16,), dtype=dtype, seed=0,
                                  **kwargs)
    net.build((None, C))
    rng = np.random.default_rng(1)
    for w in net.weights:  # kernels scaled by 1/sqrt(fan-in): outputs of order `scale`
        fan_in = w.shape[0] if len(w.shape) == 2 else 1
        w.assign(scale * rng.standard_normal(w.shape) / np.sqrt(fan_in))
    return net


def contexts(n=B, seed=2):
    return np.random.default_rng(seed).standard_normal((n, C)) * 2.0


def test_fill_upper_triangle_round_trip():
    v = np.arange(1.0, 7.0)
    m = fill_upper_triangle(tf.constant(v), 3).numpy()
    np.testing.assert_array_equal(m[np.triu_indices(3)], v)
    assert np.all(m[np.tril_indices(3, -1)] == 0)


@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_fresh_network_is_the_identity_for_every_context(kind):
    net = AmortizedFlowParameters(kind, D, 3, C, location_scale=True, dtype="float64", seed=0)
    flow = AmortizedFlow(net).flow(contexts(8))
    z = np.random.default_rng(0).standard_normal((8, D))
    np.testing.assert_allclose(flow.forward(z), z, atol=1e-12)
    np.testing.assert_allclose(flow.forward_log_det_jacobian(z, event_ndims=1), 0, atol=1e-12)


def test_planar_constraint_holds_for_random_outputs():
    net = randomised("planar")
    chain = AmortizedFlow(net).flow(contexts())
    z = np.random.default_rng(4).standard_normal((B, D)) * 3
    all_dots = []
    for bij, p in zip(reversed(chain.bijectors), net(contexts())["layers"], strict=True):
        assert p["w"].shape == (B, D) and p["b"].shape == (B,)
        w_dot_u_hat = tf.reduce_sum(p["w"] * planar_u_hat(p["u"], p["w"]), -1).numpy()
        w_dot_u = tf.reduce_sum(p["w"] * p["u"], -1).numpy()
        # measured: w.u spans about -1263 .. 4336 over these rows; w.û = m(w.u) =
        # softplus(w.u) - 1 >= -1 analytically, and its rounded dot product is >= -1 - 2.1e-13
        all_dots.append(w_dot_u)
        assert np.all(tf.math.softplus(w_dot_u).numpy() - 1.0 >= -1.0)
        assert w_dot_u_hat.min() >= -1.0 - 1e-12
        assert np.all(np.isfinite(bij.forward_log_det_jacobian(z, event_ndims=1)))
    assert np.min(all_dots) < -500 and np.max(all_dots) > 500  # far from the identity


def test_radial_constraint_holds_for_random_outputs():
    for p in randomised("radial")(contexts())["layers"]:
        alpha = radial_alpha_constraint(tf.float64).forward(p["alpha_free"]).numpy()
        beta = (tf.math.softplus(p["beta_free"]) - alpha).numpy()
        assert alpha.shape == (B,) and alpha.min() > 0
        assert np.all(beta >= -alpha)


@pytest.mark.parametrize("kind", ["sylvester-orthogonal", "sylvester-householder"])
def test_sylvester_constraints_hold_for_random_outputs(kind):
    net = randomised(kind)
    chain = AmortizedFlow(net).flow(contexts())
    for bij, p in zip(reversed(chain.bijectors), net(contexts())["layers"], strict=True):
        r, rt = upper_with_tanh_diagonal(p["r"]), upper_with_tanh_diagonal(p["r_tilde"])
        prod = (tf.linalg.diag_part(r) * tf.linalg.diag_part(rt)).numpy()
        # invertibility (seed 002, Theorem 2): r_ii r̃_ii >= -1/max h' = -1; the raw outputs
        # here are large, so tanh saturates and some products are -1 to rounding (measured)
        assert prod.shape == (B, D) and prod.min() >= -1.0 and prod.min() < -0.99
        z = np.random.default_rng(5).standard_normal((B, D))
        assert np.all(np.isfinite(bij.forward_log_det_jacobian(z, event_ndims=1)))
        q = bij.q().numpy()
        assert q.shape == (B, D, D)
        gram_err = np.abs(np.einsum("bij,bik->bjk", q, q) - np.eye(D)).max()
        assert gram_err < 1e-10  # measured: ~1e-15 (householder), ~3e-14 (orthogonal)


@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_per_context_flows_pass_check_bijector(kind):
    """Each context row gets its own flow: the batched chain is a correct bijector."""
    net = randomised(kind, scale=0.7, num_layers=2)
    c = contexts(6)
    x = np.random.default_rng(3).standard_normal((6, D))
    report = check_bijector(AmortizedFlow(net).flow(c), x, dtypes=[tf.float64],
                            saved_model=False, rtol=1e-7, atol=1e-7)
    errors = report.errors["float64"]
    assert errors["inverse(forward(x))"] < 1e-7 and errors["forward_log_det_jacobian"] < 1e-7


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="flow_kind must be one of"):
        AmortizedFlowParameters("affine", D, 2, C)
    with pytest.raises(ValueError, match="needs location_scale=True"):
        AmortizedFlowParameters(None, D, 0, C)
    with pytest.raises(ValueError, match="num_hidden = event_size"):
        AmortizedFlowParameters("sylvester-triangular", D, 2, C, num_hidden=2)
    net = AmortizedFlowParameters("planar", D, 2, C)
    with pytest.raises(ValueError, match="context_size=5"):
        net(tf.zeros([4, 3]))
