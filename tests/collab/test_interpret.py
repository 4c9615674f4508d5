"""Tests for gradwise/collab/interpret.py: item biases, nearest items by cosine, the PCA of the items."""

from __future__ import annotations

import numpy as np
import pytest

from gradwise.collab import (
    EmbeddingDotBias,
    EmbeddingNN,
    IdEncoder,
    item_factors,
    item_pca,
    most_rated,
    nearest_items,
    top_items_by_bias,
)

ITEM_IDS = [10, 20, 30, 40, 50]
TITLES = {10: "Ten", 20: "Twenty", 30: "Thirty", 40: "Forty", 50: "Fifty"}


@pytest.fixture
def model(rng: np.random.Generator) -> EmbeddingDotBias:
    m = EmbeddingDotBias(3, IdEncoder.fit(ITEM_IDS), 2, rng=rng, dtype=np.float64)
    m.i_bias.data[1:] = [0.3, -1.0, 2.0, 0.0, -0.5]
    # Item 10 points along x; 20 nearly so; 30 opposite; 40 along y; 50 diagonal.
    m.i_weight.data[1:] = [[1, 0], [2, 0.1], [-1, 0], [0, 1], [1, 1]]
    return m


def test_lowest_and_highest_bias(model: EmbeddingDotBias) -> None:
    low, high = top_items_by_bias(model, 2, TITLES)
    assert [(r.id, r.title) for r in low] == [(20, "Twenty"), (50, "Fifty")]
    assert [r.id for r in high] == [30, 10] and high[0].score == pytest.approx(2.0)
    low, high = top_items_by_bias(model, 5, item_ids=[10, 40])
    assert [r.id for r in low] == [40, 10] and low[0].title == ""
    with pytest.raises(KeyError, match=r"\[99\]"):
        top_items_by_bias(model, 2, item_ids=[99])
    with pytest.raises(TypeError, match="only EmbeddingDotBias"):
        top_items_by_bias(EmbeddingNN(3, 3, layers=[2]), 2)  # type: ignore[arg-type]


def test_nearest_items_by_cosine(model: EmbeddingDotBias) -> None:
    near = nearest_items(model, 10, 3, TITLES)
    assert [r.id for r in near] == [20, 50, 40]
    assert near[0].score == pytest.approx(2 / np.hypot(2, 0.1)) and near[1].score == pytest.approx(2**-0.5)
    assert [r.id for r in nearest_items(model, 10, 10)][-1] == 30  # the opposite vector is the farthest
    assert [r.id for r in nearest_items(model, 40, 1, item_ids=[10, 30, 50])] == [50]


def test_pca_of_items(model: EmbeddingDotBias) -> None:
    coords, comps, explained = item_pca(model)
    x = item_factors(model)
    assert coords.shape == (5, 2) and comps.shape == (2, 2)
    np.testing.assert_allclose(comps @ comps.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(coords, (x - x.mean(0)) @ comps.T)
    assert explained.sum() == pytest.approx(1.0) and explained[0] >= explained[1]
    assert np.all(comps[np.arange(2), np.abs(comps).argmax(1)] > 0)  # deterministic signs
    assert item_pca(model, [10, 20, 30], 1)[0].shape == (3, 1)
    with pytest.raises(ValueError, match="n_components=3"):
        item_pca(model, n_components=3)


def test_most_rated() -> None:
    assert most_rated([5, 3, 5, 2, 3, 5, 9], 2).tolist() == [5, 3]
    assert most_rated([1, 2], 5).tolist() == [1, 2]  # ties by id
