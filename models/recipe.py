"""`Recipe`: how the zoo registers a model, with its defaults per data set."""

from collections.abc import Callable
from typing import Any, NamedTuple

# Training settings a recipe may give per data set; every other key goes to its builder.
TRAINING_KEYS = ("epochs", "batch_size", "learning_rate")


class Recipe(NamedTuple):
    """A named zoo entry.

    build: the builder, build(event_size_or_shape, **options) -> FlowModel.
    description: one line for `tfp-flows list`.
    image: True when the builder takes an image event shape [H, W, C] (vector recipes see
        flattened events).
    default_data: the data set `tfp-flows train --model <name>` uses when --data is not given.
    data_defaults: {data set name: {option: value}}; options are the builder's keyword
        arguments or the training settings in TRAINING_KEYS. The key "*" applies to every
        data set; a named data set's entries override it, and the command line overrides both.
    discrete: True when the model takes integer levels and dequantizes them itself
        (`tfp_flows.dequantization`); the CLI then loads the digits as pixel values 0..16
        instead of dequantizing them once.
    """

    build: Callable
    description: str
    image: bool = False
    default_data: str = "two-moons"
    data_defaults: dict[str, dict[str, Any]] = {}
    discrete: bool = False

    def defaults(self, data):
        """(builder options, training settings) this recipe recommends for `data`."""
        merged = {**self.data_defaults.get("*", {}), **self.data_defaults.get(data, {})}
        training = {k: v for k, v in merged.items() if k in TRAINING_KEYS}
        options = {k: v for k, v in merged.items() if k not in TRAINING_KEYS}
        return options, training
