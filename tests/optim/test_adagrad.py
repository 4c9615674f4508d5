"""Tests of gradwise/optim/adagrad.py: golden steps, torch trajectories, argument checks, state."""

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
from gradwise.optim import Adagrad

THETA0 = [1.0, -2.0]
G1 = [0.5, -0.25]
G2 = [0.1, 0.3]
EPS = 1e-10


def run(grads: list[list[float]], **kwargs) -> np.ndarray:
    """Apply Adagrad([p], **kwargs) to theta0 with the given gradients; return the parameter."""
    p = Parameter(np.array(THETA0), name="w")
    opt = Adagrad([p], **kwargs)
    for g in grads:
        p.grad[...] = g
        opt.step()
    return p.data


# ---------------------------------------------------------------------- golden steps
def test_golden_first_step(tol) -> None:
    # G_1 = g^2 = [0.25, 0.0625]: the first step is lr * g / (|g| + eps), about lr * sign(g)
    expected = [1 - 0.1 * 0.5 / (0.5 + EPS), -2 + 0.1 * 0.25 / (0.25 + EPS)]
    np.testing.assert_allclose(run([G1], lr=0.1), expected, rtol=tol.optim_golden)


def test_golden_first_step_initial_accumulator(tol) -> None:
    # G_1 = 0.1 + g^2 = [0.35, 0.1625]
    expected = [1 - 0.1 * 0.5 / (math.sqrt(0.35) + EPS),
                -2 + 0.1 * 0.25 / (math.sqrt(0.1625) + EPS)]
    np.testing.assert_allclose(
        run([G1], lr=0.1, initial_accumulator_value=0.1), expected, rtol=tol.optim_golden
    )


def test_golden_first_step_weight_decay_maximize(tol) -> None:
    # g = -grad + 0.1 theta = [-0.5 + 0.1, 0.25 - 0.2] = [-0.4, 0.05]
    expected = [1 + 0.1 * 0.4 / (0.4 + EPS), -2 - 0.1 * 0.05 / (0.05 + EPS)]
    np.testing.assert_allclose(
        run([G1], lr=0.1, weight_decay=0.1, maximize=True), expected, rtol=tol.optim_golden
    )


@pytest.mark.parametrize("lr_decay", [0.0, 0.5])
def test_golden_second_step(tol, lr_decay: float) -> None:
    theta1 = np.array([1 - 0.1 * 0.5 / (0.5 + EPS), -2 + 0.1 * 0.25 / (0.25 + EPS)])
    # G_2 = g_1^2 + g_2^2 = [0.25 + 0.01, 0.0625 + 0.09]; eta_2 = 0.1 / (1 + 1 * lr_decay)
    G2_sum = np.array([0.26, 0.1525])
    expected = theta1 - 0.1 / (1 + lr_decay) * np.array(G2) / (np.sqrt(G2_sum) + EPS)
    np.testing.assert_allclose(run([G1, G2], lr=0.1, lr_decay=lr_decay), expected,
                               rtol=tol.optim_golden)


def test_steps_shrink_under_a_constant_gradient(tol) -> None:
    # G_t = t g^2, so the t-th step is lr / sqrt(t) (eps aside): Adagrad's monotone decay
    p = Parameter(np.array([0.0]))
    opt = Adagrad([p], lr=1.0)
    p.grad[...] = 2.0
    positions = [0.0]
    for _ in range(4):
        opt.step()
        positions.append(float(p.data[0]))
    np.testing.assert_allclose(-np.diff(positions), [1 / math.sqrt(t) for t in range(1, 5)],
                               rtol=1e-9)


def test_defaults_follow_torch() -> None:
    assert Adagrad([Parameter(np.zeros(2))]).defaults == {
        "lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0,
        "eps": 1e-10, "maximize": False,
    }


def test_gradient_is_not_modified() -> None:
    p = Parameter(np.array(THETA0))
    opt = Adagrad([p], weight_decay=0.1, maximize=True, lr_decay=0.1)
    p.grad[...] = G1
    opt.step()
    opt.step()
    np.testing.assert_array_equal(p.grad, G1)


