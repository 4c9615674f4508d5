"""`History`: the record of a training run, one logs dict per epoch plus every iteration's loss."""

from __future__ import annotations

import math
import os
from typing import Any

from gradwise.training.callback_base import resolve_mode
from gradwise.training.rundir import atomic_write_bytes, is_finite_number, read_csv_rows, rows_to_csv

__all__ = ["History"]


class History:
    """The record of training: one logs dict per epoch and the loss of every iteration.

    Attributes
    ----------
    epochs : list of dict
        Per epoch, Keras' keys: ``epoch`` (0-based), ``loss``, each metric, ``val_loss`` and
        ``val_<metric>`` when validating, ``lr`` (of the first param group, as used by the epoch's
        last step) and ``time`` (seconds, validation included).
    batch_loss : list of float
        The training loss of every iteration, in order (the last one is non-finite when training
        diverged).
    steps : list of int
        The total number of optimizer steps at the end of each epoch (to place epochs on an
        iteration axis).
    """

    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []
        self.batch_loss: list[float] = []
        self.steps: list[int] = []

    def __getitem__(self, key: str) -> list[Any]:
        """The values of `key` per epoch, e.g. ``history["val_accuracy"]`` (NaN where missing)."""
        if not any(key in row for row in self.epochs):
            raise KeyError(f"{key!r} is not in the history; recorded keys: {self.keys()}")
        return [row.get(key, math.nan) for row in self.epochs]

    def __contains__(self, key: object) -> bool:
        return any(key in row for row in self.epochs)

    def __len__(self) -> int:
        return len(self.epochs)

    def keys(self) -> list[str]:
        """Every recorded key, in first-seen order."""
        seen: dict[str, None] = {}
        for row in self.epochs:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def best(self, monitor: str = "val_loss", mode: str = "auto") -> dict[str, Any]:
        """The logs of the epoch with the best finite `monitor` value (the earliest on a tie).

        Parameters
        ----------
        monitor : str
            A key of the logs.
        mode : {"auto", "min", "max"}
            ``"auto"`` minimizes losses and errors and maximizes everything else.
        """
        mode = resolve_mode(monitor, mode)
        candidates = [row for row in self.epochs if is_finite_number(row.get(monitor))]
        if not candidates:
            raise ValueError(f"no epoch has a finite {monitor!r}; recorded keys: {self.keys()}")
        pick = min if mode == "min" else max
        return dict(pick(candidates, key=lambda row: float(row[monitor])))

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the per-epoch rows as CSV (atomically; floats round-trip exactly)."""
        atomic_write_bytes(path, rows_to_csv(self.epochs))

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> History:
        """Read a ``history.csv`` back (per-iteration losses are not in it)."""
        history = cls()
        history.epochs = read_csv_rows(path)
        return history

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epochs)}, iterations={len(self.batch_loss)}, keys={self.keys()})"
