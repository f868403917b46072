"""TFP distributions and bijectors as JSON-able configs, so a `FlowModel` saves to `.keras`.

`serialize(obj)` turns a distribution/bijector tree into plain lists, dicts, strings and
numbers; `deserialize(config)` rebuilds it. TFP objects keep their constructor arguments in
`.parameters`, so a TFP object is saved as its class and those arguments, recursively:

* Python scalars, strings, lists as themselves; tuples, dicts, NumPy arrays, eager tensors,
  dtypes and shapes as small tagged dicts (arrays as nested lists plus their dtype: exact);
* Keras 3 layers (our conditioners) with `keras.saving.serialize_keras_object` and rebuilt
  with `deserialize_keras_object`, which honours Keras' `safe_mode`;
* `tf.Variable`s as their current value, `tfp.util.TransformedVariable`s as their current
  value and their bijector, `tfp.util.DeferredTensor`s as their input and transform (only
  when that is a bijector); `FlowModel`'s weights then bring back the exact values;
* objects of registered classes with a `get_config()` (e.g. the zoo's `bijector_fn`s).

Only these classes are ever rebuilt (an allow-list, so loading a file runs no code of its
choosing): TFP's `tfd.*` and `tfb.*` classes, every bijector defined under
`tfp_flows.bijectors`, and classes registered with `@register_serializable` or with Keras'
`@keras.saving.register_keras_serializable` (bijectors and distributions are saved from their
`.parameters` either way; other classes from `get_config()`). Anything else
(a lambda, a closure used as `bijector_fn`, a tf_keras layer, a symbolic tensor) raises
`NotSerializableError`, naming the object and where it sits in the tree.

Argument values equal (by identity) to the constructor's default are left out, so a file
does not pin TFP's private default functions. Bijector names are kept: `tfb.Chain` routes
keyword arguments by name.
"""

import importlib
import inspect

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb, tfd = tfp.bijectors, tfp.distributions

_KIND = "__kind__"
_REGISTRY = {}  # key -> class, for classes registered with @register_serializable
_OWN_BIJECTOR_PACKAGE = "tfp_flows.bijectors"
_KERAS_PREFIX = "keras:"  # classes registered with @keras.saving.register_keras_serializable


class NotSerializableError(TypeError):
    """A part of a distribution has no config: the model cannot be saved as a `.keras` file."""


def register_serializable(cls=None, *, name=None):
    """Class decorator: allow `deserialize` to rebuild instances of `cls`.

    Works for `tfb.Bijector` / `tfd.Distribution` subclasses (saved from `.parameters`) and
    for any other class whose instances have `get_config()` (a dict of serialisable values)
    and are rebuilt by `cls.from_config(config)` if it exists, else `cls(**config)`.
    `name` defaults to "<module>.<qualname>"; keep it stable once files exist.
    """

    def register(klass):
        key = name or f"{klass.__module__}.{klass.__qualname__}"
        if _REGISTRY.get(key, klass) is not klass:
            raise ValueError(f"{key!r} is already registered for {_REGISTRY[key]!r}.")
        _REGISTRY[key] = klass
        klass._tfp_flows_serializable_name = key
        return klass

    return register if cls is None else register(cls)


# ---------------------------------------------------------------------------- class keys
def _public_tfp_class(cls, namespace, prefix):
    """`tfb.Chain` for TFP's private `_Chain` (its non-composite twin), else None."""
    public = getattr(namespace, cls.__name__.lstrip("_"), None)
    if inspect.isclass(public) and (public is cls or issubclass(public, cls)):
        return f"{prefix}.{public.__name__}"
    return None


def _registered_key(cls):
    """The key of a class registered with us or with Keras (`keras:<package>><name>`)."""
    registered = cls.__dict__.get("_tfp_flows_serializable_name")
    if registered is not None:
        return registered
    keras_name = keras.saving.get_registered_name(cls)
    if keras_name != cls.__name__ and keras.saving.get_registered_object(keras_name) is cls:
        return f"{_KERAS_PREFIX}{keras_name}"
    return None


