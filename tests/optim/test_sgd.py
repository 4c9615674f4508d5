"""Tests of gradwise/optim/sgd.py: golden single steps, torch trajectories, argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from oracle import allocated_by_a_step, config_id, rel_error, trajectories

from gradwise.core import Parameter
from gradwise.optim import SGD
from gradwise.optim import _blocks as optimizer_module
from gradwise.optim.optimizer import BLOCK_BYTES

THETA0 = [1.0, -2.0]
G1 = [0.5, 0.25]
G2 = [1.0, -1.0]


def run(grads: list[list[float]], **kwargs) -> np.ndarray:
    """Apply SGD(**kwargs) to theta0 with the given gradient sequence; return the parameter."""
    p = Parameter(np.array(THETA0), name="w")
    opt = SGD([p], **kwargs)
    for g in grads:
        p.grad[...] = g
        opt.step()
    return p.data


# ---------------------------------------------------------------------- golden single steps
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # theta - lr g = [1 - 0.05, -2 - 0.025]
        ({"lr": 0.1}, [0.95, -2.025]),
        # g + wd theta = [0.5 + 0.1, 0.25 - 0.2] = [0.6, 0.05]
        ({"lr": 0.1, "weight_decay": 0.1}, [0.94, -2.005]),
        # ascent: theta + lr g
        ({"lr": 0.1, "maximize": True}, [1.05, -1.975]),
        # -g + wd theta = [-0.5 + 0.1, -0.25 - 0.2] = [-0.4, -0.45]
        ({"lr": 0.1, "maximize": True, "weight_decay": 0.1}, [1.04, -1.955]),
        # first momentum step: b_1 = g_1 (not (1 - dampening) g_1)
        ({"lr": 0.1, "momentum": 0.9, "dampening": 0.5}, [0.95, -2.025]),
        # Nesterov first step: d = g_1 + 0.9 b_1 = 1.9 g_1 = [0.95, 0.475]
        ({"lr": 0.1, "momentum": 0.9, "nesterov": True}, [0.905, -2.0475]),
    ],
)
def test_golden_single_step(tol, kwargs: dict, expected: list[float]) -> None:
    np.testing.assert_allclose(run([G1], **kwargs), expected, rtol=tol.optim_golden)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # b_2 = 0.9 [0.5, 0.25] + [1, -1] = [1.45, -0.775]; theta_2 = [0.95, -2.025] - 0.1 b_2
        ({"lr": 0.1, "momentum": 0.9}, [0.805, -1.9475]),
        # b_2 = 0.9 [0.5, 0.25] + 0.5 [1, -1] = [0.95, -0.275]
        ({"lr": 0.1, "momentum": 0.9, "dampening": 0.5}, [0.855, -1.9975]),
        # b_2 = [1.45, -0.775]; d_2 = g_2 + 0.9 b_2 = [2.305, -1.6975]; theta_1 = [0.905, -2.0475]
        ({"lr": 0.1, "momentum": 0.9, "nesterov": True}, [0.6745, -1.87775]),
        # g_2 + wd theta_1 = [1 + 0.094, -1 - 0.2005]; b_2 = 0.9 [0.6, 0.05] + that = [1.634, -1.1555]
        # theta_1 = [0.94, -2.005]; theta_2 = theta_1 - 0.1 b_2
        ({"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}, [0.7766, -1.88945]),
    ],
)
def test_golden_two_momentum_steps(tol, kwargs: dict, expected: list[float]) -> None:
    np.testing.assert_allclose(run([G1, G2], **kwargs), expected, rtol=tol.optim_golden)


def test_gradient_is_not_modified() -> None:
    p = Parameter(np.array(THETA0))
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1, maximize=True, nesterov=True)
    p.grad[...] = G1
    opt.step()
    opt.step()
    np.testing.assert_array_equal(p.grad, G1)


def test_defaults_follow_torch() -> None:
    opt = SGD([Parameter(np.zeros(2))])
    assert opt.defaults == {
        "lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
        "nesterov": False, "maximize": False,
    }


# ---------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -0.1}, r"lr=-0\.1 must be >= 0"),
        ({"lr": float("nan")}, r"lr=nan must be >= 0"),
        ({"momentum": -0.5}, r"momentum=-0\.5 must be >= 0"),
        ({"weight_decay": -1e-4}, r"weight_decay=-0\.0001 must be >= 0"),
        ({"nesterov": True}, r"nesterov=True requires momentum > 0"),
        ({"nesterov": True, "momentum": 0.9, "dampening": 0.1}, r"dampening=0\.1"),
    ],
)
def test_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SGD([Parameter(np.zeros(2))], **kwargs)


def test_lr_of_wrong_type() -> None:
    with pytest.raises(TypeError, match="lr="):
        SGD([Parameter(np.zeros(2))], lr="0.1")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- torch oracle
def _grid() -> list[dict]:
    configs = []
    for momentum in (0.0, 0.9):
        for dampening in (0.0, 0.5):
            for nesterov in (False, True):
                if nesterov and (momentum == 0 or dampening != 0):
                    continue
                for weight_decay in (0.0, 0.1):
                    for maximize in (False, True):
                        configs.append({
                            "momentum": momentum, "dampening": dampening, "nesterov": nesterov,
                            "weight_decay": weight_decay, "maximize": maximize,
                        })
    return configs


@pytest.mark.oracle
@pytest.mark.parametrize("config", _grid(), ids=config_id)
def test_trajectory_matches_torch(tol, config: dict) -> None:
    torch = pytest.importorskip("torch")
    ours, theirs = trajectories(
        lambda ps: SGD(ps, lr=0.05, **config),
        lambda ts: torch.optim.SGD(ts, lr=0.05, **config),
    )
    assert rel_error(ours, theirs, "SGD") < tol.optim_oracle


@pytest.mark.oracle
def test_param_groups_and_schedule_match_torch(tol) -> None:
    torch = pytest.importorskip("torch")

    def schedule(step: int) -> float:
        return 0.1 * 0.9**step

    ours, theirs = trajectories(
        lambda ps: SGD(
            [{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.01, "nesterov": True}],
            lr=0.05, momentum=0.9,
        ),
        lambda ts: torch.optim.SGD(
            [{"params": [ts[0]]}, {"params": [ts[1]], "lr": 0.01, "nesterov": True}],
            lr=0.05, momentum=0.9,
        ),
    )
    assert rel_error(ours, theirs, "SGD") < tol.optim_oracle

    # lr = 0.1 * 0.9**step; torch's LambdaLR multiplies the base lr (1.0) by the same factor.
    ours, theirs = trajectories(
        lambda ps: SGD(ps, lr=schedule, momentum=0.9, weight_decay=0.1),
        lambda ts: torch.optim.SGD(ts, lr=1.0, momentum=0.9, weight_decay=0.1),
        torch_after_step=lambda topt: torch.optim.lr_scheduler.LambdaLR(topt, schedule).step,
    )
    assert rel_error(ours, theirs, "SGD") < tol.optim_oracle


# ---------------------------------------------------------------------- blocked updates
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"momentum": 0.9, "weight_decay": 0.1}, {"momentum": 0.9, "nesterov": True, "maximize": True},
     {"momentum": 0.5, "dampening": 0.3}],
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
    opts = [SGD([blocked], lr=0.1, fused=False, **kwargs), SGD([whole], lr=0.1, fused=False, **kwargs)]
    for g in grads:
        for p, opt in zip((blocked, whole), opts):
            p.grad[...] = g
            opt.step()
    assert whole.data.flags.f_contiguous and not whole.data.flags.c_contiguous
    np.testing.assert_array_equal(blocked.data, whole.data)


def test_a_blocked_step_allocates_no_array_memory(monkeypatch) -> None:
    monkeypatch.setattr(optimizer_module, "BLOCKING_MIN_BYTES", 0)  # 100,000 float32: 2 blocks
    allocated, nbytes = allocated_by_a_step(
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1, fused=False))
    assert allocated < 0.02 * nbytes  # views and Python floats only
