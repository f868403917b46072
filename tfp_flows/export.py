"""SavedModel export of a `FlowModel`, loadable by `tf.saved_model.load` and TF Serving.

Signatures (batch dimension dynamic, event shape and dtype fixed):
  * `serving_default`, `log_prob`: x [batch, *event_shape] -> {"log_prob": [batch]}
  * `sample`: n (int32 scalar), seed (int32 [2], a stateless seed) -> {"samples": [n, *event]}
    (their signature shapes read "unknown rank" and [-1]; the sizes are checked at run time).
    n must lie in 0..max_samples, a limit fixed at export (`DEFAULT_MAX_SAMPLES` unless
    `max_samples=` is given), so one request cannot exhaust the server's memory.
  * `forward`: x [batch, *base_event_shape] (a latent point) -> {"y": the data point
    bijector.forward(x), "log_det": log|det dy/dx|, [batch]}
  * `inverse`: x [batch, *event_shape] (a data point) -> {"y": its latent point
    bijector.inverse(x), "log_det": log|det d bijector^-1(x)/dx|, [batch]}

`forward`/`inverse` exist when the distribution is a `tfd.TransformedDistribution` (every
continuous zoo model). A conditional model (`context_shape` set) gets an extra input
`context` [batch, *context_shape] in `log_prob` and `sample` (then samples are
[n, batch, *event] and n × batch must lie within max_samples); it has no
`forward`/`inverse` signatures. `log_prob` and `sample` run the model's own `log_prob` and
`sample`, so whatever the model does to its inputs (e.g. standardisation) is exported too.

Models of discrete data (`tfp_flows.dequantization.DequantizedDistribution`: glow, flowpp,
`building_blocks.on_discrete_levels`): `log_prob` checks in the graph that x holds integer
levels 0..L-1 (a request with NaN, out-of-range values or pixels scaled to [0, 1] fails with
one line saying so) and returns a deterministic estimate of log P(x): the importance-weighted
bound over `dequantization_draws` fixed noise draws (see
`DequantizedDistribution.fixed_noise_log_prob`), equal for equal requests.

The export holds only TF ops and the variables' values: loading it needs TensorFlow, neither
tfp_flows nor TensorFlow Probability. TF Serving serves `<model dir>/<version>/` and picks
up new integer versions by itself: `export_saved_model(model, "saved_models/maf")` writes
the SavedModel under a unique temporary name in the model folder and renames it, when
complete, to the next free version (so a server never loads half an export). The version is
picked at the rename, which fails if another export took that number first (the rename of a
folder onto a non-empty folder fails atomically); then the next number is tried. An existing
version is never replaced unless `overwrite=True`.

`signature_spec(model)` and `read_signature_spec(version_folder)` describe the signatures
(inputs with dtypes and shapes, outputs with dtypes) of a model and of an export, and
`signature_mismatch(model, model_folder)` compares a model with the newest export there: a
client written for one version keeps working with the next only if they match.
"""

import errno
import os
import shutil
import tempfile

import tensorflow as tf

from tfp_flows import dequantization
from tfp_flows import flow_model as flow_model_module
from tfp_flows.flow_model import flow_bijector
from tfp_flows.variable_discovery import underlying_tf_variable

SIGNATURE_NAMES = ("serving_default", "log_prob", "sample", "forward", "inverse")
DEFAULT_MAX_SAMPLES = 100_000
"""Default limit on n in the exported `sample` signature (n × context rows if conditional)."""
DEFAULT_DEQUANTIZATION_DRAWS = 8
"""Default number of fixed noise draws in the exported `log_prob` of a dequantized model."""


