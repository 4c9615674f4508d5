"""`gradwise lr-find CONFIG`: the learning-rate range test on a config's model, data and optimizer.

Builds everything exactly as `gradwise train` does (same seed, same data split, same optimizer
with its param groups, same penalty), runs `gradwise.optim.lr_finder.lr_find` on the training
split, draws ``lr_find.png`` with `gradwise.viz.plot_lr_finder`, and writes it, ``lr_find.csv``
and the resolved ``config.toml`` into a fresh run directory (``runs/<timestamp>-lr-find-<name>`` unless ``--out`` is given). Nothing is
trained for real: the finder restores the model afterwards and the weights are not saved.

Exit codes are those of ``gradwise`` (`gradwise.cli.__main__.main`): 0 on success, 2 for an error
the user can fix (a bad config, an existing non-empty ``--out``, bad arguments), 1 when the loss
is already NaN or infinite at the first batch. The command maps these itself, so it behaves the
same when called through `main` or through a parser built around `add_parser`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_parser", "cmd_lr_find"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``lr-find`` on the ``add_subparsers()`` object of the ``gradwise`` parser."""
    p = subparsers.add_parser(
        "lr-find",
        help="learning-rate range test: exponential lr ramp, loss plot, suggested lr",
        description=(
            "Train on the config's training data while the learning rate grows exponentially "
            "from --start-lr to --end-lr, stop when the loss diverges (the smoothed loss rises "
            "back above its start after falling, passes 4x its minimum, or is NaN), restore the "
            "model, then write lr_find.png and lr_find.csv and print where it diverged and the "
            "suggested learning rates."
        ),
    )
    p.add_argument("config", nargs="?", help="TOML config; the built-in default when omitted")
    p.add_argument("--out", help="directory to write into (must not exist or be empty); "
                                 "default runs/<timestamp>-lr-find-<name>")
    p.add_argument("--start-lr", type=float, default=1e-7, help="first learning rate (default 1e-7)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last learning rate (default 10)")
    p.add_argument("--steps", type=int, default=200, help="mini-batches in the ramp (default 200)")
    p.add_argument("--no-stop", action="store_true",
                   help="run the whole ramp past the divergence (still reported); a NaN loss ends it anyway")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_lr_find)
    return p


def cmd_lr_find(args: argparse.Namespace) -> int:
    """Run ``gradwise lr-find``; returns the exit code. Errors propagate to `gradwise.cli.__main__.main`,
    which prints them on one line (exit 2 for a bad config or an existing --out, 1 for a non-finite loss)."""
    import gradwise as gw
    from gradwise.cli import config as cfgmod
    from gradwise.data.loader import DataLoader
    from gradwise.optim.lr_finder import lr_find
    from gradwise.training.rundir import RunDir, atomic_write_bytes, rows_to_csv
    from gradwise.viz import plot_lr_finder

    # Checked here too (lr_find checks them again) so that the error names the option and comes
    # before the config is built or any directory created.
    if not (math.isfinite(args.start_lr) and args.start_lr > 0):
        raise ValueError(f"--start-lr {args.start_lr:g} must be a finite number > 0")
    if not (math.isfinite(args.end_lr) and args.end_lr > args.start_lr):
        raise ValueError(f"--end-lr {args.end_lr:g} must be finite and greater than --start-lr {args.start_lr:g}")
    if args.steps < 2:
        raise ValueError(f"--steps {args.steps} must be at least 2")
    overrides = tuple(args.set or ())
    cfg = cfgmod.load_or_default(args.config, overrides)
    train_cfg = cfg.section("train")
    seed = int(train_cfg["seed"])
    gw.manual_seed(seed)
    rng = np.random.default_rng(seed)

    splits = cfgmod.build_data(cfg, rng)
    model = cfgmod.build_model(cfg, rng, splits.meta)
    loss = cfgmod.build_loss(cfg)
    cfgmod.check_fit(model, loss, splits, cfg.source)
    optimizer = cfgmod.build_optimizer(cfg, model)
    penalty = cfgmod.build_penalty(cfg)
    loader = DataLoader(
        splits.x_train, splits.y_train, batch_size=int(train_cfg["batch_size"]),
        shuffle=bool(train_cfg["shuffle"]), rng=rng, drop_last=bool(train_cfg["drop_last"]),
    )

    # Claim the directory before the (possibly long) run, so a clash fails at once.
    name = Path(args.config).stem if args.config else "default"
    run = RunDir.create(args.out) if args.out else RunDir.new("runs", name=f"lr-find-{name}")
    print(
        f"gradwise: lr-find {name} on {cfg.section('data')['dataset']} "
        f"({len(splits.y_train)} training samples, batches of {loader.batch_size}), "
        f"{type(optimizer).__name__}, lr from {args.start_lr:g} to {args.end_lr:g} "
        f"over {args.steps} steps"
    )
    result = lr_find(
        model, loss, optimizer, loader,
        start_lr=args.start_lr, end_lr=args.end_lr, num_steps=args.steps, stop=not args.no_stop,
        penalty=penalty,
    )
    run.write_config(cfg.data)
    csv_path = atomic_write_bytes(
        run.path / "lr_find.csv", rows_to_csv(result.rows(), ["step", "lr", "loss", "smoothed_loss"])
    )
    png_path = plot_lr_finder(result, run.path / "lr_find.png")

    print(result.summary())
    print(f"  steepest descent: {result.suggestion_steepest:.3g}")
    print(f"  minimum / 10:     {result.suggestion_min_div10:.3g}")
    print(f"suggested lr: {result.suggestion:.3g}  (configured: {_configured_lr(cfg)})")
    print(f"wrote {png_path} and {csv_path}")
    return 0


def _configured_lr(cfg: Any) -> str:
    lr = cfg.section("optimizer").get("lr")
    return "the optimizer's default" if lr is None else f"{lr:g}"
