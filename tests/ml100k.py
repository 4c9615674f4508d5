"""Where the tests find the real MovieLens 100k (never in the repository: its terms forbid
redistribution), imported as ``ml100k`` from any test directory (tests/ is on sys.path).

Looked for, in order: ``$GRADWISE_DATA/ml-100k``, ``<repo>/../shared/data/ml-100k`` (a checkout
next to the shared data) and ``<repo>/../../shared/data/ml-100k`` (a git worktree one level deeper).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def candidates() -> list[Path]:
    found = [Path(os.environ["GRADWISE_DATA"]) / "ml-100k"] if os.environ.get("GRADWISE_DATA") else []
    return found + [ROOT.parent / "shared" / "data" / "ml-100k", ROOT.parent.parent / "shared" / "data" / "ml-100k"]


def ml100k_or_skip() -> Path:
    """The ml-100k folder, or skip the test saying where it was looked for."""
    for folder in candidates():
        if (folder / "u.data").is_file() and (folder / "u.item").is_file():
            return folder
    where = ", ".join(str(p.resolve()) for p in candidates())
    pytest.skip(f"MovieLens 100k not found (looked in {where}); it may not be redistributed, so the repo has no copy")