def _class_key(cls):
    registered = _registered_key(cls)
    if registered is not None:
        return registered
    module = cls.__module__
    if module.startswith(_OWN_BIJECTOR_PACKAGE + ".") or module == _OWN_BIJECTOR_PACKAGE:
        own = importlib.import_module(_OWN_BIJECTOR_PACKAGE)
        if getattr(own, cls.__name__, None) is cls:
            return f"{_OWN_BIJECTOR_PACKAGE}.{cls.__name__}"
        return f"{module}:{cls.__qualname__}"
    if module.startswith("tensorflow_probability."):
        if issubclass(cls, tfb.Bijector):
            return _public_tfp_class(cls, tfb, "tfb")
        if issubclass(cls, tfd.Distribution):
            return _public_tfp_class(cls, tfd, "tfd")
    return None


def _class_from_key(key):
    if key in _REGISTRY:
        return _REGISTRY[key]
    if key.startswith(_KERAS_PREFIX):
        cls = keras.saving.get_registered_object(key[len(_KERAS_PREFIX):])
        if inspect.isclass(cls) and not issubclass(cls, keras.layers.Layer):
            return cls
    prefix, _, name = key.rpartition(".")
    if ":" not in key and prefix in ("tfb", "tfd"):
        namespace, base = (tfb, tfb.Bijector) if prefix == "tfb" else (tfd, tfd.Distribution)
        cls = getattr(namespace, name, None)
        if inspect.isclass(cls) and issubclass(cls, base):
            return cls
    elif key.startswith(_OWN_BIJECTOR_PACKAGE):
        if ":" in key:
            module_name, qualname = key.split(":", 1)
        else:
            module_name, qualname = _OWN_BIJECTOR_PACKAGE, name
        if module_name == _OWN_BIJECTOR_PACKAGE or module_name.startswith(
                _OWN_BIJECTOR_PACKAGE + "."):
            cls = importlib.import_module(module_name)
            for part in qualname.split("."):
                cls = getattr(cls, part, None)
            if inspect.isclass(cls) and issubclass(cls, (tfb.Bijector, tfd.Distribution)):
                return cls
    raise NotSerializableError(
        f"The saved flow names the class {key!r}, which is not allowed to be rebuilt: only "
        f"tfb.*, tfd.*, {_OWN_BIJECTOR_PACKAGE}.* and classes registered with "
        f"@tfp_flows.serialization.register_serializable or "
        f"@keras.saving.register_keras_serializable are. Import the module that registers it "
        f"before loading.")


# ---------------------------------------------------------------------------- serialize
def _advice(path, obj, why):
    return NotSerializableError(
        f"Cannot serialise {path} = {obj!r}: {why}. The distribution cannot be saved as a "
        f"config. Save the weights with model.save_weights('flow.weights.h5') and rebuild the "
        f"model with the same code before model.load_weights(...) instead; model.export(path) "
        f"still writes a SavedModel for serving.")


def _array_config(value, kind):
    value = np.asarray(value)
    return {_KIND: kind, "dtype": value.dtype.name, "shape": list(value.shape),
            "value": value.tolist()}


