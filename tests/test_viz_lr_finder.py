"""Tests of the learning-rate range test's plot, gradwise/viz/lr_finder.py."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from gradwise.optim.lr_curve import ABOVE_START, NON_FINITE, LRFinderResult
from gradwise.viz import plot_lr_finder


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(b"\x89PNG") and len(data) > 1000


def _result(**changes: object) -> LRFinderResult:
    lrs = np.logspace(-6, 0, 100)
    smooth = 2.3 - np.tanh((np.log10(lrs) + 3) / 0.5) + np.where(lrs > 0.1, 40 * (lrs - 0.1), 0.0)
    raw = smooth + 0.05 * np.random.default_rng(0).standard_normal(100)
    fields = {
        "lrs": lrs, "losses": raw, "smoothed": smooth, "suggestion_steepest": 1e-3,
        "suggestion_min_div10": 1e-2, "suggestion": 1e-3, "start_lr": 1e-6, "end_lr": 1.0,
        "num_steps": 100, "stop_reason": "diverged", "divergence": ABOVE_START, "divergence_step": 99,
        "divergence_lr": 1.0, "start_loss": 3.3,
    }
    return LRFinderResult(**{**fields, **changes})


@pytest.mark.parametrize(
    "changes",
    [
        {},  # diverged at a recorded step: a cross on the curve
        {"divergence": NON_FINITE, "divergence_step": 100, "divergence_lr": 1.2},  # beyond the last point
        {"divergence": None, "divergence_step": None, "divergence_lr": math.nan, "stop_reason": "completed"},
        {"stop_reason": "completed"},  # stop=False: diverged, ran on
    ],
    ids=["above-start", "non-finite", "completed", "no-stop"],
)
def test_plot_lr_finder_writes_a_png_for_every_ending(tmp_path: Path, changes: dict) -> None:
    out = plot_lr_finder(_result(**changes), tmp_path / "sub" / "lr.png")
    assert out == tmp_path / "sub" / "lr.png" and _is_png(out)


def test_plot_lr_finder_marks_the_divergence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.axes import Axes

    labels: list[str] = []
    original = Axes.legend

    def spy(self: Axes, *args: object, **kwargs: object) -> object:
        labels.extend(self.get_legend_handles_labels()[1])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "legend", spy)
    plot_lr_finder(_result(), tmp_path / "lr.png")
    assert "diverged (above-start) at 1.00e+00" in labels
    assert "steepest descent: 1.00e-03 (suggested)" in labels and "minimum / 10: 1.00e-02" in labels


def test_plot_lr_finder_without_suggestions_or_steps_and_without_pyplot(tmp_path: Path) -> None:
    had_pyplot = "matplotlib.pyplot" in sys.modules
    lrs = np.logspace(-6, 0, 100)[:3]
    flat = _result(lrs=lrs, losses=np.ones(3), smoothed=np.ones(3), suggestion_steepest=math.nan,
                   suggestion_min_div10=1e-7, suggestion=1e-7, divergence=NON_FINITE, divergence_step=3,
                   divergence_lr=2e-6, start_loss=1.0)
    assert _is_png(plot_lr_finder(flat, tmp_path / "flat.png"))
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot
