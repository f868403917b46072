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
  * `tfp_flows.layers`: flows as density heads of Keras models (`ConditionalDensity`,
    `FlowModel(..., context_encoder=net)`), p(x | c) as a `tfd.Distribution`.
  * `tfp_flows.VariationalFit`: fit a flow to an unnormalised density (variational inference).
  * `tfp_flows.FlowMatching`: train a continuous flow (FFJORD) by flow matching.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "0")

__version__ = "0.1.0"

# The public API is imported on first use (PEP 562), so that `import tfp_flows` (and the
# `tfp-flows` command's --help, list and --version) does not import TensorFlow. The first
# public name used imports all of it (registering its Keras serializable classes), as the
# eager `import tfp_flows` of earlier versions did.
_PUBLIC = {"FlowModel": "flow_model", "NonFiniteLossWarning": "flow_model",
           "StopOnNonFiniteLoss": "flow_model", "FlowDataError": "data_checks",
           "export_saved_model": "export", "next_version_dir": "export",
           "VariationalFit": "vi", "FlowMatching": "flow_matching",
           "bijectors": None, "datasets": None, "nets": None, "layers": None}

__all__ = ["FlowModel", "FlowDataError", "NonFiniteLossWarning", "StopOnNonFiniteLoss",
           "VariationalFit", "FlowMatching",
           "bijectors", "datasets", "nets", "layers", "export_saved_model", "next_version_dir",
           "__version__"]

# Subpackages loaded on first use (`tfp_flows.models.build(...)` after `import tfp_flows`):
# importing them here would be circular (the zoo imports tfp_flows) and slow.
_LAZY_SUBMODULES = ("cli", "conditioning", "dequantization", "distillation", "export", "ffjord",
                    "flow_model", "models", "plotting", "serialization", "serving", "simulators",
                    "testing", "vae", "vi", "flow_matching")


_loading = []  # non-empty while the public API is being imported


def __getattr__(name):
    import importlib

    if name in _PUBLIC:
        _loading.append(name)
        try:
            for module in sorted({*filter(None, _PUBLIC.values()), "bijectors", "datasets",
                                  "nets"}):
                importlib.import_module(f"{__name__}.{module}")
        finally:
            _loading.pop()
        value = (importlib.import_module(f"{__name__}.{name}") if _PUBLIC[name] is None else
                 getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name))
        globals()[name] = value
        return value
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC) | set(_LAZY_SUBMODULES))


# With Keras or TensorFlow loaded already, laziness saves nothing: load the public API now,
# so `keras.saving.load_model` finds tfp_flows' serializable classes right after
# `import keras, tfp_flows` as it always did; otherwise load it when keras is imported.
def _load_after_keras():
    """Load the public API right after `keras` itself is imported, whatever the order of the
    user's imports (`import tfp_flows` then `import keras`): Keras' `load_model` finds only
    classes registered before it runs. An import hook wraps the loading of `keras` once."""
    import importlib.abc
    import importlib.util
    import sys

    class _AfterKeras(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            if fullname != "keras":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec("keras")
            if spec is None or spec.loader is None:
                return spec
            load = spec.loader.exec_module

            def exec_module(module):
                load(module)
                if not _loading:  # tfp_flows' own import of keras finishes the job itself
                    __getattr__("FlowModel")

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _AfterKeras())


if any(__import__("sys").modules.get(name) is not None for name in ("keras", "tensorflow")):
    __getattr__("FlowModel")
else:
    _load_after_keras()
