"""`gradwise.data.adult`: UCI Adult, on small files in its format and on the real files when present."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import shared_data_dir

from gradwise.data.adult import ADULT_CAT_NAMES, ADULT_COLUMNS, ADULT_CONT_NAMES, load_adult, read_adult_names
from gradwise.data.sources import DataFormatError, DatasetNotFoundError

ROW_A = "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K"
ROW_B = "50, ?, 83311, Bachelors, 13, Married-civ-spouse, ?, Husband, White, Male, 0, 0, 13, ?, >50K"


def make_adult(folder, test_label=">50K.", extra=""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adult.data").write_text(f"{ROW_A}\n{ROW_B}\n{extra}\n", encoding="utf-8")
    test_row = ROW_B.replace(">50K", test_label)
    (folder / "adult.test").write_text(f"|1x3 Cross validator\n{ROW_A}.\n{test_row}\n\n", encoding="utf-8")
    return folder


def test_the_format_banner_periods_missing_and_spaces(tmp_path):
    train, test = load_adult(make_adult(tmp_path / "adult"))
    assert len(train) == 2 and len(test) == 2
    assert train.names == [*ADULT_CAT_NAMES, *ADULT_CONT_NAMES, "income"]
    assert list(test["income"]) == ["<=50K", ">50K"]  # trailing periods stripped, banner skipped
    assert list(train["workclass"]) == ["State-gov", None]
    assert train["native-country"][1] is None
    np.testing.assert_array_equal(train["age"], [39.0, 50.0])


def test_a_column_subset_and_an_unknown_column(tmp_path):
    folder = make_adult(tmp_path / "adult")
    train, _ = load_adult(folder, cat_names=["sex"], cont_names=["age"])
    assert train.names == ["sex", "age", "income"]
    with pytest.raises(ValueError, match="no column 'salary'"):
        load_adult(folder, cat_names=["salary"])


def test_an_unexpected_label_and_a_short_row_are_named(tmp_path):
    with pytest.raises(DataFormatError, match=r"adult.test: data row 2 has the label '>60K'"):
        load_adult(make_adult(tmp_path / "a", test_label=">60K."))
    with pytest.raises(DataFormatError, match=r"adult.data, line 3: 3 fields, expected 15"):
        load_adult(make_adult(tmp_path / "b", extra="1, 2, 3"))


def test_found_through_gradwise_data_and_not_found_names_the_remedies(tmp_path, monkeypatch):
    make_adult(tmp_path / "data" / "adult")
    monkeypatch.setenv("GRADWISE_DATA", str(tmp_path / "data"))
    train, _ = load_adult()
    assert len(train) == 2
    monkeypatch.setenv("GRADWISE_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("GRADWISE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError, match="adult.data, adult.test.*GRADWISE_DATA.*download=True"):
        load_adult()


@pytest.fixture(scope="module")
def real_adult():
    folder = shared_data_dir("adult")
    if folder is None:
        pytest.skip("the UCI Adult files are not here (set GRADWISE_DATA to a folder holding adult/)")
    return folder


def test_the_real_files_have_the_documented_counts(real_adult):
    train, test = load_adult(real_adult)
    assert (len(train), len(test)) == (32561, 16281)
    assert (train["income"] == ">50K").sum() == 7841 and (test["income"] == ">50K").sum() == 3846
    complete = np.ones(len(train), dtype=bool)
    for c in ADULT_CAT_NAMES:
        complete &= np.array([v is not None for v in train[c]])
    assert complete.sum() == 30162  # adult.names: 30162 rows without a missing value
    assert not any(np.isnan(train[c]).any() for c in ADULT_CONT_NAMES)


def test_the_columns_are_those_of_adult_names(real_adult):
    names = read_adult_names(real_adult / "adult.names")
    assert list(names) == list(ADULT_COLUMNS[:-1])
    assert [c for c, v in names.items() if v is None] == list(ADULT_CONT_NAMES)
    assert names["sex"] == ["Female", "Male"]


def test_download_fetches_into_the_cache_and_checks_sha256(tmp_path, monkeypatch):
    # A file:// "server" stands in for the UCI repository: no network in tests.
    import hashlib

    import gradwise.data.adult as adult

    source = make_adult(tmp_path / "server")
    (source / "adult.names").write_text("age: continuous.\n", encoding="utf-8")
    urls = {name: (source / name).as_uri() for name in adult.ADULT_URLS}
    digests = {name: hashlib.sha256((source / name).read_bytes()).hexdigest() for name in urls}
    monkeypatch.setattr(adult, "ADULT_URLS", urls)
    monkeypatch.setenv("GRADWISE_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("GRADWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(adult, "ADULT_SHA256", {**digests, "adult.test": "0" * 64})
    with pytest.raises(DataFormatError, match="sha256 .* does not match"):
        load_adult(download=True)
    assert not (tmp_path / "cache" / "adult" / "adult.test").exists()
    monkeypatch.setattr(adult, "ADULT_SHA256", digests)
    train, test = load_adult(download=True)
    assert (len(train), len(test)) == (2, 2)
    assert sorted(p.name for p in (tmp_path / "cache" / "adult").iterdir()) == ["adult.data", "adult.test"]
