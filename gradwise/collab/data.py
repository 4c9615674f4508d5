"""MovieLens ratings -> the arrays a collaborative-filtering model trains on, encoders fitted on training only."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradwise.collab.ids import IdEncoder
from gradwise.data.movielens import SPLITS, Items, Ratings, load_movielens, load_movielens_split, random_split


@dataclass
class CollabData:
    """Training and test ratings as model inputs.

    Attributes
    ----------
    x_train, x_test : np.ndarray of int64, shape (N, 2)
        ``(user row, item row)`` pairs, encoded with `users` and `items` (fitted on the training
        ratings only: a test user or item never seen in training is on row 0, the unknown row).
    y_train, y_test : np.ndarray of float32, shape (N,)
        The ratings.
    users, items : IdEncoder
    titles : dict of int to str
        Raw item id -> title (from ``u.item``).
    train, test : Ratings
        The raw ratings (ids as in the files).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    users: IdEncoder
    items: IdEncoder
    titles: dict[int, str]
    train: Ratings
    test: Ratings
    item_table: Items | None = field(default=None, repr=False)

    def meta(self) -> dict[str, Any]:
        """What ``[model] learner = "collab"`` needs (`Splits.meta`)."""
        return {"n_users": len(self.users), "n_items": len(self.items), "user_encoder": self.users,
                "item_encoder": self.items, "titles": self.titles}


def encode_ratings(train: Ratings, test: Ratings, items: Items | None = None) -> CollabData:
    """Fit the id encoders on `train` and encode both sets."""
    users, item_enc = IdEncoder.fit(train.users), IdEncoder.fit(train.items)

    def pairs(r: Ratings) -> np.ndarray:
        return np.stack([users.transform(r.users), item_enc.transform(r.items)], axis=1)

    titles = items.title_of() if items is not None else {}
    return CollabData(pairs(train), train.ratings, pairs(test), test.ratings, users, item_enc, titles, train, test,
                      items)


def movielens_collab(path: str | os.PathLike[str] | None = None, split: str = "random", valid_pct: float = 0.2,
                     seed: int = 0, *, items: str = "id", download: bool = False) -> CollabData:
    """MovieLens 100k ready for `EmbeddingDotBias` / `EmbeddingNN`.

    Parameters
    ----------
    path : path-like, optional
        The ml-100k folder (else ``$GRADWISE_DATA/ml-100k`` or the cache).
    split : {"random", "ua", "ub", "u1", ..., "u5"}
        "random": `valid_pct` of ``u.data`` drawn at random (``np.random.default_rng(seed)``) is the
        test set, as fastai's ``CollabDataLoaders.from_df(valid_pct=0.2)``; otherwise the canonical
        ``<split>.base`` / ``<split>.test``.
    valid_pct : float
        Only for "random".
    seed : int
        Only for "random": the split's seed (independent of the training seed, so that runs with
        different training seeds are scored on the same ratings).
    items : {"id", "title"}
        "title": one item per title, as the fastai lesson (``item_name='title'``): the 18 films
        listed twice in ml-100k are merged under their smaller id (`Items.by_title`).
    download : bool
        Fetch the official zip into the cache when the files are nowhere.
    """
    if items not in ("id", "title"):
        raise ValueError(f"movielens: items={items!r} must be 'id' or 'title'")
    if split == "random":
        ml = load_movielens(path, download=download)
        ratings = ml.ratings.with_items(ml.items.by_title()) if items == "title" else ml.ratings
        train, test = random_split(ratings, valid_pct, np.random.default_rng(seed))
        return encode_ratings(train, test, ml.items)
    if split not in SPLITS:
        raise ValueError(f"movielens: split={split!r} must be 'random' or one of {', '.join(SPLITS)}")
    train, test, table = load_movielens_split(split, path, download=download)
    if items == "title":
        train, test = train.with_items(table.by_title()), test.with_items(table.by_title())
    return encode_ratings(train, test, table)
