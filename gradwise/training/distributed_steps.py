"""The data-parallel epoch of `Trainer(..., distributed=True)`: the step of `steps.train_epoch`
with each global batch split across the ranks and one gradient all-reduce per optimizer step.

Per batch, on every rank (``docs/distributed.md``)::

    xb, yb = rows [n r / K, n (r + 1) / K) of the global batch   # same seeded order everywhere
    scores = model.forward(xb); local = loss.forward(scores, yb)
    model.backward(loss.backward() * n_r / n)    # this rank's share of the global mean loss
    Allreduce([grads..., local * n_r / n])       # one call: summed gradients and batch loss
    clip, optimizer.step()                       # identical on every rank

Inside an accumulation group (``accumulate > 1``) only the loss share is reduced per batch (one
value), and the gradients once, at the group's update. The epoch's metrics are computed on the
scores of every rank, gathered once per epoch (and before a mid-epoch checkpoint) in the order a
single process sees them.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.core import backward_of
from gradwise.training import checkpoint
from gradwise.training.divergence import diverged
from gradwise.training.metrics import EpochAccumulator
from gradwise.training.steps import cast, update

if TYPE_CHECKING:
    from gradwise.distributed import Communicator
    from gradwise.training.progress import Progress
    from gradwise.training.trainer import Trainer

__all__ = ["ShardedTotals", "start_fit", "train_epoch"]


class ShardedTotals(EpochAccumulator):
    """`EpochAccumulator` for a batch split across ranks: the loss of the global batches, and
    the scores of every rank once `gather` has run (a collective).

    ``total``, ``seen``, ``scores`` and ``labels`` hold global values (what a checkpoint saves);
    this rank's scores since the last `gather` wait in a list of their own.
    """

    def __init__(self, loss: object, metrics: Any, comm: Communicator, resumed: EpochAccumulator | None = None) -> None:
        super().__init__(loss, metrics)
        self.comm = comm
        if resumed is not None:  # a checkpoint's totals are global (gathered before it was written)
            self.total, self.seen = resumed.total, resumed.seen
            self.scores, self.labels = list(resumed.scores), list(resumed.labels)
        self._pending: list[tuple[np.ndarray, np.ndarray] | None] = []

    def add_global(self, value: float, n_global: int, scores: np.ndarray | None, y: np.ndarray) -> None:
        """One global batch: its loss `value` over `n_global` samples, this rank's scores and targets."""
        self.total += value if self.sum_reduction else value * n_global
        self.seen += n_global
        if self.metrics:
            self._pending.append(None if scores is None else (np.array(scores, copy=True), np.asarray(y)))

    def gather(self) -> None:
        """Move every rank's pending scores into ``scores`` / ``labels``: batch by batch, rank by
        rank, the order of the global batches' rows. Every rank must call it at the same point."""
        if not self.metrics:
            return
        parts = self.comm.allgather_object(self._pending, what="the all-gather of the epoch's scores")
        for b in range(len(self._pending)):
            for pending in parts:
                if pending[b] is not None:
                    self.scores.append(pending[b][0])
                    self.labels.append(pending[b][1])
        self._pending = []

    def results(self, owner: str) -> dict[str, float]:
        self.gather()
        return super().results(owner)


