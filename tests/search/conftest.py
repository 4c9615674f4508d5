"""A tiny search config (spiral, an MLP of width 8-32, 1-2 epochs a trial) for the search tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import spiral_cli_config

ROOT = Path(__file__).resolve().parents[2]

# The [search] table over the spiral MLP of the resume tests (width 16, dropout 0.1): lr, the
# dropout and the width (one value for the out_features and in_features on either side of it).
SEARCH_TABLE = """[search]
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
        text = spiral_cli_config(epochs, dropout=0.1, seed=3) + SEARCH_TABLE.format(settings=settings) + extra
        path.write_text(text, encoding="utf-8")
        return path

    return write


def cli_env() -> dict[str, str]:
    """The environment of a `python -m gradwise` subprocess importing this checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gradwise", "search", *args]
