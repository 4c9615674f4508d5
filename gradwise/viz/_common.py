"""Helpers shared by the plots: the moving average of noisy curves, colours, and PNG writing.

Private to `gradwise.viz`; `ema` is public as ``gradwise.viz.ema``.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.training.rundir import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "TRAIN_COLOR",
    "VAL_COLOR",
    "as_float",
    "auto_beta",
    "ema",
    "integer_ticks",
    "prepare_path",
    "safe_name",
    "save_png",
]

TRAIN_COLOR = "tab:blue"
VAL_COLOR = "tab:orange"


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


def auto_beta(n: int) -> float:
    # Average over about n/20 iterations (between 1 and 50): smooth enough to see the trend
    # through the mini-batch noise, short enough to follow the learning-rate changes.
    span = min(50.0, max(1.0, n / 20))
    return 1 - 2 / (span + 1)


def integer_ticks(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def save_png(fig: Figure, path: Path, dpi: int) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attaches itself to fig; no pyplot, no global backend change
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())


def prepare_path(out_path: str | os.PathLike[str]) -> Path:
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
