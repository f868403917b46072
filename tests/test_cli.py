import json
import re

import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import cli, models


def test_list_shows_models_and_data(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("maf", "iaf", "realnvp", "nice", "two-moons"):
        assert name in out
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.startswith("  ")}
    for name in ("sos", "residual", "planar", "radial", "sylvester", "prelu", "spline"):
        assert "[default data: two-moons]" in lines[name], name


def test_train_zoo_recipes_whose_sampling_solves_equations(tmp_path, capsys):
    """sos samples by root finding, residual by a fixed-point iteration: train, test NLL,
    density figure (samples included) and a sample command, each on a tiny budget.
    Measured: 195 s with the 2 cores at load average ~18 (a tenth of that idle, estimated)."""
    for name in ("sos", "residual"):
        run = tmp_path / name
        assert cli.main(["train", "--model", name, "--epochs", "1", "--num-points", "500",
                         "--num-layers", "1", "--hidden-units", "8", "--run-dir", str(run),
                         "--no-export", "--verbose", "0"]) == 0
        assert "test NLL:" in capsys.readouterr().out
        config = json.loads((run / "config.json").read_text())
        assert config["learning_rate"] == models.RECIPES[name].defaults("two-moons")[1].get(
            "learning_rate", cli.TRAINING_DEFAULTS["learning_rate"])
        assert (run / "density.png").stat().st_size > 0
        assert cli.main(["sample", "--run-dir", str(run), "-n", "9"]) == 0
        samples = np.load(run / "samples.npy")
        assert samples.shape == (9, 2) and np.all(np.isfinite(samples))


