"""Find every trainable piece inside a TFP distribution.

Keras 3 only tracks its own layers and `keras.Variable`s. A TFP distribution can hold
trainable state in four other forms, and `FlowModel` must train all of them:

* Keras 3 layers used as conditioners (our `nets.MADE`, a user's layer), held directly,
  inside lists, through bound methods, `functools.partial` or closures;
* `keras.Variable`s passed as bijector parameters;
* raw `tf.Variable`s and `tfp.util.TransformedVariable`s held by bijectors;
* tf_keras (Keras 2) layers such as TFP's own `tfb.AutoregressiveNetwork`, whose weights
  are plain `tf.Variable`s, possibly with a `constraint` (TFP's MADE masks).

`find_trainables` walks the object graph for these. Walking cannot see a variable that is
reached only through a module-level global, so `FlowModel` also runs the distribution once
under a `tf.GradientTape` and adds every accessed trainable variable the walk missed.
"""

import dataclasses
import functools
import inspect

import keras
import numpy as np
import tensorflow as tf

_LEAF_TYPES = (str, bytes, int, float, bool, complex, type(None), np.ndarray, np.generic,
               tf.Tensor, tf.TensorShape, tf.DType, type)


@dataclasses.dataclass
class Trainables:
    """What `find_trainables` found, each list in a deterministic walk order."""

    keras_layers: list
    keras_variables: list
    tf_variables: list
    # id(variable or layer) -> name of the innermost TFP bijector/distribution holding it
    owners: dict = dataclasses.field(default_factory=dict)


def _unique_append(items, seen_ids, value):
    if id(value) not in seen_ids:
        seen_ids.add(id(value))
        items.append(value)


def find_trainables(root):
    """Walk `root` (a distribution, bijector or any container of them)."""
    found = Trainables([], [], [])
    found_ids = set()
    visited = set()

    def visit(obj, depth, owner=None):
        if depth > 64 or isinstance(obj, _LEAF_TYPES) or id(obj) in visited:
            return
        visited.add(id(obj))
        if isinstance(obj, (keras.layers.Layer, keras.Variable, tf.Variable)):
            found.owners.setdefault(id(obj), owner)
        if isinstance(obj, keras.layers.Layer):
            _unique_append(found.keras_layers, found_ids, obj)
            return
        if isinstance(obj, keras.Variable):
            _unique_append(found.keras_variables, found_ids, obj)
            return
        if isinstance(obj, tf.Variable):
            _unique_append(found.tf_variables, found_ids, obj)
            return
        if _is_tfp_object(obj):
            owner = f"{type(obj).__name__} {getattr(obj, 'name', '')!r}"
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children = list(obj)
        elif isinstance(obj, functools.partial):
            children = [obj.func, *obj.args, *obj.keywords.values()]
        elif inspect.ismethod(obj):
            children = [obj.__self__]
        elif inspect.isfunction(obj):
            children = [c.cell_contents for c in (obj.__closure__ or ()) if _cell_full(c)]
            children += list(obj.__defaults__ or ())
        elif isinstance(obj, tf.Module) or callable(obj) and hasattr(obj, "__dict__"):
            # TFP distributions and bijectors, TransformedVariable, tf_keras layers, and
            # callable objects a user wrote as conditioners.
            children = list(vars(obj).values())
        else:
            return
        for child in children:
            visit(child, depth + 1, owner)

    visit(root, 0)
    return found


def _is_tfp_object(obj):
    """A TFP bijector or distribution (checked by module, to keep TFP out of the imports)."""
    return any(c.__name__ in ("Bijector", "Distribution")
               and c.__module__.startswith("tensorflow_probability.")
               for c in type(obj).__mro__)


def _cell_full(cell):
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # empty cell
        return False
    return True


def underlying_tf_variable(variable):
    """The `tf.Variable` behind a `keras.Variable` (TF backend), or the variable itself."""
    inner = getattr(variable, "_value", None)
    return inner if isinstance(inner, tf.Variable) else variable


def as_keras_weight(variable):
    """Give a TFP-held `tf.Variable` the attributes that Keras 3 reads off every weight of a
    model, so that a `FlowModel` listing it among its weights can be a layer of any Keras
    model and its weights can be listed the Keras way: `.regularizer` (read by
    `Layer._get_regularization_losses`; None, no regularizer) and `.path` (the variable's
    name without the ':0'). Returns the variable."""
    for attribute, value in (("regularizer", None), ("path", variable.name.split(":")[0])):
        if not hasattr(variable, attribute):
            try:
                setattr(variable, attribute, value)
            except AttributeError:  # a variable type that takes no new attributes
                pass
    return variable