def _checked(tensor, dims, signature, name):
    """`tensor` after a runtime check that its shape is `dims` (None: any size).

    A loaded SavedModel function checks the dtype of its inputs but not their shapes, while
    its graph optimiser trusts the static shape of the signature and would fold a check on
    it away. So the check runs on a copy whose static shape is hidden, and what continues is
    that copy, passed through the check and with its static shape restored: a wrong shape
    fails with a message naming the signature, the input and both shapes.
    """
    expected = ", ".join("batch" if d is None else str(d) for d in dims)
    hidden = tf.raw_ops.PlaceholderWithDefault(input=tensor, shape=tf.TensorShape(None))
    shape = tf.shape(hidden, out_type=tf.int32)
    ok = tf.equal(tf.size(shape), len(dims))
    fixed = [i for i, d in enumerate(dims) if d is not None]
    if fixed:  # padded so that the gather stays in range whatever the rank
        padded = tf.concat([shape, tf.zeros([len(dims)], tf.int32)], 0)
        ok = tf.logical_and(ok, tf.reduce_all(tf.equal(
            tf.gather(padded, fixed), tf.constant([dims[i] for i in fixed], tf.int32))))
    message = (f"signature {signature}: input {name} must have shape [{expected}] and dtype "
               f"{tensor.dtype.name}; got shape")

    def fail():
        with tf.control_dependencies([tf.debugging.Assert(False, [message, shape])]):
            return tf.identity(hidden)

    # What continues depends on the check through data, not only a control edge.
    checked = tf.cond(ok, lambda: tf.identity(hidden), fail, name=f"check_{name}_shape")
    checked.set_shape(dims)  # static only: a runtime EnsureShape could fail before the check
    return checked


def _checked_count(n, rows, max_samples, signature):
    """n after a runtime check that 0 <= n and n × rows <= max_samples (rows: None or a
    scalar int32 tensor, the number of contexts)."""
    if rows is None:
        ok = tf.logical_and(n >= 0, n <= max_samples)
        message = (f"signature {signature}: n must be in 0..{max_samples} (the limit on "
                   f"samples per request set at export, max_samples={max_samples}); got n =")
        data = [message, n]
    else:
        total = tf.cast(n, tf.int64) * tf.cast(rows, tf.int64)
        ok = tf.logical_and(n >= 0, total <= max_samples)
        message = (f"signature {signature}: n must be >= 0 and n × context rows at most "
                   f"{max_samples} (the limit on samples per request set at export, "
                   f"max_samples={max_samples}); got n, context rows =")
        data = [message, n, rows]

    def fail():
        with tf.control_dependencies([tf.debugging.Assert(False, data)]):
            return tf.identity(n)

    return tf.cond(ok, lambda: tf.identity(n), fail, name="check_n")


def _check_max_samples(max_samples):
    if isinstance(max_samples, bool) or int(max_samples) != max_samples or max_samples < 1 \
            or max_samples > 2**31 - 1:
        raise ValueError(f"max_samples must be an integer in 1..{2**31 - 1}; got "
                         f"{max_samples!r}.")
    return int(max_samples)


def _check_draws(draws):
    if isinstance(draws, bool) or int(draws) != draws or draws < 1:
        raise ValueError(f"dequantization_draws must be an integer >= 1; got {draws!r}.")
    return int(draws)


def _input_specs(model):
    """{signature: [tf.TensorSpec, ...]} of the inputs, in argument order.

    One source for the signatures that `_FlowSignatures` builds and for `signature_spec`.
    n: a scalar and seed: [2], checked at run time; their specs leave the shape open, as a
    fully defined spec would let the graph optimiser fold the shape check away.
    """
    dtype = model.distribution.dtype
    x_spec = tf.TensorSpec([None, *model.event_shape.as_list()], dtype, name="x")
    n_spec = tf.TensorSpec(None, tf.int32, name="n")
    seed_spec = tf.TensorSpec([None], tf.int32, name="seed")
    context_shape = getattr(model, "context_shape", None)
    if context_shape is not None:
        context_spec = tf.TensorSpec([None, *context_shape.as_list()], dtype, name="context")
        specs = {"log_prob": [x_spec, context_spec], "sample": [n_spec, seed_spec, context_spec]}
    else:
        specs = {"log_prob": [x_spec], "sample": [n_spec, seed_spec]}
    specs = {"serving_default": specs["log_prob"], **specs}
    latent = _latent_event(model)
    if latent is not None:
        specs["forward"] = [tf.TensorSpec([None, *latent.as_list()], dtype, name="x")]
        specs["inverse"] = [x_spec]
    return specs


def _latent_event(model):
    """The base event shape of an unconditional flow (forward/inverse exported), else None."""
    dist = model.distribution
    if getattr(model, "context_shape", None) is not None or flow_bijector(dist) is None:
        return None
    base_event = dist.distribution.event_shape
    if isinstance(base_event, tf.TensorShape) and base_event.is_fully_defined():
        return base_event
    return None


