"""The training-health verdicts of `gradwise/diagnostics/checks.py` and their thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradwise.diagnostics.checks import (
    Thresholds,
    judge_activations,
    judge_dead,
    judge_grad_norms,
    judge_loss_curve,
    judge_saturated,
    judge_update_ratios,
)


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
