"""Data sets made in code (nothing is downloaded), each with a fixed split."""

import numpy as np


def two_moons(n=10000, *, noise=0.08, seed=0, standardize=True):
    """Two interleaving half circles in 2-D, float32 [n, 2].

    The upper moon is (cos t, sin t), the lower (1 - cos t, 0.5 - sin t), t ~ U[0, pi],
    plus isotropic Gaussian noise of standard deviation `noise`. With `standardize` the
    points are shifted and scaled by the exact mean (0.5, 0.25) and standard deviations of
    the noiseless curves plus noise, so every seed uses the same affine map.
    """
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, np.pi, size=n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    data = np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))
    if standardize:
        # Each moon has within-moon variance E[cos^2] = 1/2 in x and 1/2 - (2/pi)^2 in y;
        # the moon centres differ by 1 in x and 4/pi - 1/2 in y, adding (half gap)^2.
        mean = np.array([0.5, 0.25])
        var_x = 0.5 + 0.25
        e_sin, e_sin2 = 2.0 / np.pi, 0.5
        var_y = e_sin2 - e_sin**2 + (e_sin - 0.25) ** 2
        std = np.sqrt(np.array([var_x, var_y]) + noise**2)
        data = (data - mean) / std
    return data.astype(np.float32)


def train_val_test(data, fractions=(0.8, 0.1, 0.1), *, seed=0):
    """Split rows of `data` into train, validation and test parts (a fixed permutation)."""
    if not np.isclose(sum(fractions), 1.0) or len(fractions) != 3:
        raise ValueError(f"fractions must be three numbers summing to 1; got {fractions}.")
    order = np.random.default_rng(seed).permutation(len(data))
    n_train = int(round(fractions[0] * len(data)))
    n_val = int(round(fractions[1] * len(data)))
    parts = np.split(order, [n_train, n_train + n_val])
    return tuple(data[p] for p in parts)


DATASETS = {"two-moons": two_moons}


def load(name, n=10000, *, seed=0):
    """A built-in data set by name, split into (train, validation, test)."""
    if name not in DATASETS:
        raise ValueError(f"Unknown data set {name!r}; built-in: {sorted(DATASETS)}.")
    return train_val_test(DATASETS[name](n, seed=seed), seed=seed)
