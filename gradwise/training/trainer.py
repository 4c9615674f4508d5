"""`Trainer`: the training loop, evaluation and prediction; `History`: what the loop recorded.

One training step, in the order the data flows (``docs/training.md``)::

    scores = model.forward(xb)                 # train mode
    loss_value = loss.forward(scores, yb) (+ penalty.value(params))
    optimizer.zero_grad()
    model.backward(loss.backward())            # layers accumulate into Parameter.grad
    penalty.backward(params)
    optimizer.step()
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from gradwise.core import Layer
from gradwise.training.callbacks import Callback, CallbackList, resolve_mode
from gradwise.training.progress import Progress, make_progress
from gradwise.training.rundir import RunDir, atomic_write_bytes, read_csv_rows, rows_to_csv

__all__ = ["History", "Trainer", "TrainingDiverged"]

Metric = Callable[[np.ndarray, np.ndarray], float]
# Keys of the epoch logs that are not metrics (so no metric may take these names).
_RESERVED = ("loss", "epoch", "lr", "time")


class TrainingDiverged(FloatingPointError):
    """A training batch produced a NaN or infinite loss.

    Attributes
    ----------
    epoch, batch : int
        0-based indices of the epoch and of the batch within it (the message counts from 1).
    loss : float
        The non-finite loss value.
    """

    def __init__(self, message: str, epoch: int, batch: int, loss: float) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.loss = loss


class History:
    """The record of training: one logs dict per epoch and the loss of every iteration.

    Attributes
    ----------
    epochs : list of dict
        Per epoch, Keras' keys: ``epoch`` (0-based), ``loss``, each metric, ``val_loss`` and
        ``val_<metric>`` when validating, ``lr`` (of the first param group, as used by the epoch's
        last step) and ``time`` (seconds, validation included).
    batch_loss : list of float
        The training loss of every iteration, in order (the last one is non-finite when training
        diverged).
    steps : list of int
        The total number of optimizer steps at the end of each epoch (to place epochs on an
        iteration axis).
    """

    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []
        self.batch_loss: list[float] = []
        self.steps: list[int] = []

    def __getitem__(self, key: str) -> list[Any]:
        """The values of `key` per epoch, e.g. ``history["val_accuracy"]`` (NaN where missing)."""
        if not any(key in row for row in self.epochs):
            raise KeyError(f"{key!r} is not in the history; recorded keys: {self.keys()}")
        return [row.get(key, math.nan) for row in self.epochs]

    def __contains__(self, key: object) -> bool:
        return any(key in row for row in self.epochs)

    def __len__(self) -> int:
        return len(self.epochs)

    def keys(self) -> list[str]:
        """Every recorded key, in first-seen order."""
        seen: dict[str, None] = {}
        for row in self.epochs:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def best(self, monitor: str = "val_loss", mode: str = "auto") -> dict[str, Any]:
        """The logs of the epoch with the best finite `monitor` value (the earliest on a tie).

        Parameters
        ----------
        monitor : str
            A key of the logs.
        mode : {"auto", "min", "max"}
            ``"auto"`` minimizes losses and errors and maximizes everything else.
        """
        mode = resolve_mode(monitor, mode)
        candidates = [row for row in self.epochs if _is_finite(row.get(monitor))]
        if not candidates:
            raise ValueError(f"no epoch has a finite {monitor!r}; recorded keys: {self.keys()}")
        pick = min if mode == "min" else max
        return dict(pick(candidates, key=lambda row: float(row[monitor])))

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the per-epoch rows as CSV (atomically; floats round-trip exactly)."""
        atomic_write_bytes(path, rows_to_csv(self.epochs))

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> History:
        """Read a ``history.csv`` back (per-iteration losses are not in it)."""
        history = cls()
        history.epochs = read_csv_rows(path)
        return history

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epochs)}, iterations={len(self.batch_loss)}, keys={self.keys()})"


