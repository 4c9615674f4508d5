"""`gradwise.data.tabular`: the Table and the CSV loader with declared columns."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradwise.data.sources import DataFormatError
from gradwise.data.tabular import Table, load_csv

CSV = """city,age,income,label
Paris, 31, 1200.5, yes
Lyon,?,800,no

Nice, 45, , yes
"""


def write(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_csv_keeps_declared_columns_strips_and_marks_missing(tmp_path):
    t = load_csv(write(tmp_path, CSV), ["city"], ["age", "income"], "label")
    assert t.names == ["city", "age", "income", "label"]
    assert len(t) == 3  # the blank line is skipped
    assert list(t["city"]) == ["Paris", "Lyon", "Nice"]
    assert t["age"].dtype == np.float64
    np.testing.assert_array_equal(np.isnan(t["age"]), [False, True, False])
    np.testing.assert_array_equal(np.isnan(t["income"]), [False, False, True])
    assert t["income"][0] == 1200.5
    assert list(t["label"]) == ["yes", "no", "yes"]


def test_missing_category_is_none_and_names_replace_a_header(tmp_path):
    path = write(tmp_path, "| a banner line\na, 1, x\n?, 2, y\n")
    t = load_csv(path, ["c"], ["n"], "y", names=["c", "n", "y"], comment="|")
    assert list(t["c"]) == ["a", None]
    np.testing.assert_array_equal(t["n"], [1.0, 2.0])


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("city,age,income,label\nParis,31,1,yes\nLyon,2,3\n", ["line 3", "3 fields, expected 4"]),
        ("city,age,income,label\nParis,31,1,yes\nLyon,old,3,no\n", ["line 3", "'age'", "'old' is not a number"]),
        ("city,age,income,label\nParis,31,1,yes\nLyon,inf,3,no\n", ["line 3", "not a finite number"]),
        ("city,age,income,label\nParis,31,1,?\n", ["line 2", "target 'label' is missing"]),
        ("town,age,income,label\nParis,31,1,yes\n", ["no column 'city'", "header (line 1)"]),
        ("", ["holds no header and no rows"]),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path, text, pieces):
    path = write(tmp_path, text)
    with pytest.raises(DataFormatError) as info:
        load_csv(path, ["city"], ["age", "income"], "label")
    message = str(info.value)
    assert str(path) in message
    for piece in pieces:
        assert piece in message


def test_quoted_newline_keeps_the_physical_line_number(tmp_path):
    path = write(tmp_path, 'a,b\n"x\ny",1\nz,bad\n')
    with pytest.raises(DataFormatError, match="line 4"):
        load_csv(path, ["a"], ["b"])


def test_bad_encoding_is_a_data_format_error(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"a,b\n\xe9t\xe9,1\n")
    with pytest.raises(DataFormatError, match="not utf-8"):
        load_csv(path, ["a"], ["b"])


def test_argument_mistakes(tmp_path):
    path = write(tmp_path, CSV)
    with pytest.raises(ValueError, match="declared twice"):
        load_csv(path, ["city"], ["city"])
    with pytest.raises(ValueError, match="at least one column"):
        load_csv(path)
    with pytest.raises(FileNotFoundError):
        load_csv(tmp_path / "nope.csv", ["city"])


def test_table_from_rows_take_and_errors():
    t = Table([{"a": "x", "b": 1.0}, {"a": "y"}])
    assert t.names == ["a", "b"] and len(t) == 2
    assert t["b"][1] is None  # a key missing from a row is a missing value
    sub = t.take(np.array([1]))
    assert len(sub) == 1 and list(sub["a"]) == ["y"]
    assert t.head(1).rows() == [{"a": "x", "b": 1.0}]
    with pytest.raises(ValueError, match="has 1 rows"):
        Table({"a": [1, 2], "b": [1]})
    with pytest.raises(KeyError, match="no column 'z'"):
        t["z"]


words = st.text(alphabet="abcdefghij-_ ", min_size=1, max_size=8).map(str.strip).filter(bool)
numbers = st.floats(allow_nan=False, allow_infinity=False, width=32, min_value=-1e6, max_value=1e6)
rows_strategy = st.lists(
    st.tuples(st.one_of(words, st.none()), st.one_of(numbers, st.none()), words), min_size=1, max_size=30
)


@given(rows=rows_strategy)
def test_any_written_table_reads_back(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["c", "x", "y"])
        for c, x, y in rows:
            w.writerow(["?" if c is None else c, "" if x is None else repr(x), y])
    t = load_csv(path, ["c"], ["x"], "y")
    assert list(t["c"]) == [c for c, _, _ in rows]
    assert list(t["y"]) == [y for _, _, y in rows]
    for got, (_, x, _) in zip(t["x"], rows):
        assert (math.isnan(got) and x is None) or got == x


@given(n=st.integers(2, 25), bad=st.data(), kind=st.sampled_from(["fields", "number"]))
def test_one_bad_row_anywhere_is_reported_at_its_line(tmp_path_factory, n, bad, kind):
    k = bad.draw(st.integers(0, n - 1))
    lines = ["c,x,y"] + [f"a{i},{i}.5,y{i % 2}" for i in range(n)]
    lines[k + 1] = "a,1" if kind == "fields" else "a,one,y0"
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=f"t.csv, line {k + 2}[:,]"):
        load_csv(path, ["c"], ["x"], "y")
