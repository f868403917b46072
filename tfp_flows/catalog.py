"""Names and one-line descriptions of the zoo's recipes and the built-in data sets.

A plain table, importable without TensorFlow: the `tfp-flows` command answers `list`,
`--help` and mistyped names from it before it imports anything heavy.
`tests/test_cli_catalog.py` checks it against `tfp_flows.models.RECIPES` and
`tfp_flows.datasets`, so a recipe or data set added there must be added here too.
"""

from typing import NamedTuple


class ModelEntry(NamedTuple):
    description: str
    default_data: str = "two-moons"
    image: bool = False


MODELS = {
    "batchnorm": ModelEntry("RealNVP couplings with batch normalisation between them"),
    "bernstein": ModelEntry("Bernstein-polynomial flow: MADE-conditioned monotone polynomials "
                            "with linear tails"),
    "bnaf": ModelEntry("block neural autoregressive flow: monotone block-triangular "
                       "networks"),
    "cdf2d": ModelEntry("2-D autoregressive CDF flow: mixture CDFs onto Uniform(0,1)^2, x2's "
                        "mixture from an MLP of x1"),
    "circular": ModelEntry("circular rational-quadratic spline couplings on the torus "
                           "[-pi, pi)^D", "torus"),
    "ffjord": ModelEntry("FFJORD continuous flow: ODE with a time-gated MLP (slow, free-form)"),
    "flowpp": ModelEntry("Flow++: logistic-mixture CDF couplings + variational dequantization "
                         "(bits/dim)", "digits", True),
    "glow": ModelEntry("Glow: multi-scale ActNorm + 1x1 conv + affine coupling, dequantized "
                       "(bits/dim)", "digits", True),
    "gmm": ModelEntry("Gaussian mixture baseline: K full-covariance Gaussians, no flow"),
    "householder": ModelEntry("MAF layers with trainable Householder reflections between them"),
    "iaf": ModelEntry("inverse autoregressive flow: inverted MAF layers (fast sampling)"),
    "maf": ModelEntry("masked autoregressive flow: MADE-conditioned affine layers"),
    "naf": ModelEntry("neural autoregressive flow: MADE-conditioned deep sigmoidal layers"),
    "nice": ModelEntry("NICE: additive couplings and a diagonal scaling"),
    "pixelmaf": ModelEntry("MAF over images with PixelCNN masked convolutions (bits/dim)",
                           "digits", True),
    "planar": ModelEntry("planar flows (for VI posteriors; a weak density estimator)"),
    "prelu": ModelEntry("affine couplings with trainable PReLU bijectors between them"),
    "radial": ModelEntry("radial flows (for VI posteriors; a weak density estimator)"),
    "realnvp": ModelEntry("RealNVP: affine coupling layers with CouplingMLP"),
    "residual": ModelEntry("invertible residual flow: x + g(x) blocks with Lipschitz g < 1"),
    "sos": ModelEntry("sum-of-squares polynomial flow: MADE-conditioned SOS transformers"),
    "spline": ModelEntry("neural spline flow: rational-quadratic spline couplings"),
    "sylvester": ModelEntry("Sylvester flows (for VI posteriors; a weak density estimator)"),
    "umnn": ModelEntry("UMNN-MAF: MADE-conditioned monotone transformers by integration "
                       "of a positive network"),
}

DATASETS = {
    "two-moons": "two interleaving half circles (2-D)",
    "circles": "two concentric circles (2-D)",
    "8gaussians": "eight Gaussians on a circle (2-D)",
    "checkerboard": "uniform on a 4x4 checkerboard (2-D)",
    "pinwheel": "five sheared spiral arms (2-D)",
    "spirals": "two interleaved spirals (2-D)",
    "digits": "scikit-learn's 8x8 digits, dequantised to [0, 1] (1797 images)",
    "breast-cancer": "scikit-learn's breast-cancer features (30-D, 569 rows)",
    "torus": "three von Mises clusters of angle pairs on the torus [-pi, pi)^2",
}

CONDITIONAL_DATASETS = {
    "sbi-gaussian-mean": "simulation-based inference: posterior of a 2-D Gaussian mean "
                         "(context = observation, x = theta)",
}

# Data sets that come with scikit-learn (the "data" extra: pip install "tfp-flows[data]").
SKLEARN_DATASETS = ("digits", "breast-cancer")
