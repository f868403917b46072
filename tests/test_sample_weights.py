"""FlowModel with sample_weight: a weighted fit is a fit on repeated rows; bad weights refused."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_flows
from tfp_flows import models


def _maf(context_size=None):
    return models.build("maf", 2, num_layers=2, hidden_units=(8,), seed=0,
                        context_size=context_size)


def _fit_full_batch(model, *data, sample_weight=None, epochs=5):
    """SGD on the whole data set per step: the step is the gradient of the (weighted) mean."""
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    rows = len(data[-1])
    history = model.fit(*data, sample_weight=sample_weight, epochs=epochs, batch_size=rows,
                        shuffle=False, verbose=0)
    return history.history["loss"], [v.numpy() for v in model.trainable_variables]


def _assert_same_fit(a, b):
    (losses_a, weights_a), (losses_b, weights_b) = a, b
    np.testing.assert_allclose(losses_a, losses_b, rtol=1e-5)
    for wa, wb in zip(weights_a, weights_b, strict=True):
        np.testing.assert_allclose(wa, wb, atol=2e-6)


def test_integer_weights_fit_like_repeated_rows(moons):
    """Measured: losses agree to 1.7e-7 relative, weights to 2.4e-7; the fit with weight 0 on
    half the rows ends up to 1.2e-2 away from the unweighted fit (it was bit-identical when
    the weights were dropped)."""
    x = moons[0][:300]
    w = np.random.default_rng(0).integers(0, 4, len(x)).astype(np.float32)
    weighted = _fit_full_batch(_maf(), x, sample_weight=w)
    repeated = _fit_full_batch(_maf(), np.repeat(x, w.astype(int), axis=0))
    _assert_same_fit(weighted, repeated)

    half = (np.arange(len(x)) < len(x) // 2).astype(np.float32)
    half_weighted = _fit_full_batch(_maf(), x, sample_weight=half)
    _assert_same_fit(half_weighted, _fit_full_batch(_maf(), x[: len(x) // 2]))
    unweighted = _fit_full_batch(_maf(), x)
    assert max(np.abs(a - b).max()
               for a, b in zip(unweighted[1], half_weighted[1], strict=True)) > 1e-3


def test_conditional_weights_fit_like_repeated_rows(moons):
    x = moons[0][:200]
    context = x[:, :1] ** 2
    w = np.random.default_rng(1).integers(0, 3, len(x)).astype(np.float32)
    repeat = w.astype(int)
    weighted = _fit_full_batch(_maf(1), context, x, sample_weight=w)
    repeated = _fit_full_batch(_maf(1), np.repeat(context, repeat, 0), np.repeat(x, repeat, 0))
    _assert_same_fit(weighted, repeated)


def test_weighted_evaluate_validation_and_datasets_are_exact_weighted_means(moons):
    x, val = moons[0][:500], moons[1][:300]
    w = np.random.default_rng(2).uniform(0, 2, len(x)).astype(np.float32)
    w_val = np.random.default_rng(3).uniform(0, 2, len(val)).astype(np.float32)
    model = _maf()
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # the weights stay where they are

    def exact(data, weights):
        return -float(np.sum(weights * model.log_prob(data)) / np.sum(weights))

    assert model.evaluate(x, sample_weight=w, batch_size=64, verbose=0)[0] == \
        pytest.approx(exact(x, w), abs=2e-6)
    history = model.fit(x, sample_weight=w, epochs=1, batch_size=64, verbose=0,
                        validation_data=(val, None, w_val)).history
    assert history["loss"][0] == pytest.approx(exact(x, w), abs=2e-6)
    assert history["val_loss"][0] == pytest.approx(exact(val, w_val), abs=2e-6)
    pairs = tf.data.Dataset.from_tensor_slices((x, w)).batch(64)
    assert model.evaluate(pairs, verbose=0)[0] == pytest.approx(exact(x, w), abs=2e-6)

    conditional = _maf(1)
    conditional.compile()
    context = x[:, :1]
    lp = conditional.log_prob(x, context).numpy()
    assert conditional.evaluate(context, x, sample_weight=w, batch_size=64, verbose=0)[0] == \
        pytest.approx(-np.sum(w * lp) / np.sum(w), abs=2e-6)
    triples = tf.data.Dataset.from_tensor_slices((context, x, w)).batch(64)
    assert conditional.evaluate(triples, verbose=0)[0] == \
        pytest.approx(-np.sum(w * lp) / np.sum(w), abs=2e-6)


@pytest.mark.parametrize("weights, message", [
    (lambda n: np.where(np.arange(n) == 3, np.nan, 1.0), r"NaN or Inf values in rows \[3\]"),
    (lambda n: np.where(np.arange(n) % 50 == 7, -1.0, 1.0), r"negative values in rows \[7, 57"),
    (lambda n: np.array(["a"] * n), "non-numeric"),
    (lambda n: np.ones(n - 1), r"shape \[99\], but x has 100 rows"),
    (lambda n: np.zeros(n), "every sample_weight is 0"),
])
def test_bad_weights_are_refused_before_anything_runs(moons, weights, message):
    model = _maf()
    model.compile()
    x = moons[0][:100]
    for call in (model.fit, model.evaluate):
        with pytest.raises(tfp_flows.FlowDataError, match=message):
            call(x, sample_weight=weights(len(x)), verbose=0)
    conditional = _maf(1)
    conditional.compile()
    with pytest.raises(tfp_flows.FlowDataError, match=message):
        conditional.fit(x[:, :1], x, sample_weight=weights(len(x)), verbose=0)
    assert model.optimizer.iterations.numpy() == 0


def test_class_weight_and_weights_with_a_dataset_are_refused_clearly(moons):
    model = _maf()
    model.compile()
    x = moons[0][:64]
    with pytest.raises(ValueError, match="no classes"):
        model.fit(x, class_weight={0: 1.0}, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(32)
    with pytest.raises(ValueError, match=r"yields the weights itself, as \(x, w\)"):
        model.fit(ds, sample_weight=np.ones(64), verbose=0)
    bad = tf.data.Dataset.from_tensor_slices((x, x)).batch(32)
    with pytest.raises(tfp_flows.FlowDataError, match="must be the sample weights"):
        model.fit(bad, verbose=0)
