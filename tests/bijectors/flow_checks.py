"""Test helpers shared by the Planar, Sylvester, Glow and NICE bijector tests.

* `measure(bij, x, event_ndims)`: the largest |fldj - log|det J_autodiff||, the largest
  |inverse(forward(x)) - x| and |ildj(y) + fldj(x)|. TFP caches forward/inverse pairs, so
  the inverse is fed a fresh copy of y (tf.identity) to run the real inverse.
* `perturb(bij, scale, seed)`: move every trainable variable by scale * N(0, 1).
* `fit_two_moons(bijector, ...)`: a FlowModel with an N(0, I) base, its NLL and grid
  integral before and after a short fit() on two moons.
* `check_in_chain_with_tfp_flows(bijector, export_dir)`: the bijector between TFP's RealNVP
  and MAF in a FlowModel: normalised before and after fit(), NLL falls, samples, exports.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_flows
from tfp_flows.datasets import two_moons
from tfp_flows.testing import grid_integral

tfd = tfp.distributions


def autodiff_log_det(bij, x, event_ndims):
    """log|det ∂forward/∂x| per example via the batch Jacobian (flattened events)."""
    x = tf.convert_to_tensor(x)
    batch = x.shape[:x.shape.rank - event_ndims]
    flat = tf.reshape(x, [-1, int(np.prod(x.shape[len(batch):]))])
    with tf.GradientTape() as tape:
        tape.watch(flat)
        y = bij.forward(tf.reshape(flat, x.shape))
        y_flat = tf.reshape(y, [tf.shape(flat)[0], -1])
    jac = tape.batch_jacobian(y_flat, flat)
    _, logdet = tf.linalg.slogdet(jac)
    return tf.reshape(logdet, batch), y


def measure(bij, x, event_ndims):
    """(log-det error, round-trip error, ildj error), each a max abs error over the batch."""
    x = tf.convert_to_tensor(x)
    logdet, y = autodiff_log_det(bij, x, event_ndims)
    fldj = bij.forward_log_det_jacobian(tf.identity(x), event_ndims=event_ndims)
    x_back = bij.inverse(tf.identity(y))
    ildj = bij.inverse_log_det_jacobian(tf.identity(y), event_ndims=event_ndims)
    for t in (y, fldj, x_back, ildj):
        assert np.all(np.isfinite(t.numpy())), f"non-finite output {t}"
    return (float(tf.reduce_max(tf.abs(fldj - logdet))),
            float(tf.reduce_max(tf.abs(x_back - x))),
            float(tf.reduce_max(tf.abs(ildj + fldj))))


def perturb(bij, scale, seed=0):
    rng = np.random.default_rng(seed)
    for v in bij.trainable_variables:
        v.assign(v + scale * rng.standard_normal(v.shape.as_list()).astype(
            v.dtype.as_numpy_dtype))
    return bij


def two_moons_model(bijector):
    base = tfd.MultivariateNormalDiag(tf.zeros(2, bijector.dtype or tf.float32))
    return tfp_flows.FlowModel(tfd.TransformedDistribution(base, bijector))


def fit_two_moons(model, *, n=1000, epochs=10, batch_size=100, lr=2e-2, before=None):
    """Fit on two moons; returns dict of nll/grid before and after, and the history.

    `before(model, x)` runs after the 'before' measurements (e.g. data-dependent init).
    """
    x = two_moons(n, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(lr), jit_compile=False)
    out = {"grid_before": grid_integral(model.log_prob, num=201),
           "nll_before": -float(tf.reduce_mean(model.log_prob(x)))}
    if before is not None:
        before(model, x)
        out["nll_after_init"] = -float(tf.reduce_mean(model.log_prob(x)))
    out["history"] = model.fit(x, epochs=epochs, batch_size=batch_size, verbose=0).history
    out["nll_after"] = -float(tf.reduce_mean(model.log_prob(x)))
    out["grid_after"] = grid_integral(model.log_prob, num=201)
    print({k: v for k, v in out.items() if k != "history"})
    return out


def realnvp_bijector_maf_model(bijector):
    """FlowModel for 2-D data: N(0, I) -> RealNVP -> `bijector` -> MAF (small conditioners)."""
    from tfp_flows import nets

    tfb = tfp.bijectors
    chain = tfb.Chain([
        tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=nets.CouplingMLP(hidden_units=(8,))),
        bijector,
        tfb.MaskedAutoregressiveFlow(nets.MADE(2, params=2, hidden_units=(8,)))])
    return tfp_flows.FlowModel(
        tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)), chain))


def check_in_chain_with_tfp_flows(bijector, export_dir=None):
    """`bijector` between TFP's RealNVP and MAF in a FlowModel, on two moons:

    the density integrates to 1 +- 0.01 on a grid before and after 3 epochs of fit(), the
    NLL falls by more than 0.05, samples are finite and, given `export_dir`, the exported
    SavedModel's log_prob matches the live model. Returns the trained model.
    """
    model = realnvp_bijector_maf_model(bijector)
    integral0 = grid_integral(model.log_prob)
    assert abs(integral0 - 1.0) < 0.01
    x = two_moons(1000, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-2))
    nll0 = float(-tf.reduce_mean(model.log_prob(x)))
    model.fit(x, epochs=3, batch_size=250, verbose=0)
    nll1 = float(-tf.reduce_mean(model.log_prob(x)))
    assert nll1 < nll0 - 0.05
    integral1 = grid_integral(model.log_prob)
    assert abs(integral1 - 1.0) < 0.01
    print(f"integral {integral0:.6f} -> {integral1:.6f}, NLL {nll0:.4f} -> {nll1:.4f}")
    assert np.all(np.isfinite(model.sample(64, seed=1)))
    if export_dir is not None:
        loaded = tf.saved_model.load(model.export(str(export_dir)))
        lp = loaded.signatures["log_prob"](x=tf.constant(x[:32]))["log_prob"]
        np.testing.assert_allclose(lp, model.log_prob(x[:32]), rtol=1e-5, atol=1e-5)
    return model
