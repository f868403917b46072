"""The model zoo: named recipes that return ready-to-train `tfp_flows.FlowModel`s.

Installed as `tfp_flows.models` (the source folder is the top-level `models/`).

Each recipe module declares `RECIPES = {name: Recipe(...)}` (see `models/recipe.py`); this
package collects them, so adding a model to the zoo means adding one file. Every builder is
also importable from here under its own name (`from tfp_flows.models import build_maf`).
"""

from __future__ import annotations

import importlib
import numbers
import pkgutil
from typing import TYPE_CHECKING

from tfp_flows.models.recipe import TRAINING_KEYS, Recipe

from tfp_flows.types import ShapeLike, TensorLike

if TYPE_CHECKING:
    from tfp_flows import FlowModel

RECIPES = {}
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    # modules without RECIPES (recipe.py, building_blocks.py, ...) hold shared pieces
    _declared = getattr(importlib.import_module(f"{__name__}.{_module}"), "RECIPES", {})
    for _name, _recipe in _declared.items():
        if _name in RECIPES:
            raise RuntimeError(f"Two zoo recipes are named {_name!r} (one in {_module}.py).")
        RECIPES[_name] = _recipe
        globals()[_recipe.build.__name__] = _recipe.build
RECIPES = dict(sorted(RECIPES.items()))

# Recipes over images (event shape [H, W, C]); the others take vectors (an int event size).
IMAGE_RECIPES = tuple(name for name, recipe in RECIPES.items() if recipe.image)


def build(name: str, event_size: ShapeLike, *, data: TensorLike | None = None,
          context: TensorLike | None = None, **options) -> FlowModel:
    """Build the zoo's recipe `name` for events of size (or image shape) `event_size`.

    data: training data; when given, the model's standardisation is fitted to it
    (`model.adapt(data, context)`; vector recipes, standardize=True by default), so
    `build("maf", D, data=x_train)` is ready for `fit(x_train)` on data in any units.
    context: the training contexts of a conditional model (with `data`).
    """
    if name not in RECIPES:
        raise ValueError(f"Unknown model {name!r}; the zoo has: {', '.join(RECIPES)}.")
    if context is not None and data is None:
        raise ValueError("build(..., context=...) needs data= too (the x of each context).")
    _check_sizes(name, event_size, options)
    model = RECIPES[name].build(event_size, **options)
    if data is not None:
        model.adapt(data, context)
    return model


# Options that count layers, units or channels: zero or a negative number would build an
# empty weight matrix, which some kernels (oneDNN's) abort the whole process on.
_SIZE_OPTIONS = ("num_layers", "num_steps", "num_scales", "num_blocks", "num_bins",
                 "num_components", "num_polynomials", "filters", "hidden_size",
                 "context_size")


def _check_sizes(name, event_size, options):
    """ValueError for a size option (or event size) that is not a positive integer."""
    sizes = {"event_size": event_size, **{k: v for k, v in options.items()
                                          if k in _SIZE_OPTIONS or k.endswith("_units")
                                          or k.endswith("_channels")}}
    for key, value in sizes.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if value is None and key != "event_size":
            continue
        if not values or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                 and v >= 1 for v in values):
            raise ValueError(f"{name}: {key} must be a positive integer"
                             f"{' (or a list of them)' if key.endswith('_units') else ''}; "
                             f"got {value!r}.")


__all__ = ["RECIPES", "IMAGE_RECIPES", "TRAINING_KEYS", "Recipe", "build"]
__all__ += sorted(recipe.build.__name__ for recipe in RECIPES.values())
