"""Make tests/data/old_export/: a tiny exported flow and the outputs it gave when exported.

    python tests/data/make_old_export.py            # refuses if the data already exists

The SavedModel is about 280 KB on disk (TFP's graphs for five signatures; about 27 KB
compressed in git), the smallest a real flow with a Keras conditioner gives.
`tests/test_old_exports.py` loads this export with today's code and checks that every
signature still returns the recorded numbers, so a change that would break users' saved
models fails CI. Do not regenerate the data to make that test pass: the point is that the
export was written by older code. Regenerate only on purpose (`--force`), e.g. to add a
signature, and say so in the commit message.
"""

import argparse
import json
import os
import platform
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import tfp_flows  # noqa: E402
from tfp_flows import models  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EXPORT_DIR = os.path.join(HERE, "old_export")
X = [[0.5, -0.2], [1.0, 0.3], [-1.5, 0.8], [0.0, 0.0]]  # data points
Z = [[0.1, 0.4], [-0.7, 1.2]]  # latent points
SAMPLE = {"n": 3, "seed": [0, 7]}


def build_model():
    """A 2-D RealNVP with one coupling layer of 4 hidden units, moved off the identity."""
    model = models.build("realnvp", 2, num_layers=1, hidden_units=(4,), seed=0)
    for i, v in enumerate(model.trainable_variables):
        v.assign(v + 0.2 * tf.random.stateless_normal(v.shape, [i, 42], dtype=v.dtype))
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="replace the existing data")
    args = parser.parse_args()
    if os.path.exists(EXPORT_DIR):
        if not args.force:
            raise SystemExit(f"{EXPORT_DIR} exists; regenerating it would hide breakage "
                             f"(see this script's docstring). Pass --force on purpose.")
        shutil.rmtree(EXPORT_DIR)
    model = build_model()
    path = model.export(EXPORT_DIR, version=1)
    loaded = tf.saved_model.load(path)
    sig = loaded.signatures
    x, z = tf.constant(X, tf.float32), tf.constant(Z, tf.float32)
    forward, inverse = sig["forward"](x=z), sig["inverse"](x=x)
    outputs = {
        "log_prob": sig["log_prob"](x=x)["log_prob"],
        "samples": sig["sample"](n=tf.constant(SAMPLE["n"]),
                                 seed=tf.constant(SAMPLE["seed"]))["samples"],
        "forward_y": forward["y"], "forward_log_det": forward["log_det"],
        "inverse_y": inverse["y"], "inverse_log_det": inverse["log_det"]}
    record = {
        "made_with": {"tfp_flows": tfp_flows.__version__, "tensorflow": tf.__version__,
                      "tensorflow_probability": tfp.__version__,
                      "python": platform.python_version()},
        "inputs": {"x": X, "z": Z, "sample": SAMPLE},
        # float32 values written as the exact decimal of the float32, via float64.
        "outputs": {k: np.asarray(v.numpy(), np.float64).tolist() for k, v in outputs.items()},
    }
    with open(os.path.join(EXPORT_DIR, "expected.json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(EXPORT_DIR)
                for n in names)
    print(f"wrote {EXPORT_DIR} ({total} bytes)")


if __name__ == "__main__":
    main()
