"""Figures for sweeps and training curves; matplotlib is imported only when one is drawn.

Used by the command line and the example scripts alike. Functions that draw
return the figure (or draw on the axes they are given); :func:`save_figure`
writes and closes it.
"""

from __future__ import annotations

import math
import os

import numpy as np


def pyplot(**rc):
    """``matplotlib.pyplot`` on the file-only Agg backend, with ``rc`` settings applied.

    Raises:
      ImportError: matplotlib is not installed (with the command that installs it).
    """
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'jaxdse[data]' (or matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(rc)
    return plt


def image_formats() -> tuple:
    """The file extensions (``".png"``, ``".pdf"``, ...) matplotlib can write here."""
    pyplot()
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(sorted("." + ext for ext in FigureCanvasBase.get_supported_filetypes()))


def save_figure(fig, path, *, dpi=120):
    """Lay out ``fig``, write it to ``path`` (format from the extension) and close it; returns ``path``."""
    plt = pyplot()
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def sweep_heatmap(ax, grid, sigmas, ts, *, title="", sigma_labels=None, annotate=True, cmap="viridis"):
    """Draw ``grid`` ``[S, T]`` (rows sigma, columns t) on ``ax``, both axes in increasing order.

    Args:
      ax: a matplotlib axes.
      grid: values ``[S, T]``, e.g. :attr:`jaxdse.mi.sweep.Sweep.dse`.
      sigmas, ts: ``[S]`` and ``[T]``, in any order (rows and columns are sorted).
      title: the panel's title.
      sigma_labels: optional ``[S]`` tick labels (e.g. ``"median (= 26.3)"``),
        in the order of ``sigmas``; default the numbers.
      annotate: write each value in its cell.
      cmap: matplotlib colour map.

    Returns:
      The image, for a colour bar.
    """
    sigmas, ts = np.asarray(sigmas, float), np.asarray(ts, float)
    rows, cols = np.argsort(sigmas, kind="stable"), np.argsort(ts, kind="stable")
    grid = np.asarray(grid, float)[rows][:, cols]
    labels = [f"{s:.3g}" for s in sigmas] if sigma_labels is None else list(sigma_labels)
    image = ax.imshow(grid, aspect="auto", cmap=cmap, origin="lower")
    step_t, step_s = max(1, len(ts) // 10), max(1, len(sigmas) // 10)
    ax.set_xticks(range(0, len(ts), step_t), [f"{ts[j]:.3g}" for j in cols[::step_t]])
    ax.set_yticks(range(0, len(sigmas), step_s), [labels[i] for i in rows[::step_s]])
    ax.set_xlabel("diffusion time t")
    ax.set_ylabel("bandwidth sigma")
    ax.set_title(title, fontsize=10)
    if annotate:
        finite = grid[np.isfinite(grid)]
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                text = f"{grid[i, j]:.2f}" if np.isfinite(grid[i, j]) else "n/a"
                colour = "black" if grid[i, j] > middle else "white"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    return image


def sweep_figure(sigmas, ts, dse, dsmi=None, *, title="", sigma_labels=None):
    """Heatmaps of DSE (and DSMI) over sigma x t, side by side, values in the cells; returns the figure."""
    plt = pyplot()
    panels = [("DSE (bits)", dse)] + ([("DSMI(Z; Y) (bits)", dsmi)] if dsmi is not None else [])
    width = 1.0 + 1.1 * len(ts) * len(panels) + 2.5 * len(panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 1.2 + 0.6 * len(sigmas)), squeeze=False)
    for ax, (name, grid) in zip(axes[0], panels):
        image = sweep_heatmap(ax, grid, sigmas, ts, title=f"{name} {title}".strip(), sigma_labels=sigma_labels)
        fig.colorbar(image, ax=ax)
    return fig


def demo_figure(curves, *, n_test, sigma, t):
    """Accuracy, and DSE/DSMI of the penultimate layer, against epoch; returns the figure.

    ``curves`` holds lists under ``epoch``, ``train_accuracy``, ``accuracy``
    (test), ``dse``, ``dsmi`` (labels Y) and ``dsmi_x`` (input clusters X).
    """
    plt = pyplot()
    epochs = curves["epoch"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(epochs, curves["train_accuracy"], "o-", label="train")
    left.plot(epochs, curves["accuracy"], "s-", label="test")
    left.set_xlabel("epoch")
    left.set_ylabel("accuracy")
    left.set_ylim(0, 1)
    left.legend()
    left.set_title("small CNN on the 8x8 digits")
    right.plot(epochs, curves["dse"], "o-", label="DSE(Z)")
    right.plot(epochs, curves["dsmi"], "s-", label="DSMI(Z; Y) labels")
    right.plot(epochs, curves["dsmi_x"], "^-", label="DSMI(Z; X) input clusters")
    right.set_xlabel("epoch")
    right.set_ylabel("bits")
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.legend(fontsize=8)
    right.set_title(
        f"penultimate layer Z on {n_test} test digits, sigma = {sigma:g}, t = {t:g}\n"
        f"(DSE <= log2 n = {math.log2(n_test):.2f})",
        fontsize=10,
    )
    return fig


def _layer_values(profile, quantity):
    """``(depth [L], mean [L], spread [L] or None)`` of a :class:`~jaxdse.LayerProfile` or values ``[L]``/``[L, B]``."""
    values = np.asarray(getattr(profile, quantity) if hasattr(profile, quantity) else profile, np.float64)
    depth = np.asarray(profile.depth) if hasattr(profile, "depth") else np.linspace(0.0, 1.0, len(values))
    if values.ndim == 2:  # per prompt: the mean over prompts and its spread
        return depth, np.nanmean(values, 1), np.nanstd(values, 1)
    return depth, values, None


def layer_profiles(ax, profiles, *, quantity="value", ylabel=None, title=""):
    """Draw layer profiles on ``ax`` against depth (layer / (L - 1)), one line per model or checkpoint.

    Args:
      ax: a matplotlib axes.
      profiles: ``{name: profile}``, each a :class:`~jaxdse.LayerProfile` or
        values ``[L]`` (``[L, B]`` per prompt: drawn as the mean over prompts
        with a band of one standard deviation). Models of different depths
        share the axis.
      quantity: the profile's field to draw: ``"value"`` (DSE), ``"normalized"``
        (DSE / log2 n) or ``"mi"`` (DSMI).
      ylabel: the y label (default from ``quantity``).
      title: the panel's title.
    """
    for name, prof in profiles.items():
        depth, mean, spread = _layer_values(prof, quantity)
        (line,) = ax.plot(depth, mean, "o-", ms=3, label=str(name))
        if spread is not None:
            ax.fill_between(depth, mean - spread, mean + spread, color=line.get_color(), alpha=0.2, lw=0)
    default = {"value": "DSE (bits)", "normalized": "DSE / log2 n", "mi": "DSMI(Z; Y) (bits)"}
    ax.set_xlabel("depth (layer / (L - 1))")
    ax.set_ylabel(ylabel or default.get(quantity, quantity))
    ax.set_xlim(-0.02, 1.02)
    if len(profiles) > 1:
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)


def layer_profile_figure(profiles, *, quantity="value", title="", ylabel=None):
    """A figure of :func:`layer_profiles` (same arguments); returns the figure."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    layer_profiles(ax, profiles, quantity=quantity, ylabel=ylabel, title=title)
    return fig


def layer_heatmap(ax, values, checkpoints, *, title="", cmap="viridis"):
    """Draw layers (rows, input at the bottom) x checkpoints (columns) on ``ax``; returns the image.

    Args:
      ax: a matplotlib axes.
      values: ``[C, L]`` (one profile per checkpoint) or a sequence of
        :class:`~jaxdse.LayerProfile` / ``[L]`` arrays of one depth.
      checkpoints: ``C`` column labels (steps, epochs, names).
      title: the panel's title.
    """
    grid = values if isinstance(values, np.ndarray) else np.stack([_layer_values(v, "value")[1] for v in values])
    image = ax.imshow(np.asarray(grid, np.float64).T, origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(len(checkpoints)), [str(c) for c in checkpoints], rotation=45 if len(checkpoints) > 8 else 0)
    ax.set_xlabel("checkpoint")
    ax.set_ylabel("layer")
    if title:
        ax.set_title(title, fontsize=10)
    return image


def layer_heatmap_figure(values, checkpoints, *, title="", label="DSE (bits)", cmap="viridis"):
    """A figure of :func:`layer_heatmap` with a colour bar labelled ``label``; returns the figure."""
    plt = pyplot()
    grid = values if isinstance(values, np.ndarray) else np.stack([_layer_values(v, "value")[1] for v in values])
    fig, ax = plt.subplots(figsize=(1.5 + 0.45 * grid.shape[0], 1.2 + 0.22 * grid.shape[1]))
    fig.colorbar(layer_heatmap(ax, grid, checkpoints, title=title, cmap=cmap), ax=ax, label=label)
    return fig
