"""The training step of `Trainer`: one epoch of batches (`train_epoch`) and one update (`update`).

Split out of ``trainer.py`` along the seam between the loop that owns a fit call (epochs, logs,
the run directory, resuming) and what happens to each batch. The data-parallel epoch
(`gradwise.training.distributed_steps`) shares `update` and `cast` with this one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.core import backward_of
from gradwise.optim import clip
from gradwise.training import checkpoint
from gradwise.training.divergence import diverged
from gradwise.training.metrics import EpochAccumulator

if TYPE_CHECKING:
    from gradwise.training.progress import Progress
    from gradwise.training.trainer import Trainer

__all__ = ["cast", "train_epoch", "update"]


def train_epoch(
    trainer: Trainer, loader: Iterable[Any], epoch: int, total: int, n_batches: int | None, display: Progress,
    resumed: checkpoint.ResumePoint | None = None,
) -> dict[str, float]:
    """Train `trainer` on one epoch of `loader` in this process; the epoch's loss and metrics."""
    model, loss, penalty = trainer.model, trainer.loss, trainer.penalty
    params = model.parameters()
    dtype = model.dtype
    k = trainer.accumulate
    # Mean-reduced losses: weight each batch's gradient by its size, divide by the total at the update.
    weigh = k > 1 and getattr(loss, "reduction", "mean") == "mean"
    totals = EpochAccumulator(loss, trainer.metrics) if resumed is None else resumed.totals
    batches = iter(loader) if resumed is None else resumed.batches
    window = 0  # samples whose gradients are accumulated but not yet applied
    for batch, (xb, yb) in enumerate(batches, 0 if resumed is None else resumed.batch):
        n = len(yb)
        trainer.callbacks.on_train_batch_begin(batch, {"size": n})
        model.train()  # every batch: a callback may have switched modes
        scores = model.forward(cast(xb, dtype))
        loss_value = float(loss.forward(scores, yb))
        if penalty is not None:
            loss_value += float(penalty.value(params))
        trainer.history.batch_loss.append(loss_value)
        if not math.isfinite(loss_value):
            err = diverged(epoch, total, batch, n_batches, loss_value, trainer._current_lr(), trainer.run_dir)
            # A callback (TerminateOnNaN) may diagnose the batch and ask for a clean stop.
            err.handled = trainer.callbacks.on_train_diverged(err, xb, yb)
            raise err
        if window == 0:
            trainer.optimizer.zero_grad()
        grad = loss.backward()
        backward_of(model, grad * grad.dtype.type(n) if weigh else grad, input_grad=False)  # no dL/dx
        window += n
        batch_logs: dict[str, Any] = {"loss": loss_value, "size": n}
        if (batch + 1) % k == 0 or batch + 1 == n_batches:
            update(trainer, params, window if weigh else 1, batch_logs)
            window = 0
        totals.add(loss_value, scores, yb)
        trainer.callbacks.on_train_batch_end(batch, batch_logs)
        display.update(batch + 1, totals.loss())
        every = trainer.checkpoint_every
        if window == 0 and every and trainer.global_step % every == 0 and batch + 1 != n_batches:
            checkpoint.save(trainer, loader, epoch, batch + 1, totals)  # the epoch's end saves its own
        if trainer.stop_training and window == 0:
            break
    if window:  # a loader without len() ended inside an accumulation group
        update(trainer, params, window if weigh else 1, {})
    return totals.results("Trainer.fit: train_loader")


def update(trainer: Trainer, params: list[Any], samples: int, batch_logs: dict[str, Any]) -> None:
    """One optimizer step from the gradients in ``p.grad`` (summed over `samples` when > 1)."""
    if samples != 1:
        for p in params:
            p.grad /= samples
    if trainer.penalty is not None:
        trainer.penalty.backward(params)
    if trainer.clip_grad_norm is not None:
        batch_logs["grad_norm"] = clip.clip_grad_norm(params, trainer.clip_grad_norm)
    elif trainer.clip_grad_value is not None:
        clip.clip_grad_value(params, trainer.clip_grad_value)
    trainer._last_lr = trainer._current_lr()
    trainer.optimizer.step()
    trainer.global_step += 1


def cast(xb: Any, dtype: np.dtype) -> Any:
    """A floating batch in the model's dtype (integer inputs such as indices are left alone)."""
    if isinstance(xb, np.ndarray) and xb.dtype != dtype and np.issubdtype(xb.dtype, np.floating):
        return xb.astype(dtype)
    return xb
