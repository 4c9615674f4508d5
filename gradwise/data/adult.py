"""UCI Adult (Census Income): ``adult.data`` (32,561 rows) and ``adult.test`` (16,281 rows).

Predict whether a person's income exceeds $50K a year from 1994 US Census attributes (Kohavi,
"Scaling Up the Accuracy of Naive-Bayes Classifiers: a Decision-Tree Hybrid", KDD 1996). The files
have no header; the columns are those listed at the end of ``adult.names`` (`ADULT_COLUMNS`),
fields are separated by a comma and a space, ``?`` marks a missing value, ``adult.test`` starts
with the banner line ``|1x3 Cross validator`` and its labels end with a period (``>50K.``), which
`load_adult` strips so both files share the labels ``<=50K`` and ``>50K``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from gradwise.data.sources import DataFormatError, find_dataset
from gradwise.data.tabular import Table, load_csv

__all__ = [
    "ADULT_CAT_NAMES",
    "ADULT_COLUMNS",
    "ADULT_CONT_NAMES",
    "ADULT_TARGET",
    "ADULT_URLS",
    "load_adult",
    "read_adult_names",
]

#: Every column of the files, in order (adult.names), the target last.
ADULT_COLUMNS: tuple[str, ...] = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
    "income",
)  # fmt: skip
#: The columns adult.names calls continuous.
ADULT_CONT_NAMES: tuple[str, ...] = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")
#: The columns adult.names lists categories for.
ADULT_CAT_NAMES: tuple[str, ...] = (
    "workclass", "education", "marital-status", "occupation", "relationship", "race", "sex", "native-country",
)  # fmt: skip
#: The target: ``<=50K`` or ``>50K`` (adult.names calls it the class; UCI's page "income").
ADULT_TARGET = "income"

_BASE = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
ADULT_URLS = {name: _BASE + name for name in ("adult.data", "adult.test", "adult.names")}
ADULT_SHA256 = {
    "adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
    "adult.names": "c248284c0b5de30c9e1958d6cdd168a34a654758b620e68f46aefa83fc0a576a",
}


def load_adult(
    path: str | os.PathLike[str] | None = None,
    *,
    cat_names: tuple[str, ...] | list[str] = ADULT_CAT_NAMES,
    cont_names: tuple[str, ...] | list[str] = ADULT_CONT_NAMES,
    download: bool = False,
) -> tuple[Table, Table]:
    """The training and test tables of UCI Adult.

    Parameters
    ----------
    path : path-like, optional
        A folder holding ``adult.data`` and ``adult.test``; else ``$GRADWISE_DATA/adult`` or the
        cache folder (`gradwise.data.sources.find_dataset`).
    cat_names, cont_names : sequences of str
        The columns to keep (all of them by default; fastai's tutorial keeps six categorical and
        three continuous ones).
    download : bool
        Fetch the three files from the UCI repository into the cache folder when no folder holds
        them (sha256 checked; needs a network).

    Returns
    -------
    train, test : Table
        32,561 and 16,281 rows for the original files: the kept columns plus ``income``
        (``"<=50K"`` or ``">50K"``; the test file's trailing periods removed). Missing values
        (``?``) are None in categorical columns and NaN in continuous ones.

    Raises
    ------
    DatasetNotFoundError
        No folder holds both files (the message lists where it looked and how to supply them).
    DataFormatError
        A malformed row (file and line named) or a label other than ``<=50K`` / ``>50K``.
    """
    unknown = [c for c in (*cat_names, *cont_names) if c not in ADULT_COLUMNS[:-1]]
    if unknown:
        raise ValueError(f"load_adult: no column {unknown[0]!r}; the columns are {list(ADULT_COLUMNS[:-1])}")
    folder = find_dataset(
        "adult", ["adult.data", "adult.test"], path, download=download, urls=ADULT_URLS, sha256=ADULT_SHA256
    )
    tables = []
    for name in ("adult.data", "adult.test"):
        file = folder / name
        table = load_csv(file, cat_names, cont_names, ADULT_TARGET, names=ADULT_COLUMNS, comment="|")
        labels = np.array([s.rstrip(".") for s in table[ADULT_TARGET]], dtype=object)
        bad = np.flatnonzero((labels != "<=50K") & (labels != ">50K"))
        if bad.size:
            raise DataFormatError(
                f"{file}: data row {int(bad[0]) + 1} has the label {labels[bad[0]]!r}, not <=50K or >50K"
            )
        columns = {n: table[n] for n in table.names}
        columns[ADULT_TARGET] = labels
        tables.append(Table(columns))
    return tables[0], tables[1]


_ATTRIBUTE = re.compile(r"^([A-Za-z][\w-]*):\s*(.+?)\.\s*$")


def read_adult_names(path: str | os.PathLike[str]) -> dict[str, list[str] | None]:
    """The attribute list at the end of ``adult.names``: column -> its categories, or None if continuous.

    Lines such as ``workclass: Private, Self-emp-not-inc, ... .`` and ``age: continuous.``; the
    header's free text (lines starting with ``|``) is skipped. `ADULT_COLUMNS` is this list plus
    the target.
    """
    found: dict[str, list[str] | None] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            continue
        m = _ATTRIBUTE.match(line)
        if m:
            values = m.group(2)
            found[m.group(1)] = None if values == "continuous" else [v.strip() for v in values.split(",")]
    return found
