"""Shared helpers for the scripts in `bench/`: thread pinning, BLAS reporting, timing.

Import this module before NumPy (it imports NumPy only inside functions), call `pin_threads`
first thing in `main`, and only then import NumPy, gradwise or torch: thread counts and OpenBLAS
tuning variables are read once, when the BLAS library is loaded.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from typing import Any
from collections.abc import Callable
from dataclasses import dataclass

# Read by OpenBLAS (NumPy), libgomp/MKL (PyTorch) and other BLAS builds when they are loaded.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# OpenBLAS kernel selection and cache-size tuning; PERF-NOTES.md: they may be set on the CI
# machines and can pick a slower kernel than the one OpenBLAS would detect.
OPENBLAS_TUNING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# Set on re-exec: a loop guard, and the parent's OpenBLAS tuning variables (JSON) for the header.
_REEXEC_MARK = "GRADWISE_BENCH_REEXEC"
_PARENT_ENV = "GRADWISE_BENCH_PARENT_OPENBLAS_ENV"
# CPU-tick capacity (ticks x CPUs) below which a run is too short to judge how busy the machine was.
_MIN_TICKS = 40


def pin_threads(threads: int, unset_openblas_env: bool = False) -> dict[str, str | None]:
    """Make sure this process runs with `threads` BLAS/OpenMP threads, re-executing it if needed.

    Sets every variable of `THREAD_VARS` to `threads` and, with `unset_openblas_env`, removes the
    variables of `OPENBLAS_TUNING_VARS`. If the environment already is so, nothing happens;
    otherwise the script is re-executed (`os.execve`, same interpreter and arguments) with the new
    environment, so that the values are in place before any library is loaded.

    Returns
    -------
    dict
        The OpenBLAS tuning variables as the user's shell had them (None when unset), for the
        report: after a re-exec they come from the parent process.
    """
    if threads < 1:
        raise ValueError(f"{threads=} must be >= 1")
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    if unset_openblas_env:
        for var in OPENBLAS_TUNING_VARS:
            env.pop(var, None)
    if env == dict(os.environ):
        parent = os.environ.get(_PARENT_ENV)
        if parent is not None:
            return json.loads(parent)
        return {var: os.environ.get(var) for var in OPENBLAS_TUNING_VARS}
    if os.environ.get(_REEXEC_MARK):
        raise RuntimeError("pin_threads: the environment is still wrong after a re-exec")
    env[_REEXEC_MARK] = "1"
    env[_PARENT_ENV] = json.dumps({var: os.environ.get(var) for var in OPENBLAS_TUNING_VARS})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
    raise AssertionError("unreachable")  # pragma: no cover


def openblas_env_line(original: dict[str, str | None]) -> str:
    """`OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512`, noting the ones unset for this run."""
    parts = []
    for var in OPENBLAS_TUNING_VARS:
        now = os.environ.get(var)
        was = original.get(var)
        if now is None and was is not None:
            parts.append(f"{var}=<unset for this run; shell has {was}>")
        else:
            parts.append(f"{var}={'<unset>' if now is None else now}")
    return "  ".join(parts)


def _openblas_runtime_ctypes() -> list[str]:
    """Core name and thread count of each OpenBLAS loaded in this process, read with ctypes.

    The fallback when threadpoolctl is not installed; Linux only (reads /proc/self/maps).
    """
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({ln.split()[-1] for ln in maps if "openblas" in ln.lower() and ".so" in ln})
    except OSError:
        return []
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        # NumPy >= 2 wheels ship scipy-openblas with prefixed, ILP64-suffixed symbols.
        for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "64_"), ("openblas_", "")):
            corename = getattr(lib, f"{prefix}get_corename{suffix}", None)
            nthreads = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
            if corename is None or nthreads is None:
                continue
            corename.restype = ctypes.c_char_p
            found.append(
                f"{os.path.basename(path)}: kernel {corename().decode()}, {nthreads()} threads"
            )
            break
    return found


def blas_runtime() -> list[str]:
    """One line per BLAS/OpenMP library loaded: which kernel (core type) runs, with how many threads."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        lines = _openblas_runtime_ctypes()
        return [f"{ln} (via ctypes; threadpoolctl not installed)" for ln in lines] or [
            "unknown (threadpoolctl not installed and no OpenBLAS found with ctypes)"
        ]
    lines = []
    for info in threadpool_info():
        arch = info.get("architecture")
        lines.append(
            f"{info.get('internal_api')} {info.get('version') or ''} "
            f"{'kernel ' + arch + ', ' if arch else ''}{info.get('num_threads')} threads "
            f"({os.path.basename(info.get('filepath', ''))})"
        )
    return lines


def numpy_blas_line() -> str:
    """NumPy's BLAS in one line: `numpy 2.4.6, BLAS scipy-openblas 0.3.31.188.0 (... Haswell ...)`."""
    import numpy as np

    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        extra = blas.get("openblas configuration", "")
        return f"numpy {np.__version__}, BLAS {blas.get('name')} {blas.get('version')}" + (
            f" (build: {extra.strip()})" if extra else ""
        )
    except (TypeError, KeyError, AttributeError) as err:  # older NumPy without mode="dicts"
        return f"numpy {np.__version__}, BLAS unknown ({type(err).__name__})"


