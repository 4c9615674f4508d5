"""Tests for gradwise/training/trainer.py, callbacks.py and progress.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

import gradwise as gw
from gradwise.core import Layer
from gradwise.data import make_spiral
from gradwise.data.loader import DataLoader
from gradwise.layers import Linear, ReLU
from gradwise.losses import L2, MSE, SoftmaxCrossEntropy
from gradwise.optim import SGD, Adam
from gradwise.training import Callback, History, RunDir, Trainer, TrainingDiverged
from gradwise.training.metrics import accuracy
from gradwise.viz import plot_run
from helpers import FlagProbe


class ModeProbe(Layer):
    """Identity layer that records the mode and input dtype of every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []
        self.dtypes: list[np.dtype] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.modes.append(self.training)
        self.dtypes.append(x.dtype)
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out


class Recorder(Callback):
    """Records every hook call as a string."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.epoch_logs: list[dict[str, Any]] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.calls.append("train_begin")

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.calls.append("train_end")

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.calls.append(f"epoch_begin {epoch}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.calls.append(f"epoch_end {epoch}")
        self.epoch_logs.append(dict(logs or {}))

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.calls.append(f"batch_begin {batch}")

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        assert logs is not None and np.isfinite(logs["loss"]) and logs["size"] > 0
        self.calls.append(f"batch_end {batch}")

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.calls.append("test_begin")

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        self.calls.append("test_end")


def _spiral(n_per_class: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return make_spiral(n_per_class, 3, 0.2, rng=np.random.default_rng(seed))


def _mlp(hidden: int = 32, seed: int = 0, *layers: Layer) -> gw.Sequential:
    rng = np.random.default_rng(seed)
    return gw.Sequential(*layers, Linear(2, hidden, rng=rng), ReLU(), Linear(hidden, 3, rng=rng))


def _trainer(model: gw.Sequential | None = None, lr: float = 1e-2, **options: Any) -> Trainer:
    model = _mlp() if model is None else model
    options.setdefault("progress", False)
    options.setdefault("metrics", [accuracy])
    return Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=lr), **options)


def _loader(x: np.ndarray, y: np.ndarray, batch_size: int = 32, shuffle: bool = False) -> DataLoader:
    return DataLoader(x, y, batch_size=batch_size, shuffle=shuffle, rng=np.random.default_rng(1))


def _regression(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 3))
    return x, x @ np.array([[1.0], [2.0], [-1.0]])


# ------------------------------------------------------------------------------------ learning


def test_mlp_fits_the_spiral() -> None:
    x, y = make_spiral(100, 3, 0.2, rng=np.random.default_rng(0))
    model = _mlp(hidden=64)
    trainer = _trainer(model, lr=2e-2)
    history = trainer.fit(_loader(x, y, 32, shuffle=True), epochs=60)
    assert history["accuracy"][-1] > 0.9
    assert trainer.evaluate(_loader(x, y, 100))["accuracy"] > 0.9


def test_history_keys_and_lengths() -> None:
    x, y = _spiral()
    train, val = _loader(x, y, 50), _loader(x, y, 64)
    trainer = _trainer()
    history = trainer.fit(train, val, epochs=3)
    assert isinstance(history, History) and history is trainer.history
    assert history.keys() == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert history["epoch"] == [0, 1, 2]
    assert len(history["val_accuracy"]) == len(history) == 3
    assert history["lr"] == [pytest.approx(1e-2)] * 3
    assert len(history.batch_loss) == 3 * len(train) == trainer.global_step
    assert history.steps == [4, 8, 12]
    assert "val_loss" in history and "nope" not in history
    with pytest.raises(KeyError, match="nope"):
        history["nope"]


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses() -> None:
    x, y = _spiral(30)  # 90 samples: batches of 40, 40, 10
    trainer = _trainer()
    history = trainer.fit(_loader(x, y, 40), epochs=1)
    expected = (40 * history.batch_loss[0] + 40 * history.batch_loss[1] + 10 * history.batch_loss[2]) / 90
    assert history["loss"][0] == pytest.approx(expected)


def test_metrics_see_the_whole_epoch_at_once() -> None:
    x, y = _spiral(30)
    sizes: list[int] = []

    def seen(scores: np.ndarray, labels: np.ndarray) -> float:
        sizes.append(len(scores))
        return float(len(labels))

    trainer = _trainer(metrics=[seen])
    history = trainer.fit(_loader(x, y, 16), _loader(x[:50], y[:50], 16), epochs=1)
    assert sizes == [90, 50]
    assert history["seen"] == [90.0] and history["val_seen"] == [50.0]


def test_best_returns_the_best_epoch_logs() -> None:
    history = History()
    history.epochs = [
        {"epoch": 0, "val_loss": 0.9, "val_accuracy": 0.5},
        {"epoch": 1, "val_loss": 0.4, "val_accuracy": 0.7},
        {"epoch": 2, "val_loss": float("nan"), "val_accuracy": 0.8},
    ]
    assert history.best("val_loss")["epoch"] == 1
    assert history.best("val_accuracy")["epoch"] == 2
    assert history.best("val_accuracy", mode="min")["epoch"] == 0
    with pytest.raises(ValueError, match="finite"):
        History().best("val_loss")


def test_history_csv_round_trip(tmp_path: Path) -> None:
    x, y = _spiral(20)
    history = _trainer().fit(_loader(x, y), epochs=2)
    history.to_csv(tmp_path / "h.csv")
    back = History.from_csv(tmp_path / "h.csv")
    assert back.epochs == history.epochs


def test_fit_twice_continues_the_epoch_count() -> None:
    x, y = _spiral(20)
    trainer = _trainer()
    trainer.fit(_loader(x, y), epochs=2)
    history = trainer.fit(_loader(x, y), epochs=2)
    assert history["epoch"] == [0, 1, 2, 3]
    assert trainer.epoch == 4


def test_penalty_is_part_of_the_loss() -> None:
    x, y = _spiral(20)
    model = _mlp()
    penalty = L2(0.1)
    trainer = _trainer(model, penalty=penalty)
    trainer.fit(_loader(x, y), epochs=1)
    plain = _trainer(model).evaluate(_loader(x, y))
    with_penalty = trainer.evaluate(_loader(x, y))
    assert with_penalty["loss"] == pytest.approx(plain["loss"] + penalty.value(model.parameters()))
    assert with_penalty["accuracy"] == plain["accuracy"]


# ------------------------------------------------------------------------------------ callbacks


def test_callback_hooks_are_called_in_order() -> None:
    x, y = _spiral(20)  # 60 samples, 2 batches of 32
    recorder = Recorder()
    trainer = _trainer(callbacks=[recorder])
    assert recorder.trainer is trainer and recorder.model is trainer.model
    trainer.fit(_loader(x, y), _loader(x, y), epochs=2)
    epoch = ["batch_begin 0", "batch_end 0", "batch_begin 1", "batch_end 1", "test_begin", "test_end"]
    assert recorder.calls == [
        "train_begin",
        "epoch_begin 0",
        *epoch,
        "epoch_end 0",
        "epoch_begin 1",
        *epoch,
        "epoch_end 1",
        "train_end",
    ]
    assert recorder.epoch_logs == trainer.history.epochs


def test_stop_training_from_epoch_end() -> None:
    class StopAfterTwo(Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if epoch == 1:
                self.trainer.stop_training = True  # type: ignore[union-attr]

    x, y = _spiral(20)
    history = _trainer(callbacks=[StopAfterTwo()]).fit(_loader(x, y), epochs=10)
    assert len(history) == 2


def test_stop_training_from_a_batch_ends_the_epoch_early() -> None:
    class StopNow(Callback):
        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self.trainer.stop_training = True  # type: ignore[union-attr]

    x, y = _spiral(20)
    history = _trainer(callbacks=[StopNow()]).fit(_loader(x, y, 16), epochs=5)
    assert len(history) == 1 and len(history.batch_loss) == 1
    assert history["loss"] == [pytest.approx(history.batch_loss[0])]


def test_callbacks_must_be_callback_instances() -> None:
    with pytest.raises(TypeError, match="Callback"):
        _trainer(callbacks=[object()])


# ------------------------------------------------------------------------------------ divergence


def test_divergence_raises_and_keeps_the_best_checkpoint(tmp_path: Path) -> None:
    x, y = _regression()
    model = gw.Sequential(Linear(3, 1, rng=np.random.default_rng(0)))
    opt = SGD(model.parameters(), lr=0.05)
    trainer = Trainer(model, MSE(), opt, progress=False, run_dir=tmp_path / "run", monitor="loss", plot=plot_run)
    trainer.fit(DataLoader(x, y, 16), epochs=2)
    best = tmp_path / "run" / "checkpoints" / "best.safetensors"
    last = tmp_path / "run" / "checkpoints" / "last.safetensors"
    before, last_before = best.read_bytes(), last.read_bytes()

    opt.param_groups[0]["lr"] = 1e3
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged) as info:
        trainer.fit(DataLoader(x, y, 16), epochs=20)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert f"epoch {err.epoch + 1}/22, batch {err.batch + 1}/4" in str(err)
    assert "learning rate" in str(err)
    assert not np.isfinite(err.loss) and not np.isfinite(trainer.history.batch_loss[-1])
    assert best.read_bytes() == before
    assert all(np.isfinite(v).all() for v in load_file(str(best)).values())
    assert last.read_bytes() == last_before  # the end of the previous fit, not the diverged weights
    run = RunDir(tmp_path / "run")
    assert len(run.read_history()) == len(trainer.history) == err.epoch
    summary = run.read_metrics()
    assert summary["status"] == "diverged" and summary["diverged_at"]["epoch"] == err.epoch
    assert (run.plots_dir / "loss.png").stat().st_size > 0


def test_divergence_in_the_first_epoch_writes_no_checkpoint(tmp_path: Path) -> None:
    x, y = _regression()
    model = gw.Sequential(Linear(3, 1, rng=np.random.default_rng(0)))
    trainer = Trainer(model, MSE(), SGD(model.parameters(), lr=1e4), progress=False, run_dir=tmp_path / "run")
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match="epoch 1/3"):
        trainer.fit(DataLoader(x, y, 4), DataLoader(x, y, 64), epochs=3)
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert (tmp_path / "run" / "history.csv").read_text().splitlines() == ["epoch,loss,val_loss,lr,time"]


# ------------------------------------------------------------------------------------ evaluate / predict


def test_evaluate_and_predict_use_eval_mode_and_restore_it() -> None:
    probe = ModeProbe()
    model = _mlp(32, 0, probe)
    trainer = _trainer(model)
    x, y = _spiral(20)

    model.train()
    results = trainer.evaluate(_loader(x, y))
    assert set(results) == {"loss", "accuracy"}
    assert probe.modes and not any(probe.modes)
    assert model.training

    model.eval()
    probe.modes.clear()
    trainer.predict(x)
    assert probe.modes == [False]
    assert not model.training

    probe.modes.clear()
    trainer.fit(_loader(x, y), _loader(x, y), epochs=1)
    assert probe.modes == [True, True, False, False]  # two training batches, two validation batches
    assert model.training


def test_predict_matches_forward_and_casts_to_the_model_dtype() -> None:
    probe = ModeProbe()
    model = _mlp(16, 0, probe).astype(np.float64)
    trainer = _trainer(model)
    x, y = _spiral(30)
    out = trainer.predict(x.astype(np.float32), batch_size=7)
    assert out.shape == (90, 3) and out.dtype == np.float64
    assert set(probe.dtypes) == {np.dtype(np.float64)}
    model.eval()
    np.testing.assert_allclose(out, model.forward(x.astype(np.float64)), rtol=1e-12)
    np.testing.assert_array_equal(trainer.predict(_loader(x, y, 64)), trainer.predict(x))
    with pytest.raises(ValueError, match="shuffles"):
        trainer.predict(_loader(x, y, shuffle=True))

    probe.dtypes.clear()
    trainer.fit(_loader(x, y), epochs=1)  # a float32 loader feeding a float64 model
    assert set(probe.dtypes) == {np.dtype(np.float64)}


def test_fit_needs_targets_and_positive_epochs() -> None:
    x, y = _spiral(10)
    trainer = _trainer()
    with pytest.raises(ValueError, match="no targets"):
        trainer.fit(DataLoader(x))
    with pytest.raises(ValueError, match="epochs"):
        trainer.fit(_loader(x, y), epochs=0)


def test_metric_names_are_checked() -> None:
    with pytest.raises(ValueError, match="def"):
        _trainer(metrics=[lambda s, y: 0.0])
    with pytest.raises(ValueError, match="two metrics"):
        _trainer(metrics=[accuracy, accuracy])

    def loss(scores: np.ndarray, y: np.ndarray) -> float:
        return 0.0

    with pytest.raises(ValueError, match="clashes"):
        _trainer(metrics=[loss])


# ------------------------------------------------------------------------------------ run directory


def test_run_dir_files(tmp_path: Path) -> None:
    x, y = _spiral(30)

    class Snapshots(Callback):
        def __init__(self) -> None:
            super().__init__()
            self.states: list[dict[str, np.ndarray]] = []

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.states.append(self.model.state_dict())
            assert logs is not None
            logs["custom"] = 1.0  # a key added by a callback reaches history.csv

    snapshots = Snapshots()
    trainer = _trainer(run_dir=tmp_path / "run", callbacks=[snapshots], monitor="val_accuracy", plot=plot_run)
    history = trainer.fit(_loader(x, y, 32, shuffle=True), _loader(x[::2], y[::2]), epochs=4)
    run = RunDir(tmp_path / "run")

    rows = run.read_history()
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert rows[-1]["val_accuracy"] == pytest.approx(history["val_accuracy"][-1])
    assert all(r["custom"] == 1.0 for r in rows)

    summary = run.read_metrics()
    assert summary["status"] == "completed" and summary["epochs"] == 4 and summary["steps"] == 12
    assert summary["monitor"] == "val_accuracy" and summary["mode"] == "max"
    assert set(summary["train"]) == {"loss", "accuracy", "custom"} and set(summary["val"]) == {
        "loss",
        "accuracy",
    }

    best_epoch = history.best("val_accuracy")["epoch"]
    assert summary["best_epoch"] == trainer.best_epoch == best_epoch
    best = load_file(str(run.weights_path("best")))
    last = load_file(str(run.weights_path("last")))
    state = trainer.model.state_dict()
    assert best.keys() == last.keys() == state.keys()
    for k in state:
        np.testing.assert_array_equal(last[k], state[k])
        np.testing.assert_array_equal(best[k], snapshots.states[best_epoch][k])

    for name in ("loss.png", "accuracy.png"):
        data = (run.plots_dir / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_run_dir_path_refuses_an_earlier_run(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    with pytest.raises(FileExistsError, match="earlier run"):
        _trainer(run_dir=tmp_path / "run")


def test_monitor_falls_back_to_training_values_without_validation(tmp_path: Path) -> None:
    x, y = _spiral(10)
    trainer = _trainer(run_dir=RunDir.create(tmp_path / "run"))
    with pytest.warns(UserWarning, match="val_loader"):
        trainer.fit(_loader(x, y), epochs=1)
    assert trainer.run_summary["monitor"] == "loss"
    assert (tmp_path / "run" / "checkpoints" / "best.safetensors").exists()
    with pytest.raises(ValueError, match="not one of the logged values"):
        _trainer(run_dir=tmp_path / "other", monitor="f1").fit(_loader(x, y))


# ------------------------------------------------------------------------------------ progress


def test_progress_prints_one_line_per_epoch_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _spiral(10)
    _trainer(progress=True).fit(_loader(x, y), _loader(x, y), epochs=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2  loss ")
    assert "  acc " in lines[1] and "  val_loss " in lines[1] and "  val_acc " in lines[1]


def test_progress_false_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _spiral(10)
    _trainer(progress=False).fit(_loader(x, y), epochs=1)
    assert capsys.readouterr().out == ""


def test_import_gradwise_does_not_import_rich_or_matplotlib() -> None:
    code = "import sys, gradwise; print(sorted(m for m in ('rich', 'matplotlib') if m in sys.modules))"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert out.stdout.strip() == "[]"


def test_rich_bar_on_a_terminal() -> None:
    import io

    from gradwise.training.progress import RichProgress, make_progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    display = make_progress(True, stream)
    assert isinstance(display, RichProgress)
    display.start(total_epochs=2, batches_per_epoch=3)
    for epoch in range(2):
        display.start_epoch(epoch)
        for batch in range(3):
            display.update(batch + 1, 0.5)
        display.end_epoch({"epoch": epoch, "loss": 0.5, "accuracy": 0.75, "time": 0.25})
    display.close()
    out = stream.getvalue()
    assert "epoch 1/2  loss 0.5  acc 0.75  250ms" in out and "epoch 2/2" in out


# ------------------------------------------------------------------------------ the layer protocol


class OldStyleModel(Layer):
    """A whole model written against the old protocol: backward(self, grad_out) only."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _mlp(8, 0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.net.forward(x)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return self.net.backward(grad_out)


def test_fit_tells_the_model_that_no_input_gradient_is_needed() -> None:
    probe = FlagProbe()
    trainer = _trainer(_mlp(16, 0, probe))
    x, y = _spiral(20)
    trainer.fit(_loader(x, y), epochs=1)
    assert probe.flags == [False, False]  # two batches, the first layer told each time


def test_fit_trains_a_model_with_the_old_backward_signature_as_before() -> None:
    x, y = _spiral(20)
    old = OldStyleModel()
    new = _mlp(8, 0)
    for model in (old, new):
        _trainer(model).fit(_loader(x, y), epochs=2)
    for p, q in zip(old.parameters(), new.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
