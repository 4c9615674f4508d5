"""Resuming past a damaged checkpoint (gradwise/training/checkpoint/fallback.py, issue 15).

A run of 3 epochs keeps ``step-00000016-end`` and ``step-00000024-end``. The newest is damaged in
each way a disk, a copy or a bad sector can damage it; `Trainer.fit(resume_from=RUN)` (and
``gradwise train --resume``) must then say so, set it aside as ``*.corrupt`` (never delete it),
continue from the older one, and end with weights bit-identical to a copy of the run resumed
explicitly from that older checkpoint, and to the uninterrupted run.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gradwise as gw
from gradwise.cli.__main__ import main
from gradwise.data import make_spiral
from gradwise.data.loader import DataLoader
from gradwise.layers import Dropout, Linear, ReLU
from gradwise.losses import SoftmaxCrossEntropy
from gradwise.optim import Adam, schedules
from gradwise.training import RunDir, Trainer, checkpoint
from gradwise.training.callbacks import EMA
from gradwise.training.checkpoint import CorruptCheckpoint, NoIntactCheckpoint, ResumeWarning
from gradwise.training.metrics import accuracy
from helpers import spiral_cli_config

pytestmark = pytest.mark.filterwarnings("ignore:Trainer. monitor='val_loss' needs a val_loader")

X, Y = make_spiral(40, 3, 0.3, rng=np.random.default_rng(0))  # 120 samples: 8 batches of 16
EPOCHS = 3
NEWEST, OLDER = "step-00000024-end", "step-00000016-end"


def _build(run: RunDir | None, keep: int = 2, hidden: int = 16) -> tuple[Trainer, DataLoader, DataLoader]:
    gw.manual_seed(11)
    model = gw.Sequential(Linear(2, hidden), ReLU(), Dropout(0.25), Linear(hidden, 3))
    opt = Adam(model.parameters(), lr=schedules.cosine(1e-2, total_steps=EPOCHS * 8))
    trainer = Trainer(
        model, SoftmaxCrossEntropy(), opt, metrics=[accuracy], callbacks=[EMA(decay=0.9)], progress=False,
        run_dir=run, keep_checkpoints=keep,
    )
    return trainer, DataLoader(X, Y, batch_size=16, shuffle=True), DataLoader(X[:30], Y[:30], batch_size=64)


@pytest.fixture
def finished(tmp_path: Path) -> RunDir:
    """The uninterrupted run: 3 epochs, 24 steps, checkpoints at the end of epochs 2 and 3 kept."""
    run = RunDir.create(tmp_path / "run")
    trainer, loader, val = _build(run)
    trainer.fit(loader, val, epochs=EPOCHS)
    assert [p.name for p in checkpoint.list_checkpoints(run)] == [OLDER, NEWEST]
    return run


def _state(trainer: Trainer) -> dict[str, Any]:
    opt = trainer.optimizer.state_dict()["state"]
    return {
        "model": trainer.model.state_dict(),
        "optimizer": {f"{p}/{k}": v for p in opt for k, v in opt[p].items()},
        "ema": next(cb for cb in trainer.callbacks if isinstance(cb, EMA)).shadow,
        "steps": (trainer.global_step, trainer.epoch, trainer.optimizer.step_count),
        "batch_loss": trainer.history.batch_loss,
        "rows": [{k: v for k, v in row.items() if k != "time"} for row in trainer.history.epochs],
    }


def _assert_identical(a: dict[str, Any], b: dict[str, Any]) -> None:
    for part in ("model", "optimizer", "ema"):
        assert sorted(a[part]) == sorted(b[part])
        for k in a[part]:
            x, y = np.asarray(a[part][k]), np.asarray(b[part][k])
            assert x.dtype == y.dtype and np.array_equal(x, y), (part, k)
    assert a["steps"] == b["steps"] and a["batch_loss"] == b["batch_loss"] and a["rows"] == b["rows"]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------ damage


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _tensor_offset(path: Path, key: str) -> int:
    """The file offset of the middle of tensor `key`'s data in a safetensors file."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    start, end = json.loads(data[8 : 8 + n])[key]["data_offsets"]
    return 8 + n + (start + end) // 2


