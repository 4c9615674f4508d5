"""The library's default random generator.

Every source of randomness in gradwise (initialization, shuffling, dropout masks, data generation)
takes an explicit `np.random.Generator`; when none is given it uses `default_rng()`, which
`manual_seed(seed)` replaces. There is no hidden global `np.random` state.
"""

from __future__ import annotations

import numpy as np

_generator: np.random.Generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Replace the default generator with `np.random.default_rng(seed)` and return it."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{seed=} must be a non-negative integer")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_rng() -> np.random.Generator:
    """The current default generator (the one `manual_seed` last set)."""
    return _generator


def resolve(rng: np.random.Generator | None) -> np.random.Generator:
    """`rng` itself, or the default generator when it is None."""
    return _generator if rng is None else rng
