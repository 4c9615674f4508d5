"""Plots of training runs, of the learning-rate range test and of optimizer trajectories (PNG, GIF).

matplotlib is imported inside each function (``import gradwise`` stays fast), and figures are
drawn with `matplotlib.figure.Figure` on an Agg canvas rather than through pyplot: no window opens,
and the backend or figures of a user's own pyplot session are left alone.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.training.rundir import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from gradwise.core import Layer
    from gradwise.optim.lr_finder import LRFinderResult
    from gradwise.optim.trajectories import Surface
    from gradwise.training.trainer import History

__all__ = [
    "animate_trajectories",
    "ema",
    "plot_histogram_data",
    "plot_histograms",
    "plot_history",
    "plot_lr_finder",
    "plot_lr_schedule",
    "plot_run",
    "plot_trajectories",
]

_NOT_METRICS = ("epoch", "loss", "lr", "time")
_TRAIN_COLOR = "tab:blue"
_VAL_COLOR = "tab:orange"


def ema(values: Sequence[float] | np.ndarray, beta: float) -> np.ndarray:
    """Bias-corrected exponential moving average, as TensorBoard smooths curves.

    s_t = beta s_{t-1} + (1 - beta) x_t with s_0 = 0, reported as s_t / (1 - beta^t) so the
    start is not pulled towards 0 (Kingma & Ba, 2015, sec. 3). Non-finite values are skipped
    (the average carries over them), so one NaN does not blank the rest of the curve.

    Parameters
    ----------
    values : (T,) sequence of float
    beta : float in [0, 1)

    Returns
    -------
    (T,) float64 array
    """
    if not 0 <= beta < 1:
        raise ValueError(f"{beta=} must be in [0, 1)")
    x = np.asarray(values, dtype=np.float64)
    out = np.empty_like(x)
    s = 0.0
    weight = 0.0  # 1 - beta^t over the finite values seen so far
    for t, v in enumerate(x):  # a recurrence: no vectorized form without losing the NaN skipping
        if math.isfinite(v):
            s = beta * s + (1 - beta) * v
            weight = beta * weight + (1 - beta)
        out[t] = s / weight if weight > 0 else math.nan
    return out


def _auto_beta(n: int) -> float:
    # Average over about n/20 iterations (between 1 and 50): smooth enough to see the trend
    # through the mini-batch noise, short enough to follow the learning-rate changes.
    span = min(50.0, max(1.0, n / 20))
    return 1 - 2 / (span + 1)


def plot_history(
    history: History, out_dir: str | os.PathLike[str], *, smoothing: float | None = None, dpi: int = 120
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
    written.append(_save(fig, out / "loss.png", dpi))

    keys: dict[str, None] = {}
    for row in epochs:
        keys.update(dict.fromkeys(k for k in row if k not in _NOT_METRICS and not k.startswith("val_")))
    # Metrics logged only for validation (a callback's) still get a plot.
    for row in epochs:
        keys.update(dict.fromkeys(k[4:] for k in row if k.startswith("val_") and k[4:] not in _NOT_METRICS))
    for name in keys:
        fig = Figure(figsize=(6.5, 4.0), layout="constrained")
        ax = fig.add_subplot()
        for key, label, color in ((name, "train", _TRAIN_COLOR), (f"val_{name}", "validation", _VAL_COLOR)):
            values = [_as_float(row.get(key)) for row in epochs]
            if any(math.isfinite(v) for v in values):
                ax.plot(epoch_numbers, values, marker="o", markersize=3, color=color, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name.replace("_", " ").capitalize())
        _integer_ticks(ax)
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(_save(fig, out / f"{_safe_name(name)}.png", dpi))
    return written


def _draw_loss(ax: Axes, history: History, epochs: list[dict[str, Any]], smoothing: float | None) -> None:
    raw = np.asarray([_as_float(v) for v in history.batch_loss], dtype=np.float64)
    raw[~np.isfinite(raw)] = np.nan  # an inf would squash the axis; NaN leaves a gap
    iters = np.arange(1, raw.size + 1)
    smooth = np.empty(0)
    if raw.size:
        beta = _auto_beta(raw.size) if smoothing is None else smoothing
        smooth = ema(raw, beta)
        ax.plot(iters, raw, color=_TRAIN_COLOR, alpha=0.25, linewidth=0.8, label="train (per iteration)")
        ax.plot(iters, smooth, color=_TRAIN_COLOR, linewidth=1.6, label=f"train (EMA, beta={beta:.2f})")
    steps = list(getattr(history, "steps", []))
    if len(steps) != len(epochs):
        # A history read from CSV has no step counts: spread the epochs evenly instead.
        per_epoch = raw.size / len(epochs) if epochs and raw.size else 1.0
        steps = [round((i + 1) * per_epoch) for i in range(len(epochs))]
    for key, label, color, marker in (
        ("loss", "train (per epoch)", _TRAIN_COLOR, "o"),
        ("val_loss", "validation (per epoch)", _VAL_COLOR, "s"),
    ):
        values = [_as_float(row.get(key)) for row in epochs]
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


def _integer_ticks(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Figure, path: Path, dpi: int) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attaches itself to fig; no pyplot, no global backend change
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ----------------------------------------------------------------------------------------- LR finder


def plot_lr_finder(result: LRFinderResult, out_path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """Write the learning-rate range test as a PNG: loss against lr on a log axis.

    The raw mini-batch losses are drawn faint, the smoothed loss solid, and both suggestions are
    marked on the smoothed curve (the default one with a filled marker and "suggested" in the
    legend). The y axis is cut a little above the starting loss so that the final blow-up does
    not flatten the interesting part.

    Parameters
    ----------
    result : LRFinderResult
        From `gradwise.optim.lr_finder.lr_find`.
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
    ax.plot(lrs, raw, color=_TRAIN_COLOR, alpha=0.25, linewidth=0.8, label="loss (per batch)")
    ax.plot(lrs, smooth, color=_TRAIN_COLOR, linewidth=1.8, label="smoothed loss (EMA)")
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
    ax.set_title(f"Learning-rate range test ({len(lrs)} steps, {result.stop_reason})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower left")
    return _save(fig, _prepare_path(out_path), dpi)


