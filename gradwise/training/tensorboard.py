"""`TensorBoard`: a run's scalars, histograms and update ratios as TensorBoard event files.

Written through tensorboardX's ``SummaryWriter`` (``pip install tensorboardX``, or
``gradwise[tensorboard]``, which adds the ``tensorboard`` viewer too), imported when the first
writer opens, never at ``import gradwise``. The layout is Keras' (``keras.callbacks.TensorBoard``):
two runs, ``LOG_DIR/train`` and ``LOG_DIR/validation``, holding the same tags, so TensorBoard draws
the training and validation curves of a quantity in one chart. What is logged, and at which steps,
is in ``docs/tensorboard.md``.

Every event's step is the trainer's ``global_step`` (optimizer steps taken), the epoch-level ones
included (at the step that ends the epoch; the ``epoch`` scalar maps steps to epochs). One axis for
everything is what lets a resumed run hide what the interrupted one wrote after its checkpoint:
the new writer starts with a ``purge_step`` of the checkpoint's step + 1, and TensorBoard drops
every event of the run at or past it.
"""

from __future__ import annotations

import importlib.util
import math
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np

from gradwise.diagnostics.health import update_ratios
from gradwise.training.callback_base import Callback, Logs
from gradwise.training.histograms import histogram_data

__all__ = ["TensorBoard"]

TRAIN_RUN = "train"
VALIDATION_RUN = "validation"
_NOT_SCALARS = ("epoch", "lr", "time")  # logged under other tags (or not at all)


def _freq(name: str, value: Any, allow_epoch: bool = False) -> int:
    """A logging frequency: an integer >= 0 (0: never); ``"epoch"`` is 0 where it is allowed."""
    if allow_epoch and value == "epoch":
        return 0
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        also = " or 'epoch'" if allow_epoch else ""
        raise ValueError(f"TensorBoard: {name}={value!r} must be an integer >= 0{also}")
    return int(value)


