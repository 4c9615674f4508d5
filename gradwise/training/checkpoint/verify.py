"""Reading a checkpoint back: every file verified against the manifest before anything is returned.

`load_checkpoint` checks that ``manifest.json`` is a gradwise manifest of a version this gradwise
reads, that every file it lists is there, readable and not shorter than written, that it parses
(safetensors, JSON), and that its size and SHA-256 match the manifest. Damage is a
`CorruptCheckpoint` (a `ValueError` naming the file), on which resuming may fall back to an older
checkpoint; a newer format, or a model or optimizer that does not fit (`check_model`,
`check_optimizer`), is a plain `ValueError`. Nothing is modified, on disk or in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.training.checkpoint.store import (
    FILES,
    FORMAT,
    LATEST,
    MANIFEST,
    VERSION,
    CorruptCheckpoint,
    is_checkpoint_dir,
    latest_checkpoint,
)
from gradwise.training.checkpoint.tree import decode

if TYPE_CHECKING:
    from gradwise.core import Layer
    from gradwise.optim import Optimizer

__all__ = ["Checkpoint", "check_model", "check_optimizer", "load_checkpoint"]


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


# ----------------------------------------------------------------------------------------- reading


def _resolve(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no checkpoint at {str(p)!r}: it does not exist")
    if is_checkpoint_dir(p):
        return p
    target = latest_checkpoint(p)
    if target is None:
        raise FileNotFoundError(
            f"no checkpoint in {str(p)!r} (no checkpoints/{LATEST} file); Trainer(run_dir=...) writes "
            f"one at the end of every epoch"
        )
    return target


def _bytes(path: Path, missing: str) -> bytes:
    if not path.is_file():
        raise CorruptCheckpoint(path, missing)
    try:
        return path.read_bytes()
    except OSError as e:  # a bad sector, a vanished network mount
        raise CorruptCheckpoint(path, f"is unreadable ({e.strerror or e})") from None


def _json(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptCheckpoint(path, f"is not valid JSON ({e})") from None


def _safetensors(path: Path, data: bytes) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    try:
        return load(data)
    except Exception as e:  # noqa: BLE001 - SafetensorError, and others on odd input
        raise CorruptCheckpoint(path, f"is not a valid safetensors file ({e})") from None


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    manifest = _json(path, _bytes(path, f"is missing: {directory} is not a complete checkpoint"))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptCheckpoint(path, f"is not a gradwise checkpoint manifest (no format = {FORMAT!r})")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
        # Not damage: a newer gradwise wrote it. Never a reason to fall back or set it aside.
        raise ValueError(
            f"{path}: checkpoint format version {manifest.get('version')!r}; this gradwise reads "
            f"version {VERSION} and older (upgrade gradwise)"
        )
    files = manifest.get("files")
    missing = [f for f in FILES if not isinstance(files, dict) or not isinstance(files.get(f), dict)]
    if missing:
        raise CorruptCheckpoint(path, f"lists no entry for {missing}")
    return manifest


def _read(directory: Path, name: str, entry: Mapping[str, Any]) -> Any:
    """One file, checked for presence, truncation, format and checksum, parsed."""
    path = directory / name
    data = _bytes(path, f"is missing (the checkpoint's {MANIFEST} lists it)")
    expected = entry.get("bytes")
    if isinstance(expected, int) and len(data) < expected:
        raise CorruptCheckpoint(path, f"is truncated: {len(data)} bytes, {expected} when it was written")
    parsed = _safetensors(path, data) if name.endswith(".safetensors") else _json(path, data)
    if len(data) != expected or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise CorruptCheckpoint(
            path,
            f"is corrupted: its size or SHA-256 differs from those recorded in {MANIFEST} when it was written",
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
    CorruptCheckpoint
        A `ValueError` naming the file and the damage: ``latest`` naming a missing checkpoint, a
        file missing, unreadable, truncated, corrupted (checksum), not safetensors or not JSON.
    ValueError
        A newer format, or a model or optimizer that does not match (naming the file).
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
            raise CorruptCheckpoint(file, f"lacks some of the entries {part}.{list(keys)}")
    try:
        state = decode(tree, parsed["state.safetensors"], file)
    except ValueError as e:
        raise CorruptCheckpoint(file, str(e).removeprefix(f"{file} ")) from None
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
