"""`gradwise plot RUN_DIR`: redraw every plot of a run directory from the files it holds.

Reads ``history.csv`` (and ``batch_loss.csv`` and ``histograms/`` when the run wrote them) and
writes ``loss.png``, one ``<metric>.png`` per metric, ``lr.png`` and ``histograms_epoch_NNNN.png``
into ``RUN_DIR/plots`` (or ``--out``), through `gradwise.viz.plot_run`. Nothing is trained.

Errors (no such directory, nothing to plot, a malformed file) propagate as `FileNotFoundError`
or `ValueError`, which `gradwise.cli.__main__.main` prints on one line with exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "cmd_plot"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``plot`` on the ``add_subparsers()`` object of the ``gradwise`` parser."""
    p = subparsers.add_parser(
        "plot",
        help="redraw the plots of a run directory (loss, metrics, learning rate, histograms)",
        description=(
            "Redraw the plots of a training run from its files: history.csv (loss and metrics per "
            "epoch, learning rate), batch_loss.csv (loss per iteration) and histograms/ (weights "
            "and gradients), into RUN_DIR/plots unless --out is given."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `gradwise train`")
    p.add_argument("--out", help="directory for the PNGs (default RUN_DIR/plots)")
    p.add_argument(
        "--smoothing", type=float, default=None,
        help="EMA beta in [0, 1) for the per-iteration loss (default: about 1/20 of the iterations)",
    )
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_plot)
    return p


def cmd_plot(args: argparse.Namespace) -> int:
    """Run ``gradwise plot``; returns the exit code (0). Errors propagate to `main` (see the module)."""
    from gradwise.viz import plot_run

    if args.smoothing is not None and not 0 <= args.smoothing < 1:
        raise ValueError(f"--smoothing {args.smoothing:g} must be in [0, 1)")
    written = plot_run(args.run_dir, args.out, smoothing=args.smoothing)
    where = Path(args.out) if args.out else Path(args.run_dir) / "plots"
    print(f"gradwise: wrote {len(written)} plot(s) to {where}: {', '.join(p.name for p in written)}")
    return 0
