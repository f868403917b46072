"""Misuse of the `tfp-flows` command in real processes: one line on stderr, exit status 2,
never a traceback or an abort; --help, --version and list without TensorFlow."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfp_flows import catalog

# Runs `python -m tfp_flows` with the modules named in TFP_FLOWS_TEST_BLOCK made
# unimportable (None in sys.modules: an import raises ModuleNotFoundError and
# importlib.util.find_spec answers None), as on a machine without them.
BLOCKED_MAIN = """
import os, runpy, sys
for name in filter(None, os.environ["TFP_FLOWS_TEST_BLOCK"].split(",")):
    sys.modules[name] = None
runpy.run_module("tfp_flows", run_name="__main__", alter_sys=True)
"""


def _run(args, *, block=("tensorflow",), cwd=None, timeout=120):
    """(exit status, stdout, stderr) of the command line with `block`ed modules."""
    env = {**os.environ, "TFP_FLOWS_TEST_BLOCK": ",".join(block)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command's own defaults
    done = subprocess.run([sys.executable, "-c", BLOCKED_MAIN, *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def _assert_one_line_error(code, out, err, expected):
    assert code == 2, (code, out, err)
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("tfp-flows"), err
    assert expected in err, err


def test_argument_mistakes_fail_in_one_line_before_tensorflow_is_imported(tmp_path):
    """Each of these runs with TensorFlow unimportable: it must fail before importing it."""
    (tmp_path / "notes.txt").write_text("1,2\n")
    (tmp_path / "run").mkdir()
    cases = [
        (["train", "--epochs", "0"], "--epochs: must be >= 1; got 0"),
        (["train", "--epochs", "-3"], "--epochs: must be >= 1"),
        (["train", "--epochs", "two"], "'two' is not an integer"),
        (["train", "--batch-size", "0"], "--batch-size: must be >= 1"),
        (["train", "--num-layers", "0"], "--num-layers: must be >= 1"),
        (["train", "--hidden-units", "64", "0"], "--hidden-units: must be >= 1; got 0"),
        (["train", "--num-points", "0"], "--num-points: must be >= 10"),
        (["train", "--num-points", "1"], "--num-points: must be >= 10"),
        (["train", "--num-points", "5"], "--num-points: must be >= 10"),
        (["train", "--seed", "-1"], "--seed: must be >= 0"),
        (["train", "--learning-rate", "nan"], "--learning-rate: needs a finite number"),
        (["train", "--learning-rate", "inf"], "--learning-rate: needs a finite number"),
        (["train", "--learning-rate", "0"], "--learning-rate: must be > 0"),
        (["train", "--learning-rate", "-0.001"], "--learning-rate: must be > 0"),
        (["train", "--clip-norm", "-1"], "--clip-norm: must be >= 0"),
        (["train", "--clip-norm", "nan"], "--clip-norm: needs a finite number"),
        (["train", "--bounds", "1:0"], "LO must be below HI"),
        (["train", "--bounds", "0-1"], "is not LO:HI"),
        (["train", "--model", "nope"], "unknown model 'nope'; the zoo has: batchnorm, "),
        (["train", "--data", "nope"], "unknown data set 'nope': not a built-in one"),
        (["train", "--data", str(tmp_path / "missing.csv")], "missing.csv: no such file"),
        (["train", "--data", str(tmp_path / "notes.txt")], "unsupported file type"),
        (["train", "--option", "8"], "--option needs NAME=VALUE"),
        (["train", "--run-dir", str(tmp_path / "notes.txt")], "is a file, not a folder"),
        (["evaluate", "--run-dir", str(tmp_path / "nope")], "no such folder"),
        (["sample", "--run-dir", str(tmp_path / "run")], "no config.json in it"),
        (["sample", "--run-dir", str(tmp_path / "run"), "-n", "0"], "must be >= 1"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ]
    for args, expected in cases:
        code, out, err = _run(args)
        _assert_one_line_error(code, out, err, expected)
        assert out == "", (args, out)


def test_missing_optional_packages_name_the_extra_to_install():
    code, out, err = _run(["train", "--tensorboard"], block=("tensorflow", "tensorboard"))
    _assert_one_line_error(code, out, err, 'pip install "tfp-flows[tensorboard]"')
    for model in ("glow", "flowpp", "pixelmaf"):  # their default data: the digits
        code, out, err = _run(["train", "--model", model], block=("tensorflow", "sklearn"))
        _assert_one_line_error(code, out, err, 'pip install "tfp-flows[data]"')
    code, out, err = _run(["train", "--data", "breast-cancer"], block=("tensorflow", "sklearn"))
    _assert_one_line_error(code, out, err, "comes with scikit-learn")


def test_help_version_and_list_answer_without_tensorflow():
    code, out, err = _run(["--version"])
    assert (code, err) == (0, "") and out.strip() == "tfp-flows 0.1.0"
    code, out, err = _run(["list"])
    assert (code, err) == (0, "")
    for name, entry in catalog.MODELS.items():
        assert f"  {name} " in out and entry.description in out
    for name in (*catalog.DATASETS, *catalog.CONDITIONAL_DATASETS):
        assert f"  {name} " in out
    code, out, err = _run(["--help"])
    assert code == 0 and "score" in out and "saved_models/maf-two-moons/1" in out
    code, out, err = _run(["train", "--help"])
    assert code == 0
    # every flag's help states its default (entries start with "  -" under "options:")
    entries, options = [], out[out.index("options:"):].splitlines()[1:]
    for line in options:
        if line.startswith("  -"):
            entries.append(line)
        elif entries:
            entries[-1] += " " + line.strip()
    assert len(entries) >= 20
    for entry in entries:
        assert "default" in entry or entry.split()[0] in ("-h,", "--help"), entry


def _write_cases(folder):
    """Data files with user mistakes in them: {file: words the error must contain}."""
    np.save(folder / "huge.npy", np.array([[1.0, 2.0]] * 20 + [[1e39, 0.0], [0.0, -5e300]]))
    np.save(folder / "empty.npy", np.zeros((0, 2)))
    np.save(folder / "no_columns.npy", np.zeros((20, 0)))
    (folder / "short.csv").write_text("x,y\n1,2\n3,4\n5,6\n")
    (folder / "empty.csv").write_text("")
    (folder / "words.csv").write_text("x,y\n" + "1,2\n" * 12 + "3,four\n")
    (folder / "broken.npy").write_bytes(b"not an npy file")
    (folder / "wide.csv").write_text("\n".join(["1,2,3"] * 12))
    return {
        "huge.npy": "values beyond the float32 range (|x| > 3.4e38) in rows 20, 21",
        "empty.npy": "0 rows; need at least 10",
        "no_columns.npy": "rows without any values",
        "short.csv": "3 rows; need at least 10",
        "empty.csv": "no data rows",
        "words.csv": "data row 13, column 2 is not a number: 'four'",
        "broken.npy": "not a readable .npy array",
    }


def test_mistakes_found_after_tensorflow_loads_are_one_line_too(tmp_path):
    """One process, several commands (each TensorFlow start costs seconds): bad data files,
    a zero-width layer given through --option (it used to abort the process inside
    oneDNN), a conditional data set for a model without a conditional form; then a tiny
    training whose output must be free of TensorFlow's start-up lines and of progress-bar
    frames. Between commands the script writes a marker line to stderr."""
    cases = _write_cases(tmp_path)
    commands = [(["train", "--data", str(tmp_path / name), "--no-export", "--epochs", "1"],
                 cases[name]) for name in ("huge.npy", "empty.npy", "words.csv")]
    commands += [
        (["train", "--option", "hidden_units=[0]", "--no-export"],
         "hidden_units must be a positive integer"),
        (["train", "--model", "nice", "--data", "sbi-gaussian-mean", "--no-export"],
         "has no conditional form"),
        # and one that works: quiet stderr, a line per epoch on a non-terminal stdout
        (["train", "--epochs", "2", "--num-points", "200", "--num-layers", "1",
          "--hidden-units", "4", "--no-export", "--run-dir", "ok"], None),
    ]
    script = (
        "import json, sys\nfrom tfp_flows.cli import main\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    print('=== status', main(argv), file=sys.stderr, flush=True)\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", script, json.dumps([c for c, _ in commands])],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    # command k's lines (TensorFlow's start-up lines included, were any to leak) come
    # before the k-th marker line; the status follows the marker
    parts = done.stderr.split("=== status ")
    assert len(parts) == len(commands) + 1, done.stderr
    chunks = [parts[0]] + [part.partition("\n")[2] for part in parts[1:-1]]
    statuses = [part.partition("\n")[0] for part in parts[1:]]
    for (argv, expected), chunk, status in zip(commands, chunks, statuses, strict=True):
        if expected is None:
            assert (status, chunk) == ("0", ""), (argv, chunk)
            continue
        assert status == "2", (argv, status)
        lines = chunk.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tfp-flows: error: "), (argv, lines)
        assert expected in lines[0], (argv, lines[0])
    # no run folder for a refused command
    assert [p.parent.name for p in tmp_path.rglob("config.json")] == ["ok"]
    assert "Epoch 2/2" in done.stdout and "test NLL:" in done.stdout
    assert "\x1b" not in done.stdout and "\r" not in done.stdout  # no progress-bar frames


def test_every_data_file_mistake_and_builder_option_mistake_is_one_line(tmp_path, capsys):
    """The same checks in this process (TensorFlow is loaded already): all the bad files."""
    from tfp_flows import cli, datasets

    assert cli.MIN_ROWS == datasets.MIN_SPLIT_ROWS
    cases = _write_cases(tmp_path)
    cases["wide.csv"] = None  # fine: 12 rows of 3
    for name, expected in cases.items():
        if expected is None:
            assert datasets.load_file(str(tmp_path / name), min_rows=10).shape == (12, 3)
            continue
        assert cli.main(["train", "--data", str(tmp_path / name), "--run-dir",
                         str(tmp_path / "r"), "--no-export", "--verbose", "0"]) == 2, name
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and expected in err, (name, err)
    for option, expected in (("hidden_channels=0", "hidden_channels must be a positive"),
                             ("hidden_channels=\"wide\"", "hidden_channels must be a positive"),
                             ("num_scales=-1", "num_scales must be a positive integer")):
        assert cli.main(["train", "--model", "glow", "--option", option, "--run-dir",
                         str(tmp_path / "g"), "--no-export"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and expected in err, (option, err)
    assert not any(tmp_path.rglob("config.json"))


def test_zoo_builder_refuses_sizes_that_are_not_positive_integers():
    """A zero-width layer used to abort the process inside oneDNN; now a ValueError."""
    from tfp_flows import models

    for options, words in (({"hidden_units": (0,)}, "hidden_units must be a positive"),
                           ({"hidden_units": [64, -1]}, "hidden_units must be a positive"),
                           ({"num_layers": 0}, "num_layers must be a positive integer"),
                           ({"num_layers": 2.5}, "num_layers must be a positive integer")):
        with pytest.raises(ValueError, match=words):
            models.build("maf", 2, **options)
    with pytest.raises(ValueError, match="event_size must be a positive integer"):
        models.build("maf", 0)
    model = models.build("maf", np.int64(2), num_layers=np.int64(1), hidden_units=[4])
    assert model.event_shape.as_list() == [2]
