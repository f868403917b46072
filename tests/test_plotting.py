"""Figures: returned Figures, colour bar and equal aspect, integer epochs with the best one
marked, bits/dim, corner plots for D > 2, image grids with gaps, no backend forced."""

import os
import subprocess
import sys

import matplotlib
import numpy as np
from matplotlib.figure import Figure

matplotlib.use("Agg")  # this test process: files only

from tfp_flows import plotting  # noqa: E402


class _Gaussian:
    """A standard normal 'flow' in D dimensions (sample, log_prob; identity bijector)."""

    def __init__(self, dims):
        self.dims = dims
        self.distribution = self
        self.bijector = self

    def sample(self, n, seed=None):
        return np.random.default_rng(seed).normal(size=(n, self.dims)).astype(np.float32)

    def log_prob(self, x):
        x = np.asarray(x, np.float64)
        return -0.5 * (x**2).sum(-1) - 0.5 * self.dims * np.log(2 * np.pi)

    def forward(self, x):
        return x

    inverse = forward


def test_importing_plotting_selects_no_backend():
    code = ("import sys, matplotlib, tfp_flows.plotting; "
            "print(matplotlib.get_backend(), 'tensorflow' in sys.modules)")
    env = {**os.environ, "MPLBACKEND": "svg"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    assert out == ["svg", "False"]


def test_density_map_has_colour_bar_and_equal_aspect(tmp_path):
    data = np.random.default_rng(0).normal(size=(500, 2)) * [1.0, 3.0]
    fig = plotting.plot_density_2d(_Gaussian(2), data, str(tmp_path / "d.png"), grid=50)
    assert isinstance(fig, Figure) and (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 3 and len(fig.axes) == 4  # + the colour bar
    assert [ax.get_aspect() for ax in panels] == [1.0, 1.0, 1.0]
    assert fig.axes[3].get_ylabel() == "p(x)"
    # into the caller's axes, no file
    import matplotlib.pyplot as plt

    own, axes = plt.subplots(1, 3)
    assert plotting.plot_density_2d(_Gaussian(2), data, ax=axes, grid=20) is own
    plt.close(own)


def test_history_has_integer_epochs_marks_the_best_and_uses_bits_per_dim():
    logs = {"nll": [3.0, 2.5, 2.2, 2.1], "val_nll": [3.1, 2.4, 2.6, 2.45]}
    fig = plotting.plot_history(logs)
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "best: epoch 2, 2.4" in labels  # the lowest validation NLL
    assert ax.get_ylabel() == "NLL (nats)"
    bits = plotting.plot_history({"loss": [9.0, 8.0], "bits_per_dim": [2.0, 1.8],
                                  "val_bits_per_dim": [1.9, 1.7]})
    assert bits.axes[0].get_ylabel() == "bits/dim"
    assert "best: epoch 2, 1.7" in [t.get_text() for t in bits.axes[0].get_legend().get_texts()]


def test_corner_plot_of_higher_dimensional_data(tmp_path):
    data = np.random.default_rng(1).normal(size=(400, 7))
    fig = plotting.plot_corner(_Gaussian(7), data, str(tmp_path / "c.png"), num_samples=300)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 25 and len(visible) == 15 + 1  # 5 dims: lower triangle + legend
    assert [ax.get_xlabel() for ax in fig.axes[20:25]] == ["x0", "x1", "x2", "x3", "x4"]
    assert "first 5 of 7 coordinates" in fig._suptitle.get_text()
    assert (tmp_path / "c.png").stat().st_size > 10_000


def test_image_grid_has_gaps_between_images():
    images = np.ones((5, 4))  # five 2x2 images
    mosaic = plotting._mosaic(images, 2, columns=3)
    assert mosaic.shape == (2 * 2 + 1, 3 * 2 + 2)
    assert np.isnan(mosaic[:, 2]).all() and np.isnan(mosaic[2, :]).all()  # the gaps
    assert np.nansum(mosaic) == 5 * 4
    fig = plotting.plot_image_samples(_Gaussian(64), np.random.default_rng(0).random((40, 64)),
                                      num=20, columns=10)
    assert len(fig.axes) == 3
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown.shape == (2 * 8 + 1, 10 * 8 + 9)


def test_equal_aspect_only_when_the_coordinates_have_comparable_ranges():
    """A price (~1e4 wide) against a rate (~0.02 wide) would collapse to a line at equal
    aspect: such panels stretch each axis to its data instead."""
    from tfp_flows.plotting import _aspect

    assert _aspect([-3.0, -2.0], [3.0, 2.5]) == "equal"
    assert _aspect([46000.0, -3.01], [56000.0, -2.985]) == "auto"
    assert _aspect([0.0, 0.0], [1.0, 0.0]) == "auto"
