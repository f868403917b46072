"""SavedModel export of a `FlowModel`, loadable by `tf.saved_model.load` and TF Serving.

Signatures (batch dimension dynamic, event shape and dtype fixed):
  * `serving_default`, `log_prob`: x [batch, *event_shape] -> {"log_prob": [batch]}
  * `sample`: n (int32 scalar), seed (int32 [2], a stateless seed) -> {"samples": [n, *event]}
    (their signature shapes read "unknown rank" and [-1]; the sizes are checked at run time)
  * `forward`: x [batch, *base_event_shape] (a latent point) -> {"y": the data point
    bijector.forward(x), "log_det": log|det dy/dx|, [batch]}
  * `inverse`: x [batch, *event_shape] (a data point) -> {"y": its latent point
    bijector.inverse(x), "log_det": log|det d bijector^-1(x)/dx|, [batch]}

`forward`/`inverse` exist when the distribution is a `tfd.TransformedDistribution` (every
zoo model). A conditional model (`context_shape` set) gets an extra input `context`
[batch, *context_shape] in `log_prob` and `sample` (then samples are [n, batch, *event]);
it has no `forward`/`inverse` signatures.

The export holds only TF ops and the variables' values: loading it needs TensorFlow, neither
tfp_flows nor TensorFlow Probability. TF Serving serves `<model dir>/<version>/` and picks
up new integer versions by itself: `export_saved_model(model, "saved_models/maf")` writes
the next free version, writes it under a temporary name first and renames it when complete
(so a server never loads half an export) and never replaces an existing version unless
`overwrite=True`.
"""

import os
import shutil
import tempfile

import tensorflow as tf

from tfp_flows.flow_model import flow_bijector
from tfp_flows.variable_discovery import underlying_tf_variable

SIGNATURE_NAMES = ("serving_default", "log_prob", "sample", "forward", "inverse")


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


class _FlowSignatures(tf.Module):
    """The exported object: the flow's variables and its signature functions."""

    def __init__(self, model):
        super().__init__(name="flow")
        self.distribution = model.distribution
        self.conditioners = list(model._conditioner_layers)
        self.all_variables = [underlying_tf_variable(v) for v in model.weights]
        dist = model.distribution
        dtype = dist.dtype
        event = model.event_shape.as_list()
        x_dims = [None, *event]
        x_spec = tf.TensorSpec(x_dims, dtype, name="x")
        # n: a scalar and seed: [2], checked at run time. Their specs leave the shape open,
        # as a fully defined spec would let the graph optimiser fold the shape check away.
        n_spec = tf.TensorSpec(None, tf.int32, name="n")
        seed_spec = tf.TensorSpec([None], tf.int32, name="seed")
        context_shape = getattr(model, "context_shape", None)
        signatures = {}

        if context_shape is None:
            @tf.function(input_signature=[x_spec])
            def log_prob(x):
                return {"log_prob": dist.log_prob(_checked(x, x_dims, "log_prob", "x"))}

            @tf.function(input_signature=[n_spec, seed_spec])
            def sample(n, seed):
                n, seed = _checked(n, [], "sample", "n"), _checked(seed, [2], "sample", "seed")
                return {"samples": dist.sample(n, seed=seed)}
        else:
            context_dims = [None, *context_shape.as_list()]
            context_spec = tf.TensorSpec(context_dims, dtype, name="context")

            @tf.function(input_signature=[x_spec, context_spec])
            def log_prob(x, context):
                x = _checked(x, x_dims, "log_prob", "x")
                context = _checked(context, context_dims, "log_prob", "context")
                return {"log_prob": model.log_prob(x, context)}

            @tf.function(input_signature=[n_spec, seed_spec, context_spec])
            def sample(n, seed, context):
                n, seed = _checked(n, [], "sample", "n"), _checked(seed, [2], "sample", "seed")
                context = _checked(context, context_dims, "sample", "context")
                return {"samples": model.sample(n, context, seed=seed)}

        self.log_prob, self.sample = log_prob, sample
        signatures.update(serving_default=log_prob, log_prob=log_prob, sample=sample)

        bijector = flow_bijector(dist)
        if context_shape is None and bijector is not None \
                and isinstance(dist.distribution.event_shape, tf.TensorShape):
            base_event = dist.distribution.event_shape
            if base_event.is_fully_defined():
                latent_dims = [None, *base_event.as_list()]
                latent_spec = tf.TensorSpec(latent_dims, dtype, name="x")
                base_ndims, event_ndims = base_event.rank, len(event)

                @tf.function(input_signature=[latent_spec])
                def forward(x):
                    x = _checked(x, latent_dims, "forward", "x")
                    return {"y": bijector.forward(x),
                            "log_det": bijector.forward_log_det_jacobian(
                                x, event_ndims=base_ndims)}

                @tf.function(input_signature=[x_spec])
                def inverse(x):
                    x = _checked(x, x_dims, "inverse", "x")
                    return {"y": bijector.inverse(x),
                            "log_det": bijector.inverse_log_det_jacobian(
                                x, event_ndims=event_ndims)}

                self.forward, self.inverse = forward, inverse
                signatures.update(forward=forward, inverse=inverse)
        self._signature_functions = signatures  # not an attribute named "signatures" (reserved)


def next_version_dir(model_dir):
    """`model_dir/<k>` for the smallest integer k above every existing version (1 if none)."""
    versions = []
    if os.path.isdir(model_dir):
        versions = [int(d) for d in os.listdir(model_dir) if d.isdigit()]
    return os.path.join(model_dir, str(max(versions, default=0) + 1))


def version_dir(path, version=None):
    """Where `export_saved_model(model, path, version=version)` writes.

    `version` given: `path/<version>`. Else a `path` whose last part is an integer is taken
    as the version folder itself; any other `path` is the model folder, and the next free
    version inside it is used (`next_version_dir`).
    """
    path = os.fspath(path).rstrip(os.sep) or os.sep
    if version is not None:
        if int(version) < 0 or str(version) != str(int(version)):
            raise ValueError(f"version must be a non-negative integer; got {version!r}.")
        return os.path.join(path, str(int(version)))
    if os.path.basename(path).isdigit():
        return path
    return next_version_dir(path)


def export_saved_model(model, path, *, version=None, overwrite=False):
    """Export `model` (a `FlowModel`) as a SavedModel for TF Serving; returns its folder.

    Args:
      model: the `FlowModel`.
      path: the model folder (e.g. "saved_models/maf": the next version is written,
        "saved_models/maf/3") or a version folder ("saved_models/maf/3").
      version: an explicit integer version inside `path`.
      overwrite: replace an existing non-empty version folder (default: refuse).
    """
    target = version_dir(path, version)
    if os.path.isdir(target) and os.listdir(target) and not overwrite:
        raise FileExistsError(f"{target} already holds files; pick a new version folder "
                              "(the default for a model folder) or pass overwrite=True.")
    if os.path.exists(target) and not os.path.isdir(target):
        raise FileExistsError(f"{target} exists and is not a folder.")
    module = _FlowSignatures(model)
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}-incomplete-", dir=parent)
    try:
        tf.saved_model.save(module, staging, signatures=module._signature_functions)
        os.chmod(staging, 0o755)  # mkdtemp's 0o700 would hide it from a server's user
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
    return target