class _Serializer:
    def __init__(self):
        self._layer_ids = {}  # id(layer) -> index, so a shared layer comes back shared

    def __call__(self, obj, path):
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, list):
            return [self(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {_KIND: "tuple", "items": [self(v, f"{path}[{i}]") for i, v in
                                              enumerate(obj)]}
        if isinstance(obj, dict):
            if not all(isinstance(k, str) for k in obj):
                raise _advice(path, obj, "a dict with non-string keys")
            return {_KIND: "dict", "items": {k: self(v, f"{path}[{k!r}]") for k, v in
                                             obj.items()}}
        if isinstance(obj, (np.ndarray, np.generic)):
            if obj.dtype.kind not in "biuf":
                raise _advice(path, obj, f"a NumPy array of dtype {obj.dtype}")
            return _array_config(obj, "ndarray" if isinstance(obj, np.ndarray) else "scalar")
        if isinstance(obj, tf.DType):
            return {_KIND: "dtype", "name": obj.name}
        if isinstance(obj, tf.TensorShape):
            return {_KIND: "shape", "dims": None if obj.rank is None else obj.as_list()}
        if isinstance(obj, keras.layers.Layer):
            return self._keras_layer(obj, path)
        if isinstance(obj, keras.Variable):
            raise _advice(path, obj, "a keras.Variable used as a TFP parameter (TFP turns it "
                          "into a constant; pass a tf.Variable or TransformedVariable)")
        if isinstance(obj, tfp.util.TransformedVariable):
            return {_KIND: "transformed_variable", "value": _array_config(obj.numpy(), "ndarray"),
                    "bijector": self(obj.bijector, f"{path}.bijector"),
                    "dtype": obj.dtype.name, "name": obj.name}
        if isinstance(obj, tfp.util.DeferredTensor):
            return {_KIND: "deferred_tensor",
                    "pretransformed_input": self(obj.pretransformed_input,
                                                 f"{path}.pretransformed_input"),
                    "transform_fn": self(obj.transform_fn, f"{path}.transform_fn"),
                    "dtype": obj.dtype.name, "name": obj.name}
        if isinstance(obj, tf.Variable):
            return {_KIND: "variable", "value": _array_config(obj.numpy(), "ndarray"),
                    "trainable": bool(obj.trainable), "name": obj.name.split(":")[0]}
        if isinstance(obj, tf.Tensor):
            if not hasattr(obj, "numpy"):
                raise _advice(path, obj, "a symbolic tensor")
            return _array_config(obj.numpy(), "tensor")
        if isinstance(obj, (tfb.Bijector, tfd.Distribution)):
            return self._tfp_object(obj, path)
        key = _registered_key(type(obj))
        if key is not None and hasattr(obj, "get_config"):
            config = obj.get_config()
            return {_KIND: "object", "class": key,
                    "config": {k: self(v, f"{path}.{k}") for k, v in config.items()}}
        if inspect.isfunction(obj) and obj.__name__ == "<lambda>":
            why = "a lambda"
        elif inspect.isfunction(obj) or inspect.ismethod(obj):
            why = ("a Python function (e.g. a bijector_fn closure); functions have no config. "
                   "Wrap it in a class with get_config() registered with "
                   "@tfp_flows.serialization.register_serializable to make it saveable")
        elif any(c.__module__.startswith(("tf_keras", "keras.src.legacy", "tensorflow.python"
                                          ".keras")) for c in type(obj).__mro__):
            why = "a tf_keras (Keras 2) layer, which Keras 3 cannot serialise"
        else:
            why = (f"objects of type {type(obj).__module__}.{type(obj).__qualname__} have no "
                   f"registered config")
        raise _advice(path, obj, why)

    def _keras_layer(self, layer, path):
        if id(layer) in self._layer_ids:
            return {_KIND: "shared_keras_layer", "index": self._layer_ids[id(layer)]}
        self._layer_ids[id(layer)] = len(self._layer_ids)
        try:
            config = keras.saving.serialize_keras_object(layer)
        except (NotImplementedError, TypeError, ValueError) as e:
            raise _advice(path, layer, f"the Keras layer has no complete get_config ({e})") from e
        return {_KIND: "keras_layer", "index": self._layer_ids[id(layer)], "config": config}

    def _tfp_object(self, obj, path):
        cls = type(obj)
        key = _class_key(cls)
        if key is None:
            raise _advice(path, obj, f"{cls.__module__}.{cls.__qualname__} is neither a TFP "
                          f"class nor in {_OWN_BIJECTOR_PACKAGE}; register it with "
                          f"@tfp_flows.serialization.register_serializable or "
                          f"@keras.saving.register_keras_serializable")
        if getattr(obj, "_parameters", None) is None:
            raise NotSerializableError(
                f"Cannot save {path}: {cls.__qualname__} was built without its constructor "
                f"arguments. Make `parameters = dict(locals())` the first line of its "
                f"__init__ and pass `parameters=parameters` to super().__init__(...).")
        init = inspect.signature(_class_from_key(key).__init__).parameters
        parameters = {}
        for name, value in obj.parameters.items():
            kind = init[name].kind if name in init else None
            if kind is inspect.Parameter.VAR_KEYWORD:  # **kwargs: its items are arguments
                parameters.update(value or {})
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise _advice(f"{path}.{name}", value, "positional *args cannot be saved")
            else:
                parameters[name] = value
        arguments = {}
        for name, value in parameters.items():
            default = init[name].default if name in init else inspect.Parameter.empty
            if name != "name" and value is default:
                continue
            arguments[name] = self(value, f"{path}.{name}")
        return {_KIND: "tfp", "class": key, "parameters": arguments}


def serialize(obj, path="distribution"):
    """A JSON-able config of `obj` (a distribution, bijector or container of them).

    Raises `NotSerializableError` naming the first part (by its path, e.g.
    `distribution.bijector.bijectors[0].bijector_fn`) that has no config.
    """
    return _Serializer()(obj, path)


# ---------------------------------------------------------------------------- deserialize
class _Deserializer:
    def __init__(self, safe_mode):
        self._safe_mode = safe_mode
        self._layers = {}

    def __call__(self, config):
        if isinstance(config, list):
            return [self(v) for v in config]
        if not isinstance(config, dict):
            return config
        kind = config.get(_KIND)
        if kind == "tuple":
            return tuple(self(v) for v in config["items"])
        if kind == "dict":
            return {k: self(v) for k, v in config["items"].items()}
        if kind in ("ndarray", "scalar", "tensor"):
            value = np.array(config["value"], dtype=config["dtype"]).reshape(config["shape"])
            if kind == "tensor":
                return tf.constant(value)
            return value if kind == "ndarray" else value[()]
        if kind == "dtype":
            return tf.as_dtype(config["name"])
        if kind == "shape":
            return tf.TensorShape(config["dims"])
        if kind == "keras_layer":
            layer = keras.saving.deserialize_keras_object(config["config"],
                                                          safe_mode=self._safe_mode)
            self._layers[config["index"]] = layer
            return layer
        if kind == "shared_keras_layer":
            return self._layers[config["index"]]
        if kind == "variable":
            return tf.Variable(self(config["value"]), trainable=config["trainable"],
                               name=config["name"])
        if kind == "transformed_variable":
            return tfp.util.TransformedVariable(self(config["value"]), self(config["bijector"]),
                                                dtype=config["dtype"], name=config["name"])
        if kind == "deferred_tensor":
            return tfp.util.DeferredTensor(self(config["pretransformed_input"]),
                                           self(config["transform_fn"]), dtype=config["dtype"],
                                           name=config["name"])
        if kind == "tfp":
            cls = _class_from_key(config["class"])
            return cls(**{k: self(v) for k, v in config["parameters"].items()})
        if kind == "object":
            cls = _class_from_key(config["class"])
            arguments = {k: self(v) for k, v in config["config"].items()}
            if hasattr(cls, "from_config"):
                return cls.from_config(arguments)
            return cls(**arguments)
        raise ValueError(f"Not a tfp_flows.serialization config: {config!r:.200}")


def deserialize(config, *, safe_mode=None):
    """Rebuild what `serialize` saved. Keras layers follow `safe_mode` (None: Keras' current
    setting, True inside `keras.saving.load_model(..., safe_mode=True)`)."""
    if safe_mode is None:
        from keras.src.saving import serialization_lib

        in_safe_mode = serialization_lib.in_safe_mode()
        safe_mode = True if in_safe_mode is None else in_safe_mode
    return _Deserializer(safe_mode)(config)


# ---------------------------------------------------------------------------- FlowModel
def _keyword_arguments(model):
    """FlowModel's keyword-only constructor arguments and their current values."""
    values = {}
    for name, param in inspect.signature(type(model).__init__).parameters.items():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        for attribute in (name, f"_{name}"):
            if hasattr(model, attribute):
                values[name] = getattr(model, attribute)
                break
        else:
            raise NotImplementedError(
                f"{type(model).__name__}.get_config cannot find the value of its constructor "
                f"argument {name!r} (no attribute {name!r} or '_{name}'); store it so the "
                f"model can be saved.")
    return values


def flow_model_config(model):
    """`FlowModel.get_config()`: name, dtype, keyword arguments and the distribution."""
    config = {"name": model.name, "trainable": model.trainable,
              "dtype": model.dtype_policy.name}
    for name, value in _keyword_arguments(model).items():
        config[name] = serialize(value, path=f"{type(model).__name__}.{name}")
    config["distribution"] = serialize(model.distribution)
    return config


def flow_model_from_config(cls, config):
    """`FlowModel.from_config(config)`: rebuild the distribution, then the model."""
    config = dict(config)
    distribution = deserialize(config.pop("distribution"))
    keywords = {k: deserialize(v) for k, v in config.items()
                if k not in ("name", "trainable", "dtype")}
    model = cls(distribution, name=config.get("name"), dtype=config.get("dtype"), **keywords)
    model.trainable = config.get("trainable", True)
    return model
