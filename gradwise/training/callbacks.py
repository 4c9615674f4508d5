"""Callbacks: code that runs at fixed points of `Trainer.fit`, in Keras' vocabulary.

Subclass `Callback` and override the hooks you need; the trainer calls them in this order::

    on_train_begin(logs)
        on_epoch_begin(epoch, logs)
            on_train_batch_begin(batch, logs)   # logs: {"size": n}
            on_train_batch_end(batch, logs)     # logs: {"loss": this batch's loss, "size": n,
                                                #        "grad_norm": pre-clip norm when clipping by norm}
            ...
            on_test_begin(logs)                 # validation, through Trainer.evaluate
            on_test_end(logs)                   # logs: {"loss": ..., <metric>: ...}
        on_epoch_end(epoch, logs)               # logs: epoch, loss, <metric>, val_loss, ..., lr, time
    on_train_end(logs)                          # logs: the last epoch's logs

`epoch` and `batch` are 0-based indices, as in Keras. The epoch logs dict passed to
`on_epoch_end` is the row stored in `History` and written to ``history.csv``: a key a callback adds
there is recorded too. Set ``self.trainer.stop_training = True`` to stop after the current batch
(from a batch hook) or epoch (from an epoch hook). `self.trainer` gives access to the model, the
optimizer (``trainer.optimizer.param_groups``) and the history.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradwise.core import Layer
    from gradwise.training.trainer import Trainer

__all__ = ["Callback", "CallbackList", "infer_mode"]

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

    def __repr__(self) -> str:
        return f"CallbackList({self.callbacks!r})"


# Built-in callbacks that live in their own files, importable from here (after `Callback` exists,
# which they subclass).
from gradwise.training.schedule_callbacks import CycleMomentum  # noqa: E402
from gradwise.training.schedule_callbacks import ReduceLROnPlateau  # noqa: E402
