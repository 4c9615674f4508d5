"""Smoke test of bench/soak_resume.py: `--quick` kills `gradwise train` 3 times and resumes it.

The script asserts the substance itself (exit status 1 otherwise): every checkpoint seen after a
kill reads back and verifies, the checkpoint it damaged after one kill is passed over on resume
and kept as ``*.corrupt``, and the final weights and history equal an uninterrupted run's.
Speed is never asserted; the timeout only catches a hang.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "soak_resume.py"
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def quick_soak() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--seed", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_quick_soak_exits_cleanly(quick_soak: subprocess.CompletedProcess[str]) -> None:
    assert quick_soak.returncode == 0, f"stdout:\n{quick_soak.stdout}\nstderr:\n{quick_soak.stderr}"


def test_quick_soak_killed_three_times_and_ended_identical(quick_soak: subprocess.CompletedProcess[str]) -> None:
    out = quick_soak.stdout
    assert re.search(r"^kills: 3 ", out, flags=re.MULTILINE), out
    assert re.search(r"^identical to the uninterrupted run: yes$", out, flags=re.MULTILINE), out
    line = r"^checkpoints verified after kills: \d+; latest step after each kill: \["
    assert re.search(line, out, flags=re.MULTILINE), out
    damaged = (
        r"^checkpoints damaged after a kill: 1 \['step-\d{8}(-end)?'\]; "
        r"passed over on resume and kept as \*\.corrupt: yes$"
    )
    assert re.search(damaged, out, flags=re.MULTILINE), out
    assert "FAILED" not in out
