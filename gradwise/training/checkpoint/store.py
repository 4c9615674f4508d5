"""The checkpoints folder on disk: write atomically, list, follow ``latest``, prune, set aside.

Layout and atomicity are described in `gradwise.training.checkpoint` and ``docs/checkpoints.md``.
This module knows directories and names; reading a checkpoint back and verifying it is
`gradwise.training.checkpoint.verify`, and what a trainer puts into one and takes back out is
`gradwise.training.checkpoint.trainer_state`.

Directory names: ``step-XXXXXXXX`` (mid-epoch) and ``step-XXXXXXXX-end`` (an epoch's end) are
checkpoints; ``.tmp-*`` (a write in progress) and ``.trash-*`` (a removal in progress) are swept
by the next writer; ``step-...*.corrupt`` (a checkpoint that failed verification when a run was
resumed, kept as evidence) is neither listed, followed nor pruned.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gradwise.fileio import atomic_write_bytes, fsync_dir, write_new_file

__all__ = [
    "CorruptCheckpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "prune",
    "set_aside",
    "write_checkpoint",
]

FORMAT = "gradwise-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"
LATEST = "latest"
FILES = ("model.safetensors", "state.safetensors", "state.json")
#: How many checkpoints `write_checkpoint` keeps by default (``latest`` and the one before it, to
#: fall back to should ``latest`` be damaged); `Trainer(keep_checkpoints=...)` changes it.
KEEP = 2
#: What `set_aside` appends to the name of a checkpoint that failed verification.
CORRUPT = ".corrupt"
_NAME = re.compile(r"^step-(\d{8,})(-end)?$")
# Leftovers of interrupted writes and deletions, swept by the next `write_checkpoint`.
_TMP, _TRASH = ".tmp-", ".trash-"


class CorruptCheckpoint(ValueError):
    """A checkpoint (or the ``latest`` pointer) that is damaged: missing, unreadable, truncated, or
    not matching its manifest. Resuming falls back to an older checkpoint on this error only.

    Attributes
    ----------
    file : Path
        The file (or directory) at fault.
    problem : str
        What is wrong with it, e.g. ``"is truncated: 812 bytes, 4120 when it was written"``.
    """

    def __init__(self, file: Path, problem: str, brief: str | None = None) -> None:
        super().__init__(f"{file} {problem}")
        self.file, self.problem = Path(file), problem
        self._brief = brief

    @property
    def short(self) -> str:
        """``"model.safetensors is corrupted"``: the file's name and the problem, without details."""
        if self._brief is not None:
            return self._brief
        return f"{self.file.name} {re.split(r'[:(;]', self.problem, maxsplit=1)[0].strip()}"


# ----------------------------------------------------------------------------------------- writing


def _write_file(directory: Path, name: str, data: bytes) -> dict[str, Any]:
    """Write and fsync one new file; return its manifest entry."""
    write_new_file(directory / name, data)
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


def order(name: str | Path) -> tuple[int, bool]:
    """The sort key of a checkpoint name: (step, at an epoch's end); ``step-N`` comes before ``step-N-end``."""
    m = _NAME.match(Path(name).name)
    if m is None:
        raise ValueError(f"{str(name)!r} is not a checkpoint name like step-00000042 or step-00000042-end")
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
        Checkpoints kept (>= 1); older ones, and any newer than this one (left by an abandoned run
        that this one was resumed from an earlier point of), are removed after ``latest`` has moved.
    """
    if not _NAME.match(name):
        raise ValueError(f"checkpoint {name=} must look like step-00000042 or step-00000042-end")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"write_checkpoint: {keep=} must be an integer >= 1")
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
    prune(directory, final, keep)
    return final


def prune(directory: Path, latest: Path, keep: int) -> None:
    """Remove the checkpoints newer than `latest`, and all but the `keep` - 1 newest older ones."""
    newest = order(latest)
    ordered = list_checkpoints(directory)
    older = [p for p in ordered if order(p) < newest]
    for p in [p for p in ordered if order(p) > newest] + older[: max(len(older) - (keep - 1), 0)]:
        _discard(p)


def set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint ``step-...`` to ``step-....corrupt`` (``.corrupt-2``, ... if taken).

    The evidence stays on disk, and nothing (listing, ``latest``, pruning, the next write of the
    same step) takes it for a checkpoint again. Returns the new path.
    """
    target = aside_path(path)
    os.rename(path, target)
    fsync_dir(path.parent)
    return target


def aside_path(path: Path) -> Path:
    """The name `set_aside` gives `path`: ``step-....corrupt``, or ``.corrupt-2``, ... if that is taken."""
    for i in range(1, 1000):
        target = path.with_name(f"{path.name}{CORRUPT}{'' if i == 1 else f'-{i}'}")
        if not target.exists():
            return target
    raise FileExistsError(f"{path}: too many {CORRUPT} copies of this checkpoint beside it; delete some")


# ----------------------------------------------------------------------------------------- finding


def checkpoints_folder(path: str | os.PathLike[str]) -> Path:
    """The ``checkpoints`` folder of a run directory, or `path` itself if it is one."""
    p = Path(path)
    return p / "checkpoints" if (p / "checkpoints").is_dir() or not (p / LATEST).exists() else p


def list_checkpoints(path: str | os.PathLike[str]) -> list[Path]:
    """The checkpoint directories of a run (or of its ``checkpoints`` folder), oldest first."""
    p = Path(path)
    directory = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    if not directory.is_dir():
        return []
    return sorted((c for c in directory.iterdir() if _NAME.match(c.name) and c.is_dir()), key=order)


def read_latest(directory: Path) -> str | None:
    """The checkpoint name the ``latest`` file of a ``checkpoints`` folder holds, or None without one.

    Raises
    ------
    CorruptCheckpoint
        If ``latest`` is unreadable or does not hold a checkpoint name.
    """
    pointer = directory / LATEST
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="ascii").strip()
    except (UnicodeDecodeError, OSError) as e:
        raise CorruptCheckpoint(pointer, f"is unreadable ({e}); it should hold a name like step-00000042") from None
    if not _NAME.match(name):
        raise CorruptCheckpoint(pointer, f"holds {name[:40]!r}, not a checkpoint name like step-00000042")
    return name


def is_checkpoint_dir(path: Path) -> bool:
    """Whether `path` is meant as one checkpoint (named like one, or holding a manifest)."""
    return (path / MANIFEST).exists() or _NAME.match(path.name) is not None


def latest_checkpoint(path: str | os.PathLike[str]) -> Path | None:
    """The checkpoint ``latest`` names in a run directory, or None when none was written yet.

    Raises
    ------
    CorruptCheckpoint
        A `ValueError`: ``latest`` is unreadable or names a checkpoint that does not exist.
    """
    directory = checkpoints_folder(path)
    name = read_latest(directory)
    if name is None:
        return None
    target = directory / name
    if not target.is_dir():
        raise CorruptCheckpoint(directory / LATEST, f"names {name!r}, but {target} is missing", "missing")
    return target
