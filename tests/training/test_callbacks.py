"""Tests of gradwise/training/callbacks.py: the Callback base and the built-ins EarlyStopping,
ModelCheckpoint, TerminateOnNaN, EMA and CSVLogger, alone and inside the Trainer."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from helpers import rel_err
from hypothesis import given
from hypothesis import strategies as st

import gradwise as gw
from gradwise.core import Layer
from gradwise.data.loader import DataLoader
from gradwise.io import load, read_metadata
from gradwise.layers import BatchNorm1d, Linear, ReLU
from gradwise.losses import MSE, SoftmaxCrossEntropy
from gradwise.optim import SGD
from gradwise.training import Callback, CallbackList, RunDir, Trainer, TrainingDiverged
from gradwise.training.callbacks import (
    EMA,
    CSVLogger,
    EarlyStopping,
    ModelCheckpoint,
    TerminateOnNaN,
)
from gradwise.training.rundir import read_csv_rows

NAN = math.nan


def _model(seed: int = 0, dtype: Any = np.float32) -> gw.Sequential:
    rng = np.random.default_rng(seed)
    return gw.Sequential(Linear(3, 8, rng=rng, dtype=dtype), ReLU(), Linear(8, 2, rng=rng, dtype=dtype))


def _data(n: int = 32, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _loader(batch_size: int = 8) -> DataLoader:
    x, y = _data()
    return DataLoader(x, y, batch_size=batch_size)


def _trainer(model: gw.Sequential, callbacks: list[Callback], **options: Any) -> Trainer:
    options.setdefault("progress", False)
    return Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), callbacks=callbacks, **options)


def _fake_trainer(model: Layer) -> Any:
    """Stands in for a Trainer: these callbacks only use `model`, `loss` and `stop_training`."""
    return SimpleNamespace(model=model, loss=SoftmaxCrossEntropy(), stop_training=False)


def _through_json(state: dict[str, Any]) -> dict[str, Any]:
    """A callback state as a checkpoint stores it: plain values through JSON, arrays kept aside."""
    arrays: dict[str, np.ndarray] = {}

    def out(obj: Any, path: str) -> Any:
        if isinstance(obj, np.ndarray):
            arrays[path] = obj.copy()
            return {"__array__": path}
        if isinstance(obj, dict):
            return {k: out(v, f"{path}/{k}") for k, v in obj.items()}
        return obj

    def back(obj: Any) -> Any:
        if isinstance(obj, dict):
            return arrays[obj["__array__"]] if set(obj) == {"__array__"} else {k: back(v) for k, v in obj.items()}
        return obj

    return back(json.loads(json.dumps(out(state, ""))))


def _same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


class Plant(Callback):
    """Overwrites `key` in each epoch's logs with a planted curve and keeps that epoch's weights.

    Listed before the callback under test, which then sees the planted value."""

    def __init__(self, curve: list[float], key: str = "val_loss") -> None:
        super().__init__()
        self.curve, self.key = curve, key
        self.weights: list[dict[str, np.ndarray]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        assert logs is not None
        logs[self.key] = self.curve[epoch]
        self.weights.append(self.model.state_dict())


# ------------------------------------------------------------------------------------ base


def test_base_callback_state_is_empty_and_loading_it_is_a_no_op() -> None:
    cb = Callback()
    assert cb.state_dict() == {}
    cb.load_state_dict({})
    assert cb.on_train_diverged(TrainingDiverged("x", 0, 0, NAN), None, None) is False


def test_callback_list_on_train_diverged_asks_every_callback() -> None:
    seen: list[str] = []

    class Handles(Callback):
        def __init__(self, name: str, answer: bool) -> None:
            super().__init__()
            self.name, self.answer = name, answer

        def on_train_diverged(self, error: TrainingDiverged, inputs: Any, targets: Any) -> bool:
            seen.append(self.name)
            return self.answer

    err = TrainingDiverged("x", 0, 0, NAN)
    assert CallbackList([Handles("a", True), Handles("b", False)]).on_train_diverged(err, None, None) is True
    assert seen == ["a", "b"]
    assert CallbackList([Handles("c", False)]).on_train_diverged(err, None, None) is False


# ------------------------------------------------------------------------------------ EarlyStopping

# (curve, options, epoch training stops at or None, best epoch)
PLANTED = {
    "patience": ([1.0, 0.8, 0.85, 0.7, 0.75, 0.72, 0.9, 0.6], {"patience": 2}, 5, 3),
    "min_delta": ([1.0, 0.97, 0.9, 0.88, 0.5], {"patience": 1, "min_delta": 0.05}, 1, 0),
    "epoch_limit": ([1.0, 0.5, 0.7, 0.8, 0.9], {"patience": 10}, None, 1),
    "max": ([0.5, 0.6, 0.6, 0.55, 0.7], {"monitor": "val_accuracy", "patience": 2}, 3, 1),
    "baseline": ([0.9, 0.8, 0.7, 0.75, 0.72, 0.3], {"patience": 3, "baseline": 0.5}, 3, 2),
    "no_baseline": ([0.9, 0.8, 0.7, 0.75, 0.72, 0.3], {"patience": 3}, None, 5),
    "nan": ([1.0, NAN, 0.9], {"patience": 1}, 1, 0),
    "warmup": ([0.1, 0.2, 0.5, 0.6, 0.7], {"patience": 1, "start_from_epoch": 2}, 3, 2),
    "patience0": ([1.0, 0.9, 0.95, 0.1], {"patience": 0}, 2, 1),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_early_stopping_on_a_planted_curve_restores_the_best_epoch_exactly(case: str) -> None:
    curve, options, stop, best = PLANTED[case]
    key = options.get("monitor", "val_loss")
    plant = Plant(curve, key)
    es = EarlyStopping(restore_best=True, **options)
    model = _model()
    trainer = _trainer(model, [plant, es])
    history = trainer.fit(_loader(), epochs=len(curve))
    expected_epochs = len(curve) if stop is None else stop + 1
    assert len(history) == expected_epochs
    assert es.stopped_epoch == stop
    assert es.best_epoch == best
    assert history[key] == pytest.approx(curve[:expected_epochs], nan_ok=True)
    assert _same_weights(model.state_dict(), plant.weights[best])
    if best != expected_epochs - 1:  # the restore did something
        assert not _same_weights(plant.weights[best], plant.weights[-1])


def test_early_stopping_without_restore_keeps_the_last_weights() -> None:
    plant = Plant([1.0, 1.1, 1.2, 1.3])
    model = _model()
    _trainer(model, [plant, EarlyStopping(patience=2)]).fit(_loader(), epochs=4)
    assert len(plant.weights) == 3
    assert _same_weights(model.state_dict(), plant.weights[-1])


def test_early_stopping_reports_a_missing_monitor() -> None:
    with pytest.raises(ValueError, match=r"'val_loss' is not in the epoch logs .*use monitor='loss'"):
        _trainer(_model(), [EarlyStopping()]).fit(_loader(), epochs=1)


@pytest.mark.parametrize(
    ("options", "match"),
    [({"patience": -1}, "patience"), ({"mode": "up"}, "mode"), ({"min_delta": NAN}, "min_delta"), ({"baseline": "x"}, "baseline")],
)
def test_early_stopping_validates_its_arguments(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**options)


def _run_early_stopping(es: EarlyStopping, trainer: Any, curve: list[float], epochs: range) -> None:
    for epoch in epochs:
        if trainer.stop_training:
            return
        for p in trainer.model.parameters():
            p.data[...] = epoch  # weights that identify their epoch
        es.on_epoch_end(epoch, {"val_loss": curve[epoch]})


@given(
    curve=st.lists(st.floats(0, 1, allow_nan=False) | st.just(NAN), min_size=2, max_size=12),
    split=st.integers(1, 11),
    patience=st.integers(0, 3),
)
def test_early_stopping_resumed_from_its_state_decides_as_if_never_interrupted(
    curve: list[float], split: int, patience: int
) -> None:
    split = min(split, len(curve) - 1)
    whole_trainer = _fake_trainer(_model())
    whole = EarlyStopping(patience=patience, restore_best=True, min_delta=0.01)
    whole.set_trainer(whole_trainer)
    _run_early_stopping(whole, whole_trainer, curve, range(len(curve)))

    first_trainer = _fake_trainer(_model())
    first = EarlyStopping(patience=patience, restore_best=True, min_delta=0.01)
    first.set_trainer(first_trainer)
    _run_early_stopping(first, first_trainer, curve, range(split))
    resumed_trainer = _fake_trainer(_model(seed=5))
    resumed_trainer.stop_training = first_trainer.stop_training
    resumed = EarlyStopping(patience=patience, restore_best=True, min_delta=0.01)
    resumed.set_trainer(resumed_trainer)
    resumed.load_state_dict(_through_json(first.state_dict()))
    _run_early_stopping(resumed, resumed_trainer, curve, range(split, len(curve)))

    assert (resumed.stopped_epoch, resumed.best_epoch, resumed.wait) == (whole.stopped_epoch, whole.best_epoch, whole.wait)
    assert resumed.best == whole.best or (math.isnan(resumed.best) and math.isnan(whole.best))
    assert whole.best_weights is not None and resumed.best_weights is not None
    assert _same_weights(resumed.best_weights, whole.best_weights)


# ------------------------------------------------------------------------------------ ModelCheckpoint


def test_model_checkpoint_directory_layout_best_last_and_every_epoch(tmp_path: Path) -> None:
    plant = Plant([1.0, 0.5, 0.7, 0.6])
    ckpt = ModelCheckpoint(tmp_path / "ck", save_best_only=False)
    model = _model()
    _trainer(model, [plant, ckpt]).fit(_loader(), epochs=4)
    out = tmp_path / "ck"
    assert sorted(p.name for p in out.iterdir()) == [
        "best.safetensors", *(f"epoch-{e:04d}.safetensors" for e in range(1, 5)), "last.safetensors"
    ]
    assert _same_weights(load(out / "best.safetensors"), plant.weights[1])
    assert _same_weights(load(out / "last.safetensors"), model.state_dict())
    assert _same_weights(load(out / "epoch-0003.safetensors"), plant.weights[2])
    meta = read_metadata(out / "best.safetensors")
    assert (meta["epoch"], meta["checkpoint"], float(meta["val_loss"])) == ("1", "best", 0.5)
    assert (ckpt.best, ckpt.best_epoch) == (0.5, 1)


def test_model_checkpoint_file_template_is_filled_like_keras(tmp_path: Path) -> None:
    plant = Plant([1.0, 0.5, 0.7, 0.25])
    template = tmp_path / "models" / "m-{epoch:02d}-{val_loss:.2f}.safetensors"
    _trainer(_model(), [plant, ModelCheckpoint(template, save_last=True)]).fit(_loader(), epochs=4)
    names = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert names == ["last.safetensors", "m-01-1.00.safetensors", "m-02-0.50.safetensors", "m-04-0.25.safetensors"]
    assert _same_weights(load(tmp_path / "models" / "m-02-0.50.safetensors"), plant.weights[1])


class Poison(Callback):
    """Makes the weights non-finite at the end of epoch `at` (before later callbacks run)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch == self.at:
            self.model.parameters()[0].data[0, 0] = np.nan


