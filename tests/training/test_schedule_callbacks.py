"""Tests of gradwise/training/schedule_callbacks.py: ReduceLROnPlateau and CycleMomentum against
torch.optim.lr_scheduler (ReduceLROnPlateau, OneCycleLR), alone and inside the Trainer."""

from __future__ import annotations

import json
import math
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from helpers import rel_err

import gradwise as gw
from gradwise.core import Parameter
from gradwise.data.loader import DataLoader
from gradwise.layers import Linear
from gradwise.losses import SoftmaxCrossEntropy
from gradwise.optim import SGD, Adam, Optimizer
from gradwise.optim.schedules import Scaled, cosine, one_cycle
from gradwise.training import Callback, Trainer
from gradwise.training.schedule_callbacks import CycleMomentum, ReduceLROnPlateau

# 200 float64 optimizer steps against torch: rounding-level differences only.
TRAJECTORY_RTOL = 1e-10


def attach(callback: Callback, opt: Optimizer) -> Callback:
    """Attach `callback` to a stand-in for a Trainer: the callbacks only use its optimizer."""
    callback.set_trainer(SimpleNamespace(optimizer=opt))  # type: ignore[arg-type]
    return callback


def sgd_groups(lrs: list[float]) -> SGD:
    return SGD([{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs], lr=lrs[0])


# ------------------------------------------------------------------------ ReduceLROnPlateau
def planted(kind: str) -> list[float]:
    """Metric sequences that exercise improvements, plateaus, ties at the threshold and NaN."""
    rng = np.random.default_rng(7)
    if kind == "plateau":
        return [1.0, 0.9, 0.8] + [0.8] * 12 + [0.5] + [0.5] * 14
    if kind == "noisy":
        t = np.arange(60)
        return list(1 / (1 + 0.2 * t) + 0.05 * rng.standard_normal(60))
    if kind == "ties":  # improvements of exactly the absolute threshold 0.25 (binary-exact values)
        return [1.0, 0.75, 0.5, 0.5, 0.25, 0.0, 0.0, -0.25, -0.25, -0.25, -0.5, 8.0, 8.0, 8.0]
    if kind == "nan":
        return [1.0, 0.9, math.nan, 0.95, math.nan, math.nan, 0.8, 0.7, math.nan, math.nan, math.nan, 0.9]
    if kind == "rising":  # an accuracy
        return list(np.minimum(0.99, 0.5 + 0.01 * np.arange(40) + 0.02 * rng.standard_normal(40)))
    raise AssertionError(kind)


CONFIGS = [
    {},
    {"patience": 2, "factor": 0.5},
    {"patience": 0, "factor": 0.5, "cooldown": 3},
    {"patience": 1, "factor": 0.3, "min_lr": 0.01},
    {"patience": 1, "factor": 0.5, "threshold": 0.25, "threshold_mode": "abs"},
    {"patience": 1, "factor": 0.5, "threshold": 0.1, "threshold_mode": "rel", "cooldown": 1},
    {"patience": 0, "factor": 0.5, "eps": 0.02},  # reductions smaller than eps are skipped
    {"patience": 0, "factor": 0.2, "min_lr": [1e-3, 5e-4]},
]


def run_both(values: list[float], lrs: list[float], mode: str, **config: Any) -> tuple[list, list]:
    """Per epoch: (lrs, best, num_bad_epochs, cooldown_counter) of ours and of torch's."""
    torch = pytest.importorskip("torch")
    opt = sgd_groups(lrs)
    cb = attach(ReduceLROnPlateau(monitor="metric", mode=mode, **config), opt)
    tparams = [torch.nn.Parameter(torch.zeros(2, dtype=torch.float64)) for _ in lrs]
    topt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(tparams, lrs)], lr=lrs[0])
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, mode=mode, **config)
    ours, theirs = [], []
    for epoch, v in enumerate(values):
        cb.on_epoch_end(epoch, {"metric": v})
        tsched.step(v)
        ours.append(([g["lr"] for g in opt.param_groups], cb.best, cb.num_bad_epochs, cb.cooldown_counter))
        theirs.append(
            ([g["lr"] for g in topt.param_groups], tsched.best, tsched.num_bad_epochs, tsched.cooldown_counter)
        )
    return ours, theirs


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a) == json.dumps(b)  # exact floats, and NaN equal to NaN