def test_train_writes_run_folder_figure_and_export(tmp_path, capsys):
    run_dir, export_dir = tmp_path / "run", tmp_path / "exports"
    code = cli.main(["train", "--model", "realnvp", "--epochs", "2", "--num-points", "2000",
                     "--num-layers", "2", "--hidden-units", "16", "--run-dir", str(run_dir),
                     "--export-dir", str(export_dir), "--verbose", "0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "test NLL:" in out
    logs = json.loads((run_dir / "history.json").read_text())
    assert len(logs["history"]["val_nll"]) == 2 and np.isfinite(logs["test_nll"])
    for name in ("config.json", "best.weights.h5", "density.png", "history.png"):
        assert (run_dir / name).stat().st_size > 0, name
    assert (run_dir / "density.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = tf.saved_model.load(str(export_dir / "realnvp-two-moons" / "1"))
    lp = loaded.signatures["log_prob"](x=tf.zeros([4, 2]))["log_prob"].numpy()
    assert lp.shape == (4,) and np.all(np.isfinite(lp))


def test_commands_from_a_run_folder_and_csv_data(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(600, 2)) * [1.0, 0.3]
    np.savetxt(tmp_path / "points.csv", data, delimiter=",", header="x,y", comments="")
    run = tmp_path / "run"
    assert cli.main(["train", "--model", "maf", "--data", str(tmp_path / "points.csv"),
                     "--epochs", "1", "--num-layers", "1", "--hidden-units", "8",
                     "--run-dir", str(run), "--no-export", "--verbose", "0",
                     "--tensorboard"]) == 0
    assert any((run / "tensorboard").rglob("events.out.tfevents.*"))
    capsys.readouterr()
    assert cli.main(["evaluate", "--run-dir", str(run)]) == 0
    first = capsys.readouterr().out
    assert "test NLL:" in first and "bits/dim" in first
    assert cli.main(["sample", "--run-dir", str(run), "-n", "17"]) == 0
    assert np.load(run / "samples.npy").shape == (17, 2)
    (run / "density.png").unlink()
    assert cli.main(["plot", "--run-dir", str(run)]) == 0
    assert (run / "density.png").exists()
    assert cli.main(["export", "--run-dir", str(run), "--export-dir",
                     str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "maf-points" / "1" / "saved_model.pb").exists()


def test_vector_recipe_on_digits_trains_on_the_dequantization_bound(tmp_path, capsys):
    """realnvp on the digits: integer levels, fresh uniform noise at every step, the loss
    and the report in bits/dim of the discrete 17-level data; samples are levels."""
    run = tmp_path / "run"
    assert cli.main(["train", "--model", "realnvp", "--data", "digits", "--epochs", "2",
                     "--num-layers", "2", "--hidden-units", "32", "--run-dir", str(run),
                     "--no-export", "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "= bits/dim of the discrete data (dequantization bound" in out
    bits = float(re.search(r"\((\S+) bits/dim\)", out).group(1))
    print(f"realnvp digits, 2 epochs: {bits:.3f} bits/dim (uniform over 17 levels: 4.087)")
    assert 1.0 < bits < np.log2(17)
    assert (run / "samples.png").stat().st_size > 0
    assert cli.main(["sample", "--run-dir", str(run), "-n", "5"]) == 0
    samples = np.load(run / "samples.npy")
    assert samples.shape == (5, 64) and np.all(samples == np.round(samples))
    assert samples.min() >= 0 and samples.max() <= 16


def test_builder_options_the_recipe_does_not_take_are_refused_and_option_sets_any(
        tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--model", "glow", "--epochs", "1", "--run-dir", str(run), "--no-export",
            "--verbose", "0"]
    assert cli.main([*base, "--num-layers", "3"]) == 2
    err = capsys.readouterr().err
    assert "'glow' does not take --num-layers" in err and "num_steps" in err
    assert cli.main([*base, "--option", "num_stepz=1"]) == 2
    assert "does not take num_stepz" in capsys.readouterr().err
    assert cli.main([*base, "--option", "8"]) == 2
    assert "--option needs NAME=VALUE" in capsys.readouterr().err
    assert cli.main([*base, "--option", "num_steps=1", "--option", "hidden_channels=4",
                     "--option", "dequantization=uniform"]) == 0
    config, model, _ = cli._restore(str(run))
    assert config["clip_norm"] == 5.0
    expected = models.build("glow", (8, 8, 1), num_steps=1, hidden_channels=4)
    assert model.count_params() == expected.count_params() < models.build(
        "glow", (8, 8, 1)).count_params()


def test_bad_data_file_gives_error_naming_row_and_column(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("1.0,2.0\n3.0,abc\n")
    code = cli.main(["train", "--data", str(tmp_path / "bad.csv"), "--run-dir",
                     str(tmp_path / "r"), "--no-export", "--verbose", "0"])
    assert code == 2
    assert "bad.csv: data row 2, column 2 is not a number: 'abc'" in capsys.readouterr().err


@pytest.mark.slow
def test_conditional_sbi_run_reports_posterior_kl_and_every_command_works(tmp_path, capsys):
    """A tiny budget (1 epoch, 600 pairs): only the plumbing is checked here; the README
    gives the KL of the recipe's full budget."""
    run = tmp_path / "sbi"
    assert cli.main(["train", "--model", "maf", "--data", "sbi-gaussian-mean", "--epochs", "1",
                     "--num-points", "600", "--num-layers", "1", "--hidden-units", "8",
                     "--run-dir", str(run), "--export-dir", str(tmp_path / "exp"),
                     "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "test NLL:" in out and "posterior KL(analytic || flow):" in out
    logs = json.loads((run / "history.json").read_text())
    assert np.isfinite(logs["posterior_kl"]) and logs["posterior_kl"] > 0
    assert json.loads((run / "config.json").read_text())["context_size"] == 2
    loaded = tf.saved_model.load(str(tmp_path / "exp" / "maf-sbi-gaussian-mean" / "1"))
    lp = loaded.signatures["log_prob"](x=tf.zeros([3, 2]), context=tf.ones([3, 2]))
    assert lp["log_prob"].shape == (3,)
    assert cli.main(["evaluate", "--run-dir", str(run)]) == 0
    assert "posterior KL" in capsys.readouterr().out
    assert cli.main(["sample", "--run-dir", str(run), "-n", "17", "--context", "1", "-1"]) == 0
    assert np.load(run / "samples.npy").shape == (17, 2)
    assert cli.main(["sample", "--run-dir", str(run), "-n", "3", "--context", "1"]) == 2
    assert "--context needs 2 numbers" in capsys.readouterr().err
    (run / "posterior.png").unlink()
    assert cli.main(["plot", "--run-dir", str(run)]) == 0
    assert (run / "posterior.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code = cli.main(["train", "--model", "nice", "--data", "sbi-gaussian-mean", "--epochs", "1",
                     "--run-dir", str(tmp_path / "nice"), "--no-export", "--verbose", "0"])
    assert code == 2 and "has no conditional form" in capsys.readouterr().err


def test_runs_never_clobber_data_hash_score_csv_and_export_names(tmp_path, capsys,
                                                                  monkeypatch):
    """Default run folders are numbered, explicit ones refused; config.json records the data
    file's path and sha256 and evaluate warns when it changed; evaluate --data and score
    read other files; sample writes .csv; exports go to <model>-<data> and a different
    signature under the same name is refused before training."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savetxt("pts.csv", rng.normal(size=(200, 3)) * [1, 5, 100] + [0, 10, 1000],
               delimiter=",")
    small = ["--epochs", "1", "--num-layers", "1", "--hidden-units", "8", "--verbose", "0"]
    assert cli.main(["train", "--data", "pts.csv", *small]) == 0
    out = capsys.readouterr().out
    assert "standardized:" in out and "SavedModel: saved_models/maf-pts/1" in out
    config = json.loads((tmp_path / "runs/maf-pts/config.json").read_text())
    assert config["data_path"] == str(tmp_path / "pts.csv") and config["standardize"]
    assert config["data_sha256"] == cli._sha256("pts.csv") and len(config["data_sha256"]) == 64
    first_weights = (tmp_path / "runs/maf-pts/best.weights.h5").read_bytes()
    assert (tmp_path / "runs/maf-pts/corner.png").stat().st_size > 0  # 3-D data

    assert cli.main(["train", "--data", "pts.csv", "--no-standardize", "--no-export",
                     *small]) == 0
    assert ("run folder: runs/maf-pts-2 (runs/maf-pts holds an earlier run; --overwrite "
            "replaces it)") in capsys.readouterr().out
    assert (tmp_path / "runs/maf-pts/best.weights.h5").read_bytes() == first_weights
    assert not json.loads((tmp_path / "runs/maf-pts-2/config.json").read_text())["standardize"]
    assert cli.main(["train", "--data", "pts.csv", "--run-dir", "runs/maf-pts", *small]) == 2
    assert "runs/maf-pts already holds a run; pass --overwrite" in capsys.readouterr().err

    # scores: the model's own log_prob, in data units (the data's scale is ~100)
    _, model, _ = cli._restore("runs/maf-pts", need_data=False)
    assert cli.main(["score", "--run-dir", "runs/maf-pts", "--data", "pts.csv",
                     "--out", "lp.csv"]) == 0
    scores = np.loadtxt("lp.csv", skiprows=1)
    data = np.loadtxt("pts.csv", delimiter=",").astype(np.float32)
    np.testing.assert_allclose(scores, np.asarray(model.log_prob(data)), rtol=1e-5, atol=1e-4)
    assert -20 < scores.mean() < -5  # standardised: log(1 * 5 * 100) ~ 6.2 nats of scale
    assert cli.main(["score", "--run-dir", "runs/maf-pts", "--data", "pts.csv",
                     "--out", "lp.npy"]) == 0
    np.testing.assert_allclose(np.load("lp.npy"), scores, rtol=1e-6, atol=1e-5)
    capsys.readouterr()
    assert cli.main(["evaluate", "--run-dir", "runs/maf-pts", "--data", "pts.csv"]) == 0
    line = capsys.readouterr().out
    assert f"NLL of pts.csv (200 rows): {-np.mean(scores):.4f} nats" in line
    assert cli.main(["sample", "--run-dir", "runs/maf-pts", "-n", "7", "--out", "s.csv"]) == 0
    assert np.loadtxt("s.csv", delimiter=",").shape == (7, 3)

    with open("pts.csv", "a") as f:
        f.write("0,10,1000\n")
    capsys.readouterr()
    assert cli.main(["evaluate", "--run-dir", "runs/maf-pts"]) == 0
    err = capsys.readouterr().err
    assert "pts.csv changed since this run was trained" in err and len(err.splitlines()) == 1
    assert cli.main(["sample", "--run-dir", "runs/maf-pts", "-n", "3"]) == 0
    assert "pts.csv changed since this run was trained" in capsys.readouterr().err
    np.savetxt("wide.csv", rng.normal(size=(20, 4)), delimiter=",")
    assert cli.main(["score", "--run-dir", "runs/maf-pts", "--data", "wide.csv",
                     "--out", "x.npy"]) == 2
    assert "rows of 4 numbers; this run's model takes 3" in capsys.readouterr().err

    # same export name (maf-pts), other signature: refused before training, a free name named
    (tmp_path / "other").mkdir()
    np.savetxt("other/pts.csv", rng.normal(size=(50, 4)), delimiter=",")
    assert cli.main(["train", "--data", "other/pts.csv", *small]) == 2
    err = capsys.readouterr().err
    assert ("saved_models/maf-pts/1 takes x: float32[None, 3], this run x: float32[None, 4]"
            in err and "--export-name maf-pts-2" in err)
    assert not (tmp_path / "runs/maf-pts-3").exists()
    assert cli.main(["train", "--data", "other/pts.csv", "--export-name", "maf-pts-2",
                     *small]) == 0
    assert "SavedModel: saved_models/maf-pts-2/1" in capsys.readouterr().out
    assert cli.main(["export", "--run-dir", "runs/maf-pts"]) == 0
    assert "SavedModel: saved_models/maf-pts/2" in capsys.readouterr().out
