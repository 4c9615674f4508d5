"""MovieLens 100k (GroupLens): ratings, item titles and genres, and the canonical splits.

The folder (``ml-100k``, as unzipped from the official archive) is found by
`gradwise.data.sources.find_dataset`: an explicit ``path``, then ``$GRADWISE_DATA/ml-100k``, then
the cache directory. ``download=True`` fetches the official zip from GroupLens into the cache
folder when no folder holds the files (the only time anything touches the network).

Files read (tab- or ``|``-separated text, as the GroupLens README describes them):

- ``u.data``: 100,000 lines ``user<TAB>item<TAB>rating<TAB>timestamp`` (ids from 1, ratings 1-5,
  Unix seconds);
- ``u.item``: one line per item, ``id|title|release date|video release date|IMDb URL|`` then 19
  genre flags (0/1) in the order of `GENRES`; Latin-1 encoded (a few titles hold non-ASCII bytes);
- the splits, in the format of ``u.data``: ``ua.base``/``ua.test`` and ``ub.base``/``ub.test``
  (exactly 10 ratings per user in the test set) and ``u1.base``..``u5.base`` with their ``.test``
  (five disjoint 20% test sets for 5-fold cross-validation).

A line that does not parse raises `DataFormatError` naming the file and the line (1-based)
before anything is returned.

Terms: MovieLens may be used for research only and **may not be redistributed** (the README's
"SUMMARY & USAGE LICENSE"); cite F. M. Harper and J. A. Konstan, 2015, "The MovieLens Datasets:
History and Context", ACM TiiS 5(4):19. gradwise never ships the files: point it to your copy.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradwise.data.sources import DataFormatError, DatasetNotFoundError, cache_dir, find_dataset
from gradwise.fileio import atomic_write_bytes
from gradwise.random import resolve as _resolve_rng

NAME = "ml-100k"
URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
SPLITS = ("ua", "ub", "u1", "u2", "u3", "u4", "u5")
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
_ITEM_FIELDS = 5 + len(GENRES)


@dataclass(frozen=True)
class Ratings:
    """Ratings of one file, row by row, with the raw (1-based) ids of the file.

    Attributes
    ----------
    users, items : np.ndarray of int64, shape (N,)
    ratings : np.ndarray of float32, shape (N,)
    timestamps : np.ndarray of int64, shape (N,)
        Unix seconds.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.ratings)

    def pairs(self) -> np.ndarray:
        """The ``(user, item)`` raw ids, int64 of shape (N, 2)."""
        return np.stack([self.users, self.items], axis=1)

    def with_items(self, mapping: dict[int, int]) -> Ratings:
        """The same ratings with each item id replaced by ``mapping[id]`` (ids not in it kept)."""
        keys = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
        values = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
        order = np.argsort(keys)
        keys, values = keys[order], values[order]
        pos = np.clip(np.searchsorted(keys, self.items), 0, max(len(keys) - 1, 0))
        hit = keys[pos] == self.items if len(keys) else np.zeros(len(self.items), dtype=bool)
        return Ratings(self.users, np.where(hit, values[pos], self.items), self.ratings, self.timestamps)

    def take(self, rows: np.ndarray) -> Ratings:
        """The ratings of `rows` (indices or a boolean mask)."""
        return Ratings(self.users[rows], self.items[rows], self.ratings[rows], self.timestamps[rows])


@dataclass(frozen=True)
class Items:
    """The item table of ``u.item``.

    Attributes
    ----------
    ids : np.ndarray of int64, shape (M,)
    titles : tuple of str, length M
    genres : np.ndarray of bool, shape (M, 19)
        Column j is genre ``GENRES[j]``.
    """

    ids: np.ndarray
    titles: tuple[str, ...]
    genres: np.ndarray

    def title_of(self) -> dict[int, str]:
        """raw item id -> title."""
        return {int(i): t for i, t in zip(self.ids, self.titles)}

    def by_title(self) -> dict[int, int]:
        """raw item id -> the smallest id with the same title.

        ml-100k lists 18 films twice under two ids (1682 ids, 1664 titles); fastai's lesson
        identifies movies by title (``item_name='title'``), which merges them.
        """
        first: dict[str, int] = {}
        for i, t in sorted(zip(self.ids.tolist(), self.titles)):
            first.setdefault(t, i)
        return {int(i): first[t] for i, t in zip(self.ids.tolist(), self.titles)}


