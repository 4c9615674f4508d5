"""Tables of named columns and the generic CSV loader with declared column roles.

A `Table` is an ordered set of equally long 1-D columns: categorical columns hold Python strings
(None where missing), continuous columns float64 (NaN where missing). `load_csv` reads a CSV file
with the standard library's `csv` module, keeps the columns declared categorical, continuous or
target, and checks every row as it goes: a row with the wrong number of fields, or a continuous
value that is not a number, raises `DataFormatError` naming the file and the line; nothing
half-read is returned. `gradwise.data.tabular_preprocessing.TabularProcessor` turns a table into
the model's inputs. See ``docs/tabular.md``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradwise.data.sources import DataFormatError

__all__ = ["NA_VALUES", "Table", "load_csv"]

#: Cell texts read as missing (after stripping spaces): empty, ``?`` (UCI), ``NA``/``NaN`` (R, pandas).
NA_VALUES: tuple[str, ...] = ("", "?", "NA", "N/A", "NaN", "nan", "null", "None")


class Table:
    """Named 1-D columns of one length: the raw rows of a tabular dataset.

    Parameters
    ----------
    columns : mapping of str to array_like, or an iterable of row mappings
        ``{"age": [39, 50], "workclass": ["State-gov", None]}``, or rows
        ``[{"age": 39, "workclass": "State-gov"}, ...]`` (a pandas ``DataFrame`` converts with
        ``Table(df.to_dict("list"))``). Every column must have the same length.
    names : sequence of str, optional
        For rows: the columns to keep, in order (default: the keys of the first row; a key missing
        from a row is a missing value).

    Attributes
    ----------
    names : list of str
        Column names in order.
    """

    def __init__(
        self, columns: Mapping[str, Any] | Iterable[Mapping[str, Any]], names: Sequence[str] | None = None
    ) -> None:
        if not isinstance(columns, Mapping):
            rows = list(columns)
            if not all(isinstance(r, Mapping) for r in rows):
                raise TypeError("Table: give a mapping of columns or an iterable of row mappings (dicts)")
            keys = list(names) if names is not None else (list(rows[0]) if rows else [])
            columns = {k: [r.get(k) for r in rows] for k in keys}
        elif names is not None:
            missing = [n for n in names if n not in columns]
            if missing:
                raise KeyError(f"Table: no column {missing[0]!r}; the columns are {list(columns)}")
            columns = {n: columns[n] for n in names}
        self._columns: dict[str, np.ndarray] = {}
        length: int | None = None
        for name, values in columns.items():
            arr = _column(values)
            if arr.ndim != 1:
                raise ValueError(f"Table: column {name!r} must be 1-D, got shape {arr.shape}")
            if length is not None and len(arr) != length:
                raise ValueError(f"Table: column {name!r} has {len(arr)} rows, the columns before it {length}")
            length = len(arr)
            self._columns[str(name)] = arr
        self._length = length or 0

    @property
    def names(self) -> list[str]:
        return list(self._columns)

    def __len__(self) -> int:
        return self._length

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._columns[name]
        except KeyError:
            raise KeyError(f"Table: no column {name!r}; the columns are {self.names}") from None

    def take(self, index: np.ndarray | slice) -> Table:
        """The rows at `index` (an integer array, a boolean mask or a slice), as a new table."""
        return Table({k: v[index] for k, v in self._columns.items()})

    def head(self, n: int = 5) -> Table:
        return self.take(slice(0, n))

    def rows(self) -> list[dict[str, Any]]:
        """The table as a list of row dicts (for printing or a JSON answer)."""
        return [{k: _plain(v[i]) for k, v in self._columns.items()} for i in range(len(self))]

    def __repr__(self) -> str:
        return f"Table({len(self)} rows, columns {self.names})"


def _column(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values
    arr = np.asarray(values)
    if arr.dtype.kind in "fiub" and arr.ndim == 1:
        return arr
    out = np.empty(len(values), dtype=object)  # strings and None, kept as Python objects
    out[:] = list(values)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    return None if isinstance(v, float) and math.isnan(v) else v


def load_csv(
    path: str | os.PathLike[str],
    cat_names: Sequence[str] = (),
    cont_names: Sequence[str] = (),
    y_name: str | None = None,
    *,
    names: Sequence[str] | None = None,
    delimiter: str = ",",
    na_values: Iterable[str] = NA_VALUES,
    comment: str | None = None,
    encoding: str = "utf-8",
) -> Table:
    """Read a CSV file's declared columns into a `Table`.

    Parameters
    ----------
    path : path-like
        The CSV file.
    cat_names, cont_names : sequence of str
        Categorical columns (kept as stripped strings) and continuous columns (parsed as float64).
    y_name : str, optional
        The target column, kept as a string (a class label; `TabularProcessor` converts it for
        regression). A row whose target is missing is a `DataFormatError`.
    names : sequence of str, optional
        The names of all the file's columns, for a file without a header line (UCI Adult). When
        None, the first non-comment line is the header.
    delimiter : str
        The field separator. Spaces around fields are stripped (``"39, State-gov"`` reads as
        ``"39"`` and ``"State-gov"``).
    na_values : iterable of str
        Cell texts that mean "missing" (compared after stripping): None in categorical columns,
        NaN in continuous ones.
    comment : str, optional
        Lines starting with it are skipped (``"|"`` for the UCI files' banner lines). Blank lines
        are always skipped.
    encoding : str
        The file's text encoding.

    Returns
    -------
    Table
        The declared columns, in the order cat_names, cont_names, y_name.

    Raises
    ------
    DataFormatError
        ``"<file>, line <k>: ..."``: a row with the wrong number of fields, a continuous value that
        is not a number, a missing target, text that is not `encoding`; or a declared column that
        the header lacks, or an empty file.
    FileNotFoundError
        If `path` does not exist.

    Examples
    --------
    >>> table = load_csv("adult.csv", cat_names=["workclass", "education"],
    ...                  cont_names=["age", "fnlwgt"], y_name="salary")
    """
    path = Path(path)
    declared = [*cat_names, *cont_names, *([y_name] if y_name is not None else [])]
    dupes = sorted({n for n in declared if declared.count(n) > 1})
    if dupes:
        raise ValueError(
            f"load_csv: column {dupes[0]!r} is declared twice (categorical, continuous and target must differ)"
        )
    if not declared:
        raise ValueError("load_csv: declare at least one column (cat_names, cont_names or y_name)")
    na = {s.strip() for s in na_values}
    where = str(path)
    with open(path, newline="", encoding=encoding) as f:
        try:
            columns, header_line = _read_rows(
                f, where, names, delimiter, comment, declared, set(cont_names), na, y_name
            )
        except UnicodeDecodeError as e:
            raise DataFormatError(f"{where}: not {encoding} text (byte offset {e.start}): {e.reason}") from None
    if header_line is None:
        raise DataFormatError(f"{where}: the file holds no header and no rows")
    out: dict[str, Any] = {}
    for name in declared:
        if name in cont_names:
            out[name] = np.asarray(columns[name], dtype=np.float64)
        else:
            out[name] = columns[name]
    return Table(out)


def _read_rows(
    f: Any,
    where: str,
    names: Sequence[str] | None,
    delimiter: str,
    comment: str | None,
    declared: list[str],
    cont: set[str],
    na: set[str],
    y_name: str | None,
) -> tuple[dict[str, list[Any]], int | None]:
    reader = csv.reader(f, delimiter=delimiter, skipinitialspace=True)
    header: list[str] | None = [str(n) for n in names] if names is not None else None
    header_line: int | None = 0 if header is not None else None
    positions: list[int] = []
    columns: dict[str, list[Any]] = {n: [] for n in declared}
    for fields in reader:
        line = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank line (the UCI files end with one)
        if comment is not None and fields[0].lstrip().startswith(comment):
            continue
        if header is None:
            header = [h.strip() for h in fields]
            header_line = line
        if not positions:
            absent = [n for n in declared if n not in header]
            if absent:
                source = f"the header (line {header_line})" if header_line else "names="
                raise DataFormatError(f"{where}: no column {absent[0]!r} in {source}; the columns are {header}")
            positions = [header.index(n) for n in declared]
            if header_line == line:
                continue
        if len(fields) != len(header):
            raise DataFormatError(
                f"{where}, line {line}: {len(fields)} fields, expected {len(header)} ({', '.join(header)})"
            )
        for name, pos in zip(declared, positions):
            text = fields[pos].strip()
            missing = text in na
            if name in cont:
                if missing:
                    columns[name].append(math.nan)
                    continue
                try:
                    value = float(text)
                except ValueError:
                    raise DataFormatError(
                        f"{where}, line {line}, column {name!r}: {text!r} is not a number (a continuous column)"
                    ) from None
                if not math.isfinite(value):
                    raise DataFormatError(f"{where}, line {line}, column {name!r}: {text!r} is not a finite number")
                columns[name].append(value)
            elif missing:
                if name == y_name:
                    raise DataFormatError(f"{where}, line {line}: the target {name!r} is missing ({text!r})")
                columns[name].append(None)
            else:
                columns[name].append(text)
    return columns, header_line
