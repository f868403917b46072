"""BatchNorm: exact fixed affine map outside training; batch statistics and moving-average
updates inside `batch_norm_training()`, and so inside FlowModel.fit under XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import models
from tfp_flows.bijectors import BatchNorm, batch_norm_training
from tfp_flows.testing import check_bijector, grid_integral


def _fitted(dtype):
    bn = BatchNorm.trainable(3, dtype=dtype)
    bn.moving_mean.assign([0.5, -1.0, 2.0])
    bn.moving_variance.assign([0.3, 2.0, 4.0])
    bn.log_scale.assign([0.2, -0.1, 0.0])
    bn.shift.assign([0.1, 0.0, -0.3])
    return bn


def test_batch_norm_passes_check_bijector_in_float32_and_float64(rng):
    check_bijector(_fitted, rng.standard_normal([16, 3]))


def test_training_updates_the_moving_statistics_once_per_step_and_uses_them(rng):
    bn = BatchNorm.trainable(2, dtype=tf.float64, momentum=0.5)
    x = rng.standard_normal([500, 2]) * [2.0, 0.5] + [3.0, -1.0]
    with batch_norm_training():
        ildj = bn.inverse_log_det_jacobian(x, event_ndims=1).numpy()
        z = bn.inverse(tf.constant(x)).numpy()  # a second use in the same step: no update
    mean, variance = 0.5 * x.mean(0), 0.5 + 0.5 * x.var(0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, rtol=1e-10)
    np.testing.assert_allclose(bn.moving_variance.numpy(), variance, rtol=1e-10)
    np.testing.assert_allclose(z, (x - mean) / np.sqrt(variance + 1e-3), rtol=1e-10)
    np.testing.assert_allclose(ildj, -0.5 * np.log(variance + 1e-3).sum(), rtol=1e-10)
    bn.inverse(tf.constant(x))  # outside training: no update
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, rtol=1e-10)


def test_bad_momentum_is_one_clear_error():
    with pytest.raises(ValueError, match="momentum must be in \\[0, 1\\)"):
        BatchNorm.trainable(2, momentum=1.0)


def test_batchnorm_recipe_trains_under_xla_and_stays_normalised(moons):
    keras.utils.set_random_seed(3)
    model = models.build("batchnorm", 2, seed=3, num_layers=3, hidden_units=(32, 32))
    assert abs(grid_integral(model.log_prob, num=201) - 1.0) < 0.01
    model.compile(optimizer=keras.optimizers.Adam(5e-3), jit_compile=True)
    before = model.evaluate(moons[2], verbose=0)[0]
    model.fit(moons[0], epochs=3, batch_size=256, verbose=0)
    after = model.evaluate(moons[2], verbose=0)[0]
    assert after < before - 0.1, (before, after)
    bn = model.distribution.bijector.bijectors[-3]
    assert isinstance(bn, BatchNorm)
    assert not np.allclose(bn.moving_variance.numpy(), 1.0)  # fit() updated the statistics
    assert abs(grid_integral(model.log_prob, num=201) - 1.0) < 0.01
    # the moving statistics are state Keras saves, not parameters it trains
    assert not any(v is bn.moving_mean for v in model.trainable_variables)
    assert any(v is bn.moving_mean for v in model.non_trainable_variables)
