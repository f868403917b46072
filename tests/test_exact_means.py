"""loss, nll, val_loss and evaluate() are means over examples, whatever the batch size."""

import keras
import numpy as np
import pytest

import tfp_flows
from tfp_flows import models


@pytest.mark.parametrize("jit_compile", [False, True])
def test_reported_nll_is_the_mean_over_examples_at_any_batch_size(moons, jit_compile):
    """1000 rows in batches of 32 (a last batch of 8). Measured: a mean of batch means is
    off by 8.6e-4 nats here; the sums over examples agree with -mean(log_prob) to float
    rounding (tolerance 2e-6)."""
    x, val = moons[0][:1000], moons[1][:500]
    # N(0, I), as measured (with the Student-t base the last batch's mean happens to lie
    # within 5e-6 of the overall one, and the check below of a wrong mean tells nothing)
    maf = models.build("maf", 2, num_layers=2, hidden_units=(8,), seed=0, base="normal")
    model = tfp_flows.FlowModel(maf.distribution, bits_per_dim=True)
    for v in model.trainable_variables:  # away from the zero-initialised identity flow
        v.assign(v + 0.3 * np.random.default_rng(0).normal(size=v.shape).astype(np.float32))
    model.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=jit_compile)
    exact = -float(np.mean(model.log_prob(x)))
    exact_val = -float(np.mean(model.log_prob(val)))
    batch_means = [-float(np.mean(model.log_prob(x[i:i + 32]))) for i in range(0, 1000, 32)]
    assert abs(np.mean(batch_means) - exact) > 4e-4  # the batch size matters to a wrong mean

    history = model.fit(x, epochs=1, batch_size=32, shuffle=False, verbose=0,
                        validation_data=val).history
    assert history["loss"][0] == pytest.approx(exact, abs=2e-6)
    assert history["nll"][0] == pytest.approx(exact, abs=2e-6)
    assert history["bits_per_dim"][0] == pytest.approx(exact / (2 * np.log(2)), abs=2e-6)
    assert history["val_loss"][0] == pytest.approx(exact_val, abs=2e-6)
    for batch_size in (64, 333, 1000) if not jit_compile else (100,):
        logs = model.evaluate(x, batch_size=batch_size, verbose=0, return_dict=True)
        assert logs["loss"] == pytest.approx(exact, abs=2e-6), batch_size
        assert logs["nll"] == pytest.approx(exact, abs=2e-6), batch_size