def test_model_checkpoint_never_writes_non_finite_weights(tmp_path: Path) -> None:
    plant = Plant([1.0, 0.5])
    ckpt = ModelCheckpoint(tmp_path)
    trainer = _trainer(_model(), [plant, Poison(at=1), ckpt])
    trainer.fit(_loader(), epochs=1)
    best, last = (tmp_path / "best.safetensors").read_bytes(), (tmp_path / "last.safetensors").read_bytes()
    with pytest.warns(RuntimeWarning, match="NaN or inf.*not written"):
        trainer.fit(_loader(), epochs=1)  # epoch 1 improves, but its weights are poisoned
    assert (tmp_path / "best.safetensors").read_bytes() == best
    assert (tmp_path / "last.safetensors").read_bytes() == last
    assert (ckpt.best, ckpt.best_epoch) == (1.0, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors", "last.safetensors"]  # no temp files


def test_model_checkpoint_resumed_keeps_its_best(tmp_path: Path) -> None:
    first = ModelCheckpoint(tmp_path, save_last=False)
    _trainer(_model(), [Plant([0.5]), first]).fit(_loader(), epochs=1)
    best = (tmp_path / "best.safetensors").read_bytes()
    resumed = ModelCheckpoint(tmp_path, save_last=False)
    resumed.load_state_dict(_through_json(first.state_dict()))
    trainer = _trainer(_model(seed=3), [Plant([NAN, 0.7]), resumed])
    trainer.epoch = 1  # continue the epoch count, as a resumed trainer does
    trainer.fit(_loader(), epochs=1)
    assert (tmp_path / "best.safetensors").read_bytes() == best
    assert resumed.best_epoch == 0


def test_model_checkpoint_reports_a_bad_template(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot fill .*\{val_acc\}"):
        _trainer(_model(), [Plant([1.0]), ModelCheckpoint(tmp_path / "{val_acc}.safetensors")]).fit(_loader(), epochs=1)


# ------------------------------------------------------------------------------------ TerminateOnNaN


class Fuse(Layer):
    """Identity until armed; then its output is infinite (an overflow planted in one layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * np.float32(np.inf) if self.armed else x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out


def _fused_model() -> gw.Sequential:
    rng = np.random.default_rng(0)
    inner = gw.Sequential(Linear(8, 8, rng=rng), Fuse(), BatchNorm1d(8))
    return gw.Sequential(Linear(3, 8, rng=rng), ReLU(), inner, Linear(8, 2, rng=rng))


def _attached_terminate(model: Layer) -> tuple[TerminateOnNaN, Any]:
    fake = _fake_trainer(model)
    cb = TerminateOnNaN(verbose=False)
    cb.set_trainer(fake)
    return cb, fake


@pytest.mark.parametrize(
    ("plant", "where", "layer"),
    [
        ("input", "input", None),
        ("param", "parameter", "2.0"),
        ("fuse", "output", "2.1"),
        ("targets", "loss", None),
        ("nothing", None, None),
    ],
)
def test_diagnose_names_the_first_non_finite_layer(plant: str, where: str | None, layer: str | None) -> None:
    model = _fused_model()
    cb, _ = _attached_terminate(model)
    x, y = _data(8)
    if plant == "input":
        x[3, 1] = np.nan
    elif plant == "param":
        model[2][0].weight.data[1, 1] = np.inf
    elif plant == "fuse":
        model[2][1].armed = True
    elif plant == "targets":  # the model is fine, the targets make the loss infinite
        cb.trainer.loss = MSE()
        y = np.full((8, 2), np.inf)
    before = model.state_dict()
    got_where, got_layer, detail = cb.diagnose(x, y)
    assert (got_where, got_layer) == (where, layer)
    assert isinstance(detail, str) and detail
    if layer is not None:
        assert repr(layer) in detail
    assert _same_weights(model.state_dict(), before)  # the diagnosis ran on a copy


def test_on_train_diverged_restores_batchnorm_stats_and_asks_for_a_clean_stop() -> None:
    model = _fused_model()
    cb, _ = _attached_terminate(model)
    x, y = _data(8)
    cb.on_epoch_begin(4)
    cb.on_train_batch_begin(6)
    before = model.state_dict()
    model[2][1].armed = True
    model.train()
    with np.errstate(all="ignore"):
        model.forward(x)  # the failing forward pass: BatchNorm's running stats become non-finite
    assert not np.isfinite(model[2][2].running_mean).all()
    err = TrainingDiverged("training diverged at epoch 5/9, batch 7/?: the loss is inf.", 4, 6, math.inf)
    assert cb.on_train_diverged(err, x, y) is True
    assert _same_weights(model.state_dict(), before)
    assert cb.report == {
        "epoch": 4, "batch": 6, "loss": math.inf, "where": "output", "layer": "2.1", "detail": cb.report["detail"]
    }
    assert "epoch 5, batch 7" in cb.message and "'2.1' (Fuse)" in cb.message
    assert "'2.1' (Fuse)" in str(err) and err.layer == "2.1"  # type: ignore[attr-defined]


class BreakStep(Callback):
    """After batch `at` of the first epoch, plays an update with an infinite gradient in layer '2'."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if batch == self.at and self.trainer is not None and self.trainer.epoch == 1:
            w = self.model[2].weight
            w.grad[0, 0] = np.inf
            w.data[0, 0] = np.nan


def test_terminate_on_nan_stops_after_a_step_that_made_weights_non_finite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cb = TerminateOnNaN()
    trainer = _trainer(_model(), [BreakStep(at=2), cb], run_dir=tmp_path / "run", monitor="loss")
    trainer.fit(_loader(), epochs=1)
    best = (tmp_path / "run" / "checkpoints" / "best.safetensors").read_bytes()
    last = (tmp_path / "run" / "checkpoints" / "last.safetensors").read_bytes()
    history = trainer.fit(_loader(), epochs=3)
    assert len(history) == 2 and trainer.global_step == 4 + 3
    assert cb.report is not None
    assert (cb.report["epoch"], cb.report["batch"], cb.report["where"], cb.report["layer"]) == (1, 2, "gradient", "2")
    assert "'2.weight'" in cb.message
    assert "TerminateOnNaN: epoch 2, batch 3" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoints" / "best.safetensors").read_bytes() == best
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").read_bytes() == last


def test_terminate_on_nan_is_silent_while_everything_is_finite(capsys: pytest.CaptureFixture[str]) -> None:
    cb = TerminateOnNaN()
    history = _trainer(_model(), [cb]).fit(_loader(), epochs=2)
    assert len(history) == 2 and cb.report is None and cb.message is None
    assert capsys.readouterr().err == ""


class ArmAt(Callback):
    """Arms the model's Fuse before batch `batch` of epoch `epoch`; keeps the weights before it."""

    def __init__(self, epoch: int, batch: int) -> None:
        super().__init__()
        self.epoch, self.batch = epoch, batch
        self.before: dict[str, np.ndarray] = {}
        self.best_file = b""

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.trainer is not None and (self.trainer.epoch, batch) == (self.epoch, self.batch):
            self.before = self.model.state_dict()
            assert self.trainer.run_dir is not None
            self.best_file = self.trainer.run_dir.weights_path("best").read_bytes()
            self.model[2][1].armed = True


def test_terminate_on_nan_turns_a_nan_loss_into_a_clean_stop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _fused_model()
    arm, cb = ArmAt(1, 2), TerminateOnNaN()
    trainer = _trainer(model, [arm, cb], run_dir=tmp_path / "run", monitor="loss")
    with np.errstate(all="ignore"):
        history = trainer.fit(_loader(), epochs=3)  # returns instead of raising TrainingDiverged
    assert len(history) == 1 and trainer.global_step == 4 + 2
    assert cb.report is not None and (cb.report["where"], cb.report["layer"]) == ("output", "2.1")
    assert _same_weights(model.state_dict(), arm.before)  # BatchNorm's running stats included
    assert "'2.1' (Fuse)" in capsys.readouterr().err
    run = RunDir(tmp_path / "run")
    assert run.weights_path("best").read_bytes() == arm.best_file
    assert not run.weights_path("last").exists()


# ------------------------------------------------------------------------------------ EMA


def _drive_ema(ema: EMA, model: Layer, thetas: list[list[np.ndarray]]) -> None:
    """Sets the parameters to each given list of values in turn and reports a step after each."""
    for values in thetas:
        for p, v in zip(model.parameters(), values):
            p.data[...] = v
        ema.on_train_batch_end(0, {"loss": 0.0})


def _thetas(model: Layer, steps: int, seed: int = 2) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=p.shape) for p in model.parameters()] for _ in range(steps)]


