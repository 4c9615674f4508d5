"""Tests for gradwise/data/movielens.py: parsing, errors naming file and line, finding and downloading.

Small generated files in tmp_path for the formats and the errors; the real ml-100k (never in the
repository: its terms forbid redistribution) where `tests/ml100k.py` finds it.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ml100k import ml100k_or_skip

from gradwise.data import movielens as ml
from gradwise.data.sources import DataFormatError, DatasetNotFoundError


@pytest.fixture
def real_ml100k() -> Path:
    return ml100k_or_skip()


def _item_line(item: int, title: str, genres: tuple[int, ...] = (0,) * 19) -> str:
    return f"{item}|{title}|01-Jan-1995||http://example.org/{item}|" + "|".join(map(str, genres))


def write_folder(folder: Path, ratings: list[tuple[int, int, float, int]] | None = None,
                 items: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ratings = ratings if ratings is not None else [(1, 1, 5, 881250949), (1, 2, 3, 881250950), (2, 1, 4, 881250951),
                                                   (3, 3, 1, 881250952)]
    text = "".join(f"{u}\t{i}\t{r:g}\t{t}\n" for u, i, r, t in ratings)
    (folder / "u.data").write_text(text)
    genres = (0, 1) + (0,) * 17
    items = items if items is not None else [_item_line(1, "Toy Story (1995)", genres), _item_line(2, "GoldenEye (1995)"),
                                             _item_line(3, "Café Society (1995)")]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (folder / "ua.base").write_text(text.split("\n", 1)[1])
    (folder / "ua.test").write_text(text.split("\n", 1)[0] + "\n")
    return folder


def test_reads_ratings_and_items(tmp_path: Path) -> None:
    data = ml.load_movielens(write_folder(tmp_path / "ml-100k"))
    assert data.ratings.users.tolist() == [1, 1, 2, 3]
    assert data.ratings.items.tolist() == [1, 2, 1, 3]
    assert data.ratings.ratings.dtype == np.float32 and data.ratings.ratings.tolist() == [5, 3, 4, 1]
    assert data.ratings.timestamps.dtype == np.int64 and data.ratings.timestamps[0] == 881250949
    assert data.ratings.pairs().tolist() == [[1, 1], [1, 2], [2, 1], [3, 3]]
    assert data.items.titles == ("Toy Story (1995)", "GoldenEye (1995)", "Café Society (1995)")  # Latin-1
    assert data.items.genres.shape == (3, 19) and data.items.genres.dtype == bool
    assert data.items.genres[0, ml.GENRES.index("Action")] and data.items.genres.sum() == 1
    assert data.items.title_of()[3] == "Café Society (1995)"


def test_canonical_split(tmp_path: Path) -> None:
    train, test, items = ml.load_movielens_split("ua", write_folder(tmp_path / "ml-100k"))
    assert len(train) == 3 and len(test) == 1 and test.users.tolist() == [1]
    assert len(items.ids) == 3
    with pytest.raises(ValueError, match="split='u9'"):
        ml.load_movielens_split("u9", tmp_path / "ml-100k")
    with pytest.raises(DatasetNotFoundError, match="u1.base"):
        ml.load_movielens_split("u1", tmp_path / "ml-100k")


def test_random_split_is_seeded_and_disjoint(tmp_path: Path) -> None:
    rows = [(u, i, 3, 0) for u in range(1, 11) for i in range(1, 11)]
    data = ml.load_movielens(write_folder(tmp_path / "ml-100k", rows))
    a_train, a_valid = ml.random_split(data.ratings, 0.2, np.random.default_rng(0))
    b_train, b_valid = ml.random_split(data.ratings, 0.2, np.random.default_rng(0))
    assert len(a_valid) == 20 and len(a_train) == 80
    assert np.array_equal(a_valid.pairs(), b_valid.pairs())
    pairs = {tuple(p) for p in a_train.pairs()} | {tuple(p) for p in a_valid.pairs()}
    assert len(pairs) == 100
    with pytest.raises(ValueError, match="valid_pct"):
        ml.random_split(data.ratings, 1.0)


@pytest.mark.parametrize(
    ("line", "expect"),
    [
        ("1\t2\t3", "line 3: expected 4 tab-separated fields"),
        ("1 2 3 4", "line 3: expected 4 tab-separated fields"),
        ("1\tx\t3\t4", "line 3: user, item and timestamp must be integers"),
        ("1\t2\tfive\t4", "line 3: user, item and timestamp must be integers and the rating a number"),
        ("0\t2\t3\t4", "line 3: ids must be integers >= 1"),
        ("1\t2\tnan\t4", "line 3: ids must be integers >= 1 and the rating a finite number"),
    ],
)
def test_malformed_rating_line_names_file_and_line(tmp_path: Path, line: str, expect: str) -> None:
    folder = write_folder(tmp_path / "ml-100k")
    lines = (folder / "u.data").read_text().splitlines()
    lines.insert(2, line)
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=expect) as err:
        ml.load_movielens(folder)
    assert str(folder / "u.data") in str(err.value)


def test_truncated_last_line_and_empty_file(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "ml-100k")
    data = (folder / "u.data").read_bytes()
    (folder / "u.data").write_bytes(data[:-14])  # a download cut off inside the last line: "3\t3"
    with pytest.raises(DataFormatError, match="line 4: expected 4 tab-separated fields"):
        ml.read_ratings(folder / "u.data")
    (folder / "u.data").write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty"):
        ml.read_ratings(folder / "u.data")


@pytest.mark.parametrize(
    ("bad", "expect"),
    [
        ("4|Only a title", "line 2: expected 24 '|'-separated fields, got 2"),
        (_item_line(0, "Zero"), "line 2: the item id must be an integer >= 1"),
        (_item_line(4, "Flags", (2,) + (0,) * 18), "line 2: the 19 genre flags must be 0 or 1"),
        (_item_line(1, "Again"), "line 2: item id 1 already on line 1"),
    ],
)
def test_malformed_item_line(tmp_path: Path, bad: str, expect: str) -> None:
    folder = write_folder(tmp_path / "ml-100k", items=[_item_line(1, "One"), bad])
    with pytest.raises(DataFormatError, match=expect) as err:
        ml.read_items(folder / "u.item")
    assert str(folder / "u.item") in str(err.value)


def test_found_through_gradwise_data_and_missing_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_folder(tmp_path / "datasets" / "ml-100k")
    monkeypatch.setenv("GRADWISE_DATA", str(tmp_path / "datasets"))
    monkeypatch.setenv("GRADWISE_CACHE", str(tmp_path / "cache"))
    assert len(ml.load_movielens().ratings) == 4
    monkeypatch.setenv("GRADWISE_DATA", str(tmp_path / "nothing"))
    with pytest.raises(DatasetNotFoundError, match="grouplens.org") as err:
        ml.load_movielens()
    assert "u.data" in str(err.value) and str(tmp_path / "cache") in str(err.value)


def _zip_of(folder: Path, names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in names:
            z.write(folder / name, f"ml-100k/{name}")
        z.writestr("ml-100k/../evil", "outside")  # never written outside the target
    return buf.getvalue()


def test_download_unzips_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file:// URL stands for GroupLens: the same code path, no network.
    src = write_folder(tmp_path / "src")
    archive = tmp_path / "ml-100k.zip"
    archive.write_bytes(_zip_of(src, ["u.data", "u.item", "ua.base", "ua.test"]))
    monkeypatch.setenv("GRADWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GRADWISE_DATA", raising=False)
    monkeypatch.setattr(ml, "URL", archive.as_uri())
    with pytest.raises(DatasetNotFoundError):
        ml.load_movielens()  # no download unless asked
    data = ml.load_movielens(download=True)
    assert data.folder == tmp_path / "cache" / "ml-100k" and len(data.ratings) == 4
    assert sorted(p.name for p in data.folder.iterdir()) == ["u.data", "u.item", "ua.base", "ua.test"]
    assert not (tmp_path / "cache" / "evil").exists()
    train, _, _ = ml.load_movielens_split("ua")  # found in the cache now
    assert len(train) == 3


def test_corrupt_download_saves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "ml-100k.zip"
    archive.write_bytes(b"PK\x03\x04 this is not a zip")
    monkeypatch.setenv("GRADWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GRADWISE_DATA", raising=False)
    monkeypatch.setattr(ml, "URL", archive.as_uri())
    with pytest.raises(DataFormatError, match="not a valid zip"):
        ml.load_movielens(download=True)
    assert not (tmp_path / "cache" / "ml-100k" / "u.data").exists()
    monkeypatch.setattr(ml, "URL", (tmp_path / "absent.zip").as_uri())
    with pytest.raises(DatasetNotFoundError, match="could not download"):
        ml.load_movielens(download=True)


def test_real_ml100k(real_ml100k: Path) -> None:
    data = ml.load_movielens(real_ml100k)
    r = data.ratings
    assert len(r) == 100_000
    assert len(np.unique(r.users)) == 943 and len(np.unique(r.items)) == 1682
    assert np.bincount(r.ratings.astype(np.int64), minlength=6)[1:].tolist() == [6110, 11370, 27145, 34174, 21201]
    assert len(data.items.ids) == 1682 and data.items.titles[0] == "Toy Story (1995)"
    train, test, _ = ml.load_movielens_split("ua", real_ml100k)
    assert (len(train), len(test)) == (90_570, 9_430)
    assert np.all(np.bincount(test.users)[1:] == 10)  # ua.test: exactly 10 ratings per user


def test_windows_line_endings(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "ml-100k")
    for name in ("u.data", "u.item"):
        (folder / name).write_bytes((folder / name).read_bytes().replace(b"\n", b"\r\n"))
    data = ml.load_movielens(folder)
    assert data.ratings.timestamps[-1] == 881250952 and data.items.genres.shape == (3, 19)


@given(
    rows=st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 10**6), st.integers(1, 5), st.integers(0, 2**40)),
                  min_size=1, max_size=30),
    bad_at=st.integers(0, 30),
    bad=st.sampled_from(["", "1\t2\t3", "a\tb\tc\td", "1\t2\t3\t4\t5", "1\t-2\t3\t4", "1\t2\t\t4"]),
)
def test_ratings_round_trip_and_any_bad_line_is_named(rows, bad_at: int, bad: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "u.data"
        lines = [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in rows]
        path.write_text("\n".join(lines) + "\n")
        got = ml.read_ratings(path)
        assert got.pairs().tolist() == [[u, i] for u, i, _, _ in rows]
        assert got.ratings.tolist() == [r for _, _, r, _ in rows] and got.timestamps.tolist() == [t for *_, t in rows]
        k = min(bad_at, len(lines))
        path.write_text("\n".join([*lines[:k], bad, *lines[k:]]) + "\n")
        with pytest.raises(DataFormatError, match=f"u.data, line {k + 1}:"):
            ml.read_ratings(path)
