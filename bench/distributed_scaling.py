"""The scaling figure of docs/distributed.md: samples/s of data-parallel training for K = 1, 2
ranks on this machine, the collectives' share of the training time, and the cost of one
gradient all-reduce alone.

    python bench/distributed_scaling.py                 # both models, 5 rounds each
    python bench/distributed_scaling.py --rounds 3 --hidden 100

Each round runs examples/distributed_mlp.py (float64, global batch 100, one BLAS thread per rank)
once in one process and once under ``mpiexec -n 2``, alternating, and the best round of each is
reported (the machine is shared: the best is the least disturbed). The all-reduce alone is timed
by a loop of ``Iallreduce`` on a buffer of the model's gradient size between two ranks.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "distributed_mlp.py"
ALLREDUCE = """
import sys, time, numpy as np
from gradwise.distributed import Communicator
comm = Communicator(timeout=60)
buf = np.zeros(int(sys.argv[1]) // 8)
for _ in range(5):
    comm.allreduce_(buf)
best = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    for _ in range(20):
        comm.allreduce_(buf)
    best.append((time.perf_counter() - t) / 20)
if comm.rank == 0:
    print(f"{min(best) * 1e3:.3f}")
"""


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def mpiexec() -> str:
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.is_file() else shutil.which("mpiexec")
    if found is None:
        sys.exit("no mpiexec: pip install 'gradwise[mpi]'")
    return found


def train(ranks: int, hidden: int, epochs: int) -> tuple[float, float | None, int]:
    command = [sys.executable, str(EXAMPLE), "--epochs", str(epochs), "--hidden", str(hidden)]
    if ranks > 1:
        command = [mpiexec(), "-n", str(ranks), *command]
    out = subprocess.run(command, capture_output=True, text=True, env=env(), check=True, timeout=600).stdout
    rate = float(re.search(r"\(([\d,]+) samples/s\)", out).group(1).replace(",", ""))  # type: ignore[union-attr]
    share = re.search(r"collectives: ([\d.]+) s of ([\d.]+) s", out)
    nbytes = re.search(r"all-reduces of ([\d,]+) bytes", out)
    return (
        rate,
        None if share is None else float(share.group(1)) / float(share.group(2)),
        0 if nbytes is None else int(nbytes.group(1).replace(",", "")),
    )


def allreduce_ms(nbytes: int, rounds: int) -> float:
    command = [mpiexec(), "-n", "2", sys.executable, "-c", ALLREDUCE, str(nbytes), str(rounds)]
    return float(subprocess.run(command, capture_output=True, text=True, env=env(), check=True, timeout=600).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hidden", type=int, action="append", help="hidden units (default: 100 and 1000)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for hidden in args.hidden or [100, 1000]:
        epochs = 3 if hidden <= 256 else 1
        one, two = [], []
        for _ in range(args.rounds):
            one.append(train(1, hidden, epochs))
            two.append(train(2, hidden, epochs))
        best1 = max(one, key=lambda r: r[0])
        best2 = max(two, key=lambda r: r[0])
        ms = allreduce_ms(best2[2], args.rounds)
        steps_per_s = best2[0] / 100  # global batch 100
        print(
            f"hidden {hidden}: K=1 {best1[0]:,.0f} samples/s, K=2 {best2[0]:,.0f} samples/s "
            f"(speed-up {best2[0] / best1[0]:.2f}); collectives {best2[1]:.0%} of the K=2 time; "
            f"one all-reduce of {best2[2]:,} bytes alone {ms:.3f} ms = {ms * steps_per_s / 1e3:.0%} of a K=2 step"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
