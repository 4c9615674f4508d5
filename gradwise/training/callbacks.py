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

    on_train_diverged(error, inputs, targets)   # a batch loss is NaN/inf, before its update;
                                                # return True to stop cleanly instead of raising

`epoch` and `batch` are 0-based indices, as in Keras. The epoch logs dict passed to
`on_epoch_end` is the row stored in `History` and written to ``history.csv``: a key a callback adds
there is recorded too. Set ``self.trainer.stop_training = True`` to stop after the current batch
(from a batch hook) or epoch (from an epoch hook). `self.trainer` gives access to the model, the
optimizer (``trainer.optimizer.param_groups``) and the history.

Every callback has ``state_dict()`` / ``load_state_dict(state)`` so that a resumed run continues
with the same counters, best values and averages (``gradwise/training/checkpoint.py`` saves the
states of the callbacks that override them). A state is a dict of plain Python values (floats may
be ``inf``) and NumPy arrays (weights), which the checkpoint stores in safetensors.

Built in here: `EarlyStopping`, `ModelCheckpoint`, `TerminateOnNaN`, `EMA`, `CSVLogger`; from
``schedule_callbacks.py``: `ReduceLROnPlateau`, `CycleMomentum`. See ``docs/callbacks.md``.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.core import Layer, Sequential

if TYPE_CHECKING:
    from gradwise.training.trainer import Trainer, TrainingDiverged

__all__ = [
    "EMA",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "CycleMomentum",
    "EarlyStopping",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
    "infer_mode",
]

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


# -------------------------------------------------------------------------------- EarlyStopping


