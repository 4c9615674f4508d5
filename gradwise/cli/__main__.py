"""`gradwise` / `python -m gradwise`: train and gradcheck from TOML configs.

Errors a user can fix (a bad config, bad data, an existing output directory) print one line and exit
with code 2; `--debug` shows the traceback instead. A diverged run exits with code 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

EXIT_USAGE = 2
EXIT_FAILED = 1


def _format_metrics(values: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in values.items())


def cmd_train(args: argparse.Namespace, callbacks: tuple[Any, ...] | list[Any] = ()) -> int:
    """`gradwise train`; `callbacks` are added to the trainer's (`gradwise search` reports through one)."""
    import gradwise as gw
    from gradwise.cli import config as cfgmod
    from gradwise.cli import distributed as dist
    from gradwise.data.loader import DataLoader
    from gradwise.data.rows import input_shape
    from gradwise.training import checkpoint
    from gradwise.training.rundir import RunDir

    if args.strict_resume and not args.resume:
        raise cfgmod.ConfigError("--strict-resume goes with --resume RUN_DIR")
    if args.resume:
        # The run continues with the config it was built from; only the number of epochs may change.
        if args.config or args.set or args.out:
            raise cfgmod.ConfigError(
                "--resume continues a run with its own config.toml: give no CONFIG, --set or --out "
                "(--epochs N sets a new total number of epochs)"
            )
        resumed = RunDir(args.resume)
        if not resumed.config_path.is_file():
            raise FileNotFoundError(f"--resume {args.resume!r}: not a run directory (it has no config.toml)")
        cfg = cfgmod.load(resumed.config_path)
    else:
        overrides = list(args.set or [])
        if args.epochs is not None:
            overrides.append(f"train.epochs={args.epochs}")
        cfg = cfgmod.load_or_default(args.config, tuple(overrides))
    train_cfg = cfg.section("train")
    comm = dist.communicator(args, cfg)  # None: one process (under mpiexec -n K: docs/distributed.md)
    seed = int(train_cfg["seed"])
    gw.manual_seed(seed)
    rng = np.random.default_rng(seed)

    splits = cfgmod.build_data(cfg, rng)
    model = cfgmod.build_model(cfg, rng, splits.meta)
    loss = cfgmod.build_loss(cfg)
    cfgmod.check_fit(model, loss, splits, cfg.source)
    dist.prepare_model(comm, cfg, model)
    # Loaders validate the data (NaN, inf, lengths); build them all before writing anything.
    batch_size = int(train_cfg["batch_size"])
    train_loader = DataLoader(
        splits.x_train, splits.y_train, batch_size=batch_size, shuffle=bool(train_cfg["shuffle"]), rng=rng,
        drop_last=bool(train_cfg["drop_last"]),
    )
    val_loader = DataLoader(splits.x_val, splits.y_val, batch_size=1024) if len(splits.y_val) else None
    test_loader = DataLoader(splits.x_test, splits.y_test, batch_size=1024)
    eval_train_loader = DataLoader(splits.x_train, splits.y_train, batch_size=1024)

    # Schedule, optimizer and penalty arguments are checked by building them once, before anything is
    # written (the trainer below builds its own; an optimizer holds no state until its first step).
    cfgmod.build_optimizer(cfg, model, cfgmod.build_schedule(cfg, steps_per_epoch=len(train_loader))[0])
    cfgmod.build_penalty(cfg)

    name = Path(args.config).stem if args.config else "default"
    if args.resume:
        run, name = resumed, resumed.path.name
    else:
        run = dist.on_rank0(comm, lambda: _create_run(args, name, cfg, splits.meta))
    trainer = _make_trainer(cfg, model, loss, len(train_loader), run, progress=not args.no_progress, comm=comm,
                            validated=val_loader is not None)
    for callback in callbacks:
        trainer.callbacks.append(callback)
    print(f"gradwise: training {name} on {cfg.section('data')['dataset']} "
          f"({len(splits.y_train)} train / {len(splits.y_val)} val / {len(splits.y_test)} test), "
          f"{model.num_parameters():,} parameters, run directory {run.path}")
    print(model.summary(input_shape(splits.x_train)))
    resume_from = None
    if args.resume and not dist.resume_source(comm):
        resume_from = run.path  # the Trainer resumes every rank from rank 0's choice
    elif args.resume:
        if not (run.checkpoints_dir / checkpoint.LATEST).is_file():
            # Killed before its first checkpoint: start again, as it would have run.
            print(f"gradwise: {run.path} has no checkpoint yet; training from the start")
            run.history_path.unlink(missing_ok=True)
        else:
            # `latest`, or (unless --strict-resume) the newest older checkpoint that verifies.
            try:
                resume_from = checkpoint.find_resumable(run.path, strict=args.strict_resume)
            except checkpoint.NoIntactCheckpoint as e:
                _report_rejected(e.rejected)
                raise  # one more line listing what was tried; exit 2
            _report_rejected(resume_from.rejected)
            print(f"gradwise: resuming from {resume_from.checkpoint.path}{_fallback_note(resume_from)}")
    epochs = args.epochs if args.resume and args.epochs is not None else int(train_cfg["epochs"])
    if "preprocessing" in splits.meta and not args.resume:  # fitted on the training data; new inputs need it too
        splits.meta["preprocessing"].save(run.path / "preprocessing.safetensors")
    trainer.fit(train_loader, val_loader, epochs=epochs, resume_from=resume_from)
    if trainer.rank != 0:
        return 0  # rank 0 evaluates, writes metrics.json and prints

    # The Trainer wrote its summary (status, steps, epochs, best epoch, wall time); add the final
    # evaluation of every split to it.
    results: dict[str, Any] = run.read_metrics()
    results["train"] = trainer.evaluate(eval_train_loader)
    if val_loader is not None:
        results["val"] = trainer.evaluate(val_loader)
    results["test"] = trainer.evaluate(test_loader)
    results["seed"] = seed
    seeds = int(train_cfg["seeds"])
    if seeds > 1 and not args.resume:
        results["ensemble"] = _train_more_seeds(cfg, model, loss, splits, run, test_loader, seeds, args.no_progress)
    run.write_metrics(results)
    for part in ("train", "val", "test"):
        if part in results:
            print(f"{part:>5}: {_format_metrics(results[part])}")
    headline = "accuracy" if "accuracy" in results["test"] else "loss"
    if "ensemble" in results:
        e = results["ensemble"]
        print(f"ensemble of {seeds} seeds: members {min(e['individual']):.4f}-{max(e['individual']):.4f} "
              f"(mean {e['mean_individual']:.4f}), ensemble {e['ensemble']:.4f}, gain {e['gain']:+.4f}")
    print(
        f"test {headline}: {results['test'][headline]:.4f}  "
        f"({results['wall_time']:.1f} s, {results['steps']} steps; {run.path})"
    )
    return 0


