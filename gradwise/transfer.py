"""Transfer learning: load weights into part of a model, replace its head, read pretrained vectors.

The fine-tuning recipe (``docs/transfer.md``; Howard & Ruder, 2018, "Universal language model
fine-tuning for text classification"; Yosinski et al., 2014, "How transferable are features in
deep neural networks?")::

    model = replace_head(pretrained, Linear(128, 5))   # new task, new head
    freeze_body(model)                                 # every layer but the head
    ... train the head (optimizers skip frozen parameters: no update, no state)
    model.unfreeze()
    ... train everything, earlier layers with smaller learning rates (`gradwise.optim.layer_groups`)

`Layer.freeze`, `Layer.unfreeze` and `Layer.frozen` live on the `Layer` base class;
`Embedding.from_pretrained(matrix, freeze=True)` takes the matrix `load_glove` returns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradwise.core import DEFAULT_DTYPE, Layer, Sequential
from gradwise.random import resolve as _resolve_rng

__all__ = ["LoadReport", "freeze_body", "load_glove", "load_partial", "replace_head"]


@dataclass
class LoadReport:
    """What `load_partial` did with each key.

    Attributes
    ----------
    loaded : list of str
        Model keys that received a value.
    missing : list of str
        Model keys with no value in the state dict (left as they were).
    unexpected : list of str
        State-dict keys (after renaming) that are not in the model (ignored).
    mismatched : list of (str, tuple, tuple)
        ``(model key, shape in the state dict, shape in the model)``: ignored.
    renamed : dict
        ``{state-dict key: model key}`` for every key a prefix of `prefix_map` renamed.
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensor(s)"]
        if self.missing:
            lines.append(f"missing (kept the model's values): {self.missing}")
        if self.unexpected:
            lines.append(f"unexpected (ignored): {self.unexpected}")
        for key, src, dst in self.mismatched:
            lines.append(f"shape mismatch (ignored): {key!r} is {src} in the state dict, {dst} in the model")
        return "\n".join(lines)


def _rename(key: str, prefix_map: Mapping[str, str]) -> str:
    """`key` with its longest matching source prefix replaced."""
    for src in sorted(prefix_map, key=len, reverse=True):
        if key.startswith(src):
            return prefix_map[src] + key[len(src) :]
    return key


def load_partial(
    model: Layer,
    state_dict: Mapping[str, Any] | str | os.PathLike[str],
    prefix_map: Mapping[str, str] | None = None,
    strict: bool = False,
) -> LoadReport:
    """Copy the tensors of `state_dict` that fit into `model`; report the rest.

    Parameters
    ----------
    model : Layer
        Receives the values in place (each parameter and buffer keeps its dtype).
    state_dict : mapping of str to array, or a path to a ``.safetensors`` file
        E.g. a pretrained model's ``state_dict()`` or a checkpoint (``checkpoints/best.safetensors``
        of a run directory, or a file saved from ``torch`` with PyTorch's names).
    prefix_map : mapping of str to str, optional
        Renames keys before matching: ``{"0.": "body.0.", "": "encoder."}`` maps ``0.weight`` to
        ``body.0.weight`` and every other key ``k`` to ``encoder.k``; the longest matching
        prefix wins. Map a prefix to ``""`` to strip it (``{"module.": ""}``).
    strict : bool
        Raise instead of skipping: `KeyError` naming the missing and unexpected keys, or
        `ValueError` naming each shape mismatch. Nothing is loaded when it raises.

    Returns
    -------
    LoadReport
        ``loaded``, ``missing``, ``unexpected``, ``mismatched``, ``renamed``; ``print(report)``.

    Examples
    --------
    Reuse the body of a pretrained classifier under a new head:

    >>> model = replace_head(copy.deepcopy(pretrained), Linear(128, 5))      # doctest: +SKIP
    >>> report = load_partial(model, "runs/pretrain/checkpoints/best.safetensors")  # doctest: +SKIP
    >>> report.mismatched        # the old head's weight and bias, left out  # doctest: +SKIP
    """
    if not isinstance(model, Layer):
        raise TypeError(f"load_partial: model must be a gradwise Layer, got {type(model).__name__}")
    if isinstance(state_dict, (str, os.PathLike)):
        state_dict = _read_safetensors(Path(state_dict))
    prefix_map = dict(prefix_map or {})
    target = model.state_dict()  # copies; only names and shapes are used
    report = LoadReport()
    selected: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        new = _rename(key, prefix_map) if prefix_map else key
        if new != key:
            report.renamed[key] = new
        if new not in target:
            report.unexpected.append(new)
            continue
        value = np.asarray(value)
        if value.shape != target[new].shape:
            report.mismatched.append((new, tuple(value.shape), tuple(target[new].shape)))
            continue
        if new in selected:
            raise ValueError(f"load_partial: two state-dict keys are renamed to {new!r}; check prefix_map")
        selected[new] = value
    report.missing = [k for k in target if k not in selected and k not in {m[0] for m in report.mismatched}]
    if strict:
        if report.mismatched:
            details = "; ".join(f"{k!r}: {s} in the state dict, {d} in the model" for k, s, d in report.mismatched)
            raise ValueError(f"load_partial: shape mismatch: {details}")
        if report.missing or report.unexpected:
            raise KeyError(f"load_partial: missing keys {report.missing}, unexpected keys {report.unexpected}")
    model.load_state_dict(selected, strict=False)
    report.loaded = [k for k in target if k in selected]
    return report


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    if not path.is_file():
        raise FileNotFoundError(f"load_partial: no such file {str(path)!r}")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for malformed files
        raise ValueError(f"load_partial: {str(path)!r} is not a readable safetensors file: {err}") from err