@pytest.mark.parametrize("start_step", [0, 3])
def test_ema_follows_the_formula(start_step: int, tol: Any) -> None:
    model = _model(dtype=np.float64)
    ema = EMA(decay=0.9, start_step=start_step)
    ema.set_trainer(_fake_trainer(model))
    theta0 = [p.data.copy() for p in model.parameters()]
    ema.on_train_begin()
    thetas = _thetas(model, 10)
    _drive_ema(ema, model, thetas)
    expected = [t.copy() for t in theta0]
    for t, values in enumerate(thetas, start=1):
        expected = list(values) if t <= start_step else [0.9 * e + 0.1 * v for e, v in zip(expected, values)]
    for (name, _), e in zip(model.named_parameters(), expected):
        assert rel_err(ema.shadow[name], e) < tol.optim_golden
    assert (ema.step, ema.num_updates) == (10, 10 - start_step)


def test_ema_bias_correction_is_a_weighted_mean_of_the_steps(tol: Any) -> None:
    model = _model(dtype=np.float64)
    ema = EMA(decay=0.8, bias_correction=True)
    ema.set_trainer(_fake_trainer(model))
    ema.on_train_begin()
    thetas = _thetas(model, 6)
    _drive_ema(ema, model, thetas)
    weights = np.array([0.2 * 0.8 ** (6 - k) for k in range(1, 7)]) / (1 - 0.8**6)
    averaged = ema.averaged_weights()
    for i, (name, _) in enumerate(model.named_parameters()):
        expected = sum(w * th[i] for w, th in zip(weights, thetas))
        assert rel_err(averaged[name], expected) < tol.optim_golden


