"""Tests of the fused (numba) updates, flat parameter buffers and the denormal flush
(gradwise/optim/_fused.py, _flat.py, _blocks.py and their use in optimizer.py, sgd.py, adam.py).

The fused kernels must reproduce the NumPy reference bit for bit, in float32 and float64, for
every option; flat groups must reproduce per-parameter updates bit for bit; checkpoints keep
their per-parameter layout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from oracle import config_id, rel_error, trajectories

import gradwise.optim as optim
from gradwise.core import Parameter
from gradwise.optim import SGD, Adadelta, Adagrad, Adam, AdamW, Lion, NAdam, RAdam, RMSprop
from gradwise.optim import _fused

needs_numba = pytest.mark.skipif(not _fused.available(), reason="numba not installed")

SGD_GRID = [
    {},
    {"weight_decay": 0.1},
    {"maximize": True},
    {"weight_decay": 0.1, "maximize": True},
    {"momentum": 0.9},
    {"momentum": 0.9, "dampening": 0.3, "weight_decay": 0.05},
    {"momentum": 0.9, "nesterov": True},
    {"momentum": 0.8, "nesterov": True, "weight_decay": 0.1, "maximize": True},
]
ADAM_GRID = [
    {},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "decoupled_weight_decay": True},
    {"maximize": True},
    {"amsgrad": True},
    {"amsgrad": True, "weight_decay": 0.1, "maximize": True},
    {"amsgrad": True, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True},
    {"lr": 0.0, "weight_decay": 0.1, "decoupled_weight_decay": True},
    {"betas": (0.5, 0.9), "eps": 1e-3},
]
CASES = [("SGD", SGD, {"lr": 0.05, **c}) for c in SGD_GRID] + [("Adam", Adam, c) for c in ADAM_GRID]
IDS = [f"{name}-{config_id(c)}" for name, _, c in CASES]


def make_params(dtype: Any, seed: int = 0) -> list[Parameter]:
    """Parameters of several shapes, one of them large enough for the parallel kernel."""
    rng = np.random.default_rng(seed)
    shapes = [(7, 5), (3,), (13, 11, 2)]
    return [Parameter(rng.standard_normal(s).astype(dtype), name=f"p{i}")
            for i, s in enumerate(shapes)]


def run(make: Callable[[list[Parameter]], Any], dtype: Any, steps: int = 25,
        params: list[Parameter] | None = None) -> tuple[list[Parameter], Any]:
    ps = make_params(dtype) if params is None else params
    opt = make(ps)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        for p in ps:
            p.grad[...] = rng.standard_normal(p.shape).astype(dtype) * 0.5
        opt.step()
    return ps, opt


def assert_same(a: tuple[list[Parameter], Any], b: tuple[list[Parameter], Any]) -> None:
    """Bit-identical parameters and state (NaN-aware)."""
    (pa, oa), (pb, ob) = a, b
    for p, q in zip(pa, pb):
        np.testing.assert_array_equal(p.data, q.data, strict=True)
        sa, sb = oa.state[p], ob.state[q]
        assert sa.keys() == sb.keys()
        for k in sa:
            if isinstance(sa[k], np.ndarray):
                np.testing.assert_array_equal(sa[k], sb[k], strict=True)
            else:
                assert sa[k] == sb[k]


# ---------------------------------------------------------------------- fused == reference
@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "cls", "config"), CASES, ids=IDS)
def test_fused_equals_the_numpy_reference_bitwise(name: str, cls: type, config: dict, dtype) -> None:
    ref = run(lambda ps: cls(ps, fused=False, **config), dtype)
    fused = run(lambda ps: cls(ps, fused=True, **config), dtype)
    assert fused[1].fused and not ref[1].fused
    assert_same(ref, fused)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_parallel_kernel_equals_the_serial_one(monkeypatch, name: str, dtype) -> None:
    cls, config = (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}) if name == "SGD" else (
        Adam, {"amsgrad": True, "weight_decay": 0.1})
    serial = run(lambda ps: cls(ps, fused=True, **config), dtype)
    monkeypatch.setattr(_fused, "PARALLEL_MIN_SIZE", 1)
    parallel = run(lambda ps: cls(ps, fused=True, **config), dtype)
    assert_same(serial, parallel)


@needs_numba
@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, fused=True),
                                  lambda ps: Adam(ps, fused=True)], ids=["SGD", "Adam"])
def test_fused_refuses_state_of_another_size(make: Callable) -> None:
    # The kernels index without bounds checks: a parameter whose data was replaced by a larger
    # array after its state was made must raise (as the NumPy path does), not write past the
    # end of the old state arrays.
    p = Parameter(np.ones((3, 4), dtype=np.float32), name="w")
    opt = make([p])
    p.grad[...] = 1.0
    opt.step()
    p.data, p.grad = np.zeros((5, 4), dtype=np.float32), np.ones((5, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"shape \(12,\) among those of a parameter of 20 entries"):
        opt.step()


@needs_numba
@pytest.mark.parametrize("size", [1000, 1001, 64 * 3 + 5])
def test_split_update_covers_every_entry_once(monkeypatch, size: int) -> None:
    # The slices of a split update tile the array exactly (boundaries on 64 entries): a plain
    # SGD step with lr 1 and gradient 1 lowers every entry by exactly 1.
    monkeypatch.setattr(_fused, "PARALLEL_MIN_SIZE", 1)
    monkeypatch.setattr(_fused, "_cores", lambda: 3)
    _fused._pool.cache_clear()
    try:
        p = Parameter(np.zeros(size, dtype=np.float32))
        p.grad[...] = 1
        SGD([p], lr=1.0, fused=True).step()
        np.testing.assert_array_equal(p.data, -1.0)
    finally:
        _fused._pool.cache_clear()


@needs_numba
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_split_update_works_in_a_forked_child(monkeypatch) -> None:
    # The parent's executor has no threads in a child forked after it ran: the child must get
    # its own, not wait forever on the parent's.
    monkeypatch.setattr(_fused, "PARALLEL_MIN_SIZE", 1)
    p = Parameter(np.zeros(4096, dtype=np.float32))
    p.grad[...] = 1
    opt = SGD([p], lr=1.0, fused=True)
    opt.step()  # the parent's pool now exists and has run
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its split update completes and is right
        try:
            signal.alarm(20)
            opt.step()
            os._exit(0 if np.all(p.data == -2.0) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


@needs_numba
@pytest.mark.parametrize(("name", "cls", "config"), CASES, ids=IDS)
def test_fused_special_values_follow_the_reference(name: str, cls: type, config: dict) -> None:
    # NaN, infinities, zeros and huge gradients take the same path as in NumPy
    def params() -> list[Parameter]:
        p = Parameter(np.array([0.0, -0.0, 1.0, np.nan, np.inf, 3e38, 1e-40, -2.0], np.float32))
        return [p]

    def grads(ps: list[Parameter], opt: Any) -> None:
        for g in ([0.0, 1.0, np.nan, 1.0, -1.0, 3e38, 1e-30, np.inf], [1.0] * 8):
            ps[0].grad[...] = g
            opt.step()

    results = []
    for fused in (False, True):
        ps = params()
        opt = cls(ps, fused=fused, **config)
        with np.errstate(all="ignore"):
            grads(ps, opt)
        results.append((ps, opt))
    assert_same(*results)


# ---------------------------------------------------------------------- torch oracle, fused
@needs_numba
@pytest.mark.oracle
@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
@pytest.mark.parametrize(("name", "cls", "config"),
                         [c for c in CASES if c[2].get("lr") != 0.0],
                         ids=[i for i, c in zip(IDS, CASES) if c[2].get("lr") != 0.0])
def test_fused_trajectory_matches_torch(tol, name: str, cls: type, config: dict, flat: bool) -> None:
    torch = pytest.importorskip("torch")
    kwargs = dict(config)
    if cls is Adam:
        tcls = torch.optim.AdamW if kwargs.pop("decoupled_weight_decay", False) else torch.optim.Adam
        if tcls is torch.optim.AdamW:
            kwargs.setdefault("weight_decay", 0.0)
    else:
        tcls = torch.optim.SGD
    ours, theirs = trajectories(lambda ps: cls(ps, fused=True, flat=flat, **config),
                                lambda ts: tcls(ts, **kwargs))
    assert rel_error(ours, theirs, f"{name}-fused") < tol.optim_oracle


# ---------------------------------------------------------------------- flat buffers
ALL = [
    ("SGD", lambda ps, **kw: SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1, **kw)),
    ("SGD-plain", lambda ps, **kw: SGD(ps, lr=0.05, **kw)),
    ("Adam-amsgrad", lambda ps, **kw: Adam(ps, amsgrad=True, weight_decay=0.1, **kw)),
    ("AdamW", lambda ps, **kw: AdamW(ps, **kw)),
    ("NAdam", lambda ps, **kw: NAdam(ps, **kw)),
    ("RAdam", lambda ps, **kw: RAdam(ps, **kw)),
    ("RMSprop", lambda ps, **kw: RMSprop(ps, momentum=0.5, centered=True, **kw)),
    ("Adagrad", lambda ps, **kw: Adagrad(ps, **kw)),
    ("Adadelta", lambda ps, **kw: Adadelta(ps, **kw)),
    ("Lion", lambda ps, **kw: Lion(ps, **kw)),
]
FUSED_CHOICES = [False, True] if _fused.available() else [False]


@pytest.mark.parametrize("fused", FUSED_CHOICES, ids=lambda f: f"fused={f}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "make"), ALL, ids=[n for n, _ in ALL])
def test_flat_equals_per_parameter_bitwise(name: str, make: Callable, dtype, fused: bool) -> None:
    kw = {"fused": fused} if name.startswith(("SGD", "Adam")) else {}
    per_param = run(lambda ps: make(ps, **kw), dtype)
    flat = run(lambda ps: make(ps, flat=True, **kw), dtype)
    assert_same(per_param, flat)
    ps, opt = flat
    buf = opt._flat[0].view
    for p in ps:  # still views into the group's buffers, and so is the state
        assert np.shares_memory(p.data, buf.data) and np.shares_memory(p.grad, buf.grad)
        for k, v in opt.state[p].items():
            if isinstance(v, np.ndarray):
                assert np.shares_memory(v, opt._flat[0].state[k])


def test_flat_rebinds_parameters_to_views_keeping_values() -> None:
    ps = make_params(np.float32)
    before = [(p.data.copy(), p.data.shape) for p in ps]
    for p in ps:
        p.grad[...] = 1.5
    opt = SGD(ps, lr=0.1, flat=True)
    flat = opt._flat[0].view
    assert flat.data.shape == (sum(p.size for p in ps),) and flat.data.dtype == np.float32
    for p, (value, shape) in zip(ps, before):
        assert p.data.shape == shape and p.data.flags.c_contiguous
        np.testing.assert_array_equal(p.data, value)
        np.testing.assert_array_equal(p.grad, 1.5)
    opt.zero_grad()
    assert not any(p.grad.any() for p in ps)  # zero_grad is lazy: a read fills the view with zeros
    np.testing.assert_array_equal(flat.grad, 0.0)


def test_flat_state_dict_is_keyed_per_parameter_and_round_trips() -> None:
    ps, opt = run(lambda ps: Adam(ps, flat=True, amsgrad=True), np.float32, steps=3)
    ref_ps, ref = run(lambda ps: Adam(ps, amsgrad=True), np.float32, steps=3)
    sd, ref_sd = opt.state_dict(), ref.state_dict()
    assert sd["state"].keys() == ref_sd["state"].keys() == {"p0", "p1", "p2"}
    for key, entry in sd["state"].items():
        for k, v in entry.items():
            np.testing.assert_array_equal(v, ref_sd["state"][key][k], strict=True)
    # into a fresh flat optimizer: the loaded per-parameter arrays are gathered into flat ones
    ps2 = make_params(np.float32, seed=5)
    for p2, p in zip(ps2, ps):
        p2.data[...] = p.data
    opt2 = Adam(ps2, flat=True, amsgrad=True)
    opt2.load_state_dict(sd)
    rng1, rng2 = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(4):
        for p, p2 in zip(ps, ps2):
            p.grad[...] = rng1.standard_normal(p.shape)
            p2.grad[...] = rng2.standard_normal(p2.shape)
        opt.step()
        opt2.step()
    for p, p2 in zip(ps, ps2):
        np.testing.assert_array_equal(p.data, p2.data)
    assert opt2._flat[0].state is not None
    assert np.shares_memory(opt2.state[ps2[0]]["exp_avg"], opt2._flat[0].state["exp_avg"])


def test_flat_falls_back_per_parameter_when_a_parameter_is_frozen_or_rebound() -> None:
    ref_ps = make_params(np.float64)
    ps = make_params(np.float64)
    ref, opt = SGD(ref_ps, lr=0.1, momentum=0.9), SGD(ps, lr=0.1, momentum=0.9, flat=True)
    rng1, rng2 = np.random.default_rng(0), np.random.default_rng(0)
    for step in range(6):
        if step == 2:
            ps[1].requires_grad = ref_ps[1].requires_grad = False
        if step == 4:
            ps[1].requires_grad = ref_ps[1].requires_grad = True
            ps[0].grad = ps[0].grad.copy()  # no longer a view: per-parameter from now on
        for p, q in zip(ps, ref_ps):
            p.grad[...] = rng1.standard_normal(p.shape)
            q.grad[...] = rng2.standard_normal(q.shape)
        opt.step()
        ref.step()
    for p, q in zip(ps, ref_ps):
        np.testing.assert_array_equal(p.data, q.data)


def test_flat_refuses_mixed_dtypes() -> None:
    ps = [Parameter(np.zeros(3, np.float32)), Parameter(np.zeros(2, np.float64))]
    with pytest.raises(ValueError, match=r"param group 0 mixes dtypes \['float32', 'float64'\]"):
        Adam(ps, flat=True)


# ---------------------------------------------------------------------- denormal flush
SUBNORMAL32 = np.float32(1e-40)


@pytest.mark.parametrize("fused", FUSED_CHOICES, ids=lambda f: f"fused={f}")
@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
@pytest.mark.parametrize(("name", "make"), ALL, ids=[n for n, _ in ALL])
def test_planted_subnormals_are_flushed_after_a_step(name: str, make: Callable, flat: bool,
                                                     fused: bool) -> None:
    kw = {"fused": fused} if name.startswith(("SGD", "Adam")) else {}
    ps = make_params(np.float32)
    opt = make(ps, flat=flat, **kw)
    for p in ps:
        p.grad[...] = 0.25
    opt.step()
    tiny = np.finfo(np.float32).tiny
    for p in ps:  # plant subnormals in the weights, the state and the gradient
        p.data.reshape(-1)[::2] = SUBNORMAL32
        for k, v in opt.state[p].items():
            if isinstance(v, np.ndarray) and not k.startswith("_"):
                v.reshape(-1)[::2] = SUBNORMAL32
        p.grad[...] = 0.0
        p.grad.reshape(-1)[::3] = -SUBNORMAL32
    opt.step()
    for p in ps:
        arrays = [p.data] + [v for k, v in opt.state[p].items()
                             if isinstance(v, np.ndarray) and not k.startswith("_")]
        for a in arrays:
            assert not np.any((a != 0) & (np.abs(a) < tiny)), (name, a)
        assert np.count_nonzero(p.grad) > 0  # the gradient itself is never modified


@pytest.mark.parametrize("fused", FUSED_CHOICES, ids=lambda f: f"fused={f}")
def test_flush_can_be_switched_off(fused: bool) -> None:
    p = Parameter(np.full(4, SUBNORMAL32))
    opt = SGD([p], lr=0.0, fused=fused, flush_denormals=False)
    opt.step()
    np.testing.assert_array_equal(p.data, SUBNORMAL32)
    opt.flush_denormals = True
    opt.step()
    np.testing.assert_array_equal(p.data, 0.0)


def test_float64_flush_uses_the_float64_threshold() -> None:
    # 1e-40 is a normal float64: kept; 1e-310 is subnormal in float64: flushed
    p = Parameter(np.array([1e-40, 1e-310, -1e-310, 1.0]))
    SGD([p], lr=0.0).step()
    np.testing.assert_array_equal(p.data, [1e-40, 0.0, 0.0, 1.0])


# ---------------------------------------------------------------------- selection
def test_fused_true_without_numba_names_the_extra(monkeypatch) -> None:
    monkeypatch.setattr(_fused, "available", lambda: False)
    with pytest.raises(ModuleNotFoundError, match=r"Adam\(fused=True\) needs numba: .*gradwise\[fast\]"):
        Adam([Parameter(np.zeros(2))], fused=True)
    assert not SGD([Parameter(np.zeros(2))]).fused  # None: the NumPy reference


def test_fused_none_follows_numba_size_and_overridden_updates() -> None:
    big = _fused.AUTO_MIN_SIZE
    # at least AUTO_MIN_SIZE entries in all (here over two parameters): fused when numba is there
    pair = [Parameter(np.zeros(big // 2)), Parameter(np.zeros(big - big // 2))]
    assert Adam(pair).fused == _fused.available()
    assert SGD([Parameter(np.zeros(big))]).fused == _fused.available()
    # fewer: the NumPy reference, unless fused=True asks for the kernel
    assert not Adam([Parameter(np.zeros(big - 1))]).fused
    assert not SGD([Parameter(np.zeros(2))]).fused
    assert not Adam([Parameter(np.zeros(big))], fused=False).fused
    if _fused.available():
        assert Adam([Parameter(np.zeros(2))], fused=True).fused

    class Custom(SGD):
        def _update(self, p, state, group, lr):  # type: ignore[no-untyped-def]
            super()._update(p, state, group, lr)

    assert not Custom([Parameter(np.zeros(big))]).fused


def test_import_gradwise_does_not_import_numba() -> None:
    code = "import sys, gradwise, gradwise.optim; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_names() -> None:
    assert "flat" in optim.Optimizer.__init__.__kwdefaults__


def test_reference_flush_covers_every_block_and_fortran_arrays() -> None:
    from gradwise.optim._blocks import FLUSH_BLOCK

    n = 3 * FLUSH_BLOCK + 5
    p = Parameter(np.ones(n, np.float32))
    p.data[[0, FLUSH_BLOCK - 1, FLUSH_BLOCK, 2 * FLUSH_BLOCK + 7, n - 1]] = SUBNORMAL32
    p.data[1] = np.nan
    q = Parameter(np.ones((40, 30), np.float32))
    q.data, q.grad = np.asfortranarray(q.data), np.asfortranarray(q.grad)
    q.data[::7, ::3] = -SUBNORMAL32
    SGD([p, q], lr=0.0, fused=False).step()
    assert np.count_nonzero(p.data == 0) == 5 and np.isnan(p.data[1])
    assert np.count_nonzero(q.data == 0) == q.data[::7, ::3].size and q.data.flags.f_contiguous