@pytest.mark.oracle
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "defaults")
@pytest.mark.parametrize("kind", ["plateau", "noisy", "ties", "nan", "rising"])
def test_reduce_lr_on_plateau_matches_torch(kind: str, config: dict[str, Any]) -> None:
    mode = "max" if kind == "rising" else "min"
    ours, theirs = run_both(planted(kind), [0.1, 0.05], mode, **config)
    for epoch, (a, b) in enumerate(zip(ours, theirs)):
        assert _same(a, b), f"epoch {epoch}: {a} != torch {b}"
    if kind in ("plateau", "noisy") and config:
        assert ours[-1][0][0] < 0.1  # the sequences do trigger reductions


@pytest.mark.oracle
def test_reduce_lr_on_plateau_inside_the_trainer_matches_torch() -> None:
    values = planted("plateau")[:20]

    class Plant(Callback):  # stands in for validation: writes the planted value in the epoch logs
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            assert logs is not None
            logs["val_loss"] = values[epoch]

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 2)), rng.integers(0, 3, 8)
    model = gw.Sequential(Linear(2, 3, rng=rng))
    cb = ReduceLROnPlateau(patience=2, factor=0.5, cooldown=1)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1),
                      callbacks=[Plant(), cb], progress=False)
    history = trainer.fit(DataLoader(x, y, batch_size=8), epochs=len(values))
    _, theirs = run_both(values, [0.1], "min", patience=2, factor=0.5, cooldown=1)
    # history["lr"] is the rate used during each epoch: torch's after the previous epochs' steps.
    assert history["lr"] == [0.1] + [lrs[0] for lrs, *_ in theirs][:-1]
    assert min(history["lr"]) < 0.1


def test_schedule_lr_is_scaled_not_replaced() -> None:
    sched = cosine(1.0, 100)
    opt = SGD([Parameter(np.zeros(2))], lr=sched)
    opt.step_count = 10
    cb = attach(ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5), opt)
    cb.on_epoch_end(0, {"loss": 1.0})
    cb.on_epoch_end(1, {"loss": 2.0})  # bad epoch: reduce
    group = opt.param_groups[0]
    assert group["lr"] == Scaled(sched, 0.5)
    assert opt.current_lr(group) == pytest.approx(0.5 * sched(10), rel=1e-15)
    opt.step_count = 20
    cb.on_epoch_end(2, {"loss": 2.0})  # again: the scale compounds, the wrapper does not nest
    assert group["lr"].schedule is sched and group["lr"].factor == pytest.approx(0.25, rel=1e-15)
    assert opt.current_lr(group) == pytest.approx(0.25 * sched(20), rel=1e-15)
    assert cb.schedule_scales == [group["lr"].factor]


def test_schedule_lr_min_lr_applies_at_the_reduction() -> None:
    sched = cosine(1.0, 100)
    opt = SGD([Parameter(np.zeros(2))], lr=sched)
    cb = attach(ReduceLROnPlateau(monitor="loss", patience=0, factor=0.1, min_lr=0.5), opt)
    for epoch, v in enumerate([1.0, 2.0]):
        cb.on_epoch_end(epoch, {"loss": v})
    assert opt.current_lr(opt.param_groups[0]) == pytest.approx(0.5, rel=1e-15)  # not 0.1


