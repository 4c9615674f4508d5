"""Model summary: layers, output shapes, parameter counts and FLOPs for one input shape.

`summary(model, input_shape)` runs one forward pass on zeros through a copy of the model, in
evaluation mode, and records for every sub-layer the shapes it received and returned. The model
itself is left untouched (no cached activations, no BatchNorm statistics, no Embedding
renormalization). ``model.summary(input_shape)`` is the same call.

FLOPs convention
----------------
One multiply-add counts as **2 FLOPs**, and only the matrix products are counted: ``Linear``,
``Conv1d``/``Conv2d`` and the recurrent layers. Bias additions, activations, normalization,
pooling, dropout and reshapes are left out (they are O(activations) and memory-bound; counting
them changes totals by a few percent at most). For the given input, batch included:

- ``Linear(in, out)``: 2 * in * out per output row, i.e. 2 * in * out * prod(y.shape[:-1]).
- ``Conv(C_in, C_out, k, groups=g)``: 2 * (C_in / g) * prod(k) * C_out * prod(spatial_out) * N.
- ``RNN``/``LSTM``/``GRU`` (G = 1, 4, 3 gates): for every layer l and direction,
  2 * G * H * (F_l + H) * T * N, where F_0 = input_size and F_l = D * H above.

This is the convention of fvcore and of the papers that quote "FLOPs" as 2 x MACs; some tools
(ptflops, thop) report MACs, half these numbers.

Layers describe themselves
--------------------------
Every layer describes itself through the layer protocol of `gradwise.core`: ``Layer.flops(input_shape,
output_shape) -> int`` (0 by default; overridden next to the layers above, and by any custom layer
that wants its arithmetic counted) and ``Layer.input_dtype(floating)`` (what it reads: int64 for an
``Embedding``, one dtype per branch for ``Parallel``). This module imports no layer and nothing from
gradwise at run time.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from gradwise.core import Layer

__all__ = ["LayerInfo", "Summary", "summary"]

Shape = tuple[int, ...]
ShapeSpec = Shape | tuple[Shape, ...]  # one array, or one per input of a multi-input model

# What the summary asks of a model: the layer protocol of gradwise.core, read by name, so this
# module imports no layer (and core can offer `Layer.summary` without an import cycle).
_PROTOCOL = ("named_modules", "children", "parameters", "forward", "eval", "flops", "input_dtype")


@dataclass
class LayerInfo:
    """One row of a `Summary`.

    Attributes
    ----------
    name : str
        Dotted name in the model (``"0"``, ``"1.block.0"``); ``""`` for the model itself.
    kind : str
        The class name.
    depth : int
        Nesting level (0 for the children of the model).
    input_shape, output_shape : tuple or tuple of tuples or None
        Shapes of the first call's input and output, batch included; a tuple of shapes for a
        multi-input layer (`Parallel`); None if the layer was never called.
    params : int
        Parameters of the layer and everything inside it (a container's row adds up its children).
    trainable : int
        Those with ``requires_grad``.
    flops : int
        FLOPs (2 x multiply-adds) of the layer and everything inside it, over all its calls.
    container : bool
        True when the layer has sub-layers (its numbers repeat those of its rows below).
    """

    name: str
    kind: str
    depth: int
    input_shape: ShapeSpec | None
    output_shape: ShapeSpec | None
    params: int
    trainable: int
    flops: int
    container: bool

    @property
    def frozen(self) -> int:
        return self.params - self.trainable


@dataclass
class Summary:
    """The result of `summary`: one `LayerInfo` per sub-layer and the model's totals.

    ``str(summary)`` is a plain-text table; ``rich.print(summary)`` draws it as a rich table.

    Attributes
    ----------
    rows : list of LayerInfo
        Every sub-layer in `named_modules` order (containers before their children).
    input_shape, output_shape
        Of the whole model.
    total_params, trainable_params : int
        Counted once per parameter object (shared parameters are not double counted).
    total_flops : int
        FLOPs of one forward pass on the whole input: the sum of every layer's own count.
    """

    model_name: str
    rows: list[LayerInfo]
    input_shape: ShapeSpec
    output_shape: ShapeSpec
    total_params: int
    trainable_params: int
    total_flops: int
    dtype: np.dtype | tuple[np.dtype, ...] = field(default_factory=lambda: np.dtype(np.float32))

    @property
    def frozen_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def leaves(self) -> list[LayerInfo]:
        """The rows of layers without sub-layers: their params and FLOPs add up to the totals."""
        return [r for r in self.rows if not r.container]

    def __getitem__(self, name: str) -> LayerInfo:
        """The row of the sub-layer with dotted name `name`."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no layer named {name!r} in the summary; names: {[r.name for r in self.rows]}")

    # ------------------------------------------------------------------ rendering
    _HEADER = ("Layer", "Type", "Output shape", "Params", "Trainable", "FLOPs")

    def _cells(self) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for r in self.rows:
            indent = "  " * r.depth
            label = indent + (r.name or "(model)")
            out.append(
                (label, r.kind, _fmt_shape(r.output_shape), f"{r.params:,}", f"{r.trainable:,}", _fmt_flops(r.flops))
            )
        return out

    def _footer(self) -> list[str]:
        return [
            f"Input shape: {_fmt_shape(self.input_shape)}  ->  output shape: {_fmt_shape(self.output_shape)}",
            f"Parameters: {self.total_params:,} ({self.trainable_params:,} trainable, {self.frozen_params:,} frozen)",
            (
                f"FLOPs per forward pass: {self.total_flops:,} ({_fmt_flops(self.total_flops)}; "
                "2 x multiply-adds of Linear/Conv/RNN layers, for the whole input batch)"
            ),
        ]

    def __str__(self) -> str:
        cells = self._cells()
        widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(self._HEADER)]
        # Text columns left-aligned, numbers right-aligned.
        align = ["<", "<", "<", ">", ">", ">"]

        def line(values: Sequence[str]) -> str:
            return "  ".join(f"{v:{a}{w}}" for v, a, w in zip(values, align, widths)).rstrip()

        rule = "-" * len(line(["-" * w for w in widths]))
        lines = [f"{self.model_name} summary", rule, line(self._HEADER), rule]
        lines += [line(c) for c in cells]
        lines += [rule, *self._footer()]
        return "\n".join(lines)

    def __rich__(self) -> Any:
        """A `rich.table.Table` (rich is imported only here)."""
        from rich.table import Table

        table = Table(title=f"{self.model_name} summary", caption="\n".join(self._footer()), caption_justify="left")
        for header in self._HEADER:
            table.add_column(header, justify="right" if header in ("Params", "Trainable", "FLOPs") else "left")
        for row, cells in zip(self.rows, self._cells()):
            table.add_row(*cells, style="dim" if row.container else None)
        return table

    def __repr__(self) -> str:
        return (
            f"Summary({self.model_name}, layers={len(self.rows)}, params={self.total_params}, "
            f"trainable={self.trainable_params}, flops={self.total_flops})"
        )