@dataclass(frozen=True)
class MovieLens:
    """``u.data`` and ``u.item`` of one folder."""

    ratings: Ratings
    items: Items
    folder: Path


def read_ratings(path: str | os.PathLike[str]) -> Ratings:
    """Parse a ``u.data``-format file (``user<TAB>item<TAB>rating<TAB>timestamp`` per line).

    Raises
    ------
    DataFormatError
        Naming the file and the first line that does not have four fields, integer ids >= 1, a
        finite rating and an integer timestamp. An empty file is an error too.
    """
    path = Path(path)
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise DataFormatError(f"{path}: no ratings (the file is empty)")
    fields = [line.split(b"\t") for line in lines]
    for n, row in enumerate(fields, 1):
        if len(row) != 4:
            raise DataFormatError(
                f"{path}, line {n}: expected 4 tab-separated fields (user, item, rating, timestamp), got {len(row)}: "
                f"{_show(lines[n - 1])}"
            )
    table = np.array(fields)  # bytes, shape (N, 4)
    try:
        ints = table[:, [0, 1, 3]].astype(np.int64)
        ratings = table[:, 2].astype(np.float64)
    except ValueError as err:
        n = _first_bad_line(fields)
        where = f", line {n}" if n is not None else ""
        shown = f": {_show(lines[n - 1])}" if n is not None else f" ({err})"
        raise DataFormatError(
            f"{path}{where}: user, item and timestamp must be integers and the rating a number{shown}"
        ) from None
    bad = (ints[:, 0] < 1) | (ints[:, 1] < 1) | ~np.isfinite(ratings)
    if bad.any():
        n = int(np.flatnonzero(bad)[0]) + 1
        raise DataFormatError(
            f"{path}, line {n}: ids must be integers >= 1 and the rating a finite number: {_show(lines[n - 1])}"
        )
    return Ratings(ints[:, 0].copy(), ints[:, 1].copy(), ratings.astype(np.float32), ints[:, 2].copy())


def _first_bad_line(fields: list[list[bytes]]) -> int | None:
    """The 1-based number of the first row whose fields do not parse, if Python's parsers find one."""
    for n, row in enumerate(fields, 1):
        try:
            int(row[0]), int(row[1]), float(row[2]), int(row[3])
        except ValueError:
            return n
    return None


def read_items(path: str | os.PathLike[str]) -> Items:
    """Parse ``u.item`` (Latin-1, ``|``-separated: id, title, dates, URL, 19 genre flags).

    Raises
    ------
    DataFormatError
        Naming the file and the first line without 24 fields, an integer id >= 1 and 0/1 flags,
        or the line of a repeated id.
    """
    path = Path(path)
    text = path.read_bytes().decode("latin-1")  # every byte is a Latin-1 character: never fails
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    ids: list[int] = []
    titles: list[str] = []
    flags: list[list[str]] = []
    seen: dict[int, int] = {}
    for n, line in enumerate(lines, 1):
        row = line.rstrip("\r").split("|")
        if len(row) != _ITEM_FIELDS:
            raise DataFormatError(f"{path}, line {n}: expected {_ITEM_FIELDS} '|'-separated fields, got {len(row)}: "
                                  f"{line[:80]!r}")
        try:
            item = int(row[0])
        except ValueError:
            item = 0
        if item < 1:
            raise DataFormatError(f"{path}, line {n}: the item id must be an integer >= 1, got {row[0]!r}")
        if any(f not in ("0", "1") for f in row[5:]):
            raise DataFormatError(f"{path}, line {n}: the 19 genre flags must be 0 or 1, got {'|'.join(row[5:])!r}")
        if item in seen:
            raise DataFormatError(f"{path}, line {n}: item id {item} already on line {seen[item]}")
        seen[item] = n
        ids.append(item)
        titles.append(row[1])
        flags.append(row[5:])
    if not ids:
        raise DataFormatError(f"{path}: no items (the file is empty)")
    return Items(np.array(ids, dtype=np.int64), tuple(titles), np.array(flags) == "1")


def _show(line: bytes) -> str:
    return repr(line[:80].decode("latin-1"))


