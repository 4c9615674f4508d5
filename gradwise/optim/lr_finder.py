"""The learning-rate range test ("LR finder"): an exponential lr ramp, a smoothed loss, suggestions.

Train for a few hundred mini-batches while the learning rate grows exponentially from tiny to huge,
record the loss at each step, and read off where the loss falls fastest (Smith, 2017; fastai's
``Learner.lr_find``). The model, its modes, the optimizer's state and its learning rates are restored
exactly afterwards, so the test can run right before training. See ``docs/lr_finder.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.core import Layer, backward_of
from gradwise.optim.lr_curve import (
    ABOVE_START,
    MIN_FACTOR,
    NON_FINITE,
    LRFinderResult,
    falling_at_end,
    suggest_min_div10,
    suggest_steepest,
)

if TYPE_CHECKING:
    from gradwise.losses import Loss, Penalty
    from gradwise.optim.optimizer import Optimizer

# The result and the curve-reading functions live in lr_curve; importable from here as before.
__all__ = ["LRFinderResult", "lr_find", "suggest_min_div10", "suggest_steepest"]


def lr_find(
    model: Layer,
    loss: Loss,
    optimizer: Optimizer,
    loader: Iterable[Any],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 200,
    smooth: float = 0.95,
    diverge_factor: float = 4.0,
    min_fall: float = 0.05,
    stop: bool = True,
    penalty: Penalty | None = None,
) -> LRFinderResult:
    r"""Run the learning-rate range test and restore everything it touched.

    Step :math:`i = 0, \dots, n-1` trains on one mini-batch at

    .. math::

        \eta_i = \eta_{\text{start}} \left(\frac{\eta_{\text{end}}}{\eta_{\text{start}}}\right)^{i/(n-1)},

    an exponential ramp: equal numbers of steps per decade, so the plot on a log lr axis is evenly
    sampled. The loss :math:`\ell_i` of each batch (measured before its update) is smoothed with
    a bias-corrected exponential moving average (as fastai's, and Adam's moments)

    .. math::

        a_i = \beta a_{i-1} + (1-\beta)\,\ell_i,\quad a_{-1} = 0,\qquad
        s_i = \frac{a_i}{1-\beta^{i+1}}.

    The correction removes the pull towards :math:`a_{-1} = 0` at the start; it cannot remove
    the lag: :math:`s_i` is a weighted mean of past losses, on average
    :math:`\beta/(1-\beta)` steps old (19 steps, 0.76 decade of the default ramp, at
    :math:`\beta = 0.95`; fastai's 0.98 would lag 49 steps, two decades).

    The ramp is called diverged at the first step where one of these holds (and stops there
    unless ``stop=False``):

    - ``"above-start"``: the smoothed loss, after falling at least `min_fall` (5%) below the
      starting level :math:`\bar\ell`, rises back above it: :math:`\min_{k \le j \le i} s_j \le
      (1 - \text{min\_fall})\,\bar\ell` and :math:`s_i > \bar\ell`, where the warm-up is the
      first :math:`k = \max(1, \lfloor n/10 \rfloor)` steps (where the lr is still too small to
      matter, and which the suggestions skip too) and :math:`\bar\ell` is the mean raw loss
      over it. This is the rule that fires for a classifier whose loss saturates near chance
      instead of exploding. Measuring the fall only after the warm-up, by a margin, keeps batch
      noise (and the few batches an early smoothed value averages) from firing it;
    - ``"min-factor"``: :math:`s_i > \text{diverge\_factor} \cdot \min_{j \le i} s_j`
      (fastai's rule, factor 4);
    - ``"non-finite"``: a loss is NaN or infinite. That step is not recorded, no update is made
      with it, and the ramp ends even with ``stop=False`` (there is nothing left to train).

    Parameters
    ----------
    model : Layer
        Put in train mode for the test.
    loss : Loss
        ``forward(scores, y) -> float``, ``backward() -> dL/dscores``; assumed positive (the
        divergence rules compare ratios).
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
        :math:`\beta \in [0, 1)` of the moving average; 0 disables smoothing. pytorch-lr-finder
        uses 0.95 too.
    diverge_factor : float
        The ``"min-factor"`` rule's multiple (> 1) of the best smoothed loss so far.
    min_fall : float
        The fraction in [0, 1) by which the smoothed loss must have fallen below the starting
        level before a rise back above it counts (``"above-start"``).
    stop : bool
        Stop at the first divergence (the default). False runs the whole ramp (up to a non-finite
        loss) and still reports where it diverged.
    penalty : Penalty, optional
        A weight penalty added to the loss, as in `Trainer`.

    Returns
    -------
    LRFinderResult
        The ramp, the raw and smoothed losses, the divergence and the suggestions; the
        suggestions read the smoothed loss up to the divergence (without ``stop``, the points
        after it are recorded and drawn but not read).

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
    _check_args(start_lr, end_lr, num_steps, smooth, diverge_factor, min_fall)
    groups = optimizer.param_groups
    base = [optimizer.current_lr(g) for g in groups]
    ratios = [b / base[0] for b in base] if base[0] > 0 else [1.0] * len(groups)

    snapshot = _Snapshot(model, optimizer)
    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    stop_reason = "completed"
    rule: str | None = None
    rule_step: int | None = None
    rule_lr = math.nan
    warmup = max(1, num_steps // 10)  # the suggestions skip the same steps
    params = model.parameters()
    dtype = model.dtype
    try:
        model.train()
        avg = 0.0
        best = math.inf
        start = math.nan  # the starting level, known after the warm-up
        best_after_warmup = math.inf
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
                if rule is None:
                    rule, rule_step, rule_lr = NON_FINITE, i, lr
                    stop_reason = "diverged"
                break
            optimizer.zero_grad()
            backward_of(model, loss.backward(), input_grad=False)  # no one needs dL/dx
            if penalty is not None:
                penalty.backward(params)
            optimizer.step()

            avg = smooth * avg + (1 - smooth) * value
            s = avg / (1 - smooth ** (i + 1))
            lrs.append(lr)
            raw.append(value)
            smoothed.append(s)
            best = min(best, s)
            if i == warmup - 1:
                start = math.fsum(raw) / warmup
            elif i >= warmup:
                best_after_warmup = min(best_after_warmup, s)
            if rule is None:
                if best_after_warmup <= (1 - min_fall) * start and s > start:
                    rule = ABOVE_START
                elif s > diverge_factor * best:
                    rule = MIN_FACTOR
                if rule is not None:
                    rule_step, rule_lr = i, lr
                    if stop:
                        stop_reason = "diverged"
                        break
    finally:
        snapshot.restore()

    if not lrs:
        raise ValueError("lr_find: the loader yielded no batch")
    if math.isnan(start):
        start = math.fsum(raw) / len(raw)  # ended within the warm-up
    fell = best_after_warmup <= (1 - min_fall) * start
    lrs_a = np.asarray(lrs, dtype=np.float64)
    smooth_a = np.asarray(smoothed, dtype=np.float64)
    read = len(lrs) if rule_step is None else min(rule_step + 1, len(lrs))  # up to the divergence
    steepest = suggest_steepest(lrs_a[:read], smooth_a[:read], skip_start=num_steps // 10)
    min_div10 = suggest_min_div10(lrs_a[:read], smooth_a[:read], skip_start=num_steps // 10)
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
        divergence=rule,
        divergence_step=rule_step,
        divergence_lr=float(rule_lr),
        start_loss=float(start),
        still_falling=rule is None and fell and falling_at_end(lrs_a, smooth_a),
        diverge_factor=float(diverge_factor),
        min_fall=float(min_fall),
    )


# ------------------------------------------------------------------------------------ helpers


def _check_args(
    start_lr: float, end_lr: float, num_steps: int, smooth: float, diverge_factor: float, min_fall: float
) -> None:
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
    if not 0 <= min_fall < 1:
        raise ValueError(f"lr_find: {min_fall=} must be in [0, 1)")


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
