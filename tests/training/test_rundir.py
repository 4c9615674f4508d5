"""Tests for gradwise/training/rundir.py."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import tomllib
from safetensors.numpy import load_file

from gradwise.training import rundir as rundir_module
from gradwise.training.rundir import RunDir, atomic_write_bytes, read_csv_rows, rows_to_csv


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert _leftovers(tmp_path) == []


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_create_makes_the_directory(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "a" / "b")
    assert run.path.is_dir()
    # An existing empty directory is fine.
    assert RunDir.create(tmp_path / "a" / "b").path == run.path


def test_create_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "old_run").mkdir()
    (tmp_path / "old_run" / "history.csv").write_text("epoch\n0\n")
    with pytest.raises(FileExistsError, match="not empty.*never writes over an earlier run"):
        RunDir.create(tmp_path / "old_run")
    assert (tmp_path / "old_run" / "history.csv").read_text() == "epoch\n0\n"
    assert RunDir.create(tmp_path / "old_run", exist_ok=True).path == tmp_path / "old_run"


def test_create_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        RunDir.create(tmp_path / "f", exist_ok=True)


def test_new_uses_a_timestamp_and_suffixes_taken_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = RunDir.new(tmp_path / "runs", name="mlp")
    assert re.fullmatch(r"\d{8}-\d{6}-mlp", first.path.name)
    monkeypatch.setattr(rundir_module.time, "strftime", lambda fmt: "20240101-120000")
    names = [RunDir.new(tmp_path / "runs", name="mlp").path.name for _ in range(3)]
    assert names == ["20240101-120000-mlp", "20240101-120000-mlp-2", "20240101-120000-mlp-3"]
    assert all((tmp_path / "runs" / n).is_dir() for n in names)


@pytest.mark.parametrize("name", ["", "a/b", ".."])
def test_new_rejects_path_like_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        RunDir.new(tmp_path, name=name)


def test_write_config_is_toml(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    cfg = {"optimizer": {"type": "Adam", "lr": 0.01}, "train": {"epochs": 3}}
    run.write_config(cfg)
    assert tomllib.loads(run.config_path.read_text()) == cfg


def test_write_metrics_is_strict_json(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    run.write_metrics(
        {"acc": np.float32(0.5), "loss": math.nan, "steps": np.int64(3), "per_class": np.array([1, 2])}
    )
    text = run.metrics_path.read_text()
    assert "NaN" not in text
    assert json.loads(text) == {"acc": 0.5, "loss": None, "steps": 3, "per_class": [1, 2]}
    assert run.read_metrics()["steps"] == 3


def test_save_weights_round_trip(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    state = {"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "0.bias": np.ones(2, dtype=np.float64)}
    path = run.save_weights(state, "best")
    assert path == tmp_path / "run" / "checkpoints" / "best.safetensors"
    loaded = load_file(str(path))
    assert loaded.keys() == state.keys()
    for k in state:
        np.testing.assert_array_equal(loaded[k], state[k])
        assert loaded[k].dtype == state[k].dtype
    np.testing.assert_array_equal(run.load_weights("best")["0.weight"], state["0.weight"])
    with pytest.raises(ValueError, match="plain file stem"):
        run.weights_path("../evil")


def test_append_history_widens_the_header(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    run.append_history({"epoch": 0, "loss": 0.5})
    run.append_history({"epoch": 1, "loss": 0.25, "extra": 1.5})
    rows = run.read_history()
    assert run.history_path.read_text().splitlines()[0] == "epoch,loss,extra"
    assert rows[0]["epoch"] == 0 and rows[1]["extra"] == 1.5
    assert math.isnan(rows[0]["extra"])


def test_csv_floats_round_trip_exactly(tmp_path: Path) -> None:
    rows = [{"epoch": 0, "loss": 0.1 + 0.2, "val_loss": math.inf}]
    path = tmp_path / "h.csv"
    path.write_bytes(rows_to_csv(rows))
    back = read_csv_rows(path)
    assert back[0]["loss"] == 0.1 + 0.2
    assert back[0]["val_loss"] == math.inf


def test_write_history_with_no_rows_writes_the_header(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    run.write_history([], columns=["epoch", "loss"])
    assert run.history_path.read_text() == "epoch,loss\n"
    assert run.read_history() == []


def test_paths(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    assert not run.path.exists()  # wrapping a path does not touch the disk
    assert run.plots_dir == tmp_path / "r" / "plots"
    assert run.checkpoints_dir == tmp_path / "r" / "checkpoints"
    assert Path(run) == tmp_path / "r"
