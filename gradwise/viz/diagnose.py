"""The plots of `gradwise diagnose` and of the `Babysitter`: drawn from the data they recorded.

- `plot_babysit(rows, out_dir)`: update/weight ratios and gradient norms per weight over the
  steps (``babysit_update_ratios.png``), and the dead/saturated fractions per layer
  (``babysit_units.png``), from
  the `Babysitter`'s rows (``babysit.csv``);
- `plot_activations(first, last, path)`: a histogram of every observed layer's output, at the start
  and at the end of the short training;
- `plot_lr_sweep(result, path, configured=..., span=...)`: the sweep's loss against the learning
  rate, with the range where it falls and the configured rate;
- `plot_diagnosis(diagnosis, out_dir)`: all of the above for a `Diagnosis`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.viz._common import TRAIN_COLOR, VAL_COLOR, prepare_path, save_png

if TYPE_CHECKING:
    from gradwise.diagnostics.report import Diagnosis
    from gradwise.optim.lr_curve import LRFinderResult

__all__ = ["plot_activations", "plot_babysit", "plot_diagnosis", "plot_lr_sweep"]

_HEALTHY = (1e-4, 5e-2)  # the ok band of `gradwise.diagnostics.checks.Thresholds`


def _series(rows: Sequence[Mapping[str, Any]], prefix: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(k[len(prefix):] for k in r if k.startswith(prefix)))
    out = {}
    for name in names:
        pts = [(r["step"], r.get(prefix + name, math.nan)) for r in rows]
        steps = np.array([p[0] for p in pts], dtype=np.float64)
        vals = np.array([p[1] for p in pts], dtype=np.float64)
        out[name] = (steps, vals)
    return out


def plot_babysit(
    rows: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike[str], *, prefix: str = "babysit_", dpi: int = 110
) -> list[Path]:
    """Draw a `Babysitter`'s measurements: ``<prefix>update_ratios.png`` and, with ReLU, sigmoid or
    tanh layers, ``<prefix>units.png``, in `out_dir` (created if missing). The prefix keeps them
    apart from a run's per-epoch plot of the ``update_ratio`` column. Returns the paths written."""
    from matplotlib.figure import Figure

    out = Path(out_dir)
    written: list[Path] = []
    ratios = {n: s for n, s in _series(rows, "update_ratio/").items() if n.endswith("weight")}
    norms = {n: s for n, s in _series(rows, "grad_norm/").items() if n.endswith("weight")}
    fig = Figure(figsize=(8.0, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    for name, (steps, vals) in ratios.items():
        ok = np.isfinite(vals) & (vals > 0)
        top.plot(steps[ok], vals[ok], marker=".", linewidth=1.2, label=name)
    top.axhspan(*_HEALTHY, color="tab:green", alpha=0.08, label="ok band")
    top.axhline(1e-3, color="tab:green", linestyle="--", linewidth=0.9, label="1e-3 (CS231n)")
    top.set_yscale("log")
    top.set_ylabel("||update|| / ||weight||")
    top.set_title("Update/weight ratio per weight tensor")
    top.grid(alpha=0.3, which="both")
    top.legend(fontsize="x-small", ncol=2)
    for name, (steps, vals) in norms.items():
        ok = np.isfinite(vals) & (vals > 0)
        bottom.plot(steps[ok], vals[ok], marker=".", linewidth=1.2, label=name)
    bottom.set_yscale("log")
    bottom.set_xlabel("optimizer step")
    bottom.set_ylabel("||gradient||")
    bottom.set_title("Gradient norm per weight tensor")
    bottom.grid(alpha=0.3, which="both")
    if norms:
        bottom.legend(fontsize="x-small", ncol=2)
    written.append(save_png(fig, prepare_path(out / f"{prefix}update_ratios.png"), dpi))

    dead, sat = _series(rows, "dead/"), _series(rows, "saturated/")
    if dead or sat:
        fig = Figure(figsize=(8.0, 3.6), layout="constrained")
        ax = fig.add_subplot()
        for name, (steps, vals) in dead.items():
            ax.plot(steps, vals, marker=".", label=f"dead ReLUs, layer {name}")
        for name, (steps, vals) in sat.items():
            ax.plot(steps, vals, marker="x", linestyle="--", label=f"saturated, layer {name}")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("fraction")
        ax.set_title("Dead ReLU units and saturated sigmoid/tanh outputs per layer")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
        written.append(save_png(fig, prepare_path(out / f"{prefix}units.png"), dpi))
    return written


def _get(summary: Any, key: str) -> Any:
    return summary[key] if isinstance(summary, Mapping) else getattr(summary, key)


def plot_activations(
    first: Mapping[str, Any], last: Mapping[str, Any], out_path: str | os.PathLike[str], *, dpi: int = 100
) -> Path:
    """One histogram per observed layer's output, at the start (faint) and at the end of training.

    Parameters
    ----------
    first, last : mapping of layer name -> ActivationSummary (or its ``to_dict()``)
        `gradwise.diagnostics.health.ActivationProbe` summaries.
    """
    from matplotlib.figure import Figure

    names = list(dict.fromkeys([*first, *last]))
    cols = 3
    rows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(10.0, 0.8 + 2.1 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        title = name
        for summaries, color, label, filled in ((last, TRAIN_COLOR, "end", True), (first, VAL_COLOR, "start", False)):
            if name not in summaries:
                continue
            s = summaries[name]
            counts = np.asarray(_get(s, "counts"), dtype=np.float64)
            edges = np.asarray(_get(s, "edges"), dtype=np.float64)
            density = counts / ((counts.sum() or 1.0) * np.diff(edges).clip(min=1e-300))
            # The end filled, the start as an outline on top: a narrow start is not hidden.
            ax.stairs(density, edges, fill=filled, color=color, alpha=0.7 if filled else 1.0, linewidth=1.4, label=label)
            title = f"{name} ({_get(s, 'kind')})"
            if summaries is last or name not in last:
                note = f"mean {_get(s, 'mean'):.2g}, std {_get(s, 'std'):.2g}"
                if _get(s, "dead") is not None:
                    note += f", dead {_get(s, 'dead'):.0%}"
                if _get(s, "saturated") is not None:
                    note += f", saturated {_get(s, 'saturated'):.0%}"
                title += f"\n{note}"
        ax.set_title(title, fontsize="small")
        ax.tick_params(labelsize="x-small")
        ax.set_yticks([])
        ax.grid(alpha=0.3, axis="x")
    for ax in axes[len(names):]:
        ax.set_axis_off()
    if names:
        axes[0].legend(fontsize="x-small")
    fig.suptitle("Layer outputs (density): start (orange outline) and end (blue) of the short training")
    return save_png(fig, prepare_path(out_path), dpi)


def plot_lr_sweep(
    result: LRFinderResult, out_path: str | os.PathLike[str], *, configured: float | None = None,
    span: tuple[float, float] | None = None, dpi: int = 110,
) -> Path:
    """The learning-rate sweep: raw and smoothed loss against lr (log axis), the range where the
    loss falls shaded, the configured learning rate and the suggestion marked."""
    from matplotlib.figure import Figure

    lrs = np.asarray(result.lrs, dtype=np.float64)
    raw = np.asarray(result.losses, dtype=np.float64)
    smooth = np.asarray(result.smoothed, dtype=np.float64)
    fig = Figure(figsize=(7.0, 4.3), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(lrs, raw, color=TRAIN_COLOR, alpha=0.25, linewidth=0.8, label="loss (per batch)")
    ax.plot(lrs, smooth, color=TRAIN_COLOR, linewidth=1.8, label="smoothed loss")
    if span is not None:
        ax.axvspan(*span, color="tab:green", alpha=0.12, label=f"loss falls: {span[0]:.1e} to {span[1]:.1e}")
    if math.isfinite(result.suggestion):
        ax.axvline(result.suggestion, color="tab:red", linestyle="--", linewidth=1, label=f"steepest: {result.suggestion:.1e}")
    if configured is not None and math.isfinite(configured):
        ax.axvline(configured, color="black", linewidth=1.4, label=f"configured: {configured:.2g}")
    ax.set_xscale("log")
    finite = smooth[np.isfinite(smooth)]
    if finite.size:
        low, start = float(finite.min()), float(finite[: int(np.argmin(finite)) + 1].max())
        top = start + 0.3 * max(start - low, 1e-12)
        ax.set_ylim(low - 0.05 * (top - low), top)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss")
    ax.set_title(f"Learning-rate sweep ({len(lrs)} steps)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower left", fontsize="small")
    return save_png(fig, prepare_path(out_path), dpi)


def plot_diagnosis(diagnosis: Diagnosis, out_dir: str | os.PathLike[str], *, dpi: int = 110) -> list[Path]:
    """Every plot of a `Diagnosis` into `out_dir`: ``lr_sweep.png``, ``activations.png``,
    ``update_ratios.png`` and ``units.png`` (what the data allow). Returns the paths written;
    `gradwise.diagnostics.diagnose` takes this as ``plot=``."""
    from gradwise.diagnostics.readings import working_lr_range

    out = Path(out_dir)
    written: list[Path] = []
    if diagnosis.lr_sweep is not None and len(diagnosis.lr_sweep.lrs):
        written.append(plot_lr_sweep(
            diagnosis.lr_sweep, out / "lr_sweep.png", configured=diagnosis.info.get("configured_lr"),
            span=working_lr_range(diagnosis.lr_sweep), dpi=dpi,
        ))
    acts = diagnosis.data.get("activations") or {}
    if acts.get("first") or acts.get("last"):
        written.append(plot_activations(acts.get("first", {}), acts.get("last", {}), out / "activations.png", dpi=dpi))
    rows = diagnosis.data.get("babysit") or []
    if rows:
        written += plot_babysit(rows, out, prefix="", dpi=dpi)
    return written
