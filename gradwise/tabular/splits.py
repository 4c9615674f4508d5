"""Train/validation/test arrays of a tabular dataset, the preprocessing fitted on the training rows only."""

from __future__ import annotations

from typing import Any

import numpy as np

from gradwise.data.splits import train_test_split
from gradwise.data.tabular import Table
from gradwise.data.tabular_preprocessing import TabularProcessor

__all__ = ["encode_splits"]


def encode_splits(
    processor: TabularProcessor,
    train: Table,
    test: Table,
    val: float | int = 0.0,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """Split validation rows off `train`, fit `processor` on the remaining rows, encode all three.

    Parameters
    ----------
    processor : TabularProcessor
        Unfitted (it is fitted here, on the training rows that remain after the validation split).
    train, test : Table
        Raw rows.
    val : float or int
        Validation rows: a ratio of `train` or a count (0: none). Stratified by the target for
        classification.
    rng : np.random.Generator, optional
        The split's shuffle.

    Returns
    -------
    dict
        ``x_train, y_train, x_val, y_val, x_test, y_test`` (each x a tuple ``(x_cat, x_cont)``), and
        ``n_fit`` (the rows the processor was fitted on).
    """
    if processor.y_name is None:
        raise ValueError("encode_splits: the processor needs a target column (y_name)")
    fit_rows, val_rows = train, None
    if val:
        labels = train[processor.y_name]
        strat = np.asarray([str(v) for v in labels]) if processor.task == "classification" else None
        idx_fit, idx_val = train_test_split(np.arange(len(train)), test=val, stratify=strat, rng=rng)
        fit_rows, val_rows = train.take(idx_fit), train.take(idx_val)
    processor.fit(fit_rows)
    out: dict[str, Any] = {"n_fit": len(fit_rows)}
    for part, rows in (("train", fit_rows), ("val", val_rows), ("test", test)):
        if rows is None:
            x_cat, x_cont = processor.transform(fit_rows.head(0))
            y = processor.transform_y(fit_rows.head(0))
        else:
            (x_cat, x_cont), y = processor.transform(rows), processor.transform_y(rows)
        out[f"x_{part}"], out[f"y_{part}"] = (x_cat, x_cont), y
    return out
