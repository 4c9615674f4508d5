"""`DataParallel`: what a data-parallel trainer does on top of the single-process step.

One flat gradient buffer per model: every ``Parameter.grad`` is rebound to a view into it (the
layers keep writing their gradients in place), plus one slot at the end for this rank's share of
the batch loss, so that one ``Allreduce`` per optimizer step sums both. When the gradients live
elsewhere (a ``flat=True`` optimizer has its own flat buffers, or ``astype`` rebound a gradient),
they are copied in before the reduction and back after it.

The random generators of the model's layers (Dropout's masks, a recurrent layer's dropout) are
replaced by `ShardedGenerator` views of the same bit generators: during this rank's forward, a
draw for its rows is the draw for the whole global batch, of which it keeps its rows. Every rank
draws what one process draws, so masks are those of one process and the generators stay in step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from gradwise.core import Layer, Parameter
from gradwise.distributed.comm import Communicator

__all__ = ["DataParallel", "ShardedGenerator", "shard_bounds"]


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """The rows ``[lo, hi)`` of a global batch of `n` samples that rank `rank` of `size` trains on:
    contiguous pieces in rank order, sizes differing by at most one (``n * r // size``)."""
    return n * rank // size, n * (rank + 1) // size


class _Shard:
    """The global batch being trained and this rank's rows of it (while `active`)."""

    __slots__ = ("active", "hi", "lo", "n")

    def __init__(self) -> None:
        self.active, self.n, self.lo, self.hi = False, 0, 0, 0


class ShardedGenerator(np.random.Generator):
    """A layer's generator as one rank of a data-parallel run sees it.

    It shares the bit generator of the generator it replaces (so checkpoints save and restore the
    same state). While the trainer runs this rank's forward, ``random(size)`` with ``size[0]`` equal
    to the rank's row count draws ``(n_global, *size[1:])`` values, as one process would for the
    global batch, and returns this rank's rows of them; any other draw is the ordinary one.
    """

    _shard: _Shard = _Shard()  # inactive: a copy of the generator (deepcopy, pickle) draws as usual

    def random(self, size: Any = None, dtype: Any = np.float64, out: Any = None) -> Any:  # type: ignore[override]
        s = self._shard
        if s.active and out is None and size is not None:
            shape = (int(size),) if np.ndim(size) == 0 else tuple(int(d) for d in size)
            if shape and shape[0] == s.hi - s.lo and shape[0] != s.n:
                return super().random((s.n, *shape[1:]), dtype=dtype)[s.lo : s.hi]
        return super().random(size, dtype=dtype, out=out)


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
        self._shard = _Shard()
        self.random_layers = 0  # layers whose generators now draw for the global batch
        for _, module in model.named_modules():
            for attr, value in list(vars(module).items()):
                if isinstance(value, np.random.Generator) and not isinstance(value, ShardedGenerator):
                    sharded = ShardedGenerator(value.bit_generator)
                    sharded._shard = self._shard
                    object.__setattr__(module, attr, sharded)
                    self.random_layers += 1
        self.broadcast_state()

    # ------------------------------------------------------------------ per step
    def shard(self, xb: Any, yb: Any) -> tuple[Any, Any]:
        """This rank's rows of a global batch (`xb` may be a tuple of inputs); the batch whose
        draws `drawing` shards."""
        n = len(yb)
        lo, hi = shard_bounds(n, self.comm.rank, self.comm.size)
        self._shard.n, self._shard.lo, self._shard.hi = n, lo, hi
        xs = tuple(x[lo:hi] for x in xb) if isinstance(xb, tuple) else xb[lo:hi]
        return xs, yb[lo:hi]

    @contextmanager
    def drawing(self) -> Iterator[None]:
        """Around this rank's training forward: the layers' random draws are the global batch's."""
        self._shard.active = True
        try:
            yield
        finally:
            self._shard.active = False

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

    def sync_layers(self) -> int:
        """The number of synchronized BatchNorm layers (collectives inside the forward)."""
        from gradwise.distributed.sync_batchnorm import _SyncBatchNorm

        return sum(isinstance(m, _SyncBatchNorm) for _, m in self.model.named_modules())

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