def flip_weights(ckpt: Path) -> str:
    path = ckpt / "model.safetensors"
    _flip(path, _tensor_offset(path, "0.weight"))
    return r"model\.safetensors is corrupted: its size or SHA-256 differs"


def flip_optimizer_state(ckpt: Path) -> str:
    path = ckpt / "state.safetensors"
    _flip(path, _tensor_offset(path, "optimizer/state_dict/state/0.weight/exp_avg"))
    return r"state\.safetensors is corrupted: its size or SHA-256 differs"


def truncate(ckpt: Path) -> str:
    path = ckpt / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size - 7])
    return r"model\.safetensors is truncated: \d+ bytes, \d+ when it was written"


def drop_manifest(ckpt: Path) -> str:
    (ckpt / "manifest.json").unlink()
    return r"manifest\.json is missing: .* is not a complete checkpoint"


def remove_directory(ckpt: Path) -> str:
    shutil.rmtree(ckpt)
    return rf"latest names '{NEWEST}', but .*{NEWEST} is missing"


DAMAGE = [flip_weights, flip_optimizer_state, truncate, drop_manifest, remove_directory]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_resume_falls_back_to_the_older_checkpoint_bit_for_bit(
    finished: RunDir, tmp_path: Path, damage: Callable[[Path], str]
) -> None:
    reference = _state(_resumed(finished, None))  # trained from scratch, never interrupted
    # The same run resumed explicitly from the older step, in a copy made before the damage.
    copy = RunDir(shutil.copytree(finished.path, tmp_path / "copy"))
    explicit = _resumed(copy, copy.checkpoints_dir / OLDER)
    newest = finished.checkpoints_dir / NEWEST
    match = damage(newest)
    damaged = _snapshot(newest) if newest.is_dir() else None

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _resumed(finished, finished.path)
    messages = [str(w.message) for w in caught if issubclass(w.category, ResumeWarning)]
    assert len(messages) == 2 and all("\n" not in m for m in messages)
    assert str(newest) in messages[0] or str(finished.checkpoints_dir / "latest") in messages[0]
    assert re.search(match, messages[0]), messages[0]
    assert messages[0].endswith("; trying the next older checkpoint")
    assert messages[1] == f"resuming from {finished.checkpoints_dir / OLDER}, the newest checkpoint that verifies"

    out = _state(trainer)
    _assert_identical(out, _state(explicit))
    _assert_identical(out, reference)
    # The damaged checkpoint is kept, renamed, byte for byte as it was found.
    aside = finished.checkpoints_dir / f"{NEWEST}.corrupt"
    if damaged is None:  # nothing left to keep
        assert not aside.exists()
    else:
        assert _snapshot(aside) == damaged
    # The rerun wrote step 24 afresh and points `latest` at it; the files were rewound and redone.
    assert checkpoint.latest_checkpoint(finished).name == NEWEST  # type: ignore[union-attr]
    assert [p.name for p in checkpoint.list_checkpoints(finished)] == [OLDER, NEWEST]
    checkpoint.load_checkpoint(finished.path)
    untimed = [{k: v for k, v in r.items() if k != "time"} for r in finished.read_history()]
    assert untimed == out["rows"] and len(untimed) == EPOCHS
    batch_losses = (finished.path / "batch_loss.csv").read_text().splitlines()
    assert batch_losses == (copy.path / "batch_loss.csv").read_text().splitlines()
    assert len(batch_losses) == 1 + EPOCHS * 8


def _resumed(run: RunDir, source: Path | None, epochs: int = EPOCHS, **kwargs: Any) -> Trainer:
    """A fresh trainer on `run`, resumed from `source` (None: trained from scratch elsewhere)."""
    if source is None:
        trainer, loader, val = _build(None)
        trainer.fit(loader, val, epochs=epochs)
        return trainer
    trainer, loader, val = _build(RunDir(run.path), **kwargs)
    trainer.fit(loader, val, epochs=epochs, resume_from=source)
    return trainer


