"""Figures (matplotlib): data vs samples vs learned density, training curves, corner plots.

Every function returns the matplotlib `Figure`; given a `path` it also writes the PNG there
(and closes the figure, so that loops over many runs do not pile figures up). Functions that
draw one panel take `ax=` to draw into your own axes. Importing this module selects no
backend: in a script without a display, call `matplotlib.use("Agg")` first if matplotlib
does not pick a non-interactive one by itself (the `tfp-flows` command does).
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator


def _finish(fig, path, title=None):
    """Title, layout, and when `path` is given the PNG written and the figure closed."""
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
    return fig


def _axes(n, ax, figsize):
    """`n` axes: the caller's (`ax`, one or a sequence of n) or a new figure's."""
    if ax is None:
        fig, axes = plt.subplots(1, n, figsize=figsize, squeeze=False, layout="constrained")
        return fig, list(axes[0])
    axes = list(np.ravel(ax)) if np.ndim(ax) else [ax]
    if len(axes) != n:
        raise ValueError(f"ax: this figure draws {n} panels; got {len(axes)} axes.")
    return axes[0].figure, axes


def _aspect(lo, hi, max_ratio=5.0):
    """"equal" when the two axes' ranges are within `max_ratio` of each other, else "auto":
    data in units of very different sizes (a price and a rate) would collapse to a line."""
    spans = np.abs(np.asarray(hi, float) - np.asarray(lo, float))
    if spans.min() <= 0 or spans.max() / spans.min() > max_ratio:
        return "auto"
    return "equal"


def plot_density_2d(model, data, path=None, *, num_samples=2000, seed=1, grid=200, title=None,
                    ax=None):
    """Three panels for a 2-D flow: data, samples, and the learned density with a colour bar.

    All panels share limits (the data's 0.5-99.5 percentiles plus a margin) and an equal
    aspect, so shapes are not distorted, unless the two coordinates' ranges differ by more
    than a factor 5 (then each axis is stretched to its data). `ax`: three axes to draw into.
    """
    data = np.asarray(data)
    samples = np.asarray(model.sample(num_samples, seed=seed))
    lo = np.percentile(data, 0.5, axis=0)
    hi = np.percentile(data, 99.5, axis=0)
    pad = 0.25 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
    points = np.stack([gx.ravel(), gy.ravel()], 1).astype(data.dtype)
    density = np.exp(np.asarray(model.log_prob(points))).reshape(grid, grid)

    fig, axes = _axes(3, ax, (14, 4.4))
    shown = data[np.random.default_rng(0).permutation(len(data))[:num_samples]]
    axes[0].scatter(shown[:, 0], shown[:, 1], s=2, alpha=0.5)
    axes[0].set_title("data")
    axes[1].scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5, color="tab:orange")
    axes[1].set_title("samples from the flow")
    aspect = _aspect(lo, hi)
    image = axes[2].imshow(density, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]),
                           cmap="viridis", aspect=aspect)
    axes[2].set_title("learned density")
    fig.colorbar(image, ax=axes[2], label="p(x)", shrink=0.9)
    for a in axes:
        a.set_xlim(lo[0], hi[0])
        a.set_ylim(lo[1], hi[1])
        a.set_aspect(aspect)
    return _finish(fig, path, title)


def plot_history(history, path=None, *, title=None, ax=None):
    """Training and validation loss per epoch from a Keras History (or its .history dict).

    In bits/dim when the model reports them (`bits_per_dim` in the logs), else the NLL in
    nats. Epoch ticks are integers (epoch 1 is the first); the best validation epoch (the
    one `ModelCheckpoint(save_best_only=True)` keeps) is marked.
    """
    logs = getattr(history, "history", history)
    bits = "bits_per_dim" in logs or "val_bits_per_dim" in logs
    train_key, val_key = ("bits_per_dim", "val_bits_per_dim") if bits else ("nll", "val_nll")
    unit = "bits/dim" if bits else "NLL (nats)"
    fig, (ax,) = _axes(1, ax, (6, 4))
    for key, label in ((train_key, "train"), (val_key, "validation")):
        if key in logs:
            ax.plot(np.arange(1, len(logs[key]) + 1), logs[key], marker="." if len(
                logs[key]) < 30 else None, label=label)
    values = np.asarray(logs.get(val_key, []), float)
    if np.isfinite(values).any():
        best = int(np.nanargmin(np.where(np.isfinite(values), values, np.nan)))
        ax.axvline(best + 1, color="0.6", linestyle=":", linewidth=1)
        ax.plot(best + 1, values[best], "*", color="tab:red", markersize=12,
                label=f"best: epoch {best + 1}, {values[best]:.4g}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(unit)
    ax.set_title(title or f"training curve: {'bits/dim' if bits else 'NLL in nats'}")
    ax.legend()
    return _finish(fig, path)


def _mosaic(images, side, columns, gap=1):
    """Images of `side` x `side` pixels tiled `columns` a row with `gap` NaN pixels between
    them (NaN is drawn in the background colour)."""
    rows = -(-len(images) // columns)
    step = side + gap
    out = np.full((rows * step - gap, columns * step - gap), np.nan)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        out[r * step: r * step + side, c * step: c * step + side] = image.reshape(side, side)
    return out


def plot_image_samples(model, data, path=None, *, num=32, seed=1, title=None, columns=16):
    """Samples from an image flow beside training images and their reconstructions.

    Reconstructions go through the flow and back, x -> z -> x, so they show how exactly
    the bijector inverts. Flattened 64-D data is shown as 8x8 images; each panel is a grid
    of `columns` images a row with gaps between them.
    """
    data = np.asarray(data[:num])
    side = int(round(np.sqrt(np.prod(data.shape[1:]))))
    levels = getattr(model.distribution, "num_levels", None)
    if levels:  # a DequantizedDistribution: integer levels, shown scaled to [0, 1]
        recon = np.asarray(model.distribution.reconstruct(data)) / (levels - 1)
        samples = np.asarray(model.sample(num, seed=seed)) / (levels - 1)
        data = data / (levels - 1)
    else:
        bijector = model.distribution.bijector
        recon = np.asarray(bijector.forward(bijector.inverse(data)))
        samples = np.asarray(model.sample(num, seed=seed))
    panels = [("data", data), ("reconstructed", recon), ("samples", samples)]
    columns = min(columns, num)
    grid_rows = -(-num // columns)
    fig, axes = plt.subplots(len(panels), 1, figsize=(0.5 * columns + 1.2,
                                                     (0.5 * grid_rows + 0.4) * len(panels)),
                             layout="constrained")
    cmap = plt.get_cmap("gray_r").with_extremes(bad="white")
    for ax, (label, images) in zip(axes, panels, strict=True):
        ax.imshow(_mosaic(np.clip(images, 0, 1), side, columns), cmap=cmap, vmin=0, vmax=1)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    return _finish(fig, path, title)


def plot_corner(model, data, path=None, *, dims=None, max_dims=5, num_samples=2000, seed=1,
                title=None, labels=None):
    """Pairwise marginals of data (blue) vs samples of the flow (orange), for D >= 2.

    The first `max_dims` coordinates (or the ones listed in `dims`): histograms of each on
    the diagonal, scatter plots of each pair below it, over shared limits (the data's
    0.5-99.5 percentiles plus a margin).
    """
    data = np.asarray(data).reshape(len(data), -1)
    dims = list(range(min(max_dims, data.shape[1]))) if dims is None else list(dims)
    samples = np.asarray(model.sample(num_samples, seed=seed)).reshape(num_samples, -1)
    shown = data[np.random.default_rng(0).permutation(len(data))[:num_samples]]
    lo = np.percentile(data[:, dims], 0.5, axis=0)
    hi = np.percentile(data[:, dims], 99.5, axis=0)
    pad = 0.15 * (hi - lo) + 1e-9
    lo, hi = lo - pad, hi + pad
    labels = labels or [f"x{d}" for d in dims]
    n = len(dims)
    fig, axes = plt.subplots(n, n, figsize=(2.2 * n + 0.6, 2.2 * n + 0.4), squeeze=False,
                             layout="constrained")
    for i in range(n):
        for j in range(n):
            ax = axes[i][j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                bins = np.linspace(lo[i], hi[i], 40)
                for values, style in ((shown, dict(alpha=0.5, label="data")),
                                      (samples, dict(histtype="step", color="tab:orange",
                                                     linewidth=1.5, label="flow samples"))):
                    values = values[:, dims[i]]
                    inside = values[(values >= lo[i]) & (values <= hi[i])]
                    # density of all values (the share outside the panel is left out)
                    weights = np.full(len(inside), 1.0 / (max(len(values), 1) * (bins[1] -
                                                                                 bins[0])))
                    ax.hist(inside, bins, weights=weights, **style)
                ax.set_yticks([])
            else:
                ax.scatter(shown[:, dims[j]], shown[:, dims[i]], s=1, alpha=0.3)
                ax.scatter(samples[:, dims[j]], samples[:, dims[i]], s=1, alpha=0.3,
                           color="tab:orange")
                ax.set_ylim(lo[i], hi[i])
            ax.set_xlim(lo[j], hi[j])
            if i == n - 1:
                ax.set_xlabel(labels[j])
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(labels[i])
            elif j > 0:
                ax.set_yticklabels([])
    handles, names = axes[0][0].get_legend_handles_labels()
    key = axes[0][n - 1] if n > 1 else axes[0][0]
    if n > 1:  # the empty top-right corner holds the legend
        key.set_visible(True)
        key.axis("off")
    key.legend(handles, names, loc="upper right", frameon=False)
    if data.shape[1] > n:
        title = f"{title + ': ' if title else ''}first {n} of {data.shape[1]} coordinates"
    return _finish(fig, path, title)


def plot_posterior_2d(model, context, path=None, *, reference=None, num_samples=2000, seed=1,
                      grid=150, title=None):
    """Samples of a conditional 2-D flow for one context (e.g. an observation in SBI),
    over its learned density; beside them the `reference` (a `simulators` task with the
    exact p(x | c), e.g. the analytic posterior), sampled, and its density as red contours
    on both panels."""
    context = np.asarray(context, np.float32).reshape(1, -1)
    samples = np.asarray(model.sample(num_samples, context, seed=seed))[:, 0]
    lo, hi = np.percentile(samples, 0.5, axis=0), np.percentile(samples, 99.5, axis=0)
    pad = 0.3 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
    points = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
    contexts = np.repeat(context, len(points), axis=0)
    density = np.exp(np.asarray(model.log_prob(points, contexts))).reshape(grid, grid)

    panels = [("flow samples and density", samples)]
    truth = None
    if reference is not None:
        rng = np.random.default_rng(seed)
        panels.append(("analytic samples", reference.sample(context, num_samples, rng)[:, 0]))
        truth = np.exp(reference.log_prob(points[:, None, :].astype(np.float64),
                                          context.astype(np.float64))).reshape(grid, grid)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.8 * len(panels), 4.8), squeeze=False,
                             layout="constrained")
    for ax, (label, points_shown) in zip(axes[0], panels, strict=True):
        if ax is axes[0][0]:
            image = ax.imshow(density, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]),
                              cmap="viridis", aspect=_aspect(lo, hi))
            fig.colorbar(image, ax=ax, label="flow density", shrink=0.9)
        ax.scatter(points_shown[:, 0], points_shown[:, 1], s=2, alpha=0.4, color="tab:orange")
        if truth is not None:
            ax.contour(gx, gy, truth, levels=4, colors="crimson", linewidths=1.0)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect(_aspect(lo, hi))
        ax.set_title(label)
    context_text = ", ".join(f"{v:.2f}" for v in context[0])
    return _finish(fig, path, title or f"p(x | context = [{context_text}])")
