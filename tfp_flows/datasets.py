"""Data sets made in code (nothing is downloaded), each with a fixed split."""

import numpy as np

from tfp_flows.simulators import GaussianMeanPosterior


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


def circles(n=10000, *, noise=0.05, seed=0, factor=0.5):
    """Two concentric circles (radii 1 and `factor`) with Gaussian noise, float32 [n, 2]."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(rng.random(n) < 0.5, 1.0, factor)
    data = radius[:, None] * np.stack([np.cos(t), np.sin(t)], 1)
    data = data + noise * rng.standard_normal((n, 2))
    return (data / data.std(axis=0)).astype(np.float32)


def eight_gaussians(n=10000, *, std=0.1, seed=0):
    """Eight Gaussians of std `std` on a circle of radius 2 (FFJORD's toy set), [n, 2]."""
    rng = np.random.default_rng(seed)
    angles = rng.integers(0, 8, n) * (np.pi / 4)
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    return (centres + std * rng.standard_normal((n, 2))).astype(np.float32)


def checkerboard(n=10000, *, seed=0):
    """Uniform density on the black squares of a 4x4 checkerboard over [-2, 2]^2, [n, 2]."""
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(-2, 2, n)
    x2 = rng.uniform(0, 1, n) - 2 * rng.integers(0, 2, n) + (np.floor(x1) % 2)
    return np.stack([x1, x2 * 1.0], 1).astype(np.float32)


def pinwheel(n=10000, *, num_arms=5, radial_std=0.3, tangential_std=0.1, rate=0.25, seed=0):
    """Pinwheel: Gaussian blobs sheared into `num_arms` spiral arms, [n, 2]."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, num_arms, endpoint=False)
    feats = rng.standard_normal((n, 2)) * [radial_std, tangential_std]
    feats[:, 0] += 1.0
    labels = rng.integers(0, num_arms, n)
    turn = angles[labels] + rate * np.exp(feats[:, 0])
    rot = np.stack([np.cos(turn), -np.sin(turn), np.sin(turn), np.cos(turn)], 1).reshape(-1, 2, 2)
    return (2 * np.einsum("ni,nji->nj", feats, rot)).astype(np.float32)


def spirals(n=10000, *, noise=0.1, seed=0):
    """Two interleaved spirals, [n, 2]."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.random(n)) * 540 * (2 * np.pi) / 360
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    data = sign[:, None] * np.stack([-np.cos(t) * t, np.sin(t) * t], 1)
    data = data + noise * rng.standard_normal((n, 2))
    return (data / 3.0).astype(np.float32)


def digits(n=None, *, seed=0, dequantize=True):
    """scikit-learn's bundled 8x8 digits (1797 images, no download), dequantised to [0, 1].

    Pixel values k in 0..16 become (k + u) / 17 with u ~ U[0, 1) (fixed `seed`); shape
    [n, 8, 8, 1]. A density p on [0, 1]^64 bounds the discrete data's bits per dimension
    by bits_per_dim(p) + log2(17) (see `discrete_bits_per_dim`). `dequantize=False` gives
    the integer pixel values 0..16 themselves (as float32), for models that dequantize
    with fresh noise at every step (`tfp_flows.dequantization`).
    """
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float64)
    if not dequantize:
        return (images if n is None else images[:n])[..., None].astype(np.float32)
    rng = np.random.default_rng(seed)
    data = (images + rng.random(images.shape)) / DIGIT_LEVELS
    if n is not None:
        data = data[:n]
    return data[..., None].astype(np.float32)


DIGIT_LEVELS = 17


def discrete_bits_per_dim(nll_nats, num_dims, levels=DIGIT_LEVELS):
    """Bits/dim of discrete data with `levels` levels from the NLL of its dequantisation
    (v = (k + u) / levels on [0, 1]): (nll + D log levels) / (D ln 2)."""
    return (nll_nats + num_dims * np.log(levels)) / (num_dims * np.log(2.0))


