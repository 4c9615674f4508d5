"""Tabular preprocessing fitted on the training rows only: categorify, fill missing, normalize.

`TabularProcessor` follows fastai's procs ``[Categorify, FillMissing, Normalize]``:

- **Categorify**: each categorical column's training categories, sorted, get the indices
  ``1 .. n``; index **0 is reserved** for a missing value and for any category the training rows
  never showed (fastai's ``#na#``). The column's cardinality, embedding rows included, is n + 1.
- **FillMissing**: a continuous column with missing values in the training rows is filled with its
  training median, and an is-missing column ``<col>_na`` (categories ``False``, ``True`` -> 1, 2) is
  appended to the categorical columns (fastai's ``FillMissing(add_col=True)``). A column that had no
  missing value in training is filled with its median too, without an ``_na`` column.
- **Normalize**: ``x' = (x - mean) / std`` with the training mean and standard deviation
  (population, ddof=0) of the filled column; a column with ``std < eps`` is only centered.

The fitted state is a JSON-able dict (`to_dict`, `from_dict`, `save`, `load`), saved beside the
model, so new rows are encoded exactly as the training rows were. See ``docs/tabular.md``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradwise.data.tabular import Table
from gradwise.fileio import atomic_write_bytes

__all__ = ["TabularProcessor"]

FORMAT = "gradwise.TabularProcessor"
VERSION = 1
NA_SUFFIX = "_na"
_NA_CLASSES = ["False", "True"]


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v))


def _category(v: Any) -> str:
    """A cell as its category's name: integral floats read as ints ("3", not "3.0")."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, np.generic):
        v = v.item()
    return str(v).strip()


