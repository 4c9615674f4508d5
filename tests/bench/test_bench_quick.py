"""Smoke test of the whole `gradwise bench` suite: `--quick --json` runs every case end to end.

Speed itself is never asserted (STYLE.md: speed lives in the bench); this keeps every case from
rotting and checks the report's structure. The environment is passed through unchanged: the
suite pins its own thread count in its worker, and the OpenBLAS variables stay as the machine
has them. One thread: the tests may run beside other CPU-heavy jobs, and two BLAS threads sharing
a busy core spin-wait on each other.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gradwise.bench.cases import CASES

ROOT = Path(__file__).resolve().parents[2]
# The quick suite takes 30-60 s on a quiet 2-core machine; a hung BLAS must still fail.
TIMEOUT_S = 600
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None
# Cases whose peer is PyTorch (sklearn-mlp's is scikit-learn; import has no peer).
TORCH_PEERED = [c for c in CASES if c not in ("sklearn-mlp", "import")]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "out.json"
    done = subprocess.run(
        [sys.executable, "-m", "gradwise", "bench", "--quick", "--threads", "1", "--json", str(out)],
        cwd=ROOT, check=False, capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done, json.loads(out.read_text())


def _cases(suite: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (env,) = suite["environments"] if len(suite["environments"]) == 1 else suite["environments"][:1]
    return {c["name"]: c for c in env["cases"]}


def test_every_case_reports_gradwise_timings(quick: tuple[Any, dict[str, Any]]) -> None:
    _, suite = quick
    for env in suite["environments"]:
        assert env["errors"] == {}
        cases = {c["name"]: c for c in env["cases"]}
        assert list(cases) == list(CASES)
        for name, case in cases.items():
            ours = case["medians"][case["ours"]]
            assert ours is not None and ours > 0, name
            assert all(v > 0 for v in case["rows"][case["ours"]]), name


@pytest.mark.skipif(not HAS_TORCH, reason="ratios need PyTorch")
def test_cases_with_torch_report_a_ratio(quick: tuple[Any, dict[str, Any]]) -> None:
    cases = _cases(quick[1])
    for name in TORCH_PEERED:
        assert cases[name]["ratio"] is not None and cases[name]["ratio"] > 0, name
        assert cases[name]["peer"] in cases[name]["rows"], name
    assert "first-batch loss" in " ".join(cases["mlp-b128"]["notes"])
    assert "same network" in " ".join(cases["mlp-b128"]["notes"])


def test_sklearn_case_has_a_peer_exactly_when_installed(quick: tuple[Any, dict[str, Any]]) -> None:
    case = _cases(quick[1])["sklearn-mlp"]
    if HAS_SKLEARN:
        assert case["peer"] == "scikit-learn" and case["ratio"] > 0
    else:
        assert case["peer"] is None and "not installed" in case["peer_missing"]


def test_targets_are_reported_with_a_verdict(quick: tuple[Any, dict[str, Any]]) -> None:
    done, suite = quick
    cases = _cases(suite)
    assert [c["target"] for c in cases["mlp-b128"]["checks"]] == ["ratio <= 0.7", "gemm_fraction >= 0.7"]
    assert cases["import"]["checks"][0]["target"] == "best import gradwise < 0.3"
    assert cases["import"]["checks"][0]["met"] in (True, False)
    assert 0 < cases["mlp-b128"]["extra"]["gemm_fraction"]
    assert "summary [" in done.stdout and "verdict" in done.stdout


def test_machine_block_threads_and_blas(quick: tuple[Any, dict[str, Any]]) -> None:
    _, suite = quick
    env = suite["environments"][0]
    assert env["machine"]["threads"] == 1
    if HAS_TORCH:
        assert env["machine"]["torch_threads"] == 1
    assert env["sgemm_gflops"] > 0
    blas = " ".join(env["machine"]["blas_runtime"])
    assert "openblas" in blas.lower() and "1 threads" in blas


def test_phase_breakdowns_of_the_epoch_cases(quick: tuple[Any, dict[str, Any]]) -> None:
    cases = _cases(quick[1])
    for name in ("mlp-b128", "mlp-b32", "cnn-mnist1d", "lenet", "gru-mnist1d", "lstm-step"):
        phases = cases[name]["phases"]
        assert any("forward" in p for p in phases) and any("backward" in p for p in phases), name
        assert any(p.startswith("optimizer step") for p in phases), name


def test_openblas_environment_note(quick: tuple[Any, dict[str, Any]]) -> None:
    done, suite = quick
    tuned = [env["machine"]["openblas_env"] for env in suite["environments"]]
    if len(tuned) == 1:
        assert "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset in this environment" in done.stdout
    else:  # the machine sets them: the second column ran without
        assert tuned[0] and not tuned[1]
