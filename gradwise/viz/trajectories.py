"""Optimizer paths over the contours of a 2-D test surface: a PNG, and a GIF of the paths growing.

The math (surfaces, running an optimizer on them) is `gradwise.optim.trajectories`; this draws it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.training.rundir import atomic_write_bytes
from gradwise.viz._common import prepare_path, save_png

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from gradwise.optim.trajectories import Surface

__all__ = ["animate_trajectories", "plot_trajectories"]


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
    return save_png(fig, prepare_path(out_path), dpi)


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
    return atomic_write_bytes(prepare_path(out_path), buf.getvalue())


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
