"""Tests of gradwise/optim/rmsprop.py: golden steps, torch trajectories, argument checks, state."""

from __future__ import annotations

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
from gradwise.optim import RMSprop

THETA0 = np.array([1.0, -2.0])
G1 = np.array([0.5, -0.25])
G2 = np.array([0.1, 0.3])
EPS = 1e-8
LR = 0.01


def run(grads: list[np.ndarray], **kwargs) -> np.ndarray:
    """Apply RMSprop([p], lr=0.01, **kwargs) to theta0 with the given gradients; return p."""
    p = Parameter(THETA0.copy(), name="w")
    opt = RMSprop([p], lr=LR, **kwargs)
    for g in grads:
        p.grad[...] = g
        opt.step()
    return p.data


# v_1 = 0.01 g_1^2 = [0.0025, 0.000625]; v_2 = 0.99 v_1 + 0.01 g_2^2
V1 = np.array([0.0025, 0.000625])
V2 = np.array([0.002475 + 0.0001, 0.00061875 + 0.0009])
# centered: g_bar_1 = 0.01 g_1, g_bar_2 = 0.99 g_bar_1 + 0.01 g_2
GBAR1 = np.array([0.005, -0.0025])
GBAR2 = np.array([0.00495 + 0.001, -0.002475 + 0.003])


# ---------------------------------------------------------------------- golden steps
def test_golden_first_step(tol) -> None:
    # sqrt(v_1) = 0.1 |g_1|: without bias correction the first step is 10 lr sign(g)
    expected = THETA0 - LR * G1 / (np.sqrt(V1) + EPS)
    np.testing.assert_allclose(run([G1]), expected, rtol=tol.optim_golden)
    np.testing.assert_allclose(run([G1]), [0.9, -1.9], rtol=1e-6)


def test_golden_first_step_centered(tol) -> None:
    # v_1 - g_bar_1^2 = [0.0025 - 0.000025, 0.000625 - 0.00000625]
    expected = THETA0 - LR * G1 / (np.sqrt([0.002475, 0.00061875]) + EPS)
    np.testing.assert_allclose(run([G1], centered=True), expected, rtol=tol.optim_golden)


def test_golden_first_step_weight_decay_maximize(tol) -> None:
    # g = -grad + 0.1 theta = [-0.4, 0.05]; v_1 = 0.01 g^2 = [0.0016, 0.000025]
    g = np.array([-0.4, 0.05])
    expected = THETA0 - LR * g / (np.sqrt([0.0016, 0.000025]) + EPS)
    np.testing.assert_allclose(run([G1], weight_decay=0.1, maximize=True), expected,
                               rtol=tol.optim_golden)


def test_eps_is_outside_the_root(tol) -> None:
    # sqrt(v_1) + eps = [0.06, 0.035], where TF1's sqrt(v_1 + eps) would be [0.1118, 0.1031]
    expected = THETA0 - LR * G1 / np.array([0.06, 0.035])
    np.testing.assert_allclose(run([G1], eps=0.01), expected, rtol=tol.optim_golden)


@pytest.mark.parametrize("centered", [False, True])
def test_golden_two_momentum_steps(tol, centered: bool) -> None:
    if centered:
        d1, d2 = np.sqrt(V1 - GBAR1**2) + EPS, np.sqrt(V2 - GBAR2**2) + EPS
    else:
        d1, d2 = np.sqrt(V1) + EPS, np.sqrt(V2) + EPS
    b1 = G1 / d1                   # b_1 = 0.9 * 0 + g_1 / delta_1 (the buffer starts at 0)
    b2 = 0.9 * b1 + G2 / d2
    expected = THETA0 - LR * b1 - LR * b2
    np.testing.assert_allclose(run([G1, G2], momentum=0.9, centered=centered), expected,
                               rtol=tol.optim_golden)


def test_golden_second_step_without_momentum(tol) -> None:
    expected = THETA0 - LR * G1 / (np.sqrt(V1) + EPS) - LR * G2 / (np.sqrt(V2) + EPS)
    np.testing.assert_allclose(run([G1, G2]), expected, rtol=tol.optim_golden)