@pytest.mark.oracle
def test_ema_matches_torch_averaged_model(tol: Any) -> None:
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    model = _model(dtype=np.float64)
    twin = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).double()

    def copy_to_twin() -> None:
        with torch.no_grad():
            for t, p in zip(twin.parameters(), model.parameters()):
                t.copy_(torch.from_numpy(p.data))

    ema = EMA(decay=0.95)
    ema.set_trainer(_fake_trainer(model))
    ema.on_train_begin()
    copy_to_twin()
    averaged = AveragedModel(twin, multi_avg_fn=get_ema_multi_avg_fn(0.95))
    averaged.update_parameters(twin)  # the first call copies, as EMA starts from the initial weights
    for values in _thetas(model, 50):
        _drive_ema(ema, model, [values])
        copy_to_twin()
        averaged.update_parameters(twin)
    for (name, _), t in zip(model.named_parameters(), averaged.module.parameters()):
        assert rel_err(ema.shadow[name], t.detach().numpy()) < tol.optim_oracle


def test_ema_weights_are_used_for_validation_and_swapped_back() -> None:
    model = _model()
    ema = EMA(decay=0.5)
    trainer = _trainer(model, [ema])
    loader = _loader()
    trainer.fit(loader, epochs=2)
    raw = model.state_dict()
    via_ema = trainer.evaluate(loader)
    assert _same_weights(model.state_dict(), raw)
    twin = _model()
    twin.load_state_dict({**raw, **ema.averaged_weights()})
    expected = _trainer(twin, []).evaluate(loader)
    assert via_ema == expected
    assert via_ema != _trainer(model, []).evaluate(loader)  # the raw weights give another loss


