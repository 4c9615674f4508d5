"""The training curves of a `History`: the loss per iteration and per epoch, and each metric."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.viz._common import TRAIN_COLOR, VAL_COLOR, as_float, auto_beta, ema, integer_ticks, safe_name, save_png

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from gradwise.training.trainer import History

__all__ = ["plot_history"]

_NOT_METRICS = ("epoch", "loss", "lr", "time")


def plot_history(
    history: History, out_dir: str | os.PathLike[str], *, smoothing: float | None = None, dpi: int = 120,
    show: bool = False,
) -> list[Path]:
    """Write ``loss.png`` and one ``<metric>.png`` per metric of a training history.

    ``loss.png`` shows the training loss of every iteration (raw, faint), its smoothed curve
    (`ema`), and the per-epoch training and validation losses placed at the iteration that ends
    each epoch. Each metric's plot shows its training and validation values per epoch.

    Parameters
    ----------
    history : History
        ``history.epochs`` (logs per epoch) and ``history.batch_loss`` (per iteration).
    out_dir : path-like
        Created if missing; existing plots of the same names are replaced (atomically).
    smoothing : float in [0, 1), optional
        The EMA's beta; by default it averages over about 1/20 of the iterations (at most 50).
    dpi : int
        Resolution of the PNGs.
    show : bool
        Also display them inline when running in a Jupyter notebook (`gradwise.viz.show`).

    Returns
    -------
    list of Path
        The files written, ``loss.png`` first.
    """
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    epochs = list(history.epochs)
    epoch_numbers = [int(row.get("epoch", i)) + 1 for i, row in enumerate(epochs)]
    written: list[Path] = []

    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    _draw_loss(fig.add_subplot(), history, epochs, smoothing)
    written.append(save_png(fig, out / "loss.png", dpi))

    keys: dict[str, None] = {}
    for row in epochs:
        keys.update(dict.fromkeys(k for k in row if k not in _NOT_METRICS and not k.startswith("val_")))
    # Metrics logged only for validation (a callback's) still get a plot.
    for row in epochs:
        keys.update(dict.fromkeys(k[4:] for k in row if k.startswith("val_") and k[4:] not in _NOT_METRICS))
    for name in keys:
        fig = Figure(figsize=(6.5, 4.0), layout="constrained")
        ax = fig.add_subplot()
        for key, label, color in ((name, "train", TRAIN_COLOR), (f"val_{name}", "validation", VAL_COLOR)):
            values = [as_float(row.get(key)) for row in epochs]
            if any(math.isfinite(v) for v in values):
                ax.plot(epoch_numbers, values, marker="o", markersize=3, color=color, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name.replace("_", " ").capitalize())
        integer_ticks(ax)
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(save_png(fig, out / f"{safe_name(name)}.png", dpi))
    if show:
        from gradwise.viz.notebook import show as show_inline

        show_inline(written)
    return written


def _draw_loss(ax: Axes, history: History, epochs: list[dict[str, Any]], smoothing: float | None) -> None:
    raw = np.asarray([as_float(v) for v in history.batch_loss], dtype=np.float64)
    raw[~np.isfinite(raw)] = np.nan  # an inf would squash the axis; NaN leaves a gap
    iters = np.arange(1, raw.size + 1)
    smooth = np.empty(0)
    if raw.size:
        beta = auto_beta(raw.size) if smoothing is None else smoothing
        smooth = ema(raw, beta)
        ax.plot(iters, raw, color=TRAIN_COLOR, alpha=0.25, linewidth=0.8, label="train (per iteration)")
        ax.plot(iters, smooth, color=TRAIN_COLOR, linewidth=1.6, label=f"train (EMA, beta={beta:.2f})")
    steps = list(getattr(history, "steps", []))
    if len(steps) != len(epochs):
        # A history read from CSV has no step counts: spread the epochs evenly instead.
        per_epoch = raw.size / len(epochs) if epochs and raw.size else 1.0
        steps = [round((i + 1) * per_epoch) for i in range(len(epochs))]
    for key, label, color, marker in (
        ("loss", "train (per epoch)", TRAIN_COLOR, "o"),
        ("val_loss", "validation (per epoch)", VAL_COLOR, "s"),
    ):
        values = [as_float(row.get(key)) for row in epochs]
        if any(math.isfinite(v) for v in values):
            ax.plot(
                steps,
                values,
                color=color,
                marker=marker,
                markersize=4,
                linestyle="--" if key == "loss" else "-",
                label=label,
            )
    # A loss that falls by orders of magnitude reads better on a log axis; judged on the smoothed
    # curve, since single noisy batches would otherwise decide.
    finite = smooth[np.isfinite(smooth)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 30:
        ax.set_yscale("log")
    ax.set_xlabel("iteration (optimizer step)" if raw.size else "epoch")
    ax.set_ylabel("loss")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
