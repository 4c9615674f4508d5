"""Save and load model weights as safetensors, with PyTorch's names: `save`, `load`, `read_metadata`.

A file written by `save` holds ``model.state_dict()`` unchanged: PyTorch's dotted names
(``0.weight``, ``1.running_mean``, ``0.weight_ih_l0``, ...), shapes and dtypes, so
``torch_model.load_state_dict(safetensors.torch.load_file(path))`` works on the equivalent
``torch.nn`` model, and a file saved from torch loads here. The format is a JSON header and raw
little-endian arrays (https://github.com/huggingface/safetensors): reading it never executes code,
unlike a pickle (``torch.save``, ``np.load(allow_pickle=True)``). See ``docs/io.md``.

Files are written atomically (`gradwise.fileio.atomic_write_bytes`): a crash mid-write
leaves the previous file, never a torn one. `load` checks a file before anything is copied into
the model, and every failure is a ``ValueError`` that starts with the file's path.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gradwise._version import __version__
from gradwise.core import Layer
from gradwise.fileio import atomic_write_bytes

__all__ = ["architecture", "load", "read_metadata", "save"]

# Metadata keys `save` writes itself; a user's metadata may not use them.
FORMAT_KEY = "format"
VERSION_KEY = "gradwise_version"
ARCHITECTURE_KEY = "gradwise_architecture"
CHECKSUM_KEY = "gradwise_sha256"
RESERVED_KEYS = (FORMAT_KEY, VERSION_KEY, ARCHITECTURE_KEY, CHECKSUM_KEY)

# A header longer than this is not a weights file (safetensors itself refuses headers over 100 MB).
_MAX_HEADER = 100_000_000
# Most names an error message lists before "... and N more".
_SHOW = 8


def architecture(state: Mapping[str, np.ndarray]) -> list[tuple[str, tuple[int, ...], str]]:
    """The fingerprint of a state dict: ``(name, shape, dtype)`` per entry, in its order.

    Two models with the same fingerprint accept each other's weights.
    """
    return [(name, tuple(np.shape(v)), np.asarray(v).dtype.name) for name, v in state.items()]


def _contiguous(value: Any) -> np.ndarray:
    # Not np.ascontiguousarray: it turns a 0-d array (num_batches_tracked) into shape (1,).
    a = np.asarray(value)
    return a if a.flags.c_contiguous else np.array(a, order="C")


def _checksum(state: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes, in sorted-name order (layout independent).

    safetensors has no checksum of its own: without this, a flipped bit in the data section would
    load silently as a wrong weight.
    """
    h = hashlib.sha256()
    for name in sorted(state):
        a = _contiguous(state[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def save(
    model: Layer | Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a model's weights (parameters and buffers) to a safetensors file, atomically.

    Parameters
    ----------
    model : Layer or mapping of str to np.ndarray
        The model, whose ``state_dict()`` is saved, or a state dict itself.
    path : path-like
        The file to write (conventionally ``*.safetensors``); its directory must exist. An existing
        file is replaced only once the new one is complete.
    metadata : mapping of str to str, optional
        Extra text stored in the header (an epoch, a metric, a config hash, ...). The keys
        ``format``, ``gradwise_version``, ``gradwise_architecture`` and ``gradwise_sha256`` are
        written by `save` and may not be given.

    Returns
    -------
    Path
        `path`.

    Notes
    -----
    Arrays keep their dtypes (float32 stays float32, float64 stays float64, BatchNorm's
    ``num_batches_tracked`` stays int64). The header's metadata holds ``format = "pt"`` (the
    tensors follow PyTorch's layout, which is what loaders such as ``transformers`` check), the
    gradwise version, the architecture fingerprint (a JSON list of ``[name, shape, dtype]``, see
    `architecture`) and a SHA-256 of the tensors that `load` verifies.
    """
    from safetensors.numpy import save as st_save

    path = Path(path)
    state = model.state_dict() if isinstance(model, Layer) else dict(model)
    tensors: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(name, str):
            raise TypeError(f"save: state dict keys must be str, got {name!r}")
        tensors[name] = _contiguous(value)
        if tensors[name].dtype.kind not in "biuf":
            raise TypeError(f"save: {name!r} has dtype {tensors[name].dtype}, which a weights file cannot hold")
    meta = _user_metadata(metadata)
    meta[FORMAT_KEY] = "pt"
    meta[VERSION_KEY] = __version__
    meta[ARCHITECTURE_KEY] = json.dumps([list(entry) for entry in architecture(tensors)], separators=(",", ":"))
    meta[CHECKSUM_KEY] = _checksum(tensors)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the directory {str(path.parent)!r} does not exist")
    return atomic_write_bytes(path, st_save(tensors, metadata=meta))


def _user_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    meta: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"save: metadata must map str to str (safetensors stores text), got {key!r}: "
                f"{type(value).__name__}; convert values with str() or json.dumps()"
            )
        if key in RESERVED_KEYS:
            raise ValueError(f"save: metadata key {key!r} is reserved (written by gradwise.io.save)")
        meta[key] = value
    return meta


# ------------------------------------------------------------------------------------------ reading


def _read_header(path: Path, data: bytes) -> dict[str, Any]:
    """The parsed JSON header of the safetensors bytes `data`, or a ValueError saying what is wrong."""
    size = len(data)
    if size < 8:
        raise ValueError(
            f"{path}: not a safetensors file: it has {size} bytes, fewer than the 8-byte header length"
        )
    n = int.from_bytes(data[:8], "little")
    if n > _MAX_HEADER:
        raise ValueError(
            f"{path}: not a safetensors file: its first 8 bytes do not give a plausible header length "
            f"(a text file? a pickle? the file starts with {data[:16]!r})"
        )
    if 8 + n > size:
        raise ValueError(
            f"{path}: truncated safetensors file: the header needs {n} bytes but only {size - 8} follow"
        )
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: corrupted safetensors file: its header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: corrupted safetensors file: its header is not a JSON object")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise ValueError(f"{path}: corrupted safetensors file: tensor {name!r} has no valid data_offsets")
        end = max(end, offsets[1])
    available = size - 8 - n
    if end > available:
        raise ValueError(
            f"{path}: truncated safetensors file: the header describes {end} bytes of tensor data "
            f"but only {available} are present"
        )
    return header


def _read(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors.numpy import load as st_load

    path = Path(path)
    data = path.read_bytes()
    header = _read_header(path, data)
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: corrupted safetensors file: its __metadata__ is not a JSON object")
    try:
        state = st_load(data)
    except Exception as err:  # safetensors' SafetensorError, or anything a malformed header raises
        raise ValueError(f"{path}: corrupted safetensors file ({err})") from None
    expected = metadata.get(CHECKSUM_KEY)
    if expected is not None and _checksum(state) != expected:
        raise ValueError(
            f"{path}: corrupted safetensors file: the tensors do not match the checksum stored "
            f"when it was saved (a damaged copy or an incomplete download)"
        )
    return {k: state[k] for k in _order(header, metadata, state)}, dict(metadata)


def _order(header: Mapping[str, Any], metadata: Mapping[str, str], state: Mapping[str, Any]) -> list[str]:
    """The model's order (from the fingerprint `save` stored), else the header's."""
    try:
        names = [entry[0] for entry in json.loads(metadata[ARCHITECTURE_KEY])]
    except (KeyError, TypeError, IndexError, ValueError):
        names = []
    if sorted(names) == sorted(state):
        return names
    return [k for k in header if k in state]


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The text metadata of a safetensors file (the gradwise version, the architecture, yours).

    The whole file is validated as in `load`.
    """
    return _read(path)[1]


def load(
    path: str | os.PathLike[str], model: Layer | None = None, strict: bool = True
) -> dict[str, np.ndarray]:
    """Read a safetensors file; with `model`, copy its weights into the model.

    Parameters
    ----------
    path : path-like
        A safetensors file: written by `save`, by ``safetensors.torch.save_file`` from a torch
        ``state_dict()``, or by a gradwise run directory (``checkpoints/best.safetensors``).
    model : Layer, optional
        The model to load into. Its parameters keep their identity and dtype (values are cast),
        so an optimizer built on them stays valid.
    strict : bool
        With `model`: require the file's names to be exactly the model's. With ``strict=False``,
        names present on one side only are skipped (to load a backbone into a model with a new
        head); shapes and kinds of dtype must still agree.

    Returns
    -------
    dict of str to np.ndarray
        The arrays in the file, in the file's order, with the file's dtypes.

    Raises
    ------
    ValueError
        Starting with `path`: not a safetensors file, a truncated or corrupted file (bad header,
        tensor data missing, checksum mismatch), or, with `model`, missing or unexpected names, a
        shape mismatch or an integer/float mismatch. The model is left unchanged.
    FileNotFoundError
        If `path` does not exist.
    """
    path = Path(path)
    state, metadata = _read(path)
    if model is not None:
        _check_fits(path, state, model, strict, metadata)
        model.load_state_dict(state, strict=strict)
    return state


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOW])
    return f"[{shown}{f', ... and {len(names) - _SHOW} more' if len(names) > _SHOW else ''}]"


def _check_fits(
    path: Path, state: Mapping[str, np.ndarray], model: Layer, strict: bool, metadata: Mapping[str, str]
) -> None:
    """Raise a ValueError naming the file and every mismatch before anything is copied."""
    # The model's entries in `state_dict()` order (module by module, parameters then buffers),
    # without copying them: a stable sort by module keeps parameters before buffers.
    rank = {name: i for i, (name, _) in enumerate(model.named_modules())}
    entries = [(n, p.data) for n, p in model.named_parameters()] + list(model.named_buffers())
    entries.sort(key=lambda entry: rank[entry[0].rpartition(".")[0]])
    expected = dict(entries)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    problems = []
    if strict and missing:
        problems.append(f"missing keys {_names(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys {_names(unexpected)}")
    for key, current in expected.items():
        if key not in state:
            continue
        value = state[key]
        if value.shape != current.shape:
            problems.append(f"{key!r} has shape {value.shape} in the file but {current.shape} in the model")
        elif _kind(value.dtype) != _kind(current.dtype):
            problems.append(f"{key!r} is {value.dtype} in the file but {current.dtype} in the model")
    if len(problems) > _SHOW:
        problems = [*problems[:_SHOW], f"... and {len(problems) - _SHOW} more"]
    if problems:
        saved = ""
        if VERSION_KEY in metadata:
            saved = f" (saved by gradwise {metadata[VERSION_KEY]})"
        raise ValueError(
            f"{path}: the weights{saved} do not fit {type(model).__name__}: " + "; ".join(problems)
        )


def _kind(dtype: np.dtype) -> str:
    return "float" if np.issubdtype(dtype, np.floating) else "bool" if dtype == np.bool_ else "integer"
