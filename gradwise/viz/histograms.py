"""Histograms of every parameter's values and gradient (`gradwise.training.histograms` computes them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.viz._common import TRAIN_COLOR, VAL_COLOR, prepare_path, save_png

if TYPE_CHECKING:
    from gradwise.core import Layer

__all__ = ["plot_histogram_data", "plot_histograms"]


def plot_histograms(
    model: Layer, out_path: str | os.PathLike[str], *, bins: int = 50, title: str | None = None, dpi: int = 100
) -> Path:
    """Write a PNG with the histogram of every parameter's values and of its current gradient.

    One row per parameter (in `named_parameters` order): its values on the left, its gradient
    (``Parameter.grad`` as it is now) on the right, each titled with its mean, standard deviation
    and root mean square. Frozen parameters are marked.

    Parameters
    ----------
    model : Layer
    out_path : path-like
        The PNG to write (atomically); its directory is created if missing.
    bins : int
        Equal-width bins between each array's minimum and maximum.
    title : str, optional
        Added to the figure's title.
    dpi : int

    Returns
    -------
    Path
    """
    from gradwise.training.histograms import histogram_data

    return plot_histogram_data(histogram_data(model, bins), out_path, title=title, dpi=dpi)


def plot_histogram_data(
    data: Mapping[str, Any], out_path: str | os.PathLike[str], *, title: str | None = None, dpi: int = 100
) -> Path:
    """Draw histograms computed by `gradwise.training.histograms.histogram_data` (or read back
    with `load_histograms`) as a PNG; see `plot_histograms`."""
    from matplotlib.figure import Figure

    names = list(data["names"])
    frozen = set(data.get("frozen", ()))
    rows = max(1, len(names))
    fig = Figure(figsize=(9.0, 0.6 + 1.45 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False)
    for i, name in enumerate(names):
        for j, (kind, color) in enumerate((("weight", TRAIN_COLOR), ("grad", VAL_COLOR))):
            ax = axes[i, j]
            h = data[kind][name]
            counts, edges, stats = (np.asarray(h[k], dtype=np.float64) for k in ("counts", "edges", "stats"))
            ax.stairs(counts, edges, fill=True, color=color, alpha=0.75)
            mean, std, _, _, rms = stats
            label = "values" if kind == "weight" else "gradient"
            note = " (frozen)" if kind == "grad" and name in frozen else ""
            ax.set_title(f"{name} {label}{note}: mean {mean:.2g}, std {std:.2g}, rms {rms:.2g}", fontsize="small")
            ax.tick_params(labelsize="x-small")
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
            ax.xaxis.get_offset_text().set_fontsize("x-small")
            ax.set_yticks([])
            ax.grid(alpha=0.3, axis="x")
    if not names:
        axes[0, 0].set_title("no parameters", fontsize="small")
    heading = "Parameter values (left) and gradients (right)"
    fig.suptitle(f"{heading}, {title}" if title else heading)
    return save_png(fig, prepare_path(out_path), dpi)
