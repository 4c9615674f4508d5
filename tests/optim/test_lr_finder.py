"""Tests of gradwise/optim/lr_finder.py and gradwise/optim/lr_curve.py: the ramp, the divergence rules
(on scripted loss sequences), exact restoration of the model and optimizer, the suggestions, and that
the suggestion is a learning rate that trains well."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

import gradwise as gw
from gradwise.core import Layer, Parameter
from gradwise.data import DataLoader, load_mnist1d
from gradwise.layers import Linear, ReLU
from gradwise.losses import L2, MSE, SoftmaxCrossEntropy
from gradwise.optim import SGD, Adam
from gradwise.optim.lr_curve import ABOVE_START, MIN_FACTOR, NON_FINITE, falling_at_end
from gradwise.optim.lr_finder import (
    LRFinderResult,
    lr_find,
    suggest_min_div10,
    suggest_steepest,
)
from gradwise.training.trainer import TrainingDiverged


class RunningMean(Layer):
    """Identity that tracks the batch mean in a buffer while training (a BatchNorm stand-in)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("running_mean", np.zeros(n))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.training:
            self.running_mean = 0.9 * self.running_mean + 0.1 * x.mean(axis=0)
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out


class RecordingSGD(SGD):
    """SGD that records the learning rate each parameter was updated with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: dict[str, list[float]] = {}

    def _update(self, p: Parameter, state: dict, group: Mapping[str, Any], lr: float) -> None:
        self.seen.setdefault(p.name, []).append(lr)
        super()._update(p, state, group, lr)


def regression(seed: int = 0, n: int = 96, d: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = x @ rng.standard_normal((d, 1)) + 0.1 * rng.standard_normal((n, 1))
    return x, y


def mlp(seed: int, dtype=np.float64) -> gw.Sequential:
    rng = np.random.default_rng(seed)
    return gw.Sequential(
        Linear(5, 16, rng=rng), RunningMean(16), ReLU(), Linear(16, 1, rng=rng)
    ).astype(dtype)


def setup(seed: int = 0) -> tuple[gw.Sequential, MSE, Adam, DataLoader]:
    """A model mid-training: optimizer state exists, two groups, one lr is a schedule, a child in
    eval mode, non-zero gradients."""
    model = mlp(seed)
    params = model.parameters()
    opt = Adam(
        [{"params": params[:2], "lr": lambda step: 1e-2 / (1 + step)}, {"params": params[2:]}],
        lr=3e-3, amsgrad=True, weight_decay=1e-3,
    )
    x, y = regression(seed)
    loader = DataLoader(x, y, batch_size=16, shuffle=True, rng=np.random.default_rng(seed), dtype=np.float64)
    loss = MSE()
    for xb, yb in loader:
        opt.zero_grad()
        loss.forward(model.forward(xb), yb)
        model.backward(loss.backward())
        opt.step()
    model[3].eval()  # mixed modes must come back as they were
    return model, loss, opt, loader


def snapshot(model: Layer, opt: Adam) -> dict[str, Any]:
    return {
        "weights": {k: v.tobytes() for k, v in model.state_dict().items()},
        "grads": [p.grad.tobytes() for p in model.parameters()],
        "modes": [m.training for _, m in model.named_modules()],
        "state": {
            k: {n: (v.tobytes() if isinstance(v, np.ndarray) else v) for n, v in s.items()}
            for k, s in opt.state_dict()["state"].items()
        },
        "step_count": opt.step_count,
        "lrs": [g["lr"] for g in opt.param_groups],
        "groups": [{k: v for k, v in g.items() if k not in ("params", "lr")} for g in opt.param_groups],
    }


def train_steps(model: Layer, loss: MSE, opt: Adam, batches: list) -> None:
    model.train()
    for xb, yb in batches:
        opt.zero_grad()
        loss.forward(model.forward(xb), yb)
        model.backward(loss.backward())
        opt.step()


# ------------------------------------------------------------------------------------ restoration


def test_restores_model_and_optimizer_bit_identically() -> None:
    model, loss, opt, loader = setup()
    before = snapshot(model, opt)
    lr_objects = [g["lr"] for g in opt.param_groups]
    result = lr_find(model, loss, opt, loader, num_steps=60, end_lr=100.0)
    assert result.diverged  # the model really was driven far from where it started
    after = snapshot(model, opt)
    assert after == before
    assert all(g["lr"] is obj for g, obj in zip(opt.param_groups, lr_objects))  # the same schedule


def test_training_after_lr_find_is_exactly_training_without_it() -> None:
    model_a, loss, opt_a, loader = setup()
    model_b, _, opt_b, _ = setup()
    lr_find(model_a, loss, opt_a, loader, num_steps=40)
    x, y = regression(7)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 96, 16)]
    train_steps(model_a, loss, opt_a, batches)
    train_steps(model_b, loss, opt_b, batches)
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items(), strict=True):
        assert a.tobytes() == b.tobytes(), name


def test_restores_state_when_interrupted() -> None:
    model, _, opt, loader = setup()
    before = snapshot(model, opt)

    class Exploding(MSE):
        calls = 0

        def forward(self, scores: np.ndarray, y: np.ndarray) -> float:
            Exploding.calls += 1
            if Exploding.calls == 10:
                raise KeyboardInterrupt
            return super().forward(scores, y)

    with pytest.raises(KeyboardInterrupt):
        lr_find(model, Exploding(), opt, loader, num_steps=50)
    assert snapshot(model, opt) == before


def test_a_fresh_optimizer_stays_fresh() -> None:
    model = mlp(1)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = regression(1)
    lr_find(model, MSE(), opt, DataLoader(x, y, batch_size=32, dtype=np.float64), num_steps=20)
    assert opt.state == {} and opt.step_count == 0 and opt.param_groups[0]["lr"] == 0.1


# ------------------------------------------------------------------------------------ the ramp


def test_ramp_values_are_exact_and_groups_keep_their_ratio() -> None:
    model = mlp(2)
    params = model.parameters()
    opt = RecordingSGD([{"params": params[:2], "lr": 1e-2}, {"params": params[2:], "lr": 1e-3}])
    x, y = regression(2)
    loader = DataLoader(x, y, batch_size=32, dtype=np.float64)  # 3 batches: cycled 17 times
    start, end, n = 1e-6, 1e-3, 50
    result = lr_find(model, MSE(), opt, loader, start_lr=start, end_lr=end, num_steps=n)
    expected = [start * (end / start) ** (i / (n - 1)) for i in range(n)]
    assert result.stop_reason == "completed" and result.lrs.tolist() == expected
    assert result.lrs[0] == start and result.lrs[-1] == pytest.approx(end, rel=1e-15)
    assert opt.seen["0.weight"] == expected
    ratio = 1e-3 / 1e-2
    assert opt.seen["3.weight"] == [lr * ratio for lr in expected]


def test_smoothed_loss_is_the_bias_corrected_ema() -> None:
    model = mlp(3)
    x, y = regression(3)
    result = lr_find(model, MSE(), SGD(model.parameters()), DataLoader(x, y, batch_size=16, dtype=np.float64),
                     start_lr=1e-6, end_lr=1e-4, num_steps=30, smooth=0.9)
    avg, expected = 0.0, []
    for i, v in enumerate(result.losses):
        avg = 0.9 * avg + 0.1 * v
        expected.append(avg / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(result.smoothed, expected, rtol=1e-14)
    assert result.smoothed[0] == result.losses[0]


def test_the_penalty_is_part_of_the_loss() -> None:
    x, y = regression(9)
    loader = DataLoader(x, y, batch_size=16, dtype=np.float64)
    plain, penalized = mlp(9), mlp(9)
    penalty = L2(0.5)
    expected = MSE().forward(penalized.forward(x[:16]), y[:16]) + penalty.value(penalized.parameters())
    kwargs = {"start_lr": 1e-6, "end_lr": 1e-5, "num_steps": 5}
    without = lr_find(plain, MSE(), SGD(plain.parameters()), loader, **kwargs)
    with_penalty = lr_find(penalized, MSE(), SGD(penalized.parameters()), loader, penalty=penalty, **kwargs)
    assert with_penalty.losses[0] == pytest.approx(expected, rel=1e-14)
    assert with_penalty.losses[0] > without.losses[0]


def test_a_one_shot_iterator_is_not_cycled() -> None:
    model = mlp(4)
    x, y = regression(4)
    batches = iter(DataLoader(x, y, batch_size=16, dtype=np.float64))  # 6 batches
    result = lr_find(model, MSE(), SGD(model.parameters()), batches, start_lr=1e-6, end_lr=1e-5, num_steps=20)
    assert result.stop_reason == "exhausted" and len(result.lrs) == 6


# ------------------------------------------------------------------------------------ stopping


class Scripted(MSE):
    """MSE whose reported loss is the next value of a script (its gradient is still MSE's)."""

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.values = list(values)
        self.calls = 0

    def forward(self, scores: np.ndarray, y: np.ndarray) -> float:
        super().forward(scores, y)
        self.calls += 1
        return self.values[self.calls - 1]


def scripted(values: list[float], **kwargs: Any) -> LRFinderResult:
    """`lr_find` over len(values) steps whose losses are `values`; smooth=0 (the smoothed loss is
    the raw one) unless given, so that each rule can be placed on an exact step."""
    model = mlp(5)
    x, y = regression(5)
    options = {"start_lr": 1e-6, "end_lr": 1.0, "num_steps": len(values), "smooth": 0.0, **kwargs}
    return lr_find(model, Scripted(values), SGD(model.parameters(), lr=1e-9),
                   DataLoader(x, y, batch_size=16, dtype=np.float64), **options)


def ramp(n: int, i: int) -> float:
    return 1e-6 * (1.0 / 1e-6) ** (i / (n - 1))


# 100 steps: a warm-up of 10 at 2.3, a fall to 1.8 by step 50, then a climb back: above 2.3 at step 80.
SATURATING = [2.3] * 10 + list(np.linspace(2.3, 1.8, 40)) + list(np.linspace(1.8, 2.3, 30)) + [2.31] + [2.5] * 19


def test_above_start_fires_when_the_loss_rises_back_above_its_start_after_falling() -> None:
    result = scripted(SATURATING)
    assert (result.divergence, result.divergence_step, result.stop_reason) == (ABOVE_START, 80, "diverged")
    assert len(result.lrs) == 81 and result.divergence_lr == result.lrs[-1] == ramp(100, 80)
    assert result.start_loss == pytest.approx(2.3, rel=1e-15) and result.diverged and not result.still_falling
    assert "diverged at lr" in result.summary() and "rose back above its starting level 2.3" in result.summary()
    assert "--end-lr" not in result.summary()
    assert result.suggestion <= result.divergence_lr
    # 4x the minimum (7.2) is never reached: only the new rule sees this divergence.
    assert scripted(SATURATING, min_fall=0.5).divergence is None  # a 22% fall is not 50%


def test_above_start_ignores_noise_in_the_warm_up_and_a_loss_that_never_fell() -> None:
    rng = np.random.default_rng(0)
    # A deep dip inside the warm-up, then noise of +-4% around the start: no 5% fall after it.
    noisy = [2.3, 1.0, 2.3, 2.9, 2.3, 2.3, 2.3, 2.3, 2.3, 2.3] + list(2.3 + 0.09 * rng.uniform(-1, 1, 90))
    result = scripted(noisy)
    assert result.divergence is None and result.stop_reason == "completed" and len(result.lrs) == 100
    assert "never fell 5% below its start" in result.summary()
    # With the default smoothing (beta = 0.95) the same for much larger batch noise.
    assert scripted(list(2.3 * np.exp(0.3 * rng.standard_normal(100))), smooth=0.95).divergence is None


def test_min_factor_fires_past_four_times_the_minimum() -> None:
    # Falls from 1 to 0.1, then climbs: 0.41 > 4 x 0.1 at step 60, still far below the start.
    values = [1.0] * 10 + list(np.geomspace(1.0, 0.1, 40)) + list(np.linspace(0.1, 0.4, 10)) + [0.41] * 40
    result = scripted(values)
    assert (result.divergence, result.divergence_step, len(result.lrs)) == (MIN_FACTOR, 60, 61)
    assert "passed 4x its minimum" in result.summary()
    assert scripted(values, diverge_factor=5.0).divergence is None


def test_a_non_finite_loss_ends_the_run_unrecorded() -> None:
    values = SATURATING[:30] + [math.nan] + SATURATING[31:]
    for stop in (True, False):
        result = scripted(values, stop=stop)
        assert (result.divergence, result.divergence_step, result.stop_reason) == (NON_FINITE, 30, "diverged")
        assert len(result.lrs) == 30 and result.divergence_lr == ramp(100, 30)
        assert np.isfinite(result.losses).all() and np.isfinite(result.smoothed).all()
        assert "NaN or infinite" in result.summary()


def test_no_stop_runs_the_whole_ramp_and_reports_the_first_divergence() -> None:
    stopped = scripted(SATURATING)
    whole = scripted(SATURATING, stop=False)
    assert whole.stop_reason == "completed" and len(whole.lrs) == 100
    assert (whole.divergence, whole.divergence_step, whole.divergence_lr) == (
        stopped.divergence, stopped.divergence_step, stopped.divergence_lr)
    np.testing.assert_array_equal(whole.smoothed[:81], stopped.smoothed)
    # The suggestions read the curve up to the divergence only: the same with or without stop.
    assert (whole.suggestion_steepest, whole.suggestion_min_div10) == (
        stopped.suggestion_steepest, stopped.suggestion_min_div10)
    assert not whole.still_falling


def test_a_larger_end_lr_is_advised_only_while_the_loss_still_falls() -> None:
    falling = scripted([2.3] * 10 + list(np.linspace(2.3, 1.5, 90)), smooth=0.95)
    assert falling.divergence is None and falling.still_falling
    assert "still falling" in falling.summary() and "try a larger --end-lr" in falling.summary()
    bottomed = scripted([2.3] * 10 + list(np.linspace(2.3, 1.5, 60)) + list(np.linspace(1.5, 1.8, 30)))
    assert bottomed.divergence is None and not bottomed.still_falling
    assert "--end-lr" not in bottomed.summary() and "no longer falling" in bottomed.summary()
    lrs = np.logspace(-3, 0, 30)
    assert falling_at_end(lrs, -np.log10(lrs)) and not falling_at_end(lrs, np.log10(lrs))
    assert not falling_at_end(lrs[:1], np.ones(1))


def test_a_real_ramp_diverges_and_reports_its_rule() -> None:
    model = mlp(5)
    x, y = regression(5)
    loader = DataLoader(x, y, batch_size=16, shuffle=True, rng=np.random.default_rng(0), dtype=np.float64)
    result = lr_find(model, MSE(), SGD(model.parameters()), loader, start_lr=1e-4, end_lr=1e3, num_steps=150)
    assert result.stop_reason == "diverged" and result.diverged and len(result.lrs) < 150
    best = np.minimum.accumulate(result.smoothed)
    if result.divergence == MIN_FACTOR:
        assert result.smoothed[-1] > 4 * best[-1]
        assert np.all(result.smoothed[:-1] <= 4 * best[:-1])  # and not a step earlier
    else:
        assert result.divergence in (ABOVE_START, NON_FINITE)


def test_the_plot_method_is_gone_with_a_pointer_to_viz() -> None:
    result = scripted(SATURATING)
    with pytest.raises(AttributeError, match=r"gradwise\.viz\.plot_lr_finder\(result, path\)"):
        result.plot("x.png")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        result.nope  # noqa: B018


def test_a_non_finite_first_loss_is_an_error() -> None:
    model = mlp(7)
    x, y = regression(7)
    x[3, 0] = np.nan  # a list of batches is not checked the way a DataLoader checks its data
    with pytest.raises(FloatingPointError, match="first batch"):
        lr_find(model, MSE(), SGD(model.parameters()), [(x[:16], y[:16])], num_steps=10)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"start_lr": 0.0}, "start_lr"),
        ({"start_lr": -1e-3}, "start_lr"),
        ({"end_lr": 1e-8}, "end_lr"),
        ({"end_lr": math.inf}, "end_lr"),
        ({"num_steps": 1}, "num_steps"),
        ({"num_steps": 2.5}, "num_steps"),
        ({"smooth": 1.0}, "smooth"),
        ({"diverge_factor": 1.0}, "diverge_factor"),
        ({"min_fall": 1.0}, "min_fall"),
        ({"min_fall": -0.1}, "min_fall"),
    ],
)
def test_invalid_arguments_are_named(kwargs: dict, name: str) -> None:
    model = mlp(8)
    x, y = regression(8)
    with pytest.raises(ValueError, match=name):
        lr_find(model, MSE(), SGD(model.parameters()), DataLoader(x, y, dtype=np.float64), **kwargs)


