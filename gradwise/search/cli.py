"""`gradwise search CONFIG --trials N [--workers K] [--storage URL] [--study NAME] [--refine]`.

The train function comes from the caller (`gradwise.cli.__main__` passes its `cmd_train`), so
this module does not import the command line that registers it.
"""

from __future__ import annotations

import argparse
from typing import Any

from gradwise.search.runner import TrainFn
from gradwise.search.storage import GRACE_PERIOD
from gradwise.search.study import DEFAULT_DIR, run_search

__all__ = ["add_parser"]


def add_parser(subparsers: Any, train: TrainFn) -> argparse.ArgumentParser:
    """Register ``search`` on the ``add_subparsers()`` object of the ``gradwise`` parser."""
    p = subparsers.add_parser(
        "search",
        help="hyperparameter search on Optuna over the spaces of a config's [search] table",
        description=(
            "Train one run per trial over the spaces of CONFIG's [search] table (random sampling by "
            "default, TPE with sampler = \"tpe\"; pruning with pruner = \"median\" or \"halving\"). "
            "The study lives in OUT/studies.db (or --storage URL): the same command again resumes it, "
            "and several processes or machines on one storage share its trials. Writes OUT/STUDY/: "
            "trials/, results.csv, plots/ and best.toml. Browse with: optuna-dashboard sqlite:///OUT/studies.db"
        ),
    )
    p.add_argument("config", help="TOML config with a [search] table")
    p.add_argument("--trials", type=int, required=True, help="finished trials (complete or pruned) the study should hold")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL, e.g. postgresql://user:pw@host/db "
                   "(default: sqlite:///OUT/studies.db)")
    p.add_argument("--study", metavar="NAME", help="study name (default: the config's file name)")
    p.add_argument("--refine", action="store_true", help="narrow the ranges around the best trials of "
                   "STUDY into a new study STUDY-fine (coarse to fine) and run that")
    p.add_argument("--out", help=f"search directory (default {DEFAULT_DIR}/)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    p.add_argument("--grace-period", type=int, default=GRACE_PERIOD, metavar="SECONDS",
                   help=f"a running trial silent this long is counted lost and run again (default {GRACE_PERIOD})")
    p.add_argument("--quiet", action="store_true", help="no line per trial, no table")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=lambda args: _cmd_search(args, train))
    return p


def _cmd_search(args: argparse.Namespace, train: TrainFn) -> int:
    run_search(
        args.config,
        trials=args.trials,
        train=train,
        workers=args.workers,
        storage=args.storage,
        study=args.study,
        refine=args.refine,
        out=args.out,
        overrides=tuple(args.set or ()),
        grace_period=args.grace_period,
        verbose=not args.quiet,
    )
    return 0