# ---------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -0.1}, r"lr=-0\.1 must be >= 0"),
        ({"lr_decay": -0.1}, r"lr_decay=-0\.1 must be >= 0"),
        ({"weight_decay": -0.1}, r"weight_decay=-0\.1 must be >= 0"),
        ({"initial_accumulator_value": -0.1}, r"initial_accumulator_value=-0\.1 must be >= 0"),
        ({"eps": 0.0}, r"eps=0\.0 must be > 0"),
        ({"eps": -1e-10}, r"eps=-1e-10 must be > 0"),
    ],
)
def test_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Adagrad([Parameter(np.zeros(2))], **kwargs)


# ---------------------------------------------------------------------- torch oracle
GRID = [
    {"lr_decay": lr_decay, "initial_accumulator_value": init, "weight_decay": wd,
     "maximize": maximize}
    for lr_decay in (0.0, 0.01)
    for init in (0.0, 0.1)
    for wd in (0.0, 0.1)
    for maximize in (False, True)
]


@pytest.mark.oracle
@pytest.mark.parametrize("config", GRID, ids=config_id)
def test_trajectory_matches_torch(tol, config: dict) -> None:
    torch = pytest.importorskip("torch")
    ours, theirs = trajectories(
        lambda ps: Adagrad(ps, lr=0.1, **config),
        lambda ts: torch.optim.Adagrad(ts, lr=0.1, **config),
    )
    assert rel_error(ours, theirs, "Adagrad") < tol.optim_oracle


@pytest.mark.oracle
def test_param_groups_and_schedule_match_torch(tol) -> None:
    torch = pytest.importorskip("torch")

    # torch takes initial_accumulator_value from the constructor only (see the next test)
    def groups(ps: list) -> list[dict]:
        return [{"params": [ps[0]], "lr": 0.05, "lr_decay": 0.1},
                {"params": [ps[1]], "eps": 1e-3}]

    ours, theirs = trajectories(
        lambda ps: Adagrad(groups(ps), lr=0.1, weight_decay=0.1, initial_accumulator_value=0.5),
        lambda ts: torch.optim.Adagrad(groups(ts), lr=0.1, weight_decay=0.1,
                                       initial_accumulator_value=0.5),
    )
    assert rel_error(ours, theirs, "Adagrad") < tol.optim_oracle

    def schedule(step: int) -> float:
        return 0.1 * 0.99**step

    # lr_decay multiplies the schedule in both libraries
    ours, theirs = trajectories(
        lambda ps: Adagrad(ps, lr=schedule, lr_decay=0.01),
        lambda ts: torch.optim.Adagrad(ts, lr=1.0, lr_decay=0.01),
        torch_after_step=lambda topt: torch.optim.lr_scheduler.LambdaLR(topt, schedule).step,
    )
    assert rel_error(ours, theirs, "Adagrad") < tol.optim_oracle


# ---------------------------------------------------------------------- state, memory, dtype
CONFIGS = {
    "plain": lambda ps: Adagrad(ps, lr=0.1),
    "all-options": lambda ps: Adagrad(ps, lr=0.1, lr_decay=0.01, weight_decay=0.1,
                                      initial_accumulator_value=0.1, maximize=True),
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


def test_initial_accumulator_value_per_group() -> None:
    # torch.optim.Adagrad fills every accumulator with the constructor's value and ignores a
    # group's; here a group's value counts, like any other hyperparameter.
    p, q = Parameter(np.zeros(2), name="p"), Parameter(np.zeros(2), name="q")
    opt = Adagrad([{"params": [p]}, {"params": [q], "initial_accumulator_value": 0.5}],
                  initial_accumulator_value=0.1)
    opt.step()
    np.testing.assert_array_equal(opt.state[p]["sum"], [0.1, 0.1])
    np.testing.assert_array_equal(opt.state[q]["sum"], [0.5, 0.5])


def test_state_layout() -> None:
    ps = [Parameter(np.zeros(3), name="w")]
    opt = Adagrad(ps, initial_accumulator_value=0.5)
    ps[0].grad[...] = 1.0
    opt.step()
    entry = opt.state_dict()["state"]["w"]
    assert set(entry) == {"step", "sum"} and entry["step"] == 1
    np.testing.assert_array_equal(entry["sum"], [1.5, 1.5, 1.5])