# ----------------------------------------------------------------------------------------- trajectories


def plot_trajectories(
    paths: Mapping[str, np.ndarray],
    surface: Surface,
    out_path: str | os.PathLike[str],
    *,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Draw optimizer paths over the contours of a 2-D surface, as a PNG.

    Contour levels are log-spaced in :math:`f - f_{min}` for a surface with a minimum, so that
    flat valleys and steep walls both get lines; a surface without one (the saddle) gets evenly
    spaced levels. The minimum (a star) or saddle point (a cross) and the common start point are
    marked; each path gets a line with small markers every few steps (their spacing shows the
    speed) and a larger dot where it ends.

    Parameters
    ----------
    paths : mapping of str to (T + 1, 2) array
        Optimizer name -> the points it visited (`gradwise.optim.trajectories.run_optimizer`);
        NaN rows (a diverged run) are left out.
    surface : Surface
        From `gradwise.optim.trajectories`; its `bounds` set the window.
    out_path : path-like
        The PNG to write (atomically); its directory is created if missing.
    title : str, optional
        Defaults to the surface's name.
    dpi : int

    Returns
    -------
    Path
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=_trajectory_figsize(surface, 8.0, 4.8, legend_width=1.6), layout="constrained")
    ax = fig.add_subplot()
    _draw_surface(ax, surface)
    colors = _path_colors(paths)
    for name, path in paths.items():
        xy = np.asarray(path, dtype=np.float64)
        steps = len(xy) - 1
        ax.plot(
            xy[:, 0], xy[:, 1], color=colors[name], linewidth=1.6, marker="o", markersize=2.5,
            markevery=max(1, steps // 40), label=name,
        )
        end = xy[np.isfinite(xy).all(axis=1)][-1:]  # where it stopped (or last was finite)
        ax.plot(end[:, 0], end[:, 1], marker="o", markersize=7, color=colors[name],
                markeredgecolor="black", linestyle="none", zorder=4)
    _draw_start(ax, paths)
    ax.set_title(title if title is not None else surface.name)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", borderaxespad=0)
    return _save(fig, _prepare_path(out_path), dpi)


def animate_trajectories(
    paths: Mapping[str, np.ndarray],
    surface: Surface,
    out_path: str | os.PathLike[str],
    *,
    title: str | None = None,
    frames: int = 60,
    fps: int = 15,
    dpi: int = 72,
) -> Path:
    """Animate optimizer paths over a surface's contours, as a looping GIF.

    The same picture as `plot_trajectories`, drawn with the paths growing step by step. The
    background is drawn once and each frame only redraws the paths on it (blitting on the Agg
    canvas); all frames share one 128-colour palette (Pillow, which matplotlib depends on), so a 60-frame GIF
    stays within a few hundred kilobytes. The last frame is held for 1.5 s.

    Parameters
    ----------
    paths, surface, title
        As in `plot_trajectories`.
    out_path : path-like
        The GIF to write (atomically); its directory is created if missing.
    frames : int
        Number of frames (>= 2), spread evenly over the steps (at most one per step).
    fps : int
        Frames per second.
    dpi : int
        Resolution; the plot area is at most 5 x 3.2 inches.

    Returns
    -------
    Path
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    if frames < 2:
        raise ValueError(f"animate_trajectories: {frames=} must be >= 2")
    if fps < 1:
        raise ValueError(f"animate_trajectories: {fps=} must be >= 1")
    fig = Figure(figsize=_trajectory_figsize(surface, 5.0, 3.2, legend_width=1.2), layout="constrained")
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _draw_surface(ax, surface)
    colors = _path_colors(paths)
    arrays = {name: np.asarray(p, dtype=np.float64) for name, p in paths.items()}
    steps = max((len(a) - 1 for a in arrays.values()), default=0)
    # The moving parts are "animated": left out of the background, which is drawn once and
    # restored for every frame (blitting), so a frame costs a few lines, not the contours.
    lines = {
        name: ax.plot([], [], color=colors[name], linewidth=1.6, label=name, animated=True)[0]
        for name in arrays
    }
    heads = {
        name: ax.plot([], [], color=colors[name], marker="o", markersize=5, markeredgecolor="black",
                      linestyle="none", animated=True)[0]
        for name in arrays
    }
    _draw_start(ax, arrays)
    ax.set_title(title if title is not None else surface.name, fontsize="medium")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", borderaxespad=0)
    counter = ax.text(0.02, 0.02, "", transform=ax.transAxes, fontsize="small", animated=True)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)

    n_frames = min(frames, steps + 1)
    images = []
    for k in np.unique(np.round(np.linspace(0, steps, n_frames)).astype(int)):
        canvas.restore_region(background)
        for name, xy in arrays.items():
            shown = xy[: k + 1]
            lines[name].set_data(shown[:, 0], shown[:, 1])
            last = shown[np.isfinite(shown).all(axis=1)][-1:]
            heads[name].set_data(last[:, 0], last[:, 1])
            ax.draw_artist(lines[name])
            ax.draw_artist(heads[name])
        counter.set_text(f"step {k}")
        ax.draw_artist(counter)
        images.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy()))
    # One palette for all frames: the paths' exact colours, black and white, and the rest taken
    # from the last frame; no dithering, so colours stay true and LZW packs the flat areas well.
    exact = [tuple(round(255 * v) for v in colors[name][:3]) for name in arrays] + [(0, 0, 0), (255, 255, 255)]
    n_rest = 128 - len(exact)
    rest = (images[-1].quantize(colors=n_rest, method=Image.Quantize.MEDIANCUT).getpalette() or [])[: 3 * n_rest]
    palette = Image.new("P", (1, 1))
    palette.putpalette(rest + [v for rgb in exact for v in rgb])
    images = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    durations = [round(1000 / fps)] * len(images)
    durations[-1] = 1500
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
        optimize=True,
    )
    return atomic_write_bytes(_prepare_path(out_path), buf.getvalue())


def _draw_surface(ax: Axes, surface: Surface, resolution: int = 240) -> None:
    from matplotlib.colors import LogNorm

    (x0, x1), (y0, y1) = surface.bounds
    xs = np.linspace(x0, x1, resolution)
    ys = np.linspace(y0, y1, resolution)
    gx, gy = np.meshgrid(xs, ys)
    z = np.asarray(surface.value(gx, gy), dtype=np.float64)
    if surface.minimum is not None:
        # Log-spaced levels of f - f_min: a flat valley and steep walls in the same picture.
        z = z - float(surface.value(*surface.minimum))
        positive = z[z > 0]
        low = max(float(positive.min()), float(positive.max()) * 1e-9)
        levels = np.logspace(np.log10(low), np.log10(float(positive.max())), 30)
        ax.contour(gx, gy, np.maximum(z, low), levels=levels, norm=LogNorm(), cmap="viridis",
                   linewidths=0.7, alpha=0.7)
        ax.plot(*surface.minimum, marker="*", markersize=15, color="black", linestyle="none",
                label="minimum", zorder=5)
    else:
        ax.contour(gx, gy, z, levels=30, cmap="viridis", linewidths=0.7, alpha=0.7)
    if surface.saddle_point is not None:
        ax.plot(*surface.saddle_point, marker="X", markersize=10, color="black", linestyle="none",
                label="saddle point", zorder=5)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")  # true geometry: an ill-conditioned bowl looks like the narrow valley it is
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def _trajectory_figsize(
    surface: Surface, max_width: float, max_height: float, legend_width: float
) -> tuple[float, float]:
    # Equal aspect (true geometry): the axes take the window's shape within max_width x max_height
    # inches; the title and labels take about 0.9 x 0.8 inches and the legend sits to the right.
    (x0, x1), (y0, y1) = surface.bounds
    scale = min(max_width / (x1 - x0), max_height / (y1 - y0))
    return ((x1 - x0) * scale + 0.8 + legend_width, (y1 - y0) * scale + 0.9)


def _draw_start(ax: Axes, paths: Mapping[str, np.ndarray]) -> None:
    for path in paths.values():
        xy = np.asarray(path, dtype=np.float64)
        if len(xy):
            ax.plot(xy[0, 0], xy[0, 1], marker="o", markersize=7, color="black",
                    markerfacecolor="white", linestyle="none", label="start", zorder=6)
            return


def _path_colors(paths: Mapping[str, Any]) -> dict[str, Any]:
    from matplotlib import colormaps

    tab10 = colormaps["tab10"]  # called with an integer, a listed colormap returns that entry
    return {name: tab10(i % tab10.N) for i, name in enumerate(paths)}


def _prepare_path(out_path: str | os.PathLike[str]) -> Path:
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------------------- histograms


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
        for j, (kind, color) in enumerate((("weight", _TRAIN_COLOR), ("grad", _VAL_COLOR))):
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
    return _save(fig, _prepare_path(out_path), dpi)


# ----------------------------------------------------------------------------------------- LR schedule


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

    y = np.asarray([_as_float(v) for v in lrs], dtype=np.float64)
    x = np.arange(start, start + y.size)
    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.add_subplot()
    finite = y[np.isfinite(y)]
    if finite.size:
        many = y.size > 60
        ax.plot(x, y, color=_TRAIN_COLOR, marker=None if many else "o", markersize=3, linewidth=1.5)
        if log_scale and finite.min() > 0:
            ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no learning rate recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate")
    ax.set_title("Learning-rate schedule")
    if xlabel == "epoch":
        _integer_ticks(ax)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, _prepare_path(out_path), dpi)


# ----------------------------------------------------------------------------------------- a run directory


BATCH_LOSS_FILE = "batch_loss.csv"
HISTOGRAM_DIR = "histograms"


def plot_run(
    run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None, *, smoothing: float | None = None
) -> list[Path]:
    """Redraw every plot of a run directory from the files the run left.

    Reads, when present:

    - ``history.csv`` (one row per epoch): ``loss.png`` (per-epoch training and validation loss)
      and one ``<metric>.png`` per metric (`plot_history`), and ``lr.png`` from its ``lr`` column;
    - ``batch_loss.csv``, columns ``step`` (1-based optimizer step), ``epoch`` (0-based, as in
      ``history.csv``), ``loss`` and optionally ``lr``: the per-iteration loss, raw and smoothed,
      in ``loss.png``, and ``lr.png`` per step instead of per epoch;
    - ``histograms/epoch_0005.safetensors`` (`gradwise.training.histograms.HistogramSnapshots`):
      ``histograms_epoch_0005.png``.

    Parameters
    ----------
    run_dir : path-like
        A run directory (`gradwise.training.rundir.RunDir`).
    out_dir : path-like, optional
        Where to write; ``RUN/plots`` by default. Plots of the same names are replaced.
    smoothing : float in [0, 1), optional
        The EMA's beta for the per-iteration loss (see `plot_history`).

    Returns
    -------
    list of Path
        The files written: ``loss.png``, the metric plots, ``lr.png``, then the histograms.

    Raises
    ------
    FileNotFoundError
        If `run_dir` is not a directory, or holds neither ``history.csv`` nor histograms.
    ValueError
        If a file is malformed (naming it).
    """
    from gradwise.training.histograms import load_histograms
    from gradwise.training.history import History
    from gradwise.training.rundir import read_csv_rows

    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run directory {str(run)!r} does not exist")
    history_path = run / "history.csv"
    histogram_files = sorted((run / HISTOGRAM_DIR).glob("epoch_*.safetensors"))
    if not history_path.is_file() and not histogram_files:
        raise FileNotFoundError(
            f"{str(run)!r} holds no history.csv and no histograms/: nothing to plot (is it a gradwise run directory?)"
        )
    out = Path(out_dir) if out_dir is not None else run / "plots"
    written: list[Path] = []
    if history_path.is_file():
        history = _read_history(history_path, History)
        step_lrs: list[float] = []
        batch_path = run / BATCH_LOSS_FILE
        if batch_path.is_file():
            rows = _read_rows(batch_path, read_csv_rows)
            if rows and "loss" not in rows[0]:
                raise ValueError(f"{str(batch_path)!r} has no 'loss' column (columns: {list(rows[0])})")
            history.batch_loss = [_as_float(r["loss"]) for r in rows]
            step_lrs = [_as_float(r["lr"]) for r in rows if "lr" in r]
            if rows and "epoch" in rows[0]:
                last: dict[int, int] = {}
                for i, r in enumerate(rows, start=1):
                    e = r["epoch"]
                    if isinstance(e, int):
                        last[e] = int(r["step"]) if isinstance(r.get("step"), int) else i
                steps = [last.get(int(row.get("epoch", k)), -1) for k, row in enumerate(history.epochs)]
                if all(s > 0 for s in steps):
                    history.steps = steps
        written += plot_history(history, out, smoothing=smoothing)
        if step_lrs and any(math.isfinite(v) for v in step_lrs):
            written.append(plot_lr_schedule(step_lrs, out / "lr.png", xlabel="iteration (optimizer step)"))
        elif "lr" in history:
            written.append(plot_lr_schedule(history["lr"], out / "lr.png"))
    for path in histogram_files:
        data, epoch = load_histograms(path)
        stem = path.stem  # epoch_0005
        title = f"after epoch {epoch}" if epoch is not None else stem
        written.append(plot_histogram_data(data, out / f"histograms_{stem}.png", title=title))
    return written


def _read_rows(path: Path, reader: Any) -> list[dict[str, Any]]:
    import csv

    try:
        return reader(path)
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{str(path)!r} is not a readable CSV file: {err}") from err


def _read_history(path: Path, history_cls: Any) -> History:
    from gradwise.training.rundir import read_csv_rows

    history = history_cls()
    history.epochs = _read_rows(path, read_csv_rows)
    if history.epochs and "epoch" not in history.epochs[0]:
        raise ValueError(f"{str(path)!r} has no 'epoch' column; is it a gradwise history.csv?")
    return history