def _fmt_shape(shape: ShapeSpec | None) -> str:
    if shape is None:
        return "-"
    if shape and isinstance(shape[0], tuple):
        return "(" + ", ".join(_fmt_shape(s) for s in shape) + ")"  # type: ignore[arg-type]
    return str(tuple(int(s) for s in shape))  # type: ignore[arg-type]


def _fmt_flops(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


# ---------------------------------------------------------------------------------------- FLOPs


def layer_flops(layer: Layer, input_shape: ShapeSpec, output_shape: ShapeSpec) -> int:
    """FLOPs (2 x multiply-adds) of one call of `layer`: its own ``flops(input_shape, output_shape)``.

    Every layer describes itself (`Layer.flops`, 0 by default; `Linear`, the convolutions and the
    recurrent layers count their matrix products, as in the module docstring).
    """
    return int(layer.flops(input_shape, output_shape))


# ---------------------------------------------------------------------------------------- summary


def _as_shape_spec(input_shape: Any) -> ShapeSpec:
    """A tuple of ints, or a tuple of such tuples (one per input)."""

    def one(s: Any) -> Shape:
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            s = (s,)
        if not isinstance(s, (tuple, list)) or not s or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in s
        ):
            raise ValueError(
                f"summary: input_shape={input_shape!r} must be a tuple of positive ints with the batch "
                "dimension first, e.g. (1, 40), or a tuple of such tuples for a multi-input model"
            )
        return tuple(int(v) for v in s)

    if isinstance(input_shape, (tuple, list)) and input_shape and all(isinstance(s, (tuple, list)) for s in input_shape):
        return tuple(one(s) for s in input_shape)
    return one(input_shape)


def _default_dtypes(model: Layer, spec: ShapeSpec) -> tuple[np.dtype, ...]:
    """What the model says it reads (`Layer.input_dtype`): int64 for an Embedding, else floating."""
    floating = model.dtype if np.issubdtype(model.dtype, np.floating) else np.dtype(np.float32)
    reads = model.input_dtype(floating)
    if spec and isinstance(spec[0], tuple):
        # One per input; a model that does not describe several inputs reads floating ones.
        per_input = reads if isinstance(reads, tuple) else ()
        return tuple(np.dtype(per_input[i]) if i < len(per_input) else floating for i in range(len(spec)))
    return (floating if isinstance(reads, tuple) else np.dtype(reads),)


def _shape_of(value: Any) -> ShapeSpec:
    if isinstance(value, (tuple, list)):
        return tuple(tuple(np.shape(v)) for v in value)
    return tuple(np.shape(value))