# ------------------------------------------------------------------------------------ suggestions


def test_suggest_steepest_finds_the_steepest_point_of_a_curve() -> None:
    lrs = np.logspace(-6, 0, 121)  # 20 points per decade: 1e-3 is lrs[60]
    curve = 2 - np.tanh((np.log10(lrs) + 3) / 0.4)  # falls fastest at 1e-3
    assert suggest_steepest(lrs, curve) == pytest.approx(1e-3, rel=1e-12)
    assert math.isnan(suggest_steepest(lrs, np.linspace(1, 2, 121)))  # never decreases


def test_suggest_min_div10_is_a_tenth_of_the_minimum() -> None:
    lrs = np.logspace(-6, 0, 121)
    curve = (np.log10(lrs) + 1.5) ** 2  # minimum at 10^-1.5 = lrs[90]
    assert suggest_min_div10(lrs, curve) == pytest.approx(10**-2.5, rel=1e-12)
    # The window leaves out the end: a lower last point is ignored.
    curve[-1] = -10.0
    assert suggest_min_div10(lrs, curve) == pytest.approx(10**-2.5, rel=1e-12)


@pytest.fixture(scope="module")
def mnist1d() -> tuple[np.ndarray, np.ndarray]:
    x, y, _, _ = load_mnist1d()
    return x, y


