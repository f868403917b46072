"""SavedModel export: signatures, versions, clear input errors, loading without us."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import export_saved_model, models, next_version_dir
from tfp_flows.export import version_dir


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


# ---------------------------------------------------------------------------- one export
@pytest.fixture(scope="module")
def exported(tmp_path_factory, moons):
    """A trained-looking 2-D RealNVP, its export and the live model's numbers."""
    model = models.build("realnvp", 2, num_layers=2, hidden_units=(16,), seed=0)
    for i, v in enumerate(model.trainable_variables):
        v.assign(v + 0.1 * tf.random.stateless_normal(v.shape, [i, 2]))
    path = model.export(str(tmp_path_factory.mktemp("saved_models") / "realnvp"))
    x = moons[2][:100]
    z = np.random.default_rng(5).standard_normal((100, 2)).astype(np.float32)
    bijector = model.distribution.bijector
    live = {"log_prob": model.log_prob(x).numpy(),
            "samples": model.sample(7, seed=11).numpy(),
            "forward_y": bijector.forward(z).numpy(),
            "forward_log_det": bijector.forward_log_det_jacobian(z, event_ndims=1).numpy(),
            "inverse_y": bijector.inverse(x).numpy(),
            "inverse_log_det": bijector.inverse_log_det_jacobian(x, event_ndims=1).numpy()}
    return {"model": model, "path": path, "x": x, "z": z, "live": live}


def _served(loaded, x, z):
    """Every signature of a loaded export on the fixture's inputs, as NumPy arrays."""
    sig = loaded.signatures
    forward, inverse = sig["forward"](x=tf.constant(z)), sig["inverse"](x=tf.constant(x))
    return {"log_prob": sig["log_prob"](x=tf.constant(x))["log_prob"].numpy(),
            "serving_default": sig["serving_default"](x=tf.constant(x))["log_prob"].numpy(),
            "samples": sig["sample"](n=tf.constant(7), seed=tf.constant([0, 11]))[
                "samples"].numpy(),
            "forward_y": forward["y"].numpy(), "forward_log_det": forward["log_det"].numpy(),
            "inverse_y": inverse["y"].numpy(), "inverse_log_det": inverse["log_det"].numpy()}


def _max_relative_difference(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))


def _assert_same_numbers(served, live, where):
    report = []
    for key, value in served.items():
        want = live["log_prob"] if key == "serving_default" else live[key]
        assert value.shape == want.shape, key
        difference = _max_relative_difference(value, want)
        report.append(f"{key} {difference:.2g}")
        assert difference <= 1e-6, f"{where}: {key} differs by {difference:.3g} (relative)"
    print(f"{where}: max relative difference to the live model: " + ", ".join(report))


