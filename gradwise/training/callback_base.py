"""The `Callback` base class, `CallbackList` and the helpers the built-in callbacks share.

The hooks, their order and their logs are described in ``callbacks.py`` (the vocabulary users
import, ``gw.callbacks``). The built-in callbacks live in files of their own (``ema.py``,
``stopping.py``, ``logging_callbacks.py``, ``schedule_callbacks.py``) and subclass `Callback`
from here, so that ``callbacks.py`` can import them all without an import cycle.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.core import Layer

if TYPE_CHECKING:
    from gradwise.training.divergence import TrainingDiverged
    from gradwise.training.trainer import Trainer

__all__ = ["Callback", "CallbackList", "Logs", "infer_mode", "resolve_mode"]

Logs = dict[str, Any]

# Monitored quantities that are better when smaller; everything else (accuracy, ...) is maximized.
_MIN_NAMES = ("loss", "rmse", "mae", "mse", "error", "perplexity")


def infer_mode(monitor: str) -> str:
    """``"min"`` for losses and errors (``loss``, ``val_loss``, ``val_rmse``, ...), else ``"max"``."""
    base = monitor[4:] if monitor.startswith("val_") else monitor
    return "min" if any(base.endswith(name) for name in _MIN_NAMES) else "max"


def resolve_mode(monitor: str, mode: str) -> str:
    """`mode` itself (``"min"``/``"max"``), or the inferred one for ``"auto"``."""
    if mode == "auto":
        return infer_mode(monitor)
    if mode not in ("min", "max"):
        raise ValueError(f"{mode=} must be 'min', 'max' or 'auto'")
    return mode


class Callback:
    """Base class: every hook does nothing. `trainer` is set when the trainer is built."""

    def __init__(self) -> None:
        self.trainer: Trainer | None = None

    def set_trainer(self, trainer: Trainer) -> None:
        self.trainer = trainer

    @property
    def model(self) -> Layer:
        if self.trainer is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to a Trainer yet")
        return self.trainer.model

    def on_train_begin(self, logs: Logs | None = None) -> None:
        """Called once when `fit` starts."""

    def on_train_end(self, logs: Logs | None = None) -> None:
        """Called once when `fit` ends normally (also after ``stop_training``; not on an exception)."""

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        """Called at the start of epoch `epoch` (0-based, counted across `fit` calls)."""

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        """Called with the epoch's complete logs, validation included."""

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Called before the forward pass of training batch `batch` (0-based within the epoch)."""

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """Called after the optimizer step of training batch `batch`."""

    def on_test_begin(self, logs: Logs | None = None) -> None:
        """Called when `Trainer.evaluate` starts (validation during `fit`, or a direct call)."""

    def on_test_end(self, logs: Logs | None = None) -> None:
        """Called with the evaluation results (keys without the ``val_`` prefix)."""

    def on_train_diverged(self, error: TrainingDiverged, inputs: Any, targets: Any) -> bool:
        """Called when a training batch's loss is NaN or infinite, before that batch's update.

        `inputs` and `targets` are the failing batch. Return True to have `fit` stop cleanly
        (``on_train_end`` runs, `fit` returns the history) instead of raising `error`.
        """
        return False

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue as if never interrupted (nothing, by default)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict()` (call it before `fit`)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CallbackList:
    """Calls each hook on every callback, in the order given.

    Parameters
    ----------
    callbacks : iterable of Callback
    trainer : Trainer, optional
        Attached to every callback (`Callback.set_trainer`).
    """

    def __init__(self, callbacks: Iterable[Callback] = (), trainer: Trainer | None = None) -> None:
        self.callbacks: list[Callback] = []
        self.trainer = trainer
        for cb in callbacks:
            self.append(cb)

    def append(self, callback: Callback) -> None:
        if not isinstance(callback, Callback):
            raise TypeError(
                f"callbacks must be gradwise Callback instances, got {type(callback).__name__} "
                f"(subclass gradwise.callbacks.Callback)"
            )
        if self.trainer is not None:
            callback.set_trainer(self.trainer)
        self.callbacks.append(callback)

    def __iter__(self) -> Iterator[Callback]:
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_end(batch, logs)

    def on_test_begin(self, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_test_begin(logs)

    def on_test_end(self, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_test_end(logs)

    def on_train_diverged(self, error: TrainingDiverged, inputs: Any, targets: Any) -> bool:
        """Every callback sees the divergence; True if any of them asks for a clean stop."""
        handled = False
        for cb in self.callbacks:
            handled = bool(cb.on_train_diverged(error, inputs, targets)) or handled
        return handled

    def __repr__(self) -> str:
        return f"CallbackList({self.callbacks!r})"


# -------------------------------------------------------------------------------- shared helpers


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise ValueError(f"{name}={value!r} must be an integer >= 0")
    return int(value)


def _trainer(callback: Callback) -> Trainer:
    if callback.trainer is None:
        raise RuntimeError(f"{type(callback).__name__} is not attached to a Trainer yet")
    return callback.trainer


class _StepWatch:
    """Tells whether an optimizer step happened since the last look (``trainer.global_step`` moved).

    With gradient accumulation `on_train_batch_end` runs after every batch but the weights change
    only every k-th; a stand-in trainer without ``global_step`` counts every batch as a step.
    """

    def __init__(self) -> None:
        self.last: int | None = None

    def stepped(self, trainer: Any) -> bool:
        step = getattr(trainer, "global_step", None)
        if step is None:
            return True
        moved = step != self.last
        self.last = step
        return moved


def _monitored(owner: str, monitor: str, logs: Logs | None) -> float:
    """``logs[monitor]`` as a float, or a ValueError listing the keys that are there."""
    logs = logs or {}
    if monitor not in logs:
        hint = " (no validation loader? use monitor='loss')" if monitor.startswith("val_") else ""
        raise ValueError(f"{owner}: {monitor!r} is not in the epoch logs {sorted(logs)}{hint}")
    return float(logs[monitor])


def _improves(value: float, reference: float, mode: str, min_delta: float = 0.0) -> bool:
    """Keras' test: ``value + min_delta < reference`` (min) or ``value - min_delta > reference``
    (max). NaN never improves."""
    return value + min_delta < reference if mode == "min" else value - min_delta > reference


def _is_finite(obj: Any) -> bool:
    """For an array, a tuple of arrays (multi-input models) or a number; non-float data is finite."""
    if isinstance(obj, (list, tuple)):
        return all(_is_finite(o) for o in obj)
    if isinstance(obj, np.ndarray):
        return not np.issubdtype(obj.dtype, np.inexact) or bool(np.isfinite(obj).all())
    if isinstance(obj, (float, np.floating)):
        return math.isfinite(float(obj))
    return True
