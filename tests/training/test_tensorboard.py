"""The TensorBoard callback (gradwise/training/tensorboard.py), read back through TensorBoard's own
data API (`EventAccumulator`, what ``tensorboard --logdir`` loads): scalars with their values and
steps, histograms for every parameter, update ratios against an independent computation, and a
killed-then-resumed run that shows every step exactly once with the uninterrupted run's values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorboardX", reason="the TensorBoard callback writes through tensorboardX (the test extra)")
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="the events are read back with TensorBoard's data API (the test extra)",
)

import gradwise as gw  # noqa: E402
from gradwise.cli.__main__ import main  # noqa: E402
from gradwise.data import make_spiral  # noqa: E402
from gradwise.data.loader import DataLoader  # noqa: E402
from gradwise.layers import Linear, ReLU  # noqa: E402
from gradwise.losses import SoftmaxCrossEntropy  # noqa: E402
from gradwise.optim import SGD, Adam, schedules  # noqa: E402
from gradwise.training import Callback, RunDir, Trainer  # noqa: E402
from gradwise.training.callbacks import TensorBoard  # noqa: E402
from gradwise.training.metrics import accuracy  # noqa: E402
from helpers import spiral_cli_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Trainer. monitor='val_loss' needs a val_loader")

X, Y = make_spiral(40, 3, 0.3, rng=np.random.default_rng(0))  # 120 samples: 8 batches of 16
PARAMS = ["0.weight", "0.bias", "2.weight", "2.bias"]


@pytest.fixture(autouse=True)
def _no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run-directory plots are tested elsewhere; drawing them would dominate these tests' time."""
    monkeypatch.setattr("gradwise.viz.plot_run", lambda *args, **kwargs: [])


