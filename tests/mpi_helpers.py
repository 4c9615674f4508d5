"""Running gradwise under a real MPI launcher in the tests: find ``mpiexec`` (the MPICH wheel puts
it next to the Python executable), start jobs with a timeout, find a rank's process.

A test that needs MPI calls `mpiexec_or_skip()`, which skips, saying why, when mpi4py or the
launcher is missing (``pip install -e ".[test]"`` installs both: mpi4py and mpich).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def mpiexec_or_skip() -> str:
    """The path of mpiexec, or skip the test (naming what is missing)."""
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (pip install 'gradwise[mpi]')")
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.is_file() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec launcher found (the mpich wheel provides one: pip install mpich)")
    if not Path("/proc").is_dir():
        pytest.skip("the MPI tests find the ranks' processes through /proc (Linux)")
    return found


def env() -> dict[str, str]:
    """This checkout first on the path, one BLAS thread per rank (K ranks share the cores)."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def run(command: Sequence[str], timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, env=env(), cwd=cwd or ROOT)


def start(command: Sequence[str], cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=cwd or ROOT
    )


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def rank_pid(launcher: int, rank: int) -> int | None:
    """The pid of MPI rank `rank` among the descendants of the process `launcher`, or None."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"PMI_RANK={rank}".encode() not in environ:
            continue
        ancestor = pid
        while ancestor > 1:
            ancestor = _parent(ancestor)
            if ancestor == launcher:
                return pid
    return None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition, timeout: float, what: str, poll: float = 0.01) -> None:  # type: ignore[no-untyped-def]
    """Poll `condition()` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)
