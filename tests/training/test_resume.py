"""Exact resume (gradwise/training/checkpoint.py through `Trainer.fit(resume_from=...)`).

A run is "killed" in-process by a callback that raises after a given optimizer step; a fresh
model, optimizer, loader and trainer built from the same seed then resume from the run directory,
and the final weights must equal those of an uninterrupted run bit for bit. The command line's
``gradwise train --resume`` is tested at the end (the subprocess soak test is in tests/bench/).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gradwise as gw
from gradwise.cli.__main__ import main
from gradwise.data import make_spiral
from gradwise.data.loader import DataLoader
from gradwise.layers import BatchNorm1d, Dropout, Linear, ReLU
from gradwise.losses import L2, SoftmaxCrossEntropy
from gradwise.optim import SGD, Adam, schedules
from gradwise.training import Callback, RunDir, Trainer, checkpoint
from gradwise.training.callbacks import EMA, EarlyStopping
from gradwise.training.metrics import accuracy
from helpers import spiral_cli_config

# Runs without validation choose their best checkpoint by the training loss, and say so.
pytestmark = pytest.mark.filterwarnings("ignore:Trainer. monitor='val_loss' needs a val_loader")

X, Y = make_spiral(40, 3, 0.3, rng=np.random.default_rng(0))  # 120 samples: 8 batches of 16, the last of 8
EPOCHS = 3


@pytest.fixture(autouse=True)
def _no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run directories' plots are tested elsewhere; drawing them would triple these tests' time."""
    monkeypatch.setattr("gradwise.viz.plot_run", lambda *args, **kwargs: [])


class Killed(Exception):
    """Stands for SIGKILL: nothing after the raise runs."""


class Kill(Callback):
    """Raises `Killed` right after optimizer step `at` (None: never)."""

    def __init__(self, at: int | None) -> None:
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        assert self.trainer is not None
        if self.trainer.global_step == self.at:
            raise Killed(self.at)


@dataclass(frozen=True)
class Setup:
    """How to build one run; `build` is called afresh for the reference, the killed and the resumed run."""

    name: str
    model: Callable[[], gw.Sequential]
    optimizer: Callable[[gw.Sequential], Any]
    shuffle: bool = True
    accumulate: int = 1
    extra: dict[str, Any] | None = None
    callbacks: Callable[[], list[Callback]] = list


def _mlp() -> gw.Sequential:
    return gw.Sequential(Linear(2, 16), ReLU(), Dropout(0.25), Linear(16, 3))


def _bn() -> gw.Sequential:
    return gw.Sequential(Linear(2, 16), BatchNorm1d(16), ReLU(), Linear(16, 3))


SETUPS = [
    Setup(
        "plain-sgd",
        lambda: gw.Sequential(Linear(2, 8), ReLU(), Linear(8, 3)),
        lambda m: SGD(m.parameters(), lr=0.1),
        shuffle=False,
    ),
    Setup(
        "dropout-shuffle-cosine-adam",
        _mlp,
        lambda m: Adam(m.parameters(), lr=schedules.cosine(1e-2, total_steps=EPOCHS * 8)),
    ),
    Setup(
        "batchnorm-momentum-penalty-clip",
        _bn,
        lambda m: SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True),
        extra={"penalty": L2(1e-3), "clip_grad_norm": 1.0},
    ),
    Setup("accumulate-3", _mlp, lambda m: Adam(m.parameters(), lr=1e-2), accumulate=3),
    Setup(
        "ema-earlystopping",
        _mlp,
        lambda m: Adam(m.parameters(), lr=1e-2),
        callbacks=lambda: [EMA(decay=0.9), EarlyStopping(monitor="val_loss", patience=10)],
    ),
]


def _build(setup: Setup, run: RunDir | None, kill_at: int | None = None, every: int | None = 5):
    gw.manual_seed(11)
    model = setup.model()
    loader = DataLoader(X, Y, batch_size=16, shuffle=setup.shuffle)
    trainer = Trainer(
        model,
        SoftmaxCrossEntropy(),
        setup.optimizer(model),
        metrics=[accuracy],
        callbacks=[*setup.callbacks(), Kill(kill_at)],
        progress=False,
        run_dir=run,
        checkpoint_every=every if run is not None else None,
        accumulate=setup.accumulate,
        **(setup.extra or {}),
    )
    return trainer, loader, DataLoader(X[:30], Y[:30], batch_size=64)


