"""`Trainer`: the training loop, evaluation and prediction; `History`: what the loop recorded.

One training step, in the order the data flows (``docs/training.md``)::

    scores = model.forward(xb)                 # train mode
    loss_value = loss.forward(scores, yb) (+ penalty.value(params))
    optimizer.zero_grad()
    model.backward(loss.backward(), input_grad=False)  # layers add to Parameter.grad
    penalty.backward(params)
    clip_grad_norm(params, max_norm)           # or clip_grad_value, if asked
    optimizer.step()

With ``accumulate=k`` the gradients of k batches are summed before one update (`Trainer`); with a
run directory, resumable checkpoints are written as training goes (``docs/checkpoints.md``). The
step itself is in ``steps.py``; with ``distributed=True``, ``distributed_steps.py`` splits each
batch across MPI ranks (``docs/distributed.md``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.core import Layer
from gradwise.training import checkpoint
from gradwise.training.callbacks import Callback, CallbackList
from gradwise.training import steps
from gradwise.training.divergence import TrainingDiverged
from gradwise.training.history import History
from gradwise.training.metrics import EpochAccumulator, check_metrics
from gradwise.training.steps import cast
from gradwise.training.progress import Progress, make_progress
from gradwise.training.rundir import RunDir, RunRecorder

if TYPE_CHECKING:
    from gradwise.distributed import Communicator, DataParallel
    from gradwise.losses import Loss, Penalty
    from gradwise.optim import Optimizer

__all__ = ["History", "Trainer", "TrainingDiverged"]  # History is re-exported from history.py

Metric = Callable[[np.ndarray, np.ndarray], float]


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
    clip_grad_norm, clip_grad_value : float, optional
        Clip gradients before each ``optimizer.step()`` (`gradwise.optim.clip`), by global 2-norm
        (its value before clipping is the batch logs' ``grad_norm``) or entry-wise; at most one.
    checkpoint_every : int, optional
        A run directory gets a resumable checkpoint (`gradwise.training.checkpoint`) after every
        epoch; this adds one every `checkpoint_every` optimizer steps (``docs/checkpoints.md``).
    keep_checkpoints : int
        Resumable checkpoints kept (>= 1): ``latest`` and older ones to fall back to if it is damaged.
    distributed : bool or Communicator
        Data-parallel training over MPI (``docs/distributed.md``): True uses every process of the
        ``mpiexec`` launch (`gradwise.distributed.Communicator`), or give a Communicator. Each
        global batch of the training loader is split across the ranks and their gradients summed
        by one all-reduce per step; rank 0's initial weights are broadcast; only rank 0 writes
        `run_dir` (and shows progress): on the other ranks it is None. Every rank must build the
        same model, optimizer, callbacks and loaders (same seed) and make the same calls.
    plot : callable, optional
        ``plot(run_path)`` draws ``RUN/plots`` when `fit` ends (`gradwise.viz.plot_run`, as
        ``gradwise train`` passes); without it, ``gradwise plot RUN`` draws them later.
    accumulate : int
        Sum the gradients of `accumulate` consecutive batches of an epoch, then update once: for
        a mean loss, the update of one batch of all their samples. ``global_step`` counts updates,
        the history and batch hooks batches; ``stop_training`` waits for the group's update.

    Attributes
    ----------
    history : History
        Accumulates over successive `fit` calls, which continue the epoch count.
    epoch : int
        Number of epochs completed.
    global_step : int
        Number of optimizer steps (updates) taken.
    stop_training : bool
        Set it (from a callback) to end `fit` after the current batch or epoch.
    best_value, best_epoch
        The best `monitor` value and its epoch, when a run directory is used.
    run_summary : dict
        What was last written to ``metrics.json`` (add test metrics and write it again).
    rank, world_size : int
        This process's rank and the number of ranks (0 and 1 unless `distributed`).
    """

    def __init__(
        self,
        model: Layer,
        loss: Loss,
        optimizer: Optimizer,
        *,
        metrics: Sequence[Metric] = (),
        callbacks: Sequence[Callback] = (),
        penalty: Penalty | None = None,
        progress: bool = True,
        run_dir: RunDir | str | os.PathLike[str] | None = None,
        monitor: str = "val_loss",
        clip_grad_norm: float | None = None,
        clip_grad_value: float | None = None,
        checkpoint_every: int | None = None,
        accumulate: int = 1,
        keep_checkpoints: int = checkpoint.KEEP,
        plot: Callable[[Path], object] | None = None,
        distributed: bool | Communicator = False,
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
        if penalty is not None and not (
            callable(getattr(penalty, "value", None)) and callable(getattr(penalty, "backward", None))
        ):
            raise TypeError(
                f"Trainer: penalty ({type(penalty).__name__}) needs value(params) and backward(params)"
            )
        for name, v in (("clip_grad_norm", clip_grad_norm), ("clip_grad_value", clip_grad_value)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
                raise ValueError(f"Trainer: {name}={v!r} must be a number > 0")
        if clip_grad_norm is not None and clip_grad_value is not None:
            raise ValueError("Trainer: give clip_grad_norm or clip_grad_value, not both")
        if not (_is_int(accumulate) and accumulate >= 1):
            raise ValueError(f"Trainer: {accumulate=} must be an integer >= 1")
        if checkpoint_every is not None and not (_is_int(checkpoint_every) and checkpoint_every >= 1):
            raise ValueError(f"Trainer: {checkpoint_every=} must be an integer >= 1 (optimizer steps)")
        if checkpoint_every is not None and run_dir is None:
            raise ValueError("Trainer: checkpoint_every needs a run_dir to write the checkpoints into")
        if not (_is_int(keep_checkpoints) and keep_checkpoints >= 1):
            raise ValueError(f"Trainer: {keep_checkpoints=} must be an integer >= 1")
        self.checkpoint_every = None if checkpoint_every is None else int(checkpoint_every)
        self.keep_checkpoints = int(keep_checkpoints)
        self.accumulate = int(accumulate)
        self.clip_grad_norm, self.clip_grad_value = clip_grad_norm, clip_grad_value
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.metrics: list[Metric] = check_metrics(metrics)
        self.penalty = penalty
        self.monitor = str(monitor)
        self._data_parallel: DataParallel | None = None
        self.rank, self.world_size = 0, 1
        if distributed is not False:
            run_dir = self._join(model, distributed, run_dir)
            progress = progress and self.rank == 0
        elif run_dir is not None and not isinstance(run_dir, RunDir):
            run_dir = RunDir.create(run_dir)
        self.progress = bool(progress)
        self.run_dir: RunDir | None = run_dir
        self._recorder = None if run_dir is None else RunRecorder(run_dir, self.monitor, plot=plot)
        self.callbacks = CallbackList(callbacks, trainer=self)
        self.history = History()
        self.epoch = 0
        self.global_step = 0
        self.stop_training = False
        self.run_summary: dict[str, Any] = {}
        self._last_lr = math.nan
        self._validating = False
        self._fit_start_epoch = 0  # where the current fit call began (saved for resuming it)

    def _join(self, model: Layer, distributed: Any, run_dir: Any) -> RunDir | None:
        """Set up data-parallel training; the run directory of this rank (None but on rank 0)."""
        from gradwise.distributed import Communicator, DataParallel

        if distributed is not True and not isinstance(distributed, Communicator):
            raise TypeError(f"Trainer: distributed must be a bool or a Communicator, got {distributed!r}")
        comm = Communicator() if distributed is True else distributed
        self.rank, self.world_size = comm.rank, comm.size
        error = None
        if comm.rank != 0:
            run_dir = None
        elif run_dir is not None and not isinstance(run_dir, RunDir):
            try:  # only rank 0 creates it; if it cannot, every rank stops
                run_dir = RunDir.create(run_dir)
            except (OSError, ValueError) as e:
                error = e
        comm.agree(error, "creating the run directory")
        self._data_parallel = DataParallel(model, comm)  # broadcasts rank 0's weights
        return run_dir

    # ------------------------------------------------------------------ fit
    def fit(
        self, train_loader: Iterable[Any], val_loader: Iterable[Any] | None = None, epochs: int = 1,
        resume_from: str | os.PathLike[str] | checkpoint.Resumable | None = None,
        strict_resume: bool = False,
    ) -> History:
        """Train for `epochs` more epochs.

        Parameters
        ----------
        train_loader : DataLoader (or any iterable of ``(xb, yb)`` batches, ideally with ``len``)
        val_loader : DataLoader, optional
            Evaluated after every epoch (``val_loss``, ``val_<metric>``).
        epochs : int
            Number of epochs to run in this call (>= 1).
        resume_from : path-like, optional
            A run directory (or checkpoint) to continue: this call repeats the interrupted one.
            With everything built as then and the same `epochs`, it ends with the same weights,
            bit for bit, as a run never interrupted (``docs/checkpoints.md``). If ``latest`` is
            damaged, the newest older checkpoint that verifies is used (with `ResumeWarning`s).
        strict_resume : bool
            Stop at a damaged ``latest`` instead of falling back to an older checkpoint.

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
        ValueError
            If the checkpoint to resume from does not fit, or no checkpoint verifies (nothing is
            changed); `CorruptCheckpoint` (a ValueError) with `strict_resume`.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"Trainer.fit: {epochs=} must be an integer >= 1")
        if getattr(train_loader, "y", 0) is None:
            raise ValueError("Trainer.fit: train_loader has no targets (it was built with y=None)")
        self._validating = val_loader is not None
        recorder = self._recorder
        if recorder is not None:
            recorder.begin(self._columns())
        if self._data_parallel is not None:  # rank 0's generators, and the checkpoint rank 0 chose
            from gradwise.training.distributed_steps import start_fit

            resume_from = start_fit(self, train_loader, resume_from, bool(strict_resume))
        point = None if resume_from is None else checkpoint.resume(
            self, train_loader, resume_from, int(epochs), strict=bool(strict_resume)
        )
        self._fit_start_epoch = self.epoch if point is None else point.fit_start_epoch
        stopped = point is not None and point.stopped  # the call being repeated had stopped early
        total = self.epoch if stopped else self._fit_start_epoch + int(epochs)
        n_batches = len(train_loader) if isinstance(train_loader, Sized) else None
        self.stop_training = False
        display = make_progress(self.progress)
        logs: dict[str, Any] = {}
        status = "stopped" if stopped else "completed"
        start = time.perf_counter()
        self.callbacks.on_train_begin({})
        display.start(total, n_batches)
        try:
            for epoch in range(self.epoch, total):
                resumed = point if point is not None and point.batch and epoch == point.epoch else None
                self.callbacks.on_epoch_begin(epoch, {} if resumed is None else {"resumed_at_batch": resumed.batch})
                display.start_epoch(epoch)
                t0 = time.perf_counter()
                logs = {"epoch": epoch}
                logs.update(self._train_epoch(train_loader, epoch, total, n_batches, display, resumed))
                if val_loader is not None:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
                logs["lr"] = self._last_lr
                logs["time"] = time.perf_counter() - t0
                self.epoch = epoch + 1
                self.history.epochs.append(logs)
                self.history.steps.append(self.global_step)
                # Callbacks see (and may extend) the very row that is stored and written below.
                self.callbacks.on_epoch_end(epoch, logs)
                if recorder is not None:
                    recorder.epoch_end(logs, self.model)
                    checkpoint.save(self, train_loader, self.epoch, 0, None)
                display.end_epoch(logs)
                if self.stop_training:
                    status = "stopped"
                    break
        except TrainingDiverged as err:
            if recorder is not None:
                diverged_at = {"epoch": err.epoch, "batch": err.batch, "loss": str(err.loss), "message": str(err)}
                self.run_summary = recorder.finish(
                    self,
                    "diverged",
                    time.perf_counter() - start,
                    columns=self._columns(),
                    diverged_at=diverged_at,
                )
            if not err.handled:
                raise
            status = "diverged"  # stopped cleanly by a callback; the recorder has finished
        finally:
            display.close()
        self.callbacks.on_train_end(logs)
        if recorder is not None and status != "diverged":
            self.run_summary = recorder.finish(self, status, time.perf_counter() - start)
        return self.history

    @property
    def best_value(self) -> float | None:
        """The best `monitor` value so far (None without a run directory)."""
        return None if self._recorder is None else self._recorder.best_value

    @property
    def best_epoch(self) -> int | None:
        """The epoch of `best_value`, whose weights are in ``checkpoints/best.safetensors``."""
        return None if self._recorder is None else self._recorder.best_epoch

    def _train_epoch(
        self, loader: Iterable[Any], epoch: int, total: int, n_batches: int | None, display: Progress,
        resumed: checkpoint.ResumePoint | None = None,
    ) -> dict[str, float]:
        if self._data_parallel is None:
            return steps.train_epoch(self, loader, epoch, total, n_batches, display, resumed)
        from gradwise.training import distributed_steps  # only a distributed trainer loads it

        return distributed_steps.train_epoch(self, loader, epoch, total, n_batches, display, resumed)

    def _current_lr(self) -> float:
        return float(self.optimizer.current_lr(self.optimizer.param_groups[0]))

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
            totals = EpochAccumulator(self.loss, self.metrics)
            for xb, yb in loader:
                scores = self.model.forward(cast(xb, dtype))
                totals.add(float(self.loss.forward(scores, yb)), scores, yb)
        finally:
            self.model.train(was_training)
        results = totals.results("Trainer.evaluate: the loader")
        if self.penalty is not None:
            results["loss"] += float(self.penalty.value(self.model.parameters()))
        self.callbacks.on_test_end(results)
        return results

    def predict(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """The model's outputs for `x`, in eval mode (the previous mode is restored).

        Parameters
        ----------
        x : array_like (N, ...) or DataLoader
            Inputs (a loader's targets are ignored; it must not shuffle); floating inputs are cast
            to the model dtype.
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
        if loader.shuffle:
            raise ValueError("Trainer.predict: the loader shuffles, so outputs would not line up with its x")
        was_training = self.model.training
        self.model.eval()
        try:
            out: np.ndarray | None = None
            start = 0
            for xb, _ in loader:
                scores = np.asarray(self.model.forward(cast(xb, dtype)))
                if out is None:
                    # One output array, filled batch by batch, instead of a list plus a concatenate copy.
                    out = np.empty((loader.num_samples, *scores.shape[1:]), dtype=scores.dtype)
                out[start : start + len(scores)] = scores
                start += len(scores)
        finally:
            self.model.train(was_training)
        assert out is not None  # DataLoader refuses empty inputs
        return out

    def _columns(self) -> list[str]:
        """The columns every epoch row has, for a header written before any row exists."""
        names = ["loss", *(m.__name__ for m in self.metrics)]
        cols = ["epoch", *names]
        if self._validating:
            cols += [f"val_{k}" for k in names]
        return [*cols, "lr", "time"]

    def __repr__(self) -> str:
        metric_names = [m.__name__ for m in self.metrics]
        return (
            f"Trainer(model={type(self.model).__name__}, loss={self.loss!r}, "
            f"optimizer={type(self.optimizer).__name__}, metrics={metric_names}, epochs_done={self.epoch})"
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