_OUTPUTS = {"serving_default": ("log_prob",), "log_prob": ("log_prob",), "sample": ("samples",),
            "forward": ("y", "log_det"), "inverse": ("y", "log_det")}


class _FlowSignatures(tf.Module):
    """The exported object: the flow's variables and its signature functions."""

    def __init__(self, model, max_samples=DEFAULT_MAX_SAMPLES,
                 dequantization_draws=DEFAULT_DEQUANTIZATION_DRAWS):
        super().__init__(name="flow")
        self.distribution = model.distribution
        self.conditioners = list(model._conditioner_layers)
        self.all_variables = [underlying_tf_variable(v) for v in model.weights]
        dist = model.distribution
        event = model.event_shape.as_list()
        x_dims = [None, *event]
        specs = _input_specs(model)
        # In-graph check of the data's support, if the distribution has one (discrete levels).
        check_support = getattr(dist, "check_data_in_graph", None)

        def checked_x(x, signature):
            x = _checked(x, x_dims, signature, "x")
            return x if check_support is None else check_support(x, f"signature {signature}: "
                                                                    f"input x")

        def density(x, context=None):
            # Fixed noise: a dequantized model's log_prob is deterministic when served.
            with dequantization.fixed_noise(dequantization_draws):
                return model.log_prob(x, context)

        if model.context_shape is None:
            @tf.function(input_signature=specs["log_prob"])
            def log_prob(x):
                return {"log_prob": density(checked_x(x, "log_prob"))}

            @tf.function(input_signature=specs["sample"])
            def sample(n, seed):
                n, seed = _checked(n, [], "sample", "n"), _checked(seed, [2], "sample", "seed")
                n = _checked_count(n, None, max_samples, "sample")
                return {"samples": model.sample(n, seed=seed)}
        else:
            context_dims = [None, *model.context_shape.as_list()]

            @tf.function(input_signature=specs["log_prob"])
            def log_prob(x, context):
                x = checked_x(x, "log_prob")
                context = _checked(context, context_dims, "log_prob", "context")
                return {"log_prob": density(x, context)}

            @tf.function(input_signature=specs["sample"])
            def sample(n, seed, context):
                n, seed = _checked(n, [], "sample", "n"), _checked(seed, [2], "sample", "seed")
                context = _checked(context, context_dims, "sample", "context")
                n = _checked_count(n, tf.shape(context)[0], max_samples, "sample")
                return {"samples": model.sample(n, context, seed=seed)}

        self.log_prob, self.sample = log_prob, sample
        signatures = {"serving_default": log_prob, "log_prob": log_prob, "sample": sample}

        if "forward" in specs:
            bijector = flow_bijector(dist)
            latent_dims = specs["forward"][0].shape.as_list()
            base_ndims, event_ndims = len(latent_dims) - 1, len(event)

            @tf.function(input_signature=specs["forward"])
            def forward(x):
                x = _checked(x, latent_dims, "forward", "x")
                return {"y": bijector.forward(x),
                        "log_det": bijector.forward_log_det_jacobian(x, event_ndims=base_ndims)}

            @tf.function(input_signature=specs["inverse"])
            def inverse(x):
                x = _checked(x, x_dims, "inverse", "x")
                return {"y": bijector.inverse(x),
                        "log_det": bijector.inverse_log_det_jacobian(
                            x, event_ndims=event_ndims)}

            self.forward, self.inverse = forward, inverse
            signatures.update(forward=forward, inverse=inverse)
        self._signature_functions = signatures  # not an attribute named "signatures" (reserved)


# ---------------------------------------------------------------------------- signature specs
def _shape_list(shape):
    shape = tf.TensorShape(shape)
    return None if shape.rank is None else [None if d is None else int(d) for d in shape]


def signature_spec(model) -> dict:
    """What an export of `model` offers its clients, without exporting it.

    Returns {signature name: {"inputs": {name: {"dtype": "float32", "shape": [None, 2]}},
    "outputs": {name: {"dtype": ...}}}}; a shape entry None is a dynamic size, a shape None
    an unknown rank (`n`). Equal to `read_signature_spec` of the model's export.
    """
    dtype = tf.as_dtype(model.distribution.dtype).name
    spec = {}
    for name, inputs in _input_specs(model).items():
        spec[name] = {
            "inputs": {s.name: {"dtype": s.dtype.name, "shape": _shape_list(s.shape)}
                       for s in inputs},
            "outputs": {o: {"dtype": dtype} for o in _OUTPUTS[name]}}
    return spec