def _reference(setup: Setup, tmp_path: Path, epochs: int = EPOCHS) -> Trainer:
    trainer, loader, val = _build(setup, RunDir.create(tmp_path / "reference"))
    trainer.fit(loader, val, epochs=epochs)
    return trainer


def _killed_then_resumed(setup: Setup, tmp_path: Path, kills: list[int], epochs: int = EPOCHS) -> Trainer:
    run = RunDir.create(tmp_path / "run")
    for i, at in enumerate(kills):
        trainer, loader, val = _build(setup, run, kill_at=at)
        with pytest.raises(Killed):
            trainer.fit(loader, val, epochs=epochs, resume_from=None if i == 0 else run)
    trainer, loader, val = _build(setup, run)
    trainer.fit(loader, val, epochs=epochs, resume_from=run)
    return trainer


def _same_state(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return sorted(a) == sorted(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def _rows(trainer: Trainer) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "time"} for row in trainer.history.epochs]


def _assert_identical(ref: Trainer, out: Trainer) -> None:
    assert _same_state(ref.model.state_dict(), out.model.state_dict())
    assert (out.global_step, out.epoch) == (ref.global_step, ref.epoch)
    assert out.optimizer.step_count == ref.optimizer.step_count
    a, b = ref.optimizer.state_dict()["state"], out.optimizer.state_dict()["state"]
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[p][k], b[p][k]) for p in a for k in a[p])
    assert out.history.batch_loss == ref.history.batch_loss
    assert _rows(out) == _rows(ref)
    assert out.history.steps == ref.history.steps
    assert (out.best_value, out.best_epoch) == (ref.best_value, ref.best_epoch)


# ------------------------------------------------------------------------------------ exact resume


@pytest.mark.parametrize("setup", SETUPS, ids=lambda s: s.name)
def test_killed_mid_epoch_resumes_bit_for_bit(setup: Setup, tmp_path: Path) -> None:
    ref = _reference(setup, tmp_path)
    # 8 batches per epoch (3 updates with accumulate=3). The kill comes one step after a mid-epoch
    # checkpoint (step 10, or 5 with accumulation), so the resumed epoch starts at its 3rd batch
    # (its 7th) with the saved order, dropout masks and partial-epoch metrics.
    out = _killed_then_resumed(setup, tmp_path, kills=[6 if setup.accumulate > 1 else 11])
    _assert_identical(ref, out)
    run, reference = RunDir(tmp_path / "run"), RunDir(tmp_path / "reference")
    for name in ("best", "last"):
        assert _same_state(run.load_weights(name), reference.load_weights(name))
    for a, b in zip(ref.callbacks, out.callbacks):
        if isinstance(a, EMA):
            assert _same_state(a.shadow, b.shadow)


def test_killed_several_times_including_at_epoch_boundaries(tmp_path: Path) -> None:
    setup = SETUPS[1]
    ref = _reference(setup, tmp_path, epochs=4)
    # 8: the last batch of epoch 0, before its epoch-end checkpoint (resumed from step 5);
    # 9: just after that checkpoint; then kills in later epochs, each resuming a resumed run.
    out = _killed_then_resumed(setup, tmp_path, kills=[8, 9, 20, 29], epochs=4)
    _assert_identical(ref, out)
    untimed = [{k: v for k, v in row.items() if k != "time"} for row in RunDir(tmp_path / "run").read_history()]
    assert untimed == _rows(ref)


def test_history_csv_is_rewritten_from_the_checkpoint(tmp_path: Path) -> None:
    setup = SETUPS[0]
    run = RunDir.create(tmp_path / "run")
    trainer, loader, val = _build(setup, run, every=None)
    trainer.fit(loader, val, epochs=2)
    # Rewind by hand to the first epoch's checkpoint: the second row of history.csv is "the future".
    first = checkpoint.list_checkpoints(run)[0]
    trainer, loader, val = _build(setup, run, every=None)
    trainer.fit(loader, val, epochs=2, resume_from=first)
    rows = run.read_history()
    assert [r["epoch"] for r in rows] == [0, 1]
    assert checkpoint.latest_checkpoint(run).name == "step-00000016-end"  # type: ignore[union-attr]


