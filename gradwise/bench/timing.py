"""Timing primitives of the benchmark suite: interleaved runs, medians, ratios, a busy-machine flag.

Pure Python at import time (NumPy is imported inside `sgemm_gflops` only), so that the suite's
worker can pin its threads before any BLAS library loads.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# A run during which other processes kept more than this share of the CPUs busy is flagged.
BUSY_THRESHOLD = 0.10
# Steadiness probes whose fastest is more than this much faster than their slowest mark the run
# unsteady (`steadiness_summary`).
UNSTEADY_SPREAD = 0.25
# CPU-tick capacity (ticks x CPUs) below which a run is too short to judge how busy the machine was.
_MIN_TICKS = 40


@dataclass
class Run:
    """One timed call: wall seconds, and the share of the machine's CPUs that other processes
    (or the hypervisor, as steal time) used meanwhile, 0..1 (None where /proc is missing or the
    run was too short to tell)."""

    seconds: float
    others: float | None

    @property
    def disturbed(self) -> bool:
        return self.others is not None and self.others > BUSY_THRESHOLD


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy ticks of the whole machine, ticks of this process), from /proc; None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        with open("/proc/self/stat") as own:
            # utime and stime: fields 14 and 15, counted after the parenthesized command name.
            rest = own.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10])  # already counted in user and nice
    return sum(fields) - idle - guest, int(rest[11]) + int(rest[12])


def time_run(fn: Callable[[], object]) -> Run:
    """Call `fn` once; its wall time and how busy the rest of the machine was meanwhile."""
    before = _cpu_ticks()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    after = _cpu_ticks()
    if before is None or after is None:
        return Run(seconds, None)
    capacity = seconds * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
    if capacity < _MIN_TICKS:  # /proc counts in ticks of 10 ms: too short a run to tell
        return Run(seconds, None)
    foreign = (after[0] - before[0]) - (after[1] - before[1])
    return Run(seconds, min(1.0, max(0.0, foreign / capacity)))


def time_interleaved(
    candidates: dict[str, Callable[[], object]],
    repeats: int,
    warmup: dict[str, Callable[[], object]] | None = None,
) -> dict[str, list[Run]]:
    """Time each candidate `repeats` times, round-robin (A B C A B C ...), after one warm-up call each.

    Interleaving spreads slow drifts of the machine (frequency, noisy neighbours) over all
    candidates, so that their ratio stays meaningful when the absolute times do not.
    """
    if repeats < 1:
        raise ValueError(f"{repeats=} must be >= 1")
    for fn in (warmup or {}).values():
        fn()
    runs: dict[str, list[Run]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            runs[name].append(time_run(fn))
    return runs


def median(values: Sequence[float]) -> float:
    """The median; for an even count the mean of the two middle values."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def median_index(values: Sequence[float]) -> int:
    """Index of the median run (the lower middle one for an even count)."""
    if not values:
        raise ValueError("median_index of no values")
    order = sorted(range(len(values)), key=values.__getitem__)
    return order[(len(values) - 1) // 2]


def ratio(ours: float | None, peer: float | None) -> float | None:
    """ours / peer, the suite's ratio (< 1: gradwise is faster); None when either is missing."""
    if ours is None or peer is None or peer <= 0 or not math.isfinite(peer):
        return None
    return ours / peer


def sgemm_gflops(size: int = 1024, budget_s: float = 0.3) -> float:
    """Best float32 `a @ b` rate over about `budget_s` seconds, in GFLOP/s.

    The best call, not the median: a busy machine only ever makes it slower.
    """
    import numpy as np

    a = np.ones((size, size), dtype=np.float32)
    a @ a
    best = math.inf
    end = time.perf_counter() + budget_s
    while True:
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() >= end:
            break
    return 2 * size**3 / best / 1e9


def steadiness_probe(size: int = 384, calls: int = 15) -> float:
    """The median rate (GFLOP/s) of `calls` float32 `a @ b` products of `size`^3 (10-20 ms):
    a reading of how fast the machine is right now, taken before each case.

    The median, not the best call: the probes are compared with each other, and a host whose
    other tenants slow it down for seconds at a time (seen on shared cloud machines: the same
    epoch 2x slower from one run to the next while this machine's own CPUs were idle) shows up
    as a spread between them that no per-process CPU count reveals.
    """
    import numpy as np

    a = np.ones((size, size), dtype=np.float32)
    a @ a
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - start)
    return 2 * size**3 / median(times) / 1e9


def steadiness_summary(probes: Sequence[float]) -> tuple[str, bool]:
    """The report line of the probes (min, median, max, spread) and whether the spread is large
    enough (max / min above `UNSTEADY_SPREAD`) to warn that ratios may mislead."""
    if not probes:
        return "unknown", False
    lo, mid, hi = min(probes), median(probes), max(probes)
    spread = hi / lo - 1 if lo > 0 else math.inf
    line = f"{lo:.0f} / {mid:.0f} / {hi:.0f} GFLOP/s (min / median / max of {len(probes)}), spread {spread:.0%}"
    return line, spread > UNSTEADY_SPREAD

