"""The model zoo: named recipes that return ready-to-train `tfp_flows.FlowModel`s.

Installed as `tfp_flows.models` (the source folder is the top-level `models/`).

Each recipe module declares `RECIPES = {name: Recipe(...)}` (see `models/recipe.py`); this
package collects them, so adding a model to the zoo means adding one file. Every builder is
also importable from here under its own name (`from tfp_flows.models import build_maf`).
"""

import importlib
import pkgutil

from tfp_flows.models.recipe import TRAINING_KEYS, Recipe

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


def build(name, event_size, **options):
    """Build the zoo's recipe `name` for events of size (or image shape) `event_size`."""
    if name not in RECIPES:
        raise ValueError(f"Unknown model {name!r}; the zoo has: {', '.join(RECIPES)}.")
    return RECIPES[name].build(event_size, **options)


__all__ = ["RECIPES", "IMAGE_RECIPES", "TRAINING_KEYS", "Recipe", "build"]
__all__ += sorted(recipe.build.__name__ for recipe in RECIPES.values())
