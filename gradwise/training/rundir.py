"""The run directory: everything one training run leaves on disk.

Layout (see ``docs/training.md``)::

    RUN/
      config.toml                 the resolved configuration (`write_config`)
      history.csv                 one row per epoch (`append_history`)
      metrics.json                final metrics, wall time, steps (`write_metrics`)
      checkpoints/best.safetensors, checkpoints/last.safetensors   (`save_weights`)
      checkpoints/latest, checkpoints/step-XXXXXXXX/   resumable checkpoints (`gradwise.training.checkpoint`)
      batch_loss.csv              the loss of every iteration (`BATCH_LOSS_FILE`)
      plots/*.png                 (`plots_dir`; drawn by the `plot` function the caller gives
                                  `RunRecorder`, e.g. `gradwise.viz.plot_run`: training never imports viz)

Every file is written through `atomic_write_bytes` (`gradwise.fileio`, re-exported here): a
temporary file in the same directory, flushed and fsynced, then renamed over the target with
`os.replace`. A crash or a full disk mid-write leaves the previous version of the file intact,
never a truncated one. `safetensors` and `tomli_w` are imported on first use, so importing
gradwise stays fast.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# Re-exported: the run directory's writers and their callers have always imported them from here.
from gradwise.fileio import atomic_write_bytes, fsync_dir, jsonable
from gradwise.training.callback_base import resolve_mode

if TYPE_CHECKING:
    from gradwise.core import Layer
    from gradwise.training.trainer import Trainer

__all__ = [
    "BATCH_LOSS_FILE",
    "RunDir",
    "RunRecorder",
    "atomic_write_bytes",
    "fsync_dir",
    "read_csv_rows",
    "rows_to_csv",
]

#: The per-iteration losses a finished run leaves (``RUN/batch_loss.csv``, columns ``batch`` and
#: ``loss``), for the plots: ``history.csv`` has one row per epoch only. `gradwise.viz` reads it.
BATCH_LOSS_FILE = "batch_loss.csv"


# ----------------------------------------------------------------------------------------- CSV


def rows_to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> bytes:
    """Encode rows as CSV; columns are `columns` then any other key, in first-seen order.

    Floats are written with `repr` (round-trips exactly); missing values are left empty.
    """
    cols = list(columns or ())
    seen = set(cols)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                cols.append(key)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return buf.getvalue().encode("utf-8")


def _csv_value(v: Any) -> Any:
    if isinstance(v, (np.generic,)):
        v = v.item()
    return repr(v) if isinstance(v, float) else v


def read_csv_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a CSV written by `rows_to_csv`; numbers come back as int or float, empty cells as NaN."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: _parse_number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _parse_number(text: str) -> Any:
    if text == "":
        return math.nan
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


# ----------------------------------------------------------------------------------------- JSON


# ----------------------------------------------------------------------------------------- RunDir


class RunDir:
    """A directory holding one training run.

    `RunDir(path)` wraps a path without touching the disk (to read an earlier run, or to write
    into a directory you created yourself); `RunDir.create` and `RunDir.new` create it and refuse
    to write over an earlier run.

    Parameters
    ----------
    path : path-like
        The run directory.
    """

    CHECKPOINTS = "checkpoints"
    PLOTS = "plots"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | os.PathLike[str], exist_ok: bool = False) -> RunDir:
        """Create `path` (and its parents); an existing *empty* directory is fine.

        Raises
        ------
        FileExistsError
            If `path` is a non-empty directory and `exist_ok` is False (an earlier run would be
            overwritten), or if `path` is a file.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"run directory {str(path)!r} exists and is a file, not a directory")
        if path.is_dir() and not exist_ok and any(path.iterdir()):
            raise FileExistsError(
                f"run directory {str(path)!r} already exists and is not empty; gradwise never writes "
                f"over an earlier run. Choose another directory (or RunDir.new(root) for a fresh "
                f"timestamped one), or delete this one."
            )
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def new(cls, root: str | os.PathLike[str] = "runs", name: str = "run") -> RunDir:
        """Create a fresh ``root/YYYYmmdd-HHMMSS-name`` directory, suffixed -2, -3, ... if taken."""
        if not name or any(sep in name for sep in ("/", "\\", os.sep)) or name in (".", ".."):
            raise ValueError(f"{name=} must be a plain directory name (no path separators)")
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        base = f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
        for i in range(1, 10_000):
            candidate = root / (base if i == 1 else f"{base}-{i}")
            try:
                # mkdir without exist_ok claims the name atomically, even against a parallel run.
                candidate.mkdir()
            except FileExistsError:
                continue
            return cls(candidate)
        raise FileExistsError(f"could not find a free run directory name under {str(root)!r} for {base!r}")

    # ------------------------------------------------------------------ paths
    @property
    def checkpoints_dir(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def plots_dir(self) -> Path:
        """``RUN/plots``; created by whoever writes into it (`gradwise.viz.plot_history` does)."""
        return self.path / self.PLOTS

    @property
    def config_path(self) -> Path:
        return self.path / "config.toml"

    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    def weights_path(self, name: str) -> Path:
        """``RUN/checkpoints/<name>.safetensors``."""
        if not name or "/" in name or "\\" in name:
            raise ValueError(f"checkpoint {name=} must be a plain file stem such as 'best' or 'last'")
        return self.checkpoints_dir / f"{name}.safetensors"

    # ------------------------------------------------------------------ writers
    def write_config(self, cfg: Mapping[str, Any]) -> Path:
        """Write `cfg` as ``config.toml`` (TOML has no null: leave out keys whose value is None)."""
        import tomli_w

        self.path.mkdir(parents=True, exist_ok=True)
        return atomic_write_bytes(self.config_path, tomli_w.dumps(dict(cfg)).encode("utf-8"))

    def write_metrics(self, d: Mapping[str, Any]) -> Path:
        """Write `d` as ``metrics.json`` (numpy scalars become numbers, NaN and inf become null)."""
        self.path.mkdir(parents=True, exist_ok=True)
        text = json.dumps(jsonable(d), indent=2, allow_nan=False) + "\n"
        return atomic_write_bytes(self.metrics_path, text.encode("utf-8"))

    def read_metrics(self) -> dict[str, Any]:
        return json.loads(self.metrics_path.read_text(encoding="utf-8"))

    def save_weights(self, state_dict: Mapping[str, np.ndarray], name: str) -> Path:
        """Save a state dict to ``checkpoints/<name>.safetensors`` (loads into torch unchanged)."""
        from gradwise.io import save

        path = self.weights_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return save(state_dict, path)  # atomic, with the architecture and a checksum in the metadata

    def load_weights(self, name: str) -> dict[str, np.ndarray]:
        """Read ``checkpoints/<name>.safetensors`` back into a state dict."""
        from gradwise.io import load

        return load(self.weights_path(name))  # a torn or foreign file is a ValueError naming it

    def append_history(self, row: Mapping[str, Any]) -> Path:
        """Add one epoch's row to ``history.csv``.

        The whole file is rewritten atomically (histories are small), so a row with a new column
        (a callback that adds a key to the logs) widens the header instead of misaligning rows.
        """
        rows = self.read_history() if self.history_path.exists() else []
        rows.append(dict(row))
        return self.write_history(rows)

    def write_history(self, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Path:
        """Write all rows to ``history.csv`` at once (a header alone when there are none)."""
        self.path.mkdir(parents=True, exist_ok=True)
        return atomic_write_bytes(self.history_path, rows_to_csv(list(rows), columns))

    def read_history(self) -> list[dict[str, Any]]:
        return read_csv_rows(self.history_path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


# ----------------------------------------------------------------------------------------- recorder


def is_finite_number(value: Any) -> bool:
    """True for a finite int or float (NumPy scalars included), False for NaN, inf and non-numbers."""
    return (
        isinstance(value, (int, float, np.number))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _all_finite(state: Mapping[str, np.ndarray]) -> bool:
    return all(
        bool(np.isfinite(v).all()) for v in state.values() if np.issubdtype(np.asarray(v).dtype, np.inexact)
    )


class RunRecorder:
    """Writes a `Trainer`'s progress into a `RunDir`; `Trainer(run_dir=...)` drives it.

    After each epoch: the row goes to ``history.csv`` and, when the monitored value improves, the
    weights to ``checkpoints/best.safetensors``. At the end of `fit`: ``checkpoints/last.safetensors``,
    ``metrics.json``, ``batch_loss.csv`` and, with `plot`, the plots. Weights containing NaN or
    inf are never written, so a divergence cannot spoil the best (or last) checkpoint. The best
    value persists across `fit` calls.

    Parameters
    ----------
    run : RunDir
    monitor : str
        The logs key to watch; minimized for losses and errors, maximized otherwise.
    plot : callable, optional
        Called as ``plot(run.path)`` once everything else is written (also after a divergence),
        to draw ``RUN/plots``: `gradwise.viz.plot_run`, which ``gradwise train`` passes. Plotting
        sits above training, so the recorder is handed the function instead of importing it.
    """

    def __init__(self, run: RunDir, monitor: str, plot: Callable[[Path], object] | None = None) -> None:
        self.run = run
        self.plot = plot
        self.requested_monitor = monitor
        self.monitor = monitor
        self.mode = resolve_mode(monitor, "auto")
        self.best_value: float | None = None
        self.best_epoch: int | None = None

    def begin(self, columns: Sequence[str]) -> None:
        """Check the monitor against the keys the coming epochs will log.

        Without validation, ``"val_X"`` falls back to ``"X"`` with a warning (keeping a best
        checkpoint by training loss beats keeping none); an unknown key is an error.
        """
        monitor = self.requested_monitor
        if monitor not in columns:
            if monitor.startswith("val_") and monitor[4:] in columns:
                warnings.warn(
                    f"Trainer: monitor={monitor!r} needs a val_loader; choosing the best checkpoint "
                    f"by {monitor[4:]!r} (training data) instead",
                    stacklevel=3,
                )
                monitor = monitor[4:]
            else:
                logged = [c for c in columns if c not in ("epoch", "lr", "time")]
                raise ValueError(f"Trainer: {monitor=} is not one of the logged values {logged}")
        if monitor != self.monitor:
            self.best_value = self.best_epoch = None  # values of another key do not compare
        self.monitor, self.mode = monitor, resolve_mode(monitor, "auto")

    def restore(
        self, monitor: str, best_value: float | None, best_epoch: int | None, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Continue a resumed run (after `begin`): its best so far, and ``history.csv`` rewritten from `rows`.

        The file may hold epochs finished after the checkpoint was written; they are redone, and
        would otherwise appear twice.
        """
        if monitor == self.monitor:  # else `begin` chose another key, whose values do not compare
            self.best_value = None if best_value is None else float(best_value)
            self.best_epoch = None if best_epoch is None else int(best_epoch)
        if rows:
            self.run.write_history(rows)
        else:
            self.run.history_path.unlink(missing_ok=True)

    def epoch_end(self, logs: Mapping[str, Any], model: Layer) -> None:
        """Append the row; save the weights if the monitored value improved."""
        self.run.append_history(logs)
        if not is_finite_number(logs.get(self.monitor)):
            return
        value = float(logs[self.monitor])
        best = self.best_value
        if best is not None and not (value < best if self.mode == "min" else value > best):
            return
        state = model.state_dict()
        if _all_finite(state):
            self.run.save_weights(state, "best")
            self.best_value, self.best_epoch = value, int(logs["epoch"])

    def finish(
        self,
        trainer: Trainer,
        status: str,
        wall_time: float,
        columns: Sequence[str] | None = None,
        diverged_at: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write the last weights (unless diverged), ``metrics.json``, ``batch_loss.csv`` and the plots.

        `columns` (given after a divergence) rewrites ``history.csv`` so that it exists, with its
        header, even when the first epoch diverged. Returns the summary written to ``metrics.json``.
        """
        history = trainer.history
        if columns is not None:
            self.run.write_history(history.epochs, columns=columns)
        state = trainer.model.state_dict()
        if diverged_at is None and _all_finite(state):
            self.run.save_weights(state, "last")
        last = history.epochs[-1] if history.epochs else {}
        summary: dict[str, Any] = {
            "status": status,
            "epochs": trainer.epoch,
            "steps": trainer.global_step,
            "wall_time": wall_time,
            "monitor": self.monitor,
            "mode": self.mode,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "train": {
                k: v for k, v in last.items() if k not in ("epoch", "lr", "time") and not k.startswith("val_")
            },
            "val": {k[4:]: v for k, v in last.items() if k.startswith("val_")},
        }
        if diverged_at is not None:
            summary["diverged_at"] = dict(diverged_at)
        self.run.write_metrics(summary)
        # Per-iteration losses for `gradwise plot` (history.csv has one row per epoch only).
        rows = [{"batch": i, "loss": v} for i, v in enumerate(history.batch_loss, start=1)]
        atomic_write_bytes(self.run.path / BATCH_LOSS_FILE, rows_to_csv(rows, ["batch", "loss"]))
        if self.plot is not None:
            self.plot(self.run.path)
        return summary
