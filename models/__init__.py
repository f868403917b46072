"""The model zoo: named recipes that return ready-to-train `tfp_flows.FlowModel`s.

Installed as `tfp_flows.models` (the source folder is the top-level `models/`).
"""

from tfp_flows.models.iaf import build_iaf
from tfp_flows.models.maf import build_maf
from tfp_flows.models.naf import build_naf
from tfp_flows.models.nice import build_nice
from tfp_flows.models.nsf import build_nsf
from tfp_flows.models.pixelmaf import build_pixelmaf
from tfp_flows.models.realnvp import build_realnvp

RECIPES = {
    "maf": (build_maf, "masked autoregressive flow: MADE-conditioned affine layers"),
    "iaf": (build_iaf, "inverse autoregressive flow: inverted MAF layers (fast sampling)"),
    "realnvp": (build_realnvp, "RealNVP: affine coupling layers with CouplingMLP"),
    "nice": (build_nice, "NICE: additive couplings and a diagonal scaling"),
    "naf": (build_naf, "neural autoregressive flow: MADE-conditioned deep sigmoidal layers"),
    "nsf": (build_nsf, "neural spline flow: rational-quadratic spline couplings"),
    "pixelmaf": (build_pixelmaf, "MAF over images with PixelCNN masked convolutions (bits/dim)"),
}

# Recipes over images (event shape [H, W, C]); the others take vectors (an int event size).
IMAGE_RECIPES = ("pixelmaf",)


def build(name, event_size, **options):
    """Build the zoo's recipe `name` for events of size `event_size`."""
    if name not in RECIPES:
        raise ValueError(f"Unknown model {name!r}; the zoo has: {', '.join(sorted(RECIPES))}.")
    return RECIPES[name][0](event_size, **options)


__all__ = ["RECIPES", "IMAGE_RECIPES", "build", "build_maf", "build_iaf", "build_realnvp",
           "build_nice"]
__all__ += ["build_naf", "build_pixelmaf"]
__all__ += ["build_nsf"]
