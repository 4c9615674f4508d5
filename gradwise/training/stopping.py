"""Callbacks that stop training: `EarlyStopping` and `TerminateOnNaN` (re-exported by callbacks.py)."""

from __future__ import annotations

import copy
import math
import numbers
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.core import Layer, Sequential
from gradwise.training.callback_base import (
    Callback,
    Logs,
    _count,
    _improves,
    _is_finite,
    _monitored,
    _StepWatch,
    _trainer,
    resolve_mode,
)

if TYPE_CHECKING:
    from gradwise.training.divergence import TrainingDiverged


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