def movielens_folder(path: str | os.PathLike[str] | None = None, files: tuple[str, ...] = ("u.data", "u.item"),
                     *, download: bool = False) -> Path:
    """The ml-100k folder holding `files` (see `gradwise.data.sources.find_dataset`).

    With ``download=True`` and no folder found (and no explicit `path`), the official zip is
    fetched from GroupLens and unzipped into ``<cache>/ml-100k``.
    """
    try:
        return find_dataset(NAME, files, path)
    except DatasetNotFoundError as err:
        if not download or path is not None:
            raise DatasetNotFoundError(
                f"{err} (MovieLens 100k: https://grouplens.org/datasets/movielens/100k/, research use only, "
                f"or download=True / [data] download = true)"
            ) from None
    target = cache_dir() / NAME
    fetch_zip(URL, target)
    return find_dataset(NAME, files, target)


def fetch_zip(url: str, target: Path) -> None:
    """Download the ml-100k zip from `url` and write its files into `target`, each atomically.

    Only the members of the archive's ``ml-100k/`` folder are written (by their base name), so a
    file of the archive can never land outside `target`. A corrupt archive writes nothing.
    """
    import urllib.request  # here, not at import time: http.client costs ~25 ms of `import gradwise`

    try:
        with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - the official source
            payload = response.read()
    except OSError as err:
        raise DatasetNotFoundError(f"could not download {url}: {err}") from None
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
        bad = archive.testzip()
    except zipfile.BadZipFile as err:
        raise DataFormatError(f"{url}: not a valid zip archive ({err}); nothing was saved") from None
    if bad is not None:
        raise DataFormatError(f"{url}: member {bad!r} of the archive is corrupt; nothing was saved")
    members = {}
    for info in archive.infolist():
        folder, _, name = info.filename.rpartition("/")
        if info.is_dir() or folder != NAME or not name or name.startswith("."):
            continue
        members[name] = archive.read(info)
    if "u.data" not in members:
        raise DataFormatError(f"{url}: the archive holds no {NAME}/u.data; nothing was saved")
    target.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        atomic_write_bytes(target / name, data)


def load_movielens(path: str | os.PathLike[str] | None = None, *, download: bool = False) -> MovieLens:
    """All 100,000 ratings (``u.data``) and the item table (``u.item``).

    Parameters
    ----------
    path : path-like, optional
        The ml-100k folder; else ``$GRADWISE_DATA/ml-100k`` or the cache (see `movielens_folder`).
    download : bool
        Fetch the official zip into the cache when the files are nowhere (needs a network).

    Returns
    -------
    MovieLens
        ``.ratings`` (`Ratings`, raw 1-based ids), ``.items`` (`Items`: ids, titles, genres).

    Raises
    ------
    DatasetNotFoundError, DataFormatError
    """
    folder = movielens_folder(path, ("u.data", "u.item"), download=download)
    ratings = read_ratings(folder / "u.data")
    items = read_items(folder / "u.item")
    return MovieLens(ratings, items, folder)


def load_movielens_split(split: str, path: str | os.PathLike[str] | None = None, *,
                         download: bool = False) -> tuple[Ratings, Ratings, Items]:
    """A canonical split: ``(train, test, items)`` from ``<split>.base``, ``<split>.test``, ``u.item``.

    Parameters
    ----------
    split : {"ua", "ub", "u1", "u2", "u3", "u4", "u5"}
        ``ua``/``ub``: 10 test ratings per user; ``u1``..``u5``: the 5-fold 80/20 splits.
    """
    if split not in SPLITS:
        raise ValueError(f"load_movielens_split: split={split!r} must be one of {', '.join(SPLITS)}")
    folder = movielens_folder(path, (f"{split}.base", f"{split}.test", "u.item"), download=download)
    train = read_ratings(folder / f"{split}.base")
    test = read_ratings(folder / f"{split}.test")
    return train, test, read_items(folder / "u.item")


def random_split(ratings: Ratings, valid_pct: float = 0.2, rng: np.random.Generator | None = None
                 ) -> tuple[Ratings, Ratings]:
    """(train, valid): a random `valid_pct` of the rows held out, as fastai's ``RandomSplitter``."""
    if not 0 < valid_pct < 1:
        raise ValueError(f"random_split: {valid_pct=} must be in (0, 1)")
    order = _resolve_rng(rng).permutation(len(ratings))
    cut = int(valid_pct * len(ratings))
    return ratings.take(np.sort(order[cut:])), ratings.take(np.sort(order[:cut]))
