"""Callbacks that write files: `ModelCheckpoint` and `CSVLogger` (re-exported by callbacks.py)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any


from gradwise.training.callback_base import (
    Callback,
    Logs,
    _improves,
    _is_finite,
    _monitored,
    resolve_mode,
)

if TYPE_CHECKING:
    pass


class ModelCheckpoint(Callback):
    """Save the model's weights (safetensors, PyTorch names, written atomically) after epochs.

    Two layouts, chosen by `path_or_dir`:

    - a directory (any path not ending in ``.safetensors``; created if missing):
      ``best.safetensors`` whenever `monitor` improves, ``last.safetensors`` after every epoch
      (`save_last`), and with ``save_best_only=False`` also ``epoch-0001.safetensors``, ... per epoch;
    - a file ``*.safetensors``, which may hold Keras' format fields (``{epoch:03d}`` counts from 1,
      any logs key such as ``{val_loss:.3f}``): written when `monitor` improves, or after every
      epoch with ``save_best_only=False``; `save_last` adds ``last.safetensors`` next to it.

    Files are written by `gradwise.io.save` (metadata: the epoch, the monitored value) and load
    with `gradwise.io.load` or into torch. Weights holding a NaN or an infinity are never written
    (a warning says so), so a divergence cannot spoil a good checkpoint. A NaN value of `monitor`
    is never an improvement.

    Parameters
    ----------
    path_or_dir : path-like
    monitor : str, default "val_loss"
    mode : {"auto", "min", "max"}, default "auto"
    save_best_only : bool, default True
    save_last : bool, default True

    Attributes
    ----------
    best, best_epoch
        The best monitored value and its (0-based) epoch; kept in `state_dict` for resuming.
    """

    def __init__(
        self,
        path_or_dir: str | os.PathLike[str],
        monitor: str = "val_loss",
        mode: str = "auto",
        save_best_only: bool = True,
        save_last: bool = True,
    ) -> None:
        super().__init__()
        self.path = Path(path_or_dir)
        self.is_dir = self.path.suffix != ".safetensors"
        self.monitor = str(monitor)
        self.mode = resolve_mode(self.monitor, mode)
        self.save_best_only = bool(save_best_only)
        self.save_last = bool(save_last)
        self.best: float = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None

    @property
    def directory(self) -> Path:
        return self.path if self.is_dir else self.path.parent

    def _format(self, epoch: int, logs: Logs) -> Path:
        try:
            return Path(str(self.path).format(**{**logs, "epoch": epoch + 1}))
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"ModelCheckpoint: cannot fill {str(self.path)!r} from the logs {sorted(logs)}: {err}") from None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        targets: list[tuple[Path, str]] = []
        needs_best = self.is_dir or self.save_best_only
        if needs_best:
            value = _monitored("ModelCheckpoint", self.monitor, logs)
            if _improves(value, self.best, self.mode):
                targets.append((self.path / "best.safetensors" if self.is_dir else self._format(epoch, logs), "best"))
        if not self.save_best_only:
            per_epoch = self.path / f"epoch-{epoch + 1:04d}.safetensors" if self.is_dir else self._format(epoch, logs)
            targets.append((per_epoch, "epoch"))
        if self.save_last:
            targets.append((self.directory / "last.safetensors", "last"))
        if not targets:
            return
        state = self.model.state_dict()
        if not _is_finite(list(state.values())):
            warnings.warn(
                f"ModelCheckpoint: the weights after epoch {epoch + 1} contain NaN or inf; "
                f"{', '.join(str(p) for p, _ in targets)} not written",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        from gradwise.io import save

        self.directory.mkdir(parents=True, exist_ok=True)
        metadata = {"epoch": str(epoch)}
        if self.monitor in logs:
            metadata[self.monitor] = repr(float(logs[self.monitor]))
        for path, kind in targets:
            path.parent.mkdir(parents=True, exist_ok=True)
            save(state, path, metadata={**metadata, "checkpoint": kind})
            if kind == "best":
                self.best, self.best_epoch = float(logs[self.monitor]), epoch

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = None if state["best_epoch"] is None else int(state["best_epoch"])

    def __repr__(self) -> str:
        return (
            f"ModelCheckpoint({str(self.path)!r}, monitor={self.monitor!r}, mode={self.mode!r}, "
            f"save_best_only={self.save_best_only}, save_last={self.save_last})"
        )


# -------------------------------------------------------------------------------- TerminateOnNaN


class CSVLogger(Callback):
    """Write one CSV row per epoch: the epoch's logs, as in ``history.csv`` (Keras' CSVLogger).

    The whole file is rewritten atomically after every epoch (a temporary file, fsync, rename;
    `gradwise.training.rundir.atomic_write_bytes`): a crash never leaves a torn row, and a column
    that appears later (a callback's key) widens the header instead of misaligning rows. Floats
    are written with ``repr`` and read back exactly.

    Parameters
    ----------
    path : path-like
        Its directory is created if missing.
    append : bool, default False
        Keep the rows already in the file (continuing an earlier run); otherwise the file is
        emptied when training starts. Later `fit` calls on the same trainer always append.

    A resumed run (`load_state_dict`) keeps exactly the rows written up to the checkpoint and drops
    any written after it, so the file matches the resumed history.
    """

    def __init__(self, path: str | os.PathLike[str], append: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.append = bool(append)
        self.rows: list[dict[str, Any]] = []
        self._started = False
        self._resume_rows: int | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        if self._started:
            return
        from gradwise.training.rundir import atomic_write_bytes, read_csv_rows

        self._started = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing = read_csv_rows(self.path) if self.path.is_file() and self.path.stat().st_size else []
        if self._resume_rows is not None:
            if len(existing) < self._resume_rows:
                raise ValueError(
                    f"CSVLogger: {self.path} has {len(existing)} rows, fewer than the "
                    f"{self._resume_rows} written before the checkpoint"
                )
            self.rows = existing[: self._resume_rows]
            self._write()
        elif self.append:
            self.rows = existing
        else:
            self.rows = []
            atomic_write_bytes(self.path, b"")

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.rows.append(dict(logs or {}))
        self._write()

    def _write(self) -> None:
        from gradwise.training.rundir import atomic_write_bytes, rows_to_csv

        atomic_write_bytes(self.path, rows_to_csv(self.rows) if self.rows else b"")

    def state_dict(self) -> dict[str, Any]:
        return {"rows": len(self.rows)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._resume_rows = int(state["rows"])
        self._started = False

    def __repr__(self) -> str:
        return f"CSVLogger({str(self.path)!r}, append={self.append})"


# Built-in callbacks that live in their own files, importable from here (after `Callback` exists,
# which they subclass).
