"""Synchronized batch normalization: the statistics of the global batch, summed over the ranks.

By default each rank's BatchNorm normalizes with the statistics of its own piece of the batch (as
PyTorch's DistributedDataParallel). `convert_sync_batchnorm` turns the model's BatchNorm1d and
BatchNorm2d layers into `SyncBatchNorm1d` / `SyncBatchNorm2d`, which compute in training mode
exactly what one process would compute on the whole global batch:

- forward: one all-reduce of the per-channel sums and the entry count gives the global mean,
  a second of the sums of squared deviations from it the global (biased) variance: the same
  two-pass formula as `BatchNorm1d`, so no cancellation from a sum-of-squares shortcut;
- backward: one all-reduce of the two per-channel reductions, sum(g) and sum(g * x_hat), over the
  global batch, for dL/dx. The parameter gradients (the same two sums, local) travel with every
  other gradient in the trainer's one gradient all-reduce.

Three small all-reduces per layer and step (2C + 1, C and 2C values). Evaluation mode uses the
running statistics, which every rank updates identically, and needs no communication.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradwise.core import Layer
from gradwise.distributed.comm import Communicator
from gradwise.layers.normalization import BatchNorm1d, BatchNorm2d, _BatchNorm, _float_input

__all__ = ["SyncBatchNorm1d", "SyncBatchNorm2d", "convert_sync_batchnorm"]


class _SyncBatchNorm(_BatchNorm):
    comm: Communicator
    _m_global: int = 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not (self.training or not self.track_running_stats):
            return super().forward(x)  # running statistics: nothing to share
        x = _float_input(x, self._dtype())
        self._check(x)
        c = self.num_features
        axes = (0, *range(2, x.ndim))
        bshape = (1, c) + (1,) * (x.ndim - 2)
        stats = np.empty(c + 1, dtype=np.float64)
        stats[:c] = x.sum(axis=axes, dtype=np.float64)
        stats[c] = x.size // c
        self.comm.allreduce_(stats, what=f"{type(self).__name__}({c}): the all-reduce of the batch sums")
        m = int(stats[c])
        if m <= 1:
            raise ValueError(
                f"{type(self).__name__}({c}): Expected more than 1 value per channel when training, "
                f"got {m} over all ranks"
            )
        mean = stats[:c] / m
        xhat = x - mean.astype(x.dtype).reshape(bshape)
        y = np.square(xhat)
        squares = y.sum(axis=axes, dtype=np.float64)
        self.comm.allreduce_(squares, what=f"{type(self).__name__}({c}): the all-reduce of the squared deviations")
        var = squares / m
        if self.track_running_stats:
            self._update_running_stats(mean, var * (m / (m - 1)))
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)
        xhat *= inv_std.reshape(bshape)
        self._xhat, self._inv_std, self._batch_stats, self._m_global = xhat, inv_std, True, m
        if self.weight is None or self.bias is None:
            return xhat.copy()
        np.multiply(xhat, self.weight.data.reshape(bshape), out=y)
        y += self.bias.data.reshape(bshape)
        return y

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if not self._batch_stats:
            return super().backward(grad_out, input_grad=input_grad)
        if self._xhat is None or self._inv_std is None:
            raise self.no_cache_error()
        xhat, inv_std = self._xhat, self._inv_std
        self._xhat = self._inv_std = None
        g = np.asarray(grad_out, dtype=xhat.dtype)
        if g.shape != xhat.shape:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}).backward: gradient of shape {g.shape} "
                f"does not match the output shape {xhat.shape}"
            )
        c = self.num_features
        axes = (0, *range(2, g.ndim))
        bshape = (1, c) + (1,) * (g.ndim - 2)
        buf = np.multiply(g, xhat)
        sums = np.empty(2 * c, dtype=np.float64)
        sums[:c] = buf.sum(axis=axes, dtype=np.float64)  # sum g * x_hat: dL/dgamma of this rank's rows
        sums[c:] = g.sum(axis=axes, dtype=np.float64)  # sum g: dL/dbeta
        if self.weight is not None and self.bias is not None:
            # This rank's share; the trainer's gradient all-reduce adds the others'.
            if self.weight.requires_grad:
                self.weight.add_grad(sums[:c].astype(xhat.dtype))
            if self.bias.requires_grad:
                self.bias.add_grad(sums[c:].astype(xhat.dtype))
            scale = self.weight.data * inv_std
        else:
            scale = inv_std
        if not input_grad:
            return None
        self.comm.allreduce_(sums, what=f"{type(self).__name__}({c}): the all-reduce of the backward sums")
        m = self._m_global
        np.multiply(xhat, (sums[:c] / m).astype(xhat.dtype).reshape(bshape), out=buf)
        np.subtract(g, buf, out=buf)
        buf -= (sums[c:] / m).astype(xhat.dtype).reshape(bshape)
        buf *= scale.reshape(bshape)
        return buf


class SyncBatchNorm1d(_SyncBatchNorm, BatchNorm1d):
    """`BatchNorm1d` whose training statistics are those of the global batch over all ranks.

    Made by `convert_sync_batchnorm` from a `BatchNorm1d` (same parameters, buffers and state-dict
    names, so checkpoints load either way).
    """


class SyncBatchNorm2d(_SyncBatchNorm, BatchNorm2d):
    """`BatchNorm2d` whose training statistics are those of the global batch over all ranks."""


_SYNC = {BatchNorm1d: SyncBatchNorm1d, BatchNorm2d: SyncBatchNorm2d}


def convert_sync_batchnorm(model: Layer, comm: Communicator) -> int:
    """Make every BatchNorm1d / BatchNorm2d of `model` synchronized over `comm`, in place.

    The layers keep their parameters, buffers and names (their class becomes the synchronized
    subclass), so an optimizer built on the model and its checkpoints stay valid.

    Returns
    -------
    int
        The number of layers converted.
    """
    if not isinstance(comm, Communicator):
        raise TypeError(f"convert_sync_batchnorm: comm must be a Communicator, got {type(comm).__name__}")
    count = 0
    for _, module in model.named_modules():
        sync: Any = _SYNC.get(type(module))
        if sync is not None:
            module.__class__ = sync
            object.__setattr__(module, "comm", comm)
            count += 1
        elif isinstance(module, _SyncBatchNorm):
            object.__setattr__(module, "comm", comm)
    return count