def test_resuming_from_an_older_checkpoint_drops_the_newer_ones(tmp_path: Path) -> None:
    setup = SETUPS[0]
    ref = _reference(setup, tmp_path)
    run = RunDir.create(tmp_path / "run")
    trainer, loader, val = _build(setup, run, every=None)
    trainer.fit(loader, val, epochs=EPOCHS)
    older = checkpoint.list_checkpoints(run)[0]
    assert older.name == "step-00000016-end"
    trainer, loader, val = _build(setup, run, kill_at=20, every=None)
    with pytest.raises(Killed):
        trainer.fit(loader, val, epochs=EPOCHS, resume_from=older)
    # Rewound: step 16 is `latest` again, step 24 (the abandoned continuation) is gone.
    assert [p.name for p in checkpoint.list_checkpoints(run)] == ["step-00000016-end"]
    trainer, loader, val = _build(setup, run, every=None)
    trainer.fit(loader, val, epochs=EPOCHS, resume_from=run)
    _assert_identical(ref, trainer)


def test_a_finished_run_resumed_with_more_epochs_equals_a_longer_run(tmp_path: Path) -> None:
    setup = SETUPS[0]  # a constant learning rate: the schedule does not depend on the epochs
    ref = _reference(setup, tmp_path, epochs=5)
    run = RunDir.create(tmp_path / "run")
    trainer, loader, val = _build(setup, run)
    trainer.fit(loader, val, epochs=3)
    trainer, loader, val = _build(setup, run)
    trainer.fit(loader, val, epochs=5, resume_from=run)
    _assert_identical(ref, trainer)
    # Resuming a finished run with the same epochs trains nothing and changes nothing.
    again, loader, val = _build(setup, run)
    again.fit(loader, val, epochs=5, resume_from=run)
    assert _same_state(again.model.state_dict(), ref.model.state_dict()) and again.global_step == 40


