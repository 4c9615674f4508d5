"""Tests for gradwise/collab/ids.py: raw ids -> rows, with row 0 for unknown ids."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradwise.collab import UNKNOWN, IdEncoder


def test_rows_are_contiguous_from_one_and_unknown_is_zero() -> None:
    enc = IdEncoder.fit([[10, 3], [10, 7]])
    assert enc.classes.tolist() == [3, 7, 10] and len(enc) == 4
    assert enc.transform([3, 7, 10, 99, -1]).tolist() == [1, 2, 3, UNKNOWN, UNKNOWN]
    assert enc.transform(np.array([[10], [3]])).shape == (2, 1)
    assert enc.known([7, 8]).tolist() == [True, False]
    assert enc.inverse_transform([1, 3]).tolist() == [3, 10]
    assert enc == IdEncoder([10, 7, 3]) and repr(enc) == "IdEncoder(3 ids + unknown)"


def test_bad_ids() -> None:
    with pytest.raises(TypeError, match="integers"):
        IdEncoder(["a", "b"])
    with pytest.raises(TypeError, match="integers"):
        IdEncoder.fit([1]).transform([1.5])
    with pytest.raises(ValueError, match="1-D"):
        IdEncoder(np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="row 0 stands for unknown"):
        IdEncoder.fit([1, 2]).inverse_transform([0])


def test_empty_encoder_maps_everything_to_unknown() -> None:
    enc = IdEncoder(np.zeros(0, dtype=np.int64))
    assert len(enc) == 1 and enc.transform([1, 2]).tolist() == [0, 0]


@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=50), st.lists(st.integers(-(2**40), 2**40), max_size=50))
def test_round_trip_and_unknowns(fitted: list[int], queried: list[int]) -> None:
    enc = IdEncoder.fit(fitted)
    rows = enc.transform(fitted)
    assert rows.min() >= 1 and rows.max() == len(enc) - 1
    assert enc.inverse_transform(rows).tolist() == fitted
    got = enc.transform(queried)
    assert [(r != 0) for r in got] == [q in set(fitted) for q in queried]
