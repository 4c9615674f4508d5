"""`gradwise lr-find` (gradwise/cli/lr_find.py), run through a parser built with its `add_parser`."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from gradwise.cli.__main__ import main

MNIST1D_MLP = str(Path(__file__).resolve().parents[2] / "examples" / "mnist1d_mlp.toml")

SPIRAL = """
[data]
dataset = "spiral"
n_per_class = 100
[model]
layers = [
  { type = "Linear", in_features = 2, out_features = 32 },
  { type = "ReLU" },
  { type = "Linear", in_features = 32, out_features = 3 },
]
[loss]
type = "SoftmaxCrossEntropy"
[optimizer]
type = "SGD"
lr = 0.1
momentum = 0.9
[penalty]
type = "L2"
strength = 1e-3
[train]
batch_size = 32
seed = 3
"""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["lr-find", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def config(tmp_path: Path, text: str = SPIRAL) -> str:
    path = tmp_path / "spiral.toml"
    path.write_text(text)
    return str(path)


def test_writes_the_plot_and_the_csv_and_prints_a_suggestion(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "lr"
    code, out, err = run([config(tmp_path), "--out", str(out_dir), "--steps", "120", "--start-lr", "1e-5"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["config.toml", "lr_find.csv", "lr_find.png"]
    assert (out_dir / "lr_find.png").read_bytes().startswith(b"\x89PNG")
    with open(out_dir / "lr_find.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "lr", "loss", "smoothed_loss"]
    assert 10 < len(rows) <= 120 and float(rows[0]["lr"]) == 1e-5
    match = re.search(r"suggested lr: (\S+)", out)
    assert match is not None
    suggestion = float(match.group(1))
    assert 1e-5 <= suggestion <= float(rows[-1]["lr"])
    assert "steepest descent" in out and "minimum / 10" in out


@pytest.mark.slow
def test_mnist1d_example_diverges_by_the_above_start_rule_without_end_lr_advice(tmp_path: Path, capsys) -> None:
    # Issue 16: the loss saturates near chance (ln 10 = 2.30) instead of exploding; the 4x rule
    # alone let the ramp run to lr 10 and advised a larger --end-lr.
    code, out, err = run([MNIST1D_MLP, "--out", str(tmp_path / "lr")], capsys)
    assert code == 0, err
    match = re.search(r"(\d+) steps: diverged at lr (\S+) \(step (\d+)\) and stopped: the smoothed loss fell to "
                      r"\S+, then rose back above its starting level", out)
    assert match is not None, out
    assert 0.1 <= float(match.group(2)) <= 3 and int(match.group(1)) == int(match.group(3)) + 1 < 200
    assert "--end-lr" not in out
    suggestions = [float(v) for v in re.findall(r"(?:steepest descent|minimum / 10): +(\S+)", out)]
    assert len(suggestions) == 2 and all(1e-4 < v < float(match.group(2)) for v in suggestions)
    with open(tmp_path / "lr" / "lr_find.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == int(match.group(1))

    code, out, err = run([MNIST1D_MLP, "--out", str(tmp_path / "whole"), "--no-stop"], capsys)
    assert code == 0, err
    assert re.search(rf"200 steps, last lr 10: diverged at lr {re.escape(match.group(2))} \(step {match.group(3)}\)", out)
    assert "--end-lr" not in out


def test_a_ramp_that_ends_while_the_loss_falls_advises_a_larger_end_lr(tmp_path: Path, capsys) -> None:
    code, out, err = run([MNIST1D_MLP, "--out", str(tmp_path / "lr"), "--end-lr", "3e-3"], capsys)
    assert code == 0, err
    assert "200 steps, last lr 0.003: the smoothed loss was still falling" in out
    assert "(try a larger --end-lr)" in out


def test_default_directory_is_a_fresh_timestamped_run(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run([config(tmp_path), "--steps", "30"], capsys)
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}-lr-find-spiral", run_dir.name)
    assert (run_dir / "lr_find.png").is_file() and (run_dir / "lr_find.csv").is_file()


def test_refuses_an_existing_non_empty_directory(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "taken"
    out_dir.mkdir()
    (out_dir / "history.csv").write_text("epoch,loss\n")
    code, _, err = run([config(tmp_path), "--out", str(out_dir), "--steps", "30"], capsys)
    assert code == 2
    assert "already exists and is not empty" in err and "Traceback" not in err
    assert [p.name for p in out_dir.iterdir()] == ["history.csv"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--start-lr", "0"], "--start-lr"),
        (["--end-lr", "1e-9"], "--end-lr"),
        (["--end-lr", "nan"], "--end-lr"),
        (["--steps", "1"], "--steps"),
    ],
)
def test_bad_ramp_arguments_exit_2_before_writing(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    code, _, err = run([config(tmp_path), "--out", str(tmp_path / "o"), *argv], capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "o").exists()


def test_bad_config_exits_2_before_writing(tmp_path: Path, capsys) -> None:
    bad = config(tmp_path, SPIRAL.replace('type = "SGD"', 'type = "Sgd"'))
    code, _, err = run([bad, "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "Sgd" in err and "valid choices" in err
    assert not (tmp_path / "o").exists()
    code, _, err = run([str(tmp_path / "missing.toml")], capsys)
    assert code == 2 and "does not exist" in err


def test_debug_shows_the_exception(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        main(["lr-find", str(tmp_path / "missing.toml"), "--debug"])
