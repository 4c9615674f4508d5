"""Coarse to fine: narrow each space around the best trials of a finished study.

For each numeric space, the values the `refine_top` best trials used span ``[a, b]`` (in log units
for a log space); the new range is that span widened by a quarter of its width on each side (by a
tenth of the old range when the best trials agree on one value), clipped to the old range. A
``choice`` keeps the values the best trials used. Integers are rounded outwards.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from gradwise.search.spaces import Space

__all__ = ["refine_spaces"]

MARGIN = 0.25  # of the best trials' span, added on each side
MIN_WIDTH = 0.1  # of the old range, when the best trials' span is (nearly) a point


def _refine_one(space: Space, values: Sequence[Any]) -> Space:
    if space.kind == "choice":
        kept = tuple(c for c in space.choices if any(c == v and type(c) is type(v) for v in values))
        return Space(space.name, space.kind, choices=kept or space.choices, keys=space.keys)
    to = math.log if space.log else float
    back = math.exp if space.log else float
    old_lo, old_hi = to(space.low), to(space.high)
    seen = [to(v) for v in values]
    lo, hi = min(seen), max(seen)
    pad = max(MARGIN * (hi - lo), MIN_WIDTH * (old_hi - old_lo) / 2)
    lo, hi = max(old_lo, lo - pad), min(old_hi, hi + pad)
    if space.kind in ("int", "log_int"):
        new_lo = max(int(space.low), math.floor(back(lo) + 1e-9))
        new_hi = min(int(space.high), math.ceil(back(hi) - 1e-9))
        if new_lo >= new_hi:  # keep at least two integers to choose from
            new_lo, new_hi = (new_lo - 1, new_lo) if new_lo > int(space.low) else (new_lo, new_lo + 1)
        return Space(space.name, space.kind, low=new_lo, high=new_hi, keys=space.keys)
    # Back in the space's units, clipped again: exp(log(x)) may land a rounding error outside.
    new_lo = float(space.low) if lo <= old_lo else max(float(space.low), back(lo))
    new_hi = float(space.high) if hi >= old_hi else min(float(space.high), back(hi))
    return Space(space.name, space.kind, low=new_lo, high=new_hi, keys=space.keys)


def refine_spaces(spaces: Sequence[Space], best_params: Sequence[Mapping[str, Any]]) -> list[Space]:
    """The spaces narrowed around `best_params` (the parameters of the best trials, best first).

    Parameters
    ----------
    spaces : sequence of Space
        The spaces of the study being refined.
    best_params : sequence of dict
        ``trial.params`` of each of the best trials; at least one.

    Returns
    -------
    list of Space
        Same names, kinds and keys; each range within the old one.
    """
    if not best_params:
        raise ValueError("refine_spaces needs the parameters of at least one finished trial")
    refined = []
    for space in spaces:
        values = [p[space.name] for p in best_params if space.name in p]
        refined.append(_refine_one(space, values) if values else space)
    return refined
