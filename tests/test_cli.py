import json

import numpy as np
import tensorflow as tf

from tfp_flows import cli


def test_list_shows_models_and_data(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("maf", "iaf", "realnvp", "nice", "two-moons"):
        assert name in out


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
    loaded = tf.saved_model.load(str(export_dir / "realnvp" / "1"))
    lp = loaded.signatures["log_prob"](x=tf.zeros([4, 2]))["log_prob"].numpy()
    assert lp.shape == (4,) and np.all(np.isfinite(lp))
