"""Compiled (numba) one-pass updates for SGD and Adam: the optional fast path, `gradwise[fast]`.

Each kernel reads every array once and writes it once per step, where the NumPy reference in
`sgd.py` and `adam.py` makes one pass per operation. The arithmetic is written in the same
order as the reference, in the arrays' dtype (the scalars are rounded to it first, as NumPy
does with a Python float next to a float32 array) and without fast-math, so the results are the
reference's bit for bit (tests/optim/test_fused.py). The subnormal flush of
``flush_denormals=True`` happens in the same pass, on the values as they are written.

numba is imported by the first call of `kernels()`, never by ``import gradwise``; ``cache=True``
keeps the machine code on disk, so only the first run on a machine pays the compilation.
"""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

#: Parameters with at least this many entries (1M) are cut into one slice per core, updated
#: concurrently (the kernels release the GIL); handing a slice to a thread costs about 70 us, so
#: smaller ones run on the calling thread (measured on 2 cores, momentum SGD, float32: 256k entries
#: 100 us on one thread vs 133 us split, 1M 425 vs 334 us, 4M 1.78 vs 0.96 ms).
PARALLEL_MIN_SIZE = 1 << 20

_EXTRA_HINT = "install the optional dependency with `pip install gradwise[fast]` (numba)"


def available() -> bool:
    """Whether numba can be imported (checked without importing it)."""
    return importlib.util.find_spec("numba") is not None


#: With ``fused=None``, parameter sets smaller than this (64k entries) keep the NumPy reference:
#: importing numba and loading the compiled kernels costs about 0.4 s once per process, and the
#: kernel saves about 5 us per 1k entries per Adam step, so a small model (the MNIST-1D CNN's
#: 5k weights, a few thousand steps) would pay more than it gains.
AUTO_MIN_SIZE = 1 << 16


def resolve(fused: bool | None, owner: str, overridden: bool = False, size: int | None = None) -> bool:
    """The ``fused=`` argument of an optimizer made definite.

    None means "when numba is installed, the update rule is the class's own (a subclass that
    overrides `_update` keeps its own rule unless it asks for ``fused=True``) and the optimizer
    holds at least `AUTO_MIN_SIZE` entries (`size`)"; True requires numba; False never uses it.
    """
    if fused is None:
        large = size is None or size >= AUTO_MIN_SIZE
        return available() and not overridden and large
    if fused and not available():
        raise ModuleNotFoundError(f"{owner}(fused=True) needs numba: {_EXTRA_HINT}")
    return bool(fused)


def _flushed(x: Any, tiny: Any, zero: Any, flush: bool) -> Any:
    # A select, not a branch around a store, so that the loops stay vectorized.
    return zero if (flush and abs(x) < tiny) else x


def _objective(th: Any, gr: Any, wd: Any, use_wd: bool, maximize: bool) -> Any:
    # g_t = ±grad + lambda * theta   (torch's order, as `objective_grad`)
    if use_wd:
        g = th * wd
        return g - gr if maximize else g + gr
    return -gr if maximize else gr


# The loops that write a buffer only under a flag are separate loops, chosen outside: a store
# under a condition, or a buffer passed twice (aliasing), keeps LLVM from vectorizing.
def _sgd(theta: Any, grad: Any, buf: Any, wd: Any, mu: Any, one_minus_tau: Any, lr: Any,
         tiny: Any, zero: Any, use_wd: bool, maximize: bool, momentum: bool, first: bool,
         dampen: bool, nesterov: bool, flush: bool) -> None:
    n = theta.size
    if not momentum:
        for i in range(n):
            th = theta[i]
            g = _objective(th, grad[i], wd, use_wd, maximize)
            # theta_t = theta_{t-1} - lr * g_t
            theta[i] = _flushed(th - g * lr, tiny, zero, flush)
        return
    for i in range(n):
        th = theta[i]
        g = _objective(th, grad[i], wd, use_wd, maximize)
        if first:
            b = g  # b_1 = g_1
        elif dampen:
            b = buf[i] * mu + g * one_minus_tau  # b_t = mu b_{t-1} + (1 - tau) g_t
        else:
            b = buf[i] * mu + g
        d = b * mu + g if nesterov else b  # d_t
        buf[i] = _flushed(b, tiny, zero, flush)
        # theta_t = theta_{t-1} - lr * d_t
        theta[i] = _flushed(th - d * lr, tiny, zero, flush)


