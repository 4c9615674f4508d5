"""Plots of a hyperparameter search: the metric against each hyperparameter, and the history.

`gradwise.search` hands over plain lists (one entry per trial); nothing here knows Optuna.
Pruned trials are drawn hollow at the last value they reported, so one can see where the pruner
cut; the best trial is ringed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradwise.viz._common import TRAIN_COLOR, VAL_COLOR, as_float, integer_ticks, prepare_path, save_png

__all__ = ["plot_search_history", "plot_search_param"]


def _best_index(values: np.ndarray, done: np.ndarray, direction: str) -> int | None:
    ok = np.flatnonzero(done & np.isfinite(values))
    if not ok.size:
        return None
    pick = np.argmax if direction == "maximize" else np.argmin
    return int(ok[pick(values[ok])])


def plot_search_param(
    name: str,
    xs: Sequence[Any],
    values: Sequence[float],
    out_path: str | os.PathLike[str],
    *,
    log: bool = False,
    pruned: Sequence[bool] | None = None,
    metric: str = "value",
    direction: str = "maximize",
    dpi: int = 100,
) -> Path:
    """Write the metric against one hyperparameter, one point per trial, as a PNG.

    Parameters
    ----------
    name : str
        The hyperparameter (x axis label).
    xs : (T,) sequence
        Its value in each trial: numbers, or strings/booleans for a choice (drawn as categories).
    values : (T,) sequence of float
        The metric of each trial (the last reported one for a pruned trial; NaN if none).
    out_path : path-like
        The PNG to write (atomically).
    log : bool
        A logarithmic x axis (for ``log_uniform`` and ``log_int`` spaces).
    pruned : (T,) sequence of bool, optional
        Which trials were pruned (drawn hollow).
    metric, direction : str
        The y label, and which end is best (``"maximize"`` or ``"minimize"``).
    dpi : int

    Returns
    -------
    Path
    """
    from matplotlib.figure import Figure

    if len(xs) != len(values):
        raise ValueError(f"plot_search_param: {len(xs)} values of {name!r} for {len(values)} metric values")
    y = np.asarray([as_float(v) for v in values], dtype=np.float64)
    cut = np.zeros(y.size, dtype=bool) if pruned is None else np.asarray(pruned, dtype=bool)
    categorical = any(isinstance(x, (str, bool)) for x in xs)
    if categorical:
        labels = list(dict.fromkeys(str(x) for x in xs))
        x = np.asarray([labels.index(str(v)) for v in xs], dtype=np.float64)
    else:
        x = np.asarray([as_float(v) for v in xs], dtype=np.float64)
    fig = Figure(figsize=(5.0, 3.4), layout="constrained")
    ax = fig.add_subplot()
    full = ~cut & np.isfinite(y)
    ax.scatter(x[full], y[full], s=28, color=TRAIN_COLOR, label="complete", zorder=3)
    part = cut & np.isfinite(y)
    if part.any():
        ax.scatter(x[part], y[part], s=28, facecolors="none", edgecolors="gray", label="pruned", zorder=2)
    best = _best_index(y, ~cut, direction)
    if best is not None:
        ax.scatter([x[best]], [y[best]], s=140, facecolors="none", edgecolors=VAL_COLOR, linewidths=2, label="best", zorder=4)
    if categorical:
        ax.set_xticks(range(len(labels)), labels)
    elif log and np.isfinite(x).any() and np.nanmin(x) > 0:
        ax.set_xscale("log")
    ax.set_xlabel(name + (" (log scale)" if log and not categorical else ""))
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"{metric} against {name}")
    ax.grid(alpha=0.3, which="both")
    if full.any() or part.any():
        ax.legend(fontsize="small")
    return save_png(fig, prepare_path(out_path), dpi)


def plot_search_history(
    numbers: Sequence[int],
    values: Sequence[float],
    out_path: str | os.PathLike[str],
    *,
    pruned: Sequence[bool] | None = None,
    metric: str = "value",
    direction: str = "maximize",
    dpi: int = 100,
) -> Path:
    """Write the optimization history: each trial's metric, and the best so far, against the trial.

    Parameters
    ----------
    numbers : (T,) sequence of int
        The trial numbers (x axis), in any order.
    values : (T,) sequence of float
        The metric of each trial (NaN when there is none).
    out_path : path-like
    pruned : (T,) sequence of bool, optional
        Pruned trials are drawn hollow and left out of the best-so-far line.
    metric, direction : str
    dpi : int

    Returns
    -------
    Path
    """
    from matplotlib.figure import Figure

    n = np.asarray(numbers, dtype=np.int64)
    y = np.asarray([as_float(v) for v in values], dtype=np.float64)
    if n.size != y.size:
        raise ValueError(f"plot_search_history: {n.size} trial numbers for {y.size} values")
    cut = np.zeros(y.size, dtype=bool) if pruned is None else np.asarray(pruned, dtype=bool)
    order = np.argsort(n, kind="stable")
    n, y, cut = n[order], y[order], cut[order]
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    full = ~cut & np.isfinite(y)
    ax.scatter(n[full], y[full], s=24, color=TRAIN_COLOR, label="trial", zorder=3)
    if (cut & np.isfinite(y)).any():
        ax.scatter(n[cut], y[cut], s=24, facecolors="none", edgecolors="gray", label="pruned", zorder=2)
    best, line = math.nan, []
    for value, ok in zip(y, full):
        if ok and (math.isnan(best) or (value > best if direction == "maximize" else value < best)):
            best = value
        line.append(best)
    if full.any():
        ax.step(n, line, where="post", color=VAL_COLOR, linewidth=2, label="best so far")
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no finished trial yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title("Optimization history")
    integer_ticks(ax)
    ax.grid(alpha=0.3)
    return save_png(fig, prepare_path(out_path), dpi)