@pytest.mark.parametrize("schedule_lr", [False, True], ids=["float-lr", "schedule-lr"])
def test_state_dict_round_trip_continues_as_if_never_interrupted(schedule_lr: bool) -> None:
    values = planted("noisy")
    config = {"monitor": "loss", "patience": 1, "factor": 0.5, "cooldown": 2}

    def make_opt() -> SGD:
        return SGD([Parameter(np.zeros(2), name="w")], lr=cosine(1.0, 100) if schedule_lr else 1.0)

    def rate(opt: SGD) -> float:
        return opt.current_lr(opt.param_groups[0])

    opt = make_opt()
    cb = attach(ReduceLROnPlateau(**config), opt)
    straight = []
    for epoch, v in enumerate(values):
        cb.on_epoch_end(epoch, {"loss": v})
        straight.append(rate(opt))

    opt = make_opt()
    cb = attach(ReduceLROnPlateau(**config), opt)
    resumed = []
    for epoch, v in enumerate(values[:25]):
        cb.on_epoch_end(epoch, {"loss": v})
        resumed.append(rate(opt))
    saved_cb = json.loads(json.dumps(cb.state_dict()))
    saved_opt = opt.state_dict()

    opt = make_opt()
    opt.load_state_dict(saved_opt)
    cb = ReduceLROnPlateau(**config)
    cb.load_state_dict(saved_cb)
    attach(cb, opt)
    cb.on_train_begin({})  # a schedule is re-wrapped when training begins
    for epoch, v in enumerate(values[25:], start=25):
        cb.on_epoch_end(epoch, {"loss": v})
        resumed.append(rate(opt))
    assert resumed == straight
    assert min(straight) < straight[0]
    assert cb.state_dict().keys() == {"best", "num_bad_epochs", "cooldown_counter", "last_epoch", "schedule_scales"}


def test_load_state_dict_rejects_incomplete_state_and_float_lr_for_a_scaled_schedule() -> None:
    with pytest.raises(ValueError, match=r"missing entries \['cooldown_counter'"):
        ReduceLROnPlateau().load_state_dict({"best": 1.0})
    state = {"best": 1.0, "num_bad_epochs": 0, "cooldown_counter": 0, "last_epoch": 3, "schedule_scales": [0.5]}
    cb = attach(ReduceLROnPlateau(), sgd_groups([0.1]))
    with pytest.raises(TypeError, match="rebuild the optimizer with the same schedule"):
        cb.load_state_dict(state)


def test_missing_monitor_is_a_clear_error() -> None:
    cb = attach(ReduceLROnPlateau(), sgd_groups([0.1]))
    with pytest.raises(ValueError, match=r"'val_loss' is not in the epoch logs \['loss'\].*monitor='loss'"):
        cb.on_epoch_end(0, {"loss": 1.0})


