import numpy as np
import pytest

from tfp_flows import FlowDataError, datasets


@pytest.mark.parametrize("name", sorted(datasets.DATASETS))
def test_builtin_sets_are_finite_split_and_reproducible(name):
    train, val, test = datasets.load(name, 2000, seed=0)
    assert train.dtype == np.float32 and np.all(np.isfinite(train))
    total = len(train) + len(val) + len(test)
    assert len(train) == pytest.approx(0.8 * total, abs=1)
    again = datasets.load(name, 2000, seed=0)[0]
    np.testing.assert_array_equal(train, again)
    if name == "digits":
        assert train.shape[1:] == (8, 8, 1) and 0.0 <= train.min() and train.max() < 1.0
    elif name == "breast-cancer":
        assert train.shape[1:] == (30,)
    else:
        assert train.shape[1:] == (2,) and total == 2000


def test_two_moons_standardisation_is_exact():
    x = datasets.two_moons(200000, seed=3)
    np.testing.assert_allclose(x.mean(0), 0.0, atol=0.01)
    np.testing.assert_allclose(x.std(0), 1.0, atol=0.01)


def test_discrete_bits_per_dim_formula():
    # A uniform density on [0, 1]^D has NLL 0: the discrete bound is log2(17) bits/dim.
    assert datasets.discrete_bits_per_dim(0.0, 64) == pytest.approx(np.log2(17))


def test_load_file_reads_npy_and_csv_and_names_bad_cells(tmp_path):
    good = np.arange(6, dtype=np.float64).reshape(3, 2)
    np.save(tmp_path / "good.npy", good)
    np.testing.assert_array_equal(datasets.load_file(str(tmp_path / "good.npy")), good)
    (tmp_path / "good.csv").write_text("a,b\n1,2\n3,4.5\n")
    np.testing.assert_array_equal(datasets.load_file(str(tmp_path / "good.csv")),
                                  [[1, 2], [3, 4.5]])
    (tmp_path / "text.csv").write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(FlowDataError, match=r"text.csv: data row 2, column 2 is not a number"):
        datasets.load_file(str(tmp_path / "text.csv"))
    (tmp_path / "nan.csv").write_text("1,2\nnan,4\n")
    with pytest.raises(FlowDataError, match=r"nan.csv: data row 2, column 1 is not finite"):
        datasets.load_file(str(tmp_path / "nan.csv"))
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(FlowDataError, match="data row 2 has 1 columns"):
        datasets.load_file(str(tmp_path / "ragged.csv"))
    bad = good.copy()
    bad[2, 1] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(FlowDataError, match=r"bad.npy: row 2, column 1 is not finite"):
        datasets.load_file(str(tmp_path / "bad.npy"))
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(FlowDataError, match="unsupported file type"):
        datasets.load_file(str(tmp_path / "x.txt"))


def test_conditional_sbi_set_gives_split_context_x_pairs_from_the_simulator():
    parts = datasets.load("sbi-gaussian-mean", 1000, seed=0)
    assert [(len(c), len(x)) for c, x in parts] == [(800, 800), (100, 100), (100, 100)]
    (context, theta), again = parts[0], datasets.load("sbi-gaussian-mean", 1000, seed=0)[0]
    np.testing.assert_array_equal(context, again[0])
    assert context.shape == theta.shape == (800, 2) and context.dtype == np.float32
    # observation = mean of 5 draws around theta: residual variance 1/5 per coordinate
    assert np.var(context - theta) == pytest.approx(0.2, rel=0.15)
    assert "sbi-gaussian-mean" in datasets.ANALYTIC_POSTERIORS
    with pytest.raises(ValueError, match="sbi-gaussian-mean"):
        datasets.load("nope")
