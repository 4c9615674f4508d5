"""The `collab-movielens` case of `gradwise bench` (gradwise/bench/cases/collab.py), in quick mode:
real MovieLens when present, synthetic ratings of the same shape otherwise (said in a note)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ml100k import candidates

from gradwise.bench.cases import load
from gradwise.bench.context import Context
from gradwise.bench.report import format_case

HAS_TORCH = importlib.util.find_spec("torch") is not None


def test_synthetic_ratings_without_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRADWISE_DATA", raising=False)
    monkeypatch.setenv("GRADWISE_CACHE", str(tmp_path / "cache"))
    result = load("collab-movielens")(Context.create(quick=True, repeats=1, threads=1, no_peers=True))
    assert set(result.rows) == {"gradwise Trainer", "gradwise hand loop"} and result.peer is None
    assert result.median_of(result.ours) > 0
    assert "synthetic ratings" in " ".join(result.notes) and "EmbeddingDotBias(944, 1683, 50)" in result.title
    assert any("backward" in p for p in result.phases) and any(p.startswith("optimizer step") for p in result.phases)
    assert "gradwise alone" in "\n".join(format_case(result))


@pytest.mark.oracle
@pytest.mark.skipif(not HAS_TORCH, reason="the peer is PyTorch")
def test_against_torch_on_movielens(monkeypatch: pytest.MonkeyPatch) -> None:
    found = [p for p in candidates() if (p / "u.data").is_file()]
    if not found:
        pytest.skip("MovieLens 100k not found; the synthetic path is tested above")
    monkeypatch.setenv("GRADWISE_DATA", str(found[0].parent))
    result = load("collab-movielens")(Context.create(quick=True, repeats=1, threads=1))
    assert result.peer == "PyTorch" and result.ratio is not None and result.ratio > 0
    notes = " ".join(result.notes)
    assert "same network" in notes and "MovieLens 100k (the random 80/20 split" in notes
