"""Every plot of a run directory, redrawn from the files the run left (``gradwise plot RUN``)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradwise.viz._common import as_float
from gradwise.viz.histograms import plot_histogram_data
from gradwise.viz.history import plot_history
from gradwise.viz.schedule import plot_lr_schedule

if TYPE_CHECKING:
    from gradwise.training.trainer import History

__all__ = ["BATCH_LOSS_FILE", "HISTOGRAM_DIR", "plot_run"]

BATCH_LOSS_FILE = "batch_loss.csv"
HISTOGRAM_DIR = "histograms"


def plot_run(
    run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None, *, smoothing: float | None = None
) -> list[Path]:
    """Redraw every plot of a run directory from the files the run left.

    Reads, when present:

    - ``history.csv`` (one row per epoch): ``loss.png`` (per-epoch training and validation loss)
      and one ``<metric>.png`` per metric (`plot_history`), and ``lr.png`` from its ``lr`` column;
    - ``batch_loss.csv``, columns ``step`` (1-based optimizer step), ``epoch`` (0-based, as in
      ``history.csv``), ``loss`` and optionally ``lr``: the per-iteration loss, raw and smoothed,
      in ``loss.png``, and ``lr.png`` per step instead of per epoch;
    - ``histograms/epoch_0005.safetensors`` (`gradwise.training.histograms.HistogramSnapshots`):
      ``histograms_epoch_0005.png``.

    Parameters
    ----------
    run_dir : path-like
        A run directory (`gradwise.training.rundir.RunDir`).
    out_dir : path-like, optional
        Where to write; ``RUN/plots`` by default. Plots of the same names are replaced.
    smoothing : float in [0, 1), optional
        The EMA's beta for the per-iteration loss (see `plot_history`).

    Returns
    -------
    list of Path
        The files written: ``loss.png``, the metric plots, ``lr.png``, then the histograms.

    Raises
    ------
    FileNotFoundError
        If `run_dir` is not a directory, or holds neither ``history.csv`` nor histograms.
    ValueError
        If a file is malformed (naming it).
    """
    from gradwise.training.histograms import load_histograms
    from gradwise.training.history import History
    from gradwise.training.rundir import read_csv_rows

    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run directory {str(run)!r} does not exist")
    history_path = run / "history.csv"
    histogram_files = sorted((run / HISTOGRAM_DIR).glob("epoch_*.safetensors"))
    if not history_path.is_file() and not histogram_files:
        raise FileNotFoundError(
            f"{str(run)!r} holds no history.csv and no histograms/: nothing to plot (is it a gradwise run directory?)"
        )
    out = Path(out_dir) if out_dir is not None else run / "plots"
    written: list[Path] = []
    if history_path.is_file():
        history = _read_history(history_path, History)
        step_lrs: list[float] = []
        batch_path = run / BATCH_LOSS_FILE
        if batch_path.is_file():
            rows = _read_rows(batch_path, read_csv_rows)
            if rows and "loss" not in rows[0]:
                raise ValueError(f"{str(batch_path)!r} has no 'loss' column (columns: {list(rows[0])})")
            history.batch_loss = [as_float(r["loss"]) for r in rows]
            step_lrs = [as_float(r["lr"]) for r in rows if "lr" in r]
            if rows and "epoch" in rows[0]:
                last: dict[int, int] = {}
                for i, r in enumerate(rows, start=1):
                    e = r["epoch"]
                    if isinstance(e, int):
                        last[e] = int(r["step"]) if isinstance(r.get("step"), int) else i
                steps = [last.get(int(row.get("epoch", k)), -1) for k, row in enumerate(history.epochs)]
                if all(s > 0 for s in steps):
                    history.steps = steps
        written += plot_history(history, out, smoothing=smoothing)
        if step_lrs and any(math.isfinite(v) for v in step_lrs):
            written.append(plot_lr_schedule(step_lrs, out / "lr.png", xlabel="iteration (optimizer step)"))
        elif "lr" in history:
            written.append(plot_lr_schedule(history["lr"], out / "lr.png"))
    for path in histogram_files:
        data, epoch = load_histograms(path)
        stem = path.stem  # epoch_0005
        title = f"after epoch {epoch}" if epoch is not None else stem
        written.append(plot_histogram_data(data, out / f"histograms_{stem}.png", title=title))
    return written


def _read_rows(path: Path, reader: Any) -> list[dict[str, Any]]:
    import csv

    try:
        return reader(path)
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{str(path)!r} is not a readable CSV file: {err}") from err


def _read_history(path: Path, history_cls: Any) -> History:
    from gradwise.training.rundir import read_csv_rows

    history = history_cls()
    history.epochs = _read_rows(path, read_csv_rows)
    if history.epochs and "epoch" not in history.epochs[0]:
        raise ValueError(f"{str(path)!r} has no 'epoch' column; is it a gradwise history.csv?")
    return history
