"""What a trainer saves into a checkpoint and restores from one: `save`, `resume`, `generators`.

`save` gathers the model's state dict, the optimizer's state, the trainer's position, history and
best value, every callback's state and every random generator's, and hands the files to
`store.write_checkpoint`. `resume` chooses the checkpoint (`fallback.find_resumable`: ``latest``,
or the newest older one that verifies), checks that it fits the trainer, the loader and the
callbacks before changing anything, and then restores them all; resuming into the run directory
the checkpoint came from also sets the damaged checkpoints aside and makes the chosen one
``latest`` (`_rewind`). See ``docs/checkpoints.md``.
"""

from __future__ import annotations

import itertools
import json
import os
import warnings
from collections.abc import Iterator, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise import random as _random
from gradwise.fileio import atomic_write_bytes
from gradwise.training.checkpoint.fallback import Rejected, Resumable, find_resumable
from gradwise.training.checkpoint.store import (
    LATEST,
    CorruptCheckpoint,
    list_checkpoints,
    prune,
    read_latest,
    set_aside,
    write_checkpoint,
)
from gradwise.training.checkpoint.tree import contiguous, encode
from gradwise.training.checkpoint.verify import check_model, check_optimizer
from gradwise.training.metrics import EpochAccumulator

if TYPE_CHECKING:
    from gradwise.core import Layer
    from gradwise.training.trainer import Trainer

__all__ = ["ResumePoint", "ResumeWarning", "generators", "resume", "save"]


class ResumeWarning(UserWarning):
    """`Trainer.fit(resume_from=...)` passed over a damaged checkpoint and resumed from an older one."""


@dataclass
class ResumePoint:
    """Where `Trainer.fit` continues after `resume`: epoch, batch and the epoch's data so far."""

    epoch: int
    batch: int  # > 0: epoch `epoch` was interrupted after this many batches
    fit_start_epoch: int
    totals: EpochAccumulator  # the interrupted epoch's loss and scores so far
    batches: Iterator[Any]  # the rest of the interrupted epoch
    stopped: bool = False  # the interrupted call had stopped early (`stop_training`): nothing is left


def generators(model: Layer, loader: Any) -> dict[str, np.random.Generator]:
    """Every random generator training draws from: the library default, the loader's, the layers'.

    Keys: ``"default"``, ``"loader"``, ``"model/<module>/<attribute>"`` (``<module>`` is the dotted
    name, empty for the model itself). Several keys may share one generator.
    """
    found = {"default": _random.default_rng()}
    if isinstance(getattr(loader, "rng", None), np.random.Generator):
        found["loader"] = loader.rng
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, np.random.Generator):
                found[f"model/{name}/{attr}"] = value
    return found


def _stateful(trainer: Trainer) -> list[Any]:
    """The callbacks with a state of their own (a `state_dict` of their class, not the base's)."""
    from gradwise.training.callbacks import Callback

    base = getattr(Callback, "state_dict", None)
    return [
        cb
        for cb in trainer.callbacks
        if callable(getattr(cb, "state_dict", None)) and getattr(type(cb), "state_dict", None) is not base
    ]


def save(trainer: Trainer, loader: Any, epoch: int, batch: int, totals: EpochAccumulator | None) -> Path:
    """Write a checkpoint of `trainer` at (`epoch`, `batch`) into its run directory.

    Called by `Trainer.fit` right after an optimizer step (mid-epoch, `batch` > 0: batches done
    in epoch `epoch`, whose running `totals` are saved) or after an epoch (`batch` = 0, `epoch` =
    epochs completed).
    """
    from safetensors.numpy import save as to_bytes

    assert trainer.run_dir is not None
    recorder = trainer._recorder
    permutation = getattr(loader, "permutation", None) if batch else None
    epoch_totals = None
    if batch and totals is not None:
        scores = np.concatenate(totals.scores) if totals.scores else None
        labels = np.concatenate(totals.labels) if totals.labels else None
        epoch_totals = {"total": totals.total, "seen": totals.seen, "scores": scores, "labels": labels}
    state = {
        "position": {"epoch": epoch, "batch": batch, "global_step": trainer.global_step},
        "stopped": bool(trainer.stop_training) and not batch,  # the fit call ended early here
        "fit_start_epoch": trainer._fit_start_epoch,
        "accumulate": trainer.accumulate,
        "last_lr": trainer._last_lr,
        "history": {
            "epochs": trainer.history.epochs,
            "steps": trainer.history.steps,
            "batch_loss": np.asarray(trainer.history.batch_loss, dtype=np.float64),
        },
        "best": None
        if recorder is None
        else {"monitor": recorder.monitor, "value": recorder.best_value, "epoch": recorder.best_epoch},
        "epoch_totals": epoch_totals,
        "loader": {"permutation": None if permutation is None else np.array(permutation)},
        "rng": {key: g.bit_generator.state for key, g in generators(trainer.model, loader).items()},
        "callbacks": [{"type": type(cb).__name__, "state": cb.state_dict()} for cb in _stateful(trainer)],
    }
    arrays: dict[str, np.ndarray] = {}
    optimizer = {"type": type(trainer.optimizer).__name__, "state_dict": trainer.optimizer.state_dict()}
    tree = {"optimizer": encode(optimizer, arrays, "optimizer"), "trainer": encode(state, arrays, "trainer")}
    files = {
        "model.safetensors": to_bytes({k: contiguous(v) for k, v in trainer.model.state_dict().items()}),
        "state.safetensors": to_bytes(arrays),
        "state.json": json.dumps(tree, indent=1).encode("utf-8"),
    }
    name = f"step-{trainer.global_step:08d}{'' if batch else '-end'}"
    info = {"step": trainer.global_step, "epoch": epoch, "batch": batch}
    keep = int(getattr(trainer, "keep_checkpoints", 2))
    return write_checkpoint(trainer.run_dir.checkpoints_dir, name, files, info, keep=keep)


