"""Resumable checkpoints: everything `Trainer.fit` needs to continue a run exactly where it stopped.

A checkpoint is a directory of the run's ``checkpoints/`` folder (``docs/checkpoints.md``)::

    RUN/checkpoints/
      latest                      "step-00000420\\n": the checkpoint to resume from
      step-00000420/              after the 420th optimizer step, in the middle of an epoch
      step-00000448-end/          at the end of an epoch (the next one starts at its first batch)
        model.safetensors         weights and buffers under PyTorch's names (loads into torch)
        state.json                "optimizer": class, step count, param groups, scalar state;
                                  "trainer": position (epoch, batch, step), history, best value,
                                  callback states, every random generator's state
        state.safetensors         the arrays state.json refers to: the optimizer's per-parameter
                                  buffers ("optimizer/state_dict/state/<param>/<name>"),
                                  per-iteration losses, the epoch's order and scores so far,
                                  callback arrays
        manifest.json             format, version, position, and the size and SHA-256 of every
                                  other file; written last

Atomicity: the files are written into a temporary directory next to the final one, each fsynced,
with the manifest last; the directory is fsynced and renamed to its final name (one ``rename``, atomic
on POSIX), the parent is fsynced, and only then is ``latest`` replaced (`atomic_write_bytes`). A
crash at any instant leaves ``latest`` naming a complete checkpoint (the previous one or the new
one); a torn temporary directory is ignored by readers and swept by the next writer. Older
checkpoints are removed only after ``latest`` has moved, by renaming them away first.

Reading (`load_checkpoint`) checks every file against the manifest (size, SHA-256) and its format
before anything is returned, and `resume` checks the model, optimizer, callbacks, generators and
loader against the checkpoint before it changes any of them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise import random as _random
from gradwise.training.metrics import EpochAccumulator
from gradwise.training.rundir import atomic_write_bytes, fsync_dir

if TYPE_CHECKING:
    from gradwise.core import Layer
    from gradwise.optim import Optimizer
    from gradwise.training.trainer import Trainer

__all__ = [
    "Checkpoint",
    "ResumePoint",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "resume",
    "save",
]

FORMAT = "gradwise-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"
LATEST = "latest"
FILES = ("model.safetensors", "state.safetensors", "state.json")
#: How many checkpoints `save` keeps (``latest`` and the one before it, should ``latest`` be lost).
KEEP = 2
_NAME = re.compile(r"^step-(\d{8,})(-end)?$")
# Leftovers of interrupted writes and deletions, swept by the next `save`.
_TMP, _TRASH = ".tmp-", ".trash-"
# JSON markers of the tree encoding: an array stored in the companion safetensors file, and a
# mapping whose keys are not all strings.
_ARRAY, _PAIRS = "__array__", "__pairs__"


# ----------------------------------------------------------------------------------------- data


@dataclass
class Checkpoint:
    """A checkpoint read back and verified by `load_checkpoint`; nothing is applied yet.

    Attributes
    ----------
    path : Path
        The checkpoint directory (``RUN/checkpoints/step-XXXXXXXX``).
    manifest : dict
        ``format``, ``version``, ``step``, ``epoch``, ``batch`` and the ``files`` table.
    model : dict of str -> np.ndarray
        The model's state dict.
    optimizer_type : str
        Class name of the optimizer that wrote it.
    optimizer : dict
        `Optimizer.state_dict()` as it was saved.
    trainer : dict
        Position, history, best value, callback and generator states (see `save`).
    """

    path: Path
    manifest: dict[str, Any]
    model: dict[str, np.ndarray]
    optimizer_type: str
    optimizer: dict[str, Any]
    trainer: dict[str, Any]

    @property
    def epoch(self) -> int:
        """Epochs completed; with `batch` > 0, epoch `epoch` is in progress."""
        return int(self.trainer["position"]["epoch"])

    @property
    def batch(self) -> int:
        """Batches of epoch `epoch` already done (0 at an epoch boundary)."""
        return int(self.trainer["position"]["batch"])

    @property
    def global_step(self) -> int:
        return int(self.trainer["position"]["global_step"])


@dataclass
class ResumePoint:
    """Where `Trainer.fit` continues after `resume`: epoch, batch and the epoch's data so far."""

    epoch: int
    batch: int  # > 0: epoch `epoch` was interrupted after this many batches
    fit_start_epoch: int
    totals: EpochAccumulator  # the interrupted epoch's loss and scores so far
    batches: Iterator[Any]  # the rest of the interrupted epoch
    stopped: bool = False  # the interrupted call had stopped early (`stop_training`): nothing is left


