"""Smoke test of bench/bench_mlp.py: `--quick` runs end to end and reports a ratio.

Speed itself is never asserted (STYLE.md: speed lives in `bench/`); this only keeps the script
from rotting. The environment is passed through unchanged: the script pins its own thread count
(by re-executing itself) and the OpenBLAS variables are left as the machine has them.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "bench_mlp.py"
# One thread: the suite may run beside other CPU-heavy tests, and two BLAS threads sharing a busy
# core spin-wait on each other (a quick run then takes tens of seconds instead of a few). The thread
# pinning and re-exec path is exercised all the same (the variables are set to 1).
# Generous: the run takes about 4-8 s (2 s of it `import torch`); a hung BLAS must still fail.
TIMEOUT_S = 120

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="bench_mlp.py compares against PyTorch"
)


@pytest.fixture(scope="module")
def quick_run() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--threads", "1"],
        cwd=ROOT,
        check=False,  # the tests report the exit status with the output
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def test_quick_run_exits_cleanly(quick_run: subprocess.CompletedProcess[str]) -> None:
    assert quick_run.returncode == 0, f"stdout:\n{quick_run.stdout}\nstderr:\n{quick_run.stderr}"


def test_quick_run_prints_a_ratio_against_pytorch(quick_run: subprocess.CompletedProcess[str]) -> None:
    ratios = re.findall(r"^ratio gradwise [\w ]+ / PyTorch: (\d+\.\d+)", quick_run.stdout, flags=re.MULTILINE)
    assert ratios, f"no ratio line in the output:\n{quick_run.stdout}"
    assert all(float(r) > 0 for r in ratios)


def test_quick_run_reports_blas_threads_and_breakdown(quick_run: subprocess.CompletedProcess[str]) -> None:
    out = quick_run.stdout
    assert re.search(r"^threads\s*: 1 ", out, flags=re.MULTILINE), out
    assert re.search(r"^numpy\s*: numpy \S+, BLAS ", out, flags=re.MULTILINE), out
    assert "OpenBLAS env:" in out
    for phase in ("forward", "backward", "optimizer step"):
        assert re.search(rf"^  {phase}.* s .* %", out, flags=re.MULTILINE), f"no {phase!r} line:\n{out}"
