"""Tests for gradwise/training/checkpoint/ (tree, store, verify): the format, atomic writes, and
refusing bad checkpoints.

Exact resuming through `Trainer.fit(resume_from=...)`, and falling back to an older checkpoint
when the newest is damaged, are tested in test_resume.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file

import gradwise as gw
from gradwise.data import make_spiral
from gradwise.data.loader import DataLoader
from gradwise.layers import Dropout, Linear, ReLU
from gradwise.losses import SoftmaxCrossEntropy
from gradwise.optim import SGD, Adam
from gradwise.training import RunDir, Trainer, checkpoint
from gradwise.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, store
from gradwise.training.checkpoint.tree import decode, encode

X, Y = make_spiral(20, 3, 0.3, rng=np.random.default_rng(1))  # 60 samples, 4 batches of 16
FILES = ["manifest.json", "model.safetensors", "state.json", "state.safetensors"]


def _model(hidden: int = 8) -> gw.Sequential:
    gw.manual_seed(3)
    return gw.Sequential(Linear(2, hidden), ReLU(), Dropout(0.2), Linear(hidden, 3))


def _trainer(
    run: RunDir | None, hidden: int = 8, every: int | None = 3, optimizer: type = Adam
) -> tuple[Trainer, DataLoader]:
    model = _model(hidden)
    opt = optimizer(model.parameters(), lr=0.01)
    trainer = Trainer(
        model, SoftmaxCrossEntropy(), opt, progress=False, run_dir=run, checkpoint_every=every, monitor="loss"
    )
    return trainer, DataLoader(X, Y, batch_size=16, shuffle=True)


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    """A run of 3 epochs (12 steps) with a checkpoint every 3 steps and at every epoch's end."""
    r = RunDir.create(tmp_path / "run")
    trainer, loader = _trainer(r)
    trainer.fit(loader, epochs=3)
    return r


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------ layout


