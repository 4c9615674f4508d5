"""Tests of gradwise/optim/lion.py: golden steps, a reference transcription of Chen et al. (2023),
Algorithm 2 (torch has no Lion), argument checks, state."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import record, rel_err
from oracle import (
    STEPS,
    allocated_by_a_step,
    config_id,
    dtypes_of,
    float32_run,
    initial_arrays,
    round_trip,
    updates_in_place,
)

from gradwise.core import Parameter
from gradwise.optim import Lion

THETA0 = np.array([1.0, -2.0])
G1 = np.array([0.5, -0.25])
G2 = np.array([-0.01, 0.3])


def run(grads: list[np.ndarray], **kwargs) -> tuple[np.ndarray, Lion]:
    """Apply Lion([p], **kwargs) to theta0 with the given gradients."""
    p = Parameter(THETA0.copy(), name="w")
    opt = Lion([p], **kwargs)
    for g in grads:
        p.grad[...] = g
        opt.step()
    return p.data, opt


# ---------------------------------------------------------------------- golden steps
def test_golden_first_step(tol) -> None:
    # c_1 = 0.1 g_1, so sign(c_1) = sign(g_1) = [1, -1]; m_1 = 0.01 g_1
    theta, opt = run([G1], lr=0.1)
    np.testing.assert_allclose(theta, [0.9, -1.9], rtol=tol.optim_golden)
    np.testing.assert_allclose(opt.state[next(iter(opt.state))]["exp_avg"], [0.005, -0.0025],
                               rtol=tol.optim_golden)


def test_golden_second_step_follows_the_momentum(tol) -> None:
    # c_2 = 0.9 m_1 + 0.1 g_2 = [0.0045 - 0.001, -0.00225 + 0.03] = [0.0035, 0.02775]: the first
    # coordinate keeps moving down although g_2 < 0 there; m_2 = 0.99 m_1 + 0.01 g_2
    theta, opt = run([G1, G2], lr=0.1)
    np.testing.assert_allclose(theta, [0.8, -2.0], rtol=tol.optim_golden)
    np.testing.assert_allclose(opt.state[next(iter(opt.state))]["exp_avg"],
                               [0.00495 - 0.0001, -0.002475 + 0.003], rtol=tol.optim_golden)


def test_golden_second_step_without_interpolation(tol) -> None:
    # beta1 = 0: c_2 = g_2, sign [-1, 1]
    theta, _ = run([G1, G2], lr=0.1, betas=(0.0, 0.99))
    np.testing.assert_allclose(theta, [1.0, -2.0], rtol=tol.optim_golden)


def test_golden_decoupled_weight_decay(tol) -> None:
    # theta_1 = theta_0 - lr (sign(c_1) + wd theta_0) = [1 - 0.1 (1 + 0.5), -2 - 0.1 (-1 - 1)]
    theta, _ = run([G1], lr=0.1, weight_decay=0.5)
    np.testing.assert_allclose(theta, [0.85, -1.8], rtol=tol.optim_golden)


def test_golden_maximize(tol) -> None:
    theta, _ = run([G1], lr=0.1, maximize=True)
    np.testing.assert_allclose(theta, [1.1, -2.1], rtol=tol.optim_golden)


def test_every_coordinate_moves_by_lr_whatever_the_gradient_scale(tol) -> None:
    # the sign update: tiny, huge and zero gradients give steps of lr, lr and 0
    p = Parameter(np.zeros(3))
    opt = Lion([p], lr=1e-3)
    p.grad[...] = [1e-9, -1e6, 0.0]
    opt.step()
    np.testing.assert_allclose(p.data, [-1e-3, 1e-3, 0.0], rtol=tol.optim_golden)


def test_defaults_follow_the_paper() -> None:
    assert Lion([Parameter(np.zeros(2))]).defaults == {
        "lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.0, "maximize": False,
    }


def test_gradient_is_not_modified() -> None:
    p = Parameter(THETA0.copy())
    opt = Lion([p], weight_decay=0.1, maximize=True)
    p.grad[...] = G1
    opt.step()
    opt.step()
    np.testing.assert_array_equal(p.grad, G1)


# ---------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1e-4}, r"lr=-0\.0001 must be >= 0"),
        ({"betas": (1.0, 0.99)}, r"beta1=1\.0 must be in \[0, 1\)"),
        ({"betas": (0.9, 1.5)}, r"beta2=1\.5 must be in \[0, 1\)"),
        ({"betas": (0.9,)}, r"must be a pair"),
        ({"weight_decay": -0.1}, r"weight_decay=-0\.1 must be >= 0"),
    ],
)
def test_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Lion([Parameter(np.zeros(2))], **kwargs)


# ---------------------------------------------------------------------- reference trajectory
def algorithm_2(theta: np.ndarray, m: np.ndarray, g: np.ndarray, lr: float, beta1: float,
                beta2: float, wd: float) -> tuple[np.ndarray, np.ndarray]:
    """One step of Lion as printed in Chen et al. (2023), Algorithm 2 (allocating, unoptimized)."""
    c = beta1 * m + (1 - beta1) * g                       # update
    theta = theta - lr * (np.sign(c) + wd * theta)        # update model parameters
    m = beta2 * m + (1 - beta2) * g                       # update EMA of g_t
    return theta, m


def reference_error(config: dict, steps: int = STEPS) -> float:
    """Largest norm-wise relative error between Lion and `algorithm_2` after `steps` steps on the
    noisy quadratic of `oracle.trajectories` (each side's gradient from its own parameters)."""
    lr, (beta1, beta2) = config["lr"], config.get("betas", (0.9, 0.99))
    wd, sign = config.get("weight_decay", 0.0), -1.0 if config.get("maximize") else 1.0
    rng, init = initial_arrays(seed=2)
    ours = [Parameter(a.copy(), name=f"p{i}") for i, a in enumerate(init)]
    opt = Lion(ours, **config)
    thetas, moms = [a.copy() for a in init], [np.zeros_like(a) for a in init]
    for _ in range(steps):
        for i, p in enumerate(ours):
            noise = rng.standard_normal(p.shape)
            p.grad[...] = 0.1 * p.data + noise
            g = sign * (0.1 * thetas[i] + noise)
            thetas[i], moms[i] = algorithm_2(thetas[i], moms[i], g, lr, beta1, beta2, wd)
        opt.step()
    return record("Lion", max(rel_err(p.data, t) for p, t in zip(ours, thetas)))


GRID = [
    {"lr": 1e-3, "betas": betas, "weight_decay": wd, "maximize": maximize}
    for betas in ((0.9, 0.99), (0.95, 0.98), (0.0, 0.99))
    for wd in (0.0, 1.0)
    for maximize in (False, True)
]


@pytest.mark.parametrize("config", GRID, ids=config_id)
def test_trajectory_matches_algorithm_2(tol, config: dict) -> None:
    assert reference_error(config) < tol.optim_oracle


# ---------------------------------------------------------------------- state, memory, dtype
CONFIGS = {
    "plain": lambda ps: Lion(ps),
    "decay-maximize": lambda ps: Lion(ps, lr=1e-3, weight_decay=0.1, maximize=True),
    "groups-schedule": lambda ps: Lion([{"params": ps[:1], "betas": (0.5, 0.9)},
                                        {"params": ps[1:], "lr": lambda s: 1e-3 * 0.9**s}]),
}


@pytest.mark.parametrize("into_trained", [False, True], ids=["into-fresh", "into-trained"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_state_dict_round_trip_continues_bit_identically(name: str, into_trained: bool) -> None:
    ps, ps2 = round_trip(CONFIGS[name], into_trained)
    for p, p2 in zip(ps, ps2):
        np.testing.assert_array_equal(p.data, p2.data)


@pytest.mark.parametrize("name", ["plain", "decay-maximize"])
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
