"""A look inside a trained collaborative-filtering model: item biases, nearest items, a PCA of the items.

Everything here reads the model's weights and its id encoders and returns arrays and lists; the
plot of the PCA is `gradwise.viz.embeddings.plot_embedding_2d`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from gradwise.collab._base import CollabModel
from gradwise.collab.dot import EmbeddingDotBias
from gradwise.collab.nn import EmbeddingNN


class RankedItem(NamedTuple):
    """One item of a ranking: its raw id, the score it is ranked by, and its title ("" if unknown)."""

    id: int
    score: float
    title: str


def item_factors(model: CollabModel) -> np.ndarray:
    """The item embedding table, rows ``1..n`` (the known items, in `model.item_encoder` order), float64."""
    if isinstance(model, EmbeddingDotBias):
        table = model.i_weight.data
    elif isinstance(model, EmbeddingNN):
        table = model.i_emb.weight.data
    else:
        raise TypeError(f"item_factors: expected an EmbeddingDotBias or EmbeddingNN, got {type(model).__name__}")
    return np.asarray(table[1:], dtype=np.float64)


def _rows(model: CollabModel, item_ids: Any | None) -> np.ndarray:
    """Rows (0-based into `item_factors`) of `item_ids`, all known items when None."""
    if item_ids is None:
        return np.arange(len(model.item_ids))
    enc = model.item_encoder
    ids = np.asarray(item_ids).reshape(-1)
    rows = enc.transform(ids)
    if (rows == 0).any():
        unknown = ids[rows == 0][:5].tolist()
        raise KeyError(f"item ids {unknown} are not known to the model (not in its training data)")
    return rows - 1


def _title(titles: Mapping[int, str] | None, item: int) -> str:
    return "" if titles is None else titles.get(int(item), "")


def top_items_by_bias(model: EmbeddingDotBias, n: int = 5, titles: Mapping[int, str] | None = None,
                      item_ids: Any | None = None) -> tuple[list[RankedItem], list[RankedItem]]:
    """(lowest, highest): the `n` items with the smallest and the largest learned bias :math:`c_i`.

    The bias says how a movie is rated whoever watches it, once the user's taste (the dot
    product) is accounted for: a low-bias movie is rated low even by users whose factors match
    it (the fastbook's reading). `item_ids` restricts the ranking (e.g. to items with enough
    ratings); the highest list is in descending order.
    """
    if not isinstance(model, EmbeddingDotBias):
        raise TypeError(f"top_items_by_bias: only EmbeddingDotBias has item biases, got {type(model).__name__}")
    if n < 1:
        raise ValueError(f"top_items_by_bias: {n=} must be >= 1")
    rows = _rows(model, item_ids)
    bias = np.asarray(model.i_bias.data[1:], dtype=np.float64)[rows]
    ids = model.item_ids[rows]
    order = np.argsort(bias, kind="stable")

    def ranked(sel: np.ndarray) -> list[RankedItem]:
        return [RankedItem(int(ids[k]), float(bias[k]), _title(titles, ids[k])) for k in sel]

    return ranked(order[:n]), ranked(order[::-1][:n])


def nearest_items(model: CollabModel, item_id: int, n: int = 5, titles: Mapping[int, str] | None = None,
                  item_ids: Any | None = None) -> list[RankedItem]:
    """The `n` items whose factor vectors are closest to `item_id`'s by cosine similarity.

    ``cos(q_a, q_b) = q_a . q_b / (|q_a| |q_b|)``; the item itself is left out. `item_ids`
    restricts the candidates.
    """
    if n < 1:
        raise ValueError(f"nearest_items: {n=} must be >= 1")
    table = item_factors(model)
    (row,) = _rows(model, [item_id])
    cand = _rows(model, item_ids)
    cand = cand[cand != row]
    norms = np.linalg.norm(table, axis=1)
    norms[norms == 0] = 1.0
    sims = table[cand] @ table[row] / (norms[cand] * norms[row])
    order = np.argsort(-sims, kind="stable")[:n]
    ids = model.item_ids[cand]
    return [RankedItem(int(ids[k]), float(sims[k]), _title(titles, ids[k])) for k in order]


def item_pca(model: CollabModel, item_ids: Any | None = None, n_components: int = 2
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal components of the item factors of `item_ids` (all known items when None).

    The factors are centred on their mean and decomposed by SVD; each component's sign is
    chosen so that its largest loading is positive (the result is deterministic).

    Returns
    -------
    coords : np.ndarray, shape (M, n_components)
        Each item's coordinates on the components.
    components : np.ndarray, shape (n_components, n_factors)
    explained : np.ndarray, shape (n_components,)
        The share of the variance each component explains.
    """
    rows = _rows(model, item_ids)
    x = item_factors(model)[rows]
    if not 1 <= n_components <= min(x.shape):
        raise ValueError(f"item_pca: {n_components=} must be in 1..{min(x.shape)} for {x.shape[0]} items "
                         f"of {x.shape[1]} factors")
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:n_components]
    flip = np.sign(comps[np.arange(n_components), np.argmax(np.abs(comps), axis=1)])
    comps = comps * flip[:, None]
    var = s**2
    total = var.sum()
    explained = var[:n_components] / total if total > 0 else np.zeros(n_components)
    return x @ comps.T, comps, explained


def most_rated(item_ids: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """The `n` raw ids that occur most often in `item_ids` (the items of a ratings table), most first."""
    ids, counts = np.unique(np.asarray(item_ids), return_counts=True)
    order = np.lexsort((ids, -counts))
    return ids[order[:n]]
