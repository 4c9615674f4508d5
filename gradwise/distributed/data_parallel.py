"""`DataParallel`: what a data-parallel trainer does on top of the single-process step.

One flat gradient buffer per model: every ``Parameter.grad`` is rebound to a view into it (the
layers keep writing their gradients in place), plus one slot at the end for this rank's share of
the batch loss, so that one ``Allreduce`` per optimizer step sums both. When the gradients live
elsewhere (a ``flat=True`` optimizer has its own flat buffers, or ``astype`` rebound a gradient),
they are copied in before the reduction and back after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gradwise.core import Layer, Parameter
from gradwise.distributed.comm import Communicator

__all__ = ["DataParallel", "shard_bounds"]


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """The rows ``[lo, hi)`` of a global batch of `n` samples that rank `rank` of `size` trains on:
    contiguous pieces in rank order, sizes differing by at most one (``n * r // size``)."""
    return n * rank // size, n * (rank + 1) // size


class DataParallel:
    """The gradient buffer, the weight broadcast and the batch sharding of one model.

    Parameters
    ----------
    model : Layer
        Its parameters must share one floating dtype.
    comm : Communicator

    Notes
    -----
    Building it broadcasts rank 0's parameters and floating buffers to every rank (one
    ``Bcast``), so that all ranks start from the same weights whatever their seeds.
    """

    def __init__(self, model: Layer, comm: Communicator) -> None:
        if not isinstance(comm, Communicator):
            raise TypeError(f"DataParallel: comm must be a gradwise Communicator, got {type(comm).__name__}")
        self.model, self.comm = model, comm
        self.params: list[Parameter] = model.parameters()
        dtypes = sorted({str(p.dtype) for p in self.params})
        if len(dtypes) > 1:
            raise ValueError(
                f"distributed training: the model's parameters mix dtypes {dtypes}; one flat gradient "
                f"buffer needs one dtype (model.astype(...) first)"
            )
        dtype = self.params[0].dtype if self.params else np.dtype(np.float64)
        self.bounds: list[tuple[int, int]] = []
        lo = 0
        for p in self.params:
            self.bounds.append((lo, lo + p.size))
            lo += p.size
        #: The flat gradients, then this rank's share of the batch loss (one slot).
        self.buffer = np.zeros(lo + 1, dtype=dtype)
        self.views: list[np.ndarray] = []
        for p, (lo, hi) in zip(self.params, self.bounds):
            view = self.buffer[lo:hi].reshape(p.shape)
            if getattr(p.grad, "base", None) is None:  # a gradient of its own: live in the buffer
                view[...] = p.grad
                p.grad = view
            self.views.append(view)
        self.broadcast_state()

    # ------------------------------------------------------------------ per step
    def shard(self, xb: Any, yb: Any) -> tuple[Any, Any]:
        """This rank's rows of a global batch (`xb` may be a tuple of inputs)."""
        lo, hi = shard_bounds(len(yb), self.comm.rank, self.comm.size)
        xs = tuple(x[lo:hi] for x in xb) if isinstance(xb, tuple) else xb[lo:hi]
        return xs, yb[lo:hi]

    def allreduce_gradients(self, loss_share: float, step: int) -> float:
        """Sum every rank's gradients (in ``p.grad``) and loss shares: one ``Allreduce``.

        Returns
        -------
        float
            The sum of the ranks' `loss_share` (the global batch loss).
        """
        buffer = self.buffer
        copied = []
        for i, (p, view) in enumerate(zip(self.params, self.views)):
            grad = p.grad  # reading it fills a gradient still marked zero (no sample on this rank)
            if grad is not view:
                view[...] = grad
                copied.append(i)
        buffer[-1] = loss_share
        self.comm.allreduce_(buffer, what=f"the gradient all-reduce of optimizer step {step + 1}")
        for i in copied:
            self.params[i].grad[...] = self.views[i]
        return float(buffer[-1])

    def allreduce_scalar(self, value: float, what: str) -> float:
        """The sum over the ranks of `value` (a loss share inside an accumulation group)."""
        return float(self.comm.allreduce_(np.array([value], dtype=np.float64), what=what)[0])

    # ------------------------------------------------------------------ state
    def broadcast_state(self) -> None:
        """Rank 0's parameters and floating buffers on every rank (one ``Bcast``, in float64)."""
        self._broadcast([p.data for p in self.params] + self._float_buffers(), "the initial weights")

    def broadcast_buffers(self) -> None:
        """Rank 0's floating buffers (BatchNorm running statistics) on every rank, as DDP's
        ``broadcast_buffers``: with per-rank statistics, evaluation and checkpoints use rank 0's."""
        buffers = self._float_buffers()
        if buffers:
            self._broadcast(buffers, "the BatchNorm buffers")

    def _float_buffers(self) -> list[np.ndarray]:
        return [b for b in self.model.buffers() if np.issubdtype(b.dtype, np.floating)]

    def _broadcast(self, arrays: Sequence[np.ndarray], what: str) -> None:
        if self.comm.size == 1 or not arrays:
            return
        # float32 -> float64 -> float32 is exact, so one float64 buffer carries every dtype.
        flat = np.concatenate([a.reshape(-1).astype(np.float64) for a in arrays])
        self.comm.bcast_(flat, what=f"the broadcast of {what} from rank 0")
        lo = 0
        for a in arrays:
            a[...] = flat[lo : lo + a.size].reshape(a.shape)
            lo += a.size

    def __repr__(self) -> str:
        return f"DataParallel({type(self.model).__name__}, {self.buffer.size - 1} gradients, {self.comm!r})"
