"""Gradient checking: compare each hand-derived backward with centered finite differences.

For a layer with output y = f(x; w) we draw a random upstream gradient G (as Chainer does, so that
every output element matters) and check the gradients of the scalar L = sum(f(x; w) * G):

    dL/dtheta_i  ~=  (L(theta + h e_i) - L(theta - h e_i)) / (2 h)

in float64, on a copy of the layer (the original is not touched). The error between the analytic
gradient `a` and the numerical one `n` of a tensor is the norm-wise relative error
||a - n|| / (||a|| + ||n||) (taken as 0 when both are below the rounding noise of a centered
difference, about 10 * eps_machine * |L| / h per entry: a gradient that is zero by symmetry),
with the usual reading (CS231n):

    < 1e-7   great: the backward is right
    < 1e-5   acceptable where the function has kinks (ReLU, max pooling, hinge)
    < 1e-3   suspicious without kinks
    >= 1e-3  almost certainly a bug

Randomness inside the model (dropout masks) is frozen: every layer's `rng` generator is rewound to
the same state before each forward, so all evaluations see the same mask.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gradwise.core import Layer, backward_of
from gradwise.losses import Loss, Penalty

GREAT = 1e-7
KINKS = 1e-5
BUG = 1e-3


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """Norm-wise relative error ||a - n|| / (||a|| + ||n||); 0 when both are exactly zero."""
    a = np.asarray(analytic, dtype=np.float64).ravel()
    n = np.asarray(numeric, dtype=np.float64).ravel()
    denom = np.linalg.norm(a) + np.linalg.norm(n)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - n) / denom)


def reading(err: float) -> str:
    """The usual interpretation of a relative error."""
    if err < GREAT:
        return "great"
    if err < KINKS:
        return "acceptable near kinks"
    if err < BUG:
        return "suspicious"
    return "likely a bug"


def numerical_gradient(
    f: Callable[[], float], array: np.ndarray, indices: np.ndarray, eps: float = 1e-5
) -> np.ndarray:
    """Centered differences of the scalar `f()` with respect to `array.flat[indices]`.

    `array` is perturbed in place and restored exactly after each entry. `indices` count in C
    order whatever the array's memory layout (``array.flat``: a Fortran-ordered or strided input,
    such as a layer's transposed output, is perturbed in place too, not a reshaped copy of it).
    """
    flat = array.flat
    grad = np.empty(len(indices))
    for k, i in enumerate(indices):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        grad[k] = (plus - minus) / (2 * eps)
    return grad


@dataclass
class TensorCheck:
    """The result for one tensor: an input or a parameter."""

    name: str
    rel_error: float
    max_abs_error: float
    checked: int
    total: int

    @property
    def reading(self) -> str:
        return reading(self.rel_error)


@dataclass
class GradCheckReport:
    """Per-tensor results; `passed` when every relative error is below `tolerance`."""

    checks: list[TensorCheck] = field(default_factory=list)
    tolerance: float = GREAT

    @property
    def passed(self) -> bool:
        return all(c.rel_error < self.tolerance for c in self.checks)

    @property
    def max_rel_error(self) -> float:
        return max((c.rel_error for c in self.checks), default=0.0)

    def __getitem__(self, name: str) -> TensorCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no tensor named {name!r} in this report; have {[c.name for c in self.checks]}")

    def __str__(self) -> str:
        width = max([len(c.name) for c in self.checks] + [6])
        lines = [f"{'tensor':<{width}}  {'rel. error':>10}  {'max abs':>9}  {'checked':>13}  reading"]
        for c in self.checks:
            lines.append(
                f"{c.name:<{width}}  {c.rel_error:>10.2e}  {c.max_abs_error:>9.2e}  "
                f"{f'{c.checked}/{c.total}':>13}  {c.reading}"
            )
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(f"{verdict}: largest relative error {self.max_rel_error:.2e} (tolerance {self.tolerance:.0e})")
        return "\n".join(lines)


def _rng_states(model: Layer) -> list[tuple[np.random.Generator, dict]]:
    states = []
    for _, mod in model.named_modules():
        rng = mod.__dict__.get("rng")
        if isinstance(rng, np.random.Generator):
            states.append((rng, copy.deepcopy(rng.bit_generator.state)))
    return states


def _pick(size: int, max_entries: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(rng.choice(size, size=max_entries, replace=False))


def _run_check(
    model: Layer,
    objective: Callable[[np.ndarray], float],
    backward: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    *,
    check_input: bool,
    eps: float,
    max_entries: int | None,
    tolerance: float,
    rng: np.random.Generator,
) -> GradCheckReport:
    frozen = _rng_states(model)

    def rewind() -> None:
        for gen, state in frozen:
            gen.bit_generator.state = copy.deepcopy(state)

    def f() -> float:
        rewind()
        return objective(x)

    model.zero_grad()
    rewind()
    base = objective(x)
    grad_x = backward(x)
    # Rounding noise of one centered difference: about machine epsilon * |L| / h per entry. Two
    # gradients both below a few times that are zero as far as this check can tell.
    noise = np.finfo(np.float64).eps * max(1.0, abs(base)) / eps

    report = GradCheckReport(tolerance=tolerance)
    targets: list[tuple[str, np.ndarray, np.ndarray]] = []
    if check_input:
        if isinstance(x, tuple):  # a multi-input model (Parallel): one entry per floating input
            targets += [
                (f"input[{i}]", a, g)
                for i, (a, g) in enumerate(zip(x, grad_x))
                if g is not None and np.issubdtype(a.dtype, np.floating)
            ]
        else:
            targets.append(("input", x, grad_x))
    targets += [(name, p.data, p.grad.copy()) for name, p in model.named_parameters() if p.requires_grad]
    for name, array, analytic in targets:
        idx = _pick(array.size, max_entries, rng)
        numeric = numerical_gradient(f, array, idx, eps)
        picked = analytic.reshape(-1)[idx]
        zero_tol = 10 * noise * np.sqrt(len(idx))
        both_zero = np.linalg.norm(picked) < zero_tol and np.linalg.norm(numeric) < zero_tol
        report.checks.append(
            TensorCheck(
                name=name,
                rel_error=0.0 if both_zero else rel_error(picked, numeric),
                max_abs_error=float(np.max(np.abs(picked - numeric), initial=0.0)),
                checked=len(idx),
                total=array.size,
            )
        )
    return report


def _as_float64(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return np.array(a, dtype=np.float64, copy=True) if np.issubdtype(a.dtype, np.floating) else a.copy()


def check_layer(
    layer: Layer,
    x: np.ndarray,
    *,
    eps: float = 1e-5,
    max_entries: int | None = 2000,
    tolerance: float = GREAT,
    seed: int = 0,
) -> GradCheckReport:
    """Check `layer.backward` for the input and every parameter, in float64, on a copy of `layer`.

    Parameters
    ----------
    layer : Layer
        Checked in its current mode (`train()` or `eval()`); not modified.
    x : np.ndarray
        An input batch, e.g. (N, in_features). Avoid exact kinks (x == 0 for ReLU).
    eps : float
        Step of the centered difference. 1e-5 is near the float64 optimum (about the cube root of
        machine epsilon), where truncation error (~h^2) and rounding error (~eps_machine / h) balance.
    max_entries : int or None
        Check at most this many randomly chosen entries per tensor (None: all).
    tolerance : float
        `report.passed` is True when every relative error is below it.
    seed : int
        Seeds the upstream gradient and the choice of entries.
    """
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(layer).astype(np.float64)
    x64 = np.array(x, dtype=np.float64, copy=True, order="C")
    upstream = rng.standard_normal(model.forward(x64).shape)

    def objective(inp: np.ndarray) -> float:
        return float(np.sum(model.forward(inp) * upstream))

    return _run_check(
        model,
        objective,
        lambda inp: model.backward(upstream.copy()),
        x64,
        check_input=True,
        eps=eps,
        max_entries=max_entries,
        tolerance=tolerance,
        rng=rng,
    )


def check_model(
    model: Layer,
    loss: Loss,
    x: np.ndarray,
    y: np.ndarray,
    *,
    penalty: Penalty | None = None,
    check_input: bool = False,
    eps: float = 1e-5,
    max_entries: int | None = 500,
    tolerance: float = GREAT,
    seed: int = 0,
) -> GradCheckReport:
    """Check the gradient of `loss(model(x), y)` (+ `penalty`) for every parameter, in float64.

    The model is copied and converted to float64; the original is not touched. `y` is passed to
    the loss unchanged (float targets are converted with the scores). Integer inputs (embedding
    indices) are not checked as inputs.
    """
    rng = np.random.default_rng(seed)
    net = copy.deepcopy(model).astype(np.float64)
    # Floating inputs become float64 copies; integer inputs (embedding indices) are copied as they are.
    # A tuple or list is a multi-input model's input (`Parallel`), one array per branch.
    x64: np.ndarray | tuple[np.ndarray, ...] = (
        tuple(_as_float64(a) for a in x) if isinstance(x, (tuple, list)) else _as_float64(x)
    )
    lossfn = copy.deepcopy(loss)

    def objective(inp: np.ndarray) -> float:
        value = lossfn.forward(net.forward(inp), y)
        if penalty is not None:
            value += penalty.value(net.parameters())
        return value

    def backward(inp: np.ndarray) -> np.ndarray:
        # Without check_input the model is told so, as the Trainer tells it: the parameters'
        # gradients are checked on the path training takes.
        grad = backward_of(net, lossfn.backward(), input_grad=check_input)
        if penalty is not None:
            penalty.backward(net.parameters())
        return grad

    return _run_check(
        net,
        objective,
        backward,
        x64,
        check_input=check_input and (isinstance(x64, tuple) or np.issubdtype(x64.dtype, np.floating)),
        eps=eps,
        max_entries=max_entries,
        tolerance=tolerance,
        rng=rng,
    )
