"""Callbacks that change optimizer hyperparameters during training.

- `ReduceLROnPlateau`: divide the learning rate when a monitored quantity stops improving (a
  decision on observed values, so a callback, not a schedule).
- `CycleMomentum`: apply a one-cycle schedule's momentum (or Adam's beta1) before every batch.

Both act on ``trainer.optimizer.param_groups``; see ``docs/schedules.md``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gradwise.optim.schedules import Scaled
from gradwise.training.callback_base import Callback, Logs, resolve_mode

if TYPE_CHECKING:
    from gradwise.optim import Optimizer

__all__ = ["CycleMomentum", "ReduceLROnPlateau"]


def _optimizer(callback: Callback) -> Optimizer:
    if callback.trainer is None:
        raise RuntimeError(f"{type(callback).__name__} is not attached to a Trainer yet")
    return callback.trainer.optimizer


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise ValueError(f"{name}={value!r} must be an integer >= 0")
    return int(value)


def _nonneg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= float(value) < math.inf:
        raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    return float(value)


class ReduceLROnPlateau(Callback):
    r"""Multiply the learning rate by `factor` when `monitor` has not improved for `patience` epochs.

    The decision rule is ``torch.optim.lr_scheduler.ReduceLROnPlateau``'s, step for step. After
    each epoch, with :math:`b` the best value so far, the value :math:`a` is an improvement when

    ============  ===============================  ============================
    mode          ``threshold_mode="rel"``         ``threshold_mode="abs"``
    ============  ===============================  ============================
    ``"min"``     :math:`a < b\,(1 - \epsilon)`    :math:`a < b - \epsilon`
    ``"max"``     :math:`a > b\,(1 + \epsilon)`    :math:`a > b + \epsilon`
    ============  ===============================  ============================

    (:math:`\epsilon` = `threshold`). An improvement resets the count of bad epochs; otherwise
    it grows by one. Epochs in cooldown do not count. When the count exceeds `patience`, each
    group's rate becomes :math:`\max(\eta\cdot\text{factor}, \text{min\_lr})` (kept unchanged if
    that lowers it by `eps` or less), the count is reset and a cooldown of `cooldown` epochs
    starts. A NaN value is never an improvement.

    A group whose ``lr`` is a float gets the new float. A group whose ``lr`` is a schedule gets
    ``Scaled(schedule, c)``: the schedule keeps its shape, and ``c`` is chosen so that the rate of
    the next step is exactly the reduced one (`min_lr` is applied at that moment only; the
    schedule may go lower later on its own).

    Parameters
    ----------
    monitor : str, default "val_loss"
        Key of the epoch logs to watch (``"loss"`` when there is no validation loader).
    mode : {"auto", "min", "max"}, default "auto"
        "auto" minimizes losses and errors and maximizes anything else (accuracy, ...).
    factor : float, default 0.1
        In [0, 1).
    patience : int, default 10
        Bad epochs tolerated before a reduction (0: reduce after the first bad epoch).
    threshold : float, default 1e-4
    threshold_mode : {"rel", "abs"}, default "rel"
    cooldown : int, default 0
        Epochs after a reduction during which bad epochs are not counted.
    min_lr : float or sequence of float, default 0
        Lower bound on the rate, for all groups or per group.
    eps : float, default 1e-8
        Smallest change of a rate worth making.

    Raises
    ------
    ValueError
        At the end of an epoch whose logs lack `monitor` (the message lists the keys present).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "auto",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.monitor = str(monitor)
        self.mode = resolve_mode(self.monitor, mode)
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 <= float(factor) < 1:
            raise ValueError(f"{factor=} must be in [0, 1)")
        self.factor: float = float(factor)
        self.patience: int = _count("patience", patience)
        self.threshold: float = _nonneg("threshold", threshold)
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{threshold_mode=} must be 'rel' or 'abs'")
        self.threshold_mode: str = threshold_mode
        self.cooldown: int = _count("cooldown", cooldown)
        self.min_lr: float | list[float]
        if isinstance(min_lr, Sequence):
            self.min_lr = [_nonneg(f"min_lr[{i}]", v) for i, v in enumerate(min_lr)]
        else:
            self.min_lr = _nonneg("min_lr", min_lr)
        self.eps: float = _nonneg("eps", eps)
        self.best: float = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs: int = 0
        self.cooldown_counter: int = 0
        self.last_epoch: int = 0
        # Per group: the factor of the `Scaled` wrapper put around a schedule lr (None: untouched).
        self.schedule_scales: list[float | None] = []

    # ------------------------------------------------------------------ the rule
    def is_better(self, a: float, best: float) -> bool:
        """Whether `a` improves on `best` (the table above)."""
        # The same expressions as torch, so that ties at the threshold resolve the same way.
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            return a < best * (1.0 - self.threshold) if rel else a < best - self.threshold
        return a > best * (self.threshold + 1.0) if rel else a > best + self.threshold

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def step(self, metric: float) -> None:
        """Record one epoch's value of the monitored quantity; reduce the rates if it is time."""
        current = float(metric)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def _min_lrs(self, n_groups: int) -> list[float]:
        if isinstance(self.min_lr, list):
            if len(self.min_lr) != n_groups:
                raise ValueError(
                    f"ReduceLROnPlateau: min_lr has {len(self.min_lr)} values but the optimizer "
                    f"has {n_groups} param groups"
                )
            return self.min_lr
        return [self.min_lr] * n_groups

    def _reduce_lr(self) -> None:
        opt = _optimizer(self)
        groups = opt.param_groups
        self.schedule_scales += [None] * (len(groups) - len(self.schedule_scales))
        for i, (group, min_lr) in enumerate(zip(groups, self._min_lrs(len(groups)))):
            old = opt.current_lr(group)  # a schedule's rate at the next step
            new = max(old * self.factor, min_lr)
            if not old - new > self.eps:
                continue
            lr = group["lr"]
            if callable(lr):
                base, scale = (lr.schedule, lr.factor) if isinstance(lr, Scaled) else (lr, 1.0)
                scale *= new / old
                self.schedule_scales[i] = scale
                group["lr"] = Scaled(base, scale)
            else:
                group["lr"] = new

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._apply_schedule_scales()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            hint = ""
            if self.monitor.startswith("val_"):
                hint = " (no validation loader? use monitor='loss')"
            raise ValueError(
                f"ReduceLROnPlateau: {self.monitor!r} is not in the epoch logs {sorted(logs)}{hint}"
            )
        self.step(logs[self.monitor])

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The decision state (plain Python, JSON-friendly apart from an infinite ``best``)."""
        return {
            "best": self.best,
            "num_bad_epochs": self.num_bad_epochs,
            "cooldown_counter": self.cooldown_counter,
            "last_epoch": self.last_epoch,
            "schedule_scales": list(self.schedule_scales),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict()`.

        Float rates live in the optimizer's own state dict. A schedule rate that had been reduced
        is re-wrapped here (now if attached to a trainer, else when training begins), around the
        schedule the optimizer was rebuilt with.
        """
        keys = {"best", "num_bad_epochs", "cooldown_counter", "last_epoch", "schedule_scales"}
        missing = keys - set(state)
        if missing:
            raise ValueError(f"ReduceLROnPlateau.load_state_dict: missing entries {sorted(missing)}")
        self.best = float(state["best"])
        self.num_bad_epochs = int(state["num_bad_epochs"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self.last_epoch = int(state["last_epoch"])
        self.schedule_scales = [None if s is None else float(s) for s in state["schedule_scales"]]
        if self.trainer is not None:
            self._apply_schedule_scales()

    def _apply_schedule_scales(self) -> None:
        if not any(s is not None for s in self.schedule_scales):
            return
        groups = _optimizer(self).param_groups
        for i, (group, scale) in enumerate(zip(groups, self.schedule_scales)):
            if scale is None:
                continue
            lr = group["lr"]
            if not callable(lr):
                raise TypeError(
                    f"ReduceLROnPlateau: param group {i} had a reduced schedule lr, but its lr is "
                    f"now the float {lr!r}; rebuild the optimizer with the same schedule"
                )
            group["lr"] = Scaled(lr.schedule if isinstance(lr, Scaled) else lr, scale)

    def __repr__(self) -> str:
        return (
            f"ReduceLROnPlateau(monitor={self.monitor!r}, mode={self.mode!r}, factor={self.factor}, "
            f"patience={self.patience}, threshold={self.threshold}, "
            f"threshold_mode={self.threshold_mode!r}, cooldown={self.cooldown}, "
            f"min_lr={self.min_lr}, eps={self.eps})"
        )


class CycleMomentum(Callback):
    """Set every group's momentum, or Adam's beta1, from a schedule before each training batch.

    The value for the coming step is ``schedule.momentum(optimizer.step_count)``, written to
    ``group["betas"][0]`` when the optimizer has ``betas`` (Adam, AdamW, NAdam, RAdam, Lion), else
    to ``group["momentum"]`` (SGD, RMSprop): the rule of torch's ``OneCycleLR(cycle_momentum=True)``,
    with the same values at every step.

    Parameters
    ----------
    schedule : object with a ``momentum(step) -> float`` method
        Typically the `gradwise.optim.schedules.one_cycle` that is also the optimizer's ``lr``.

    Examples
    --------
    >>> sched = one_cycle(max_lr=1e-2, total_steps=epochs * len(train_loader))
    >>> opt = SGD(model.parameters(), lr=sched, momentum=0.9)
    >>> trainer = Trainer(model, loss, opt, callbacks=[CycleMomentum(sched)])
    """

    def __init__(self, schedule: Any) -> None:
        super().__init__()
        if not callable(getattr(schedule, "momentum", None)):
            raise TypeError(
                f"CycleMomentum: {schedule!r} has no momentum(step) method; pass a one_cycle schedule"
            )
        self.schedule = schedule

    def on_train_begin(self, logs: Logs | None = None) -> None:
        opt = _optimizer(self)
        for i, group in enumerate(opt.param_groups):
            if "betas" not in group and "momentum" not in group:
                raise ValueError(
                    f"CycleMomentum: param group {i} of {type(opt).__name__} has neither 'betas' "
                    f"nor 'momentum' to cycle"
                )

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        opt = _optimizer(self)
        m = float(self.schedule.momentum(opt.step_count))
        for group in opt.param_groups:
            if "betas" in group:
                group["betas"] = (m, *group["betas"][1:])
            else:
                group["momentum"] = m

    def __repr__(self) -> str:
        return f"CycleMomentum({self.schedule!r})"