# ----------------------------------------------------------------------------------------- tree encoding


def _encode(obj: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """`obj` as JSON, its arrays moved into `arrays` under their path (exact: floats via repr)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"checkpoint: {path} is an object array, which cannot be saved without pickle")
        key = path if path not in arrays else f"{path}#{len(arrays)}"
        arrays[key] = _contiguous(obj)
        return {_ARRAY: key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj) and _ARRAY not in obj and _PAIRS not in obj:
            return {k: _encode(v, arrays, f"{path}/{k}") for k, v in obj.items()}
        pairs = [
            [_encode(k, arrays, f"{path}/{i}k"), _encode(v, arrays, f"{path}/{i}")]
            for i, (k, v) in enumerate(obj.items())
        ]
        return {_PAIRS: pairs}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, arrays, f"{path}/{i}") for i, v in enumerate(obj)]
    raise TypeError(
        f"checkpoint: cannot save {path} ({type(obj).__name__}); a state holds numbers, strings, "
        f"lists, dicts and NumPy arrays"
    )


def _contiguous(a: np.ndarray) -> np.ndarray:
    # Not np.ascontiguousarray: it turns a 0-d array (BatchNorm's num_batches_tracked) into shape (1,).
    return a if a.flags.c_contiguous else a.copy(order="C")


def _decode(obj: Any, arrays: Mapping[str, np.ndarray], file: Path) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY}:
            key = obj[_ARRAY]
            if key not in arrays:
                raise ValueError(f"{file} refers to the array {key!r}, which its .safetensors companion lacks")
            return arrays[key]
        if set(obj) == {_PAIRS}:
            return {_hashable(_decode(k, arrays, file)): _decode(v, arrays, file) for k, v in obj[_PAIRS]}
        return {k: _decode(v, arrays, file) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays, file) for v in obj]
    return obj


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


# ----------------------------------------------------------------------------------------- writing


def _write_file(directory: Path, name: str, data: bytes) -> dict[str, Any]:
    """Write and fsync one new file; return its manifest entry."""
    fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _discard(path: Path) -> None:
    """Remove a checkpoint directory: renamed away first (atomic), so it is never seen half-deleted."""
    trash = path.with_name(f"{_TRASH}{path.name}-{secrets.token_hex(4)}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _sweep(directory: Path) -> None:
    """Delete what interrupted writers left (temporary and half-deleted directories)."""
    for p in directory.iterdir():
        if p.name.startswith((_TMP, _TRASH)) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def _order(path: Path) -> tuple[int, bool]:
    m = _NAME.match(path.name)
    assert m is not None
    return int(m.group(1)), m.group(2) is not None


def write_checkpoint(
    directory: Path, name: str, files: Mapping[str, bytes], info: Mapping[str, Any], keep: int = KEEP
) -> Path:
    """Write `files` as the checkpoint ``directory/name`` atomically and point ``latest`` at it.

    Parameters
    ----------
    directory : Path
        The ``checkpoints`` folder (created if needed).
    name : str
        ``step-XXXXXXXX`` or ``step-XXXXXXXX-end``.
    files : mapping of file name -> bytes
    info : mapping
        Extra manifest entries (position).
    keep : int
        Checkpoints kept; older ones, and any newer than this one (left by an abandoned run that
        this one was resumed from an earlier point of), are removed after ``latest`` has moved.
    """
    if not _NAME.match(name):
        raise ValueError(f"checkpoint {name=} must look like step-00000042 or step-00000042-end")
    directory.mkdir(parents=True, exist_ok=True)
    _sweep(directory)
    tmp = directory / f"{_TMP}{name}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    final = directory / name
    try:
        entries = {file: _write_file(tmp, file, data) for file, data in files.items()}
        manifest = {"format": FORMAT, "version": VERSION, **info, "files": entries}
        _write_file(tmp, MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
        fsync_dir(tmp)
        if final.exists():
            # Left by an abandoned run (never `latest`: we only ever write past it).
            _discard(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(directory)
    atomic_write_bytes(directory / LATEST, f"{name}\n".encode())
    _prune(directory, final, keep)
    return final


def _prune(directory: Path, latest: Path, keep: int) -> None:
    newest = _order(latest)
    ordered = sorted(list_checkpoints(directory), key=_order)
    older = [p for p in ordered if _order(p) < newest]
    for p in [p for p in ordered if _order(p) > newest] + older[: max(len(older) - (keep - 1), 0)]:
        _discard(p)


def list_checkpoints(path: str | os.PathLike[str]) -> list[Path]:
    """The checkpoint directories of a run (or of its ``checkpoints`` folder), oldest first."""
    p = Path(path)
    directory = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    if not directory.is_dir():
        return []
    return sorted((c for c in directory.iterdir() if _NAME.match(c.name) and c.is_dir()), key=_order)


def latest_checkpoint(path: str | os.PathLike[str]) -> Path | None:
    """The checkpoint ``latest`` names in a run directory, or None when none was written yet.

    Raises
    ------
    ValueError
        If ``latest`` is unreadable or names a checkpoint that does not exist.
    """
    p = Path(path)
    directory = p / "checkpoints" if (p / "checkpoints").is_dir() or not (p / LATEST).exists() else p
    pointer = directory / LATEST
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="ascii").strip()
    except (UnicodeDecodeError, OSError) as e:
        raise ValueError(f"{pointer} is unreadable ({e}); it should hold a name like step-00000042") from None
    if not _NAME.match(name):
        raise ValueError(f"{pointer} holds {name[:40]!r}, not a checkpoint name like step-00000042")
    target = directory / name
    if not target.is_dir():
        raise ValueError(f"{pointer} names {name!r}, but {target} is missing")
    return target


# ----------------------------------------------------------------------------------------- reading


def _resolve(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no checkpoint at {str(p)!r}: it does not exist")
    if (p / MANIFEST).exists() or _NAME.match(p.name):
        return p
    target = latest_checkpoint(p)
    if target is None:
        raise FileNotFoundError(
            f"no checkpoint in {str(p)!r} (no checkpoints/{LATEST} file); Trainer(run_dir=...) writes "
            f"one at the end of every epoch"
        )
    return target


def _json(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


def _safetensors(path: Path, data: bytes) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    try:
        return load(data)
    except Exception as e:  # noqa: BLE001 - SafetensorError, and others on odd input
        raise ValueError(f"{path} is not a valid safetensors file ({e})") from None


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise ValueError(f"{path} is missing: {directory} is not a complete checkpoint")
    manifest = _json(path, path.read_bytes())
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a gradwise checkpoint manifest (no format = {FORMAT!r})")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
        raise ValueError(
            f"{path}: checkpoint format version {manifest.get('version')!r}; this gradwise reads "
            f"version {VERSION} and older (upgrade gradwise)"
        )
    files = manifest.get("files")
    missing = [f for f in FILES if not isinstance(files, dict) or not isinstance(files.get(f), dict)]
    if missing:
        raise ValueError(f"{path} lists no entry for {missing}")
    return manifest


def _read(directory: Path, name: str, entry: Mapping[str, Any]) -> Any:
    """One file, checked for presence, truncation, format and checksum, parsed."""
    path = directory / name
    if not path.is_file():
        raise ValueError(f"{path} is missing (the checkpoint's {MANIFEST} lists it)")
    data = path.read_bytes()
    expected = entry.get("bytes")
    if isinstance(expected, int) and len(data) < expected:
        raise ValueError(f"{path} is truncated: {len(data)} bytes, {expected} when it was written")
    parsed = _safetensors(path, data) if name.endswith(".safetensors") else _json(path, data)
    if len(data) != expected or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise ValueError(
            f"{path} is corrupted: its size or SHA-256 differs from those recorded in {MANIFEST} "
            f"when it was written"
        )
    return parsed


def load_checkpoint(
    path: str | os.PathLike[str], model: Layer | None = None, optimizer: Optimizer | None = None
) -> Checkpoint:
    """Read and verify a checkpoint; nothing is modified, on disk or in memory.

    Parameters
    ----------
    path : path-like
        A run directory (its ``checkpoints/latest`` is followed), its ``checkpoints`` folder, or
        one checkpoint directory.
    model, optimizer : optional
        Also check that the checkpoint fits them: the same parameter and buffer names, shapes and
        dtypes, the same optimizer class and param groups.

    Raises
    ------
    FileNotFoundError
        If there is no checkpoint at `path`.
    ValueError
        Naming the file and the problem: a file missing, truncated, corrupted (checksum), not
        safetensors or not JSON, a newer format, or a model or optimizer that does not match.
    """
    directory = _resolve(path)
    manifest = _read_manifest(directory)
    files = manifest["files"]
    parsed = {name: _read(directory, name, files[name]) for name in FILES}
    file = directory / "state.json"
    tree = parsed["state.json"]
    wanted = {
        "optimizer": ("type", "state_dict"),
        "trainer": ("position", "history", "rng", "callbacks", "loader", "accumulate"),
    }
    for part, keys in wanted.items():
        if not isinstance(tree, dict) or not isinstance(tree.get(part), dict) or any(k not in tree[part] for k in keys):
            raise ValueError(f"{file} lacks some of the entries {part}.{list(keys)}")
    state = _decode(tree, parsed["state.safetensors"], file)
    ckpt = Checkpoint(
        path=directory,
        manifest=manifest,
        model=parsed["model.safetensors"],
        optimizer_type=str(state["optimizer"]["type"]),
        optimizer=state["optimizer"]["state_dict"],
        trainer=state["trainer"],
    )
    if model is not None:
        check_model(ckpt, model)
    if optimizer is not None:
        check_optimizer(ckpt, optimizer)
    return ckpt


def check_model(ckpt: Checkpoint, model: Layer) -> None:
    """Raise ValueError naming ``model.safetensors`` unless names, shapes and dtypes all match."""
    saved = ckpt.model
    current = model.state_dict()
    problems = []
    missing = [k for k in current if k not in saved]
    unexpected = [k for k in saved if k not in current]
    if missing:
        problems.append(f"the model has {missing[:5]} which the checkpoint lacks")
    if unexpected:
        problems.append(f"the checkpoint has {unexpected[:5]} which the model lacks")
    for key in (k for k in current if k in saved):
        a, b = saved[key], current[key]
        if a.shape != b.shape:
            problems.append(f"{key!r} has shape {a.shape} in the checkpoint but {b.shape} in the model")
        elif a.dtype != b.dtype:
            problems.append(f"{key!r} is {a.dtype} in the checkpoint but {b.dtype} in the model")
    if problems:
        raise ValueError(
            f"{ckpt.path / 'model.safetensors'} does not match the model (a different architecture?): "
            + "; ".join(problems[:6])
        )


def check_optimizer(ckpt: Checkpoint, optimizer: Optimizer) -> None:
    """Raise ValueError naming ``state.json`` on a different optimizer class or param-group layout."""
    file = ckpt.path / "state.json"
    if ckpt.optimizer_type != type(optimizer).__name__:
        raise ValueError(f"{file} was written by {ckpt.optimizer_type}, the optimizer is {type(optimizer).__name__}")
    saved = [len(g.get("params", [])) for g in ckpt.optimizer.get("param_groups", [])]
    current = [len(g["params"]) for g in optimizer.param_groups]
    if saved != current:
        raise ValueError(
            f"{file}: parameters per param group are {saved} in the checkpoint but {current} in the optimizer"
        )


# ----------------------------------------------------------------------------------------- trainer


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
    tree = {"optimizer": _encode(optimizer, arrays, "optimizer"), "trainer": _encode(state, arrays, "trainer")}
    files = {
        "model.safetensors": to_bytes({k: _contiguous(v) for k, v in trainer.model.state_dict().items()}),
        "state.safetensors": to_bytes(arrays),
        "state.json": json.dumps(tree, indent=1).encode("utf-8"),
    }
    name = f"step-{trainer.global_step:08d}{'' if batch else '-end'}"
    info = {"step": trainer.global_step, "epoch": epoch, "batch": batch}
    return write_checkpoint(trainer.run_dir.checkpoints_dir, name, files, info)


def resume(trainer: Trainer, loader: Any, path: str | os.PathLike[str], epochs: int) -> ResumePoint:
    """Restore `trainer` (model, optimizer, callbacks, generators, history) from a checkpoint.

    Everything is checked first; on a mismatch nothing is changed (model, optimizer, callbacks,
    generators, run directory) and a `ValueError` names the file and the difference.

    Parameters
    ----------
    trainer : Trainer
        Built as for the interrupted run (same model, optimizer, callbacks, loader, seed).
    loader : the training loader
    path : path-like
        Run directory or checkpoint directory (`load_checkpoint`).
    epochs : int
        The `epochs` argument of the interrupted `fit` call.
    """
    ckpt = load_checkpoint(path, trainer.model, trainer.optimizer)
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
        _rewind(trainer.run_dir.checkpoints_dir, ckpt.path)  # type: ignore[union-attr]
    return ResumePoint(epoch, batch, fit_start, totals, batches, bool(state.get("stopped", False)))


def _rewind(directory: Path, resumed: Path) -> None:
    """Resuming into the same run from a checkpoint that is not ``latest``: make it ``latest``.

    The checkpoints after it belong to the abandoned continuation; they go after ``latest`` has moved.
    """
    if resumed.parent.resolve() != directory.resolve():
        return
    current = latest_checkpoint(directory)
    if current is not None and current.name != resumed.name:
        atomic_write_bytes(directory / LATEST, f"{resumed.name}\n".encode())
        _prune(directory, resumed, keep=len(list_checkpoints(directory)) + 1)

