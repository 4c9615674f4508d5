"""The verdicts: `gradwise/diagnostics/checks.py` (training health), `readings.py` (the protocol's
own steps) and `report.py` (`Diagnosis`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import gradwise as gw
from gradwise.diagnostics.checks import (
    Check,
    Thresholds,
    judge_activations,
    judge_dead,
    judge_grad_norms,
    judge_loss_curve,
    judge_saturated,
    judge_update_ratios,
    worst,
)
from gradwise.diagnostics.readings import bias_variance, expected_initial_loss, judge_initial_loss, judge_penalty
from gradwise.diagnostics.report import Diagnosis


def test_update_ratio_bands() -> None:
    assert judge_update_ratios({"w": [1e-3, 2e-3]}).verdict == "ok"
    low = judge_update_ratios({"a.weight": [5e-5], "b.weight": [1e-3]})
    assert (low.verdict, low.where) == ("warning", "a.weight") and "too low" in low.advice
    assert judge_update_ratios({"w": [1e-7]}).verdict == "problem"
    high = judge_update_ratios({"w": [0.1, 0.2, 0.1]})
    assert high.verdict == "warning" and "too high" in high.advice
    assert judge_update_ratios({"w": [0.9]}).verdict == "problem"
    assert judge_update_ratios({"w": [0.0, 0.0]}).verdict == "ok"  # does not move: the gradient check's business


def test_dead_saturated_and_activation_verdicts() -> None:
    assert judge_dead({"1": 0.1}).verdict == "ok"
    assert judge_dead({"1": 0.1, "3": 0.6}).where == "3"
    assert judge_dead({"1": 0.9}).verdict == "problem"
    assert judge_saturated({}).verdict == "ok"
    assert judge_saturated({"2": 0.35}).verdict == "warning"
    assert judge_saturated({"2": 0.7}).verdict == "problem"
    assert judge_activations({"0": (0.0, 1.0)}).verdict == "ok"
    assert judge_activations({"0": (0.0, 1.0), "2": (0.0, 0.0)}).where == "2"
    assert judge_activations({"0": (math.nan, 1.0)}).verdict == "problem"


def test_gradient_norm_verdicts() -> None:
    sizes = {"0.weight": 100, "2.weight": 100}
    assert judge_grad_norms({"0.weight": 1.0, "2.weight": 2.0}, sizes).verdict == "ok"
    vanish = judge_grad_norms({"0.weight": 1e-6, "2.weight": 1.0}, sizes)
    assert vanish.verdict == "warning" and vanish.where == "0.weight" and "vanish" in vanish.advice
    explode = judge_grad_norms({"0.weight": 1e4, "2.weight": 1.0}, sizes)
    assert explode.where == "2.weight" and "exploding" in explode.advice
    assert judge_grad_norms({"0.weight": 0.0, "2.weight": 1.0}, sizes).verdict == "problem"
    assert judge_grad_norms({"0.weight": math.inf, "2.weight": 1.0}, sizes).verdict == "problem"


def test_loss_curve_verdicts() -> None:
    assert judge_loss_curve(np.linspace(2, 1, 100)).verdict == "ok"
    flat = judge_loss_curve([2.0] * 100)
    assert flat.verdict == "problem" and "too low" in flat.advice
    rise = judge_loss_curve(np.linspace(1, 2, 100))
    assert rise.verdict == "problem" and "too high" in rise.advice
    nan = judge_loss_curve([2.0, 1.5, math.nan])
    assert nan.verdict == "problem" and nan.numbers["nonfinite_at"] == 3


def test_thresholds_are_checked() -> None:
    with pytest.raises(ValueError, match="dead_warning"):
        Thresholds(dead_warning=0.9, dead_problem=0.8)
    strict = Thresholds(dead_warning=0.05, dead_problem=0.1)
    assert judge_dead({"1": 0.2}, strict).verdict == "problem"


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


def test_a_diagnosis_renders_as_table_markdown_and_json() -> None:
    d = Diagnosis(checks=[
        Check("initial loss", "ok", "2.3 vs ln(10)", "Fine."),
        Check("dead ReLUs", "problem", "90% | dead", "Lower the lr.", "1", {"x": math.nan}),
        Check("bias/variance", "warning", "high bias", "Bigger network."),
    ], info={"train_samples": 10, "seconds": {"a": 1.0}})
    assert d.verdict == "problem" and d.exit_code == 1 and [c.step for c in d.problems] == ["dead ReLUs"]
    assert d["dead ReLUs"].where == "1" and "dead ReLUs" in d
    with pytest.raises(KeyError, match="no step"):
        d["nope"]
    md = d.to_markdown(["plots/a.png"])
    assert "| 2 | dead ReLUs (**1**) | PROBLEM | 90% \\| dead | Lower the lr. |" in md and "![a](plots/a.png)" in md
    doc = json.loads(d.json_text())  # strict JSON: NaN became null
    assert doc["checks"][1]["numbers"]["x"] is None and doc["exit_code"] == 1
    assert d.table().row_count == 3
    assert worst(["ok", "warning"]) == "warning" and worst([]) == "ok"
    with pytest.raises(ValueError, match="verdict"):
        Check("x", "bad", "", "")
