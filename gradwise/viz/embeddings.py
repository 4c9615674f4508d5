"""Points of a 2-D projection of embeddings (a PCA of item factors), each labelled with its name."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gradwise.viz._common import TRAIN_COLOR, prepare_path, save_png

__all__ = ["plot_embedding_2d"]


def plot_embedding_2d(
    coords: np.ndarray,
    labels: Sequence[str],
    out_path: str | os.PathLike[str],
    *,
    title: str = "",
    axis_labels: tuple[str, str] = ("component 1", "component 2"),
    max_label_chars: int = 32,
    figsize: tuple[float, float] = (10.0, 10.0),
    dpi: int = 100,
) -> Path:
    """Write a scatter of `coords` with each point labelled by `labels` as a PNG.

    The fastbook's picture of the first principal components of the movie factors: draw what
    `gradwise.collab.item_pca` returns for a few dozen of the most rated items, labelled with
    their titles.

    Parameters
    ----------
    coords : array_like, shape (M, 2)
    labels : sequence of str, length M
        Shortened to `max_label_chars` (with an ellipsis).
    out_path : path-like
        The PNG to write (atomically); its directory is created if missing.
    title, axis_labels : str
    max_label_chars : int
    figsize : (float, float), inches
    dpi : int

    Returns
    -------
    Path
    """
    from matplotlib.figure import Figure

    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"plot_embedding_2d: coords must have shape (M, 2), got {xy.shape}")
    if len(labels) != len(xy):
        raise ValueError(f"plot_embedding_2d: {len(labels)} labels for {len(xy)} points")
    if max_label_chars < 4:
        raise ValueError(f"plot_embedding_2d: {max_label_chars=} must be >= 4")
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(xy[:, 0], xy[:, 1], s=14, color=TRAIN_COLOR, alpha=0.8)
    # Colours cycle so that neighbouring labels are told apart (the fastbook colours them at random).
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:olive", "tab:cyan")
    for k, ((x, y), text) in enumerate(zip(xy, labels)):
        short = text if len(text) <= max_label_chars else text[: max_label_chars - 1] + "\u2026"
        ax.annotate(short, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=8,
                    color=colors[k % len(colors)])
    if len(xy):
        pad = 0.08 * max(float(np.ptp(xy[:, 0])), float(np.ptp(xy[:, 1])), 1e-12)
        ax.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + 3 * pad)
        ax.set_ylim(xy[:, 1].min() - pad, xy[:, 1].max() + pad)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return save_png(fig, prepare_path(out_path), dpi)
