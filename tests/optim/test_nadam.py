"""Tests of gradwise/optim/nadam.py: golden steps, torch trajectories, argument checks, state."""

from __future__ import annotations

from collections.abc import Iterator

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
from gradwise.optim import NAdam

THETA0 = np.array([1.0, -2.0])
G1 = np.array([0.5, -0.25])
G2 = np.array([0.1, 0.3])
EPS = 1e-8
LR = 0.1


def run(grads: list[np.ndarray], **kwargs) -> tuple[np.ndarray, NAdam]:
    """Apply NAdam([p], lr=0.1, **kwargs) to theta0 with the given gradients."""
    p = Parameter(THETA0.copy(), name="w")
    opt = NAdam([p], lr=LR, **kwargs)
    for g in grads:
        p.grad[...] = g
        opt.step()
    return p.data, opt


def mu(t: int, beta1: float = 0.9, psi: float = 4e-3) -> float:
    """Dozat's momentum schedule mu_t = beta1 (1 - 0.5 * 0.96^(t psi))."""
    return beta1 * (1 - 0.5 * 0.96 ** (t * psi))


def f32(x: float) -> float:
    """`x` rounded to float32 (the running product of mu_t is, as in torch)."""
    return float(np.float32(x))


def prod(*mus: float) -> float:
    """The running product of `mus` as NAdam keeps it: rounded to float32 after each factor."""
    out = 1.0
    for m in mus:
        out = f32(f32(out) * f32(m))
    return out


# ---------------------------------------------------------------------- golden steps
def test_golden_first_step_in_numbers(tol) -> None:
    # mu_1 = 0.9 (1 - 0.5 * 0.96^0.004) = 0.450073473591296
    # mu_2 = 0.9 (1 - 0.5 * 0.96^0.008) = 0.450146935186218
    # prod_1 = f32(mu_1) = 0.4500734806060791 (float32, as torch keeps it)
    # step factor lr ((1 - mu_1) / (1 - prod_1) + 0.1 mu_2 / (1 - prod_1 mu_2))
    #   = 0.105645179133479, times g / (|g| + eps)
    theta, _ = run([G1])
    np.testing.assert_allclose(theta, [0.894354822979424, -1.894354825092328],
                               rtol=tol.optim_golden)


def test_golden_first_step(tol) -> None:
    # m_1 = 0.1 g, v_1 / (1 - beta2) = g^2, so delta_1 = |g| + eps and
    # theta_1 = theta_0
    #           - lr [(1 - mu_1) / (1 - mu_1) + mu_2 * 0.1 / (1 - mu_1 mu_2)] g / (|g| + eps)
    mu1, mu2 = mu(1), mu(2)
    # (1 - mu_1) / (1 - prod_1) is 1 up to the float32 rounding of prod_1 = f32(mu_1)
    p1 = prod(mu1)
    expected = THETA0 - LR * ((1 - mu1) / (1 - p1) + 0.1 * mu2 / (1 - p1 * mu2)) * G1 / (
        np.abs(G1) + EPS)
    theta, opt = run([G1])
    np.testing.assert_allclose(theta, expected, rtol=tol.optim_golden)
    assert opt.state[next(iter(opt.state))]["mu_product"] == f32(mu1)


def test_golden_first_step_without_momentum_decay(tol) -> None:
    # psi = 0: mu_t = 0.45 for all t, prod = f32(0.45), then f32(0.45) * 0.45
    p1 = prod(0.45)
    expected = THETA0 - LR * ((1 - 0.45) / (1 - p1) + 0.1 * 0.45 / (1 - p1 * 0.45)) * G1 / (
        np.abs(G1) + EPS)
    theta, _ = run([G1], momentum_decay=0.0)
    np.testing.assert_allclose(theta, expected, rtol=tol.optim_golden)