@pytest.mark.parametrize("accumulate", [1, 3])
def test_ema_counts_optimizer_steps_not_batches(accumulate: int) -> None:
    ema = EMA(decay=0.5)
    trainer = _trainer(_model(), [ema], accumulate=accumulate)
    trainer.fit(_loader(batch_size=4), epochs=2)  # 8 batches per epoch
    assert ema.step == ema.num_updates == trainer.global_step == 2 * math.ceil(8 / accumulate)


def test_ema_apply_restore_and_context_manager() -> None:
    model = _model()
    ema = EMA(decay=0.5, use_for_eval=False)
    ema.set_trainer(_fake_trainer(model))
    with pytest.raises(RuntimeError, match="nothing averaged"):
        ema.apply()
    ema.on_train_begin()
    _drive_ema(ema, model, _thetas(model, 3))
    raw = model.state_dict()
    with pytest.raises(RuntimeError, match="not applied"):
        ema.restore()
    with pytest.raises(KeyError), ema.averaged():
        assert _same_weights({k: v for k, v in model.state_dict().items()}, {**raw, **ema.averaged_weights()})
        with pytest.raises(RuntimeError, match="already applied"):
            ema.apply()
        with pytest.raises(RuntimeError, match="restore"):
            ema.on_train_batch_end(0, {"loss": 0.0})
        raise KeyError("leaving the block by an exception still restores")
    assert _same_weights(model.state_dict(), raw)


