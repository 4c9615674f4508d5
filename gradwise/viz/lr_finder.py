"""The plot of the learning-rate range test (`gradwise.optim.lr_finder.lr_find`)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gradwise.viz._common import TRAIN_COLOR, prepare_path, save_png

if TYPE_CHECKING:
    from gradwise.optim.lr_finder import LRFinderResult

__all__ = ["plot_lr_finder"]


def plot_lr_finder(result: LRFinderResult, out_path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """Write the learning-rate range test as a PNG: loss against lr on a log axis.

    The raw mini-batch losses are drawn faint, the smoothed loss solid (the curve the
    suggestions and divergence rules read), and both suggestions are marked on the smoothed
    curve (the default one with a filled marker and "suggested" in the legend). Where the ramp
    diverged is marked with a black cross and a dotted line, named by its rule, and the starting
    level is a thin grey line. The y axis is cut a little above the starting loss so that the
    final blow-up does not flatten the interesting part.

    Parameters
    ----------
    result : LRFinderResult
        From `gradwise.optim.lr_finder.lr_find` (`gradwise.optim.lr_curve.LRFinderResult`).
    out_path : path-like
        The PNG to write (atomically); its directory is created if missing.
    dpi : int

    Returns
    -------
    Path
    """
    from matplotlib.figure import Figure

    lrs = np.asarray(result.lrs, dtype=np.float64)
    raw = np.asarray(result.losses, dtype=np.float64)
    smooth = np.asarray(result.smoothed, dtype=np.float64)
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(lrs, raw, color=TRAIN_COLOR, alpha=0.25, linewidth=0.8, label="loss (per batch)")
    ax.plot(lrs, smooth, color=TRAIN_COLOR, linewidth=1.8, label="smoothed loss (EMA)")
    marks = (
        ("steepest descent", result.suggestion_steepest, "tab:red", "o"),
        ("minimum / 10", result.suggestion_min_div10, "tab:green", "s"),
    )
    for label, lr, color, marker in marks:
        if not (math.isfinite(lr) and lrs.size):
            continue
        chosen = lr == result.suggestion
        y = float(np.interp(np.log10(lr), np.log10(lrs), smooth))
        ax.axvline(lr, color=color, linestyle="--", linewidth=1, alpha=0.7)
        ax.plot(
            [lr], [y], marker=marker, markersize=9, color=color, linestyle="none",
            markerfacecolor=color if chosen else "white", markeredgewidth=2,
            label=f"{label}: {lr:.2e}" + (" (suggested)" if chosen else ""),
        )
    if math.isfinite(result.start_loss):
        ax.axhline(result.start_loss, color="0.5", linewidth=0.8, alpha=0.7)
    if result.divergence is not None and math.isfinite(result.divergence_lr) and lrs.size:
        at = result.divergence_lr
        ax.axvline(at, color="black", linestyle=":", linewidth=1.2)
        step = result.divergence_step
        label = f"diverged ({result.divergence}) at {at:.2e}"
        if step is not None and step < smooth.size:  # recorded (a non-finite loss is not)
            ax.plot([at], [smooth[step]], marker="X", markersize=10, color="black", linestyle="none", label=label)
        else:
            ax.plot([], [], color="black", linestyle=":", label=label)
    ax.set_xscale("log")
    finite = np.concatenate([raw[np.isfinite(raw)], smooth[np.isfinite(smooth)]])
    if finite.size:
        best = int(np.nanargmin(smooth))
        low = float(finite.min())
        start_level = float(np.nanmax(smooth[: best + 1]))
        top = start_level + 0.25 * max(start_level - low, 1e-12)
        ax.set_ylim(low - 0.05 * (top - low), top)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss")
    ended = result.stop_reason if result.divergence is None else f"diverged: {result.divergence}"
    ax.set_title(f"Learning-rate range test ({len(lrs)} steps, {ended})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower left")
    return save_png(fig, prepare_path(out_path), dpi)
