"""An export written by older code (tests/data/old_export, made by make_old_export.py) still
loads and gives the outputs recorded when it was made. If this fails, users' exported
models break too: fix the change, do not regenerate the data."""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfp_flows import serving

DATA = Path(__file__).resolve().parent / "data" / "old_export"


def test_old_export_loads_and_gives_its_recorded_outputs():
    record = json.loads((DATA / "expected.json").read_text())
    loaded = tf.saved_model.load(str(DATA / "1"))
    assert set(loaded.signatures) >= {"serving_default", "log_prob", "sample", "forward",
                                      "inverse"}
    inputs, want = record["inputs"], record["outputs"]
    x = tf.constant(inputs["x"], tf.float32)
    z = tf.constant(inputs["z"], tf.float32)
    sig = loaded.signatures
    forward, inverse = sig["forward"](x=z), sig["inverse"](x=x)
    got = {"log_prob": sig["log_prob"](x=x)["log_prob"],
           "samples": sig["sample"](n=tf.constant(inputs["sample"]["n"]),
                                    seed=tf.constant(inputs["sample"]["seed"]))["samples"],
           "forward_y": forward["y"], "forward_log_det": forward["log_det"],
           "inverse_y": inverse["y"], "inverse_log_det": inverse["log_det"]}
    assert set(got) == set(want)
    for key, value in got.items():
        np.testing.assert_allclose(value.numpy(), np.array(want[key], np.float32), rtol=1e-6,
                                   atol=1e-7, err_msg=f"{key} (recorded with "
                                   f"{record['made_with']})")
    default = sig["serving_default"](x=x)["log_prob"].numpy()
    np.testing.assert_allclose(default, np.array(want["log_prob"], np.float32), rtol=1e-6)
    # Today's request handling on the old export.
    response = serving.predict_rest(loaded, {"signature_name": "log_prob",
                                             "instances": inputs["x"]})
    np.testing.assert_allclose(response["predictions"], want["log_prob"], rtol=1e-6)