class EarlyStopping(Callback):
    """Stop training when `monitor` has stopped improving (Keras' rule, step for step).

    After each epoch (from `start_from_epoch` on) the value is an improvement when it beats the
    best so far by more than `min_delta` (``value + min_delta < best`` in ``"min"`` mode,
    ``value - min_delta > best`` in ``"max"`` mode; NaN never improves). The count of epochs since
    the last improvement (`wait`) resets on an improvement that also beats `baseline` (when
    given); training stops when it reaches `patience`. With ``patience=0`` the first epoch without
    improvement stops training.

    With ``restore_best=True`` the weights (parameters and buffers) of the best epoch are copied in
    memory when it happens and put back into the model **when training ends, whichever way it
    ends**: an early stop, the epoch limit, or a clean stop by `TerminateOnNaN`. That is Keras 3's
    ``restore_best_weights``; tf.keras 2 restored only on an early stop, which surprised users
    whose best epoch came before a run that simply ran out of epochs. If no epoch improved (all
    NaN), the weights of the first monitored epoch are restored.

    The state persists across `fit` calls, like the trainer's epoch count (a second `fit`
    continues the same run); build a new `EarlyStopping` to start over.

    Parameters
    ----------
    monitor : str, default "val_loss"
    mode : {"auto", "min", "max"}, default "auto"
        "auto" minimizes losses and errors and maximizes anything else (accuracy, ...).
    patience : int, default 0
        Epochs without improvement before stopping.
    min_delta : float, default 0
        Smallest change that counts as an improvement (absolute).
    baseline : float, optional
        Training stops after `patience` epochs unless the value beats `baseline`.
    restore_best : bool, default False
    start_from_epoch : int, default 0
        Epochs of warm-up that are not monitored.
    verbose : bool, default False
        Print a line when stopping and when restoring.

    Attributes
    ----------
    best, best_epoch, wait, stopped_epoch
        The best value and its (0-based) epoch, the epochs since the last improvement, and the
        epoch training stopped at (None when it did not stop early).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "auto",
        patience: int = 0,
        min_delta: float = 0.0,
        baseline: float | None = None,
        restore_best: bool = False,
        start_from_epoch: int = 0,
        verbose: bool = False,
    ) -> None:
        super().__init__()
        self.monitor: str = str(monitor)
        self.mode: str = resolve_mode(self.monitor, mode)
        self.patience: int = _count("patience", patience)
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) or not math.isfinite(min_delta):
            raise ValueError(f"{min_delta=} must be a finite number")
        self.min_delta: float = abs(float(min_delta))  # Keras takes the absolute value too
        if baseline is not None and (isinstance(baseline, bool) or not isinstance(baseline, numbers.Real)):
            raise ValueError(f"{baseline=} must be a number or None")
        self.baseline: float | None = None if baseline is None else float(baseline)
        self.restore_best: bool = bool(restore_best)
        self.start_from_epoch: int = _count("start_from_epoch", start_from_epoch)
        self.verbose: bool = bool(verbose)
        self.best: float = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.wait: int = 0
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if epoch < self.start_from_epoch:
            return
        current = _monitored("EarlyStopping", self.monitor, logs)
        if self.restore_best and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.state_dict(), epoch
        self.wait += 1
        if _improves(current, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch = current, epoch
            if self.restore_best:
                self.best_weights = self.model.state_dict()
            if self.baseline is None or _improves(current, self.baseline, self.mode, self.min_delta):
                self.wait = 0
            return
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            _trainer(self).stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.verbose and self.stopped_epoch is not None:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping ({self.monitor} did not improve)")
        if self.restore_best and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring the weights of epoch {self.best_epoch + 1} ({self.monitor} = {self.best:g})")  # type: ignore[operator]
            self.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_weights": None if self.best_weights is None else dict(self.best_weights),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = None if state["best_epoch"] is None else int(state["best_epoch"])
        self.wait = int(state["wait"])
        self.stopped_epoch = None if state["stopped_epoch"] is None else int(state["stopped_epoch"])
        weights = state.get("best_weights")
        self.best_weights = None if weights is None else {k: np.array(v, copy=True) for k, v in weights.items()}

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(monitor={self.monitor!r}, mode={self.mode!r}, patience={self.patience}, "
            f"min_delta={self.min_delta}, baseline={self.baseline}, restore_best={self.restore_best})"
        )


# -------------------------------------------------------------------------------- ModelCheckpoint


class ModelCheckpoint(Callback):
    """Save the model's weights (safetensors, PyTorch names, written atomically) after epochs.

    Two layouts, chosen by `path_or_dir`:

    - a directory (any path not ending in ``.safetensors``; created if missing):
      ``best.safetensors`` whenever `monitor` improves, ``last.safetensors`` after every epoch
      (`save_last`), and with ``save_best_only=False`` also ``epoch-0001.safetensors``, ... per epoch;
    - a file ``*.safetensors``, which may hold Keras' format fields (``{epoch:03d}`` counts from 1,
      any logs key such as ``{val_loss:.3f}``): written when `monitor` improves, or after every
      epoch with ``save_best_only=False``; `save_last` adds ``last.safetensors`` next to it.

    Files are written by `gradwise.io.save` (metadata: the epoch, the monitored value) and load
    with `gradwise.io.load` or into torch. Weights holding a NaN or an infinity are never written
    (a warning says so), so a divergence cannot spoil a good checkpoint. A NaN value of `monitor`
    is never an improvement.

    Parameters
    ----------
    path_or_dir : path-like
    monitor : str, default "val_loss"
    mode : {"auto", "min", "max"}, default "auto"
    save_best_only : bool, default True
    save_last : bool, default True

    Attributes
    ----------
    best, best_epoch
        The best monitored value and its (0-based) epoch; kept in `state_dict` for resuming.
    """

    def __init__(
        self,
        path_or_dir: str | os.PathLike[str],
        monitor: str = "val_loss",
        mode: str = "auto",
        save_best_only: bool = True,
        save_last: bool = True,
    ) -> None:
        super().__init__()
        self.path = Path(path_or_dir)
        self.is_dir = self.path.suffix != ".safetensors"
        self.monitor = str(monitor)
        self.mode = resolve_mode(self.monitor, mode)
        self.save_best_only = bool(save_best_only)
        self.save_last = bool(save_last)
        self.best: float = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None

    @property
    def directory(self) -> Path:
        return self.path if self.is_dir else self.path.parent

    def _format(self, epoch: int, logs: Logs) -> Path:
        try:
            return Path(str(self.path).format(**{**logs, "epoch": epoch + 1}))
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"ModelCheckpoint: cannot fill {str(self.path)!r} from the logs {sorted(logs)}: {err}") from None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        targets: list[tuple[Path, str]] = []
        needs_best = self.is_dir or self.save_best_only
        if needs_best:
            value = _monitored("ModelCheckpoint", self.monitor, logs)
            if _improves(value, self.best, self.mode):
                targets.append((self.path / "best.safetensors" if self.is_dir else self._format(epoch, logs), "best"))
        if not self.save_best_only:
            per_epoch = self.path / f"epoch-{epoch + 1:04d}.safetensors" if self.is_dir else self._format(epoch, logs)
            targets.append((per_epoch, "epoch"))
        if self.save_last:
            targets.append((self.directory / "last.safetensors", "last"))
        if not targets:
            return
        state = self.model.state_dict()
        if not _is_finite(list(state.values())):
            warnings.warn(
                f"ModelCheckpoint: the weights after epoch {epoch + 1} contain NaN or inf; "
                f"{', '.join(str(p) for p, _ in targets)} not written",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        from gradwise.io import save

        self.directory.mkdir(parents=True, exist_ok=True)
        metadata = {"epoch": str(epoch)}
        if self.monitor in logs:
            metadata[self.monitor] = repr(float(logs[self.monitor]))
        for path, kind in targets:
            path.parent.mkdir(parents=True, exist_ok=True)
            save(state, path, metadata={**metadata, "checkpoint": kind})
            if kind == "best":
                self.best, self.best_epoch = float(logs[self.monitor]), epoch

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = None if state["best_epoch"] is None else int(state["best_epoch"])

    def __repr__(self) -> str:
        return (
            f"ModelCheckpoint({str(self.path)!r}, monitor={self.monitor!r}, mode={self.mode!r}, "
            f"save_best_only={self.save_best_only}, save_last={self.save_last})"
        )


# -------------------------------------------------------------------------------- TerminateOnNaN


def _forward_steps(layer: Layer, prefix: str = "") -> Iterator[tuple[str, Layer]]:
    """The layers a forward pass runs through, in order: nested Sequentials are opened up."""
    if isinstance(layer, Sequential):
        for name, child in layer.named_children():
            yield from _forward_steps(child, f"{prefix}.{name}" if prefix else name)
    else:
        yield prefix, layer


class TerminateOnNaN(Callback):
    """Stop training at the first non-finite loss, and say which batch and which layer went bad.

    Two checks:

    - **a NaN or infinite batch loss** (`on_train_diverged`, called by the trainer before that
      batch's update): the weights are still the last finite ones. BatchNorm running statistics,
      which the failing forward pass already updated, are put back (a copy of the buffers is kept
      before every batch: a few vectors). The failing batch is then run again, layer by layer, on
      a copy of the model (nested `Sequential`\\ s opened up), and the first layer whose parameter
      or output is non-finite is named (or the input, or the loss itself on finite scores).
      Training then stops cleanly: `fit` returns instead of raising `TrainingDiverged`;
    - **non-finite parameters after an update** (`on_train_batch_end`, with `check_parameters`;
      one reduction per parameter per step): the parameter whose gradient went non-finite first
      in the backward pass is named, and training stops after this batch. The weights in memory
      are then non-finite: load the best checkpoint.

    Nothing is written to disk by this callback, and the trainer's checkpoints refuse non-finite
    weights, so the last good checkpoint stays as it was. The message is printed to stderr
    (`verbose`), kept in `message` and `report`, and appended to the `TrainingDiverged` message.

    Parameters
    ----------
    check_parameters : bool, default True
    verbose : bool, default True

    Attributes
    ----------
    report : dict or None
        ``{"epoch", "batch", "loss", "where", "layer", "detail"}`` of the stop (0-based indices);
        ``where`` is ``"input"``, ``"parameter"``, ``"output"``, ``"gradient"``, ``"loss"`` or
        ``None`` when the re-run did not reproduce the problem (dropout draws differ).
    message : str or None
    """

    def __init__(self, check_parameters: bool = True, verbose: bool = True) -> None:
        super().__init__()
        self.check_parameters = bool(check_parameters)
        self.verbose = bool(verbose)
        self.report: dict[str, Any] | None = None
        self.message: str | None = None
        self._epoch: int = 0
        self._buffers: dict[str, np.ndarray] = {}
        self._watch: _StepWatch = _StepWatch()

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._watch.last = getattr(self.trainer, "global_step", None)

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        # Running statistics are updated by the forward pass itself, before the loss is known.
        self._buffers = {k: np.array(v, copy=True) for k, v in self.model.named_buffers()}

    def on_train_diverged(self, error: TrainingDiverged, inputs: Any, targets: Any) -> bool:
        if self._buffers:
            self.model.load_state_dict(self._buffers, strict=False)
        where, layer, detail = self.diagnose(inputs, targets)
        self._stop(error.epoch, error.batch, error.loss, where, layer, detail)
        error.args = (f"{error.args[0]} {detail}" if error.args else detail,)
        error.layer = layer  # type: ignore[attr-defined]
        return True

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        loss = float((logs or {}).get("loss", 0.0))
        stepped = self._watch.stepped(self.trainer)
        if math.isfinite(loss) and not (self.check_parameters and stepped):
            return
        params = list(self.model.named_parameters())
        # A sum is one pass with no temporary array; a finite sum proves every entry finite.
        if math.isfinite(loss) and all(math.isfinite(float(np.sum(p.data))) for _, p in params):
            return
        bad_params = [n for n, p in params if not _is_finite(p.data)]
        if math.isfinite(loss) and not bad_params:
            return  # the sum overflowed on finite values
        bad_grads = [n for n, p in reversed(params) if not _is_finite(p.grad)]
        if bad_grads:
            name, where = bad_grads[0], "gradient"
            detail = (
                f"The gradient of {name!r} was the first to go non-finite in the backward pass "
                f"({len(bad_grads)} non-finite gradient(s))."
            )
        elif bad_params:
            name, where = bad_params[0], "parameter"
            detail = f"Parameter {name!r} is non-finite after the update."
        else:
            name, where, detail = "", None, "The parameters and gradients are finite."
        layer = name.rpartition(".")[0]
        if bad_params:
            detail += " The weights in memory are non-finite; the checkpoints on disk were not touched."
        self._stop(self._epoch, batch, loss, where, layer, detail)
        _trainer(self).stop_training = True

    def diagnose(self, inputs: Any, targets: Any = None) -> tuple[str | None, str | None, str]:
        """Re-run a batch's forward pass (train mode) on a copy of the model, layer by layer.

        Returns
        -------
        (where, layer, detail)
            ``where`` in ``{"input", "parameter", "output", "loss", None}``, the dotted name of
            the layer (``""`` for a model that is not a `Sequential`) and a sentence for people.
        """
        model = copy.deepcopy(self.model).train()
        if not _is_finite(inputs):
            return "input", None, "The input batch itself contains NaN or inf."
        dtype = model.dtype
        x = inputs
        if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating) and x.dtype != dtype:
            x = x.astype(dtype)  # as the trainer casts it
        for name, layer in _forward_steps(model):
            label = f"layer {name!r} ({type(layer).__name__})" if name else f"the model ({type(layer).__name__})"
            for pname, p in layer.named_parameters(name):
                if not _is_finite(p.data):
                    return "parameter", name, f"First non-finite: parameter {pname!r} of {label}."
            with np.errstate(all="ignore"):
                x = layer.forward(x)
            if not _is_finite(x):
                return "output", name, f"First non-finite: the output of {label}."
        loss = getattr(self.trainer, "loss", None)
        if loss is not None and targets is not None:
            with np.errstate(all="ignore"):
                value = float(copy.deepcopy(loss).forward(x, targets))
            if not math.isfinite(value):
                return "loss", None, (
                    f"The model's outputs are finite; the loss ({type(loss).__name__}) is {value}: "
                    f"check the targets and that the loss matches the model's output."
                )
        return None, None, "Re-run on a copy of the model, this batch stayed finite (other dropout masks?)."

    def _stop(self, epoch: int, batch: int, loss: float, where: str | None, layer: str | None, detail: str) -> None:
        self.report = {"epoch": epoch, "batch": batch, "loss": loss, "where": where, "layer": layer, "detail": detail}
        self.message = f"TerminateOnNaN: epoch {epoch + 1}, batch {batch + 1}: loss {loss}. {detail} Training stopped."
        if self.verbose:
            print(self.message, file=sys.stderr)

    def __repr__(self) -> str:
        return f"TerminateOnNaN(check_parameters={self.check_parameters}, verbose={self.verbose})"


# -------------------------------------------------------------------------------- EMA


class EMA(Callback):
    r"""Exponential moving average of the weights (Polyak averaging), evaluated in their place.

    After every optimizer step :math:`t > t_0` (`start_step`; with gradient accumulation, only
    the batches that end with an update count), each parameter's shadow becomes

    .. math:: \bar\theta_t = \beta\,\bar\theta_{t-1} + (1 - \beta)\,\theta_t

    with :math:`\beta` = `decay` (Polyak & Juditsky, 1992; as ``tf.train.ExponentialMovingAverage``
    and ``torch.optim.swa_utils.get_ema_multi_avg_fn``). Until step :math:`t_0` the shadow
    follows the weights exactly, so averaging starts from the weights of step :math:`t_0`.

    With ``bias_correction=True`` the shadow starts at zero instead and the weights used are
    :math:`\bar\theta_n / (1 - \beta^n)` after :math:`n` averaged steps (Kingma & Ba, 2015, sec.
    7.2: the Adam-style correction); early on this is a plain average of the steps so far rather
    than an average leaning on the starting weights.

    Only parameters are averaged: buffers (BatchNorm running statistics) already are running
    averages and stay as they are (torch's ``AveragedModel(use_buffers=False)``).

    ``use_for_eval=True`` swaps the averaged weights in for every `Trainer.evaluate` (so
    ``val_*`` metrics are the EMA's) and swaps the raw ones back after. Elsewhere use `apply` /
    `restore`, or ``with ema.averaged(): ...``. The trainer's best/last checkpoints hold the raw
    weights; save the averaged ones with ``with ema.averaged(): gw.io.save(model, path)``.

    Parameters
    ----------
    decay : float in [0, 1), default 0.999
    use_for_eval : bool, default True
    start_step : int, default 0
    bias_correction : bool, default False

    Attributes
    ----------
    shadow : dict of str to np.ndarray
        The average, by parameter name, in each parameter's dtype.
    step, num_updates : int
        Optimizer steps seen, and steps averaged.
    """

    def __init__(
        self, decay: float = 0.999, use_for_eval: bool = True, start_step: int = 0, bias_correction: bool = False
    ) -> None:
        super().__init__()
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 <= decay < 1:
            raise ValueError(f"{decay=} must be in [0, 1)")
        self.decay: float = float(decay)
        self.use_for_eval: bool = bool(use_for_eval)
        self.start_step: int = _count("start_step", start_step)
        self.bias_correction: bool = bool(bias_correction)
        self.shadow: dict[str, np.ndarray] = {}
        self.step: int = 0
        self.num_updates: int = 0
        self._backup: dict[str, np.ndarray] | None = None
        self._swapped_for_test: bool = False
        self._scratch: np.ndarray = np.empty(0)
        self._watch: _StepWatch = _StepWatch()

    def _params(self) -> dict[str, Any]:
        return dict(self.model.named_parameters())

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._watch.last = getattr(self.trainer, "global_step", None)
        params = self._params()
        if not self.shadow:
            self.shadow = {n: p.data.copy() for n, p in params.items()}
        elif set(self.shadow) != set(params):
            raise ValueError(
                f"EMA: the averaged weights are for parameters {sorted(self.shadow)}, the model has {sorted(params)}"
            )

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if self._backup is not None:
            raise RuntimeError("EMA: the averaged weights are applied during training; call restore() first")
        if not self._watch.stepped(self.trainer):
            return  # gradient accumulation: no update after this batch
        self.step += 1
        params = self._params()
        if self.step <= self.start_step:
            for n, p in params.items():
                self.shadow[n][...] = p.data
            return
        if self.num_updates == 0 and self.bias_correction:
            for s in self.shadow.values():
                s.fill(0)
        self.num_updates += 1
        d = self.decay
        for n, p in params.items():
            s = self.shadow[n]
            if self._scratch.size < s.size or self._scratch.dtype != s.dtype:
                self._scratch = np.empty(max(s.size, self._scratch.size), dtype=s.dtype)
            tmp = self._scratch[: s.size].reshape(s.shape)
            np.multiply(p.data, 1.0 - d, out=tmp)
            s *= d
            s += tmp

    def averaged_weights(self) -> dict[str, np.ndarray]:
        """The weights `apply` writes: the shadow, bias-corrected if asked (copies)."""
        if self.bias_correction and self.num_updates > 0:
            c = 1.0 - self.decay**self.num_updates
            return {n: (s / c).astype(s.dtype) for n, s in self.shadow.items()}
        return {n: s.copy() for n, s in self.shadow.items()}

    def apply(self) -> None:
        """Put the averaged weights into the model (in place), keeping the raw ones for `restore`."""
        if self._backup is not None:
            raise RuntimeError("EMA.apply: the averaged weights are already applied")
        if not self.shadow:
            raise RuntimeError("EMA.apply: nothing averaged yet (train first, or load_state_dict)")
        params = self._params()
        self._backup = {n: p.data.copy() for n, p in params.items()}
        for n, w in self.averaged_weights().items():
            params[n].data[...] = w

    def restore(self) -> None:
        """Put back the raw weights that `apply` replaced."""
        if self._backup is None:
            raise RuntimeError("EMA.restore: the averaged weights are not applied")
        for n, p in self._params().items():
            p.data[...] = self._backup[n]
        self._backup = None

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """``with ema.averaged(): ...`` runs the block with the averaged weights in the model."""
        self.apply()
        try:
            yield
        finally:
            self.restore()

    def on_test_begin(self, logs: Logs | None = None) -> None:
        if self.use_for_eval and self.shadow and self._backup is None:
            self.apply()
            self._swapped_for_test = True

    def on_test_end(self, logs: Logs | None = None) -> None:
        if self._swapped_for_test:
            self._swapped_for_test = False
            self.restore()

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "num_updates": self.num_updates,
            "shadow": {n: s.copy() for n, s in self.shadow.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.step = int(state["step"])
        self.num_updates = int(state["num_updates"])
        self.shadow = {n: np.array(s, copy=True) for n, s in state["shadow"].items()}

    def __repr__(self) -> str:
        return (
            f"EMA(decay={self.decay}, use_for_eval={self.use_for_eval}, start_step={self.start_step}, "
            f"bias_correction={self.bias_correction})"
        )


# -------------------------------------------------------------------------------- CSVLogger


class CSVLogger(Callback):
    """Write one CSV row per epoch: the epoch's logs, as in ``history.csv`` (Keras' CSVLogger).

    The whole file is rewritten atomically after every epoch (a temporary file, fsync, rename;
    `gradwise.training.rundir.atomic_write_bytes`): a crash never leaves a torn row, and a column
    that appears later (a callback's key) widens the header instead of misaligning rows. Floats
    are written with ``repr`` and read back exactly.

    Parameters
    ----------
    path : path-like
        Its directory is created if missing.
    append : bool, default False
        Keep the rows already in the file (continuing an earlier run); otherwise the file is
        emptied when training starts. Later `fit` calls on the same trainer always append.

    A resumed run (`load_state_dict`) keeps exactly the rows written up to the checkpoint and drops
    any written after it, so the file matches the resumed history.
    """

    def __init__(self, path: str | os.PathLike[str], append: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.append = bool(append)
        self.rows: list[dict[str, Any]] = []
        self._started = False
        self._resume_rows: int | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        if self._started:
            return
        from gradwise.training.rundir import atomic_write_bytes, read_csv_rows

        self._started = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing = read_csv_rows(self.path) if self.path.is_file() and self.path.stat().st_size else []
        if self._resume_rows is not None:
            if len(existing) < self._resume_rows:
                raise ValueError(
                    f"CSVLogger: {self.path} has {len(existing)} rows, fewer than the "
                    f"{self._resume_rows} written before the checkpoint"
                )
            self.rows = existing[: self._resume_rows]
            self._write()
        elif self.append:
            self.rows = existing
        else:
            self.rows = []
            atomic_write_bytes(self.path, b"")

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.rows.append(dict(logs or {}))
        self._write()

    def _write(self) -> None:
        from gradwise.training.rundir import atomic_write_bytes, rows_to_csv

        atomic_write_bytes(self.path, rows_to_csv(self.rows) if self.rows else b"")

    def state_dict(self) -> dict[str, Any]:
        return {"rows": len(self.rows)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._resume_rows = int(state["rows"])
        self._started = False

    def __repr__(self) -> str:
        return f"CSVLogger({str(self.path)!r}, append={self.append})"


# Built-in callbacks that live in their own files, importable from here (after `Callback` exists,
# which they subclass).
from gradwise.training.schedule_callbacks import CycleMomentum  # noqa: E402
from gradwise.training.schedule_callbacks import ReduceLROnPlateau  # noqa: E402