def test_a_set_aside_checkpoint_is_never_picked_or_pruned(finished: RunDir) -> None:
    newest = finished.checkpoints_dir / NEWEST
    flip_weights(newest)
    damaged = _snapshot(newest)
    with pytest.warns(ResumeWarning):
        _resumed(finished, finished.path, epochs=5)  # trains on: 16 more steps, 2 more checkpoints
    assert [p.name for p in checkpoint.list_checkpoints(finished)] == ["step-00000032-end", "step-00000040-end"]
    assert _snapshot(finished.checkpoints_dir / f"{NEWEST}.corrupt") == damaged
    assert checkpoint.latest_checkpoint(finished).name == "step-00000040-end"  # type: ignore[union-attr]


def test_the_same_checkpoint_damaged_twice_keeps_both_copies(finished: RunDir) -> None:
    for _ in range(2):
        flip_weights(finished.checkpoints_dir / NEWEST)
        with pytest.warns(ResumeWarning):
            _resumed(finished, finished.path)  # redoes epoch 3 and writes step 24 again
    names = sorted(p.name for p in finished.checkpoints_dir.iterdir() if "corrupt" in p.name)
    assert names == [f"{NEWEST}.corrupt", f"{NEWEST}.corrupt-2"]


def test_an_unreadable_latest_falls_back_to_the_newest_checkpoint(finished: RunDir) -> None:
    (finished.checkpoints_dir / "latest").write_bytes(b"\xff\xfe not a name")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _resumed(finished, finished.path)
    messages = [str(w.message) for w in caught if issubclass(w.category, ResumeWarning)]
    unreadable = r".*/latest is unreadable \(.*\); it should hold a name like step-00000042; trying .*"
    assert re.fullmatch(unreadable, messages[0]), messages[0]
    assert messages[1].startswith(f"resuming from {finished.checkpoints_dir / NEWEST}")
    assert trainer.global_step == 24
    assert checkpoint.latest_checkpoint(finished).name == NEWEST  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------ when it stops


def test_strict_resume_stops_at_the_damage_and_changes_nothing(finished: RunDir) -> None:
    flip_weights(finished.checkpoints_dir / NEWEST)
    before = _snapshot(finished.path)
    trainer, loader, val = _build(RunDir(finished.path))
    with pytest.raises(CorruptCheckpoint, match=r"step-00000024-end/model\.safetensors is corrupted"):
        trainer.fit(loader, val, epochs=EPOCHS, resume_from=finished.path, strict_resume=True)
    assert _snapshot(finished.path) == before and trainer.global_step == 0


def test_no_intact_checkpoint_lists_what_was_tried_and_changes_nothing(finished: RunDir) -> None:
    flip_weights(finished.checkpoints_dir / NEWEST)
    drop_manifest(finished.checkpoints_dir / OLDER)
    before = _snapshot(finished.path)
    trainer, loader, val = _build(RunDir(finished.path))
    with pytest.raises(NoIntactCheckpoint) as info:
        trainer.fit(loader, val, epochs=EPOCHS, resume_from=finished.path)
    message = str(info.value)
    assert "\n" not in message and f"no intact checkpoint to resume from in {finished.checkpoints_dir}" in message
    assert (
        f"tried {NEWEST} (model.safetensors is corrupted); {OLDER} (manifest.json is missing)" in message
    )
    assert [str(r.path) for r in info.value.rejected] == [
        str(finished.checkpoints_dir / NEWEST),
        str(finished.checkpoints_dir / OLDER),
    ]
    assert _snapshot(finished.path) == before and trainer.global_step == 0


