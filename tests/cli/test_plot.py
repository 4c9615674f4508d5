"""`gradwise plot RUN_DIR` (gradwise/cli/plot.py), run through a parser built with its `add_parser`."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

import gradwise as gw
from gradwise.cli.plot import add_parser, cmd_plot
from gradwise.data.datasets import make_spiral
from gradwise.data.loader import DataLoader
from gradwise.layers import Linear, ReLU
from gradwise.losses import SoftmaxCrossEntropy
from gradwise.training.histograms import HistogramSnapshots
from gradwise.training.metrics import accuracy


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gradwise")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("cli-plot") / "run"
    x, y = make_spiral(40, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    model = gw.Sequential(Linear(2, 16, rng=rng), ReLU(), Linear(16, 3, rng=rng))
    gw.Trainer(
        model, SoftmaxCrossEntropy(), gw.optim.Adam(model.parameters(), lr=1e-2), metrics=[accuracy],
        progress=False, run_dir=run, callbacks=[HistogramSnapshots(epochs=(3,))],
    ).fit(DataLoader(x, y, batch_size=40), DataLoader(x, y, batch_size=120), epochs=3)
    return run


def test_plot_writes_into_the_run_plots_directory(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["plot", str(run_dir)])
    assert args.func is cmd_plot
    assert args.func(args) == 0
    out = capsys.readouterr().out
    expected = ["loss.png", "accuracy.png", "lr.png", "histograms_epoch_0003.png"]
    assert out.startswith(f"gradwise: wrote 4 plot(s) to {run_dir / 'plots'}: ")
    for name in expected:
        path = run_dir / "plots" / name
        assert name in out and path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 1000


def test_plot_out_and_smoothing(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["plot", str(run_dir), "--out", str(tmp_path / "figs"), "--smoothing", "0.5"])
    assert cmd_plot(args) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "accuracy.png", "histograms_epoch_0003.png", "loss.png", "lr.png",
    ]
    assert str(tmp_path / "figs") in capsys.readouterr().out


def test_errors_propagate_for_main_to_print(tmp_path: Path, run_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cmd_plot(parse(["plot", str(tmp_path / "nope")]))
    with pytest.raises(FileNotFoundError, match="nothing to plot"):
        cmd_plot(parse(["plot", str(tmp_path)]))
    with pytest.raises(ValueError, match="--smoothing 1 must be in"):
        cmd_plot(parse(["plot", str(run_dir), "--smoothing", "1"]))


def test_run_dir_is_required() -> None:
    with pytest.raises(SystemExit):
        parse(["plot"])
