"""The published numbers on the real MovieLens 100k, through `gradwise train examples/movielens_collab.toml`.

The fastai lesson (fastbook chapter 8: ``fit_one_cycle(5, 5e-3, wd=0.1)``, 50 factors, y_range
(0, 5.5), batch 64, random 80/20 split) reports a validation MSE of 0.8125. The same recipe gives
0.811-0.821 here over 3 split seeds x 3 training seeds, and 0.812-0.821 in a PyTorch replica on
the same splits (docs/collab.md): the lesson's 0.81 is one draw of that spread. This test runs
the example's default seeds (measured 0.8121) and asserts <= 0.815, so that a broken backward,
optimizer or schedule (the MSE of a model that learns nothing is about 1.27) is caught while float
summation order may differ across machines. Five epochs take 2-5 s.
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
def test_random_split_validation_mse_of_the_lesson(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = _run(tmp_path, capsys)
    assert metrics["epochs"] == 5 and metrics["steps"] == 5 * 1250  # 80,000 ratings in batches of 64
    assert metrics["test"]["loss"] <= 0.815  # the held-out 20%: fastai's validation set


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Trainer. monitor=.val_loss. needs a val_loader")
def test_canonical_ua_split_test_rmse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = _run(tmp_path, capsys, "data.split=ua")
    assert metrics["test"]["rmse"] <= 0.94  # measured 0.931-0.933 (docs/collab.md)
