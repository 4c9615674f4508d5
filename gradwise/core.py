"""The layer protocol: `Parameter`, `Layer` and `Sequential`.

A `Layer` computes `forward(x)`, caching only what its `backward(grad_out, *, input_grad=True)`
needs; `backward` adds each parameter's gradient to `Parameter.grad` and returns the gradient with
respect to the input (or None when told ``input_grad=False``: no one needs it, e.g. for the first
layer of a model). Parameters, buffers and sub-layers assigned as attributes are registered in
assignment order, so `named_parameters()` gives PyTorch's dotted names (`0.weight`,
`1.running_mean`, ...) and a `state_dict()` loads into the equivalent `torch.nn` model unchanged.
See docs/layers.md, "The layer protocol".
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.parameter import Parameter

__all__ = ["DEFAULT_DTYPE", "Layer", "Parameter", "Sequential", "backward_of"]

if TYPE_CHECKING:
    from gradwise.summary import Summary

DEFAULT_DTYPE = np.float32


# Whether a class's `backward` accepts the `input_grad` keyword (layers written before it existed
# take only `grad_out`); looked up once per class.
_TAKES_INPUT_GRAD: dict[type, bool] = {}


def _takes_input_grad(cls: type) -> bool:
    try:
        return _TAKES_INPUT_GRAD[cls]
    except KeyError:
        try:
            params = inspect.signature(cls.backward).parameters.values()
        except (TypeError, ValueError):  # not introspectable (a C function): call it the old way
            params = ()
        takes = any(p.name == "input_grad" or p.kind is p.VAR_KEYWORD for p in params)
        _TAKES_INPUT_GRAD[cls] = takes
        return takes


def backward_of(layer: Layer, grad_out: Any, input_grad: bool = True) -> Any:
    """``layer.backward(grad_out, input_grad=input_grad)``, for custom layers with the old signature too.

    Containers call their children through this. A `backward(self, grad_out)` written without
    the keyword is called without it; it then computes its input gradient anyway, which is
    returned (when ``input_grad=False`` the caller ignores it).
    """
    if input_grad or not _takes_input_grad(type(layer)):
        return layer.backward(grad_out)
    return layer.backward(grad_out, input_grad=False)


class Layer:
    """Base class of every layer and model.

    Subclasses implement `forward(x)` and `backward(grad_out, *, input_grad=True)` (docs/layers.md,
    "The layer protocol"). Assigning a `Parameter`, a `Layer` or (through `register_buffer`) a
    buffer as an attribute registers it.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        # The common case in forward/backward (caching an array, dropping it): nothing to register
        # or unregister. Taken without building the tables: layers assign caches every step.
        if not isinstance(value, (Parameter, Layer)) and not (
            name in d["_parameters"] or name in d["_children"] or name in d["_buffers"]
        ):
            object.__setattr__(self, name, value)
            return
        tables = {"param": self._parameters, "child": self._children, "buffer": self._buffers}
        if name in self._buffers and (value is None or isinstance(value, np.ndarray)):
            kind = "buffer"  # `self.running_mean = new_array` replaces the buffer, as in PyTorch
        elif isinstance(value, Parameter):
            kind = "param"
        elif isinstance(value, Layer):
            kind = "child"
        else:
            kind = None
        for k, table in tables.items():
            if k != kind:
                table.pop(name, None)
        if kind is not None:
            tables[kind][name] = value  # an existing key keeps its position in the order
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: np.ndarray | None) -> None:
        """Register a non-trainable array (running statistics): saved, never optimized or decayed.

        Assigning a new array to the attribute later replaces the buffer (it stays registered).
        """
        self._buffers[name] = value
        object.__setattr__(self, name, value)

    def no_cache_error(self) -> RuntimeError:
        """The error a `backward` raises when no `forward` cached its inputs (for custom layers too)."""
        return RuntimeError(
            f"{type(self).__name__}.backward was called before forward (or twice for one forward)"
        )

    # ------------------------------------------------------------------ computation
    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """Add dL/dparameter to each `Parameter.grad`; return dL/dx, or None if not `input_grad`.

        Parameters
        ----------
        grad_out : np.ndarray
            dL/dy, the shape of the last `forward`'s output.
        input_grad : bool
            False when no one needs dL/dx (the first layer of a model): the layer may skip it and
            return None. A layer that computes it anyway may return it.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    # ------------------------------------------------------------------ traversal
    def named_children(self) -> Iterator[tuple[str, Layer]]:
        yield from self._children.items()

    def children(self) -> list[Layer]:
        return list(self._children.values())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        yield prefix, self
        for name, child in self._children.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield `(dotted_name, Parameter)` in a fixed order; also records the name on the parameter."""
        seen: set[int] = set()
        for mod_name, mod in self.named_modules(prefix):
            for name, p in mod._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                p.name = f"{mod_name}.{name}" if mod_name else name
                yield p.name, p

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mod_name, mod in self.named_modules(prefix):
            for name, b in mod._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def buffers(self) -> list[np.ndarray]:
        return [b for _, b in self.named_buffers()]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Layer:
        for _, mod in self.named_modules():
            object.__setattr__(mod, "training", mode)
        return self

    def eval(self) -> Layer:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def astype(self, dtype: Any) -> Layer:
        """Convert every parameter and floating buffer in place; returns `self` so it chains."""
        for p in self.parameters():
            p.astype(dtype)
        for _, mod in self.named_modules():
            for name, b in list(mod._buffers.items()):
                if b is not None and np.issubdtype(b.dtype, np.floating):
                    setattr(mod, name, b.astype(dtype))
        return self

    @property
    def dtype(self) -> np.dtype:
        params = self.parameters()
        return params[0].dtype if params else np.dtype(DEFAULT_DTYPE)

    # ------------------------------------------------------------------ fine-tuning
    def freeze(self) -> Layer:
        """Set ``requires_grad = False`` on every parameter of this layer and its sub-layers.

        Optimizers then skip them (no update, no state) and layers that check the flag skip
        their gradient. Buffers are unaffected: BatchNorm still updates its running statistics
        in training mode. Returns `self`, so it chains (``model[0].freeze()``).
        """
        self._set_requires_grad(False)
        return self

    def unfreeze(self) -> Layer:
        """Set ``requires_grad = True`` on every parameter again; returns `self`.

        An optimizer that already holds these parameters picks them up at its next step, with
        fresh state.
        """
        self._set_requires_grad(True)
        return self

    def _set_requires_grad(self, flag: bool) -> None:
        # Not `self.parameters()`: listing from a sub-layer would rename its parameters relative
        # to it ("weight" instead of "0.weight"), which optimizer state dicts key on.
        for _, mod in self.named_modules():
            for p in mod._parameters.values():
                p.requires_grad = flag

    @property
    def frozen(self) -> bool:
        """True when the layer has parameters and none of them requires a gradient."""
        params = [p for _, mod in self.named_modules() for p in mod._parameters.values()]
        return bool(params) and not any(p.requires_grad for p in params)

    def summary(self, input_shape: Any, dtype: Any = None) -> Summary:
        """The table of sub-layers, output shapes, parameter counts and FLOPs for `input_shape`.

        `input_shape` includes the batch dimension, e.g. ``(1, 40)``. See `gradwise.summary.summary`;
        ``print(model.summary((1, 40)))`` shows the table.
        """
        # gradwise.summary reads a model only through this protocol (it imports nothing from
        # gradwise), so importing it here makes no cycle; lazily, to keep `import gradwise.core` small.
        from gradwise.summary import summary

        return summary(self, input_shape, dtype)

    def flops(self, input_shape: Any, output_shape: Any) -> int:
        """FLOPs (2 x multiply-adds) of one call of this layer's own work, for `gradwise.summary`.

        Parameters
        ----------
        input_shape, output_shape : tuple of int, or tuple of tuples
            The shapes of the call's input and output, batch included (one shape per input for a
            multi-input layer).

        Returns
        -------
        int
            0 here: only the matrix products count (`Linear`, convolutions, recurrent layers
            override this). A container counts nothing itself; the summary adds up its children.
            A custom layer with real arithmetic overrides it.
        """
        return 0

    def input_dtype(self, floating: np.dtype) -> np.dtype | tuple[Any, ...]:
        """The dtype of the input this layer reads, for the zeros `gradwise.summary` feeds it.

        Parameters
        ----------
        floating : np.dtype
            The model's floating dtype.

        Returns
        -------
        np.dtype or tuple
            `floating` here (real-valued inputs). `Embedding` reads int64 indices, `Sequential`
            reads what its first layer reads and `Parallel` returns one entry per branch.
        """
        return np.dtype(floating)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of parameters and buffers under PyTorch's dotted names, in registration order."""
        state: dict[str, np.ndarray] = {}
        for mod_name, mod in self.named_modules():
            pre = f"{mod_name}." if mod_name else ""
            for name, p in mod._parameters.items():
                state[pre + name] = p.data.copy()
            for name, b in mod._buffers.items():
                if b is not None:
                    state[pre + name] = np.array(b, copy=True)
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy arrays into parameters and buffers, keeping each one's dtype.

        Raises `KeyError` naming missing or unexpected keys (when `strict`) and `ValueError` naming
        the key and both shapes on a shape mismatch. Nothing is changed unless everything fits.
        """
        targets: dict[str, tuple[Layer, str, bool]] = {}
        for mod_name, mod in self.named_modules():
            pre = f"{mod_name}." if mod_name else ""
            for name in mod._parameters:
                targets[pre + name] = (mod, name, True)
            for name, b in mod._buffers.items():
                if b is not None:
                    targets[pre + name] = (mod, name, False)
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(
                f"{type(self).__name__}.load_state_dict: missing keys {missing}, unexpected keys {unexpected}"
            )
        for key, (mod, name, is_param) in targets.items():
            if key not in state:
                continue
            current = mod._parameters[name].data if is_param else mod._buffers[name]
            value = np.asarray(state[key])
            if value.shape != current.shape:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {key!r} has shape {value.shape} "
                    f"in the state dict but {current.shape} in the model"
                )
        for key, (mod, name, is_param) in targets.items():
            if key not in state:
                continue
            if is_param:
                p = mod._parameters[name]
                p.data[...] = np.asarray(state[key], dtype=p.dtype)
            else:
                b = mod._buffers[name]
                setattr(mod, name, np.asarray(state[key], dtype=b.dtype).copy())

    # ------------------------------------------------------------------ display
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._children.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)


class Sequential(Layer):
    """Layers applied in order; `backward` runs them in reverse.

    Children are named `"0"`, `"1"`, ... like `torch.nn.Sequential`.
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: item {i} is {type(layer).__name__}, not a Layer")
            setattr(self, str(i), layer)

    @property
    def layers(self) -> list[Layer]:
        return list(self._children.values())

    def __len__(self) -> int:
        return len(self._children)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self._children.values():
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """Run the layers' backward in reverse; only the first layer is told `input_grad`.

        The training loop calls ``model.backward(g, input_grad=False)``: the first layer's input
        gradient (for an MLP on images, a quarter of the backward's FLOPs) is then not computed.
        """
        layers = list(self._children.values())
        for layer in layers[:0:-1]:
            grad_out = layer.backward(grad_out)
        if not layers:
            return grad_out if input_grad else None
        grad_in = backward_of(layers[0], grad_out, input_grad)
        return grad_in if input_grad else None

    def input_dtype(self, floating: np.dtype) -> np.dtype | tuple[Any, ...]:
        """What the first layer reads (`floating` when empty): see `Layer.input_dtype`."""
        first = next(iter(self._children.values()), None)
        return first.input_dtype(floating) if first is not None else np.dtype(floating)