class TabularProcessor:
    """Encode a table's categorical, continuous and target columns as a model's arrays.

    Parameters
    ----------
    cat_names : sequence of str
        Categorical columns, each embedded by the model.
    cont_names : sequence of str
        Continuous columns.
    y_name : str, optional
        The target column (None: inputs only).
    task : {"classification", "regression"}
        Classification encodes the target's training classes, sorted, as 0 .. C-1 (no reserved
        index: an unknown label is an error); regression reads it as float32.
    fill_missing : bool
        Fill missing continuous values with the training median and add ``<col>_na`` columns
        (else a missing continuous value is an error).
    normalize : bool
        Standardize the continuous columns with the training mean and std.
    eps : float
        Standard deviations below it count as zero (the column is only centered).

    Attributes (after `fit`)
    ------------------------
    classes : dict of str to list of str
        Each categorical column's training categories; category ``classes[c][i - 1]`` has index i.
    na_names : list of str
        The continuous columns that had missing values in training (each has a ``<col>_na`` column).
    medians, means, stds : dict of str to float
        Fill values and normalization statistics of the continuous columns.
    y_classes : list of str or None
        The target's classes (classification).

    Examples
    --------
    >>> proc = TabularProcessor(["workclass", "education"], ["age", "fnlwgt"], "income").fit(train)
    >>> x_cat, x_cont = proc.transform(test)     # (N, 2) int64, (N, 2) float32
    >>> y = proc.transform_y(test)                # (N,) int64
    """

    def __init__(
        self,
        cat_names: Sequence[str] = (),
        cont_names: Sequence[str] = (),
        y_name: str | None = None,
        *,
        task: str = "classification",
        fill_missing: bool = True,
        normalize: bool = True,
        eps: float = 1e-7,
    ) -> None:
        cat_names, cont_names = [str(c) for c in cat_names], [str(c) for c in cont_names]
        names = [*cat_names, *cont_names, *([y_name] if y_name is not None else [])]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"TabularProcessor: column {dupes[0]!r} is given twice (cat_names, cont_names, y_name)")
        if not cat_names and not cont_names:
            raise ValueError("TabularProcessor: needs at least one categorical or continuous column")
        if task not in ("classification", "regression"):
            raise ValueError(f"TabularProcessor: {task=} must be 'classification' or 'regression'")
        if not eps > 0:
            raise ValueError(f"TabularProcessor: {eps=} must be positive")
        self.cat_names, self.cont_names, self.y_name = cat_names, cont_names, y_name
        self.task, self.fill_missing, self.normalize, self.eps = task, bool(fill_missing), bool(normalize), float(eps)
        self.classes: dict[str, list[str]] = {}
        self.na_names: list[str] = []
        self.medians: dict[str, float] = {}
        self.means: dict[str, float] = {}
        self.stds: dict[str, float] = {}
        self.y_classes: list[str] | None = None
        self.fitted = False

    # ------------------------------------------------------------------ derived
    @property
    def all_cat_names(self) -> list[str]:
        """The categorical inputs in column order of ``x_cat``: `cat_names`, then the ``_na`` columns."""
        return [*self.cat_names, *(n + NA_SUFFIX for n in self.na_names)]

    @property
    def cardinalities(self) -> list[int]:
        """Rows each categorical input's embedding needs: its training categories plus the reserved 0."""
        self._check_fitted()
        return [len(self.classes[c]) + 1 for c in self.cat_names] + [len(_NA_CLASSES) + 1] * len(self.na_names)

    @property
    def n_classes(self) -> int | None:
        return None if self.y_classes is None else len(self.y_classes)

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("TabularProcessor: call fit(train) first (or load a fitted state)")

    # ------------------------------------------------------------------ fit / transform
    def fit(self, table: Table | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> TabularProcessor:
        """Learn categories, medians, means and stds (and the target's classes) from the training rows."""
        t = _as_table(table)
        if len(t) == 0:
            raise ValueError("TabularProcessor.fit: the training table has no rows")
        self._require(t, with_y=self.y_name is not None)
        self.classes = {}
        for c in self.cat_names:
            self.classes[c] = sorted({_category(v) for v in t[c] if not _is_missing(v)})
        self.na_names, self.medians, self.means, self.stds = [], {}, {}, {}
        for c in self.cont_names:
            x = _floats(t[c], c)
            missing = np.isnan(x)
            if missing.all():
                raise ValueError(f"TabularProcessor.fit: continuous column {c!r} has no value in the training rows")
            if missing.any():
                if not self.fill_missing:
                    raise ValueError(
                        f"TabularProcessor.fit: continuous column {c!r} has {int(missing.sum())} missing value(s) "
                        "and fill_missing=False"
                    )
                self.na_names.append(c)
            median = float(np.median(x[~missing]))
            self.medians[c] = median
            filled = np.where(missing, median, x)
            self.means[c], self.stds[c] = float(filled.mean()), float(filled.std())
        if self.y_name is not None and self.task == "classification":
            self.y_classes = sorted({_category(v) for v in t[self.y_name] if not _is_missing(v)})
        self.fitted = True
        return self

    def transform(
        self, table: Table | Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The model inputs ``(x_cat, x_cont)`` of the rows of `table`.

        Returns
        -------
        x_cat : (N, len(all_cat_names)) int64
            Category indices in ``0 .. cardinality - 1``; 0 for missing and unseen categories.
        x_cont : (N, len(cont_names)) float32
            Filled and normalized continuous values.
        """
        self._check_fitted()
        t = _as_table(table, [*self.cat_names, *self.cont_names])
        self._require(t, with_y=False)
        n = len(t)
        x_cat = np.zeros((n, len(self.all_cat_names)), dtype=np.int64)
        for j, c in enumerate(self.cat_names):
            index = {name: i + 1 for i, name in enumerate(self.classes[c])}
            x_cat[:, j] = [0 if _is_missing(v) else index.get(_category(v), 0) for v in t[c]]
        x_cont = np.zeros((n, len(self.cont_names)), dtype=np.float32)
        offset = len(self.cat_names)
        for j, c in enumerate(self.cont_names):
            x = _floats(t[c], c)
            missing = np.isnan(x)
            if missing.any() and not self.fill_missing:
                raise ValueError(
                    f"TabularProcessor.transform: continuous column {c!r} has missing values and fill_missing=False"
                )
            x = np.where(missing, self.medians[c], x)
            if c in self.na_names:
                x_cat[:, offset + self.na_names.index(c)] = np.where(missing, 2, 1)
            if self.normalize:
                std = self.stds[c]
                x = (x - self.means[c]) / (std if std >= self.eps else 1.0)
            x_cont[:, j] = x
        return x_cat, x_cont

    def transform_y(self, table: Table | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The target of the rows: (N,) int64 class indices, or (N, 1) float32 for regression."""
        self._check_fitted()
        if self.y_name is None:
            raise ValueError("TabularProcessor.transform_y: the processor has no target (y_name=None)")
        t = _as_table(table, [self.y_name])
        self._require(t, with_y=True)
        values = t[self.y_name]
        if self.task == "regression":
            return _floats(values, self.y_name).astype(np.float32).reshape(-1, 1)
        assert self.y_classes is not None
        index = {name: i for i, name in enumerate(self.y_classes)}
        out = np.empty(len(values), dtype=np.int64)
        for i, v in enumerate(values):
            k = None if _is_missing(v) else index.get(_category(v))
            if k is None:
                raise ValueError(
                    f"TabularProcessor: row {i} has the target {v!r}, not one of the training classes {self.y_classes}"
                )
            out[i] = k
        return out

    def decode_y(self, indices: np.ndarray) -> np.ndarray:
        """Class names for class indices (classification)."""
        self._check_fitted()
        if self.y_classes is None:
            raise ValueError("TabularProcessor.decode_y: the processor has no target classes (regression or no y_name)")
        return np.asarray(self.y_classes, dtype=object)[np.asarray(indices)]

    def _require(self, t: Table, with_y: bool) -> None:
        needed = [*self.cat_names, *self.cont_names, *([self.y_name] if with_y and self.y_name else [])]
        absent = [c for c in needed if c not in t]
        if absent:
            raise KeyError(f"TabularProcessor: the table has no column {absent[0]!r} (its columns: {t.names})")

    # ------------------------------------------------------------------ state
    def to_dict(self) -> dict[str, Any]:
        """The fitted state as plain JSON types."""
        self._check_fitted()
        return {
            "format": FORMAT,
            "version": VERSION,
            "cat_names": list(self.cat_names),
            "cont_names": list(self.cont_names),
            "y_name": self.y_name,
            "task": self.task,
            "fill_missing": self.fill_missing,
            "normalize": self.normalize,
            "eps": self.eps,
            "classes": {c: list(v) for c, v in self.classes.items()},
            "na_names": list(self.na_names),
            "medians": dict(self.medians),
            "means": dict(self.means),
            "stds": dict(self.stds),
            "y_classes": None if self.y_classes is None else list(self.y_classes),
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> TabularProcessor:
        """A fitted processor from `to_dict`'s output (checked: a foreign or damaged dict is a ValueError)."""
        if not isinstance(state, Mapping) or state.get("format") != FORMAT:
            raise ValueError(f"TabularProcessor.from_dict: not a saved TabularProcessor (format must be {FORMAT!r})")
        if state.get("version") != VERSION:
            raise ValueError(
                f"TabularProcessor.from_dict: version {state.get('version')!r}, this gradwise reads {VERSION}"
            )
        try:
            proc = cls(
                state["cat_names"], state["cont_names"], state["y_name"], task=state["task"],
                fill_missing=state["fill_missing"], normalize=state["normalize"], eps=state["eps"],
            )  # fmt: skip
            proc.classes = {str(c): [str(v) for v in state["classes"][c]] for c in proc.cat_names}
            proc.na_names = [str(c) for c in state["na_names"]]
            for key in ("medians", "means", "stds"):
                setattr(proc, key, {c: float(state[key][c]) for c in proc.cont_names})
            y = state["y_classes"]
            proc.y_classes = None if y is None else [str(v) for v in y]
        except (KeyError, TypeError) as e:
            raise ValueError(
                f"TabularProcessor.from_dict: the saved state is incomplete ({type(e).__name__}: {e})"
            ) from None
        if not set(proc.na_names) <= set(proc.cont_names):
            raise ValueError("TabularProcessor.from_dict: na_names must be continuous columns")
        proc.fitted = True
        return proc

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted state as JSON, atomically."""
        text = json.dumps(self.to_dict(), indent=1) + "\n"
        return atomic_write_bytes(Path(path), text.encode("utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TabularProcessor:
        path = Path(path)
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON (line {e.lineno}): {e.msg}") from None
        try:
            return cls.from_dict(state)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def __repr__(self) -> str:
        fitted = f", cardinalities={self.cardinalities}" if self.fitted else ", not fitted"
        return (
            f"TabularProcessor(cat_names={self.cat_names}, cont_names={self.cont_names}, "
            f"y_name={self.y_name!r}{fitted})"
        )


def _as_table(table: Any, names: list[str] | None = None) -> Table:
    """`table` as a Table; for row dicts, `names` are its columns (a key a row lacks is a missing value)."""
    if isinstance(table, Table):
        return table
    if isinstance(table, Mapping):
        return Table(table)
    return Table(list(table), names=names)


def _floats(values: np.ndarray, name: str) -> np.ndarray:
    """A column as float64, None and NaN as NaN; a text that is no number is a ValueError naming it."""
    if values.dtype.kind in "fiub":
        return values.astype(np.float64)
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if _is_missing(v) or (isinstance(v, str) and not v.strip()):
            out[i] = math.nan
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"TabularProcessor: continuous column {name!r}, row {i}: {v!r} is not a number") from None
    return out
