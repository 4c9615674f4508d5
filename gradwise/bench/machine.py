"""What the suite runs on: CPU, threads, NumPy's BLAS and the kernel it actually runs.

No NumPy at import time: the runner (parent process) imports this module to build the workers'
environments, and thread counts are read once, when a BLAS library loads.
"""

from __future__ import annotations

import os
import time
from typing import Any

# Read by OpenBLAS (NumPy), libgomp/MKL (PyTorch) and other BLAS builds when they load.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# OpenBLAS kernel selection and cache-size tuning. A machine may set them (PERF-NOTES.md) and
# they can pick a slower kernel than the one OpenBLAS detects; the suite reports both settings
# and never changes them anywhere else.
OPENBLAS_TUNING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def openblas_tuning(env: dict[str, str] | None = None) -> dict[str, str]:
    """The OpenBLAS tuning variables set in `env` (default: this process's environment)."""
    env = dict(os.environ) if env is None else env
    return {var: env[var] for var in OPENBLAS_TUNING_VARS if var in env}


def worker_env(threads: int, unset_openblas: bool, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker process: every thread variable set to `threads`, and the
    OpenBLAS tuning variables removed when `unset_openblas`."""
    if threads < 1:
        raise ValueError(f"{threads=} must be >= 1")
    env = dict(os.environ) if base is None else dict(base)
    for var in THREAD_VARS:
        env[var] = str(threads)
    if unset_openblas:
        for var in OPENBLAS_TUNING_VARS:
            env.pop(var, None)
    return env


def check_threads(threads: int) -> None:
    """Raise if this process's environment does not pin `threads` threads (call before NumPy loads)."""
    wrong = {var: os.environ.get(var) for var in THREAD_VARS if os.environ.get(var) != str(threads)}
    if wrong:
        raise RuntimeError(
            f"gradwise.bench worker: expected {threads} threads in the environment, got {wrong}; "
            "run the suite with `gradwise bench`, which sets them before NumPy loads"
        )


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


def numpy_blas_line() -> str:
    """NumPy's BLAS in one line: `numpy 2.4.6, BLAS scipy-openblas 0.3.31...`."""
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"numpy {np.__version__}, BLAS {blas.get('name')} {blas.get('version')}"
    except (TypeError, KeyError, AttributeError) as err:  # older NumPy without mode="dicts"
        return f"numpy {np.__version__}, BLAS unknown ({type(err).__name__})"


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
            found.append(f"{os.path.basename(path)}: kernel {corename().decode()}, {nthreads()} threads (ctypes)")
            break
    return found


def blas_runtime() -> list[str]:
    """One line per BLAS/OpenMP library loaded: which kernel (core type) runs, with how many threads.

    Uses threadpoolctl when installed (the `test` and `bench` extras), else reads OpenBLAS with ctypes.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return _openblas_runtime_ctypes() or ["unknown (threadpoolctl not installed, no OpenBLAS found with ctypes)"]
    lines = []
    for info in threadpool_info():
        arch = info.get("architecture")
        lines.append(
            f"{info.get('internal_api')} {info.get('version') or ''} "
            f"{'kernel ' + arch + ', ' if arch else ''}{info.get('num_threads')} threads "
            f"({os.path.basename(info.get('filepath', ''))})"
        )
    return lines


def describe(threads: int, torch: Any | None) -> dict[str, Any]:
    """The machine block of the report (JSON-ready)."""
    import gradwise

    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu_line(),
        "threads": threads,
        "torch_threads": None if torch is None else torch.get_num_threads(),
        "numpy": numpy_blas_line(),
        "blas_runtime": blas_runtime(),
        "openblas_env": openblas_tuning(),
        "gradwise": gradwise.__version__,
        "torch": None if torch is None else torch.__version__,
    }
