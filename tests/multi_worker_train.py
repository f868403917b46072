"""One worker of a MultiWorkerMirroredStrategy run (started twice by tests/test_multi_worker.py).

Also a template for users (see the README, "Several GPUs and several machines"): every
machine runs this same script with its own `TF_CONFIG`, e.g. on worker 0 of two

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 0}}' python multi_worker_train.py OUT

The strategy is created first, before any other TensorFlow work. Every worker calls fit()
with the same data and the GLOBAL batch size; the strategy gives each worker its part of
every batch and all-reduces the gradients. Every worker also calls save() (saving may need
the other workers), but only the chief (worker 0) writes to the final location; the others
write to a scratch folder that they delete at once.

Usage: python multi_worker_train.py OUT_DIR
  prints one JSON line: {"task": i, "chief": bool, "losses": [...], "saved_to": path, ...};
  the chief then repeats the training on one device (outside the strategy's scope, same data
  and seed) and adds those losses as "single_device_losses", for the test's comparison.
"""

import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

# MultiWorkerMirroredStrategy must exist before TensorFlow runs anything else.
strategy = tf.distribute.MultiWorkerMirroredStrategy()

import keras  # noqa: E402

from tfp_flows import datasets, models  # noqa: E402

EPOCHS, BATCH_SIZE, SEED = 3, 256, 0


def is_chief(tf_config):
    """Worker 0 is the chief when the cluster has no explicit "chief" task."""
    task = tf_config.get("task", {})
    if "chief" in tf_config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and task.get("index", 0) == 0


def train(train_data, scope):
    """Build and fit the flow under `scope`; returns (model, per-epoch losses)."""
    keras.utils.set_random_seed(SEED)
    with scope:
        model = models.build("maf", 2, num_layers=2, hidden_units=(16,), seed=SEED)
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(train_data, epochs=EPOCHS, batch_size=BATCH_SIZE, shuffle=False,
                        verbose=0)
    return model, [float(v) for v in history.history["loss"]]


def main(out_dir):
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    chief = is_chief(tf_config)
    train_data, _, _ = datasets.load("two-moons", 2560, seed=SEED)  # 2048 rows: 8 batches
    model, losses = train(train_data, strategy.scope())

    final = os.path.join(out_dir, "flow.keras")
    # Every worker saves; only the chief writes to the final location.
    target_dir = out_dir if chief else tempfile.mkdtemp(prefix="tfp_flows_worker_")
    saved_to = os.path.join(target_dir, "flow.keras")
    model.save(saved_to)
    if not chief:
        shutil.rmtree(target_dir)
    report = {"task": tf_config.get("task", {}).get("index", 0), "chief": chief,
              "replicas": strategy.num_replicas_in_sync, "losses": losses,
              "saved_to": saved_to, "final": final}
    if chief:
        _, report["single_device_losses"] = train(train_data, tf.distribute.get_strategy()
                                                  .scope())
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
