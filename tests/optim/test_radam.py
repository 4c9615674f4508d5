"""Tests of gradwise/optim/radam.py: golden steps, torch trajectories, argument checks, state."""

from __future__ import annotations

import math

import numpy as np
import pytest
from oracle import (
    allocated_by_a_step,
    config_id,
    dtypes_of,
    float32_run,
    rel_error,
    round_trip,
    trajectories,
    updates_in_place,
)

from gradwise.core import Parameter
from gradwise.optim import RAdam

THETA0 = np.array([1.0, -2.0])
G1 = np.array([0.5, -0.25])
G2 = np.array([0.1, 0.3])
EPS = 1e-8
LR = 0.1


def run(grads: list[np.ndarray], **kwargs) -> np.ndarray:
    """Apply RAdam([p], lr=0.1, **kwargs) to theta0 with the given gradients; return p."""
    p = Parameter(THETA0.copy(), name="w")
    opt = RAdam([p], lr=LR, **kwargs)
    for g in grads:
        p.grad[...] = g
        opt.step()
    return p.data


def rho(t: int, beta2: float = 0.999) -> float:
    """rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t), the approximated SMA length."""
    return 2 / (1 - beta2) - 1 - 2 * t * beta2**t / (1 - beta2**t)


# ---------------------------------------------------------------------- golden steps
def test_rho_crosses_the_threshold_at_step_6() -> None:
    # rho_1 = 1 for every beta2; with beta2 = 0.999, rho_5 = 4.996 and rho_6 = 5.994
    assert rho(1) == pytest.approx(1.0) and rho(1, 0.5) == pytest.approx(1.0)
    assert rho(5) < 5 < rho(6)


def test_golden_first_step_is_sgd(tol) -> None:
    # rho_1 = 1 <= 5: theta_1 = theta_0 - lr m_1 / (1 - beta1) = theta_0 - lr g_1
    np.testing.assert_allclose(run([G1]), [0.95, -1.975], rtol=tol.optim_golden)


def test_golden_second_step_is_sgd_with_momentum(tol) -> None:
    # m_2 = 0.9 * 0.1 g_1 + 0.1 g_2 = [0.055, 0.0075]; 1 - beta1^2 = 0.19
    expected = [0.95 - 0.1 * 0.055 / 0.19, -1.975 - 0.1 * 0.0075 / 0.19]
    np.testing.assert_allclose(run([G1, G2]), expected, rtol=tol.optim_golden)


def test_golden_first_rectified_step(tol) -> None:
    # A constant gradient g: m_hat_t = g and v_t = (1 - beta2^t) g^2. Steps 1-5 are lr g each;
    # step 6 is lr r_6 g sqrt(1 - beta2^6) / (sqrt(v_6) + eps), about lr r_6 sign(g), with
    # rho_inf = 1999, rho_6 = 5.994163751655833 and r_6 = 0.02582111280185855.
    rho_inf, rho_6 = 1999.0, rho(6)
    r_6 = math.sqrt((rho_6 - 4) * (rho_6 - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_6))
    assert r_6 == pytest.approx(0.02582111280185855, rel=1e-12)
    sqrt_bc2 = math.sqrt(1 - 0.999**6)
    theta5 = THETA0 - 5 * LR * G1
    expected = theta5 - LR * r_6 * G1 * sqrt_bc2 / (sqrt_bc2 * np.abs(G1) + EPS)
    np.testing.assert_allclose(run([G1] * 5), theta5, rtol=tol.optim_golden)
    np.testing.assert_allclose(run([G1] * 6), expected, rtol=tol.optim_golden)


def test_small_beta2_never_rectifies(tol) -> None:
    # beta2 = 0.5: rho_inf = 3 <= 5, so every step is SGD with the bias-corrected momentum;
    # a constant gradient then moves by exactly lr g per step.
    np.testing.assert_allclose(run([G1] * 10, betas=(0.9, 0.5)), THETA0 - 10 * LR * G1,
                               rtol=tol.optim_golden)


@pytest.mark.parametrize("decoupled", [False, True])
def test_golden_first_step_weight_decay_maximize(tol, decoupled: bool) -> None:
    if decoupled:
        # theta_0 (1 - lr wd) = [0.99, -1.98], then theta -= lr (-g)
        expected = THETA0 * (1 - LR * 0.1) + LR * G1
    else:
        # g = -grad + 0.1 theta = [-0.4, 0.05]
        expected = THETA0 - LR * np.array([-0.4, 0.05])
    got = run([G1], weight_decay=0.1, decoupled_weight_decay=decoupled, maximize=True)
    np.testing.assert_allclose(got, expected, rtol=tol.optim_golden)


def test_defaults_follow_torch() -> None:
    assert RAdam([Parameter(np.zeros(2))]).defaults == {
        "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
        "decoupled_weight_decay": False, "maximize": False,
    }


