"""Choosing the checkpoint to resume from: ``latest``, or the newest older one that verifies.

A disk error, a partial copy between machines or a bad sector can damage the newest checkpoint
while an intact older one sits beside it. `find_resumable` verifies the checkpoint ``latest``
names and, if it is damaged (a `CorruptCheckpoint`: missing, unreadable, truncated, a checksum
that differs from the manifest, ``latest`` naming a directory that is gone), the next older
one, and so on, and returns the newest that verifies with the list of those it passed over.
It changes nothing on disk: setting the damaged ones aside (`store.set_aside`) is done by
`trainer_state.resume` once the whole resume is known to succeed.

Only damage makes it fall back. A checkpoint from a newer gradwise, or one that does not fit the
model, optimizer or callbacks, stops the resume at once: an older checkpoint of the same run
would not fit either, and nothing about it is damaged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gradwise.training.checkpoint.store import (
    LATEST,
    CorruptCheckpoint,
    checkpoints_folder,
    is_checkpoint_dir,
    list_checkpoints,
    order,
    read_latest,
)
from gradwise.training.checkpoint.verify import Checkpoint, load_checkpoint

__all__ = ["NoIntactCheckpoint", "Rejected", "Resumable", "find_resumable"]


class NoIntactCheckpoint(ValueError):
    """Every checkpoint a resume could fall back to is damaged; the message lists each and why.

    Attributes
    ----------
    rejected : list of Rejected
        Newest first, each with its full one-line reason.
    """

    def __init__(self, message: str, rejected: list[Rejected]) -> None:
        super().__init__(message)
        self.rejected = rejected


@dataclass(frozen=True)
class Rejected:
    """A checkpoint passed over because it failed verification.

    Attributes
    ----------
    path : Path
        The checkpoint directory (which may be missing: ``latest`` named a directory that is gone),
        or the ``latest`` file itself when that is unreadable.
    error : CorruptCheckpoint
        What is wrong, naming the file (``str(error)`` is the one-line message).
    """

    path: Path
    error: CorruptCheckpoint

    @property
    def reason(self) -> str:
        return str(self.error)


@dataclass
class Resumable:
    """The checkpoint to resume from (read and verified) and the newer ones that failed verification.

    Attributes
    ----------
    checkpoint : Checkpoint
    rejected : list of Rejected
        Newest first; empty when ``latest`` (or the checkpoint asked for) verified.
    """

    checkpoint: Checkpoint
    rejected: list[Rejected] = field(default_factory=list)


def find_resumable(path: str | os.PathLike[str], strict: bool = False) -> Resumable:
    """The checkpoint to resume a run from: ``latest`` if it verifies, else the newest older one that does.

    Parameters
    ----------
    path : path-like
        A run directory or its ``checkpoints`` folder (``latest`` is followed, falling back), or
        one checkpoint directory (exactly that one is read: asking for it is asking for no other).
    strict : bool
        Stop at the first damaged checkpoint instead of falling back (`CorruptCheckpoint`).

    Raises
    ------
    FileNotFoundError
        If `path` does not exist or holds no ``checkpoints/latest``.
    CorruptCheckpoint
        With `strict`, or for a single checkpoint directory, if it is damaged.
    NoIntactCheckpoint
        If ``latest`` and every older checkpoint are damaged (one line naming each and why).
    ValueError
        If a checkpoint is of a newer format (never a reason to fall back).
    """
    p = Path(path)
    if p.exists() and is_checkpoint_dir(p):
        return Resumable(load_checkpoint(p))
    directory = checkpoints_folder(p)
    if not p.exists() or not (directory / LATEST).is_file():
        load_checkpoint(p)  # raises the FileNotFoundError that says what is missing
    rejected: list[Rejected] = []
    try:
        newest = read_latest(directory)
    except CorruptCheckpoint as e:  # unreadable or garbage: every checkpoint is a candidate
        if strict:
            raise
        rejected.append(Rejected(directory / LATEST, e))
        newest = None
    candidates = [c for c in reversed(list_checkpoints(directory)) if newest is None or order(c) < order(newest)]
    if newest is not None:
        named = directory / newest
        if named.is_dir():
            candidates.insert(0, named)
        else:
            error = CorruptCheckpoint(directory / LATEST, f"names {newest!r}, but {named} is missing", "missing")
            if strict:
                raise error
            rejected.append(Rejected(named, error))
    for candidate in candidates:
        try:
            return Resumable(load_checkpoint(candidate), rejected)
        except CorruptCheckpoint as e:
            if strict:
                raise
            rejected.append(Rejected(candidate, e))
    tried = "; ".join(f"{r.path.name} ({r.error.short})" for r in rejected)
    raise NoIntactCheckpoint(
        f"no intact checkpoint to resume from in {directory}: tried {tried}; the files are left as they "
        f"are (train again without --resume, or restore a copy)",
        rejected,
    )
