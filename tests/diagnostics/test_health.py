"""`gradwise/diagnostics/health.py`: update/weight ratios, dead and saturated fractions, gradient
norms and the activation probe."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradwise as gw
from gradwise.diagnostics.health import (
    ActivationProbe,
    dead_fraction,
    global_norm,
    grad_norms,
    non_finite,
    observed_modules,
    saturated_fraction,
    update_ratios,
    weight_snapshot,
)
from gradwise.layers import Conv1d, Dropout, Flatten, Linear, ReLU, Sigmoid, Tanh


def test_update_ratios_is_the_update_norm_over_the_weight_norm() -> None:
    before = {"w": np.array([[3.0, 4.0]]), "b": np.zeros(2), "still": np.ones(3), "gone": np.ones(1)}
    after = {"w": np.array([[3.0, 4.5]]), "b": np.array([0.0, 1.0]), "still": np.ones(3)}
    r = update_ratios(before, after)
    assert r["w"] == pytest.approx(0.5 / 5.0)
    assert r["b"] == math.inf  # a zero weight that moved
    assert r["still"] == 0.0
    assert "gone" not in r  # only names present on both sides
    assert math.isnan(update_ratios({"w": np.ones(2)}, {"w": np.array([1.0, np.nan])})["w"])
    with pytest.raises(ValueError, match="shape"):
        update_ratios({"w": np.ones(2)}, {"w": np.ones(3)})


def test_a_snapshot_is_a_copy_and_ratios_follow_an_sgd_step() -> None:
    gw.manual_seed(0)
    model = gw.Sequential(Linear(3, 2))
    snap = weight_snapshot(model)
    w = model[0].weight
    w.grad[...] = 1.0
    step = 0.01 * w.grad
    w.data -= step
    assert not np.array_equal(snap["0.weight"], w.data)
    expected = np.linalg.norm(step) / np.linalg.norm(snap["0.weight"])
    assert update_ratios(snap, {"0.weight": w.data})["0.weight"] == pytest.approx(expected, rel=1e-6)


def test_grad_norms_and_non_finite() -> None:
    gw.manual_seed(0)
    model = gw.Sequential(Linear(3, 2))
    model[0].weight.grad[...] = 2.0
    norms = grad_norms(model)
    assert norms["0.weight"] == pytest.approx(np.sqrt(6 * 4.0)) and norms["0.bias"] == 0.0
    assert global_norm({"a": 3.0, "b": 4.0}) == 5.0
    assert non_finite(model) == []
    model[0].bias.grad[0] = np.inf
    model[0].weight.data[0, 0] = np.nan
    assert non_finite(model) == ["0.weight", "0.bias.grad"]


def test_dead_fraction_counts_units_silent_on_every_sample() -> None:
    a = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])
    assert dead_fraction(a) == 0.5  # units 0 and 3
    # (N, C, L): a channel is one unit, seen at every position
    conv = np.zeros((2, 3, 5))
    conv[1, 0, 4] = 0.1
    assert dead_fraction(conv) == pytest.approx(2 / 3)
    assert dead_fraction(np.zeros((0, 4))) == 0.0


def test_saturated_fraction_reads_the_flat_tails() -> None:
    s = np.array([0.001, 0.5, 0.995, 0.2])
    assert saturated_fraction(s, "sigmoid") == 0.5
    t = np.array([-0.999, 0.0, 0.97, 0.99])
    assert saturated_fraction(t, "tanh") == 0.5  # |y| > 0.98
    with pytest.raises(ValueError, match="kind"):
        saturated_fraction(s, "relu")
    with pytest.raises(ValueError, match="tol"):
        saturated_fraction(s, "sigmoid", tol=0.6)


def test_the_probe_observes_without_changing_the_layers() -> None:
    gw.manual_seed(0)
    model = gw.Sequential(Linear(4, 8), ReLU(), Dropout(0.5), Linear(8, 8), Sigmoid(), Linear(8, 3), Tanh())
    model.eval()
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    plain = model.forward(x)
    with ActivationProbe(model) as probe:
        observed = model.forward(x)
    np.testing.assert_array_equal(plain, observed)
    assert all("forward" not in m.__dict__ for _, m in model.named_modules())  # wrappers gone
    assert list(probe.summaries) == ["0", "1", "3", "4", "5", "6"]  # no Dropout, no container
    relu = probe.summaries["1"]
    assert relu.kind == "ReLU" and relu.dead == dead_fraction(model[0].forward(x).clip(min=0))
    assert probe.summaries["4"].saturated is not None and probe.summaries["1"].saturated is None
    lin = probe.summaries["0"]
    out0 = model[0].forward(x).astype(np.float64)
    assert lin.mean == pytest.approx(out0.mean()) and lin.std == pytest.approx(out0.std())
    assert lin.counts.sum() == out0.size and lin.edges[0] == pytest.approx(out0.min())


def test_the_probe_restores_the_layers_after_an_exception() -> None:
    gw.manual_seed(0)
    model = gw.Sequential(Linear(4, 3), ReLU())
    with pytest.raises(ValueError), ActivationProbe(model):
        model.forward(np.zeros((2, 5), dtype=np.float32))  # wrong width
    assert all("forward" not in m.__dict__ for _, m in model.named_modules())


def test_the_probe_sees_conv_channels_and_skips_reshapes() -> None:
    gw.manual_seed(0)
    model = gw.Sequential(Conv1d(1, 4, 3), ReLU(), Flatten(), Linear(4 * 8, 2))
    assert [n for n, _ in observed_modules(model)] == ["0", "1", "3"]
    with ActivationProbe(model) as probe:
        model.forward(np.random.default_rng(1).standard_normal((5, 1, 10)).astype(np.float32))
    assert 0.0 <= probe.summaries["1"].dead <= 1.0


def test_a_non_finite_output_is_summarized_as_such() -> None:
    gw.manual_seed(0)
    model = gw.Sequential(Linear(2, 2))
    model[0].weight.data[0, 0] = np.inf
    with ActivationProbe(model) as probe, np.errstate(invalid="ignore"):
        model.forward(np.ones((3, 2), dtype=np.float32))
    s = probe.summaries["0"]
    assert not s.finite and math.isnan(s.mean)
