"""The verdicts of the protocol's own steps (`gradwise/diagnostics/readings.py`): initial loss,
penalty, gradient check, learning-rate range, bias/variance and data mismatch."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradwise as gw
from gradwise.diagnostics.gradcheck import GradCheckReport, TensorCheck
from gradwise.diagnostics.readings import bias_variance, expected_initial_loss, judge_gradcheck, judge_initial_loss
from gradwise.diagnostics.readings import judge_lr, judge_penalty, working_lr_range
from gradwise.optim.lr_curve import LRFinderResult


def test_expected_initial_losses() -> None:
    y = np.array([0, 1, 2, 1])
    assert expected_initial_loss(gw.losses.SoftmaxCrossEntropy(), y, 10)[0] == pytest.approx(math.log(10))
    assert expected_initial_loss(gw.losses.MulticlassHinge(divide_by_classes=False), y, 10)[0] == 9.0
    assert expected_initial_loss(gw.losses.MulticlassHinge(margin=2.0), y, 4)[0] == pytest.approx(3 * 2 / 4)
    assert expected_initial_loss(gw.losses.MSE(), np.array([1.0, -3.0]), 1)[0] == 5.0
    assert expected_initial_loss(gw.losses.BCEWithLogits(), np.array([0.0, 1.0]), 1)[0] == pytest.approx(math.log(2))
    ce = gw.losses.SoftmaxCrossEntropy()
    expected = expected_initial_loss(ce, y, 10)
    assert judge_initial_loss(2.4, expected, ce).verdict == "ok"
    assert judge_initial_loss(4.0, expected, ce).verdict == "warning"
    assert judge_initial_loss(9.0, expected, ce).verdict == "problem"
    assert "leaking" in judge_initial_loss(0.5, expected, ce).advice


def test_penalty_verdicts() -> None:
    l2 = gw.losses.L2(1e-3)
    assert judge_penalty(2.3, None, None).verdict == "ok"
    assert judge_penalty(2.3, 0.01, l2).verdict == "ok"
    assert judge_penalty(2.3, 0.0, l2).verdict == "problem"
    assert judge_penalty(2.3, 5.0, l2).verdict == "warning"


@pytest.mark.parametrize(
    ("train", "train_dev", "dev", "reading", "advice"),
    [
        (0.01, 0.02, 0.025, None, "Neither"),
        (0.15, 0.16, 0.17, "high bias", "bigger network"),
        (0.01, 0.11, 0.12, "high variance", "more data"),
        (0.15, 0.30, 0.31, "high bias and high variance", "Fix the bias first"),
    ],
)
def test_bias_variance_readings(train: float, train_dev: float, dev: float, reading: str | None, advice: str) -> None:
    checks = bias_variance(train, train_dev, dev, baseline=0.0, gap=0.05)
    bv, mismatch = checks
    assert (bv.verdict == "ok") == (reading is None)
    if reading:
        assert bv.summary.endswith(reading) or reading in bv.summary
    assert advice in bv.advice
    assert mismatch.step == "data mismatch" and mismatch.verdict == "ok"


def test_a_train_dev_split_separates_mismatch_from_variance() -> None:
    bv, mismatch = bias_variance(0.02, 0.03, 0.15, baseline=0.01, gap=0.05)
    assert bv.verdict == "ok" and bv.numbers["avoidable_bias"] == pytest.approx(0.01)
    assert mismatch.verdict == "warning" and "more like the dev data" in mismatch.advice
    # Without a train-dev set the same gap reads as variance.
    (only,) = bias_variance(0.02, None, 0.15, baseline=0.01, gap=0.05)
    assert "high variance" in only.summary


def _sweep(lrs: np.ndarray, smoothed: np.ndarray) -> LRFinderResult:
    return LRFinderResult(
        lrs=lrs, losses=smoothed, smoothed=smoothed, suggestion_steepest=float(lrs[len(lrs) // 2]),
        suggestion_min_div10=math.nan, suggestion=float(lrs[len(lrs) // 2]), start_lr=float(lrs[0]),
        end_lr=float(lrs[-1]), num_steps=len(lrs), stop_reason="completed", start_loss=float(smoothed[0]),
    )


def test_the_working_range_and_the_configured_lr() -> None:
    lrs = np.logspace(-6, 0, 61)
    # flat to 1e-4, falls from 2.3 to 0.3 at 1e-2, then rises
    s = np.where(lrs < 1e-4, 2.3, 2.3 - 2.0 * np.clip(np.log10(lrs / 1e-4) / 2, 0, 1))
    s = np.where(lrs > 1e-2, 0.3 + 5 * np.log10(lrs / 1e-2), s)
    sweep = _sweep(lrs, s)
    low, high = working_lr_range(sweep)
    assert 1e-4 < low < 3e-4 and high == pytest.approx(1e-2)
    assert judge_lr(sweep, 1e-3).verdict == "ok"
    too_high = judge_lr(sweep, 0.1)
    assert too_high.verdict == "problem" and "lr too high" in too_high.summary
    assert judge_lr(sweep, low / 2).verdict == "warning"
    too_low = judge_lr(sweep, 1e-6)
    assert too_low.verdict == "problem" and "lr probably too low" in too_low.summary
    flat = _sweep(lrs, np.full_like(lrs, 2.3))
    assert working_lr_range(flat) is None and judge_lr(flat, 1e-3).verdict == "problem"


def test_gradcheck_reading_names_the_tensor_when_layers_are_not_checked() -> None:
    ok = GradCheckReport([TensorCheck("0.weight", 1e-9, 1e-12, 20, 20)])
    assert judge_gradcheck(ok, {"0": "Linear"}).verdict == "ok"
    kinks = GradCheckReport([TensorCheck("0.weight", 3e-6, 1e-9, 20, 20)])
    assert judge_gradcheck(kinks, {"0": "Linear"}).verdict == "ok"
    bad = GradCheckReport([TensorCheck("0.weight", 1e-9, 0, 20, 20), TensorCheck("3.bias", 0.4, 0.1, 5, 5)])
    c = judge_gradcheck(bad, {"0": "Linear", "3": "MyLayer"})
    assert c.verdict == "problem" and c.where == "layer 3 (MyLayer), parameter 3.bias"
    assert judge_gradcheck(GradCheckReport([TensorCheck("0.weight", 1e-4, 0, 5, 5)]), {}).verdict == "warning"
