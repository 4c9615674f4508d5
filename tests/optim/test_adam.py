"""Tests of gradwise/optim/adam.py: golden steps, torch trajectories, argument checks."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from oracle import allocated_by_a_step, config_id, rel_error, trajectories

from gradwise.core import Parameter
from gradwise.optim import Adam, AdamW
from gradwise.optim import _blocks as optimizer_module
from gradwise.optim.optimizer import BLOCK_BYTES

THETA0 = [1.0, -2.0]
G1 = [0.5, -0.25]
EPS = 1e-8


def run(grads: list[list[float]], make=Adam, **kwargs) -> np.ndarray:
    """Apply make([p], **kwargs) to theta0 with the given gradient sequence; return the parameter."""
    p = Parameter(np.array(THETA0), name="w")
    opt = make([p], **kwargs)
    for g in grads:
        p.grad[...] = g
        opt.step()
    return p.data


# ---------------------------------------------------------------------- golden steps
# On the first step m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps).
def test_golden_first_step(tol) -> None:
    # 0.1 * 0.5 / 0.50000001 = 0.099999998, 0.1 * 0.25 / 0.25000001 = 0.099999996
    np.testing.assert_allclose(run([G1], lr=0.1), [0.900000002, -1.900000004], rtol=tol.optim_golden)


def test_golden_first_step_maximize(tol) -> None:
    np.testing.assert_allclose(
        run([G1], lr=0.1, maximize=True), [1.099999998, -2.099999996], rtol=tol.optim_golden
    )


def test_golden_first_step_coupled_weight_decay(tol) -> None:
    # g + 0.1 theta = [0.6, -0.45]; the decay passes through the normalization
    expected = [1 - 0.1 * 0.6 / (0.6 + EPS), -2 + 0.1 * 0.45 / (0.45 + EPS)]
    np.testing.assert_allclose(run([G1], lr=0.1, weight_decay=0.1), expected, rtol=tol.optim_golden)


@pytest.mark.parametrize("make", [AdamW, lambda ps, **kw: Adam(ps, decoupled_weight_decay=True, **kw)])
def test_golden_first_step_decoupled_weight_decay(tol, make: Callable) -> None:
    # theta (1 - lr wd) = [0.999, -1.998], then the plain Adam step on the raw gradient
    expected = [0.999 - 0.1 * 0.5 / (0.5 + EPS), -1.998 + 0.1 * 0.25 / (0.25 + EPS)]
    np.testing.assert_allclose(
        run([G1], make=make, lr=0.1, weight_decay=0.01), expected, rtol=tol.optim_golden
    )


def test_golden_second_step(tol) -> None:
    g2 = [0.1, 0.3]
    # m_2 = 0.9 * 0.1 g_1 + 0.1 g_2 = [0.045 + 0.01, -0.0225 + 0.03]
    m2 = np.array([0.055, 0.0075])
    # v_2 = 0.999 * 0.001 g_1^2 + 0.001 g_2^2 = [0.00024975 + 0.00001, 0.0000624375 + 0.00009]
    v2 = np.array([0.00025975, 0.0001524375])
    bc1, bc2 = 1 - 0.9**2, 1 - 0.999**2  # 0.19, 0.001999
    theta1 = np.array([0.900000002, -1.900000004])
    expected = theta1 - 0.1 / bc1 * m2 / (np.sqrt(v2) / math.sqrt(bc2) + EPS)
    np.testing.assert_allclose(run([G1, g2], lr=0.1), expected, rtol=tol.optim_golden)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_golden_amsgrad_keeps_the_largest_uncorrected_v(tol, amsgrad: bool) -> None:
    # g_1 = 1, g_2 = 0: v_1 = 0.001, v_2 = 0.000999 < v_1, m_2 = 0.9 * 0.1 = 0.09
    v = 0.001 if amsgrad else 0.000999
    theta1 = 1 - 0.1 * 1.0 / (1.0 + EPS)
    expected = theta1 - 0.1 / (1 - 0.9**2) * 0.09 / (math.sqrt(v) / math.sqrt(1 - 0.999**2) + EPS)
    got = run([[1.0, 0.0], [0.0, 0.0]], lr=0.1, amsgrad=amsgrad)
    np.testing.assert_allclose(got[0], expected, rtol=tol.optim_golden)
    # a parameter whose gradient was always 0 does not move: 0 / (0 + eps)
    assert got[1] == -2.0


def test_adamw_is_adam_with_decoupled_decay() -> None:
    opt = AdamW([Parameter(np.zeros(2))])
    assert isinstance(opt, Adam)
    assert opt.defaults["weight_decay"] == 1e-2
    assert opt.defaults["decoupled_weight_decay"] is True
    assert Adam([Parameter(np.zeros(2))]).defaults == {
        "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
        "amsgrad": False, "maximize": False, "decoupled_weight_decay": False,
    }


def test_gradient_is_not_modified() -> None:
    p = Parameter(np.array(THETA0))
    opt = Adam([p], weight_decay=0.1, maximize=True, amsgrad=True)
    p.grad[...] = G1
    opt.step()
    opt.step()
    np.testing.assert_array_equal(p.grad, G1)


def test_amsgrad_switched_on_later_starts_its_maximum() -> None:
    p = Parameter(np.array(THETA0))
    opt = Adam([p])
    p.grad[...] = G1
    opt.step()
    assert "max_exp_avg_sq" not in opt.state[p]
    opt.param_groups[0]["amsgrad"] = True
    opt.step()
    np.testing.assert_array_equal(opt.state[p]["max_exp_avg_sq"], opt.state[p]["exp_avg_sq"])


# ---------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1e-3}, r"lr=-0\.001 must be >= 0"),
        ({"betas": (1.0, 0.999)}, r"beta1=1\.0 must be in \[0, 1\)"),
        ({"betas": (-0.1, 0.999)}, r"beta1=-0\.1 must be in \[0, 1\)"),
        ({"betas": (0.9, 1.0)}, r"beta2=1\.0 must be in \[0, 1\)"),
        ({"betas": (0.9,)}, r"betas=\(0\.9,\) must be a pair"),
        ({"eps": 0.0}, r"eps=0\.0 must be > 0"),
        ({"eps": -1e-8}, r"eps=-1e-08 must be > 0"),
        ({"weight_decay": -0.1}, r"weight_decay=-0\.1 must be >= 0"),
    ],
)
@pytest.mark.parametrize("make", [Adam, AdamW])
def test_invalid_arguments(make: Callable, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make([Parameter(np.zeros(2))], **kwargs)


# ---------------------------------------------------------------------- torch oracle
ADAM_GRID = [
    {"amsgrad": amsgrad, "weight_decay": wd, "maximize": maximize}
    for amsgrad in (False, True)
    for wd in (0.0, 0.1)
    for maximize in (False, True)
]


@pytest.mark.oracle
@pytest.mark.parametrize("config", ADAM_GRID, ids=config_id)
def test_adam_trajectory_matches_torch(tol, config: dict) -> None:
    torch = pytest.importorskip("torch")
    ours, theirs = trajectories(
        lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.99), **config),
        lambda ts: torch.optim.Adam(ts, lr=0.01, betas=(0.8, 0.99), **config),
        seed=1,
    )
    assert rel_error(ours, theirs, "Adam") < tol.optim_oracle


@pytest.mark.oracle
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("weight_decay", [None, 0.1])
def test_adamw_trajectory_matches_torch(tol, amsgrad: bool, maximize: bool, weight_decay: float | None) -> None:
    torch = pytest.importorskip("torch")
    # None: both libraries' default weight decay (1e-2)
    kw = {"amsgrad": amsgrad, "maximize": maximize}
    if weight_decay is not None:
        kw["weight_decay"] = weight_decay
    ours, theirs = trajectories(
        lambda ps: AdamW(ps, lr=0.01, **kw),
        lambda ts: torch.optim.AdamW(ts, lr=0.01, **kw),
        seed=1,
    )
    assert rel_error(ours, theirs, "Adam") < tol.optim_oracle


@pytest.mark.oracle
def test_param_groups_and_schedule_match_torch(tol) -> None:
    torch = pytest.importorskip("torch")

    def schedule(step: int) -> float:
        return 0.1 * 0.9**step

    def groups(ps: list) -> list[dict]:
        return [
            {"params": [ps[0]], "lr": 0.03, "betas": (0.5, 0.9)},
            {"params": [ps[1]], "weight_decay": 0.0, "amsgrad": True},
        ]

    ours, theirs = trajectories(
        lambda ps: AdamW(groups(ps), lr=0.01, weight_decay=0.1),
        lambda ts: torch.optim.AdamW(groups(ts), lr=0.01, weight_decay=0.1),
        seed=1,
    )
    assert rel_error(ours, theirs, "Adam") < tol.optim_oracle

    # lr = 0.1 * 0.9**step; torch's LambdaLR multiplies the base lr (1.0) by the same factor.
    ours, theirs = trajectories(
        lambda ps: Adam(ps, lr=schedule, amsgrad=True, weight_decay=0.1),
        lambda ts: torch.optim.Adam(ts, lr=1.0, amsgrad=True, weight_decay=0.1),
        torch_after_step=lambda topt: torch.optim.lr_scheduler.LambdaLR(topt, schedule).step,
        seed=1,
    )
    assert rel_error(ours, theirs, "Adam") < tol.optim_oracle


# ---------------------------------------------------------------------- blocked updates
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"amsgrad": True, "weight_decay": 0.1, "maximize": True},
     {"decoupled_weight_decay": True, "weight_decay": 0.1}, {"lr": 0.0}],
    ids=config_id,
)
def test_blocked_update_equals_the_whole_array_update(monkeypatch, kwargs: dict, dtype) -> None:
    # A C-contiguous parameter is updated block by block (here from 2 blocks on); a Fortran-ordered
    # one is updated whole. Element-wise arithmetic makes the two bit-identical.
    monkeypatch.setattr(optimizer_module, "BLOCKING_MIN_BYTES", 0)
    rng = np.random.default_rng(0)
    init, grads = rng.standard_normal((600, 257)).astype(dtype), rng.standard_normal((3, 600, 257))
    assert init.nbytes > 2 * BLOCK_BYTES and len(list(optimizer_module.blocks([init]))) > 2
    blocked, whole = Parameter(init.copy()), Parameter(init.copy())
    whole.data, whole.grad = np.asfortranarray(whole.data), np.asfortranarray(whole.grad)
    opts = [Adam([blocked], fused=False, **kwargs), Adam([whole], fused=False, **kwargs)]
    for g in grads:
        for p, opt in zip((blocked, whole), opts):
            p.grad[...] = g
            opt.step()
    assert whole.data.flags.f_contiguous and not whole.data.flags.c_contiguous
    np.testing.assert_array_equal(blocked.data, whole.data)
    for key, buf in opts[0].state[blocked].items():
        np.testing.assert_array_equal(buf, opts[1].state[whole][key])
    if kwargs.get("lr") == 0.0:
        np.testing.assert_array_equal(blocked.data, init)


def test_a_blocked_step_allocates_no_array_memory(monkeypatch) -> None:
    monkeypatch.setattr(optimizer_module, "BLOCKING_MIN_BYTES", 0)  # 100,000 float32: 2 blocks
    allocated, nbytes = allocated_by_a_step(
        lambda ps: Adam(ps, amsgrad=True, weight_decay=0.1, maximize=True, fused=False))
    assert allocated < 0.02 * nbytes  # views and Python floats only
