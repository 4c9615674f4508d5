"""The learning rate against the epoch or the step."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gradwise.viz._common import TRAIN_COLOR, as_float, integer_ticks, prepare_path, save_png

__all__ = ["plot_lr_schedule"]


def plot_lr_schedule(
    lrs: Sequence[float] | np.ndarray,
    out_path: str | os.PathLike[str],
    *,
    xlabel: str = "epoch",
    start: int = 1,
    log_scale: bool = False,
    dpi: int = 120,
) -> Path:
    """Write the learning rate against the epoch (or step) as a PNG.

    Parameters
    ----------
    lrs : sequence of float
        The learning rate of each epoch (the ``lr`` column of ``history.csv``) or of each step;
        for a schedule ``f``, pass ``[f(t) for t in range(total_steps)]``.
    out_path : path-like
        The PNG to write (atomically); its directory is created if missing.
    xlabel : str
        ``"epoch"`` or ``"iteration (optimizer step)"``.
    start : int
        The x value of the first entry (1 for epochs counted from 1, as the other plots).
    log_scale : bool
        A logarithmic y axis (for exponential decay over orders of magnitude). Linear by
        default: a cosine or one-cycle schedule reaching ~0 reads wrongly on a log axis.
    dpi : int

    Returns
    -------
    Path
    """
    from matplotlib.figure import Figure

    y = np.asarray([as_float(v) for v in lrs], dtype=np.float64)
    x = np.arange(start, start + y.size)
    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.add_subplot()
    finite = y[np.isfinite(y)]
    if finite.size:
        many = y.size > 60
        ax.plot(x, y, color=TRAIN_COLOR, marker=None if many else "o", markersize=3, linewidth=1.5)
        if log_scale and finite.min() > 0:
            ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no learning rate recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate")
    ax.set_title("Learning-rate schedule")
    if xlabel == "epoch":
        integer_ticks(ax)
    ax.grid(alpha=0.3, which="both")
    return save_png(fig, prepare_path(out_path), dpi)
