"""Block-wise element-wise updates and the denormal flush shared by the optimizers (NumPy path).

`blocks` walks same-shaped arrays in cache-sized blocks, `objective_grad` forms the gradient of
the objective with coupled weight decay, and `flush_denormals` sets subnormal values to zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


# A parameter larger than BLOCKING_MIN_BYTES is updated in blocks of BLOCK_BYTES: every
# operation of the update runs on one block before the next block is read, so the block and its
# temporaries stay in cache (L2) and each array crosses the memory bus once per step instead of
# once per operation (PERF-NOTES.md: "count passes over memory"). A smaller parameter's arrays
# fit in the last-level cache together, where blocking measured no gain, only the per-block
# Python overhead. The operations are element-wise, so the result is the same, bit for bit.
BLOCK_BYTES = 1 << 18
BLOCKING_MIN_BYTES = 1 << 22


def blocks(
    arrays: Sequence[np.ndarray], scratch: Sequence[np.ndarray] = ()
) -> Iterator[tuple[np.ndarray, ...]]:
    """Matching blocks of the same-shaped `arrays`, followed by equally long views of `scratch`.

    Each block is a tuple ``(*array_blocks, *scratch_blocks)``. The scratch views always start
    at the beginning of each scratch array, so every block reuses the same (cached) memory.
    Arrays of at most `BLOCKING_MIN_BYTES`, or that are not all C-contiguous (flattening would
    copy), come back whole, as a single block.
    """
    size = arrays[0].size
    block = max(1, BLOCK_BYTES // arrays[0].itemsize)
    if (arrays[0].nbytes <= max(BLOCKING_MIN_BYTES, BLOCK_BYTES)
            or not all(a.flags.c_contiguous for a in (*arrays, *scratch))):
        yield (*arrays, *scratch)
        return
    flat = [a.reshape(-1) for a in arrays]
    flat_scratch = [s.reshape(-1) for s in scratch]
    for lo in range(0, size, block):
        hi = min(lo + block, size)
        yield (*(a[lo:hi] for a in flat), *(s[: hi - lo] for s in flat_scratch))


def objective_grad(
    grad: np.ndarray, theta: np.ndarray, weight_decay: float, maximize: bool, out: np.ndarray
) -> np.ndarray:
    """``(-grad if maximize else grad) + weight_decay * theta`` (torch's order), written to `out`;
    `grad` itself, unchanged, when there is nothing to add. The block-wise form of
    `Optimizer._grad_with_decay`."""
    if weight_decay == 0 and not maximize:
        return grad
    if weight_decay == 0:
        np.negative(grad, out=out)
    else:
        np.multiply(theta, weight_decay, out=out)
        (np.subtract if maximize else np.add)(out, grad, out=out)
    return out


#: Entries examined at once by `flush_denormals`: its two temporaries (|x| and the mask, 320 KiB
#: in float32) stay in the L2 cache, so only the array itself crosses the memory bus.
FLUSH_BLOCK = 1 << 16


def flush_denormals(arrays: Sequence[np.ndarray], abs_buf: np.ndarray, mask_buf: np.ndarray) -> None:
    """Set every subnormal entry of `arrays` (``0 < |x| < np.finfo(dtype).tiny``) to +0, in place.

    Each array is examined in blocks of `FLUSH_BLOCK` entries: ``|x|`` into `abs_buf` (the
    arrays' dtype), ``|x| < tiny`` into `mask_buf` (bool), and only when some entry of the block
    is below `tiny` one ``np.copyto(x, 0, where=mask)``. NaN and infinities are left alone. The
    buffers need ``min(FLUSH_BLOCK, largest size)`` entries; their content is garbage.

    Called once per parameter per step, for every array of its state, so the common case (a
    contiguous array of one block, nothing to flush) costs three NumPy calls (`count_nonzero`,
    not the slower `any`) and no more: a small model's step is mostly such calls (LeNet: 10
    tensors, 30 arrays).
    """
    for a in arrays:
        tiny = _TINY.get(a.dtype)
        if tiny is None:
            tiny = _TINY[a.dtype] = a.dtype.type(np.finfo(a.dtype).tiny)
        if not a.flags.c_contiguous:  # whole, through temporaries
            np.copyto(a, 0, where=np.abs(a) < tiny)
            continue
        flat = a.reshape(-1)
        for lo in range(0, flat.size, FLUSH_BLOCK):
            x = flat[lo:lo + FLUSH_BLOCK]
            t, m = abs_buf[: x.size], mask_buf[: x.size]
            np.abs(x, out=t)
            np.less(t, tiny, out=m)
            if np.count_nonzero(m):
                np.copyto(x, 0, where=m)


#: The smallest normal number of each floating dtype met so far, as a scalar of that dtype
#: (`np.finfo` costs about 1 us a call).
_TINY: dict[np.dtype, np.floating] = {}
