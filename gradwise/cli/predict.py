"""`gradwise predict RUN_DIR ROWS.csv`: label new rows with a trained tabular run.

The run directory of a ``[model] learner = "tabular"`` config holds ``processor.json`` (the
preprocessing fitted on its training rows), ``config.toml`` and ``checkpoints/``;
`gradwise.tabular.load_learner` rebuilds the learner from them. The rows file is read in the format
of the run's training data (the ``[data]`` table's ``names``, ``delimiter``, ``na_values`` and
``comment`` for a CSV dataset; the UCI layout for ``adult``), so ``adult.test`` itself can be
labelled. The output is a CSV: one line per row with the prediction and, for classification, the
probability of each class; with the target column present, the accuracy goes to stderr.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_parser", "cmd_predict"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``predict`` on the ``add_subparsers()`` object of the ``gradwise`` parser."""
    p = subparsers.add_parser(
        "predict",
        help='label the rows of a CSV file with a trained tabular run ([model] learner = "tabular")',
        description="Predict with a tabular run directory on new rows, read in the format of its training data.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `gradwise train`")
    p.add_argument("rows", metavar="ROWS", help="a CSV file of rows (its columns as in the training data)")
    p.add_argument("--out", help="write the predictions CSV here instead of standard output")
    p.add_argument("--checkpoint", default="last", choices=("last", "best"), help="weights to use (default last)")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_predict)
    return p


def _read_rows(path: str, data: dict[str, Any], proc: Any) -> tuple[Any, np.ndarray | None]:
    """The rows and, when the file holds the target column, the targets."""
    from gradwise.data.adult import ADULT_COLUMNS
    from gradwise.data.tabular import NA_VALUES, load_csv

    if data.get("dataset") == "adult":
        options: dict[str, Any] = {"names": ADULT_COLUMNS, "comment": "|"}
    else:
        options = {
            "names": data.get("names") or None,
            "delimiter": data.get("delimiter", ","),
            "na_values": data.get("na_values", NA_VALUES),
            "comment": data.get("comment") or None,
        }
    if options["names"] is not None:
        has_y = proc.y_name in options["names"]
    else:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f, delimiter=options["delimiter"], skipinitialspace=True), [])
        has_y = proc.y_name in [h.strip() for h in header]
    table = load_csv(path, proc.cat_names, proc.cont_names, proc.y_name if has_y else None, **options)
    if not has_y:
        return table, None
    strip = "." if data.get("dataset") == "adult" else ""  # adult.test's labels end with a period
    return table, np.array([str(v).rstrip(strip) for v in table[proc.y_name]], dtype=object)


def cmd_predict(args: argparse.Namespace) -> int:
    """Run ``gradwise predict``; returns the exit code (0). Errors propagate to `main` (one line, exit 2)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib

    from gradwise.fileio import atomic_write_bytes
    from gradwise.tabular import load_learner

    run = Path(args.run_dir)
    learn = load_learner(run, args.checkpoint)
    data = tomllib.loads((run / "config.toml").read_text(encoding="utf-8")).get("data", {})
    proc = learn.processor
    table, targets = _read_rows(args.rows, data, proc)
    predictions = learn.predict(table)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if proc.task == "classification":
        proba = learn.predict_proba(table)
        writer.writerow(["row", "prediction", *(f"p({c})" for c in proc.y_classes)])
        for i, (label, p) in enumerate(zip(predictions, proba)):
            writer.writerow([i, label, *(f"{v:.6f}" for v in p)])
    else:
        writer.writerow(["row", "prediction"])
        for i, value in enumerate(predictions):
            writer.writerow([i, repr(float(value))])
    if args.out:
        atomic_write_bytes(Path(args.out), buf.getvalue().encode("utf-8"))
        print(f"gradwise: wrote {len(predictions)} predictions to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(buf.getvalue())
    if targets is not None and proc.task == "classification":
        known = np.isin(targets, proc.y_classes)
        acc = float(np.mean(predictions[known] == targets[known])) if known.any() else float("nan")
        print(f"gradwise: accuracy {acc:.4f} on the {int(known.sum())} rows with a known target", file=sys.stderr)
    return 0