def test_golden_second_step(tol) -> None:
    mu1, mu2, mu3 = mu(1), mu(2), mu(3)
    p1, p2 = prod(mu1), prod(mu1, mu2)
    theta1 = THETA0 - LR * ((1 - mu1) / (1 - p1) + 0.1 * mu2 / (1 - p1 * mu2)) * G1 / (
        np.abs(G1) + EPS)
    m2 = np.array([0.045 + 0.01, -0.0225 + 0.03])               # 0.9 * 0.1 g_1 + 0.1 g_2
    # 0.999 * 0.001 g_1^2 + 0.001 g_2^2
    v2 = np.array([0.00024975 + 0.00001, 0.0000624375 + 0.00009])
    delta2 = np.sqrt(v2 / (1 - 0.999**2)) + EPS
    expected = (theta1
                - LR * (1 - mu2) / (1 - p2) * G2 / delta2
                - LR * mu3 / (1 - p2 * mu3) * m2 / delta2)
    theta, _ = run([G1, G2])
    np.testing.assert_allclose(theta, expected, rtol=tol.optim_golden)


@pytest.mark.parametrize("decoupled", [False, True])
def test_golden_first_step_weight_decay(tol, decoupled: bool) -> None:
    mu1, mu2 = mu(1), mu(2)
    p1 = prod(mu1)
    factor = LR * ((1 - mu1) / (1 - p1) + 0.1 * mu2 / (1 - p1 * mu2))
    if decoupled:
        # theta_0 (1 - lr wd) = [0.99, -1.98], then the step on the raw gradient
        expected = THETA0 * (1 - LR * 0.1) - factor * G1 / (np.abs(G1) + EPS)
    else:
        g = G1 + 0.1 * THETA0                                  # [0.6, -0.45]
        expected = THETA0 - factor * g / (np.abs(g) + EPS)
    theta, _ = run([G1], weight_decay=0.1, decoupled_weight_decay=decoupled)
    np.testing.assert_allclose(theta, expected, rtol=tol.optim_golden)


def test_defaults_follow_torch() -> None:
    assert NAdam([Parameter(np.zeros(2))]).defaults == {
        "lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
        "momentum_decay": 4e-3, "decoupled_weight_decay": False, "maximize": False,
    }


def test_gradient_is_not_modified() -> None:
    p = Parameter(THETA0.copy())
    opt = NAdam([p], weight_decay=0.1, maximize=True)
    p.grad[...] = G1
    opt.step()
    opt.step()
    np.testing.assert_array_equal(p.grad, G1)


# ---------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1e-3}, r"lr=-0\.001 must be >= 0"),
        ({"betas": (1.0, 0.999)}, r"beta1=1\.0 must be in \[0, 1\)"),
        ({"betas": (0.9, -0.1)}, r"beta2=-0\.1 must be in \[0, 1\)"),
        ({"betas": (0.9,)}, r"betas=\(0\.9,\) must be a pair"),
        ({"eps": 0.0}, r"eps=0\.0 must be > 0"),
        ({"weight_decay": -0.1}, r"weight_decay=-0\.1 must be >= 0"),
        ({"momentum_decay": -4e-3}, r"momentum_decay=-0\.004 must be >= 0"),
    ],
)
def test_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NAdam([Parameter(np.zeros(2))], **kwargs)


# ---------------------------------------------------------------------- torch oracle
@pytest.fixture
def torch32() -> Iterator[object]:
    """torch with its default dtype float32, as users run it (where torch.optim.NAdam keeps its
    running product of mu_t in float32, which NAdam reproduces), restored afterwards."""
    torch = pytest.importorskip("torch")
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        yield torch
    finally:
        torch.set_default_dtype(before)


GRID = [
    {"momentum_decay": psi, "weight_decay": wd, "decoupled_weight_decay": decoupled,
     "maximize": maximize}
    for psi in (4e-3, 0.0)
    for wd in (0.0, 0.1)
    for decoupled in (False, True)
    for maximize in (False, True)
    if wd != 0 or not decoupled
]


