"""`gradwise.data.rows`: one array or a tuple of arrays, treated alike."""

from __future__ import annotations

import numpy as np
import pytest

from gradwise.data.rows import head, input_shape, n_rows, take


def test_one_array_and_a_tuple():
    x = np.arange(12).reshape(6, 2)
    pair = (x, np.ones((6, 3), dtype=np.float32))
    assert n_rows(x) == n_rows(pair) == 6
    idx = np.array([4, 0])
    np.testing.assert_array_equal(take(x, idx), x[idx])
    a, b = take(pair, idx)
    np.testing.assert_array_equal(a, x[idx])
    assert b.shape == (2, 3) and b.dtype == np.float32
    assert head(pair, 0)[0].shape == (0, 2)
    assert input_shape(x) == (1, 2) and input_shape(pair, batch=4) == ((4, 2), (4, 3))


def test_mismatched_tuples_are_named():
    with pytest.raises(ValueError, match=r"different lengths \[3, 2\]"):
        n_rows((np.zeros(3), np.zeros(2)))
    with pytest.raises(ValueError, match="empty tuple"):
        n_rows(())