def summary(model: Layer, input_shape: Any, dtype: Any = None) -> Summary:
    """Layers, output shapes, parameter counts and FLOPs of `model` for inputs of `input_shape`.

    Parameters
    ----------
    model : Layer
        Any model; containers (`Sequential`, `Residual`, `Concat`, `Parallel`, custom layers with
        sub-layers) are shown with their children indented below them.
    input_shape : tuple of int, or tuple of tuples
        The shape of the input **including the batch dimension**, e.g. ``(1, 40)`` for MNIST-1D
        or ``(1, 1, 28, 28)`` for an image: the batch axis is not always the first one (an RNN
        without ``batch_first`` reads (T, N, F)), so it is never guessed. Use a batch of 1 for
        per-sample FLOPs. A multi-input model (`Parallel` first) takes one shape per input.
    dtype : numpy dtype or sequence of dtypes, optional
        Of the zeros fed in (one per input for a multi-input model). By default int64 for an
        input read by an `Embedding` and the model's floating dtype otherwise.

    Returns
    -------
    Summary
        ``str(summary)`` is the table; ``summary.rows``, ``summary.total_params``, ... hold the
        numbers. FLOPs are 2 x multiply-adds of the matrix products, for the whole input (see
        the module docstring for the formulas).

    Raises
    ------
    ValueError
        If `input_shape` is malformed or the model rejects an input of that shape (the layer's
        own message is kept).

    Notes
    -----
    The forward pass runs on a deep copy of the model in evaluation mode, so the model keeps its
    mode, caches, buffers and weights; it costs one forward pass of memory and time.
    """
    if not all(callable(getattr(model, m, None)) for m in _PROTOCOL):
        raise TypeError(f"summary: model must be a gradwise Layer, got {type(model).__name__}")
    spec = _as_shape_spec(input_shape)
    multi = bool(spec) and isinstance(spec[0], tuple)
    shapes: tuple[Shape, ...] = spec if multi else (spec,)  # type: ignore[assignment]
    if dtype is None:
        dtypes = _default_dtypes(model, spec)
    elif isinstance(dtype, (tuple, list)):
        dtypes = tuple(np.dtype(d) for d in dtype)
    else:
        dtypes = (np.dtype(dtype),) * len(shapes)
    if len(dtypes) != len(shapes):
        raise ValueError(f"summary: {len(dtypes)} dtypes given for {len(shapes)} inputs")
    inputs = tuple(np.zeros(s, dtype=d) for s, d in zip(shapes, dtypes))
    x: Any = inputs if multi else inputs[0]

    # The copy shares nothing with the model: its forward may cache, renormalize or draw freely.
    twin = copy.deepcopy(model).eval()
    calls: dict[str, list[tuple[ShapeSpec, ShapeSpec]]] = {}
    for name, mod in twin.named_modules():
        _record_calls(mod, name, calls)
    try:
        y = twin.forward(x)
    except (ValueError, TypeError, IndexError) as err:
        raise ValueError(f"summary: the model rejects an input of shape {_fmt_shape(spec)}: {err}") from err

    modules = list(twin.named_modules())
    own = {name: sum(layer_flops(mod, i, o) for i, o in calls.get(name, [])) for name, mod in modules}
    rows: list[LayerInfo] = []
    for name, mod in modules:
        if not name and mod.children():
            continue  # the model itself is the footer
        params = mod.parameters()  # each parameter once; renaming the copy's is harmless
        first = calls.get(name, [(None, None)])[0]
        rows.append(
            LayerInfo(
                name=name,
                kind=type(mod).__name__,
                depth=max(name.count("."), 0),
                input_shape=first[0],
                output_shape=first[1],
                params=sum(p.size for p in params),
                trainable=sum(p.size for p in params if p.requires_grad),
                flops=sum(f for n, f in own.items() if n == name or n.startswith(name + ".")) if name else own[""],
                container=bool(mod.children()),
            )
        )
    params = twin.parameters()  # the copy's: listing the model's own would rename its parameters
    return Summary(
        model_name=type(model).__name__,
        rows=rows,
        input_shape=spec,
        output_shape=_shape_of(y),
        total_params=sum(p.size for p in params),
        trainable_params=sum(p.size for p in params if p.requires_grad),
        total_flops=sum(own.values()),
        dtype=dtypes if multi else dtypes[0],
    )


def _record_calls(mod: Layer, name: str, calls: dict[str, list[tuple[ShapeSpec, ShapeSpec]]]) -> None:
    """Wrap the copy's `forward` (an instance attribute shadows the method) to record shapes."""
    inner = mod.forward

    def forward(x: Any, *args: Any, **kwargs: Any) -> Any:
        y = inner(x, *args, **kwargs)
        calls.setdefault(name, []).append((_shape_of(x), _shape_of(y)))
        return y

    object.__setattr__(mod, "forward", forward)
