import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def moons():
    """Two moons, standardised: (train, validation, test) float32 arrays."""
    from tfp_flows import datasets

    return datasets.load("two-moons", 6000, seed=0)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
