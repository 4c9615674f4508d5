"""What a learning-rate schedule is, and the argument checks every schedule shares.

Errors name the argument: ``ValueError("total_steps=0 must be an integer >= 1")``.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable
from typing import Any

#: What every schedule is: the learning rate of optimizer step `step` (0-based).
Schedule = Callable[[int], float]


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} must be a real number")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name}={value!r} must not be NaN")
    return value


def _nonneg(name: str, value: Any) -> float:
    value = _real(name, value)
    if not 0 <= value < math.inf:
        raise ValueError(f"{name}={value!r} must be finite and >= 0")
    return value


def _positive(name: str, value: Any) -> float:
    value = _real(name, value)
    if not 0 < value < math.inf:
        raise ValueError(f"{name}={value!r} must be finite and > 0")
    return value


def _integer(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be an integer")
    if value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    return int(value)


def _step(step: Any) -> int:
    try:
        step = operator.index(step)
    except TypeError:
        raise TypeError(f"{step=} must be an integer (the number of optimizer steps taken)") from None
    if step < 0:
        raise ValueError(f"{step=} must be >= 0")
    return step


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalizing a field of a frozen dataclass
