"""`gradwise diagnose CONFIG`: the babysitting protocol on a config's model, data and optimizer.

Builds everything as `gradwise train` does (same seed, data split, optimizer and schedule,
penalty), then runs `gradwise.diagnostics.diagnose`: initial loss, penalty, gradient check,
overfitting 20 samples, a learning-rate sweep, a short babysat training and the bias/variance
report. Prints the table of verdicts and writes ``report.md``, ``report.json``, ``lr_sweep.csv``,
``babysit.csv``, the resolved ``config.toml`` and ``plots/*.png`` into a fresh run directory
(``runs/<timestamp>-diagnose-<name>`` unless ``--out`` is given).

Exit codes (`gradwise.cli.__main__.main`): 0 when no step is a problem (warnings allowed), 1 when
one is, 2 for a bad config, bad data (NaN), a model whose output does not fit the loss, or an
existing non-empty ``--out``: one line on stderr, before anything is written.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_parser", "cmd_diagnose"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``diagnose`` on the ``add_subparsers()`` object of the ``gradwise`` parser."""
    p = subparsers.add_parser(
        "diagnose",
        help="run the babysitting protocol: initial loss, gradient check, overfit, lr sweep, "
        "training health, bias/variance",
        description=(
            "Check a config step by step before training it for real: the initial loss against its "
            "expected value, the penalty, a float64 gradient check, overfitting 20 samples, a "
            "learning-rate sweep, a short training watched for update/weight ratios, dead and "
            "saturated units, gradient norms and activations, and the bias/variance reading of its "
            "errors. Exit 0 when nothing is a problem, 1 when something is, 2 for a bad config."
        ),
    )
    p.add_argument("config", nargs="?", help="TOML config; the built-in default when omitted")
    p.add_argument("--out", help="directory to write into (must not exist or be empty); "
                                 "default runs/<timestamp>-diagnose-<name>")
    p.add_argument("--steps", type=int, default=600, help="optimizer steps of the short training (default 600)")
    p.add_argument("--baseline-error", type=float, default=0.0,
                   help="the error to read the bias against: human level or the best known (default 0)")
    p.add_argument("--gap", type=float, default=0.05,
                   help="a bias, variance or mismatch above this is flagged (default 0.05)")
    p.add_argument("--dev", choices=("val", "test"), default="val",
                   help="the dev set: the config's validation split (default) or its test split; "
                        "a train-dev set is held out of the training split either way")
    p.add_argument("--no-plots", action="store_true", help="write no PNGs")
    p.add_argument("--dpi", type=int, default=110, help="resolution of the PNGs (default 110)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_diagnose)
    return p


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Run ``gradwise diagnose``; returns the exit code (errors propagate to `main`: exit 2)."""
    import gradwise as gw
    from gradwise.cli import config as cfgmod
    from gradwise.diagnostics.protocol import check_inputs, diagnose
    from gradwise.training.rundir import RunDir

    if args.steps < 1:
        raise ValueError(f"--steps {args.steps} must be at least 1")
    if not (math.isfinite(args.baseline_error) and 0 <= args.baseline_error):
        raise ValueError(f"--baseline-error {args.baseline_error:g} must be a number >= 0")
    if args.dpi < 10:
        raise ValueError(f"--dpi {args.dpi} must be at least 10")
    if not (math.isfinite(args.gap) and args.gap > 0):
        raise ValueError(f"--gap {args.gap:g} must be a number > 0")
    cfg = cfgmod.load_or_default(args.config, tuple(args.set or ()))
    train_cfg = cfg.section("train")
    seed = int(train_cfg["seed"])
    gw.manual_seed(seed)
    rng = np.random.default_rng(seed)
    splits = cfgmod.build_data(cfg, rng)
    model = cfgmod.build_model(cfg, rng, splits.meta)
    loss = cfgmod.build_loss(cfg)
    cfgmod.check_fit(model, loss, splits, cfg.source)
    batch_size = int(train_cfg["batch_size"])
    steps_per_epoch = max(1, math.ceil(len(splits.x_train) / batch_size))
    lr, _ = cfgmod.build_schedule(cfg, steps_per_epoch=steps_per_epoch)  # plateau/momentum callbacks: not used here
    optimizer = cfgmod.build_optimizer(cfg, model, lr)
    penalty = cfgmod.build_penalty(cfg)
    dev = (splits.x_test, splits.y_test) if args.dev == "test" or not len(splits.x_val) else (splits.x_val, splits.y_val)
    data = (splits.x_train, splits.y_train, *dev)
    check_inputs(model, loss, data)  # NaN, lengths, output vs loss: exit 2 before anything is written

    name = Path(args.config).stem if args.config else "default"
    run = RunDir.create(args.out) if args.out else RunDir.new("runs", name=f"diagnose-{name}")
    run.write_config(cfg.data)
    print(
        f"gradwise: diagnose {name} on {cfg.section('data')['dataset']} ({len(splits.x_train)} train, "
        f"{len(dev[0])} dev from its {'test' if dev[0] is splits.x_test else 'validation'} split), "
        f"{model.num_parameters():,} parameters, {type(optimizer).__name__}, {args.steps} steps; run directory {run.path}"
    )
    plot = None
    if not args.no_plots:
        from gradwise.viz import plot_diagnosis

        def plot(diagnosis: Any, out: Path) -> Any:
            return plot_diagnosis(diagnosis, out, dpi=args.dpi)
    diagnosis = diagnose(
        model, loss, data, optimizer=optimizer, penalty=penalty, baseline_error=args.baseline_error,
        gap=args.gap, batch_size=batch_size, steps=args.steps, run_dir=run, plot=plot, seed=seed, log=print,
    )
    from rich.console import Console

    # The terminal's width on a terminal; a wide table in a log file rather than rich's 80 columns.
    Console(width=None if sys.stdout.isatty() else 160).print(diagnosis.table())
    verdict = {0: "nothing is a problem", 1: f"{len(diagnosis.problems)} problem(s)"}[diagnosis.exit_code]
    print(f"gradwise: diagnose: {verdict}, {len(diagnosis.warnings)} warning(s); report in {run.path / 'report.md'}")
    return diagnosis.exit_code
