"""What the learning-rate range test measured, and what its curve says: the divergence rules'
names, whether the loss was still falling, and the two suggested learning rates.

`gradwise.optim.lr_finder.lr_find` runs the test and returns an `LRFinderResult`; the functions
here read curves only (NumPy, no model), so they also apply to a curve read back from
``lr_find.csv``. `gradwise.viz.plot_lr_finder` draws the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ABOVE_START",
    "MIN_FACTOR",
    "NON_FINITE",
    "LRFinderResult",
    "falling_at_end",
    "suggest_min_div10",
    "suggest_steepest",
]

# The rules that call a ramp diverged, in the words `LRFinderResult.divergence` uses.
ABOVE_START = "above-start"
MIN_FACTOR = "min-factor"
NON_FINITE = "non-finite"


@dataclass(frozen=True)
class LRFinderResult:
    """What `lr_find` measured, where the loss diverged, and the learning rates it suggests.

    The data of the test only; `gradwise.viz.plot_lr_finder` draws it and ``gradwise lr-find``
    prints `summary`.

    Attributes
    ----------
    lrs : (T,) float64
        The first param group's learning rate at each recorded step (the ramp; other groups ran
        at their own multiple of it).
    losses : (T,) float64
        The raw mini-batch loss at each step, measured *before* that step's update (penalty
        included).
    smoothed : (T,) float64
        The bias-corrected exponential moving average of `losses` (see `lr_find`); the stopping
        rules and both suggestions read this curve.
    suggestion_steepest : float
        The lr where the smoothed loss falls fastest per unit of log lr (`suggest_steepest`).
    suggestion_min_div10 : float
        The lr of the smoothed loss's minimum, divided by 10 (`suggest_min_div10`).
    suggestion : float
        The default suggestion: `suggestion_steepest`. It marks where learning is fastest, which
        on the ramp is still well inside the stable range; the minimum of the smoothed loss sits
        close to the edge of divergence (and the EMA's lag pushes it further right), so the
        minimum/10 rule is a cautious second opinion that usually lands within a factor of a few
        of the steepest point. fastai's default (``valley``) belongs to the same family: a point on
        the descending slope, not at the bottom. If the loss never decreased (no negative slope),
        it falls back to `suggestion_min_div10`. Both read the curve up to the divergence only.
    start_lr, end_lr : float
        The requested ramp.
    num_steps : int
        The requested number of steps; ``len(lrs)`` is smaller when the run stopped early.
    stop_reason : str
        Why the ramp ended: ``"completed"`` (all `num_steps`, also when it diverged under
        ``stop=False``), ``"diverged"`` (a divergence rule fired) or ``"exhausted"`` (a one-shot
        iterator ran out of batches).
    divergence : str or None
        The first divergence rule that fired (see `lr_find`): ``"above-start"`` (the smoothed
        loss fell, then rose back above its starting level), ``"min-factor"`` (it passed
        `diverge_factor` times its minimum) or ``"non-finite"`` (a NaN or infinite loss); None
        if none did.
    divergence_step : int or None
        The step at which it fired; for ``"non-finite"`` that step is not recorded
        (``divergence_step == len(lrs)``).
    divergence_lr : float
        The learning rate of that step; NaN if the ramp did not diverge.
    start_loss : float
        The starting level: the mean raw loss of the warm-up, the first ``max(1, num_steps // 10)``
        steps (`warmup`).
    still_falling : bool
        True when the ramp did not diverge, the smoothed loss fell (by `min_fall`, after the
        warm-up) and was still falling at its end (`falling_at_end`): a larger ``end_lr`` would
        show more. A curve that stayed flat is not "still falling" (`summary` says it never fell).
    diverge_factor, min_fall : float
        The thresholds of the ``"min-factor"`` and ``"above-start"`` rules.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion_steepest: float
    suggestion_min_div10: float
    suggestion: float
    start_lr: float
    end_lr: float
    num_steps: int
    stop_reason: str
    divergence: str | None = None
    divergence_step: int | None = None
    divergence_lr: float = math.nan
    start_loss: float = math.nan
    still_falling: bool = False
    diverge_factor: float = 4.0
    min_fall: float = 0.05

    @property
    def warmup(self) -> int:
        """Steps at the start of the ramp that give the starting level and that the
        ``"above-start"`` rule and the suggestions leave out: ``max(1, num_steps // 10)``."""
        return max(1, self.num_steps // 10)

    @property
    def diverged(self) -> bool:
        """True when a divergence rule fired (the usual, healthy ending of the test)."""
        return self.divergence is not None

    def summary(self) -> str:
        """How the ramp ended, in one sentence: which rule fired at what lr, or whether a larger
        ``end_lr`` would show more (``gradwise lr-find`` prints it)."""
        steps = f"{len(self.lrs)} steps, last lr {self.lrs[-1]:.3g}" if len(self.lrs) else "no steps"
        if self.divergence is not None:
            why = {
                ABOVE_START: (
                    f"the smoothed loss fell to {np.min(self.smoothed[self.warmup : self.divergence_step]):.4g}, "
                    f"then rose back above its starting level {self.start_loss:.4g}"
                ),
                MIN_FACTOR: f"the smoothed loss passed {self.diverge_factor:g}x its minimum",
                NON_FINITE: "the loss was NaN or infinite",
            }[self.divergence]
            where = f"diverged at lr {self.divergence_lr:.3g} (step {self.divergence_step})"
            if self.stop_reason == "diverged":
                return f"{len(self.lrs)} steps: {where} and stopped: {why}"
            return f"{steps}: {where}: {why}"
        if self.stop_reason == "exhausted":
            return f"{steps}: the data ran out before the end of the ramp (a one-shot iterator?)"
        if self.still_falling:
            return f"{steps}: the smoothed loss was still falling at the end of the ramp (try a larger --end-lr)"
        after = self.smoothed[self.warmup :]
        if not (after.size and np.min(after) <= (1 - self.min_fall) * self.start_loss):
            return (
                f"{steps}: the smoothed loss never fell {self.min_fall:.0%} below its start "
                f"{self.start_loss:.4g} (the learning rates of this ramp may all be too small, or the "
                f"model does not learn)"
            )
        return f"{steps}: the ramp ended without divergence, the smoothed loss no longer falling"

    def rows(self) -> list[dict[str, float]]:
        """One dict per step: ``step``, ``lr``, ``loss``, ``smoothed_loss`` (for a CSV)."""
        return [
            {"step": i, "lr": float(lr), "loss": float(raw), "smoothed_loss": float(s)}
            for i, (lr, raw, s) in enumerate(zip(self.lrs, self.losses, self.smoothed))
        ]

    def __getattr__(self, name: str) -> Any:
        if name == "plot":  # removed: the optimizer package does not draw (matplotlib lives in viz)
            raise AttributeError(
                "LRFinderResult.plot(path) was removed: use gradwise.viz.plot_lr_finder(result, path)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        ended = self.stop_reason if self.divergence is None else f"{self.divergence} at {self.divergence_lr:.3g}"
        return (
            f"LRFinderResult(suggestion={self.suggestion:.3g}, steepest={self.suggestion_steepest:.3g}, "
            f"min/10={self.suggestion_min_div10:.3g}, steps={len(self.lrs)}/{self.num_steps}, {ended})"
        )


def falling_at_end(lrs: np.ndarray, smoothed: np.ndarray) -> bool:
    """Whether a curve was still going down at its end: `LRFinderResult.still_falling`.

    Parameters
    ----------
    lrs : (T,) float, increasing and positive
    smoothed : (T,) float

    Returns
    -------
    bool
        True when the least-squares slope of `smoothed` against log10 `lrs` over the last tenth
        of the points (at least 3, or all there are) is negative; False for fewer than 2 points.
    """
    n = len(lrs)
    if n < 2:
        return False
    tail = min(n, max(3, n // 10))
    slope = np.polyfit(np.log10(lrs[-tail:]), smoothed[-tail:], 1)[0]
    return bool(slope < 0)


# ------------------------------------------------------------------------------------ suggestions


def _window(n: int, skip_start: int, skip_end: int) -> slice:
    """The points a suggestion looks at: without the flat, noisy start (the EMA is still warming
    up there) and the exploding end; the whole curve when too little would be left."""
    if n - skip_start - skip_end >= 3:
        return slice(skip_start, n - skip_end)
    return slice(0, n)


def suggest_steepest(
    lrs: np.ndarray, smoothed: np.ndarray, *, skip_start: int = 0, skip_end: int = 5
) -> float:
    r"""The lr where the smoothed loss falls fastest per unit of log lr.

    The slope :math:`\mathrm{d}s/\mathrm{d}\log_{10}\eta` is taken by central differences
    (`np.gradient`, one-sided at the ends) over the window that leaves out the first `skip_start`
    and last `skip_end` points (fastai leaves out the first tenth of the ramp and the last 5
    points); the suggestion is the lr of the most negative slope.

    Parameters
    ----------
    lrs : (T,) float, increasing
    smoothed : (T,) float
    skip_start, skip_end : int

    Returns
    -------
    float
        NaN when no slope in the window is negative (the loss never went down), or T < 2.
    """
    window = _window(len(lrs), skip_start, skip_end)
    x = np.log10(np.asarray(lrs, dtype=np.float64)[window])
    y = np.asarray(smoothed, dtype=np.float64)[window]
    if x.size < 2:
        return math.nan
    slope = np.gradient(y, x)
    i = int(np.argmin(slope))
    return float(10 ** x[i]) if slope[i] < 0 else math.nan


def suggest_min_div10(
    lrs: np.ndarray, smoothed: np.ndarray, *, skip_start: int = 0, skip_end: int = 5
) -> float:
    """The lr of the smoothed loss's minimum over the same window as `suggest_steepest`, over 10.

    One tenth of the rate at the bottom of the curve, which is already near divergence: Smith's
    and fastai's rule of thumb for a safe maximum learning rate.

    Parameters
    ----------
    lrs : (T,) float, increasing
    smoothed : (T,) float

    Returns
    -------
    float
    """
    window = _window(len(lrs), skip_start, skip_end)
    x = np.asarray(lrs, dtype=np.float64)[window]
    y = np.asarray(smoothed, dtype=np.float64)[window]
    return float(x[int(np.argmin(y))] / 10)