class Trainer:
    """Fit a model with a loss and an optimizer; evaluate and predict with it.

    Parameters
    ----------
    model : Layer
    loss : Loss
        ``forward(scores, y) -> float`` and ``backward() -> dL/dscores``.
    optimizer : Optimizer
        Built on ``model.parameters()``.
    metrics : sequence of callables
        ``metric(scores, y) -> float``, each computed per epoch on the whole epoch's scores
        (`gradwise.metrics`). Its ``__name__`` is its key in the logs.
    callbacks : sequence of Callback
        Called at train, epoch, batch and evaluation boundaries (`gradwise.callbacks`).
    penalty : Penalty, optional
        A weight penalty added to the loss (L1, L2, ElasticNet); it is included in ``loss`` and
        ``val_loss``, as in Keras.
    progress : bool
        Show a progress bar (a line per epoch when stdout is not a terminal).
    run_dir : RunDir or path, optional
        Where to write ``history.csv``, the best and last weights and the plots. A path is
        created with `RunDir.create`, which refuses a non-empty directory.
    monitor : str
        The logs key that decides the best checkpoint (minimized for losses and errors,
        maximized otherwise). Without a validation loader, ``"val_X"`` falls back to ``"X"``
        with a warning.

    Attributes
    ----------
    history : History
        Accumulates over successive `fit` calls, which continue the epoch count.
    epoch : int
        Number of epochs completed.
    global_step : int
        Number of optimizer steps taken.
    stop_training : bool
        Set it (from a callback) to end `fit` after the current batch or epoch.
    best_value, best_epoch
        The best `monitor` value and its epoch, when a run directory is used.
    run_summary : dict
        What was last written to ``metrics.json`` (add test metrics and write it again).
    """

    def __init__(
        self,
        model: Layer,
        loss: Any,
        optimizer: Any,
        *,
        metrics: Sequence[Metric] = (),
        callbacks: Sequence[Callback] = (),
        penalty: Any = None,
        progress: bool = True,
        run_dir: RunDir | str | os.PathLike[str] | None = None,
        monitor: str = "val_loss",
    ) -> None:
        if not isinstance(model, Layer):
            raise TypeError(f"Trainer: model must be a gradwise Layer, got {type(model).__name__}")
        for name, obj, methods in (
            ("loss", loss, ("forward", "backward")),
            ("optimizer", optimizer, ("zero_grad", "step")),
        ):
            missing = [m for m in methods if not callable(getattr(obj, m, None))]
            if missing:
                raise TypeError(f"Trainer: {name} ({type(obj).__name__}) has no method(s) {missing}")
        if penalty is not None and not (callable(getattr(penalty, "value", None)) and callable(getattr(penalty, "backward", None))):
            raise TypeError(f"Trainer: penalty ({type(penalty).__name__}) needs value(params) and backward(params)")
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.metrics: list[Metric] = _check_metrics(metrics)
        self.penalty = penalty
        self.progress = bool(progress)
        self.monitor = str(monitor)
        if run_dir is None or isinstance(run_dir, RunDir):
            self.run_dir = run_dir
        else:
            self.run_dir = RunDir.create(run_dir)
        self.callbacks = CallbackList(callbacks, trainer=self)
        self.history = History()
        self.epoch = 0
        self.global_step = 0
        self.stop_training = False
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.run_summary: dict[str, Any] = {}
        self._last_lr = math.nan
        self._validating = False

    # ------------------------------------------------------------------ fit
    def fit(self, train_loader: Iterable[Any], val_loader: Iterable[Any] | None = None, epochs: int = 1) -> History:
        """Train for `epochs` more epochs.

        Parameters
        ----------
        train_loader : DataLoader (or any iterable of ``(xb, yb)`` batches, ideally with ``len``)
        val_loader : DataLoader, optional
            Evaluated after every epoch (``val_loss``, ``val_<metric>``).
        epochs : int
            Number of epochs to run in this call (>= 1).

        Returns
        -------
        History
            `self.history`.

        Raises
        ------
        TrainingDiverged
            As soon as a batch loss is NaN or infinite (before that batch's update). The run
            directory keeps its best checkpoint; ``history.csv``, ``metrics.json`` (status
            "diverged") and the plots are written first.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"Trainer.fit: {epochs=} must be an integer >= 1")
        if getattr(train_loader, "y", 0) is None:
            raise ValueError("Trainer.fit: train_loader has no targets (it was built with y=None)")
        self._validating = val_loader is not None
        if self.run_dir is not None:
            monitor, mode = self._resolve_monitor(self._validating)
        else:
            monitor, mode = self.monitor, resolve_mode(self.monitor, "auto")
        total = self.epoch + int(epochs)
        n_batches = len(train_loader) if hasattr(train_loader, "__len__") else None
        self.stop_training = False
        display = make_progress(self.progress)
        logs: dict[str, Any] = {}
        status = "completed"
        start = time.perf_counter()
        self.callbacks.on_train_begin({})
        display.start(total, n_batches)
        try:
            for epoch in range(self.epoch, total):
                self.callbacks.on_epoch_begin(epoch, {})
                display.start_epoch(epoch)
                t0 = time.perf_counter()
                logs = {"epoch": epoch}
                logs.update(self._train_epoch(train_loader, epoch, total, n_batches, display))
                if val_loader is not None:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
                logs["lr"] = self._last_lr
                logs["time"] = time.perf_counter() - t0
                self.epoch = epoch + 1
                self.history.epochs.append(logs)
                self.history.steps.append(self.global_step)
                # Callbacks see (and may extend) the very row that is stored and written below.
                self.callbacks.on_epoch_end(epoch, logs)
                if self.run_dir is not None:
                    self._record_epoch(logs, monitor, mode)
                display.end_epoch(logs)
                if self.stop_training:
                    status = "stopped"
                    break
        except TrainingDiverged as err:
            if self.run_dir is not None:
                self._finish_run("diverged", monitor, mode, time.perf_counter() - start, err)
            raise
        finally:
            display.close()
        self.callbacks.on_train_end(logs)
        if self.run_dir is not None:
            self._finish_run(status, monitor, mode, time.perf_counter() - start)
        return self.history

    def _train_epoch(
        self, loader: Iterable[Any], epoch: int, total: int, n_batches: int | None, display: Progress
    ) -> dict[str, float]:
        model, loss, opt, penalty = self.model, self.loss, self.optimizer, self.penalty
        params = model.parameters()
        dtype = model.dtype
        sum_reduction = getattr(loss, "reduction", "mean") == "sum"
        total_loss = 0.0
        seen = 0
        scores_seen: list[np.ndarray] = []
        labels_seen: list[np.ndarray] = []
        for batch, (xb, yb) in enumerate(loader):
            n = len(yb)
            self.callbacks.on_train_batch_begin(batch, {"size": n})
            model.train()  # every batch: a callback may have switched modes
            scores = model.forward(_cast(xb, dtype))
            loss_value = float(loss.forward(scores, yb))
            if penalty is not None:
                loss_value += float(penalty.value(params))
            self.history.batch_loss.append(loss_value)
            if not math.isfinite(loss_value):
                raise self._diverged(epoch, total, batch, n_batches, loss_value)
            opt.zero_grad()
            model.backward(loss.backward())
            if penalty is not None:
                penalty.backward(params)
            self._last_lr = self._current_lr()
            opt.step()
            self.global_step += 1
            if self.metrics:
                # A copy: a layer may hand back a buffer it overwrites on the next forward.
                scores_seen.append(np.array(scores, copy=True))
                labels_seen.append(np.asarray(yb))
            total_loss += loss_value if sum_reduction else loss_value * n
            seen += n
            self.callbacks.on_train_batch_end(batch, {"loss": loss_value, "size": n})
            display.update(batch + 1, total_loss if sum_reduction else total_loss / seen)
            if self.stop_training:
                break
        if seen == 0:
            raise ValueError("Trainer.fit: train_loader yielded no batches")
        results = {"loss": total_loss if sum_reduction else total_loss / seen}
        if self.metrics:
            results.update(self._compute_metrics(scores_seen, labels_seen))
        return results

    def _current_lr(self) -> float:
        current_lr = getattr(self.optimizer, "current_lr", None)
        groups = getattr(self.optimizer, "param_groups", None)
        if callable(current_lr) and groups:
            return float(current_lr(groups[0]))
        return math.nan

    def _diverged(self, epoch: int, total: int, batch: int, n_batches: int | None, value: float) -> TrainingDiverged:
        where = f"epoch {epoch + 1}/{total}, batch {batch + 1}/{n_batches if n_batches is not None else '?'}"
        lr = self._current_lr()
        hint = f"lower the learning rate (it is {lr:g}; try 3-10x smaller)" if math.isfinite(lr) else "lower the learning rate"
        kept = ""
        if self.run_dir is not None:
            kept = f" The best checkpoint in {str(self.run_dir.path)!r} was left untouched."
        message = (
            f"training diverged at {where}: the loss is {value}. To fix it, {hint}; also check the "
            f"inputs are standardized and the loss matches the model's output.{kept}"
        )
        return TrainingDiverged(message, epoch=epoch, batch=batch, loss=value)

    # ------------------------------------------------------------------ evaluate / predict
    def evaluate(self, loader: Iterable[Any]) -> dict[str, float]:
        """Loss and metrics over a whole loader, in eval mode (the previous mode is restored).

        Returns
        -------
        dict
            ``{"loss": ..., <metric>: ...}`` without the ``val_`` prefix. The loss is the mean
            over samples (the total for a ``reduction="sum"`` loss), plus the penalty if any.
        """
        if getattr(loader, "y", 0) is None:
            raise ValueError("Trainer.evaluate: the loader has no targets (it was built with y=None)")
        self.callbacks.on_test_begin({})
        was_training = self.model.training
        self.model.eval()
        try:
            dtype = self.model.dtype
            sum_reduction = getattr(self.loss, "reduction", "mean") == "sum"
            total_loss = 0.0
            seen = 0
            scores_seen: list[np.ndarray] = []
            labels_seen: list[np.ndarray] = []
            for xb, yb in loader:
                n = len(yb)
                scores = self.model.forward(_cast(xb, dtype))
                value = float(self.loss.forward(scores, yb))
                total_loss += value if sum_reduction else value * n
                seen += n
                if self.metrics:
                    scores_seen.append(np.array(scores, copy=True))
                    labels_seen.append(np.asarray(yb))
        finally:
            self.model.train(was_training)
        if seen == 0:
            raise ValueError("Trainer.evaluate: the loader yielded no batches")
        results = {"loss": total_loss if sum_reduction else total_loss / seen}
        if self.penalty is not None:
            results["loss"] += float(self.penalty.value(self.model.parameters()))
        if self.metrics:
            results.update(self._compute_metrics(scores_seen, labels_seen))
        self.callbacks.on_test_end(results)
        return results

    def predict(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """The model's outputs for `x`, in eval mode (the previous mode is restored).

        Parameters
        ----------
        x : array_like (N, ...) or DataLoader
            Inputs (a loader's targets are ignored); floating inputs are cast to the model dtype.
        batch_size : int
            Samples per forward pass (bounds the memory, not the result).

        Returns
        -------
        np.ndarray
            (N, ...) scores, as the model outputs them (apply softmax/sigmoid yourself).
        """
        from gradwise.data.loader import DataLoader

        dtype = self.model.dtype
        loader = x if isinstance(x, DataLoader) else DataLoader(x, None, batch_size=batch_size, dtype=dtype)
        was_training = self.model.training
        self.model.eval()
        try:
            out: np.ndarray | None = None
            start = 0
            for xb, _ in loader:
                scores = np.asarray(self.model.forward(_cast(xb, dtype)))
                if out is None:
                    # One output array, filled batch by batch, instead of a list plus a concatenate copy.
                    out = np.empty((loader.num_samples, *scores.shape[1:]), dtype=scores.dtype)
                out[start : start + len(scores)] = scores
                start += len(scores)
        finally:
            self.model.train(was_training)
        assert out is not None  # DataLoader refuses empty inputs
        return out

    def _compute_metrics(self, scores: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
        all_scores = np.concatenate(scores) if len(scores) > 1 else scores[0]
        all_labels = np.concatenate(labels) if len(labels) > 1 else labels[0]
        return {m.__name__: float(m(all_scores, all_labels)) for m in self.metrics}

    # ------------------------------------------------------------------ run directory
    def _resolve_monitor(self, validating: bool) -> tuple[str, str]:
        available = ["loss", *(m.__name__ for m in self.metrics)]
        if validating:
            available += [f"val_{k}" for k in available]
        monitor = self.monitor
        if monitor not in available:
            if monitor.startswith("val_") and monitor[4:] in available:
                warnings.warn(
                    f"Trainer: monitor={monitor!r} needs a val_loader; choosing the best checkpoint "
                    f"by {monitor[4:]!r} (training data) instead",
                    stacklevel=3,
                )
                monitor = monitor[4:]
            else:
                raise ValueError(f"Trainer: {monitor=} is not one of the logged values {available}")
        return monitor, resolve_mode(monitor, "auto")

    def _record_epoch(self, logs: Mapping[str, Any], monitor: str, mode: str) -> None:
        assert self.run_dir is not None
        self.run_dir.append_history(logs)
        value = logs.get(monitor)
        if not _is_finite(value):
            return
        value = float(value)
        if self.best_value is not None and not (value < self.best_value if mode == "min" else value > self.best_value):
            return
        state = self.model.state_dict()
        if _all_finite(state):  # never replace a good checkpoint with non-finite weights
            self.run_dir.save_weights(state, "best")
            self.best_value, self.best_epoch = value, int(logs["epoch"])

    def _finish_run(
        self, status: str, monitor: str, mode: str, wall_time: float, error: TrainingDiverged | None = None
    ) -> None:
        from gradwise.viz import plot_history

        assert self.run_dir is not None
        run = self.run_dir
        if error is not None:
            # Completed epochs are already in history.csv; this makes sure the file exists even
            # when the very first epoch diverged.
            run.write_history(self.history.epochs, columns=self._columns())
        state = self.model.state_dict()
        if status != "diverged" and _all_finite(state):
            run.save_weights(state, "last")
        last = self.history.epochs[-1] if self.history.epochs else {}
        summary: dict[str, Any] = {
            "status": status,
            "epochs": self.epoch,
            "steps": self.global_step,
            "wall_time": wall_time,
            "monitor": monitor,
            "mode": mode,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "train": {k: v for k, v in last.items() if k not in ("epoch", "lr", "time") and not k.startswith("val_")},
            "val": {k[4:]: v for k, v in last.items() if k.startswith("val_")},
        }
        if error is not None:
            summary["diverged_at"] = {"epoch": error.epoch, "batch": error.batch, "loss": str(error.loss)}
        run.write_metrics(summary)
        self.run_summary = summary
        plot_history(self.history, run.plots_dir)

    def _columns(self) -> list[str]:
        names = ["loss", *(m.__name__ for m in self.metrics)]
        cols = ["epoch", *names]
        if self._validating:
            cols += [f"val_{k}" for k in names]
        return [*cols, "lr", "time"]

    def __repr__(self) -> str:
        metric_names = [m.__name__ for m in self.metrics]
        return (
            f"Trainer(model={type(self.model).__name__}, loss={self.loss!r}, optimizer={type(self.optimizer).__name__}, "
            f"metrics={metric_names}, epochs_done={self.epoch})"
        )


def _check_metrics(metrics: Sequence[Metric]) -> list[Metric]:
    checked: list[Metric] = []
    names: set[str] = set()
    for i, m in enumerate(metrics):
        name = getattr(m, "__name__", None)
        if not callable(m) or not isinstance(name, str):
            raise TypeError(f"Trainer: metrics[{i}] must be a function metric(scores, y) -> float, got {m!r}")
        if name == "<lambda>" or not name.isidentifier():
            raise ValueError(
                f"Trainer: metrics[{i}] is named {name!r}; its name becomes its key in the logs, so "
                f"define it with `def` (or set its __name__)"
            )
        if name in _RESERVED or name.startswith("val_"):
            raise ValueError(f"Trainer: metric name {name!r} clashes with a logs key (reserved: {_RESERVED}, 'val_*')")
        if name in names:
            raise ValueError(f"Trainer: two metrics are named {name!r}")
        names.add(name)
        checked.append(m)
    return checked


def _cast(xb: Any, dtype: np.dtype) -> Any:
    """A floating batch in the model's dtype (integer inputs such as indices are left alone)."""
    if isinstance(xb, np.ndarray) and xb.dtype != dtype and np.issubdtype(xb.dtype, np.floating):
        return xb.astype(dtype)
    return xb


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(float(value))


def _all_finite(state: Mapping[str, np.ndarray]) -> bool:
    return all(
        bool(np.isfinite(v).all()) for v in state.values() if np.issubdtype(np.asarray(v).dtype, np.inexact)
    )