class TensorBoard(Callback):
    """Write loss, metrics, learning rate, histograms and update ratios for ``tensorboard --logdir``.

    Parameters
    ----------
    log_dir : path-like, optional
        Where the ``train`` and ``validation`` runs go; by default ``RUN/tensorboard`` of the
        trainer's run directory (one of the two is required). An existing directory is appended
        to (a resumed run).
    update_freq : int or "epoch"
        Write the batch-level scalars (``batch_loss``, ``batch_learning_rate``, and
        ``batch_grad_norm`` when clipping by norm) every `update_freq` optimizer steps;
        ``"epoch"`` (or 0) writes epoch-level scalars only, as in Keras.
    histogram_freq : int
        Weight and gradient histograms of every parameter every `histogram_freq` epochs (0:
        never), tagged ``weights/<name>`` and ``gradients/<name>`` (no gradient histogram for a
        frozen parameter).
    ratio_freq : int
        Every `ratio_freq` optimizer steps (0: never), the ratio ``||w_after - w_before|| /
        ||w_before||`` of each trainable parameter's update to its weights, tagged
        ``update_ratio/<name>`` (around 1e-3 is healthy: CS231n, "Babysitting the learning
        process"). The weights are copied at the start of the batches that end such a step; a
        parameter whose weights are all zero before the step has no ratio at it.
    bins : int
        At most this many bins per histogram (`gradwise.training.histograms.histogram_data`).
    flush_secs : int
        tensorboardX flushes its queue at least this often; the callback also flushes at every
        epoch end and when training ends or diverges, so a crash loses at most the current epoch.

    Notes
    -----
    Resuming (``Trainer.fit(resume_from=...)``, ``gradwise train --resume``) needs no state of
    the callback's own: the checkpoint restores ``trainer.global_step``, and the new writers start
    with ``purge_step = global_step + 1``, so the steps the interrupted run logged past its
    checkpoint are replaced by the resumed run's, not doubled. The callback can therefore also be
    added to a run that is resumed without it having been there before.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str] | None = None,
        *,
        update_freq: int | str = 1,
        histogram_freq: int = 1,
        ratio_freq: int = 10,
        bins: int = 50,
        flush_secs: int = 30,
    ) -> None:
        super().__init__()
        if importlib.util.find_spec("tensorboardX") is None:
            raise ImportError(
                "TensorBoard needs tensorboardX: pip install tensorboardX (or 'gradwise[tensorboard]', "
                "which adds the tensorboard viewer)"
            )
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.update_freq = _freq("update_freq", update_freq, allow_epoch=True)
        self.histogram_freq = _freq("histogram_freq", histogram_freq)
        self.ratio_freq = _freq("ratio_freq", ratio_freq)
        if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 1:
            raise ValueError(f"TensorBoard: {bins=} must be an integer >= 1")
        if isinstance(flush_secs, bool) or not isinstance(flush_secs, numbers.Integral) or flush_secs < 1:
            raise ValueError(f"TensorBoard: {flush_secs=} must be an integer >= 1 (seconds)")
        self.bins = int(bins)
        self.flush_secs = int(flush_secs)
        self._writers: dict[str, Any] = {}
        self._start_step = 0  # global_step when fit began: a resumed run purges what lies past it
        self._last_step: int | None = None  # global_step at the last batch end (did a step happen?)
        self._window_loss = 0.0  # size-weighted loss of the batches since the last step
        self._window_size = 0
        self._lr = math.nan  # the rate the coming step uses, read before it
        self._before: dict[str, np.ndarray] | None = None  # weights before a step whose ratios we log

    # ------------------------------------------------------------------ writers
    def resolved_log_dir(self) -> Path:
        """`log_dir`, or ``RUN/tensorboard`` of the trainer's run directory."""
        if self.log_dir is not None:
            return self.log_dir
        run = getattr(self.trainer, "run_dir", None)
        if run is None:
            raise ValueError("TensorBoard: give log_dir=..., or a Trainer with a run_dir")
        return Path(run.path) / "tensorboard"

    def _writer(self, run: str) -> Any:
        """The writer of `run` (``train`` or ``validation``), opened at its first event."""
        writer = self._writers.get(run)
        if writer is None:
            from tensorboardX import SummaryWriter

            directory = self.resolved_log_dir() / run
            directory.mkdir(parents=True, exist_ok=True)
            earlier = sorted(directory.glob("*tfevents*"))
            # tensorboardX names a file by the second it was opened: a suffix counting the files
            # already there keeps a quick restart from truncating the previous one.
            writer = self._writers[run] = SummaryWriter(
                str(directory),
                purge_step=self._start_step + 1 if earlier else None,
                flush_secs=self.flush_secs,
                filename_suffix=f".{len(earlier):04d}",
            )
        return writer

    def _flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def _close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def _scalar(self, run: str, tag: str, value: Any, step: int) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return  # a non-numeric key a callback added to the logs
        self._writer(run).add_scalar(tag, float(value), step)

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._close()  # a previous fit that ended in an exception
        self.resolved_log_dir()  # fail before training, not at the first event
        self._start_step = self._last_step = int(getattr(self.trainer, "global_step", 0))
        self._window_loss, self._window_size, self._before = 0.0, 0, None

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        trainer = self.trainer
        assert trainer is not None
        groups = getattr(trainer.optimizer, "param_groups", None)
        if groups:
            self._lr = float(trainer.optimizer.current_lr(groups[0]))
        coming = int(trainer.global_step) + 1
        if self.ratio_freq and coming % self.ratio_freq == 0 and self._before is None:
            # With accumulation this is the group's first batch; the weights stay put until its step.
            self._before = {
                name: p.data.astype(np.float64)  # a copy, in float64 for the norms
                for name, p in self.model.named_parameters()
                if p.requires_grad
            }

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        trainer = self.trainer
        assert trainer is not None
        logs = logs or {}
        size = int(logs.get("size", 1))
        if "loss" in logs:
            self._window_loss += float(logs["loss"]) * size
            self._window_size += size
        step = int(trainer.global_step)
        if step == self._last_step:
            return  # accumulating: no update yet
        self._last_step = step
        if self.update_freq and step % self.update_freq == 0:
            if self._window_size:
                # With accumulate=k, the loss of the update: the mean over its k batches.
                self._scalar(TRAIN_RUN, "batch_loss", self._window_loss / self._window_size, step)
            self._scalar(TRAIN_RUN, "batch_learning_rate", self._lr, step)
            if "grad_norm" in logs:
                self._scalar(TRAIN_RUN, "batch_grad_norm", logs["grad_norm"], step)
        self._window_loss, self._window_size = 0.0, 0
        if self._before is not None and self.ratio_freq and step % self.ratio_freq == 0:
            for name, ratio in _update_ratios(self._before, self.model).items():
                self._scalar(TRAIN_RUN, f"update_ratio/{name}", ratio, step)
            self._before = None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        trainer = self.trainer
        assert trainer is not None
        logs = logs or {}
        step = int(trainer.global_step)
        self._scalar(TRAIN_RUN, "epoch", epoch + 1, step)
        for key, value in logs.items():
            if key.startswith("val_"):
                self._scalar(VALIDATION_RUN, f"epoch_{key[4:]}", value, step)
            elif key not in _NOT_SCALARS:
                self._scalar(TRAIN_RUN, f"epoch_{key}", value, step)
        if "lr" in logs:
            self._scalar(TRAIN_RUN, "epoch_learning_rate", logs["lr"], step)
        if "time" in logs:
            self._scalar(TRAIN_RUN, "epoch_time", logs["time"], step)
        if self.histogram_freq and (epoch + 1) % self.histogram_freq == 0:
            self._histograms(step)
        self._flush()

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._close()

    def on_train_diverged(self, error: Any, inputs: Any, targets: Any) -> bool:
        self._flush()  # fit raises next (or stops cleanly): keep what was logged
        return False

    def _histograms(self, step: int) -> None:
        data = histogram_data(self.model, self.bins)
        writer = self._writer(TRAIN_RUN)
        frozen = set(data["frozen"])
        for kind, prefix in (("weight", "weights"), ("grad", "gradients")):
            for name in data["names"]:
                if kind == "grad" and name in frozen:
                    continue
                h = data[kind][name]
                counts, edges = h["counts"], h["edges"]
                num = float(counts.sum())
                mean, _, low, high, rms = (float(v) for v in h["stats"])
                # TensorBoard's buckets: bucket i spans (limit[i-1], limit[i]], the first from min.
                writer.add_histogram_raw(
                    f"{prefix}/{name}",
                    min=low,
                    max=high,
                    num=num,
                    sum=mean * num,
                    sum_squares=rms * rms * num,
                    bucket_limits=edges[1:].tolist(),
                    bucket_counts=counts.tolist(),
                    global_step=step,
                )

    def __repr__(self) -> str:
        return (
            f"TensorBoard(log_dir={None if self.log_dir is None else str(self.log_dir)!r}, "
            f"update_freq={self.update_freq or 'epoch'!r}, histogram_freq={self.histogram_freq}, "
            f"ratio_freq={self.ratio_freq})"
        )


def _update_ratios(before: dict[str, np.ndarray], model: Any) -> dict[str, float]:
    """`gradwise.diagnostics.health.update_ratios` of the model's parameters now against `before`,
    keeping the finite ones (a parameter whose weights were all 0, e.g. a bias at its initial value,
    has no ratio worth a chart)."""
    now = {name: p.data for name, p in model.named_parameters()}
    return {name: r for name, r in update_ratios(before, now).items() if math.isfinite(r)}
