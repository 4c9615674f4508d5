"""Tests for gradwise/collab/data.py: MovieLens ratings -> encoded model inputs (encoders fitted on
training only), and the by-title merge of films listed twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradwise.collab.data import movielens_collab
from gradwise.data.movielens import read_items


def _folder(tmp_path: Path) -> Path:
    d = tmp_path / "ml-100k"
    d.mkdir()
    flags = "|".join("0" * 19)
    # Items 2 and 4 are the same film listed twice (as 18 films of ml-100k are).
    titles = {1: "Alpha (1995)", 2: "Twice (1996)", 3: "Gamma (1997)", 4: "Twice (1996)"}
    (d / "u.item").write_text("".join(f"{i}|{t}|01-Jan-1995||http://x/{i}|{flags}\n" for i, t in titles.items()))
    rows = [(1, 1, 5), (1, 2, 4), (2, 4, 3), (2, 3, 2), (3, 1, 1), (3, 4, 5), (4, 3, 4), (4, 2, 2), (5, 1, 3), (5, 3, 3)]
    text = "".join(f"{u}\t{i}\t{r}\t88000000{k}\n" for k, (u, i, r) in enumerate(rows))
    (d / "u.data").write_text(text)
    lines = text.splitlines(keepends=True)
    (d / "u1.base").write_text("".join(lines[:8]))
    (d / "u1.test").write_text("".join(lines[8:]))
    return d


def test_items_by_title_merge_duplicates(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    assert read_items(folder / "u.item").by_title() == {1: 1, 2: 2, 3: 3, 4: 2}
    by_id = movielens_collab(folder, "u1", items="id")
    by_title = movielens_collab(folder, "u1", items="title")
    assert by_id.items.classes.tolist() == [1, 2, 3, 4]
    assert by_title.items.classes.tolist() == [1, 2, 3] and 4 not in by_title.train.items
    assert by_title.titles[2] == "Twice (1996)"
    with pytest.raises(ValueError, match="items='name'"):
        movielens_collab(folder, "u1", items="name")


def test_encoders_are_fitted_on_training_only(tmp_path: Path) -> None:
    data = movielens_collab(_folder(tmp_path), "u1")
    assert data.users.classes.tolist() == [1, 2, 3, 4]  # user 5 rates only in u1.test
    assert data.x_test[:, 0].tolist() == [0, 0]  # -> the unknown row
    assert data.x_train.dtype == np.int64 and data.y_train.dtype == np.float32
    np.testing.assert_array_equal(data.users.inverse_transform(data.x_train[:, 0]), data.train.users)
    meta = data.meta()
    assert (meta["n_users"], meta["n_items"]) == (5, 5) and meta["user_encoder"] is data.users


def test_random_split_is_seeded(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    a, b = movielens_collab(folder, valid_pct=0.2, seed=3), movielens_collab(folder, valid_pct=0.2, seed=3)
    assert len(a.x_test) == 2 and len(a.x_train) == 8
    np.testing.assert_array_equal(a.test.pairs(), b.test.pairs())
    with pytest.raises(ValueError, match="split='u0'"):
        movielens_collab(folder, "u0")
