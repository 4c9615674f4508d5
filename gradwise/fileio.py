"""Durable file writing: atomic replace (`atomic_write_bytes`), exclusive create (`write_new_file`), `fsync_dir`.

The lowest floor of the library's file writing, below both `gradwise.io` (weights files) and
`gradwise.training` (run directories, checkpoints): it imports nothing from gradwise, so either
may use it without importing the other.

- `atomic_write_bytes` replaces a file so that a reader sees the old content or the new one,
  never a mix: a temporary file in the same directory, flushed and fsynced, renamed over the
  target with `os.replace`, then the directory fsynced. A crash or a full disk mid-write leaves
  the previous version of the file intact.
- `write_new_file` creates a file that must not exist yet (``O_EXCL``) and fsyncs it: the
  building block of a directory that is written in full, then renamed into place (checkpoints).
- `fsync_dir` makes a directory's entries (a rename into it) durable across a power cut.
- `jsonable` turns what a JSON file of the library holds (run metrics, reports) into plain JSON
  types.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_write_bytes", "fsync_dir", "jsonable", "write_new_file"]

# os.open with mode 0o666 lets the umask decide permissions (mkstemp would force 0o600).
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def write_new_file(path: str | os.PathLike[str], data: bytes) -> Path:
    """Create `path` holding `data`, flushed and fsynced; fail if it exists.

    Parameters
    ----------
    path : path-like
        A file that does not exist yet; its parent directory must exist.
    data : bytes
        The complete content.

    Returns
    -------
    Path
        `path` as a `Path`.

    Raises
    ------
    FileExistsError
        If `path` exists (nothing is overwritten).
    """
    path = Path(path)
    fd = os.open(path, _CREATE, 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` so that readers see either the old file or the new one, never a mix.

    Parameters
    ----------
    path : path-like
        Target file; its parent directory must exist.
    data : bytes
        The complete new content.

    Returns
    -------
    Path
        `path` as a `Path`.
    """
    path = Path(path)
    # Same directory as the target: os.replace is only atomic within one file system.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, _CREATE, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename into it) to disk; a no-op where that is impossible."""
    # POSIX only: Windows cannot open directories, and the rename is durable enough there.
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def jsonable(obj: Any) -> Any:
    """Plain JSON types: mappings, lists, NumPy arrays and scalars, paths, objects with a
    ``to_dict()``; NaN and inf become None (strict JSON has no spelling for them)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return jsonable(obj.to_dict())
    return obj