def _create_run(args: argparse.Namespace, name: str, cfg: Any, meta: dict[str, Any]) -> Any:
    """The new run directory with the resolved config and what the dataset's loader saves beside the
    model (``meta["files"]``: file name -> JSON-able value), e.g. the fitted tabular preprocessing as
    ``processor.json``, so a run can predict on new rows."""
    import json

    from gradwise.fileio import atomic_write_bytes
    from gradwise.training.rundir import RunDir

    run = RunDir.create(args.out) if args.out else RunDir.new("runs", name=name)
    run.write_config(cfg.data)
    for fname, value in meta.get("files", {}).items():
        atomic_write_bytes(run.path / fname, (json.dumps(value, indent=1) + "\n").encode("utf-8"))
    return run


def _report_rejected(rejected: Any) -> None:
    """One line per damaged checkpoint `--resume` passed over: the file and what is wrong with it."""
    for r in rejected:
        print(f"gradwise: {r.reason}; trying the next older checkpoint", file=sys.stderr)


def _fallback_note(chosen: Any) -> str:
    """What the resume line adds after a fallback: that the damaged checkpoints are kept, and as what."""
    from gradwise.training.checkpoint.store import aside_path

    if not chosen.rejected:
        return ""
    kept = [f"{r.path.name} as {aside_path(r.path).name}" for r in chosen.rejected if r.path.is_dir()]
    return ", the newest checkpoint that verifies" + (f"; keeping the damaged {', '.join(kept)}" if kept else "")