def replace_head(model: Sequential, new_head: Layer, num_layers: int = 1) -> Sequential:
    """A `Sequential` with the same body and `new_head` in place of the last `num_layers` layers.

    Parameters
    ----------
    model : Sequential
        The pretrained model. Its body layers are **shared**, not copied: pass
        ``copy.deepcopy(model)`` to keep the original intact.
    new_head : Layer
        A fresh layer (or `Sequential`) for the new task, e.g. ``Linear(128, n_new_classes)``.
    num_layers : int
        How many trailing layers form the old head (1 for a final `Linear`).

    Returns
    -------
    Sequential
        ``Sequential(*model[:-num_layers], new_head)``: the body keeps its names (``0.weight``,
        ...) so pretrained state dicts still load into it, and the head is the last child
        (``"<len(body)>"``), convenient for `gradwise.optim.layer_groups`.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"replace_head: model must be a Sequential, got {type(model).__name__}")
    if not isinstance(new_head, Layer):
        raise TypeError(f"replace_head: new_head must be a Layer, got {type(new_head).__name__}")
    if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) or not 1 <= num_layers <= len(model):
        raise ValueError(f"replace_head: {num_layers=} must be between 1 and the model's {len(model)} layers")
    return Sequential(*model.layers[: len(model) - int(num_layers)], new_head)


# ---------------------------------------------------------------------------------------- GloVe


def load_glove(
    path: str | os.PathLike[str],
    vocab: Sequence[str] | Mapping[str, int] | None = None,
    dim: int | None = None,
    *,
    limit: int | None = None,
    oov: str = "random",
    rng: np.random.Generator | None = None,
    dtype: type | np.dtype = DEFAULT_DTYPE,
) -> tuple[list[str], np.ndarray]:
    """Read word vectors from a GloVe (or word2vec) text file, for `Embedding.from_pretrained`.

    Each line is a word followed by its `dim` numbers, separated by spaces (GloVe, Pennington et
    al., 2014, https://nlp.stanford.edu/projects/glove/). A first line of exactly two integers
    (word2vec's ``"<count> <dim>"`` header) is skipped. The numbers are taken from the right, so
    the few GloVe tokens that contain spaces are read whole.

    Parameters
    ----------
    path : path-like
        The ``.txt`` file (UTF-8).
    vocab : sequence of str, or mapping of str to int, optional
        The words of your model's vocabulary, in index order (or ``{word: index}`` with indices
        ``0..V-1``). Row i of the matrix is then the vector of word i; only those lines are
        parsed. Without it, every word of the file, in file order.
    dim : int, optional
        The vector size; read from the first line when None, checked on every line.
    limit : int, optional
        Read at most this many vectors (GloVe files are sorted by frequency); without `vocab`.
    oov : {"random", "zeros"}
        Rows of `vocab` words absent from the file: drawn from N(0, s^2), s the standard deviation
        of the vectors found (the usual choice, which keeps them at the scale of the others), or
        zeros. A padding row should be zeroed by hand, or use ``oov="zeros"``.
    rng : np.random.Generator, optional
        For ``oov="random"``; the library default when None.
    dtype : numpy dtype
        Of the matrix (float32 by default).

    Returns
    -------
    words : list of str
        `vocab` in index order, or the file's words (the first occurrence of a repeated word).
    matrix : (len(words), dim) array

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        On a line with the wrong number of values or a value that is not a number (naming the
        file and line), an empty file, or bad arguments.

    Examples
    --------
    >>> words, vectors = load_glove("glove.6B.100d.txt", vocab=tokenizer_vocab)   # doctest: +SKIP
    >>> embed = Embedding.from_pretrained(vectors, freeze=True)                   # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_glove: no such file {str(path)!r}")
    if oov not in ("random", "zeros"):
        raise ValueError(f"load_glove: {oov=} must be 'random' or 'zeros'")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1):
        raise ValueError(f"load_glove: {dim=} must be a positive integer or None")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"load_glove: {limit=} must be a positive integer or None")
    if vocab is not None and limit is not None:
        raise ValueError("load_glove: give vocab or limit, not both")
    index = _vocab_index(vocab)

    words: list[str] = []
    rows: list[np.ndarray] = []
    found: dict[str, np.ndarray] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if lineno == 1 and _is_word2vec_header(line):
                dim = dim if dim is not None else int(line.split()[1])
                continue
            if dim is None:
                dim = len(line.rstrip(" ").split(" ")) - 1
                if dim < 1:
                    raise ValueError(f"load_glove: {str(path)!r} line {lineno} has a word but no numbers")
            if index is not None:
                # Most lines are skipped: look at the word before parsing the numbers.
                word = line.rstrip(" ").rsplit(" ", dim)[0]
                if word not in index or word in found:
                    continue
            word, vector = _parse(line, dim, path, lineno, dtype)
            if index is not None:
                found[word] = vector
                if len(found) == len(index):
                    break
            elif word not in found:
                found[word] = vector
                words.append(word)
                rows.append(vector)
                if limit is not None and len(rows) >= limit:
                    break
    if dim is None or (index is None and not rows):
        raise ValueError(f"load_glove: {str(path)!r} holds no vectors")
    if index is None:
        return words, np.stack(rows)

    vocab_words = sorted(index, key=index.__getitem__)
    matrix = np.zeros((len(vocab_words), dim), dtype=dtype)
    if found:
        present = np.array([index[w] for w in found])
        matrix[present] = np.stack(list(found.values()))
    missing = [index[w] for w in vocab_words if w not in found]
    if missing and oov == "random":
        scale = float(np.std(np.stack(list(found.values())))) if found else 1.0
        matrix[missing] = _resolve_rng(rng).normal(0.0, scale, size=(len(missing), dim)).astype(dtype)
    return vocab_words, matrix