def breast_cancer(n=None, *, seed=0):
    """scikit-learn's bundled breast-cancer features (569 x 30), standardised, float32."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer().data
    data = (data - data.mean(0)) / data.std(0)
    return (data if n is None else data[:n]).astype(np.float32)


# The "torus" mixture: (weight, location (phi, psi), concentrations), clusters placed like
# the dihedral angles of a protein backbone (beta sheet, right- and left-handed helices).
TORUS_COMPONENTS = ((0.40, (-1.4, 2.6), (4.0, 5.0)),
                    (0.45, (-1.2, -0.7), (8.0, 8.0)),
                    (0.15, (1.0, 0.6), (6.0, 4.0)))


def torus(n=10000, *, seed=0):
    """Pairs of angles in [-pi, pi)^2 from a mixture of three products of von Mises densities,
    float32 [n, 2] (`torus_log_density` is their exact log-density)."""
    rng = np.random.default_rng(seed)
    weights = np.array([c[0] for c in TORUS_COMPONENTS])
    which = rng.choice(len(weights), size=n, p=weights)
    loc = np.array([c[1] for c in TORUS_COMPONENTS])[which]
    kappa = np.array([c[2] for c in TORUS_COMPONENTS])[which]
    x = rng.vonmises(loc, kappa)
    return (np.mod(x + np.pi, 2 * np.pi) - np.pi).astype(np.float32)


def torus_log_density(x):
    """The exact log-density of `torus` at angles x [..., 2] (NumPy, float64)."""
    x = np.asarray(x, np.float64)
    terms = []
    for weight, loc, kappa in TORUS_COMPONENTS:
        kappa = np.asarray(kappa)
        log_norm = np.log(2 * np.pi * np.i0(kappa)).sum()
        terms.append(np.log(weight) + (kappa * np.cos(x - np.asarray(loc))).sum(-1) - log_norm)
    return np.logaddexp.reduce(np.stack(terms), axis=0)


# The simulator behind "sbi-gaussian-mean" (its posterior is known in closed form).
SBI_GAUSSIAN_MEAN = GaussianMeanPosterior(dim=2, prior_std=2.0, noise_std=1.0,
                                          num_observations=5)


def sbi_gaussian_mean(n=10000, *, seed=0):
    """Simulation-based inference pairs (observation, theta), float32 [n, 2] each.

    theta ~ N(0, 2^2 I) in 2-D, five observations y_j ~ N(theta, I) summarised by their mean
    (`simulators.GaussianMeanPosterior`). A conditional flow fit(observation, theta) learns
    the posterior p(theta | observation), which is N(0.952 ybar, 0.190 I) exactly.
    """
    return SBI_GAUSSIAN_MEAN.simulate(n, seed=seed)


# The fewest rows train_val_test's default 80/10/10 split turns into three non-empty parts
# is 8; 10 leaves a margin and is what the command line asks for.
MIN_SPLIT_ROWS = 10


def train_val_test(data, fractions=(0.8, 0.1, 0.1), *, seed=0):
    """Split rows of `data` into train, validation and test parts (a fixed permutation)."""
    if not np.isclose(sum(fractions), 1.0) or len(fractions) != 3:
        raise ValueError(f"fractions must be three numbers summing to 1; got {fractions}.")
    order = np.random.default_rng(seed).permutation(len(data))
    n_train = int(round(fractions[0] * len(data)))
    n_val = int(round(fractions[1] * len(data)))
    parts = np.split(order, [n_train, n_train + n_val])
    if min(map(len, parts)) == 0:
        raise ValueError(f"{len(data)} rows are too few to split {fractions} into train, "
                         f"validation and test parts with a row each (the default split "
                         f"needs {MIN_SPLIT_ROWS}).")
    return tuple(data[p] for p in parts)


DATASETS = {
    "two-moons": (two_moons, "two interleaving half circles (2-D)"),
    "circles": (circles, "two concentric circles (2-D)"),
    "8gaussians": (eight_gaussians, "eight Gaussians on a circle (2-D)"),
    "checkerboard": (checkerboard, "uniform on a 4x4 checkerboard (2-D)"),
    "pinwheel": (pinwheel, "five sheared spiral arms (2-D)"),
    "spirals": (spirals, "two interleaved spirals (2-D)"),
    "digits": (digits, "scikit-learn's 8x8 digits, dequantised to [0, 1] (1797 images)"),
    "breast-cancer": (breast_cancer, "scikit-learn's breast-cancer features (30-D, 569 rows)"),
    "torus": (torus, "three von Mises clusters of angle pairs on the torus [-pi, pi)^2"),
}


# Conditional data sets: make(n, seed=...) -> (context, x); a conditional flow learns
# p(x | context). ANALYTIC_POSTERIORS holds the simulator of those whose truth is known.
CONDITIONAL_DATASETS = {
    "sbi-gaussian-mean": (sbi_gaussian_mean, "simulation-based inference: posterior of a "
                                             "2-D Gaussian mean (context = observation, "
                                             "x = theta)"),
}
ANALYTIC_POSTERIORS = {"sbi-gaussian-mean": SBI_GAUSSIAN_MEAN}


def load(name, n=10000, *, seed=0, dequantize=True):
    """A built-in data set by name, split into (train, validation, test).

    `n` is the number of points of the generated 2-D sets; the bundled sets use all rows.
    `dequantize=False`: the digits as integer pixel values 0..16 (same split).
    A conditional data set (CONDITIONAL_DATASETS) gives (context, x) pairs for each part.
    """
    if name in CONDITIONAL_DATASETS:
        context, x = CONDITIONAL_DATASETS[name][0](n, seed=seed)
        rows = train_val_test(np.arange(len(x)), seed=seed)
        return tuple((context[r], x[r]) for r in rows)
    if name not in DATASETS:
        known = sorted([*DATASETS, *CONDITIONAL_DATASETS])
        raise ValueError(f"Unknown data set {name!r}; built-in: {', '.join(known)}.")
    make = DATASETS[name][0]
    if name == "digits" and not dequantize:
        return train_val_test(make(None, seed=seed, dequantize=False), seed=seed)
    data = make(None, seed=seed) if name in ("digits", "breast-cancer") else make(n, seed=seed)
    return train_val_test(data, seed=seed)


def load_file(path, *, min_rows=1):
    """Data from a .npy or .csv file as float32, with errors that name file, row and column.

    A CSV may start with one header row (a row without a single number); every other cell
    must be a finite number. Values beyond the float32 range (|x| > 3.4e38) are refused,
    naming their rows. Fewer than `min_rows` rows is an error (`train_val_test` needs
    `MIN_SPLIT_ROWS`).
    """
    import os

    from tfp_flows.data_checks import FlowDataError

    if not os.path.isfile(path):
        raise FlowDataError(f"{path}: no such file.")
    if path.lower().endswith(".npy"):
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise FlowDataError(f"{path}: not a readable .npy array of numbers ({e}).") from None
        if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiub":
            raise FlowDataError(f"{path}: holds dtype {getattr(data, 'dtype', '?')}, not "
                                "numbers.")
        if data.ndim < 2:
            raise FlowDataError(f"{path}: shape {data.shape}; need [rows, features...].")
        if data.size == 0 and len(data):
            raise FlowDataError(f"{path}: shape {data.shape}; rows without any values.")
        data = data.astype(np.float64)
        if len(data):
            flat = data.reshape(len(data), -1)
            bad = np.argwhere(~np.isfinite(flat))
            if len(bad):
                raise FlowDataError(f"{path}: row {bad[0][0]}, column {bad[0][1]} is not "
                                    f"finite ({len(bad)} such entries).")
            _check_float32_range(path, flat, first_row=0)
        return _enough_rows(path, data, min_rows).astype(np.float32)
    if path.lower().endswith(".csv"):
        import csv

        try:
            with open(path, newline="") as f:
                rows = [r for r in csv.reader(f) if r]
        except (UnicodeDecodeError, csv.Error) as e:
            raise FlowDataError(f"{path}: not a text CSV file ({e}).") from None
        if rows and not any(_is_number(c) for c in rows[0]):
            rows = rows[1:]  # header
        if not rows:
            raise FlowDataError(f"{path}: no data rows.")
        width = len(rows[0])
        out = np.empty((len(rows), width))
        for i, row in enumerate(rows):
            if len(row) != width:
                raise FlowDataError(f"{path}: data row {i + 1} has {len(row)} columns, the "
                                    f"first has {width}.")
            for j, cell in enumerate(row):
                try:
                    out[i, j] = float(cell)
                except ValueError:
                    raise FlowDataError(f"{path}: data row {i + 1}, column {j + 1} is not a "
                                        f"number: {cell!r}.") from None
                if not np.isfinite(out[i, j]):
                    raise FlowDataError(f"{path}: data row {i + 1}, column {j + 1} is not "
                                        f"finite: {cell!r}.")
        _check_float32_range(path, out, first_row=1, what="data row")
        return _enough_rows(path, out, min_rows).astype(np.float32)
    raise FlowDataError(f"{path}: unsupported file type; use .npy or .csv.")


def _check_float32_range(path, rows, *, first_row, what="row"):
    """Refuse values a float32 cannot hold (they would become Inf), naming their rows."""
    from tfp_flows.data_checks import FlowDataError

    big = np.abs(rows) > np.finfo(np.float32).max
    if big.any():
        bad = np.flatnonzero(big.any(axis=1)) + first_row
        shown = ", ".join(str(r) for r in bad[:10]) + (", ..." if len(bad) > 10 else "")
        raise FlowDataError(f"{path}: values beyond the float32 range (|x| > 3.4e38) in "
                            f"{what}s {shown} ({len(bad)} rows); rescale the data.")


def _enough_rows(path, data, min_rows):
    from tfp_flows.data_checks import FlowDataError

    if len(data) < min_rows:
        raise FlowDataError(f"{path}: {len(data)} rows; need at least {min_rows} (the "
                            f"train/validation/test split needs {MIN_SPLIT_ROWS}).")
    return data


def _is_number(cell):
    try:
        float(cell)
    except ValueError:
        return False
    return True