def _make_trainer(
    cfg: Any, model: Any, loss: Any, steps_per_epoch: int, run: Any, progress: bool, comm: Any = None,
    validated: bool = True,
) -> Any:
    """The configured optimizer, schedule, penalty, metrics and callbacks around `model`. The best
    checkpoint is the one of least validation loss, or of least training loss when the config
    keeps no validation split (`validated` False: ``[data] val = 0``)."""
    import gradwise as gw
    from gradwise.cli import config as cfgmod
    from gradwise.training.histograms import HistogramSnapshots

    from gradwise.viz import plot_run

    train_cfg = cfg.section("train")
    lr, callbacks = cfgmod.build_schedule(cfg, steps_per_epoch=steps_per_epoch)
    if train_cfg["histogram_epochs"]:
        from gradwise.viz import plot_histogram_data  # drawn as the run goes, not only at its end

        epochs = tuple(int(e) for e in train_cfg["histogram_epochs"])
        callbacks.append(HistogramSnapshots(epochs=epochs, draw=plot_histogram_data))
    if train_cfg["tensorboard"]:
        from gradwise.training.tensorboard import TensorBoard

        callbacks.append(TensorBoard())  # RUN/tensorboard/{train,validation}
    if train_cfg["babysit"]:
        from gradwise.viz import plot_babysit

        callbacks.append(gw.callbacks.Babysitter(draw=plot_babysit))  # live health checks, babysit.csv
    return gw.Trainer(
        model,
        loss,
        cfgmod.build_optimizer(cfg, model, lr),
        metrics=cfgmod.build_metrics(cfg),
        callbacks=callbacks,
        penalty=cfgmod.build_penalty(cfg),
        progress=progress,
        run_dir=run,
        monitor="val_loss" if validated else "loss",
        clip_grad_norm=float(train_cfg["clip_grad_norm"]) or None,
        clip_grad_value=float(train_cfg["clip_grad_value"]) or None,
        checkpoint_every=int(train_cfg["checkpoint_every"]) or None,  # 0: at epoch ends only
        accumulate=int(train_cfg["accumulate"]),
        keep_checkpoints=train_cfg["keep_checkpoints"],
        plot=plot_run,  # the run directory ends with its plots; training itself never imports viz
        distributed=False if comm is None else comm,
    )