def _vocab_index(vocab: Sequence[str] | Mapping[str, int] | None) -> dict[str, int] | None:
    if vocab is None:
        return None
    if isinstance(vocab, str):
        raise TypeError("load_glove: vocab must be a sequence of words or a mapping word -> index, not a string")
    if isinstance(vocab, Mapping):
        index = {str(w): int(i) for w, i in vocab.items()}
        if sorted(index.values()) != list(range(len(index))):
            raise ValueError("load_glove: the indices of a vocab mapping must be 0 .. len(vocab) - 1, each once")
        return index
    words = list(vocab)
    index = {}
    for i, w in enumerate(words):
        if not isinstance(w, str):
            raise TypeError(f"load_glove: vocab[{i}] is {type(w).__name__}, not a str")
        if w in index:
            raise ValueError(f"load_glove: the word {w!r} appears twice in vocab (positions {index[w]} and {i})")
        index[w] = i
    if not index:
        raise ValueError("load_glove: vocab is empty")
    return index


def _is_word2vec_header(line: str) -> bool:
    parts = line.split()
    return len(parts) == 2 and all(p.isdigit() for p in parts)


def _parse(line: str, dim: int, path: Path, lineno: int, dtype: Any) -> tuple[str, np.ndarray]:
    parts = line.rstrip(" ").rsplit(" ", dim)
    if len(parts) != dim + 1 or not parts[0]:
        raise ValueError(
            f"load_glove: {str(path)!r} line {lineno} has {len(parts) - 1} values after the word, expected {dim}"
        )
    # A word may contain spaces (". . ." in GloVe 840B); one whose extra pieces are all numbers is
    # a line with too many values.
    extra = parts[0].split(" ")[1:]
    if extra and all(_is_number(p) for p in extra):
        raise ValueError(
            f"load_glove: {str(path)!r} line {lineno} has {dim + len(extra)} values after the word, expected {dim}"
        )
    try:
        vector = np.array(parts[1:], dtype=np.float64)
    except ValueError:
        bad = next(p for p in parts[1:] if not _is_number(p))
        raise ValueError(f"load_glove: {str(path)!r} line {lineno}: {bad!r} is not a number") from None
    return parts[0], vector.astype(dtype)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def freeze_body(model: Sequential, num_head_layers: int = 1) -> Sequential:
    """Freeze every layer of `model` but the last `num_head_layers` (the head); returns `model`.

    ``model.unfreeze()`` undoes it. See `Layer.freeze` for what freezing does.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"freeze_body: model must be a Sequential, got {type(model).__name__}")
    if isinstance(num_head_layers, bool) or not isinstance(num_head_layers, (int, np.integer)) or not (
        0 <= num_head_layers <= len(model)
    ):
        raise ValueError(f"freeze_body: {num_head_layers=} must be between 0 and the model's {len(model)} layers")
    for layer in model.layers[: len(model) - int(num_head_layers)]:
        layer.freeze()
    return model