def test_every_signature_matches_the_live_model_with_any_batch_size(exported):
    path = exported["path"]
    assert path.endswith(os.sep + "1")
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {"serving_default", "log_prob", "sample", "forward",
                                      "inverse"}
    _assert_same_numbers(_served(loaded, exported["x"], exported["z"]), exported["live"],
                         "in-process load")
    one = loaded.signatures["log_prob"](x=tf.constant(exported["x"][:1]))["log_prob"]
    assert one.shape == (1,)
    # forward and inverse are inverse maps with opposite log-dets.
    back = loaded.signatures["forward"](x=tf.constant(exported["live"]["inverse_y"]))
    np.testing.assert_allclose(back["y"].numpy(), exported["x"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(back["log_det"].numpy(), -exported["live"]["inverse_log_det"],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("signature, inputs, message", [
    ("log_prob", {"x": np.zeros((3, 3), np.float32)},
     r"signature log_prob: input x must have shape \[batch, 2\] and dtype float32; got "
     r"shape\] \[3 3\]"),
    ("log_prob", {"x": np.zeros((2,), np.float32)}, r"must have shape \[batch, 2\]"),
    ("inverse", {"x": np.zeros((4, 2, 1), np.float32)},
     r"inverse: input x must have shape \[batch, 2\]"),
    ("sample", {"n": np.array([3], np.int32), "seed": np.array([1, 2], np.int32)},
     r"sample: input n must have shape \[\] and dtype int32; got shape\] \[1\]"),
    ("sample", {"n": np.int32(3), "seed": np.array([1, 2, 3], np.int32)},
     r"sample: input seed must have shape \[2\] and dtype int32; got shape\] \[3\]"),
    ("log_prob", {"x": np.zeros((3, 2), np.float64)},
     r"input #0\(zero-based\) was expected to be a float tensor but is a double tensor"),
    ("sample", {"n": np.float32(3), "seed": np.array([1, 2], np.int32)},
     r"expected to be a int32 tensor but is a float tensor"),
])
def test_wrong_shape_or_dtype_is_a_clear_error(exported, signature, inputs, message):
    loaded = tf.saved_model.load(exported["path"])
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})


def test_versions_never_overwrite_unless_asked(exported, tmp_path):
    model, root = exported["model"], tmp_path / "flow"
    first = export_saved_model(model, str(root))
    second = model.export(str(root))
    assert (first, second) == (str(root / "1"), str(root / "2"))
    assert version_dir(str(root)) == str(root / "3")
    assert version_dir(str(root), version=7) == str(root / "7")
    assert version_dir(str(root / "7")) == str(root / "7")
    with pytest.raises(FileExistsError, match="already holds files"):
        model.export(str(root), version=2)
    with pytest.raises(FileExistsError, match="already holds files"):
        model.export(str(root / "1"))
    marker = root / "2" / "variables" / "variables.index"
    before = marker.stat().st_mtime_ns
    assert model.export(str(root), version=2, overwrite=True) == str(root / "2")
    assert marker.stat().st_mtime_ns != before
    # Written under a temporary name and renamed: nothing but the versions is left behind.
    assert sorted(os.listdir(root)) == ["1", "2"]
    assert oct(os.stat(root / "1").st_mode & 0o777) == oct(0o755)


# ---------------------------------------------------------------------------- no tfp_flows
_FRESH_PROCESS = textwrap.dedent("""
    import contextlib, io, sys
    blocked = sys.argv[1].split(",")
    for name in blocked:
        sys.modules[name] = None  # "import name" now raises ImportError
    import numpy as np
    import tensorflow as tf
    for name in blocked:
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(f"{name} could be imported")
    path, inputs, outputs, cli_dir = sys.argv[2:6]
    data = np.load(inputs)
    x, z = tf.constant(data["x"]), tf.constant(data["z"])
    sig = tf.saved_model.load(path).signatures
    forward, inverse = sig["forward"](x=z), sig["inverse"](x=x)
    results = {
        "log_prob": sig["log_prob"](x=x)["log_prob"].numpy(),
        "serving_default": sig["serving_default"](x=x)["log_prob"].numpy(),
        "samples": sig["sample"](n=tf.constant(7), seed=tf.constant([0, 11]))["samples"].numpy(),
        "forward_y": forward["y"].numpy(), "forward_log_det": forward["log_det"].numpy(),
        "inverse_y": inverse["y"].numpy(), "inverse_log_det": inverse["log_det"].numpy()}
    np.savez(outputs, **results)
    if cli_dir != "-":
        # What `saved_model_cli show --all` and `saved_model_cli run` do, in this process.
        from tensorflow.python.tools import saved_model_cli
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            saved_model_cli._show_all(path)
        with open(cli_dir + "/show_all.txt", "w") as f:
            f.write(shown.getvalue())
        sys.argv = ["saved_model_cli", "run", "--dir", path, "--tag_set", "serve",
                    "--signature_def", "log_prob", "--input_exprs",
                    "x=[[0.5, -0.2], [1.0, 0.3]]", "--outdir", cli_dir]
        try:
            saved_model_cli.main()
        except SystemExit as e:
            assert not e.code, e.code
    assert "tfp_flows" not in sys.modules or sys.modules["tfp_flows"] is None
""")


def test_fresh_process_without_tfp_flows_or_tfp_gets_the_same_numbers(exported, tmp_path):
    """One subprocess (TensorFlow starts slowly) in which neither tfp_flows nor TFP can be
    imported; the stricter case covers "tfp_flows not importable" too."""
    np.savez(tmp_path / "inputs.npz", x=exported["x"], z=exported["z"])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, "tfp_flows,tensorflow_probability",
         exported["path"], str(tmp_path / "inputs.npz"), str(tmp_path / "served.npz"),
         str(tmp_path)],
        cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:]
    served = dict(np.load(tmp_path / "served.npz"))
    _assert_same_numbers(served, exported["live"], "fresh process without tfp_flows and TFP")
    shown = (tmp_path / "show_all.txt").read_text()
    for name in ("serving_default", "log_prob", "sample", "forward", "inverse"):
        assert f"signature_def['{name}']:" in shown
    assert "name: serving_default_x:0" in shown and "shape: (-1, 2)" in shown
    cli = np.load(tmp_path / "log_prob.npy")
    want = exported["model"].log_prob(np.array([[0.5, -0.2], [1.0, 0.3]], np.float32)).numpy()
    assert _max_relative_difference(cli, want) <= 1e-6


def test_conditional_model_exports_with_a_context_input(tmp_path, rng):
    model = models.build_maf(2, context_size=3, num_layers=2, hidden_units=(8,), seed=0)
    for i, v in enumerate(model.trainable_variables):
        v.assign(v + 0.1 * tf.random.stateless_normal(v.shape, [i, 1]))
    x = rng.standard_normal((5, 2)).astype(np.float32)
    context = rng.standard_normal((5, 3)).astype(np.float32)
    loaded = tf.saved_model.load(model.export(str(tmp_path / "conditional")))
    assert set(loaded.signatures) == {"serving_default", "log_prob", "sample"}
    served = loaded.signatures["log_prob"](x=tf.constant(x), context=tf.constant(context))
    assert _max_relative_difference(served["log_prob"].numpy(),
                                    model.log_prob(x, context).numpy()) <= 1e-6
    samples = loaded.signatures["sample"](n=tf.constant(4), seed=tf.constant([0, 2]),
                                          context=tf.constant(context))["samples"].numpy()
    # Graph and eager execution may round the MADE passes differently (seen: 7e-8 absolute).
    np.testing.assert_allclose(samples, model.sample(4, context, seed=2).numpy(), rtol=1e-6,
                               atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="input context must have shape"):
        loaded.signatures["log_prob"](x=tf.constant(x), context=tf.constant(context[:, :2]))