class StopAfter(Callback):
    """Sets stop_training at the end of epoch `epoch` (EarlyStopping's way of ending a run)."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch == self.epoch:
            self.trainer.stop_training = True  # type: ignore[union-attr]


def test_a_run_that_stopped_early_stays_stopped_when_resumed(tmp_path: Path) -> None:
    """Killed after an early stop (say, while drawing the plots): resuming must not train on."""
    setup = Setup("stops", _mlp, lambda m: Adam(m.parameters(), lr=1e-2), callbacks=lambda: [StopAfter(1)])
    ref = _reference(setup, tmp_path, epochs=5)
    assert ref.epoch == 2 and ref.run_summary["status"] == "stopped"
    run = RunDir.create(tmp_path / "run")
    trainer, loader, val = _build(setup, run)
    trainer.fit(loader, val, epochs=5)
    resumed, loader, val = _build(setup, run)
    resumed.fit(loader, val, epochs=5, resume_from=run)
    _assert_identical(ref, resumed)
    assert resumed.run_summary["status"] == "stopped"


def test_resume_without_a_run_directory_and_with_a_plain_iterable(tmp_path: Path) -> None:
    """A loader without `resume` (a list of batches) has its first batches skipped."""
    setup = SETUPS[0]
    batches = list(DataLoader(X, Y, batch_size=16))
    ref, _, _ = _build(setup, None)
    ref.fit(batches, epochs=2)
    run = RunDir.create(tmp_path / "run")
    trainer, _, _ = _build(setup, run, kill_at=11)
    with pytest.raises(Killed):
        trainer.fit(batches, epochs=2)
    trainer, _, _ = _build(setup, None)  # restores without writing anything
    trainer.fit(batches, epochs=2, resume_from=run)
    assert _same_state(trainer.model.state_dict(), ref.model.state_dict())
    assert trainer.history.batch_loss == ref.history.batch_loss


# ------------------------------------------------------------------------------------ refusals


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def killed_run(tmp_path: Path) -> RunDir:
    """A run of SETUPS[1] killed after step 11 (latest checkpoint: step 10, mid-epoch)."""
    run = RunDir.create(tmp_path / "run")
    trainer, loader, val = _build(SETUPS[1], run, kill_at=11)
    with pytest.raises(Killed):
        trainer.fit(loader, val, epochs=EPOCHS)
    return run


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t, ld: t.fit(ld, epochs=1, resume_from=t.run_dir), r"epochs=1 ends at epoch 1.*epoch 2, batch 2"),
        (lambda t, ld: t.callbacks.append(EMA()), r"stateful callbacks \[\].*\['EMA'\]"),
        (lambda t, ld: setattr(ld, "shuffle", False), r"shuffle=False"),
        (lambda t, ld: setattr(t, "accumulate", 2), r"accumulate=1, the trainer has 2"),
        (lambda t, ld: setattr(t.model[2], "rng", None), r"random generators"),
        (lambda t, ld: t.metrics.clear(), r"trained with metrics, the trainer has \[\]"),
    ],
    ids=["epochs-too-few", "new-callback", "loader-no-longer-shuffles", "accumulate", "dropout-generator", "metrics"],
)
def test_a_mismatch_changes_nothing(killed_run: RunDir, change, match: str) -> None:
    trainer, loader, val = _build(SETUPS[1], killed_run)
    before_disk = _snapshot(killed_run.path)
    before_model = trainer.model.state_dict()
    before_rng = gw.random.default_rng().bit_generator.state
    with pytest.raises(ValueError, match=match):
        change(trainer, loader)
        trainer.fit(loader, val, epochs=EPOCHS, resume_from=killed_run)
    assert _snapshot(killed_run.path) == before_disk
    assert _same_state(trainer.model.state_dict(), before_model)
    assert trainer.optimizer.state == {} and trainer.global_step == 0 and trainer.history.batch_loss == []
    assert gw.random.default_rng().bit_generator.state == before_rng


def test_trainer_arguments_are_checked(tmp_path: Path) -> None:
    model = _mlp()
    for kwargs, match in (
        ({"checkpoint_every": 0, "run_dir": tmp_path / "a"}, "checkpoint_every=0"),
        ({"checkpoint_every": 2.0, "run_dir": tmp_path / "b"}, "checkpoint_every=2.0"),
        ({"checkpoint_every": 5}, "needs a run_dir"),
        ({"accumulate": 0}, "accumulate=0"),
        ({"accumulate": True}, "accumulate=True"),
    ):
        with pytest.raises(ValueError, match=match):
            Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), progress=False, **kwargs)


# ------------------------------------------------------------------------------------ command line
# (`gradwise train --resume`; they live here, next to the in-process resume tests they mirror)

CONFIG = spiral_cli_config(epochs=4)


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["train", "--no-progress", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_resume_continues_to_the_same_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    assert _cli([str(cfg), "--out", str(tmp_path / "ref")], capsys)[0] == 0
    assert _cli([str(cfg), "--out", str(tmp_path / "run"), "--epochs", "2"], capsys)[0] == 0
    # config.toml says epochs = 2 now; --epochs 4 continues to the reference's total.
    code, out, err = _cli(["--resume", str(tmp_path / "run"), "--epochs", "4"], capsys)
    assert code == 0, err
    assert "resuming from" in out and "step-00000012-end" in out
    ref, run = RunDir(tmp_path / "ref"), RunDir(tmp_path / "run")
    assert _same_state(ref.load_weights("last"), run.load_weights("last"))
    assert [r["loss"] for r in ref.read_history()] == [r["loss"] for r in run.read_history()]
    assert run.read_metrics()["test"] == ref.read_metrics()["test"]


def test_cli_resume_before_the_first_checkpoint_starts_over(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    assert _cli([str(cfg), "--out", str(tmp_path / "ref")], capsys)[0] == 0
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_bytes((tmp_path / "ref" / "config.toml").read_bytes())
    (run / "history.csv").write_text("epoch,loss\n0,9.0\n")  # a row the killed run wrote before its checkpoint
    code, out, _ = _cli(["--resume", str(run)], capsys)
    assert code == 0 and "no checkpoint yet" in out
    assert _same_state(RunDir(run).load_weights("last"), RunDir(tmp_path / "ref").load_weights("last"))
    assert len(RunDir(run).read_history()) == 4


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--set", "optimizer.lr=0.1"], "--resume continues a run with its own config.toml"),
        (["CONFIG"], "--resume continues a run with its own config.toml"),
        (["--out", "elsewhere"], "--resume continues a run with its own config.toml"),
    ],
)
def test_cli_resume_refuses_a_new_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra, match) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    run = tmp_path / "run"
    assert _cli([str(cfg), "--out", str(run), "--epochs", "1"], capsys)[0] == 0
    before = _snapshot(run)
    code, _, err = _cli(["--resume", str(run), *[str(cfg) if e == "CONFIG" else e for e in extra]], capsys)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert _snapshot(run) == before


def test_cli_resume_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(["--resume", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "not a run directory" in err
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    run = tmp_path / "run"
    assert _cli([str(cfg), "--out", str(run), "--epochs", "1"], capsys)[0] == 0
    latest = checkpoint.latest_checkpoint(run)
    assert latest is not None
    weights = latest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    before = _snapshot(run)
    code, _, err = _cli(["--resume", str(run)], capsys)
    assert code == 2 and str(weights) in err and "truncated" in err
    assert _snapshot(run) == before