@pytest.mark.oracle
@pytest.mark.parametrize("config", GRID, ids=config_id)
def test_trajectory_matches_torch(tol, torch32, config: dict) -> None:
    ours, theirs = trajectories(
        lambda ps: NAdam(ps, lr=0.01, betas=(0.8, 0.99), **config),
        lambda ts: torch32.optim.NAdam(ts, lr=0.01, betas=(0.8, 0.99), **config),
    )
    assert rel_error(ours, theirs, "NAdam") < tol.optim_oracle


@pytest.mark.oracle
def test_param_groups_and_schedule_match_torch(tol, torch32) -> None:
    def groups(ps: list) -> list[dict]:
        return [{"params": [ps[0]], "lr": 0.03, "betas": (0.5, 0.9), "momentum_decay": 0.1},
                {"params": [ps[1]], "weight_decay": 0.0}]

    ours, theirs = trajectories(
        lambda ps: NAdam(groups(ps), lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
        lambda ts: torch32.optim.NAdam(groups(ts), lr=0.01, weight_decay=0.1,
                                       decoupled_weight_decay=True),
    )
    assert rel_error(ours, theirs, "NAdam") < tol.optim_oracle

    def schedule(step: int) -> float:
        return 0.01 * 0.99**step

    ours, theirs = trajectories(
        lambda ps: NAdam(ps, lr=schedule, weight_decay=0.1),
        lambda ts: torch32.optim.NAdam(ts, lr=1.0, weight_decay=0.1),
        torch_after_step=lambda topt: torch32.optim.lr_scheduler.LambdaLR(topt, schedule).step,
    )
    assert rel_error(ours, theirs, "NAdam") < tol.optim_oracle


@pytest.mark.oracle
def test_issue_8_case_matches_torch_elementwise(tol, torch32) -> None:
    # lr 2e-3, default betas and momentum_decay, 200 float64 steps on a 7x5 parameter with
    # standard-normal gradients (weights, then gradients, from default_rng(0)); the float64
    # product of mu_t used to put this 5e-10 away from torch.
    torch = torch32
    rng = np.random.default_rng(0)
    w = rng.standard_normal((7, 5))
    grads = [rng.standard_normal((7, 5)) for _ in range(200)]
    p = Parameter(w.copy(), name="w")
    t = torch.nn.Parameter(torch.from_numpy(w.copy()))
    opt, topt = NAdam([p], lr=2e-3), torch.optim.NAdam([t], lr=2e-3)
    for g in grads:
        p.grad[...] = g
        t.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    theirs = t.detach().numpy()
    assert np.max(np.abs(p.data - theirs) / np.abs(theirs)) < tol.optim_oracle_elementwise
    assert opt.state[p]["mu_product"] == topt.state[t]["mu_product"].item()


# ---------------------------------------------------------------------- state, memory, dtype
CONFIGS = {
    "plain": lambda ps: NAdam(ps),
    "decay-maximize": lambda ps: NAdam(ps, weight_decay=0.1, maximize=True),
    "decoupled": lambda ps: NAdam(ps, weight_decay=0.1, decoupled_weight_decay=True),
}


@pytest.mark.parametrize("into_trained", [False, True], ids=["into-fresh", "into-trained"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_state_dict_round_trip_continues_bit_identically(name: str, into_trained: bool) -> None:
    ps, ps2 = round_trip(CONFIGS[name], into_trained)
    for p, p2 in zip(ps, ps2):
        np.testing.assert_array_equal(p.data, p2.data)


def test_mu_product_is_a_float_in_the_state_dict() -> None:
    p = Parameter(np.zeros(2), name="w")
    opt = NAdam([p])
    opt.step()
    opt.step()
    entry = opt.state_dict()["state"]["w"]
    assert set(entry) == {"step", "mu_product", "exp_avg", "exp_avg_sq"}
    assert isinstance(entry["mu_product"], float) and entry["mu_product"] == prod(mu(1), mu(2))


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
