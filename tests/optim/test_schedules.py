"""Tests of gradwise/optim/schedules/ (decay.py, composite.py): torch.optim.lr_scheduler oracles, purity, argument checks.

Step convention: our ``f(step)`` is the rate of optimizer step number `step` (0-based); on the
torch side that is ``group["lr"]`` read just before the step-th ``optimizer.step()``, the
scheduler being stepped after every optimizer step.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from gradwise.core import Parameter
from gradwise.optim import SGD, schedules
from gradwise.optim.schedules import (
    constant,
    cosine,
    exponential,
    inverse_time,
    multistep,
    one_cycle,
    polynomial,
    scaled,
    step_decay,
    warmup,
)

# torch updates most rates recursively (lr <- lr * ratio), we use closed forms: a few hundred
# roundings apart, so agreement is checked step by step to this relative error.
SCHEDULE_RTOL = 1e-12
STEPS = 300


def torch_rates(
    make: Callable[[Any], Any], base_lr: float, steps: int = STEPS, adam: bool = False
) -> tuple[list[float], list[float]]:
    """The rate (and momentum, or Adam's beta1) of each of `steps` optimizer steps under the torch
    scheduler ``make(optimizer, torch.optim.lr_scheduler)``."""
    torch = pytest.importorskip("torch")
    from torch.optim import lr_scheduler

    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = torch.optim.Adam([p], lr=base_lr) if adam else torch.optim.SGD([p], lr=base_lr, momentum=0.9)
    lrs: list[float] = []
    moms: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation notes about schedulers
        sched = make(opt, lr_scheduler)
        for _ in range(steps):
            group = opt.param_groups[0]
            lrs.append(float(group["lr"]))
            moms.append(float(group["betas"][0] if adam else group["momentum"]))
            opt.step()
            sched.step()
    return lrs, moms


def assert_rates_match(ours: list[float], theirs: list[float]) -> None:
    a, b = np.asarray(ours), np.asarray(theirs)
    assert a.shape == b.shape
    # Per step, relative; a zero rate must be exactly zero on both sides.
    bad = np.abs(a - b) > SCHEDULE_RTOL * np.abs(b)
    assert not bad.any(), f"step {int(np.argmax(bad))}: {a[bad][0]!r} != torch {b[bad][0]!r}"


def values(f: Callable[[int], float], steps: int = STEPS) -> list[float]:
    return [f(t) for t in range(steps)]


def _lr(torch_lambda: Callable[[int], float]) -> Callable[[Any, Any], Any]:
    """A LambdaLR factory, for schedules torch only has as a lambda."""
    return lambda o, L: L.LambdaLR(o, torch_lambda)


def _cases() -> list[Any]:
    """(our schedule, base lr of the torch optimizer, torch scheduler factory ``(opt, L)``, steps),
    with ``L = torch.optim.lr_scheduler``."""
    return [
        pytest.param(constant(0.1), 0.1, _lr(lambda t: 1.0), STEPS, id="constant"),
        pytest.param(step_decay(0.1, 30), 0.1, lambda o, L: L.StepLR(o, 30), STEPS, id="step"),
        pytest.param(step_decay(0.3, 7, 0.5), 0.3, lambda o, L: L.StepLR(o, 7, 0.5), STEPS, id="step-7-0.5"),
        pytest.param(
            multistep(0.1, [200, 50, 120, 120], 0.3), 0.1,
            lambda o, L: L.MultiStepLR(o, [50, 120, 120, 200], 0.3), STEPS, id="multistep-repeated",
        ),
        pytest.param(exponential(0.1, 0.98), 0.1, lambda o, L: L.ExponentialLR(o, 0.98), STEPS, id="exponential"),
        pytest.param(
            exponential(0.1, 0.9, decay_steps=25, staircase=True), 0.1,
            lambda o, L: L.StepLR(o, 25, 0.9), STEPS, id="exponential-per-epoch",
        ),
        pytest.param(
            exponential(0.1, 0.9, decay_steps=25), 0.1, _lr(lambda t: 0.9 ** (t / 25)), STEPS,
            id="exponential-smooth",
        ),
        pytest.param(
            inverse_time(0.1, 0.5), 0.1, _lr(lambda t: 1 / (1 + 0.5 * t)), STEPS, id="inverse-time"
        ),
        pytest.param(
            inverse_time(0.1, 0.5, decay_steps=25, staircase=True), 0.1,
            _lr(lambda t: 1 / (1 + 0.5 * (t // 25))), STEPS, id="inverse-time-per-epoch",
        ),
        pytest.param(
            inverse_time(0.1, 0.5, decay_steps=25), 0.1, _lr(lambda t: 1 / (1 + 0.5 * t / 25)), STEPS,
            id="inverse-time-smooth",
        ),
        pytest.param(cosine(0.1, 300), 0.1, lambda o, L: L.CosineAnnealingLR(o, 300), 301, id="cosine"),
        pytest.param(
            cosine(0.1, 250, min_lr=1e-3), 0.1, lambda o, L: L.CosineAnnealingLR(o, 250, 1e-3), 251,
            id="cosine-min-lr",
        ),
        pytest.param(
            cosine(0.1, 40, restarts=True), 0.1, lambda o, L: L.CosineAnnealingWarmRestarts(o, 40), STEPS,
            id="sgdr",
        ),
        pytest.param(
            cosine(0.1, 10, min_lr=1e-3, restarts=True, cycle_mult=2), 0.1,
            lambda o, L: L.CosineAnnealingWarmRestarts(o, 10, 2, 1e-3), STEPS, id="sgdr-mult-2",
        ),
        pytest.param(polynomial(0.1, 250), 0.1, lambda o, L: L.PolynomialLR(o, 250), STEPS, id="poly-linear"),
        pytest.param(
            polynomial(0.1, 250, power=2.0), 0.1, lambda o, L: L.PolynomialLR(o, 250, 2.0), STEPS, id="poly-2"
        ),
        pytest.param(
            polynomial(0.1, 200, power=0.5, end_lr=1e-3), 0.1,
            _lr(lambda t: ((0.1 - 1e-3) * (1 - min(t, 200) / 200) ** 0.5 + 1e-3) / 0.1), STEPS,
            id="poly-end-lr",
        ),
        pytest.param(
            warmup(0.1, 40, start_factor=0.25), 0.1, lambda o, L: L.LinearLR(o, 0.25, total_iters=40),
            STEPS, id="warmup-constant",
        ),
        pytest.param(
            warmup(cosine(0.1, 250, 1e-3), 50, start_factor=0.1), 0.1,
            lambda o, L: L.SequentialLR(o, [L.LinearLR(o, 0.1, total_iters=50), L.CosineAnnealingLR(o, 250, 1e-3)], [50]),
            STEPS, id="warmup-cosine",
        ),
        pytest.param(
            warmup(exponential(0.1, 0.99), 30, start_factor=0.5), 0.1,
            lambda o, L: L.SequentialLR(o, [L.LinearLR(o, 0.5, total_iters=30), L.ExponentialLR(o, 0.99)], [30]),
            STEPS, id="warmup-exponential",
        ),
        pytest.param(
            warmup(step_decay(0.1, 60, 0.5), 20), 0.1,
            _lr(lambda t: t / 20 if t < 20 else 0.5 ** ((t - 20) // 60)), STEPS, id="warmup-from-zero",
        ),
    ]


@pytest.mark.oracle
@pytest.mark.parametrize(("ours", "base_lr", "make_torch", "steps"), _cases())
def test_schedule_matches_torch(ours: Callable[[int], float], base_lr: float, make_torch: Callable, steps: int) -> None:
    theirs, _ = torch_rates(make_torch, base_lr, steps)
    assert_rates_match(values(ours, steps), theirs)


ONE_CYCLE_CONFIGS = [
    {},
    {"anneal": "linear"},
    {"three_phase": True},
    {"three_phase": True, "anneal": "linear", "pct_start": 0.4},
    {"pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0, "base_momentum": 0.8, "max_momentum": 0.9},
]


@pytest.mark.oracle
@pytest.mark.parametrize("adam", [False, True], ids=["sgd-momentum", "adam-beta1"])
@pytest.mark.parametrize("config", ONE_CYCLE_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "defaults")
def test_one_cycle_rate_and_momentum_match_torch(config: dict[str, Any], adam: bool) -> None:
    sched = one_cycle(0.05, STEPS, **config)
    torch_config = {("anneal_strategy" if k == "anneal" else k): v for k, v in config.items()}
    lrs, moms = torch_rates(lambda o, L: L.OneCycleLR(o, 0.05, STEPS, **torch_config), 0.05, adam=adam)
    assert_rates_match(values(sched), lrs)
    assert_rates_match(values(sched.momentum), moms)


# ------------------------------------------------------------------------------ our own conventions
def test_golden_values() -> None:
    assert step_decay(1.0, 10, 0.5)(25) == 0.25
    assert multistep(1.0, [3, 5], 0.5)(4) == 0.5
    assert inverse_time(1.0, 1.0, decay_steps=4, staircase=True)(11) == 1 / 3  # epoch 2
    assert inverse_time(1.0, 1.0, decay_steps=4)(12) == inverse_time(1.0, 1.0, 4, True)(12) == 0.25
    assert cosine(1.0, 100)(50) == pytest.approx(0.5, rel=1e-15)
    assert polynomial(1.0, 10, power=2.0, end_lr=0.5)(5) == 0.625  # 0.5 * 0.5**2 + 0.5
    assert warmup(cosine(1.0, 10), 4)(2) == 0.5
    oc = one_cycle(1.0, 100, div_factor=20.0, final_div_factor=5.0)
    # The peak is at step pct_start * total_steps - 1, as in torch.
    assert oc(0) == pytest.approx(0.05, rel=1e-15) and oc(29) == pytest.approx(1.0, rel=1e-15)
    assert oc.momentum(0) == pytest.approx(0.95, rel=1e-15)
    assert oc.momentum(29) == pytest.approx(0.85, rel=1e-15)
    assert (oc.initial_lr, oc.min_lr) == pytest.approx((0.05, 0.01), rel=1e-15)


def test_schedules_hold_their_final_value_after_the_end() -> None:
    # torch's CosineAnnealingLR climbs back up after T_max and OneCycleLR raises past total_steps;
    # we hold the end value.
    assert cosine(0.1, 100, min_lr=1e-3)(150) == cosine(0.1, 100, min_lr=1e-3)(100) == 1e-3
    assert polynomial(0.1, 100, end_lr=1e-3)(10**6) == 1e-3
    oc = one_cycle(0.1, 100)
    assert oc(99) == oc(100) == oc(10**6) == oc.min_lr
    assert oc.momentum(10**6) == oc.max_momentum
    assert cosine(0.1, 10, restarts=True, cycle_mult=3)(10 + 30 + 90) == 0.1  # start of cycle 4


def test_warmup_of_zero_steps_is_the_schedule_itself() -> None:
    s = cosine(0.1, 50)
    assert values(warmup(s, 0), 60) == values(s, 60)


def test_scaled() -> None:
    s = scaled(cosine(0.1, 50), 0.5)
    assert s(10) == 0.5 * cosine(0.1, 50)(10)
    with pytest.raises(ValueError, match="factor=-1.0"):
        scaled(cosine(0.1, 50), -1)
    with pytest.raises(TypeError, match="schedule="):
        scaled(0.1, 0.5)  # type: ignore[arg-type]


ALL = [
    constant(0.1),
    step_decay(0.1, 30),
    multistep(0.1, [5, 10]),
    exponential(0.1, 0.9),
    inverse_time(0.1, 0.5, decay_steps=7, staircase=True),
    cosine(0.1, 50, min_lr=1e-3, restarts=True, cycle_mult=2),
    polynomial(0.1, 50, power=2.0, end_lr=1e-4),
    warmup(cosine(0.1, 50), 10, start_factor=0.1),
    warmup(0.1, 10),
    one_cycle(0.1, 100, three_phase=True),
    scaled(exponential(0.1, 0.9), 0.3),
]


@pytest.mark.parametrize("sched", ALL, ids=lambda s: type(s).__name__)
def test_schedules_are_pure_functions_of_the_step(sched: Callable[[int], float]) -> None:
    forward = values(sched, 120)
    order = np.random.default_rng(0).permutation(120)
    shuffled = {int(t): sched(int(t)) for t in order}
    assert [shuffled[t] for t in range(120)] == forward
    assert sched(5) == sched(5) == forward[5]
    assert all(isinstance(v, float) and math.isfinite(v) for v in forward)
    assert sched(np.int64(7)) == forward[7]


@pytest.mark.parametrize("sched", ALL, ids=lambda s: type(s).__name__)
def test_schedules_pickle_copy_and_record_their_parameters(sched: Any) -> None:
    for clone in (pickle.loads(pickle.dumps(sched)), copy.deepcopy(sched), eval(repr(sched), vars(schedules))):
        assert clone == sched
        assert values(clone, 60) == values(sched, 60)
    assert repr(sched).startswith(type(sched).__name__ + "(")
    assert dataclasses.asdict(sched)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sched.lr = 1.0  # type: ignore[misc]


def test_repr_names_the_parameters() -> None:
    assert repr(cosine(0.1, 300)) == "Cosine(lr=0.1, total_steps=300, min_lr=0.0, restarts=False, cycle_mult=1)"
    assert repr(warmup(0.1, 5)) == "Warmup(schedule=Constant(lr=0.1), warmup_steps=5, start_factor=0.0)"
    assert multistep(0.1, [30, 10]).milestones == (10, 30)


def test_optimizer_applies_the_schedule_per_step() -> None:
    p = Parameter(np.zeros(1))
    sched = step_decay(1.0, 2, 0.5)
    opt = SGD([p], lr=sched)
    for _ in range(5):
        p.grad[...] = 1.0
        opt.step()
    # theta = -(1 + 1 + 0.5 + 0.5 + 0.25)
    assert p.data[0] == -3.25


# ------------------------------------------------------------------------------ argument checks
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: constant(-0.1), r"lr=-0\.1 must be"),
        (lambda: constant(math.nan), "lr=nan"),
        (lambda: step_decay(0.1, 0), "step_size=0 must be"),
        (lambda: step_decay(0.1, 10, gamma=0), "gamma=0.0 must be"),
        (lambda: multistep(0.1, [10, -1]), "milestones=-1"),
        (lambda: exponential(0.1, -0.5), r"gamma=-0\.5"),
        (lambda: exponential(0.1, 0.9, decay_steps=0), "decay_steps=0"),
        (lambda: inverse_time(0.1, -1.0), "decay_rate=-1.0"),
        (lambda: cosine(-1.0, 10), "lr=-1.0"),
        (lambda: cosine(0.1, 0), "total_steps=0"),
        (lambda: cosine(0.1, 10, min_lr=0.2), "min_lr=0.2 must be <= lr=0.1"),
        (lambda: cosine(0.1, 10, cycle_mult=2), "cycle_mult=2 needs restarts=True"),
        (lambda: cosine(0.1, 10, restarts=True, cycle_mult=0), "cycle_mult=0"),
        (lambda: polynomial(0.1, -5), "total_steps=-5"),
        (lambda: polynomial(0.1, 5, power=0), "power=0.0"),
        (lambda: warmup(cosine(0.1, 10), -1), "warmup_steps=-1"),
        (lambda: warmup(0.1, 10, start_factor=1.5), "start_factor=1.5"),
        (lambda: warmup(-0.1, 10), r"schedule=-0\.1"),
        (lambda: one_cycle(-0.1, 100), "max_lr=-0.1"),
        (lambda: one_cycle(0.1, 0), "total_steps=0"),
        (lambda: one_cycle(0.1, 100, pct_start=0.0), r"pct_start=0\.0 must be in \(0, 1\)"),
        (lambda: one_cycle(0.1, 100, pct_start=1.0), "pct_start=1.0"),
        (lambda: one_cycle(0.1, 100, pct_start=1.5), "pct_start=1.5"),
        (lambda: one_cycle(0.1, 3, pct_start=0.3), "pct_start=0.3 with total_steps=3"),
        (lambda: one_cycle(0.1, 10, pct_start=0.6, three_phase=True), "pct_start=0.6 with total_steps=10"),
        (lambda: one_cycle(0.1, 100, anneal="exp"), "anneal='exp' must be 'cos' or 'linear'"),
        (lambda: one_cycle(0.1, 100, div_factor=0), "div_factor=0.0"),
        (lambda: one_cycle(0.1, 100, base_momentum=1.0), "base_momentum=1.0"),
        (lambda: cosine(0.1, 10)(-1), "step=-1 must be >= 0"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(make: Callable[[], Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: step_decay(0.1, 2.5), "step_size=2.5 must be an integer"),
        (lambda: cosine("0.1", 10), "lr='0.1' must be a real number"),
        (lambda: one_cycle(0.1, True), "total_steps=True"),
        (lambda: multistep(0.1, 10), "milestones=10 must be a sequence"),
        (lambda: cosine(0.1, 10)(1.5), "step=1.5 must be an integer"),
    ],
)
def test_wrong_types_raise_type_error(make: Callable[[], Any], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        make()