def read_signature_spec(version_folder) -> dict:
    """`signature_spec` of an exported SavedModel (a version folder), read from its
    saved_model.pb without loading the graph; only the signatures this module writes."""
    from tensorflow.python.saved_model import loader_impl

    saved_model = loader_impl.parse_saved_model(os.fspath(version_folder))
    signature_defs = saved_model.meta_graphs[0].signature_def

    def shape(proto):
        return None if proto.unknown_rank else [None if d.size < 0 else int(d.size)
                                                for d in proto.dim]

    return {name: {"inputs": {key: {"dtype": tf.as_dtype(t.dtype).name,
                                    "shape": shape(t.tensor_shape)}
                              for key, t in sorted(signature_defs[name].inputs.items())},
                   "outputs": {key: {"dtype": tf.as_dtype(t.dtype).name}
                               for key, t in sorted(signature_defs[name].outputs.items())}}
            for name in SIGNATURE_NAMES if name in signature_defs}


def existing_versions(model_folder) -> list:
    """The integer versions in `model_folder`, ascending (none: [])."""
    model_folder = os.fspath(model_folder)
    if not os.path.isdir(model_folder):
        return []
    return sorted(int(d) for d in os.listdir(model_folder) if d.isdigit())


def signature_mismatch(model, model_folder) -> str | None:
    """How `model`'s signatures differ from those of the newest export (the highest version
    holding a saved_model.pb) in `model_folder`: None if they agree or there is no export
    yet, else one line naming the differences
    (e.g. "version 3 takes log_prob x float32 [None, 2], this model [None, 3]")."""
    exports = [v for v in existing_versions(model_folder) if os.path.isfile(
        os.path.join(os.fspath(model_folder), str(v), "saved_model.pb"))]
    if not exports:
        return None
    newest = exports[-1]
    folder = os.path.join(os.fspath(model_folder), str(newest))
    old, new = read_signature_spec(folder), signature_spec(model)
    differences = []
    for name in sorted(set(old) | set(new), key=lambda s: SIGNATURE_NAMES.index(s)):
        if name not in new:
            differences.append(f"version {newest} has signature {name}, this model has not")
        elif name not in old:
            differences.append(f"this model has signature {name}, version {newest} has not")
        else:
            for part in ("inputs", "outputs"):
                a, b = old[name][part], new[name][part]
                for key in sorted(set(a) | set(b)):
                    if a.get(key) != b.get(key):
                        differences.append(f"{name} {part[:-1]} {key}: version {newest} "
                                           f"{_describe(a.get(key))}, this model "
                                           f"{_describe(b.get(key))}")
    return "; ".join(differences) or None


def _describe(entry):
    if entry is None:
        return "none"
    if "shape" not in entry:
        return entry["dtype"]
    shape = entry["shape"]
    return f"{entry['dtype']} {'any shape' if shape is None else shape}"


# ---------------------------------------------------------------------------- versions
def next_version_dir(model_dir):
    """`model_dir/<k>` for the smallest integer k above every existing version (1 if none).

    A hint only: two exports may read the same k; `export_saved_model(model, model_dir)`
    picks the version when it renames the finished export, which never takes a version that
    another export wrote meanwhile.
    """
    return os.path.join(os.fspath(model_dir), str(max(existing_versions(model_dir),
                                                       default=0) + 1))


def version_dir(path, version=None):
    """Where `export_saved_model(model, path, version=version)` writes (if not raced).

    `version` given: `path/<version>`. Else a `path` whose last part is an integer is taken
    as the version folder itself; any other `path` is the model folder, and the next free
    version inside it is used (`next_version_dir`).
    """
    target, explicit = _target(path, version)
    return target if explicit else next_version_dir(target)


def _target(path, version):
    """(version folder, True) for an explicit version, else (model folder, False)."""
    path = os.fspath(path).rstrip(os.sep) or os.sep
    if version is not None:
        if isinstance(version, bool) or int(version) < 0 or str(version) != str(int(version)):
            raise ValueError(f"version must be a non-negative integer; got {version!r}.")
        return os.path.join(path, str(int(version))), True
    if os.path.basename(path).isdigit():
        return path, True
    return path, False


