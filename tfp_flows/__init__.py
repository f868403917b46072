"""tfp-flows: normalizing flows for TensorFlow.

Public API:
  * `tfp_flows.FlowModel`: any TFP distribution as a Keras 3 model trained with fit(),
    unconditional or conditional (p(x | context), `context_shape=...`).
  * `tfp_flows.nets`: Keras 3 conditioners (MADE, CouplingMLP, PixelCNN, WaveNet, ...).
  * `tfp_flows.bijectors`: bijectors TFP lacks (PReLU, Radial, SOS, Residual, Planar, ...).
  * `tfp_flows.models`: the model zoo (builders returning FlowModels).
  * `tfp_flows.datasets`, `tfp_flows.simulators`: data made in code or bundled.
  * `tfp_flows.conditioning`: routing a context through a chain of bijectors.
  * `tfp_flows.testing`: `check_bijector`, `grid_integral` for your own bijectors.
  * `tfp_flows.export_saved_model`, `tfp_flows.serving`: SavedModels for TF Serving.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "0")

__version__ = "0.1.0"

from tfp_flows import bijectors, datasets, nets  # noqa: E402
from tfp_flows.data_checks import FlowDataError  # noqa: E402
from tfp_flows.export import export_saved_model, next_version_dir  # noqa: E402
from tfp_flows.flow_model import FlowModel, NonFiniteLossWarning, StopOnNonFiniteLoss  # noqa: E402

__all__ = ["FlowModel", "FlowDataError", "NonFiniteLossWarning", "StopOnNonFiniteLoss",
           "bijectors", "datasets", "nets", "export_saved_model", "next_version_dir",
           "__version__"]
