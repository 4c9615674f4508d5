"""`gradwise diagnose` (gradwise/cli/diagnose.py): exit 0 / 1 / 2, the run directory, bad input;
and ``[train] babysit = true`` for `gradwise train`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gradwise.cli.__main__ import main

SPIRAL = """
[data]
dataset = "spiral"
n_per_class = 150
[model]
layers = [
  {{ type = "Linear", in_features = 2, out_features = 64 }},
  {{ type = "ReLU" }},
  {{ type = "Linear", in_features = 64, out_features = 3 }},
]
[loss]
type = "SoftmaxCrossEntropy"
[optimizer]
type = "Adam"
lr = {lr}
[penalty]
type = "L2"
strength = 1e-4
[train]
epochs = 2
batch_size = 32
seed = 3
{extra}
"""


def config(tmp_path: Path, lr: float = 1e-2, extra: str = "", text: str | None = None) -> str:
    path = tmp_path / "spiral.toml"
    path.write_text(text if text is not None else SPIRAL.format(lr=lr, extra=extra))
    return str(path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_healthy_config_exits_0_and_writes_the_report(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "diag"
    code, out, err = run(["diagnose", config(tmp_path), "--out", str(out_dir), "--steps", "400"], capsys)
    assert code == 0, out + err
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["babysit.csv", "config.toml", "lr_sweep.csv", "plots", "report.json", "report.md"]
    plots = sorted(p.name for p in (out_dir / "plots").iterdir())
    assert {"activations.png", "lr_sweep.png", "update_ratios.png", "units.png"} <= set(plots)
    assert all((out_dir / "plots" / p).read_bytes().startswith(b"\x89PNG") for p in plots)
    report = json.loads((out_dir / "report.json").read_text())
    assert report["exit_code"] == 0 and report["info"]["train_dev_samples"] > 0  # dev = the val split
    assert "gradwise diagnose" in out and "nothing is a problem" in out
    assert "![activations](plots/activations.png)" in (out_dir / "report.md").read_text()


def test_a_problem_exits_1(tmp_path: Path, capsys) -> None:
    code, out, _ = run(["diagnose", config(tmp_path, lr=1e-6), "--out", str(tmp_path / "d"), "--steps", "150",
                        "--no-plots"], capsys)
    assert code == 1
    assert "problem(s)" in out
    assert not (tmp_path / "d" / "plots").exists()


def test_an_unknown_config_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    code, out, err = run(["diagnose", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "d")], capsys)
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err
    assert not (tmp_path / "d").exists()
    code, _, err = run(["diagnose", config(tmp_path, extra="epochz = 3"), "--out", str(tmp_path / "d")], capsys)
    assert code == 2 and "unknown key 'epochz'" in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()


def test_a_model_output_that_does_not_fit_the_loss_is_exit_2(tmp_path: Path, capsys) -> None:
    text = SPIRAL.format(lr=1e-2, extra="").replace("out_features = 3", "out_features = 2")
    code, _, err = run(["diagnose", config(tmp_path, text=text), "--out", str(tmp_path / "d")], capsys)
    assert code == 2 and "labels do not fit the model's output" in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()


def test_data_with_nan_is_exit_2_before_anything_is_written(tmp_path: Path, capsys, monkeypatch) -> None:
    from gradwise.cli.config import datasets

    real = datasets.LOADERS["spiral"]

    def with_nan(body, rng):  # the spiral with one broken sample, as a bad CSV would give
        x_train, y_train, x_test, y_test = real(body, rng)
        x_train = x_train.copy()
        x_train[5, 0] = np.nan
        return x_train, y_train, x_test, y_test

    monkeypatch.setitem(datasets.LOADERS, "spiral", with_nan)
    code, _, err = run(["diagnose", config(tmp_path), "--out", str(tmp_path / "d")], capsys)
    assert code == 2 and "NaN" in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()


def test_never_writes_over_an_existing_run_directory(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "d"
    out_dir.mkdir()
    (out_dir / "report.md").write_text("an earlier diagnosis")
    code, _, err = run(["diagnose", config(tmp_path), "--out", str(out_dir)], capsys)
    assert code == 2 and "already exists and is not empty" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["report.md"]
    assert (out_dir / "report.md").read_text() == "an earlier diagnosis"


@pytest.mark.parametrize(("flag", "value"), [("--steps", "0"), ("--gap", "-1"), ("--baseline-error", "-0.1")])
def test_bad_options_are_exit_2(tmp_path: Path, capsys, flag: str, value: str) -> None:
    code, _, err = run(["diagnose", config(tmp_path), "--out", str(tmp_path / "d"), flag, value], capsys)
    assert code == 2 and flag in err
    assert not (tmp_path / "d").exists()


def test_train_babysit_true_records_the_checks_in_the_run_directory(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "run"
    code, _, err = run(["train", config(tmp_path, extra="babysit = true"), "--out", str(out_dir), "--no-progress"], capsys)
    assert code == 0, err
    assert (out_dir / "babysit.csv").is_file() and (out_dir / "babysit_alerts.csv").is_file()
    header = (out_dir / "history.csv").read_text().splitlines()[0].split(",")
    assert {"update_ratio", "dead_relu", "grad_norm", "babysit_alerts"} <= set(header)
    assert (out_dir / "plots" / "babysit_update_ratios.png").is_file()


def test_train_without_babysit_writes_no_babysit_files(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "run"
    code, _, err = run(["train", config(tmp_path), "--out", str(out_dir), "--no-progress", "--epochs", "1"], capsys)
    assert code == 0, err
    assert not (out_dir / "babysit.csv").exists()