def test_gradient_is_not_modified() -> None:
    p = Parameter(THETA0.copy())
    opt = RAdam([p], weight_decay=0.1, maximize=True)
    p.grad[...] = G1
    for _ in range(7):
        opt.step()
    np.testing.assert_array_equal(p.grad, G1)


# ---------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1e-3}, r"lr=-0\.001 must be >= 0"),
        ({"betas": (1.0, 0.999)}, r"beta1=1\.0 must be in \[0, 1\)"),
        ({"betas": (0.9, 1.0)}, r"beta2=1\.0 must be in \[0, 1\)"),
        ({"betas": (0.9, 0.99, 0.9)}, r"must be a pair"),
        ({"eps": 0.0}, r"eps=0\.0 must be > 0"),
        ({"weight_decay": -0.1}, r"weight_decay=-0\.1 must be >= 0"),
    ],
)
def test_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RAdam([Parameter(np.zeros(2))], **kwargs)


# ---------------------------------------------------------------------- torch oracle
# beta2 = 0.99 rectifies from step 6 as 0.999 does, but r_t grows faster (r_200 = 0.82 vs
# 0.31), so the adaptive branch dominates the trajectory; 0.5 never rectifies.
GRID = [
    {"betas": betas, "weight_decay": wd, "decoupled_weight_decay": decoupled, "maximize": maximize}
    for betas in ((0.9, 0.99), (0.8, 0.999), (0.9, 0.5))
    for wd in (0.0, 0.1)
    for decoupled in (False, True)
    for maximize in (False, True)
    if wd != 0 or not decoupled
]


@pytest.mark.oracle
@pytest.mark.parametrize("config", GRID, ids=config_id)
def test_trajectory_matches_torch(tol, config: dict) -> None:
    torch = pytest.importorskip("torch")
    ours, theirs = trajectories(
        lambda ps: RAdam(ps, lr=0.01, **config),
        lambda ts: torch.optim.RAdam(ts, lr=0.01, **config),
    )
    assert rel_error(ours, theirs, "RAdam") < tol.optim_oracle


@pytest.mark.oracle
def test_param_groups_and_schedule_match_torch(tol) -> None:
    torch = pytest.importorskip("torch")

    def groups(ps: list) -> list[dict]:
        return [{"params": [ps[0]], "lr": 0.03, "betas": (0.5, 0.9)},
                {"params": [ps[1]], "weight_decay": 0.0, "eps": 1e-3}]

    ours, theirs = trajectories(
        lambda ps: RAdam(groups(ps), lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
        lambda ts: torch.optim.RAdam(groups(ts), lr=0.01, weight_decay=0.1,
                                     decoupled_weight_decay=True),
    )
    assert rel_error(ours, theirs, "RAdam") < tol.optim_oracle

    def schedule(step: int) -> float:
        return 0.01 * 0.99**step

    ours, theirs = trajectories(
        lambda ps: RAdam(ps, lr=schedule, weight_decay=0.1),
        lambda ts: torch.optim.RAdam(ts, lr=1.0, weight_decay=0.1),
        torch_after_step=lambda topt: torch.optim.lr_scheduler.LambdaLR(topt, schedule).step,
    )
    assert rel_error(ours, theirs, "RAdam") < tol.optim_oracle


# ---------------------------------------------------------------------- state, memory, dtype
CONFIGS = {
    "plain": lambda ps: RAdam(ps),
    "decay-maximize": lambda ps: RAdam(ps, weight_decay=0.1, maximize=True),
    "decoupled": lambda ps: RAdam(ps, weight_decay=0.1, decoupled_weight_decay=True),
}


@pytest.mark.parametrize("into_trained", [False, True], ids=["into-fresh", "into-trained"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_state_dict_round_trip_continues_bit_identically(name: str, into_trained: bool) -> None:
    # 5 steps before the checkpoint, 7 after: the switch to rectified steps (t = 6) is crossed
    # by the restored optimizer
    ps, ps2 = round_trip(CONFIGS[name], into_trained)
    for p, p2 in zip(ps, ps2):
        np.testing.assert_array_equal(p.data, p2.data)


@pytest.mark.parametrize("steps_before", [1, 6], ids=["sgd-branch", "rectified-branch"])
def test_a_step_allocates_no_array_memory(steps_before: int) -> None:
    def make(ps: list[Parameter]) -> RAdam:
        opt = RAdam(ps, weight_decay=0.1, maximize=True)
        for _ in range(steps_before - 1):
            opt.step()
        return opt

    allocated, nbytes = allocated_by_a_step(make)
    assert allocated < 0.02 * nbytes  # views and Python floats only


@pytest.mark.parametrize("name", list(CONFIGS))
def test_updates_are_in_place(name: str) -> None:
    assert updates_in_place(CONFIGS[name])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_float32_stays_float32(name: str) -> None:
    opt, ps = float32_run(CONFIGS[name])
    assert dtypes_of(opt, ps) == {np.dtype(np.float32)}