def test_keep_checkpoints_1_leaves_nothing_to_fall_back_to(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    trainer, loader, val = _build(run, keep=1)
    trainer.fit(loader, val, epochs=EPOCHS)
    assert [p.name for p in checkpoint.list_checkpoints(run)] == [NEWEST]
    flip_weights(run.checkpoints_dir / NEWEST)
    with pytest.raises(NoIntactCheckpoint, match=rf"tried {NEWEST} \(model\.safetensors is corrupted\);"):
        _resumed(run, run.path, keep=1)


def test_keep_checkpoints_3_keeps_three(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    trainer, loader, val = _build(run, keep=3)
    trainer.fit(loader, val, epochs=EPOCHS)
    assert [p.name for p in checkpoint.list_checkpoints(run)] == ["step-00000008-end", OLDER, NEWEST]
    with pytest.raises(ValueError, match="keep_checkpoints=0 must be an integer >= 1"):
        _build(None, keep=0)


def test_a_checkpoint_that_does_not_fit_is_not_a_reason_to_fall_back(finished: RunDir) -> None:
    """Damage falls back; a different model or a newer format stops at once, and renames nothing."""
    flip_weights(finished.checkpoints_dir / NEWEST)
    before = _snapshot(finished.path)
    with pytest.raises(ValueError, match=rf"{OLDER}/model\.safetensors does not match the model"):
        with pytest.warns(ResumeWarning):
            _resumed(finished, finished.path, hidden=8)
    assert _snapshot(finished.path) == before

    manifest = finished.checkpoints_dir / OLDER / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "version": 99}))
    (finished.checkpoints_dir / "latest").write_text(f"{OLDER}\n")
    with pytest.raises(ValueError, match="version 99.*upgrade gradwise") as info:
        _resumed(finished, finished.path)
    assert not isinstance(info.value, CorruptCheckpoint)


def test_an_explicit_checkpoint_is_that_one_only(finished: RunDir) -> None:
    flip_weights(finished.checkpoints_dir / OLDER)
    with pytest.raises(CorruptCheckpoint, match=rf"{OLDER}/model\.safetensors is corrupted"):
        _resumed(finished, finished.checkpoints_dir / OLDER)


# ------------------------------------------------------------------------------------ command line

CONFIG = spiral_cli_config(epochs=3)


CLI_NEWEST, CLI_OLDER = "step-00000018-end", "step-00000012-end"  # 6 steps per epoch


@pytest.fixture
def cli_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("gradwise.viz.plot_run", lambda *args, **kwargs: [])
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    run = tmp_path / "run"
    assert main(["train", "--no-progress", str(cfg), "--out", str(run)]) == 0
    capsys.readouterr()
    return run


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["train", "--no-progress", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_resume_falls_back_and_says_so(cli_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckdir = cli_run / "checkpoints"
    final = RunDir(cli_run).load_weights("last")
    flip_weights(ckdir / CLI_NEWEST)
    code, out, err = _cli(["--resume", str(cli_run)], capsys)
    assert code == 0, err
    assert err.splitlines() == [
        f"gradwise: {ckdir / CLI_NEWEST / 'model.safetensors'} is corrupted: its size or SHA-256 differs from those "
        f"recorded in manifest.json when it was written; trying the next older checkpoint"
    ]
    assert (
        f"gradwise: resuming from {ckdir / CLI_OLDER}, the newest checkpoint that verifies; keeping the damaged "
        f"{CLI_NEWEST} as {CLI_NEWEST}.corrupt\n"
    ) in out
    after = RunDir(cli_run).load_weights("last")
    assert all(np.array_equal(final[k], after[k]) for k in final)
    assert (ckdir / f"{CLI_NEWEST}.corrupt").is_dir()


def test_cli_strict_resume_and_nothing_intact_exit_2(cli_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckdir = cli_run / "checkpoints"
    flip_weights(ckdir / CLI_NEWEST)
    before = _snapshot(cli_run)
    code, _, err = _cli(["--resume", str(cli_run), "--strict-resume"], capsys)
    assert code == 2 and err.splitlines() == [
        f"gradwise: error: {ckdir / CLI_NEWEST / 'model.safetensors'} is corrupted: its size or SHA-256 differs "
        f"from those recorded in manifest.json when it was written"
    ]
    assert _snapshot(cli_run) == before
    truncate(ckdir / CLI_OLDER)
    before = _snapshot(cli_run)
    code, _, err = _cli(["--resume", str(cli_run)], capsys)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 3
    assert lines[1].startswith(f"gradwise: {ckdir / CLI_OLDER / 'model.safetensors'} is truncated: ")
    assert lines[2] == (
        f"gradwise: error: no intact checkpoint to resume from in {ckdir}: tried {CLI_NEWEST} (model.safetensors "
        f"is corrupted); {CLI_OLDER} (model.safetensors is truncated); the files are left as they are (train "
        f"again without --resume, or restore a copy)"
    )
    assert _snapshot(cli_run) == before
    code, _, err = _cli(["--strict-resume"], capsys)
    assert code == 2 and "--strict-resume goes with --resume" in err
