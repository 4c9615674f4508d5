"""A tiny search config (spiral, an MLP of width 8-32, 1-2 epochs a trial) for the search tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SPIRAL_SEARCH = """
[data]
dataset = "spiral"
n_per_class = 40
[model]
layers = [
  {{ type = "Linear", in_features = 2, out_features = 16 }},
  {{ type = "ReLU" }},
  {{ type = "Dropout", p = 0.1 }},
  {{ type = "Linear", in_features = 16, out_features = 3 }},
]
[loss]
type = "SoftmaxCrossEntropy"
[optimizer]
type = "Adam"
lr = 1e-2
[train]
epochs = {epochs}
batch_size = 16
seed = 3
[search]
{settings}
"optimizer.lr" = {{ log_uniform = [1e-3, 1e-1] }}
"model.layers.2.p" = {{ uniform = [0.0, 0.5] }}
width = {{ log_int = [8, 32], keys = ["model.layers.0.out_features", "model.layers.3.in_features"] }}
"""


@pytest.fixture
def search_config(tmp_path: Path) -> Callable[..., Path]:
    """Write the spiral search config (with `epochs` and extra [search] settings); return its path."""

    def write(epochs: int = 1, settings: str = 'metric = "accuracy"', name: str = "spiral_search.toml", extra: str = "") -> Path:
        path = tmp_path / name
        path.write_text(SPIRAL_SEARCH.format(epochs=epochs, settings=settings) + extra, encoding="utf-8")
        return path

    return write


def cli_env() -> dict[str, str]:
    """The environment of a `python -m gradwise` subprocess importing this checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gradwise", "search", *args]