def test_ema_resumed_from_its_state_continues_exactly() -> None:
    model = _model()
    thetas = _thetas(model, 8)
    whole = EMA(decay=0.7, start_step=2, bias_correction=True)
    whole.set_trainer(_fake_trainer(model))
    whole.on_train_begin()
    _drive_ema(whole, model, thetas)

    first = EMA(decay=0.7, start_step=2, bias_correction=True)
    first.set_trainer(_fake_trainer(model))
    for p, v in zip(model.parameters(), _model().parameters()):
        p.data[...] = v.data
    first.on_train_begin()
    _drive_ema(first, model, thetas[:5])
    resumed = EMA(decay=0.7, start_step=2, bias_correction=True)
    resumed.load_state_dict(_through_json(first.state_dict()))
    resumed.set_trainer(_fake_trainer(model))
    resumed.on_train_begin()
    _drive_ema(resumed, model, thetas[5:])
    assert _same_weights(resumed.averaged_weights(), whole.averaged_weights())
    with pytest.raises(ValueError, match="EMA: the averaged weights are for parameters"):
        resumed.set_trainer(_fake_trainer(gw.Sequential(Linear(3, 2))))
        resumed.on_train_begin()


def test_ema_validates_decay() -> None:
    for decay in (-0.1, 1.0, True):
        with pytest.raises(ValueError, match="decay"):
            EMA(decay=decay)