def _read(directory: Path) -> Any:
    acc = event_accumulator.EventAccumulator(str(directory), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def _series(acc: Any, tag: str) -> tuple[list[int], list[float]]:
    events = acc.Scalars(tag)
    return [e.step for e in events], [e.value for e in events]


def _trainer(callbacks: list[Callback], *, optimizer=None, run_dir=None, **kwargs: Any) -> Trainer:
    gw.manual_seed(3)
    model = gw.Sequential(Linear(2, 16), ReLU(), Linear(16, 3))
    opt = optimizer(model) if optimizer else Adam(model.parameters(), lr=1e-2)
    return Trainer(
        model, SoftmaxCrossEntropy(), opt, metrics=[accuracy], callbacks=callbacks, progress=False,
        run_dir=run_dir, **kwargs,
    )


def _loaders(shuffle: bool = True) -> tuple[DataLoader, DataLoader]:
    return DataLoader(X, Y, batch_size=16, shuffle=shuffle), DataLoader(X[:30], Y[:30], batch_size=64)


def test_scalars_have_the_histories_values_at_the_optimizer_steps(tmp_path: Path) -> None:
    total = 3 * 8
    lr = schedules.cosine(5e-2, total_steps=total)
    tb = TensorBoard(tmp_path / "tb", histogram_freq=2, ratio_freq=0)
    trainer = _trainer([tb], optimizer=lambda m: SGD(m.parameters(), lr=lr), clip_grad_norm=10.0)
    trainer.fit(*_loaders(), epochs=3)
    train, val = _read(tmp_path / "tb" / "train"), _read(tmp_path / "tb" / "validation")
    history = trainer.history
    assert history.steps == [8, 16, 24]

    steps, values = _series(train, "batch_loss")
    assert steps == list(range(1, total + 1))
    np.testing.assert_allclose(values, history.batch_loss, rtol=1e-6)  # float32 in the event file
    steps, values = _series(train, "batch_learning_rate")
    np.testing.assert_allclose(values, [lr(s - 1) for s in steps], rtol=1e-6)  # the rate step s used
    assert _series(train, "batch_grad_norm")[0] == steps

    for tag, key, acc in (
        ("epoch_loss", "loss", train), ("epoch_accuracy", "accuracy", train), ("epoch_learning_rate", "lr", train),
        ("epoch_loss", "val_loss", val), ("epoch_accuracy", "val_accuracy", val),
    ):
        steps, values = _series(acc, tag)
        assert steps == history.steps, tag
        np.testing.assert_allclose(values, history[key], rtol=1e-6, err_msg=key)
    assert _series(train, "epoch") == ([8, 16, 24], [1.0, 2.0, 3.0])
    assert "epoch_time" in train.Tags()["scalars"]
    assert sorted(val.Tags()["scalars"]) == ["epoch_accuracy", "epoch_loss"]  # validation only has epoch rows

    # Histograms every second epoch: after epoch 2 only (step 16), weights and gradients of each parameter.
    assert sorted(train.Tags()["histograms"]) == sorted(
        [f"weights/{p}" for p in PARAMS] + [f"gradients/{p}" for p in PARAMS]
    )
    for name, p in trainer.model.named_parameters():
        (event,) = train.Histograms(f"weights/{name}")
        assert event.step == 16
        h = event.histogram_value
        assert h.num == p.data.size and sum(h.bucket) == p.data.size
        assert len(h.bucket) == len(h.bucket_limit)
        (grad_event,) = train.Histograms(f"gradients/{name}")
        assert grad_event.step == 16 and grad_event.histogram_value.num == p.grad.size


def test_final_histograms_match_the_weights(tmp_path: Path) -> None:
    tb = TensorBoard(tmp_path, histogram_freq=1, ratio_freq=0, update_freq="epoch")
    trainer = _trainer([tb])
    trainer.fit(_loaders()[0], epochs=2)
    train = _read(tmp_path / "train")
    assert "batch_loss" not in train.Tags()["scalars"]  # update_freq="epoch"
    assert not (tmp_path / "validation").exists()  # no validation loader, no empty run
    for name, p in trainer.model.named_parameters():
        events = train.Histograms(f"weights/{name}")
        assert [e.step for e in events] == [8, 16]
        h = events[-1].histogram_value
        w = p.data.astype(np.float64)
        np.testing.assert_allclose([h.min, h.max, h.sum, h.sum_squares], [w.min(), w.max(), w.sum(), (w**2).sum()],
                                   rtol=1e-9, atol=1e-12)


class _Weights(Callback):
    """Records every parameter before and after each step (the test's own update ratios)."""

    def __init__(self) -> None:
        super().__init__()
        self.before: dict[str, np.ndarray] = {}
        self.ratios: dict[int, dict[str, float]] = {}

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.before = {n: p.data.copy() for n, p in self.model.named_parameters()}

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = self.trainer.global_step
        self.ratios[step] = {
            n: float(np.linalg.norm(p.data - self.before[n]) / np.linalg.norm(self.before[n]))
            for n, p in self.model.named_parameters()
        }


def test_update_ratios_every_k_steps(tmp_path: Path) -> None:
    probe = _Weights()
    tb = TensorBoard(tmp_path, ratio_freq=3, histogram_freq=0)
    # A nonzero bias from the start, so every parameter has a ratio at every logged step.
    trainer = _trainer([probe, tb], optimizer=lambda m: SGD(m.parameters(), lr=0.1, momentum=0.9))
    for _, p in trainer.model.named_parameters():
        p.data += np.float32(0.1)
    trainer.fit(_loaders()[0], epochs=2)
    train = _read(tmp_path / "train")
    for name in PARAMS:
        steps, values = _series(train, f"update_ratio/{name}")
        assert steps == [3, 6, 9, 12, 15]
        np.testing.assert_allclose(values, [probe.ratios[s][name] for s in steps], rtol=1e-5, err_msg=name)
        assert all(0 < v < 1 for v in values)


def test_accumulation_logs_one_point_per_update_with_its_mean_loss(tmp_path: Path) -> None:
    tb = TensorBoard(tmp_path, histogram_freq=0, ratio_freq=2)
    trainer = _trainer([tb], accumulate=2)
    train_loader = DataLoader(X[:96], Y[:96], batch_size=16, shuffle=False)  # 6 batches: 3 updates
    trainer.fit(train_loader, epochs=1)
    train = _read(tmp_path / "train")
    steps, values = _series(train, "batch_loss")
    assert steps == [1, 2, 3]
    losses = trainer.history.batch_loss
    np.testing.assert_allclose(values, [(losses[i] + losses[i + 1]) / 2 for i in (0, 2, 4)], rtol=1e-6)
    assert _series(train, "update_ratio/0.weight")[0] == [2]


class Killed(Exception):
    """Stands for SIGKILL: nothing after the raise runs."""


class _Kill(Callback):
    def __init__(self, at: int | None) -> None:
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.trainer.global_step == self.at:
            raise Killed


def test_a_resumed_run_shows_each_step_once_with_the_uninterrupted_values(tmp_path: Path) -> None:
    def build(run: RunDir, kill_at: int | None) -> tuple[Trainer, TensorBoard]:
        tb = TensorBoard(histogram_freq=1, ratio_freq=4)
        return _trainer([tb, _Kill(kill_at)], run_dir=run, checkpoint_every=5), tb

    reference, _ = build(RunDir.create(tmp_path / "reference"), None)
    reference.fit(*_loaders(), epochs=3)

    run = RunDir.create(tmp_path / "run")
    killed, killed_tb = build(run, 13)  # checkpoints at steps 5, 8 (epoch end), 10; killed after 13
    with pytest.raises(Killed):
        killed.fit(*_loaders(), epochs=3)
    killed_tb._close()  # the worst case: steps 11-13 reached the disk before the kill
    assert max(_series(_read(run.path / "tensorboard" / "train"), "batch_loss")[0]) == 13
    resumed, _ = build(run, None)
    resumed.fit(*_loaders(), epochs=3, resume_from=run)

    assert len(list((run.path / "tensorboard" / "train").glob("*tfevents*"))) == 2  # appended, not replaced
    got = {name: _read(run.path / "tensorboard" / name) for name in ("train", "validation")}
    want = {name: _read(tmp_path / "reference" / "tensorboard" / name) for name in ("train", "validation")}
    for name in ("train", "validation"):
        assert sorted(got[name].Tags()["scalars"]) == sorted(want[name].Tags()["scalars"])
        for tag in want[name].Tags()["scalars"]:
            steps, values = _series(got[name], tag)
            ref_steps, ref_values = _series(want[name], tag)
            assert steps == ref_steps, (name, tag)  # no step twice, none missing
            if tag != "epoch_time":
                np.testing.assert_array_equal(values, ref_values, err_msg=f"{name} {tag}")
    for tag in want["train"].Tags()["histograms"]:
        assert [e.step for e in got["train"].Histograms(tag)] == [8, 16, 24]


def test_needs_a_place_to_write_and_checks_its_arguments() -> None:
    trainer = _trainer([TensorBoard()])
    with pytest.raises(ValueError, match="TensorBoard: give log_dir"):
        trainer.fit(_loaders()[0], epochs=1)
    for kwargs, name in (({"update_freq": -1}, "update_freq"), ({"update_freq": "batch"}, "update_freq"),
                         ({"histogram_freq": 1.5}, "histogram_freq"), ({"ratio_freq": True}, "ratio_freq"),
                         ({"bins": 0}, "bins"), ({"flush_secs": 0}, "flush_secs")):
        with pytest.raises(ValueError, match=name):
            TensorBoard(**kwargs)


def test_train_tensorboard_true_in_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text(spiral_cli_config(2) + "tensorboard = true\n")
    assert main(["train", "--no-progress", str(config), "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    train = _read(tmp_path / "run" / "tensorboard" / "train")
    steps, _ = _series(train, "epoch_loss")
    assert len(steps) == 2 and steps[-1] == len(_series(train, "batch_loss")[0])
    assert {f"weights/{p}" for p in ("0.weight", "3.weight")} <= set(train.Tags()["histograms"])
    assert _series(_read(tmp_path / "run" / "tensorboard" / "validation"), "epoch_loss")[0] == steps

    config.write_text(spiral_cli_config(2) + 'tensorboard = "yes"\n')
    assert main(["train", "--no-progress", str(config), "--out", str(tmp_path / "bad")]) == 2
    assert "[train] tensorboard = 'yes' must be true or false" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
