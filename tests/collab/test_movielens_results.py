"""The published numbers on the real MovieLens 100k, through `gradwise train examples/movielens_collab.toml`.

Issue 12's target: a random 80/20 split, the dot-product model with 50 factors and y_range (0, 5.5),
validation MSE at most 0.81 (the fastai lesson, fastbook chapter 8, reports 0.8125 after
``fit_one_cycle(5, 5e-3, wd=0.1)``; that recipe gives 0.8121 here at the default seeds and
0.811-0.821 over 3 x 3 seeds). The example's recipe, five one-cycle epochs at lr 4e-3 with weight
decay 0.15 on the factor tables and none on the biases, measured 0.7991 at the default seeds and
0.7991-0.8000 over 3 training seeds on that split (docs/collab.md, which also gives the other split
seeds: 0.804-0.812). This test runs the example as it is (five epochs, 2-6 s) at the default seeds
and asserts the target itself, <= 0.81: 0.009 of margin, more than float summation order moves it,
while a model that learns nothing scores about 1.27 and the lesson's own recipe 0.812.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ml100k import ml100k_or_skip

from gradwise.cli.__main__ import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "movielens_collab.toml"


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *overrides: str) -> dict:
    folder = ml100k_or_skip()
    args = ["train", str(EXAMPLE), "--no-progress", "--out", str(tmp_path / "run"),
            "--set", f"data.path={json.dumps(str(folder))}"]
    for item in overrides:
        args += ["--set", item]
    code = main(args)
    assert code == 0, capsys.readouterr().err
    return json.loads((tmp_path / "run" / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Trainer. monitor=.val_loss. needs a val_loader")
def test_random_split_validation_mse_meets_the_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = _run(tmp_path, capsys)
    assert metrics["epochs"] == 5 and metrics["steps"] == 5 * 1250  # 80,000 ratings in batches of 64
    assert metrics["test"]["loss"] <= 0.81  # the held-out 20% (fastai's validation set); measured 0.7991


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Trainer. monitor=.val_loss. needs a val_loader")
def test_canonical_ua_split_test_rmse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = _run(tmp_path, capsys, "data.split=ua")
    assert metrics["test"]["rmse"] <= 0.93  # measured 0.922-0.923 over 3 seeds (docs/collab.md)