def resume(
    trainer: Trainer, loader: Any, source: str | os.PathLike[str] | Resumable, epochs: int, strict: bool = False
) -> ResumePoint:
    """Restore `trainer` (model, optimizer, callbacks, generators, history) from a checkpoint.

    Everything is checked first; on a mismatch nothing is changed (model, optimizer, callbacks,
    generators, run directory) and a `ValueError` names the file and the difference.

    Parameters
    ----------
    trainer : Trainer
        Built as for the interrupted run (same model, optimizer, callbacks, loader, seed).
    loader : the training loader
    source : path-like or Resumable
        A run directory (``latest`` is followed; if it is damaged, the newest older checkpoint
        that verifies is used, with a `ResumeWarning` per checkpoint passed over), one checkpoint
        directory (exactly that one), or what `find_resumable` chose (the command line reports
        its choice itself, then passes it here).
    epochs : int
        The `epochs` argument of the interrupted `fit` call.
    strict : bool
        With a path: stop at a damaged ``latest`` (`CorruptCheckpoint`) instead of falling back.

    Notes
    -----
    When the trainer writes into the run directory the checkpoint comes from, the checkpoints
    passed over are renamed ``step-....corrupt`` (kept, never deleted) once everything fits, and the
    chosen one becomes ``latest``.
    """
    if isinstance(source, Resumable):
        chosen = source
    else:
        chosen = find_resumable(source, strict=strict)
        for r in chosen.rejected:
            warnings.warn(f"{r.reason}; trying the next older checkpoint", ResumeWarning, stacklevel=3)
        if chosen.rejected:
            warnings.warn(
                f"resuming from {chosen.checkpoint.path}, the newest checkpoint that verifies",
                ResumeWarning,
                stacklevel=3,
            )
    ckpt = chosen.checkpoint
    check_model(ckpt, trainer.model)
    check_optimizer(ckpt, trainer.optimizer)
    state = ckpt.trainer
    file = ckpt.path / "state.json"
    epoch, batch = ckpt.epoch, ckpt.batch
    fit_start = int(state.get("fit_start_epoch", 0))
    if fit_start + epochs < epoch + (batch > 0) and not state.get("stopped", False):
        raise ValueError(
            f"Trainer.fit: {epochs=} ends at epoch {fit_start + epochs}, but the checkpoint {ckpt.path} "
            f"is at epoch {epoch + 1}, batch {batch} (its fit call started at epoch {fit_start}); "
            f"give epochs >= {epoch + (batch > 0) - fit_start}"
        )
    if int(state["accumulate"]) != trainer.accumulate:
        raise ValueError(
            f"{file} was written with accumulate={state['accumulate']}, the trainer has {trainer.accumulate}"
        )
    current_gens = generators(trainer.model, loader)
    saved_gens = state["rng"]
    if set(saved_gens) != set(current_gens):
        raise ValueError(
            f"{file}: the checkpoint has random generators {sorted(saved_gens)}, the trainer and loader "
            f"{sorted(current_gens)} (a different model or loader?)"
        )
    for key, g in current_gens.items():
        kind = saved_gens[key].get("bit_generator") if isinstance(saved_gens[key], dict) else None
        if kind != g.bit_generator.state["bit_generator"]:
            now = type(g.bit_generator).__name__
            raise ValueError(f"{file}: generator {key!r} is {kind} in the checkpoint, {now} now")
    stateful = _stateful(trainer)
    saved_cbs = state["callbacks"]
    names = [type(cb).__name__ for cb in stateful]
    if names != [c.get("type") for c in saved_cbs]:
        raise ValueError(
            f"{file}: the checkpoint has the stateful callbacks {[c.get('type') for c in saved_cbs]}, "
            f"the trainer {names}"
        )
    for cb in stateful:
        if not callable(getattr(cb, "load_state_dict", None)):
            raise TypeError(f"{type(cb).__name__} has a state_dict() but no load_state_dict() to resume it")
    batches: Iterator[Any] = iter(())
    if batch:
        if isinstance(loader, Sized) and batch > len(loader):
            raise ValueError(f"{file}: the checkpoint is at batch {batch}, but the loader has {len(loader)} batches")
        saved_scores = (state.get("epoch_totals") or {}).get("scores")
        if bool(trainer.metrics) != (saved_scores is not None):
            raise ValueError(
                f"{file}: the interrupted epoch was trained {'without' if saved_scores is None else 'with'} "
                f"metrics, the trainer has {[m.__name__ for m in trainer.metrics]}; its metrics would "
                f"miss the batches before the checkpoint"
            )
        permutation = state["loader"]["permutation"]
        restart = getattr(loader, "resume", None)
        if callable(restart):
            batches = restart(permutation, batch)  # validates now, draws nothing until iterated
        elif permutation is not None:
            raise ValueError(f"{file} holds a shuffled epoch order, but the loader has no resume(permutation, start)")
        else:
            batches = itertools.islice(iter(loader), batch, None)

    # Everything fits: apply. The optimizer checks its state before changing anything.
    trainer.optimizer.load_state_dict(ckpt.optimizer)
    trainer.model.load_state_dict(ckpt.model)
    for cb, saved in zip(stateful, saved_cbs):
        cb.load_state_dict(saved["state"])
    for key, g in current_gens.items():
        g.bit_generator.state = saved_gens[key]
    trainer.epoch = epoch
    trainer.global_step = ckpt.global_step
    trainer._last_lr = float(state["last_lr"]) if state["last_lr"] is not None else float("nan")
    history = state["history"]
    trainer.history.epochs = [dict(row) for row in history["epochs"]]
    trainer.history.steps = [int(s) for s in history["steps"]]
    trainer.history.batch_loss = np.asarray(history["batch_loss"], dtype=np.float64).tolist()
    totals = EpochAccumulator(trainer.loss, trainer.metrics)
    if batch:
        saved_totals = state["epoch_totals"] or {}
        totals.total, totals.seen = float(saved_totals.get("total", 0.0)), int(saved_totals.get("seen", 0))
        if totals.metrics and saved_totals.get("scores") is not None:
            totals.scores, totals.labels = [saved_totals["scores"]], [saved_totals["labels"]]
    if trainer._recorder is not None:
        best = state.get("best") or {}
        trainer._recorder.restore(
            best.get("monitor", trainer._recorder.monitor), best.get("value"), best.get("epoch"), trainer.history.epochs
        )
        _rewind(trainer.run_dir.checkpoints_dir, ckpt.path, chosen.rejected)  # type: ignore[union-attr]
    return ResumePoint(epoch, batch, fit_start, totals, batches, bool(state.get("stopped", False)))


def _rewind(directory: Path, resumed: Path, rejected: Sequence[Rejected] = ()) -> None:
    """Resuming into the same run from a checkpoint that is not ``latest``: make it ``latest``.

    The damaged checkpoints passed over are renamed aside first (`set_aside`: kept as evidence,
    never pruned); the other checkpoints after `resumed` belong to the abandoned continuation and
    go after ``latest`` has moved.
    """
    if resumed.parent.resolve() != directory.resolve():
        return  # another run's checkpoint: this run forks it, and leaves it as it is
    for r in rejected:
        if r.path.parent.resolve() == directory.resolve() and r.path.is_dir() and r.path.name != LATEST:
            set_aside(r.path)
    try:
        current = read_latest(directory)
    except CorruptCheckpoint:
        current = None  # unreadable: replaced below
    if current != resumed.name:
        atomic_write_bytes(directory / LATEST, f"{resumed.name}\n".encode())
        prune(directory, resumed, keep=len(list_checkpoints(directory)) + 1)
