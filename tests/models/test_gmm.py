"""The Gaussian-mixture baseline: normalised, both covariance kinds, one clear error."""

import keras
import numpy as np
import pytest

from tfp_flows import models
from tfp_flows.testing import grid_integral


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_mixture_is_normalised_and_trains(covariance, moons):
    keras.utils.set_random_seed(0)
    model = models.build("gmm", 2, seed=0, num_components=4, covariance=covariance,
                         data=moons[0])
    assert abs(grid_integral(model.log_prob, num=201) - 1.0) < 1e-3
    model.compile(optimizer=keras.optimizers.Adam(2e-2))
    before = model.evaluate(moons[2], verbose=0)[0]
    model.fit(moons[0], epochs=2, batch_size=500, verbose=0)
    assert model.evaluate(moons[2], verbose=0)[0] < before - 0.3
    assert abs(grid_integral(model.log_prob, num=201) - 1.0) < 1e-3
    assert np.all(np.isfinite(model.sample(10, seed=1).numpy()))


def test_unknown_covariance_is_one_clear_error():
    with pytest.raises(ValueError, match="covariance must be 'full' or 'diagonal'"):
        models.build("gmm", 2, covariance="spherical")
