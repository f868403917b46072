"""SavedModel export: signatures, versions, clear input errors, loading without us."""

import inspect
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import FlowModel, export_saved_model, models, next_version_dir
from tfp_flows.export import (
    DEFAULT_MAX_SAMPLES,
    read_signature_spec,
    signature_mismatch,
    signature_spec,
    version_dir,
)


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
    path = model.export(str(tmp_path / "conditional"), verbose=False, max_samples=20)
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {"serving_default", "log_prob", "sample"}
    assert signature_spec(model) == read_signature_spec(path)
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
    # 4 samples for each of 5 contexts is the limit of 20; 5 each is over it.
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"n × context rows at most 20 .*got n, context rows =\] \[5\] \[5\]"):
        loaded.signatures["sample"](n=tf.constant(5), seed=tf.constant([0, 2]),
                                    context=tf.constant(context))


# ---------------------------------------------------------------------------- Keras' export
def test_export_keeps_keras_signature_and_prints_one_line(exported, tmp_path, capsys):
    keras_params = list(inspect.signature(keras.Model.export).parameters.values())
    ours = list(inspect.signature(FlowModel.export).parameters.values())
    assert [(p.name, p.default, p.kind) for p in ours[:len(keras_params) - 1]] == \
        [(p.name, p.default, p.kind) for p in keras_params[:-1]]  # all but **kwargs
    assert ours[-1].kind == inspect.Parameter.VAR_KEYWORD
    assert all(p.kind == inspect.Parameter.KEYWORD_ONLY
               for p in ours[len(keras_params) - 1:-1])
    model = exported["model"]
    capsys.readouterr()
    quiet = model.export(str(tmp_path / "flow"), format="tf_saved_model", verbose=False)
    assert quiet == str(tmp_path / "flow" / "1") and capsys.readouterr().out == ""
    loud = model.export(str(tmp_path / "flow"))  # Keras' default: verbose
    assert capsys.readouterr().out == (f"Saved artifact at '{loud}'. Signatures: "
                                       "serving_default, log_prob, sample, forward, inverse.\n")
    served = tf.saved_model.load(quiet).signatures["log_prob"](x=tf.constant(exported["x"]))
    np.testing.assert_allclose(served["log_prob"].numpy(), exported["live"]["log_prob"],
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"writes format 'tf_saved_model'; got format='onnx'"):
        model.export(str(tmp_path / "onnx"), format="onnx")
    with pytest.raises(ValueError, match="takes no input_signature"):
        model.export(str(tmp_path / "sig"), input_signature=[tf.TensorSpec([None, 2])])
    assert sorted(os.listdir(tmp_path / "flow")) == ["1", "2"]
    assert not os.path.exists(tmp_path / "onnx") and not os.path.exists(tmp_path / "sig")


# ---------------------------------------------------------------------------- sample limit
def test_sample_requests_above_the_limit_fail_in_the_graph(exported, tmp_path):
    sample = tf.saved_model.load(exported["path"]).signatures["sample"]
    seed = tf.constant([0, 1])
    assert DEFAULT_MAX_SAMPLES == 100_000
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"sample: n must be in 0..100000 \(the limit on samples per "
                             r"request set at export, max_samples=100000\); got n =\] \[100001\]"):
        sample(n=tf.constant(100_001), seed=seed)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"got n =\] \[-1\]"):
        sample(n=tf.constant(-1), seed=seed)
    small = tf.saved_model.load(exported["model"].export(str(tmp_path / "small"), verbose=False,
                                                         max_samples=10))
    assert small.signatures["sample"](n=tf.constant(10), seed=seed)["samples"].shape == (10, 2)
    assert small.signatures["sample"](n=tf.constant(0), seed=seed)["samples"].shape == (0, 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"n must be in 0..10 "):
        small.signatures["sample"](n=tf.constant(11), seed=seed)
    with pytest.raises(ValueError, match="max_samples must be an integer"):
        exported["model"].export(str(tmp_path / "bad"), max_samples=0)


# ---------------------------------------------------------------------------- racing exports
def _racing_exports(model, target, count, monkeypatch, **kwargs):
    """`count` threads export `model` to `target`; each save completes before any of them
    renames (a barrier), so all pick their version at the same moment."""
    real_save, lock = tf.saved_model.save, threading.Lock()
    barrier = threading.Barrier(count, timeout=120)

    def save_then_wait(*args, **save_kwargs):
        with lock:  # tracing one model in several threads at once is not what is tested
            real_save(*args, **save_kwargs)
        barrier.wait()

    monkeypatch.setattr(tf.saved_model, "save", save_then_wait)
    results = [None] * count

    def run(i):
        try:
            results[i] = export_saved_model(model, target, **kwargs)
        except Exception as e:  # noqa: BLE001 - reported to the test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    monkeypatch.setattr(tf.saved_model, "save", real_save)
    return results