def train_epoch(
    trainer: Trainer, loader: Iterable[Any], epoch: int, total: int, n_batches: int | None, display: Progress,
    resumed: checkpoint.ResumePoint | None = None,
) -> dict[str, float]:
    """Train `trainer` on one epoch of `loader`, this rank's rows of every batch."""
    dp = trainer._data_parallel
    assert dp is not None
    model, loss, penalty = trainer.model, trainer.loss, trainer.penalty
    params = model.parameters()
    dtype = model.dtype
    k = trainer.accumulate
    mean = getattr(loss, "reduction", "mean") == "mean"
    weigh = k > 1 and mean  # as steps.train_epoch: sum n_r * grad_r, divide by the group's samples
    totals = ShardedTotals(loss, trainer.metrics, dp.comm, None if resumed is None else resumed.totals)
    batches = iter(loader) if resumed is None else resumed.batches
    window = 0  # global samples whose gradients are accumulated but not yet applied
    for batch, (xb, yb) in enumerate(batches, 0 if resumed is None else resumed.batch):
        n_global = len(yb)
        if n_global < dp.comm.size and (dp.random_layers or dp.sync_layers()):
            raise ValueError(
                f"Trainer.fit: batch {batch + 1} of epoch {epoch + 1} has {n_global} sample(s) for "
                f"{dp.comm.size} ranks, but the model's random or synchronized layers need every rank "
                f"to take part: use drop_last=True or a batch size whose remainder is 0 or >= {dp.comm.size}"
            )
        xl, yl = dp.shard(xb, yb)
        n = len(yl)
        trainer.callbacks.on_train_batch_begin(batch, {"size": n_global})
        model.train()
        if window == 0:
            trainer.optimizer.zero_grad()
        last = (batch + 1) % k == 0 or batch + 1 == n_batches
        scores, share, grad = None, 0.0, None
        if n:  # a last global batch smaller than K leaves some ranks without a row
            with dp.drawing():  # Dropout draws the global batch's mask and keeps this rank's rows
                scores = model.forward(cast(xl, dtype))
            local = float(loss.forward(scores, yl))
            share = local * n / n_global if mean else local
            grad = loss.backward()
            # This rank's part of the global mean: scaled by n_r / n (exact for n_r / n = 1/2, 1/4, ...).
            factor = n if weigh else (n / n_global if mean else 1)
            grad = grad * grad.dtype.type(factor) if factor != 1 else grad
        if last:
            if grad is not None:
                backward_of(model, grad, input_grad=False)
            loss_value = dp.allreduce_gradients(share, trainer.global_step)
        else:
            loss_value = dp.allreduce_scalar(share, f"the loss all-reduce of batch {batch + 1}")
        if penalty is not None:
            loss_value += float(penalty.value(params))
        trainer.history.batch_loss.append(loss_value)
        if not math.isfinite(loss_value):  # the same global value on every rank: all stop here
            err = diverged(epoch, total, batch, n_batches, loss_value, trainer._current_lr(), trainer.run_dir)
            err.handled = trainer.callbacks.on_train_diverged(err, xl, yl)
            raise err
        if not last and grad is not None:
            backward_of(model, grad, input_grad=False)
        window += n_global
        batch_logs: dict[str, Any] = {"loss": loss_value, "size": n_global}
        if last:
            update(trainer, params, window if weigh else 1, batch_logs)
            window = 0
        totals.add_global(loss_value, n_global, scores, yl)
        trainer.callbacks.on_train_batch_end(batch, batch_logs)
        display.update(batch + 1, totals.loss())
        every = trainer.checkpoint_every
        if window == 0 and every and trainer.global_step % every == 0 and batch + 1 != n_batches:
            totals.gather()  # on every rank: the checkpoint holds the scores of all
            if trainer._recorder is not None:
                checkpoint.save(trainer, loader, epoch, batch + 1, totals)
        if trainer.stop_training and window == 0:
            break
    if window:  # a loader without len() ended inside an accumulation group
        dp.allreduce_gradients(0.0, trainer.global_step)
        update(trainer, params, window if weigh else 1, {})
    dp.broadcast_buffers()  # rank 0's BatchNorm statistics for evaluation and the checkpoint
    return totals.results("Trainer.fit: train_loader")


def start_fit(
    trainer: Trainer, loader: Any, source: str | os.PathLike[str] | checkpoint.Resumable | None, strict: bool
) -> str | os.PathLike[str] | checkpoint.Resumable | None:
    """What every rank does at the start of `fit`: take rank 0's random generators (the library
    default, the loader's, the layers'), so that every rank draws the same data order and the same
    masks; and return the checkpoint to resume from, the one rank 0 chooses (it may set damaged ones
    aside while the others read), passed to the other ranks as that checkpoint's own directory.

    A collective: every rank of a distributed trainer calls it at the start of every `fit`.
    """
    dp = trainer._data_parallel
    assert dp is not None
    comm = dp.comm
    found = checkpoint.generators(trainer.model, loader)
    states = comm.bcast_object(
        {key: g.bit_generator.state for key, g in found.items()}, what="the broadcast of the random generators"
    )
    if set(states) != set(found):
        raise ValueError(
            f"Trainer.fit: rank 0 has the random generators {sorted(states)}, rank {comm.rank} {sorted(found)}: "
            "every rank must build the same model and loader"
        )
    for key, g in found.items():
        g.bit_generator.state = states[key]
    chosen: str | os.PathLike[str] | checkpoint.Resumable | None = source
    error: BaseException | None = None
    if comm.rank == 0 and source is not None and not isinstance(source, checkpoint.Resumable):
        try:
            chosen = checkpoint.find_resumable(source, strict=strict)
        except (ValueError, OSError) as e:
            error = e
        else:  # what `checkpoint.resume` warns when it chooses itself
            for r in chosen.rejected:
                message = f"{r.reason}; trying the next older checkpoint"
                warnings.warn(message, checkpoint.ResumeWarning, stacklevel=4)
    comm.agree(error, "choosing the checkpoint to resume from")
    if isinstance(chosen, checkpoint.Resumable):
        mine = str(Path(chosen.checkpoint.path))
    else:
        mine = None if chosen is None else str(chosen)
    path = comm.bcast_object(mine, what="the broadcast of the checkpoint to resume from")
    if comm.rank == 0:
        return chosen
    return None if path is None else path