def test_mode_auto_and_repr() -> None:
    assert ReduceLROnPlateau().mode == "min"
    assert ReduceLROnPlateau(monitor="val_accuracy").mode == "max"
    assert ReduceLROnPlateau(monitor="val_rmse").mode == "min"
    assert repr(ReduceLROnPlateau(patience=3)).startswith("ReduceLROnPlateau(monitor='val_loss', mode='min'")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"factor": 1.0}, r"factor=1\.0 must be in \[0, 1\)"),
        ({"factor": -0.1}, "factor=-0.1"),
        ({"patience": -1}, "patience=-1"),
        ({"patience": 1.5}, "patience=1.5"),
        ({"cooldown": -2}, "cooldown=-2"),
        ({"threshold": -1e-4}, "threshold=-0.0001"),
        ({"threshold_mode": "relative"}, "threshold_mode='relative' must be 'rel' or 'abs'"),
        ({"mode": "minimize"}, "mode='minimize'"),
        ({"min_lr": -1.0}, "min_lr=-1.0"),
        ({"min_lr": [0.0, -1.0]}, r"min_lr\[1\]=-1.0"),
        ({"eps": -1.0}, "eps=-1.0"),
    ],
)
def test_invalid_arguments_name_them(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ReduceLROnPlateau(**kwargs)


def test_min_lr_list_must_match_the_groups() -> None:
    cb = attach(ReduceLROnPlateau(monitor="loss", patience=0, min_lr=[0.0, 0.0, 0.0]), sgd_groups([0.1, 0.1]))
    cb.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(ValueError, match="min_lr has 3 values but the optimizer has 2 param groups"):
        cb.on_epoch_end(1, {"loss": 1.0})


# ---------------------------------------------------------------------------- CycleMomentum
STEPS = 200
SHAPES = ((5, 3), (4,))


@pytest.mark.oracle
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("adam", [False, True], ids=["sgd-momentum", "adam-beta1"])
def test_cycle_momentum_trajectory_matches_torch_one_cycle(adam: bool, three_phase: bool) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s) for s in SHAPES]
    ours = [Parameter(a.copy(), name=f"p{i}") for i, a in enumerate(init)]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
    sched = one_cycle(0.05, STEPS, three_phase=three_phase)
    if adam:
        opt: Optimizer = Adam(ours, lr=sched, weight_decay=1e-2)
        topt = torch.optim.Adam(theirs, lr=0.05, weight_decay=1e-2)
    else:
        opt = SGD(ours, lr=sched, momentum=0.9, nesterov=True)
        topt = torch.optim.SGD(theirs, lr=0.05, momentum=0.9, nesterov=True)
    cb = attach(CycleMomentum(sched), opt)
    cb.on_train_begin({})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tsched = torch.optim.lr_scheduler.OneCycleLR(topt, 0.05, STEPS, three_phase=three_phase)
        for t in range(STEPS):
            for p, tp in zip(ours, theirs):
                noise = rng.standard_normal(p.shape)
                p.grad[...] = 0.1 * p.data + noise
                tp.grad = torch.from_numpy(0.1 * tp.detach().numpy() + noise)
            cb.on_train_batch_begin(t, {})
            key = "betas" if adam else "momentum"
            ours_m = opt.param_groups[0][key]
            assert ours_m == topt.param_groups[0][key]  # exact, step by step
            opt.step()
            topt.step()
            tsched.step()
    err = max(rel_err(p.data, tp.detach().numpy()) for p, tp in zip(ours, theirs))
    assert err <= TRAJECTORY_RTOL


class MomentumRecorder(Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[float] = []

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        assert self.trainer is not None
        group = self.trainer.optimizer.param_groups[0]
        self.seen.append(group["betas"][0] if "betas" in group else group["momentum"])


@pytest.mark.parametrize("adam", [False, True], ids=["sgd-momentum", "adam-beta1"])
def test_cycle_momentum_in_the_trainer_sets_the_value_of_each_step(adam: bool) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((40, 2)), rng.integers(0, 3, 40)
    loader = DataLoader(x, y, batch_size=10)
    epochs = 3
    sched = one_cycle(0.05, epochs * len(loader))
    model = gw.Sequential(Linear(2, 3, rng=rng))
    opt = Adam(model.parameters(), lr=sched) if adam else SGD(model.parameters(), lr=sched, momentum=0.9)
    recorder = MomentumRecorder()
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, callbacks=[CycleMomentum(sched), recorder], progress=False)
    trainer.fit(loader, epochs=epochs)
    assert recorder.seen == [sched.momentum(t) for t in range(epochs * len(loader))]
    assert recorder.seen[0] == 0.95 and min(recorder.seen) < 0.86  # down towards base_momentum
    if adam:
        assert opt.param_groups[0]["betas"][1] == 0.999  # beta2 untouched


def test_cycle_momentum_errors() -> None:
    with pytest.raises(TypeError, match="no momentum"):
        CycleMomentum(cosine(0.1, 10))

    class Plain(Optimizer):  # an optimizer without momentum (as Adagrad)
        def __init__(self, params: list[Parameter]) -> None:
            super().__init__(params, {"lr": 0.1})

    cb = attach(CycleMomentum(one_cycle(0.1, 10)), Plain([Parameter(np.zeros(1))]))
    with pytest.raises(ValueError, match="has neither 'betas' nor 'momentum'"):
        cb.on_train_begin({})
    with pytest.raises(RuntimeError, match="not attached"):
        CycleMomentum(one_cycle(0.1, 10)).on_train_batch_begin(0, {})
    assert repr(CycleMomentum(one_cycle(0.1, 10))).startswith("CycleMomentum(OneCycle(max_lr=0.1")
