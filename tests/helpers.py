"""Helpers shared by the tests: norm-wise errors, inputs away from kinks, torch twins of layers.

torch is imported lazily, inside the functions that need it, so that tests not marked `oracle`
run without it; oracle tests call `pytest.importorskip("torch")` before using these helpers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import gradwise as gw
from gradwise.layers import ELU, GELU, Flatten, LeakyReLU, Linear, Maxout, ReLU, Sigmoid, Softplus, Tanh

# The largest oracle error seen per (dtype, quantity) in this session; an optional reporting plugin
# may read it, the tests never depend on it.
OBSERVED: dict[str, float] = {}


def rel_err(actual: Any, expected: Any) -> float:
    """Norm-wise relative error ||actual - expected|| / ||expected|| (the absolute error when
    `expected` is zero). Shapes must agree exactly."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"shape {a.shape} != expected shape {e.shape}"
    diff = float(np.linalg.norm((a - e).ravel()))
    ref = float(np.linalg.norm(e.ravel()))
    return diff / ref if ref > 0 else diff


def record(key: str, err: float) -> float:
    OBSERVED[key] = max(OBSERVED.get(key, 0.0), err)
    return err


# ----------------------------------------------------------------------------------------- inputs


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...], low: float = 0.1, high: float = 3.0) -> np.ndarray:
    """Entries with |x| in [low, high] and a random sign: no entry sits within a finite-difference
    step of the kink at 0 (ReLU, LeakyReLU, ELU)."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


def distinct_values(rng: np.random.Generator, shape: tuple[int, ...], gap: float = 0.1) -> np.ndarray:
    """A random permutation of values `gap` apart: no ties, and no near-ties, for Maxout."""
    size = int(np.prod(shape))
    return (rng.permutation(size) - size / 2 + 0.5).reshape(shape) * gap


def layer_input(layer: gw.Layer, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A float64 input for `layer` that keeps every finite-difference step away from kinks."""
    if isinstance(layer, Maxout):
        return distinct_values(rng, shape)
    x = away_from_zero(rng, shape)
    if isinstance(layer, Softplus):
        # Spread over both regions and keep beta * x away from the switch at `threshold`.
        x = x * (1.5 * layer.threshold / layer.beta) / 3.0
        bx = layer.beta * x
        x = np.where(np.abs(bx - layer.threshold) < 0.2, x + 0.5 / layer.beta, x)
    return x


# ----------------------------------------------------------------------------------------- torch


def _torch_dtype(dtype: np.dtype | type) -> Any:
    import torch

    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def _maxout_module(pieces: int) -> Any:
    from torch import nn

    class TorchMaxout(nn.Module):
        """The maximum over `pieces` consecutive channels, `x.view(N, C // k, k, ...).max(2)`."""

        def __init__(self, k: int) -> None:
            super().__init__()
            self.k = k

        def forward(self, x: Any) -> Any:
            n, c = x.shape[:2]
            return x.view(n, c // self.k, self.k, *x.shape[2:]).max(2).values

    return TorchMaxout(pieces)


def torch_twin(layer: gw.Layer, dtype: np.dtype | type = np.float32) -> Any:
    """The torch module computing what `layer` computes, with its weights copied, in `dtype`."""
    import torch
    from torch import nn

    tdtype = _torch_dtype(dtype)
    if isinstance(layer, gw.Sequential):
        return nn.Sequential(*(torch_twin(child, dtype) for child in layer))
    if isinstance(layer, Linear):
        m = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, dtype=tdtype)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(np.array(layer.weight.data)))
            if layer.bias is not None:
                m.bias.copy_(torch.from_numpy(np.array(layer.bias.data)))
        return m
    if isinstance(layer, ReLU):
        return nn.ReLU()
    if isinstance(layer, LeakyReLU):
        return nn.LeakyReLU(layer.negative_slope)
    if isinstance(layer, ELU):
        return nn.ELU(layer.alpha)
    if isinstance(layer, Sigmoid):
        return nn.Sigmoid()
    if isinstance(layer, Tanh):
        return nn.Tanh()
    if isinstance(layer, Softplus):
        return nn.Softplus(beta=layer.beta, threshold=layer.threshold)
    if isinstance(layer, GELU):
        return nn.GELU(approximate=layer.approximate)
    if isinstance(layer, Flatten):
        return nn.Flatten(start_dim=layer.start_dim)
    if isinstance(layer, Maxout):
        return _maxout_module(layer.pieces)
    raise TypeError(f"no torch twin for {type(layer).__name__}")


