"""The harness shared by the optimizer tests.

- `trajectories` / `rel_error`: the same gradient sequence through gradwise and `torch.optim`, and
  the norm-wise error between the two trajectories (the oracle tests).
- `allocated_by_a_step`, `round_trip`, `float32_run`: the generic checks every optimizer file
  applies to its own configurations (no allocation after the first step, bit-identical
  continuation after a state-dict round trip, float32 preserved).

torch is imported inside the functions (via `pytest.importorskip`), so importing this module costs
nothing in a run without torch. Tolerances live in `tests/conftest.py` (fixture `tol`).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from helpers import record, rel_err

from gradwise.core import Parameter

#: Optimizer steps of every trajectory test.
STEPS = 200
#: Shapes of the parameters: a matrix and a vector, so that scratch memory is shared and resized.
SHAPES = ((5, 3), (4,))


def initial_arrays(seed: int) -> tuple[np.random.Generator, list[np.ndarray]]:
    """A generator seeded with `seed` and float64 initial values drawn from it, one per shape."""
    rng = np.random.default_rng(seed)
    return rng, [rng.standard_normal(shape) for shape in SHAPES]


def trajectories(
    make_ours: Callable[[list[Parameter]], Any],
    make_torch: Callable[[list], Any],
    steps: int = STEPS,
    seed: int = 0,
    torch_after_step: Callable[[Any], Callable[[], None]] | None = None,
) -> tuple[list[Parameter], list]:
    """Run both optimizers on f(theta) = 0.05 |theta|^2 + <noise_t, theta>, in float64.

    The gradient 0.1 theta + noise_t is computed on each side from its own parameters, so any
    divergence would feed back; the noise sequence is shared. `torch_after_step(torch_opt)`
    returns a function called after every torch step (a scheduler's ``step``).

    Returns
    -------
    (list of Parameter, list of torch.nn.Parameter)
        The final parameters of both sides, in `SHAPES` order.
    """
    torch = pytest.importorskip("torch")
    rng, init = initial_arrays(seed)
    ours = [Parameter(a.copy(), name=f"p{i}") for i, a in enumerate(init)]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
    opt, topt = make_ours(ours), make_torch(theirs)
    after = torch_after_step(topt) if torch_after_step else None
    for _ in range(steps):
        for p, t in zip(ours, theirs):
            noise = rng.standard_normal(p.shape)
            p.grad[...] = 0.1 * p.data + noise
            t.grad = torch.from_numpy(0.1 * t.detach().numpy() + noise)
        opt.step()
        topt.step()
        if after:
            after()
    return ours, theirs


def rel_error(ours: list[Parameter], theirs: list, key: str = "optim") -> float:
    """The largest norm-wise relative error of a parameter, ||ours - theirs|| / ||theirs||.

    The value is also recorded under `key` in `helpers.OBSERVED` (for reports; tests assert on
    the returned value).
    """
    err = max(rel_err(p.data, t.detach().numpy()) for p, t in zip(ours, theirs))
    return record(key, err)


def config_id(config: dict) -> str:
    """A readable pytest id for a dict of keyword arguments."""
    return "-".join(f"{k}={v}" for k, v in config.items()) or "defaults"


# ---------------------------------------------------------------------- generic checks
MakeOptimizer = Callable[[list[Parameter]], Any]


def make_params(dtype: Any = np.float64, seed: int = 0) -> list[Parameter]:
    """Three named parameters of different shapes (a 2-D weight, a bias, another weight)."""
    rng = np.random.default_rng(seed)
    return [
        Parameter(rng.standard_normal((4, 3)).astype(dtype), name="0.weight"),
        Parameter(rng.standard_normal(4).astype(dtype), name="0.bias"),
        Parameter(rng.standard_normal((2, 4)).astype(dtype), name="1.weight"),
    ]


def run_steps(opt: Any, params: list[Parameter], rng: np.random.Generator, steps: int) -> None:
    """`steps` optimizer steps, each on fresh standard-normal gradients drawn from `rng`."""
    for _ in range(steps):
        for p in params:
            p.grad[...] = rng.standard_normal(p.shape)
        opt.step()


def allocated_by_a_step(make: MakeOptimizer, size: int = 100_000) -> tuple[int, int]:
    """(peak bytes traced during the second step, bytes of the parameter) for one float32
    parameter of `size` entries: the first step allocates the state and the scratch, the second
    must allocate no array."""
    p = Parameter(np.linspace(-1, 1, size, dtype=np.float32), name="w")
    p.grad[...] = np.linspace(1, -0.5, size, dtype=np.float32)
    opt = make([p])
    opt.step()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        opt.step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base, p.data.nbytes


def round_trip(make: MakeOptimizer, into_trained: bool) -> tuple[list[Parameter], list[Parameter]]:
    """Train 5 steps, checkpoint with `state_dict()`, restore into new parameters and a new
    optimizer (never stepped, or `into_trained`: already carrying other state), then train both
    7 more steps on the same gradients. Returns both parameter lists (float32), which must be
    equal."""
    ps = make_params(np.float32)
    opt = make(ps)
    run_steps(opt, ps, np.random.default_rng(0), 5)
    sd = opt.state_dict()
    weights = [p.data.copy() for p in ps]

    ps2 = make_params(np.float32, seed=1)
    opt2 = make(ps2)
    if into_trained:
        run_steps(opt2, ps2, np.random.default_rng(9), 3)
    for p2, w in zip(ps2, weights):
        p2.data[...] = w
    opt2.load_state_dict(sd)

    run_steps(opt, ps, np.random.default_rng(1), 7)
    run_steps(opt2, ps2, np.random.default_rng(1), 7)
    return ps, ps2


def float32_run(make: MakeOptimizer) -> tuple[Any, list[Parameter]]:
    """Two steps on float32 parameters with NumPy-float64 learning rates (which must not promote);
    returns the optimizer and the parameters for dtype checks."""
    ps = make_params(np.float32)
    opt = make(ps)
    for g in opt.param_groups:
        if not callable(g["lr"]):
            g["lr"] = np.float64(g["lr"])
    run_steps(opt, ps, np.random.default_rng(0), 2)
    return opt, ps


def dtypes_of(opt: Any, params: list[Parameter]) -> set[np.dtype]:
    """Every dtype among the parameters, their gradients, their array state and the scratch."""
    arrays = [a for p in params for a in (p.data, p.grad)]
    arrays += [v for p in params for v in opt.state[p].values() if isinstance(v, np.ndarray)]
    arrays += [w for w in opt._workspace.values() if np.issubdtype(w.dtype, np.floating)]
    return {a.dtype for a in arrays}


def updates_in_place(make: MakeOptimizer) -> bool:
    """Whether two steps keep every `p.data` and every state array the same object (views and
    references stay valid) while changing the values."""
    ps = make_params()
    datas = [p.data for p in ps]
    opt = make(ps)
    rng = np.random.default_rng(0)
    run_steps(opt, ps, rng, 1)
    buffers = [(p, k, v) for p in ps for k, v in opt.state[p].items() if isinstance(v, np.ndarray)]
    before = [d.copy() for d in datas]
    run_steps(opt, ps, rng, 1)
    return (
        all(p.data is d for p, d in zip(ps, datas))
        and all(opt.state[p][k] is v for p, k, v in buffers)
        and all(not np.array_equal(p.data, b) for p, b in zip(ps, before))
    )
