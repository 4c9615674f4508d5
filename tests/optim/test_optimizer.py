"""Tests of gradwise/optim/optimizer.py: groups, schedules, frozen parameters, in-place updates,
allocation, dtype, and state_dict round trips (with SGD and Adam as the concrete optimizers)."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradwise.core import Parameter
from gradwise.optim import SGD, Adam, AdamW, Optimizer


class GD(Optimizer):
    """The smallest concrete optimizer: theta -= lr * grad."""

    def __init__(self, params, lr=0.1) -> None:
        super().__init__(params, {"lr": lr})

    def _update(self, p: Parameter, state: dict, group: Mapping[str, Any], lr: float) -> None:
        step = self._scratch(p)
        np.multiply(p.grad, lr, out=step)
        np.subtract(p.data, step, out=p.data)


def make_params(dtype=np.float64, seed: int = 0) -> list[Parameter]:
    rng = np.random.default_rng(seed)
    return [
        Parameter(rng.standard_normal((4, 3)).astype(dtype), name="0.weight"),
        Parameter(rng.standard_normal(4).astype(dtype), name="0.bias"),
        Parameter(rng.standard_normal((2, 4)).astype(dtype), name="1.weight"),
    ]


def fill_grads(params: list[Parameter], rng: np.random.Generator) -> None:
    for p in params:
        p.grad[...] = rng.standard_normal(p.shape)


# Every optimizer configuration whose state the generic tests exercise.
CONFIGS: dict[str, Callable[[list], Optimizer]] = {
    "sgd": lambda ps: SGD(ps, lr=0.1),
    "sgd-momentum-decay": lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
    "sgd-dampening-maximize": lambda ps: SGD(ps, lr=0.1, momentum=0.5, dampening=0.3, maximize=True),
    "sgd-nesterov": lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    "adam": lambda ps: Adam(ps, lr=0.01),
    "adam-amsgrad-decay-maximize": lambda ps: Adam(ps, lr=0.01, amsgrad=True, weight_decay=0.1,
                                                   maximize=True),
    "adamw-amsgrad": lambda ps: AdamW(ps, lr=0.01, amsgrad=True),
    "adam-schedule": lambda ps: Adam(ps, lr=lambda step: 0.01 * 0.9**step),
    "sgd-groups": lambda ps: SGD([{"params": ps[:1], "lr": 0.3, "nesterov": True},
                                  {"params": ps[1:]}], lr=0.1, momentum=0.9),
}


# ---------------------------------------------------------------------- construction
@pytest.mark.parametrize("params", [[], iter([]), [{"params": []}]], ids=["list", "iter", "group"])
def test_empty_params(params) -> None:
    with pytest.raises(ValueError, match="params is empty"):
        GD(params)


def test_params_must_be_an_iterable_of_parameters() -> None:
    p = Parameter(np.zeros(2))
    with pytest.raises(TypeError, match="single Parameter"):
        GD(p)
    with pytest.raises(TypeError, match=r"params\[1\] is a ndarray"):
        GD([p, np.zeros(2)])
    with pytest.raises(TypeError, match="mixes"):
        GD([p, {"params": [Parameter(np.zeros(2))]}])


def test_same_parameter_twice() -> None:
    p, q = Parameter(np.zeros(2), name="a"), Parameter(np.zeros(2), name="b")
    with pytest.raises(ValueError, match="param group 1: parameter 'a' appears more than once"):
        GD([{"params": [p, q]}, {"params": [p]}])
    with pytest.raises(ValueError, match="more than once"):
        GD([p, q, p])


def test_group_overrides_are_validated_and_named() -> None:
    p, q = Parameter(np.zeros(2)), Parameter(np.zeros(2))
    with pytest.raises(ValueError, match=r"param group 1: lr=-1\.0 must be >= 0"):
        GD([{"params": [p]}, {"params": [q], "lr": -1.0}])
    with pytest.raises(ValueError, match=r"param group 0: momentum=-0\.1"):
        SGD([{"params": [p], "momentum": -0.1}])
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['learning_rate'\]"):
        SGD([{"params": [p], "learning_rate": 0.1}])
    with pytest.raises(ValueError, match="no 'params' key"):
        SGD([{"lr": 0.1}])


def test_groups_take_defaults_and_overrides() -> None:
    ps = make_params()
    opt = SGD([{"params": ps[:2], "lr": 0.5}, {"params": ps[2], "momentum": 0.5}], lr=0.1, momentum=0.9)
    assert [g["params"] for g in opt.param_groups] == [ps[:2], ps[2:]]
    assert [(g["lr"], g["momentum"]) for g in opt.param_groups] == [(0.5, 0.9), (0.1, 0.5)]
    assert opt.defaults["lr"] == 0.1
    assert "SGD(lr=0.1" in repr(opt) and "2 group(s), 3 parameter(s)" in repr(opt)


def test_add_param_group() -> None:
    ps = make_params()
    opt = SGD(ps[:2], lr=0.1)
    opt.add_param_group({"params": [ps[2]], "lr": 0.01})
    assert opt.param_groups[1]["params"] == [ps[2]] and opt.param_groups[1]["lr"] == 0.01
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [ps[0]]})


# ---------------------------------------------------------------------- learning rate, steps
def test_schedule_is_called_with_the_steps_already_taken() -> None:
    calls: list[int] = []

    def schedule(step: int) -> float:
        calls.append(step)
        return 0.5**step

    p = Parameter(np.array([1.0]))
    opt = GD([p], lr=schedule)
    p.grad[...] = 1.0
    assert opt.current_lr(opt.param_groups[0]) == 1.0
    for _ in range(3):
        opt.step()
    assert opt.step_count == 3
    assert calls == [0, 0, 1, 2]
    np.testing.assert_allclose(p.data, [1.0 - 1.0 - 0.5 - 0.25])
    assert opt.current_lr(opt.param_groups[0]) == 0.125


def test_current_lr_per_group() -> None:
    ps = make_params()
    opt = GD([{"params": ps[:1], "lr": 0.3}, {"params": ps[1:], "lr": lambda s: 0.1 / (s + 1)}])
    opt.step()
    assert [opt.current_lr(g) for g in opt.param_groups] == [0.3, 0.05]


def test_zero_grad_in_place() -> None:
    ps = make_params()
    ps[1].requires_grad = False
    fill_grads(ps, np.random.default_rng(0))
    grads = [p.grad for p in ps]
    GD(ps).zero_grad()
    for p, g in zip(ps, grads):
        assert p.grad is g
        assert not p.grad.any()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_frozen_parameters_are_untouched_and_stateless(name: str) -> None:
    ps = make_params()
    ps[1].requires_grad = False
    frozen = ps[1].data.copy()
    opt = CONFIGS[name](ps)
    rng = np.random.default_rng(0)
    for _ in range(3):
        fill_grads(ps, rng)
        opt.step()
    np.testing.assert_array_equal(ps[1].data, frozen)
    assert ps[1] not in opt.state and ps[0] in opt.state
    assert "1" not in opt.state_dict()["state"] and "0.bias" not in opt.state_dict()["state"]
    # unfreezing: the parameter joins in with fresh state
    ps[1].requires_grad = True
    opt.step()
    assert ps[1] in opt.state
    assert not np.array_equal(ps[1].data, frozen)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_updates_are_in_place(name: str) -> None:
    ps = make_params()
    datas = [p.data for p in ps]
    opt = CONFIGS[name](ps)
    rng = np.random.default_rng(0)
    fill_grads(ps, rng)
    opt.step()
    buffers = {(i, k): v for i, p in enumerate(ps) for k, v in opt.state[p].items()
               if isinstance(v, np.ndarray)}
    before = [d.copy() for d in datas]
    fill_grads(ps, rng)
    opt.step()
    assert all(p.data is d for p, d in zip(ps, datas))
    assert all(opt.state[ps[i]][k] is v for (i, k), v in buffers.items())
    assert all(not np.array_equal(p.data, b) for p, b in zip(ps, before))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_float32_stays_float32(name: str) -> None:
    ps = make_params(np.float32)
    opt = CONFIGS[name](ps)
    # NumPy float64 hyperparameters must not promote the arithmetic either
    for g in opt.param_groups:
        if not callable(g["lr"]):
            g["lr"] = np.float64(g["lr"])
    rng = np.random.default_rng(0)
    for _ in range(2):
        fill_grads(ps, rng)
        opt.step()
    for p in ps:
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32
        assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))
    # (the flush's mask scratch is bool)
    assert all(w.dtype in (np.float32, np.bool_) for w in opt._workspace.values())


@pytest.mark.parametrize("name", ["sgd-nesterov", "sgd-dampening-maximize",
                                  "adam-amsgrad-decay-maximize", "adamw-amsgrad"])
def test_a_step_allocates_no_array_memory(name: str) -> None:
    p = Parameter(np.ones(100_000, dtype=np.float32), name="w")
    p.grad[...] = 0.5
    opt = CONFIGS[name]([p])
    opt.step()  # the first step allocates the state and the scratch
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        opt.step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - base < 0.02 * p.data.nbytes  # views and Python floats only (bytes, not 400 kB)


def test_scratch_is_shared_and_sized_for_the_largest_parameter() -> None:
    ps = make_params()
    opt = Adam(ps, weight_decay=0.1, fused=False)
    fill_grads(ps, np.random.default_rng(0))
    opt.step()
    # slots 0 and 1 of the update; -1: |x| and its mask in the denormal flush
    assert {k: w.size for k, w in opt._workspace.items()} == {
        (np.dtype(np.float64), 0): 12, (np.dtype(np.float64), 1): 12,
        (np.dtype(np.float64), -1): 12, (np.dtype(bool), -1): 12,
    }


# ---------------------------------------------------------------------- state dict
def test_state_dict_layout() -> None:
    ps = make_params()
    opt = Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": lambda s: 1e-3}], amsgrad=True)
    fill_grads(ps, np.random.default_rng(0))
    opt.step()
    sd = opt.state_dict()
    assert sd["step_count"] == 1
    assert [g["params"] for g in sd["param_groups"]] == [["0.weight", "0.bias"], ["1.weight"]]
    assert sd["param_groups"][0]["lr"] == 1e-3 and sd["param_groups"][0]["lr_is_schedule"] is False
    assert sd["param_groups"][1]["lr"] is None and sd["param_groups"][1]["lr_is_schedule"] is True
    assert set(sd["state"]) == {"0.weight", "0.bias", "1.weight"}
    entry = sd["state"]["0.bias"]
    assert set(entry) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"} and entry["step"] == 1
    # copies: training on does not change a state dict already taken
    kept = entry["exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(entry["exp_avg"], kept)
    assert entry["exp_avg"] is not opt.state[ps[1]]["exp_avg"]


@pytest.mark.parametrize("names", [["", "b", "c"], ["a", "a", "c"]], ids=["empty", "duplicate"])
def test_state_dict_falls_back_to_indices(names: list[str]) -> None:
    ps = make_params()
    for p, n in zip(ps, names):
        p.name = n
    opt = SGD([{"params": ps[:1]}, {"params": ps[1:]}], momentum=0.9)
    fill_grads(ps, np.random.default_rng(0))
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [["0"], ["1", "2"]]
    assert set(sd["state"]) == {"0", "1", "2"}


def _continue(opt: Optimizer, ps: list[Parameter], rng: np.random.Generator, steps: int) -> None:
    for _ in range(steps):
        fill_grads(ps, rng)
        opt.step()


@pytest.mark.parametrize("fresh", [True, False], ids=["into-fresh", "into-trained"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_state_dict_round_trip_continues_bit_identically(name: str, fresh: bool) -> None:
    make = CONFIGS[name]
    ps = make_params(np.float32)
    opt = make(ps)
    _continue(opt, ps, np.random.default_rng(0), 5)
    sd = opt.state_dict()
    weights = [p.data.copy() for p in ps]

    # the restored copy: new parameters with the checkpointed weights and a new optimizer,
    # either never stepped or already carrying other state (buffers are then reused)
    ps2 = make_params(np.float32, seed=1)
    opt2 = make(ps2)
    if not fresh:
        _continue(opt2, ps2, np.random.default_rng(9), 3)
    for p2, w in zip(ps2, weights):
        p2.data[...] = w
    opt2.load_state_dict(sd)
    assert opt2.step_count == 5

    _continue(opt, ps, np.random.default_rng(1), 7)
    _continue(opt2, ps2, np.random.default_rng(1), 7)
    for p, p2 in zip(ps, ps2):
        np.testing.assert_array_equal(p.data, p2.data)


def test_load_state_dict_after_a_json_like_round_trip() -> None:
    # a checkpoint writes arrays elsewhere and the rest as JSON, where tuples become lists
    ps = make_params()
    opt = Adam(ps, betas=(0.8, 0.9))
    _continue(opt, ps, np.random.default_rng(0), 2)
    sd = opt.state_dict()
    meta = json.loads(json.dumps({"step_count": sd["step_count"], "param_groups": sd["param_groups"]}))
    opt2 = Adam(make_params(), betas=(0.5, 0.5))
    opt2.load_state_dict({**meta, "state": sd["state"]})
    assert opt2.param_groups[0]["betas"] == (0.8, 0.9)


def test_load_state_dict_restores_hyperparameters_and_drops_extra_state() -> None:
    ps = make_params()
    opt = SGD(ps, lr=0.1, momentum=0.9)
    sd = opt.state_dict()  # nothing stepped yet: no state
    opt2 = SGD(ps, lr=0.5, momentum=0.5)
    _continue(opt2, ps, np.random.default_rng(0), 1)
    assert opt2.state
    opt2.load_state_dict(sd)
    assert opt2.state == {} and opt2.step_count == 0
    assert (opt2.param_groups[0]["lr"], opt2.param_groups[0]["momentum"]) == (0.1, 0.9)


def test_load_state_dict_keeps_the_schedule_in_code() -> None:
    ps = make_params()

    def schedule(step: int) -> float:
        return 0.1 / (1 + step)

    opt = SGD(ps, lr=schedule)
    _continue(opt, ps, np.random.default_rng(0), 2)
    opt2 = SGD(ps, lr=schedule)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]["lr"] is schedule
    assert opt2.current_lr(opt2.param_groups[0]) == 0.1 / 3
    with pytest.raises(ValueError, match="param group 0 was saved with a schedule lr"):
        SGD(ps, lr=0.1).load_state_dict(opt.state_dict())


def test_load_state_dict_errors() -> None:
    ps = make_params()
    opt = Adam([{"params": ps[:2]}, {"params": ps[2:]}])
    _continue(opt, ps, np.random.default_rng(0), 1)
    sd = opt.state_dict()

    with pytest.raises(ValueError, match="2 param groups, the optimizer has 1"):
        Adam(ps).load_state_dict(sd)
    with pytest.raises(ValueError, match="param group 0 has 2 parameters in the state dict but 1 in"):
        Adam([{"params": ps[:1]}, {"params": ps[1:]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"hyperparameters .* in SGD"):
        SGD([{"params": ps[:2]}, {"params": ps[2:]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="no 'state' entry"):
        opt.load_state_dict({"step_count": 0, "param_groups": sd["param_groups"]})

    other = [Parameter(np.zeros((4, 3)), "0.weight"), Parameter(np.zeros(5), "0.bias"),
             Parameter(np.zeros((2, 4)), "1.weight")]
    target = Adam([{"params": other[:2]}, {"params": other[2:]}])
    with pytest.raises(ValueError, match=r"'0\.bias' has shape \(4,\) in the state dict but \(5,\)"):
        target.load_state_dict(sd)
    # nothing was changed by the failed load
    assert target.state == {} and target.step_count == 0


@settings(max_examples=25, deadline=None)
@given(
    shapes=st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple), min_size=1, max_size=3),
    dtype=st.sampled_from([np.float32, np.float64]),
    name=st.sampled_from(sorted(CONFIGS)),
    seed=st.integers(0, 2**16),
)
def test_any_shapes_keep_shape_dtype_and_round_trip(shapes, dtype, name, seed) -> None:
    rng = np.random.default_rng(seed)
    ps = [Parameter(rng.standard_normal(s).astype(dtype), name=f"p{i}") for i, s in enumerate(shapes)]
    if name == "sgd-groups" and len(ps) < 2:
        ps.append(Parameter(np.ones(2, dtype), name="extra"))
    opt = CONFIGS[name](ps)
    _continue(opt, ps, rng, 2)
    sd = opt.state_dict()
    ps2 = [Parameter(p.data.copy(), name=p.name) for p in ps]
    opt2 = CONFIGS[name](ps2)
    opt2.load_state_dict(sd)
    _continue(opt, ps, np.random.default_rng(seed + 1), 2)
    _continue(opt2, ps2, np.random.default_rng(seed + 1), 2)
    for p, p2 in zip(ps, ps2):
        assert p.data.shape == p2.data.shape and p.data.dtype == dtype
        np.testing.assert_array_equal(p.data, p2.data)