def test_racing_exports_end_as_distinct_intact_versions(exported, tmp_path, monkeypatch):
    model, root = exported["model"], tmp_path / "raced"
    paths = _racing_exports(model, str(root), 2, monkeypatch)
    assert sorted(paths) == [str(root / "1"), str(root / "2")], paths
    assert sorted(os.listdir(root)) == ["1", "2"]  # no temporary folder left
    for path in paths:
        served = tf.saved_model.load(path).signatures["log_prob"](x=tf.constant(exported["x"]))
        np.testing.assert_allclose(served["log_prob"].numpy(), exported["live"]["log_prob"],
                                   rtol=1e-6, atol=1e-6)
    # Two exports racing for one explicit version: one writes it, the other is refused.
    results = _racing_exports(model, str(root), 2, monkeypatch, version=7)
    assert sorted(type(r).__name__ for r in results) == ["FileExistsError", "str"], results
    assert str(root / "7") in results
    assert "already holds files" in str(next(r for r in results if isinstance(r, Exception)))
    assert sorted(os.listdir(root)) == ["1", "2", "7"]
    loaded = tf.saved_model.load(str(root / "7"))
    np.testing.assert_allclose(
        loaded.signatures["log_prob"](x=tf.constant(exported["x"]))["log_prob"].numpy(),
        exported["live"]["log_prob"], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------- signature specs
def test_signature_spec_matches_the_export_and_finds_changes(exported, tmp_path):
    model, path = exported["model"], exported["path"]
    spec = signature_spec(model)
    assert spec == read_signature_spec(path)
    assert spec["log_prob"] == {"inputs": {"x": {"dtype": "float32", "shape": [None, 2]}},
                                "outputs": {"log_prob": {"dtype": "float32"}}}
    assert spec["sample"]["inputs"] == {"n": {"dtype": "int32", "shape": None},
                                        "seed": {"dtype": "int32", "shape": [None]}}
    # The export written by older code has the same signatures as today's 2-D flows.
    old = Path(__file__).resolve().parent / "data" / "old_export" / "1"
    assert read_signature_spec(old) == spec
    root = os.path.dirname(path)
    assert signature_mismatch(model, root) is None
    assert signature_mismatch(model, str(tmp_path / "nothing")) is None
    wider = models.build("realnvp", 3, num_layers=1, hidden_units=(4,), seed=0)
    message = signature_mismatch(wider, root)
    assert "log_prob input x: version 1 float32 [None, 2], this model float32 [None, 3]" \
        in message, message
    conditional = models.build_maf(2, context_size=3, num_layers=1, hidden_units=(4,), seed=0)
    message = signature_mismatch(conditional, root)
    assert "log_prob input context: version 1 none, this model float32 [None, 3]" in message
    assert "version 1 has signature forward, this model has not" in message


# ---------------------------------------------------------------------------- discrete data
@pytest.fixture(scope="module")
def glow_export(tmp_path_factory):
    """A tiny Glow on 4x4 images with 17 levels, moved off its start, and its export."""
    model = models.build("glow", (4, 4, 1), num_scales=1, num_steps=1, hidden_channels=4,
                         seed=0)
    for i, v in enumerate(model.trainable_variables):
        v.assign(v + 0.05 * tf.random.stateless_normal(v.shape, [i, 4], dtype=v.dtype))
    path = model.export(str(tmp_path_factory.mktemp("saved_models") / "glow"), verbose=False)
    levels = np.random.default_rng(0).integers(0, 17, (5, 4, 4, 1)).astype(np.float32)
    return model, tf.saved_model.load(path), levels


def test_dequantized_log_prob_is_deterministic_and_per_row(glow_export):
    model, loaded, k = glow_export
    log_prob = loaded.signatures["log_prob"]
    first = log_prob(x=tf.constant(k))["log_prob"].numpy()
    second = log_prob(x=tf.constant(k))["log_prob"].numpy()
    np.testing.assert_array_equal(first, second)
    # A row's value does not depend on the rest of the request.
    alone = log_prob(x=tf.constant(k[3:4]))["log_prob"].numpy()
    reversed_rows = log_prob(x=tf.constant(k[::-1].copy()))["log_prob"].numpy()
    np.testing.assert_allclose(alone, first[3:4], rtol=1e-6)
    np.testing.assert_allclose(reversed_rows, first[::-1], rtol=1e-6)
    # It is the documented estimate: the 8-draw importance-weighted bound of the live model.
    live = model.distribution.fixed_noise_log_prob(k, 8).numpy()
    np.testing.assert_allclose(first, live, rtol=1e-5)
    # ... which lies within the spread of the training bound's draws (measured: 0.5-0.9 nats).
    draws = np.stack([model.log_prob(k).numpy() for _ in range(30)])
    assert np.all(np.abs(first - draws.mean(0)) < 3 * draws.std(0)), (first, draws.mean(0))
    assert draws.std(0).min() > 0.1  # the live training bound is stochastic, the export not


@pytest.mark.parametrize("transform, message", [
    (lambda k: k / 16.0,
     r"signature log_prob: input x must hold integer levels 0..16; got non-integer values "
     r"— did you scale the data to \[0, 1\]\?"),
    (lambda k: np.where(k > 8, np.nan, k).astype(np.float32),
     r"input x must hold integer levels 0..16; got non-finite values \(NaN or Inf\), "
     r"e.g.\] \[nan\]"),
    (lambda k: k + 17.0, r"input x must hold integer levels 0..16; got values outside 0..16"),
    (lambda k: k - 1.0, r"got values outside 0..16, e.g.\] \[-1\]"),
])
def test_dequantized_export_refuses_what_is_not_levels(glow_export, transform, message):
    _, loaded, k = glow_export
    bad = transform(k)
    assert np.all(np.isfinite(bad)) == ("nan" not in message)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["log_prob"](x=tf.constant(bad))


def test_dequantized_export_samples_levels(glow_export):
    _, loaded, _ = glow_export
    samples = loaded.signatures["sample"](n=tf.constant(6), seed=tf.constant([0, 3]))[
        "samples"].numpy()
    assert samples.shape == (6, 4, 4, 1)
    assert np.all(samples == np.round(samples)) and samples.min() >= 0 and samples.max() <= 16


def test_export_includes_the_models_standardisation(tmp_path):
    """Data and contexts in raw units (x near 100, contexts near 5): the model standardises
    both (fitted by `adapt`), and so must the export, which runs the model's own log_prob
    and sample."""
    rng = np.random.default_rng(0)
    context = rng.normal(5.0, 3.0, (400, 3)).astype(np.float32)
    x = (100 + 20 * rng.standard_normal((400, 2)) + context[:, :2]).astype(np.float32)
    model = models.build("maf", 2, context_size=3, num_layers=2, hidden_units=(8,), seed=0,
                         data=x, context=context)
    for i, v in enumerate(model.trainable_variables):
        v.assign(v + 0.1 * tf.random.stateless_normal(v.shape, [i, 1], dtype=v.dtype))
    loaded = tf.saved_model.load(model.export(str(tmp_path / "raw"), verbose=False))
    served = loaded.signatures["log_prob"](x=tf.constant(x[:20]),
                                           context=tf.constant(context[:20]))["log_prob"]
    live = model.log_prob(x[:20], context[:20]).numpy()
    assert np.all(live < -5)  # about log(1/20²) per point: the data's own units
    np.testing.assert_allclose(served.numpy(), live, rtol=1e-5, atol=1e-5)
    samples = loaded.signatures["sample"](n=tf.constant(3), seed=tf.constant([0, 2]),
                                          context=tf.constant(context[:2]))["samples"].numpy()
    np.testing.assert_allclose(samples, model.sample(3, context[:2], seed=2).numpy(),
                               rtol=1e-5, atol=1e-4)
    assert 50 < samples.mean() < 150


def test_model_export_finds_its_writer_without_tfp_flows_export_imported(exported, tmp_path,
                                                                         monkeypatch):
    """`from tfp_flows.models import build` does not import tfp_flows.export (imports go
    from export down to the model); FlowModel.export loads it by its format's name."""
    import sys

    from tfp_flows import flow_model

    monkeypatch.delitem(flow_model._EXPORT_FORMATS, "tf_saved_model")
    monkeypatch.delitem(sys.modules, "tfp_flows.export")
    path = exported["model"].export(str(tmp_path / "flow"), verbose=False)
    assert path == str(tmp_path / "flow" / "1") and "tf_saved_model" in flow_model._EXPORT_FORMATS
    served = tf.saved_model.load(path).signatures["log_prob"](x=tf.constant(exported["x"]))
    np.testing.assert_allclose(served["log_prob"].numpy(), exported["live"]["log_prob"],
                               rtol=1e-6, atol=1e-6)
