"""The state-tree encoding of a checkpoint: JSON for the structure, safetensors for the arrays.

A state (an optimizer's `state_dict()`, a callback's, the trainer's position and history) is a
tree of dicts, lists, numbers, strings and NumPy arrays. `encode` turns it into plain JSON, moving
every array into a dict of arrays under its path in the tree (``optimizer/state_dict/state/0.weight/
exp_avg``) and leaving ``{"__array__": path}`` in its place; `decode` puts them back. Floats go
through JSON's `repr`, which round-trips exactly; a mapping whose keys are not all strings is
stored as ``{"__pairs__": [[key, value], ...]}``. Nothing is pickled, so reading a checkpoint never
runs code from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["contiguous", "decode", "encode"]

# JSON markers of the encoding: an array stored in the companion safetensors file, and a mapping
# whose keys are not all strings.
ARRAY, PAIRS = "__array__", "__pairs__"


def encode(obj: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """`obj` as JSON, its arrays moved into `arrays` under their path (exact: floats via repr).

    Parameters
    ----------
    obj : tree of dict, list, tuple, int, float, str, bool, None, np.ndarray, np.generic
    arrays : dict of str -> np.ndarray
        Filled with the arrays of `obj` (C-contiguous), keyed by their path.
    path : str
        The path of `obj` itself ("optimizer", "trainer"); it prefixes every key and error.

    Raises
    ------
    TypeError
        Naming the path of a value that is neither (a function, an object array, ...).
    """
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"checkpoint: {path} is an object array, which cannot be saved without pickle")
        key = path if path not in arrays else f"{path}#{len(arrays)}"
        arrays[key] = contiguous(obj)
        return {ARRAY: key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj) and ARRAY not in obj and PAIRS not in obj:
            return {k: encode(v, arrays, f"{path}/{k}") for k, v in obj.items()}
        pairs = [
            [encode(k, arrays, f"{path}/{i}k"), encode(v, arrays, f"{path}/{i}")]
            for i, (k, v) in enumerate(obj.items())
        ]
        return {PAIRS: pairs}
    if isinstance(obj, (list, tuple)):
        return [encode(v, arrays, f"{path}/{i}") for i, v in enumerate(obj)]
    raise TypeError(
        f"checkpoint: cannot save {path} ({type(obj).__name__}); a state holds numbers, strings, "
        f"lists, dicts and NumPy arrays"
    )


def contiguous(a: np.ndarray) -> np.ndarray:
    """`a` in C order, copied only if needed; a 0-d array stays 0-d."""
    # Not np.ascontiguousarray: it turns a 0-d array (BatchNorm's num_batches_tracked) into shape (1,).
    return a if a.flags.c_contiguous else a.copy(order="C")


def decode(obj: Any, arrays: Mapping[str, np.ndarray], file: Path) -> Any:
    """The tree `encode` was given, its arrays taken from `arrays` (tuples come back as lists).

    Raises
    ------
    ValueError
        Naming `file` (the JSON being decoded) if it refers to an array `arrays` lacks.
    """
    if isinstance(obj, dict):
        if set(obj) == {ARRAY}:
            key = obj[ARRAY]
            if key not in arrays:
                raise ValueError(f"{file} refers to the array {key!r}, which its .safetensors companion lacks")
            return arrays[key]
        if set(obj) == {PAIRS}:
            return {_hashable(decode(k, arrays, file)): decode(v, arrays, file) for k, v in obj[PAIRS]}
        return {k: decode(v, arrays, file) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v, arrays, file) for v in obj]
    return obj


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key
