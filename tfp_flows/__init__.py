"""tfp-flows: normalizing flows for TensorFlow.

Public API:
  * `tfp_flows.FlowModel`: any TFP distribution as a Keras 3 model trained with fit().
  * `tfp_flows.nets`: Keras 3 conditioners (MADE, CouplingMLP).
  * `tfp_flows.bijectors`: bijectors TFP lacks.
  * `tfp_flows.models`: the model zoo (builders returning FlowModels).
  * `tfp_flows.datasets`: data sets made in code.
  * `tfp_flows.export_saved_model`: SavedModel export for TF Serving.
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