def test_layout_and_contents(run: RunDir) -> None:
    latest = latest_checkpoint(run)
    assert latest is not None and latest.name == "step-00000012-end"
    assert (run.checkpoints_dir / "latest").read_text() == "step-00000012-end\n"
    # Kept: the latest and the one before (step 9, mid-epoch: steps 3, 6 and the epoch ends went).
    assert [p.name for p in list_checkpoints(run)] == ["step-00000009", "step-00000012-end"]
    assert sorted(p.name for p in latest.iterdir()) == FILES
    assert not [p for p in run.checkpoints_dir.iterdir() if p.name.startswith(".")]

    manifest = json.loads((latest / "manifest.json").read_text())
    assert (manifest["format"], manifest["version"]) == ("gradwise-checkpoint", 1)
    assert (manifest["step"], manifest["epoch"], manifest["batch"]) == (12, 3, 0)
    for name, entry in manifest["files"].items():
        data = (latest / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    # The weights are a plain safetensors state dict (PyTorch names), equal to the final ones.
    weights = load_file(str(latest / "model.safetensors"))
    assert sorted(weights) == ["0.bias", "0.weight", "3.bias", "3.weight"]
    assert all(np.array_equal(weights[k], v) for k, v in run.load_weights("last").items())

    ckpt = load_checkpoint(run.path)
    assert (ckpt.epoch, ckpt.batch, ckpt.global_step) == (3, 0, 12)
    assert ckpt.optimizer_type == "Adam" and ckpt.optimizer["step_count"] == 12
    assert ckpt.optimizer["state"]["0.weight"]["exp_avg"].shape == (8, 2)
    state = json.loads((latest / "state.json").read_text())
    assert state["optimizer"]["state_dict"]["state"]["0.weight"]["exp_avg"] == {
        "__array__": "optimizer/state_dict/state/0.weight/exp_avg"
    }
    assert sorted(ckpt.trainer["rng"]) == ["default", "model/2/rng"]
    assert len(ckpt.trainer["history"]["epochs"]) == 3 and len(ckpt.trainer["history"]["batch_loss"]) == 12


def test_a_mid_epoch_checkpoint_holds_the_epoch_order_and_scores(run: RunDir) -> None:
    ckpt = load_checkpoint(list_checkpoints(run)[0])
    assert (ckpt.epoch, ckpt.batch, ckpt.global_step) == (2, 1, 9)
    permutation = ckpt.trainer["loader"]["permutation"]
    assert sorted(permutation.tolist()) == list(range(60))
    totals = ckpt.trainer["epoch_totals"]
    assert totals["seen"] == 16 and totals["scores"] is None  # no metrics: no scores kept


def test_load_accepts_a_run_its_checkpoints_folder_or_one_checkpoint(run: RunDir) -> None:
    paths = [run.path, run.checkpoints_dir, list_checkpoints(run)[-1], str(run.path)]
    assert {load_checkpoint(p).path for p in paths} == {list_checkpoints(run)[-1]}


def test_no_checkpoint_yet(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert latest_checkpoint(tmp_path / "empty") is None and list_checkpoints(tmp_path / "empty") == []
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        load_checkpoint(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")


def test_without_a_run_directory_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    trainer, loader = _trainer(None, every=None)
    trainer.fit(loader, epochs=1)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ atomicity


class Crash(BaseException):
    """A crash: raised from inside a write, with the writer's own clean-up disabled (as SIGKILL)."""


@pytest.mark.parametrize(
    ("target", "call"),
    [
        ("_write_file", 2),  # a file half-way through the temporary directory
        ("_write_file", 4),  # the manifest, the last file
        ("fsync_dir", 1),  # everything written, not yet renamed
        ("atomic_write_bytes", 1),  # renamed, `latest` not yet moved
        ("_discard", 1),  # `latest` moved, the oldest checkpoint not yet removed
    ],
)
def test_a_crash_at_any_point_leaves_a_complete_latest(
    run: RunDir, monkeypatch: pytest.MonkeyPatch, target: str, call: int
) -> None:
    before = latest_checkpoint(run)
    assert before is not None
    real = getattr(store, target)
    calls = []

    def crashing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == call:
            raise Crash
        return real(*args, **kwargs)

    monkeypatch.setattr(store, target, crashing)
    monkeypatch.setattr(store.shutil, "rmtree", lambda *a, **k: None)
    trainer, loader = _trainer(RunDir(run.path))
    with pytest.raises(Crash):
        trainer.fit(loader, epochs=6, resume_from=run)
    monkeypatch.undo()

    latest = latest_checkpoint(run)
    assert latest is not None and latest.name in (before.name, "step-00000015")
    for path in list_checkpoints(run):  # every checkpoint in sight reads back and verifies
        load_checkpoint(path)
    # The next writer sweeps what the crash left, and resuming works.
    trainer, loader = _trainer(RunDir(run.path))
    trainer.fit(loader, epochs=6, resume_from=run)
    assert not [p for p in run.checkpoints_dir.iterdir() if p.name.startswith(".")]
    assert latest_checkpoint(run).name == "step-00000024-end"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------ refusals


def _corrupt_truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _corrupt_flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[-5] ^= 0xFF  # inside the tensor data: the header still parses
    p.write_bytes(bytes(data))


def _corrupt_text(p: Path) -> None:
    p.write_text("these are not the weights you are looking for\n" * 50)


def _corrupt_garbage(p: Path) -> None:
    p.write_bytes(np.random.default_rng(0).bytes(p.stat().st_size))


@pytest.mark.parametrize(
    ("file", "corrupt", "match"),
    [
        ("model.safetensors", _corrupt_truncate, r"model\.safetensors is truncated: \d+ bytes, \d+ when it was"),
        ("model.safetensors", _corrupt_flip, r"model\.safetensors is corrupted: its size or SHA-256 differs"),
        ("model.safetensors", _corrupt_text, r"model\.safetensors is not a valid safetensors file"),
        ("model.safetensors", _corrupt_garbage, r"model\.safetensors is not a valid safetensors file"),
        ("state.safetensors", _corrupt_garbage, r"state\.safetensors is not a valid safetensors file"),
        ("state.json", _corrupt_garbage, r"state\.json is not valid JSON"),
        ("state.json", lambda p: p.unlink(), r"state\.json is missing"),
        ("manifest.json", _corrupt_truncate, r"manifest\.json is not valid JSON"),
        ("manifest.json", lambda p: p.unlink(), r"manifest\.json is missing: .* is not a complete checkpoint"),
        ("manifest.json", lambda p: p.write_text('{"format": "gradwise-checkpoint", "version": 99}'), "version 99"),
    ],
    ids=lambda v: getattr(v, "__name__", v) if callable(v) else str(v)[:20],
)
def test_a_damaged_checkpoint_is_refused_and_nothing_changes(run: RunDir, file: str, corrupt, match: str) -> None:
    """With strict_resume (without it, test_resume.py: the run falls back to the older checkpoint)."""
    target = latest_checkpoint(run) / file  # type: ignore[operator]
    corrupt(target)
    trainer, loader = _trainer(RunDir(run.path))
    weights = trainer.model.state_dict()
    before = _snapshot(run.path)
    with pytest.raises(ValueError, match=match) as info:
        trainer.fit(loader, epochs=5, resume_from=run, strict_resume=True)
    assert str(target) in str(info.value)
    assert _snapshot(run.path) == before
    assert all(np.array_equal(v, trainer.model.state_dict()[k]) for k, v in weights.items())
    assert trainer.optimizer.state == {} and trainer.global_step == 0


def test_a_latest_pointer_to_nowhere_is_refused(run: RunDir) -> None:
    (run.checkpoints_dir / "latest").write_text("step-00000099\n")
    with pytest.raises(ValueError, match=r"latest names 'step-00000099', but .*step-00000099 is missing"):
        load_checkpoint(run.path)
    (run.checkpoints_dir / "latest").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(ValueError, match=r"latest"):
        load_checkpoint(run.path)


def test_a_different_architecture_is_refused_naming_the_mismatch(run: RunDir) -> None:
    trainer, loader = _trainer(RunDir(run.path), hidden=16)
    weights = trainer.model.state_dict()
    before = _snapshot(run.path)
    with pytest.raises(ValueError) as info:
        trainer.fit(loader, epochs=5, resume_from=run)
    message = str(info.value)
    assert str(latest_checkpoint(run) / "model.safetensors") in message  # type: ignore[operator]
    assert "'0.weight' has shape (8, 2) in the checkpoint but (16, 2) in the model" in message
    assert _snapshot(run.path) == before
    assert all(np.array_equal(v, trainer.model.state_dict()[k]) for k, v in weights.items())

    other = gw.Sequential(Linear(2, 8), ReLU(), Linear(8, 3))  # no dropout: other names
    with pytest.raises(ValueError, match=r"the model has \['2.weight', '2.bias'\] which the checkpoint lacks"):
        load_checkpoint(run.path, model=other)
    with pytest.raises(ValueError, match=r"'0.weight' is float32 in the checkpoint but float64 in the model"):
        load_checkpoint(run.path, model=_model().astype(np.float64))


def test_a_different_optimizer_is_refused(run: RunDir) -> None:
    trainer, loader = _trainer(RunDir(run.path), optimizer=SGD)
    before = _snapshot(run.path)
    with pytest.raises(ValueError, match=r"state\.json was written by Adam, the optimizer is SGD"):
        trainer.fit(loader, epochs=5, resume_from=run)
    assert _snapshot(run.path) == before


# One run for all examples is fine: each example puts the file back as it was.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=st.sampled_from(FILES[1:]), position=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255))
def test_any_flipped_byte_is_detected(run: RunDir, file: str, position: float, flip: int) -> None:
    path = latest_checkpoint(run) / file  # type: ignore[operator]
    original = path.read_bytes()
    data = bytearray(original)
    data[int(position * len(data))] ^= flip
    path.write_bytes(bytes(data))
    try:
        with pytest.raises(ValueError, match=str(path).replace(".", r"\.")):
            load_checkpoint(run.path)
    finally:
        path.write_bytes(original)


# ------------------------------------------------------------------------------------ encoding


arrays = st.sampled_from([np.float32, np.float64, np.int64, np.uint32, np.bool_]).flatmap(
    lambda dtype: st.lists(st.integers(0, 3), max_size=3).map(
        lambda shape: np.arange(int(np.prod(shape))).astype(dtype).reshape(shape)
    )
)
leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5) | arrays
trees = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=4) | st.integers(), children, max_size=3),
    max_leaves=8,
)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_equal, a, b))
    return type(a) is type(b) and a == b


@given(value=trees)
def test_state_trees_round_trip_exactly(value: Any) -> None:
    """Callback and optimizer states: JSON for the structure, safetensors for the arrays."""
    from safetensors.numpy import load, save

    stored: dict[str, np.ndarray] = {}
    text = json.dumps(encode(value, stored, "root"))
    back = decode(json.loads(text), load(save(stored)) if stored else {}, Path("state.json"))
    assert _equal(value, back)


def test_unsavable_states_are_named() -> None:
    with pytest.raises(TypeError, match="root/cb/fn"):
        encode({"cb": {"fn": print}}, {}, "root")
    with pytest.raises(TypeError, match="object array"):
        encode(np.array([None]), {}, "root")