def _adam(theta: Any, grad: Any, m: Any, v: Any, vmax: Any, decay: Any, wd: Any, beta1: Any,
          one_minus_beta1: Any, beta2: Any, one_minus_beta2: Any, c1: Any, c2: Any, tiny: Any,
          zero: Any, decoupled: bool, use_wd: bool, maximize: bool, amsgrad: bool, move: bool,
          flush: bool) -> None:
    n = theta.size
    if not amsgrad:
        for i in range(n):
            th = theta[i] * decay if decoupled else theta[i]  # (1 - lr lambda) theta
            g = _objective(th, grad[i], wd, use_wd, maximize)
            mt = m[i] * beta1 + g * one_minus_beta1          # m_t
            vt = v[i] * beta2 + (g * g) * one_minus_beta2    # v_t
            # theta_t = theta_{t-1} - m_t / (sqrt(v_t) / (s_t sqrt(1 - beta2^t)) + eps / s_t)
            if move:
                th = th - mt / (np.sqrt(vt) * c1 + c2)  # noqa: F821 -- numpy, bound in `kernels`
            m[i] = _flushed(mt, tiny, zero, flush)
            v[i] = _flushed(vt, tiny, zero, flush)
            theta[i] = _flushed(th, tiny, zero, flush)
        return
    for i in range(n):
        th = theta[i] * decay if decoupled else theta[i]
        g = _objective(th, grad[i], wd, use_wd, maximize)
        mt = m[i] * beta1 + g * one_minus_beta1
        vt = v[i] * beta2 + (g * g) * one_minus_beta2
        old = vmax[i]
        vh = old if (old >= vt or old != old) else vt  # max(v_hat_{t-1}, v_t), NaN-propagating
        if move:
            th = th - mt / (np.sqrt(vh) * c1 + c2)  # noqa: F821
        m[i] = _flushed(mt, tiny, zero, flush)
        v[i] = _flushed(vt, tiny, zero, flush)
        vmax[i] = _flushed(vh, tiny, zero, flush)
        theta[i] = _flushed(th, tiny, zero, flush)


@lru_cache(maxsize=1)
def kernels() -> SimpleNamespace:
    """The compiled kernels ``sgd`` and ``adam`` (compiled per dtype at their first call, then
    cached on disk); `run` spreads a large update over the cores."""
    try:
        import numba
    except ModuleNotFoundError as err:  # pragma: no cover -- resolve() checked it
        raise ModuleNotFoundError(f"the fused optimizer path needs numba: {_EXTRA_HINT}") from err
    import numpy as np

    opts = {"cache": True, "fastmath": False, "nogil": True, "error_model": "numpy"}
    g = globals()
    g["np"] = np
    for helper in ("_flushed", "_objective"):
        if not isinstance(g[helper], numba.core.dispatcher.Dispatcher):
            g[helper] = numba.njit(inline="always", **opts)(g[helper])
    return SimpleNamespace(
        sgd=numba.njit(**opts)(_sgd),
        adam=numba.njit(**opts)(_adam),
    )


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover -- not Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def _pool(pid: int) -> ThreadPoolExecutor | None:
    # Keyed by process id: a child forked after the first split update inherits the parent's
    # executor object but none of its threads, and would wait forever on it.
    # Plain threads that sleep between steps, not numba's `parallel=True`: its OpenMP workers
    # spin after each update and starved OpenBLAS's threads in the next matrix product (the MLP
    # epoch ran 3x slower with them).
    cores = _cores()
    return ThreadPoolExecutor(cores - 1, thread_name_prefix="gradwise-fused") if cores > 1 else None


def run(kernel: str, size: int, *args: Any) -> None:
    """Call `kernel` ("sgd" or "adam") on flat arrays of `size` entries (the leading arguments)
    and scalars; a large update is cut into one slice per core, run concurrently. Every entry is
    computed alone, so slicing changes no result."""
    # The kernels index every array up to `size` without bounds checks: an array of another size
    # (a parameter whose `data` was replaced by one of a new shape after its state was made)
    # would be read and written past its end. The NumPy path raises on it; so does this one.
    n_arrays = 0
    for a in args:
        if getattr(a, "ndim", 0) == 0:  # the scalars follow the arrays
            break
        if a.shape != (size,):
            raise ValueError(f"fused {kernel} update: an array of shape {a.shape} among those of a "
                             f"parameter of {size} entries (was the parameter's data replaced by "
                             f"one of another shape after its optimizer state was created?)")
        n_arrays += 1
    fn = getattr(kernels(), kernel)
    pool = _pool(os.getpid()) if size >= PARALLEL_MIN_SIZE else None
    if pool is None:
        fn(*args)
        return
    parts = _cores()
    # slice bounds on 64-entry boundaries, so no two threads write one cache line
    bounds = [min(size, (size * k // parts + 63) // 64 * 64) for k in range(parts)] + [size]
    arrays, scalars = args[:n_arrays], args[n_arrays:]
    futures = [
        pool.submit(fn, *[a[lo:hi] for a in arrays], *scalars)
        for lo, hi in zip(bounds[1:-1], bounds[2:])
    ]
    fn(*[a[bounds[0]:bounds[1]] for a in arrays], *scalars)
    for f in futures:
        f.result()