def run_gradwise(
    layer: gw.Layer, x: np.ndarray, upstream: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Forward, then backward of `upstream`: (output, input gradient, {param name: gradient})."""
    layer.zero_grad()
    y = layer.forward(x)
    gx = layer.backward(upstream)
    return y, gx, {name: p.grad.copy() for name, p in layer.named_parameters()}


def run_torch(module: Any, x: np.ndarray, upstream: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    import torch

    xt = torch.tensor(x, requires_grad=True)
    y = module(xt)
    y.backward(torch.from_numpy(np.array(upstream)))
    grads = {name: p.grad.detach().numpy().copy() for name, p in module.named_parameters()}
    return y.detach().numpy(), xt.grad.numpy(), grads


def oracle_errors(layer: gw.Layer, x: np.ndarray, upstream: np.ndarray) -> dict[str, float]:
    """Norm-wise relative errors of gradwise against torch, in the dtype of `x`, for the output,
    the input gradient and every parameter gradient (keyed by the shared parameter name)."""
    twin = torch_twin(layer, x.dtype)
    y, gx, grads = run_gradwise(layer, x, upstream)
    ty, tgx, tgrads = run_torch(twin, x, upstream)
    assert sorted(grads) == sorted(tgrads), f"parameter names {sorted(grads)} != torch's {sorted(tgrads)}"
    errors = {"output": rel_err(y, ty), "input": rel_err(gx, tgx)}
    errors.update({name: rel_err(grads[name], tgrads[name]) for name in grads})
    kind = np.dtype(x.dtype).name
    for name, err in errors.items():
        record(f"{kind}:{type(layer).__name__}:{'param' if name not in ('output', 'input') else name}", err)
    return errors


class FlagProbe(gw.Layer):
    """Identity layer that records the `input_grad` flag of every backward it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.flags: list[bool] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        self.flags.append(input_grad)
        return grad_out if input_grad else None


def spiral_cli_config(epochs: int, *, dropout: float = 0.2, seed: int = 5) -> str:
    """A small `gradwise train` config (spiral, MLP with dropout, Adam, 6 steps per epoch) for
    the command-line resume and search tests."""
    return f"""
[data]
dataset = "spiral"
n_per_class = 40
[model]
layers = [
  {{ type = "Linear", in_features = 2, out_features = 16 }},
  {{ type = "ReLU" }},
  {{ type = "Dropout", p = {dropout} }},
  {{ type = "Linear", in_features = 16, out_features = 3 }},
]
[loss]
type = "SoftmaxCrossEntropy"
[optimizer]
type = "Adam"
lr = 1e-2
[train]
epochs = {epochs}
batch_size = 16
seed = {seed}
"""


def shared_data_dir(name: str) -> "Path | None":
    """The folder of real dataset `name` (``adult``, ``ml-100k``, ...), or None where it is absent.

    Looked up in ``$GRADWISE_DATA/<name>``, then ``<repo>/../shared/data/<name>`` (a clone beside
    the workplace's shared folder) and ``<repo>/../../shared/data/<name>`` (a worktree one level
    deeper). The library itself never looks there: tests pass the folder explicitly.
    """
    import os
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    candidates = [Path(os.environ["GRADWISE_DATA"]) / name] if os.environ.get("GRADWISE_DATA") else []
    candidates += [repo.parent / "shared" / "data" / name, repo.parent.parent / "shared" / "data" / name]
    return next((c for c in candidates if c.is_dir()), None)
