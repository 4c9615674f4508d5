"""Tests of gradwise/optim/adadelta.py: golden steps, torch trajectories, argument checks, state."""

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
from gradwise.optim import Adadelta

THETA0 = [1.0, -2.0]
G1 = [0.5, -0.25]
G2 = [0.1, 0.3]
EPS = 1e-6


def run(grads: list[list[float]], **kwargs) -> tuple[np.ndarray, Adadelta]:
    """Apply Adadelta([p], **kwargs) to theta0 with the given gradients; return p and the opt."""
    p = Parameter(np.array(THETA0), name="w")
    opt = Adadelta([p], **kwargs)
    for g in grads:
        p.grad[...] = g
        opt.step()
    return p.data, opt


# E[g^2]_1 = 0.1 g_1^2 = [0.025, 0.00625]; RMS[delta]_0 = sqrt(0 + eps) = 1e-3
DELTA1 = np.array([1e-3 / math.sqrt(0.025 + EPS) * 0.5, 1e-3 / math.sqrt(0.00625 + EPS) * -0.25])


# ---------------------------------------------------------------------- golden steps
def test_golden_first_step(tol) -> None:
    # delta_1 = RMS[delta]_0 / RMS[g]_1 * g_1, about [0.0031623, -0.0031620]: eps sets the scale
    theta, _ = run([G1])
    np.testing.assert_allclose(theta, np.array(THETA0) - DELTA1, rtol=tol.optim_golden)


def test_golden_second_step(tol) -> None:
    acc_delta1 = 0.1 * DELTA1**2                     # E[delta^2]_1
    sq_avg2 = np.array([0.0235, 0.014625])           # 0.9 * [0.025, 0.00625] + 0.1 * g_2^2
    delta2 = np.sqrt(acc_delta1 + EPS) / np.sqrt(sq_avg2 + EPS) * np.array(G2)
    theta, opt = run([G1, G2])
    np.testing.assert_allclose(theta, np.array(THETA0) - DELTA1 - delta2, rtol=tol.optim_golden)
    state = next(iter(opt.state.values()))
    np.testing.assert_allclose(state["acc_delta"], 0.9 * acc_delta1 + 0.1 * delta2**2,
                               rtol=tol.optim_golden)


def test_golden_weight_decay_maximize(tol) -> None:
    # g = -grad + 0.1 theta = [-0.4, 0.05]; E[g^2]_1 = [0.016, 0.00025]
    g = np.array([-0.4, 0.05])
    delta = 1e-3 / np.sqrt(np.array([0.016, 0.00025]) + EPS) * g
    theta, _ = run([G1], weight_decay=0.1, maximize=True, rho=0.9)
    np.testing.assert_allclose(theta, np.array(THETA0) - delta, rtol=tol.optim_golden)


def test_lr_multiplies_the_step_but_not_the_accumulated_update(tol) -> None:
    # Zeiler's method is lr = 1; a smaller lr scales the steps taken, while E[delta^2] (which
    # depends on the gradients only, here) records the unscaled delta.
    theta_full, opt_full = run([G1, G2], lr=1.0)
    theta_half, opt_half = run([G1, G2], lr=0.5)
    np.testing.assert_allclose(theta_half, np.array(THETA0) - 0.5 * (np.array(THETA0) - theta_full),
                               rtol=tol.optim_golden)
    (s_full,), (s_half,) = opt_full.state.values(), opt_half.state.values()
    np.testing.assert_array_equal(s_full["acc_delta"], s_half["acc_delta"])


def test_defaults_follow_torch() -> None:
    assert Adadelta([Parameter(np.zeros(2))]).defaults == {
        "lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0, "maximize": False,
    }


def test_gradient_is_not_modified() -> None:
    p = Parameter(np.array(THETA0))
    opt = Adadelta([p], weight_decay=0.1, maximize=True)
    p.grad[...] = G1
    opt.step()
    opt.step()
    np.testing.assert_array_equal(p.grad, G1)


# ---------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1.0}, r"lr=-1\.0 must be >= 0"),
        ({"rho": 1.0}, r"rho=1\.0 must be in \[0, 1\)"),
        ({"rho": -0.1}, r"rho=-0\.1 must be in \[0, 1\)"),
        ({"eps": 0.0}, r"eps=0\.0 must be > 0"),
        ({"weight_decay": -0.1}, r"weight_decay=-0\.1 must be >= 0"),
    ],
)
def test_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Adadelta([Parameter(np.zeros(2))], **kwargs)


# ---------------------------------------------------------------------- torch oracle
GRID = [
    {"rho": rho, "weight_decay": wd, "maximize": maximize}
    for rho in (0.9, 0.5)
    for wd in (0.0, 0.1)
    for maximize in (False, True)
]


@pytest.mark.oracle
@pytest.mark.parametrize("lr", [1.0, 0.3])
@pytest.mark.parametrize("config", GRID, ids=config_id)
def test_trajectory_matches_torch(tol, config: dict, lr: float) -> None:
    torch = pytest.importorskip("torch")
    ours, theirs = trajectories(
        lambda ps: Adadelta(ps, lr=lr, **config),
        lambda ts: torch.optim.Adadelta(ts, lr=lr, **config),
    )
    assert rel_error(ours, theirs, "Adadelta") < tol.optim_oracle


@pytest.mark.oracle
def test_param_groups_and_schedule_match_torch(tol) -> None:
    torch = pytest.importorskip("torch")

    def groups(ps: list) -> list[dict]:
        return [{"params": [ps[0]], "rho": 0.5, "eps": 1e-4}, {"params": [ps[1]], "lr": 0.5}]

    ours, theirs = trajectories(
        lambda ps: Adadelta(groups(ps), weight_decay=0.1),
        lambda ts: torch.optim.Adadelta(groups(ts), weight_decay=0.1),
    )
    assert rel_error(ours, theirs, "Adadelta") < tol.optim_oracle

    def schedule(step: int) -> float:
        return 0.99**step

    ours, theirs = trajectories(
        lambda ps: Adadelta(ps, lr=schedule),
        lambda ts: torch.optim.Adadelta(ts, lr=1.0),
        torch_after_step=lambda topt: torch.optim.lr_scheduler.LambdaLR(topt, schedule).step,
    )
    assert rel_error(ours, theirs, "Adadelta") < tol.optim_oracle


# ---------------------------------------------------------------------- state, memory, dtype
CONFIGS = {
    "plain": lambda ps: Adadelta(ps),
    "all-options": lambda ps: Adadelta(ps, lr=0.5, rho=0.8, weight_decay=0.1, maximize=True),
}


@pytest.mark.parametrize("into_trained", [False, True], ids=["into-fresh", "into-trained"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_state_dict_round_trip_continues_bit_identically(name: str, into_trained: bool) -> None:
    ps, ps2 = round_trip(CONFIGS[name], into_trained)
    for p, p2 in zip(ps, ps2):
        np.testing.assert_array_equal(p.data, p2.data)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_step_allocates_no_array_memory(name: str) -> None:
    allocated, nbytes = allocated_by_a_step(CONFIGS[name])
    assert allocated < 0.02 * nbytes  # views and Python floats only


@pytest.mark.parametrize("name", list(CONFIGS))
def test_updates_are_in_place(name: str) -> None:
    assert updates_in_place(CONFIGS[name])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_float32_stays_float32(name: str) -> None:
    opt, ps = float32_run(CONFIGS[name])
    assert dtypes_of(opt, ps) == {np.dtype(np.float32)}