def small_mlp(seed: int) -> gw.Sequential:
    rng = np.random.default_rng(seed)
    return gw.Sequential(Linear(40, 64, rng=rng), ReLU(), Linear(64, 10, rng=rng))


def final_training_loss(lr: float, data: tuple[np.ndarray, np.ndarray], seed: int, epochs: int) -> float:
    x, y = data
    model, loss = small_mlp(seed), SoftmaxCrossEntropy()
    trainer = gw.Trainer(model, loss, Adam(model.parameters(), lr=lr), progress=False)
    loader = DataLoader(x, y, batch_size=64, shuffle=True, rng=np.random.default_rng(seed))
    try:
        with np.errstate(all="ignore"):
            trainer.fit(loader, epochs=epochs)
    except TrainingDiverged:
        return math.inf
    return trainer.evaluate(DataLoader(x, y, batch_size=1024))["loss"]


@pytest.mark.parametrize("seed", [0, 1])
def test_training_at_the_suggestion_beats_training_at_100x(
    mnist1d: tuple[np.ndarray, np.ndarray], seed: int
) -> None:
    model = small_mlp(seed)
    loader = DataLoader(*mnist1d, batch_size=64, shuffle=True, rng=np.random.default_rng(seed))
    result = lr_find(model, SoftmaxCrossEntropy(), Adam(model.parameters()), loader)
    assert result.stop_reason == "diverged"
    for lr in (result.suggestion, result.suggestion_steepest, result.suggestion_min_div10):
        assert result.start_lr <= lr <= result.end_lr
        assert result.lrs[0] <= lr <= result.lrs[-1]
    at_suggestion = final_training_loss(result.suggestion, mnist1d, seed, epochs=3)
    at_100x = final_training_loss(100 * result.suggestion, mnist1d, seed, epochs=3)
    # ln(10) = 2.30 is chance level; the suggestion learns, 100x it barely does or blows up.
    assert at_suggestion < 1.5
    assert at_suggestion < 0.7 * at_100x


def test_result_rows_and_repr() -> None:
    result = LRFinderResult(
        lrs=np.array([1e-3, 1e-2]), losses=np.array([2.0, 1.5]), smoothed=np.array([2.0, 1.7]),
        suggestion_steepest=1e-2, suggestion_min_div10=1e-3, suggestion=1e-2,
        start_lr=1e-3, end_lr=1e-2, num_steps=2, stop_reason="completed",
    )
    assert result.rows() == [
        {"step": 0, "lr": 1e-3, "loss": 2.0, "smoothed_loss": 2.0},
        {"step": 1, "lr": 1e-2, "loss": 1.5, "smoothed_loss": 1.7},
    ]
    assert "suggestion=0.01" in repr(result) and not result.diverged
