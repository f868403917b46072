"""Figures (matplotlib, PNG): data vs samples vs learned density; training curves."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path, title=None):
    """Title, tight layout, write the PNG, free the figure; returns `path`."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_density_2d(model, data, path, *, num_samples=2000, seed=1, grid=200, title=None):
    """Three panels for a 2-D flow: data, samples, and the learned density as a heatmap."""
    samples = np.asarray(model.sample(num_samples, seed=seed))
    lo = np.percentile(data, 0.5, axis=0)
    hi = np.percentile(data, 99.5, axis=0)
    pad = 0.25 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
    points = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.asarray(data).dtype)
    density = np.exp(np.asarray(model.log_prob(points))).reshape(grid, grid)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    shown = data[np.random.default_rng(0).permutation(len(data))[:num_samples]]
    axes[0].scatter(shown[:, 0], shown[:, 1], s=2, alpha=0.5)
    axes[0].set_title("data")
    axes[1].scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5, color="tab:orange")
    axes[1].set_title("samples from the flow")
    axes[2].imshow(density, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]),
                   aspect="auto", cmap="viridis")
    axes[2].set_title("learned density")
    for ax in axes:
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
    return _save(fig, path, title)


def plot_history(history, path, *, title="negative log-likelihood (nats)"):
    """Training and validation NLL per epoch from a Keras History (or its .history dict)."""
    logs = getattr(history, "history", history)
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("nll", "train"), ("val_nll", "validation")):
        if key in logs:
            ax.plot(np.arange(1, len(logs[key]) + 1), logs[key], label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def plot_image_samples(model, data, path, *, num=32, seed=1, title=None):
    """Samples from an image flow beside training images and their reconstructions.

    Reconstructions go through the flow and back, x -> z -> x, so they show how exactly
    the bijector inverts. Flattened 64-D data is shown as 8x8 images.
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
    rows = [("data", data), ("reconstructed", recon), ("samples", samples)]
    fig, axes = plt.subplots(len(rows), 1, figsize=(num * 0.4, 0.9 * len(rows) + 0.6))
    for ax, (label, images) in zip(axes, rows, strict=True):
        strip = np.concatenate([np.clip(im.reshape(side, side), 0, 1) for im in images], 1)
        ax.imshow(strip, cmap="gray_r", vmin=0, vmax=1)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path, title)


def plot_posterior_2d(model, context, path, *, reference=None, num_samples=2000, seed=1,
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
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    for ax, (label, points_shown) in zip(axes[0], panels, strict=True):
        if ax is axes[0][0]:
            ax.imshow(density, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]),
                      aspect="auto", cmap="viridis")
        ax.scatter(points_shown[:, 0], points_shown[:, 1], s=2, alpha=0.4, color="tab:orange")
        if truth is not None:
            ax.contour(gx, gy, truth, levels=4, colors="crimson", linewidths=1.0)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_title(label)
    context_text = ", ".join(f"{v:.2f}" for v in context[0])
    return _save(fig, path, title or f"p(x | context = [{context_text}])")