def cpu_line() -> str:
    """The CPU model name and the number of CPUs this process may use."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            for ln in info:
                if ln.startswith("model name"):
                    model = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return f"{model}, {usable} usable CPUs"


def time_call(fn: Callable[[], object]) -> float:
    """Wall time of one call of `fn`, in seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy ticks of the whole machine, ticks of this process), from /proc; None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        with open("/proc/self/stat") as own:
            # Fields 14 and 15 (utime, stime), counted after the parenthesized command name.
            rest = own.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10])  # already counted in user and nice
    return sum(fields) - idle - guest, int(rest[11]) + int(rest[12])


@dataclass
class Run:
    """One timed call: wall seconds, and the share of the machine's CPUs that other processes
    (or the hypervisor, as steal time) used meanwhile, 0..1 (None where /proc is missing or the
    run was too short to tell).

    A benchmark on a shared machine is only as good as its quietest runs; `others` says which
    runs were disturbed.
    """

    seconds: float
    others: float | None


def time_run(fn: Callable[[], object]) -> Run:
    before = _cpu_ticks()
    seconds = time_call(fn)
    after = _cpu_ticks()
    if before is None or after is None:
        return Run(seconds, None)
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    capacity = seconds * ticks_per_s * (os.cpu_count() or 1)
    foreign = (after[0] - before[0]) - (after[1] - before[1])
    if capacity < _MIN_TICKS:  # /proc counts in ticks (10 ms): too short a run to tell
        return Run(seconds, None)
    return Run(seconds, min(1.0, max(0.0, foreign / capacity)))


def others_busy_share(window_s: float = 1.0) -> float | None:
    """Share of the machine's CPUs used by other processes over the next `window_s` seconds."""
    return time_run(lambda: time.sleep(window_s)).others


def wait_for_quiet(timeout_s: float, threshold: float = 0.10, window_s: float = 1.0) -> bool:
    """Block until other processes use at most `threshold` of the CPUs for `window_s` seconds,
    or until `timeout_s` has passed; True if the machine was found quiet."""
    deadline = time.monotonic() + timeout_s
    while True:
        share = others_busy_share(window_s)
        if share is None or share <= threshold:
            return True
        if time.monotonic() >= deadline:
            return False


def time_interleaved(
    candidates: dict[str, Callable[[], object]],
    repeats: int,
    warmup: dict[str, Callable[[], object]] | None = None,
    wait_quiet_s: float = 0.0,
) -> dict[str, list[Run]]:
    """Time each candidate `repeats` times, round-robin, after running each warm-up once.

    Interleaving (A B C A B C ...) rather than (A A A B B B ...) spreads slow drifts of the machine
    (frequency, noisy neighbours) over all candidates, so their ratio is what stays meaningful.
    With `wait_quiet_s` > 0, each round starts only once other processes leave the CPUs alone
    (`wait_for_quiet`), waiting at most that long.
    """
    if repeats < 1:
        raise ValueError(f"{repeats=} must be >= 1")
    for fn in (warmup or {}).values():
        fn()
    runs: dict[str, list[Run]] = {name: [] for name in candidates}
    for _ in range(repeats):
        if wait_quiet_s > 0:
            wait_for_quiet(wait_quiet_s)
        for name, fn in candidates.items():
            runs[name].append(time_run(fn))
    return runs


def sgemm_gflops(size: int = 1024, budget_s: float = 0.3) -> float:
    """Best float32 `a @ b` rate over about `budget_s` seconds, in GFLOP/s: a check of the BLAS
    kernel and thread count in use. The best, not the median, because a busy machine only ever
    makes it slower."""
    import numpy as np

    a = np.ones((size, size), dtype=np.float32)
    a @ a
    best = math.inf
    end = time.perf_counter() + budget_s
    while time.perf_counter() < end:
        best = min(best, time_call(lambda: a @ a))
    return 2 * size**3 / best / 1e9


def median(values: list[float]) -> float:
    return statistics.median(values)


def median_index(values: list[float]) -> int:
    """Index of the median run (the lower middle one for an even count)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    return order[(len(values) - 1) // 2]


def print_machine_header(threads: int, torch: Any, original_openblas_env: dict[str, str | None]) -> None:
    """The lines every benchmark starts with: date, CPU, threads, BLAS, OpenBLAS settings."""
    print(f"date       : {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"machine    : {cpu_line()}")
    print(f"threads    : {threads} (OMP/OPENBLAS/MKL_NUM_THREADS={threads}, "
          f"torch.get_num_threads()={torch.get_num_threads()})")
    print(f"numpy      : {numpy_blas_line()}")
    for line in blas_runtime():
        print(f"BLAS runtime: {line}")
    print(f"OpenBLAS env: {openblas_env_line(original_openblas_env)}")


def torch_epoch(model: Any, loss_fn: Any, opt: Any, xs: Any, ys: Any, batch_size: int) -> None:
    """One PyTorch training epoch over (xs, ys) in order: the standard loop."""
    for start in range(0, len(xs), batch_size):
        xb, yb = xs[start : start + batch_size], ys[start : start + batch_size]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        loss.item()  # as gradwise, whose loss returns a Python float every batch
