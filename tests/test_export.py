import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import export_saved_model, models, next_version_dir


def test_saved_model_log_prob_and_sample_match_live_model(moons, tmp_path):
    model = models.build("maf", 2, num_layers=2, hidden_units=(16,), seed=0)
    for v in model.trainable_variables:  # move away from the identity
        v.assign(v + 0.1 * tf.random.stateless_normal(v.shape, [0, 1]))
    root = tmp_path / "maf"
    path = export_saved_model(model, next_version_dir(str(root)))
    assert path.endswith("/1") and next_version_dir(str(root)).endswith("/2")
    loaded = tf.saved_model.load(path)
    x = moons[2][:100]
    served = loaded.signatures["log_prob"](x=tf.constant(x))["log_prob"].numpy()
    np.testing.assert_allclose(served, model.log_prob(x).numpy(), rtol=1e-6, atol=1e-6)
    default = loaded.signatures["serving_default"](x=tf.constant(x[:3]))["log_prob"].numpy()
    np.testing.assert_allclose(default, served[:3], rtol=1e-6)
    seed = tf.constant([0, 7], tf.int32)
    samples = loaded.signatures["sample"](n=tf.constant(5), seed=seed)["samples"].numpy()
    np.testing.assert_allclose(samples, model.sample(5, seed=7).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(FileExistsError, match="already holds files"):
        export_saved_model(model, path)
    export_saved_model(model, path, overwrite=True)
