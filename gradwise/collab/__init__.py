"""Collaborative filtering: user and item embeddings, the dot-product and neural models, and a look inside.

- `IdEncoder`: raw ids -> embedding rows, row 0 for ids not seen in training.
- `EmbeddingDotBias`: ``sigmoid_range(p_u . q_i + b_u + c_i)``, fastai's dot-product model.
- `EmbeddingNN`: the two embeddings concatenated into an MLP, fastai's neural variant.
- Interpretation: `top_items_by_bias`, `nearest_items`, `item_pca`, `most_rated` (draw the PCA
  with `gradwise.viz.embeddings.plot_embedding_2d`).

See ``docs/collab.md``.
"""

from __future__ import annotations

from gradwise.collab.dot import EmbeddingDotBias
from gradwise.collab.ids import UNKNOWN, IdEncoder
from gradwise.collab.interpret import RankedItem, item_factors, item_pca, most_rated, nearest_items, top_items_by_bias
from gradwise.collab.nn import EmbeddingNN, emb_size

__all__ = [
    "UNKNOWN",
    "EmbeddingDotBias",
    "EmbeddingNN",
    "IdEncoder",
    "RankedItem",
    "emb_size",
    "item_factors",
    "item_pca",
    "most_rated",
    "nearest_items",
    "top_items_by_bias",
]