# ------------------------------------------------------------------------------------ CSVLogger


def test_csv_logger_writes_the_history_rows_exactly(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "train.csv"
    trainer = _trainer(_model(), [CSVLogger(path)])
    history = trainer.fit(_loader(), _loader(16), epochs=3)
    assert read_csv_rows(path) == history.epochs
    trainer.fit(_loader(), _loader(16), epochs=1)  # a later fit appends
    assert read_csv_rows(path) == history.epochs and len(history) == 4
    assert os.listdir(path.parent) == ["train.csv"]  # no temporary files left


@pytest.mark.parametrize("append", [False, True])
def test_csv_logger_append_keeps_or_empties_an_earlier_file(tmp_path: Path, append: bool) -> None:
    path = tmp_path / "train.csv"
    _trainer(_model(), [CSVLogger(path)]).fit(_loader(), epochs=2)
    old = read_csv_rows(path)
    history = _trainer(_model(), [CSVLogger(path, append=append)]).fit(_loader(), epochs=1)
    assert read_csv_rows(path) == (old if append else []) + history.epochs


def test_csv_logger_resumed_drops_rows_written_after_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    logger = CSVLogger(path)
    history = _trainer(_model(), [logger]).fit(_loader(), epochs=2)
    state = _through_json(logger.state_dict())
    _trainer(_model(), [logger]).fit(_loader(), epochs=2)  # epochs after the checkpoint, then a crash
    assert len(read_csv_rows(path)) == 4
    resumed = CSVLogger(path)
    resumed.load_state_dict(state)
    more = _trainer(_model(seed=1), [resumed]).fit(_loader(), epochs=1)
    assert read_csv_rows(path) == history.epochs + more.epochs


def test_csv_logger_resume_refuses_a_file_with_too_few_rows(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path / "train.csv")
    logger.load_state_dict({"rows": 3})
    with pytest.raises(ValueError, match="has 0 rows, fewer than the 3"):
        _trainer(_model(), [logger]).fit(_loader(), epochs=1)


def test_run_dir_and_callbacks_live_together(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    es, ema = EarlyStopping(monitor="val_loss", patience=1, restore_best=True), EMA(0.9)
    trainer = _trainer(_model(), [ema, es, CSVLogger(run.path / "log.csv")], run_dir=run)
    history = trainer.fit(_loader(), _loader(16), epochs=3)
    assert read_csv_rows(run.path / "log.csv") == run.read_history() == history.epochs
    assert es.best_epoch == history.best("val_loss")["epoch"]


# ------------------------------------------------------------------------------------ resume


class Crash(Callback):
    """Kills the run (an exception) after optimizer step `at`; stateless, so resuming ignores it."""

    def __init__(self, at: int | None) -> None:
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.trainer is not None and self.trainer.global_step == self.at:
            raise KeyboardInterrupt


def _resumable_run(path: Path, crash_at: int | None, resume: bool) -> tuple[Trainer, dict[str, Any]]:
    model = _model(seed=4)
    x, y = _data(48, seed=6)
    train = DataLoader(x, y, batch_size=8, shuffle=True, rng=np.random.default_rng(9))
    val = DataLoader(*_data(24, seed=7), batch_size=24)
    cbs = {
        "es": EarlyStopping(patience=2, min_delta=0.02, restore_best=True),
        "ema": EMA(decay=0.8, start_step=3, bias_correction=True),
        "csv": CSVLogger(path / "log.csv"),
        "ckpt": ModelCheckpoint(path / "weights"),
    }
    trainer = Trainer(
        model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.3, momentum=0.9),
        callbacks=[Crash(crash_at), *cbs.values()], progress=False,
        run_dir=RunDir(path) if resume else RunDir.create(path), checkpoint_every=4,
    )
    trainer.fit(train, val, epochs=12, **({"resume_from": path} if resume else {}))
    return trainer, cbs


def test_callbacks_resume_exactly_through_a_trainer_checkpoint(tmp_path: Path) -> None:
    whole, expected = _resumable_run(tmp_path / "whole", None, resume=False)
    with pytest.raises(KeyboardInterrupt):
        _resumable_run(tmp_path / "cut", 23, resume=False)  # mid-epoch, after the checkpoint of step 20
    resumed, got = _resumable_run(tmp_path / "cut", None, resume=True)
    es, ema = expected["es"], expected["ema"]
    assert es.stopped_epoch is not None and es.stopped_epoch > 23 // 6  # it stops after the crash
    assert (got["es"].stopped_epoch, got["es"].best_epoch) == (es.stopped_epoch, es.best_epoch)
    assert _same_weights(resumed.model.state_dict(), whole.model.state_dict())
    assert (got["ema"].step, got["ema"].num_updates) == (ema.step, ema.num_updates) == (whole.global_step, whole.global_step - 3)
    assert _same_weights(got["ema"].shadow, ema.shadow)
    cut, full = ([{k: v for k, v in row.items() if k != "time"} for row in read_csv_rows(tmp_path / run / "log.csv")]
                 for run in ("cut", "whole"))
    assert cut == full  # wall times aside
    for name in ("best", "last"):
        assert _same_weights(
            load(tmp_path / "cut" / "weights" / f"{name}.safetensors"),
            load(tmp_path / "whole" / "weights" / f"{name}.safetensors"),
        )