def _train_more_seeds(
    cfg: Any, first: Any, loss: Any, splits: Any, run: Any, test_loader: Any, seeds: int, no_progress: bool
) -> dict[str, Any]:
    """Train seeds seed+1 .. seed+seeds-1 on the same data split (each in RUN/seed-<s>/) and return
    the ensemble's gain over its members on the test set (`gradwise.training.ensemble.ensemble_gain`)."""
    import gradwise as gw
    from gradwise.cli import config as cfgmod
    from gradwise.data.loader import DataLoader
    from gradwise.training.ensemble import ensemble_gain
    from gradwise.training.rundir import RunDir

    train_cfg = cfg.section("train")
    base = int(train_cfg["seed"])
    val_loader = DataLoader(splits.x_val, splits.y_val, batch_size=1024) if len(splits.y_val) else None
    models = [first]
    for s in range(base + 1, base + seeds):
        gw.manual_seed(s)
        rng = np.random.default_rng(s)
        model = cfgmod.build_model(cfg, rng, splits.meta)
        loader = DataLoader(
            splits.x_train, splits.y_train, batch_size=int(train_cfg["batch_size"]),
            shuffle=bool(train_cfg["shuffle"]), rng=rng, drop_last=bool(train_cfg["drop_last"]),
        )
        member = RunDir.create(run.path / f"seed-{s}")
        print(f"gradwise: ensemble member seed {s} ({member.path})")
        _make_trainer(cfg, model, loss, len(loader), member, progress=not no_progress,
                      validated=val_loader is not None).fit(
            loader, val_loader, epochs=int(train_cfg["epochs"])
        )
        models.append(model)
    metrics = cfgmod.build_metrics(cfg)
    if not metrics:
        raise cfgmod.ConfigError(f"{cfg.source}: [train] seeds > 1 needs a metric to compare the ensemble on")
    return ensemble_gain(models, test_loader, metrics[0])


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from gradwise.cli import config as cfgmod
    from gradwise.data.rows import head
    from gradwise.diagnostics import check_model

    cfg = cfgmod.load_or_default(args.config, tuple(args.set or ()))
    rng = np.random.default_rng(int(cfg.section("train")["seed"]))
    splits = cfgmod.build_data(cfg, rng)
    model = cfgmod.build_model(cfg, rng, splits.meta)
    loss = cfgmod.build_loss(cfg)
    cfgmod.check_fit(model, loss, splits, cfg.source)
    x, y = head(splits.x_train, args.samples), splits.y_train[: args.samples]
    report = check_model(
        model,
        loss,
        x,
        y,
        penalty=cfgmod.build_penalty(cfg),
        check_input=True,
        max_entries=args.max_entries,
        tolerance=args.tolerance,
    )
    print(report)
    return 0 if report.passed else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    from gradwise.bench.runner import add_parser as add_bench
    from gradwise.cli.diagnose import add_parser as add_diagnose
    from gradwise.cli.lr_find import add_parser as add_lr_find
    from gradwise.cli.plot import add_parser as add_plot
    from gradwise.cli.predict import add_parser as add_predict
    from gradwise.search.cli import add_parser as add_search

    parser = argparse.ArgumentParser(prog="gradwise", description="Neural networks on NumPy, every number in sight.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model from a TOML config (default: an MLP on MNIST-1D)")
    train.add_argument("config", nargs="?", help="TOML config; the built-in default when omitted")
    train.add_argument("--out", help="run directory to create (must not exist or be empty)")
    train.add_argument("--epochs", type=int, help="override [train] epochs (with --resume: the new total)")
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its latest checkpoint, with its config.toml; the final "
        "weights are those of a run never interrupted",
    )
    train.add_argument(
        "--strict-resume",
        action="store_true",
        help="with --resume: stop if the latest checkpoint is damaged, instead of falling back to the "
        "newest older one that verifies",
    )
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch)")
    train.add_argument(
        "--distributed", action="store_true",
        help="data-parallel over MPI even with one process (under mpiexec -n K > 1 it is automatic)",
    )
    train.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    train.set_defaults(func=cmd_train)

    check = sub.add_parser("gradcheck", help="check the model's backward against finite differences (float64)")
    check.add_argument("config", nargs="?", help="TOML config; the built-in default when omitted")
    check.add_argument("--samples", type=int, default=8, help="batch size to check with (default 8)")
    check.add_argument("--max-entries", type=int, default=200, help="entries checked per tensor (default 200)")
    check.add_argument("--tolerance", type=float, default=1e-7, help="relative error to pass (default 1e-7)")
    check.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    check.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    check.set_defaults(func=cmd_gradcheck)

    add_diagnose(sub)
    add_lr_find(sub)
    add_plot(sub)
    add_predict(sub)
    add_bench(sub)
    add_search(sub, train=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    from gradwise.cli.config import ConfigError
    from gradwise.training.divergence import TrainingDiverged

    from gradwise.cli.distributed import abort
    from gradwise.distributed import DistributedError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DistributedError as e:  # a rank died, hangs or failed: take the whole job down
        print(f"gradwise: error: {e}", file=sys.stderr)
        abort(EXIT_FAILED)
        return EXIT_FAILED
    except FloatingPointError as e:  # TrainingDiverged, or a non-finite loss in lr-find
        if args.debug:
            raise
        what = "training diverged" if isinstance(e, TrainingDiverged) else "error"
        print(f"gradwise: {what}: {e}", file=sys.stderr)
        return EXIT_FAILED
    except (ConfigError, ValueError, FileNotFoundError, FileExistsError) as e:
        if args.debug:
            raise
        print(f"gradwise: error: {e}", file=sys.stderr)
        abort(EXIT_USAGE)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gradwise: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