def _holds_files(folder):
    return os.path.isdir(folder) and bool(os.listdir(folder))


def _refuse_existing(target):
    if os.path.exists(target) and not os.path.isdir(target):
        raise FileExistsError(f"{target} exists and is not a folder.")
    raise FileExistsError(f"{target} already holds files; pick a new version folder "
                          "(the default for a model folder) or pass overwrite=True.")


def _rename_folder(source, target):
    """Rename `source` to `target`; False if `target` holds files (taken), atomically."""
    try:
        os.rename(source, target)
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST) or os.path.exists(target):
            return False
        raise
    return True


def _replace_folder(source, target):
    """Put `source` at `target`, replacing what is there (overwrite=True)."""
    if _rename_folder(source, target):
        return
    if not os.path.isdir(target):
        _refuse_existing(target)
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}-replaced-",
                           dir=os.path.dirname(target))
    os.rename(target, os.path.join(old, "version"))
    os.rename(source, target)
    shutil.rmtree(old, ignore_errors=True)


def export_saved_model(model, path, *, version=None, overwrite=False,
                       max_samples=DEFAULT_MAX_SAMPLES,
                       dequantization_draws=DEFAULT_DEQUANTIZATION_DRAWS) -> str:
    """Export `model` (a `FlowModel`) as a SavedModel for TF Serving; returns its folder.

    Args:
      model: the `FlowModel`.
      path: the model folder (e.g. "saved_models/maf": the next free version is written,
        "saved_models/maf/3") or a version folder ("saved_models/maf/3").
      version: an explicit integer version inside `path`.
      overwrite: replace an existing non-empty version folder (default: refuse).
      max_samples: the largest n the `sample` signature accepts (n × context rows for a
        conditional model); larger requests fail with InvalidArgument naming the limit.
      dequantization_draws: K, the fixed noise draws averaged (importance-weighted) in
        `log_prob` of a dequantized model; ignored by other models.

    Several exports may run at once, in threads or processes: each writes under its own
    temporary name, and each ends as its own version (or, for an explicit version taken by
    another export, raises FileExistsError), never removing another's output.
    """
    max_samples = _check_max_samples(max_samples)
    dequantization_draws = _check_draws(dequantization_draws)
    target, explicit = _target(path, version)
    if explicit and not overwrite and (os.path.exists(target) and (
            not os.path.isdir(target) or _holds_files(target))):
        _refuse_existing(target)
    model_folder = os.path.dirname(os.path.abspath(target)) if explicit else target
    os.makedirs(model_folder, exist_ok=True)
    module = _FlowSignatures(model, max_samples, dequantization_draws)
    name = os.path.basename(target) if explicit else "export"
    staging = tempfile.mkdtemp(prefix=f".{name}-incomplete-", dir=model_folder)
    try:
        tf.saved_model.save(module, staging, signatures=module._signature_functions)
        os.chmod(staging, 0o755)  # mkdtemp's 0o700 would hide it from a server's user
        if explicit:
            if overwrite:
                _replace_folder(staging, target)
            elif not _rename_folder(staging, target):
                _refuse_existing(target)  # another export took it meanwhile
        else:
            for _ in range(1000):
                target = next_version_dir(model_folder)
                if _rename_folder(staging, target):
                    break
            else:
                raise FileExistsError(f"Could not find a free version in {model_folder}.")
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
    return target


def _write_tf_saved_model(model, filepath, *, verbose=None, input_signature=None, **kwargs):
    """`FlowModel.export(filepath, format="tf_saved_model", ...)`."""
    if input_signature is not None:
        raise ValueError("FlowModel.export builds its signatures from the event shape "
                         "(x: [batch, *event_shape]) and takes no input_signature; leave it "
                         "out.")
    path = export_saved_model(model, filepath, **kwargs)
    if verbose is None or verbose:  # Keras' default for tf_saved_model: print
        print(f"Saved artifact at '{path}'. Signatures: "
              f"{', '.join(read_signature_spec(path))}.")
    return path


flow_model_module.register_export_format("tf_saved_model", _write_tf_saved_model)
