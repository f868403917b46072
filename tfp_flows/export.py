"""SavedModel export of a `FlowModel`, loadable by `tf.saved_model.load` and TF Serving.

Signatures:
  * `serving_default`, `log_prob`: x [batch, *event_shape] -> {"log_prob": [batch]}
  * `sample`: n (int32 scalar), seed (int32 [2], a stateless seed) -> {"samples": [n, *event]}

The export holds only TF ops and the variables' values: loading it needs TensorFlow, not
tfp_flows. TF Serving expects `<model dir>/<version>/`; `next_version_dir` picks the next
free integer version so an export never overwrites an older one.
"""

import os
import shutil

import tensorflow as tf

from tfp_flows.variable_discovery import underlying_tf_variable


class _FlowSignatures(tf.Module):
    def __init__(self, model):
        super().__init__(name="flow")
        self.distribution = model.distribution
        self.conditioners = list(model._conditioner_layers)
        self.all_variables = [underlying_tf_variable(v) for v in model.weights]
        event = model.event_shape.as_list()
        dtype = model.distribution.dtype
        dist = model.distribution

        @tf.function(input_signature=[tf.TensorSpec([None, *event], dtype, name="x")])
        def log_prob(x):
            return {"log_prob": dist.log_prob(x)}

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="n"),
                                      tf.TensorSpec([2], tf.int32, name="seed")])
        def sample(n, seed):
            return {"samples": dist.sample(n, seed=seed)}

        self.log_prob = log_prob
        self.sample = sample


def next_version_dir(model_dir):
    """`model_dir/<k>` for the smallest integer k above every existing version (1 if none)."""
    versions = []
    if os.path.isdir(model_dir):
        versions = [int(d) for d in os.listdir(model_dir) if d.isdigit()]
    return os.path.join(model_dir, str(max(versions, default=0) + 1))


def export_saved_model(model, path, *, overwrite=False):
    """Export `model` (a `FlowModel`) as a SavedModel at `path`; returns `path`.

    Refuses to write into an existing non-empty folder unless `overwrite=True`.
    """
    if os.path.isdir(path) and os.listdir(path):
        if not overwrite:
            raise FileExistsError(f"{path} already holds files; pick a new version folder "
                                  "(tfp_flows.export.next_version_dir) or pass overwrite=True.")
        shutil.rmtree(path)
    module = _FlowSignatures(model)
    signatures = {"serving_default": module.log_prob, "log_prob": module.log_prob,
                  "sample": module.sample}
    tf.saved_model.save(module, path, signatures=signatures)
    return path
