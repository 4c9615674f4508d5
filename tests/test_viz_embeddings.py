"""Tests for gradwise/viz/embeddings.py: the labelled 2-D scatter of embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def test_plot_embedding_2d(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from gradwise.viz.embeddings import plot_embedding_2d

    coords = np.array([[0.0, 1.0], [1.0, 0.5], [-1.0, 0.0], [0.2, -0.3], [0.0, 0.0]])
    out = plot_embedding_2d(coords, [f"item {i} (a long title, shortened at 32 characters)" for i in range(5)],
                            tmp_path / "pca" / "items.png", title="items", figsize=(4, 4), dpi=50)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="3 labels for 5 points"):
        plot_embedding_2d(coords, ["a", "b", "c"], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"shape \(M, 2\)"):
        plot_embedding_2d(coords[:, :1], ["a"] * 5, tmp_path / "x.png")
