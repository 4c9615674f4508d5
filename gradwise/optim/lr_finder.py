"""The learning-rate range test ("LR finder"): an exponential lr ramp, a smoothed loss, suggestions.

Train for a few hundred mini-batches while the learning rate grows exponentially from tiny to huge,
record the loss at each step, and read off where the loss falls fastest (Smith, 2017; fastai's
``Learner.lr_find``). The model, its modes, the optimizer's state and its learning rates are restored
exactly afterwards, so the test can run right before training. See ``docs/lr_finder.md``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.core import Layer

if TYPE_CHECKING:
    from gradwise.losses import Loss, Penalty
    from gradwise.optim.optimizer import Optimizer

__all__ = ["LRFinderResult", "lr_find", "suggest_min_div10", "suggest_steepest"]


@dataclass(frozen=True)
class LRFinderResult:
    """What `lr_find` measured, and the learning rates it suggests.

    Attributes
    ----------
    lrs : (T,) float64
        The first param group's learning rate at each recorded step (the ramp; other groups ran
        at their own multiple of it).
    losses : (T,) float64
        The raw mini-batch loss at each step, measured *before* that step's update (penalty
        included).
    smoothed : (T,) float64
        The bias-corrected exponential moving average of `losses` (see `lr_find`).
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
        it falls back to `suggestion_min_div10`.
    start_lr, end_lr : float
        The requested ramp.
    num_steps : int
        The requested number of steps; ``len(lrs)`` is smaller when the run stopped early.
    stop_reason : str
        ``"completed"``, ``"diverged"`` (smoothed loss above ``diverge_factor`` times its best),
        ``"non-finite"`` (a NaN or infinite loss, not recorded) or ``"exhausted"`` (a one-shot
        iterator ran out of batches).
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

    @property
    def diverged(self) -> bool:
        """True when the run stopped because the loss blew up (the usual, healthy ending)."""
        return self.stop_reason in ("diverged", "non-finite")

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Write the loss-vs-lr plot (log x axis, both suggestions marked) as a PNG; see
        `gradwise.viz.plot_lr_finder`."""
        from gradwise.viz import plot_lr_finder

        return plot_lr_finder(self, path)

    def rows(self) -> list[dict[str, float]]:
        """One dict per step: ``step``, ``lr``, ``loss``, ``smoothed_loss`` (for a CSV)."""
        return [
            {"step": i, "lr": float(lr), "loss": float(raw), "smoothed_loss": float(s)}
            for i, (lr, raw, s) in enumerate(zip(self.lrs, self.losses, self.smoothed))
        ]

    def __repr__(self) -> str:
        return (
            f"LRFinderResult(suggestion={self.suggestion:.3g}, steepest={self.suggestion_steepest:.3g}, "
            f"min/10={self.suggestion_min_div10:.3g}, steps={len(self.lrs)}/{self.num_steps}, "
            f"{self.stop_reason})"
        )


def lr_find(
    model: Layer,
    loss: Loss,
    optimizer: Optimizer,
    loader: Iterable[Any],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 200,
    smooth: float = 0.98,
    diverge_factor: float = 4.0,
    penalty: Penalty | None = None,
) -> LRFinderResult:
    r"""Run the learning-rate range test and restore everything it touched.

    Step :math:`i = 0, \dots, n-1` trains on one mini-batch at

    .. math::

        \eta_i = \eta_{\text{start}} \left(\frac{\eta_{\text{end}}}{\eta_{\text{start}}}\right)^{i/(n-1)},

    an exponential ramp: equal numbers of steps per decade, so the plot on a log lr axis is evenly
    sampled. The loss :math:`\ell_i` of each batch (measured before its update) is smoothed with
    fastai's bias-corrected exponential moving average

    .. math::

        a_i = \beta a_{i-1} + (1-\beta)\,\ell_i,\quad a_{-1} = 0,\qquad
        s_i = \frac{a_i}{1-\beta^{i+1}},

    and the run stops as soon as :math:`s_i > \text{diverge\_factor} \cdot \min_{j \le i} s_j`
    (that point is recorded) or a loss is NaN or infinite (that point is not recorded, and no
    update is made with it).

    Parameters
    ----------
    model : Layer
        Put in train mode for the test.
    loss : Loss
        ``forward(scores, y) -> float``, ``backward() -> dL/dscores``; assumed positive (the
        divergence test compares ratios).
    optimizer : Optimizer
        Built on ``model.parameters()``; any hyperparameters, any param groups.
    loader : iterable of (xb, yb)
        A `DataLoader` (re-iterated, i.e. cycled for further epochs, when it has fewer than
        `num_steps` batches) or any re-iterable of batches. A one-shot iterator cannot be cycled:
        the run then ends when it is exhausted. Floating inputs are cast to the model's dtype.
    start_lr, end_lr : float
        The ramp, ``0 < start_lr < end_lr``.
    num_steps : int
        Steps of the ramp, >= 2 (100 to 300 is typical: 200 gives 25 steps per decade over the
        default 8 decades).
    smooth : float
        :math:`\beta \in [0, 1)` of the moving average; 0 disables smoothing.
    diverge_factor : float
        Stop when the smoothed loss exceeds this multiple (> 1) of its best value so far.
    penalty : Penalty, optional
        A weight penalty added to the loss, as in `Trainer`.

    Returns
    -------
    LRFinderResult
        The ramp, the raw and smoothed losses, and the suggestions.

    Raises
    ------
    FloatingPointError
        If the very first loss (at `start_lr`, before any update) is NaN or infinite: the data or
        the model is broken, not the learning rate.

    Notes
    -----
    *Param groups.* Every group follows the ramp at its own ratio to the first group, taken from
    the learning rates the groups would use at the next step (a schedule is evaluated there): a
    backbone at 1e-4 and a head at 1e-3 keep their factor of 10, and `lrs` reports the first
    group's rate. When the first group's rate is 0 the ratios are undefined and every group gets
    the ramp itself.

    *What is restored.* Parameter values and gradients, buffers (running statistics), every
    module's ``training`` flag, the optimizer's `state_dict` (buffers, step counter,
    hyperparameters) and each group's ``lr`` object (a schedule function is put back as the same
    object), bit for bit, also when an exception interrupts the test. Random generators advanced
    by shuffling or dropout are not rewound.

    References
    ----------
    Smith, L. N. (2017). Cyclical learning rates for training neural networks. WACV.
    (arXiv:1506.01186, Section 3.3, "How can one estimate reasonable minimum and maximum
    boundary values?")
    fastai, ``Learner.lr_find`` and ``LRFinder`` callback (``fastai/callback/schedule.py``).
    """
    _check_args(start_lr, end_lr, num_steps, smooth, diverge_factor)
    groups = optimizer.param_groups
    base = [optimizer.current_lr(g) for g in groups]
    ratios = [b / base[0] for b in base] if base[0] > 0 else [1.0] * len(groups)

    snapshot = _Snapshot(model, optimizer)
    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    stop_reason = "completed"
    params = model.parameters()
    dtype = model.dtype
    try:
        model.train()
        avg = 0.0
        best = math.inf
        batches = _cycle(loader)
        for i in range(num_steps):
            batch = next(batches, None)
            if batch is None:
                stop_reason = "exhausted"
                break
            xb, yb = batch
            lr = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))
            for group, ratio in zip(groups, ratios):
                group["lr"] = lr * ratio
            scores = model.forward(_cast(xb, dtype))
            value = float(loss.forward(scores, yb))
            if penalty is not None:
                value += float(penalty.value(params))
            if not math.isfinite(value):
                if i == 0:
                    raise FloatingPointError(
                        f"lr_find: the loss of the first batch is {value} before any update (at "
                        f"lr {lr:g}); check that the inputs are finite and standardized and that "
                        f"the loss matches the model's output"
                    )
                stop_reason = "non-finite"
                break
            optimizer.zero_grad()
            model.backward(loss.backward())
            if penalty is not None:
                penalty.backward(params)
            optimizer.step()

            avg = smooth * avg + (1 - smooth) * value
            s = avg / (1 - smooth ** (i + 1))
            lrs.append(lr)
            raw.append(value)
            smoothed.append(s)
            best = min(best, s)
            if s > diverge_factor * best:
                stop_reason = "diverged"
                break
    finally:
        snapshot.restore()

    if not lrs:
        raise ValueError("lr_find: the loader yielded no batch")
    lrs_a = np.asarray(lrs, dtype=np.float64)
    smooth_a = np.asarray(smoothed, dtype=np.float64)
    skip_start = num_steps // 10
    steepest = suggest_steepest(lrs_a, smooth_a, skip_start=skip_start)
    min_div10 = suggest_min_div10(lrs_a, smooth_a, skip_start=skip_start)
    return LRFinderResult(
        lrs=lrs_a,
        losses=np.asarray(raw, dtype=np.float64),
        smoothed=smooth_a,
        suggestion_steepest=steepest,
        suggestion_min_div10=min_div10,
        suggestion=steepest if math.isfinite(steepest) else min_div10,
        start_lr=float(start_lr),
        end_lr=float(end_lr),
        num_steps=int(num_steps),
        stop_reason=stop_reason,
    )


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


# ------------------------------------------------------------------------------------ helpers


def _check_args(start_lr: float, end_lr: float, num_steps: int, smooth: float, diverge_factor: float) -> None:
    if not (math.isfinite(start_lr) and start_lr > 0):
        raise ValueError(f"lr_find: {start_lr=} must be a finite number > 0")
    if not (math.isfinite(end_lr) and end_lr > start_lr):
        raise ValueError(f"lr_find: {end_lr=} must be finite and greater than {start_lr=}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 2:
        raise ValueError(f"lr_find: {num_steps=} must be an integer >= 2")
    if not 0 <= smooth < 1:
        raise ValueError(f"lr_find: {smooth=} must be in [0, 1)")
    if not diverge_factor > 1:
        raise ValueError(f"lr_find: {diverge_factor=} must be > 1")


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    """Batches of `loader`, epoch after epoch; stops if an epoch is empty or `loader` is one-shot."""
    while True:
        it = iter(loader)
        empty = True
        for batch in it:
            empty = False
            yield batch
        if empty or it is loader:
            return


def _cast(xb: Any, dtype: np.dtype) -> Any:
    """A floating batch in the model's dtype (integer inputs such as indices are left alone)."""
    if isinstance(xb, np.ndarray) and xb.dtype != dtype and np.issubdtype(xb.dtype, np.floating):
        return xb.astype(dtype)
    return xb


class _Snapshot:
    """Everything `lr_find` changes, copied before and put back after."""

    def __init__(self, model: Layer, optimizer: Optimizer) -> None:
        self.model = model
        self.optimizer = optimizer
        self.weights = model.state_dict()  # copies of parameters and buffers
        self.grads = [(p, p.grad.copy()) for p in model.parameters()]
        self.modes = [(mod, mod.training) for _, mod in model.named_modules()]
        self.opt_state = optimizer.state_dict()  # copies
        # The group dicts themselves (minus params): the lr object (float or the very same schedule
        # function) and every other hyperparameter as it was.
        self.groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]

    def restore(self) -> None:
        self.model.load_state_dict(self.weights)
        for p, g in self.grads:
            np.copyto(p.grad, g)
        # Parents come before children in named_modules, so each module ends with its own flag.
        for mod, training in self.modes:
            mod.train(training)
        for group, saved in zip(self.optimizer.param_groups, self.groups):
            group.update(saved)  # before load_state_dict, which expects the schedules back
        self.optimizer.load_state_dict(self.opt_state)
        for group, saved in zip(self.optimizer.param_groups, self.groups):
            group.update(saved)  # the very objects again (load_state_dict may rebuild tuples)