def test_defaults_follow_torch() -> None:
    assert RMSprop([Parameter(np.zeros(2))]).defaults == {
        "lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0,
        "centered": False, "maximize": False,
    }


def test_gradient_is_not_modified() -> None:
    p = Parameter(THETA0.copy())
    opt = RMSprop([p], weight_decay=0.1, maximize=True, momentum=0.9, centered=True)
    p.grad[...] = G1
    opt.step()
    opt.step()
    np.testing.assert_array_equal(p.grad, G1)


@pytest.mark.parametrize(
    ("option", "key"), [("momentum", "momentum_buffer"), ("centered", "grad_avg")]
)
def test_buffers_are_created_when_an_option_is_switched_on_later(option: str, key: str) -> None:
    p = Parameter(THETA0.copy())
    opt = RMSprop([p])
    p.grad[...] = G1
    opt.step()
    assert set(opt.state[p]) == {"step", "square_avg"}
    opt.param_groups[0][option] = 0.9 if option == "momentum" else True
    opt.step()
    assert opt.state[p][key].shape == p.shape


# ---------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -0.01}, r"lr=-0\.01 must be >= 0"),
        ({"alpha": 1.0}, r"alpha=1\.0 must be in \[0, 1\)"),
        ({"alpha": -0.5}, r"alpha=-0\.5 must be in \[0, 1\)"),
        ({"eps": 0.0}, r"eps=0\.0 must be > 0"),
        ({"weight_decay": -0.1}, r"weight_decay=-0\.1 must be >= 0"),
        ({"momentum": -0.9}, r"momentum=-0\.9 must be >= 0"),
    ],
)
def test_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RMSprop([Parameter(np.zeros(2))], **kwargs)


# ---------------------------------------------------------------------- torch oracle
GRID = [
    {"momentum": momentum, "centered": centered, "weight_decay": wd, "maximize": maximize}
    for momentum in (0.0, 0.9)
    for centered in (False, True)
    for wd in (0.0, 0.1)
    for maximize in (False, True)
]


@pytest.mark.oracle
@pytest.mark.parametrize("config", GRID, ids=config_id)
def test_trajectory_matches_torch(tol, config: dict) -> None:
    torch = pytest.importorskip("torch")
    ours, theirs = trajectories(
        lambda ps: RMSprop(ps, lr=0.01, alpha=0.9, **config),
        lambda ts: torch.optim.RMSprop(ts, lr=0.01, alpha=0.9, **config),
    )
    assert rel_error(ours, theirs, "RMSprop") < tol.optim_oracle


@pytest.mark.oracle
def test_param_groups_and_schedule_match_torch(tol) -> None:
    torch = pytest.importorskip("torch")

    def groups(ps: list) -> list[dict]:
        return [{"params": [ps[0]], "lr": 0.003, "centered": True, "alpha": 0.5},
                {"params": [ps[1]], "momentum": 0.5, "eps": 1e-3}]

    ours, theirs = trajectories(
        lambda ps: RMSprop(groups(ps), lr=0.01, weight_decay=0.1),
        lambda ts: torch.optim.RMSprop(groups(ts), lr=0.01, weight_decay=0.1),
    )
    assert rel_error(ours, theirs, "RMSprop") < tol.optim_oracle

    def schedule(step: int) -> float:
        return 0.01 * 0.99**step

    ours, theirs = trajectories(
        lambda ps: RMSprop(ps, lr=schedule, momentum=0.9, centered=True),
        lambda ts: torch.optim.RMSprop(ts, lr=1.0, momentum=0.9, centered=True),
        torch_after_step=lambda topt: torch.optim.lr_scheduler.LambdaLR(topt, schedule).step,
    )
    assert rel_error(ours, theirs, "RMSprop") < tol.optim_oracle


# ---------------------------------------------------------------------- state, memory, dtype
CONFIGS = {
    "plain": lambda ps: RMSprop(ps),
    "momentum-centered-decay-maximize": lambda ps: RMSprop(
        ps, momentum=0.9, centered=True, weight_decay=0.1, maximize=True
    ),
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
