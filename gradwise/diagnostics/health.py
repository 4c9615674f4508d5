"""What a healthy network looks like while it trains, measured: the numbers behind the checks.

Pure functions of arrays and models (no training loop, no files), shared by the live
`gradwise.training.babysitter.Babysitter` callback and by `gradwise.diagnostics.diagnose`, and by
any other callback that logs the same quantities (a TensorBoard writer, say): this module holds
the one definition of each.

- `update_ratios(before, after)`: per parameter, ||w_after - w_before|| / ||w_before||, the ratio of
  the update's norm to the weight's norm. CS231n ("Babysitting the learning process") gives ~1e-3
  as the healthy order of magnitude: much lower and the learning rate is probably too low, much
  higher and it is probably too high.
- `grad_norms(model)`: the 2-norm of every parameter's gradient (vanishing or exploding).
- `dead_fraction(a)`: the fraction of ReLU units that output zero for every sample of a batch.
- `saturated_fraction(a, kind)`: the fraction of sigmoid or tanh outputs in the flat tails, where
  the local derivative is below ~1% of its maximum.
- `ActivationProbe`: observes every layer's output during a forward pass *without changing the
  layers*, and summarizes it (mean, std, histogram, dead or saturated fraction).

How the probe observes: for the duration of a ``with`` block it sets an instance attribute
``forward`` on each observed module, a wrapper that calls the class's own ``forward`` and
summarizes its output; leaving the block deletes the attributes, so the modules are exactly as
before (their classes are never touched; an exception inside the block restores them too). The
summary is computed inside the wrapper, at once, because a later layer may reuse or overwrite the
array; only a few numbers and a small histogram per layer are kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradwise.core import Layer
from gradwise.layers.activations import ELU, GELU, LeakyReLU, Maxout, ReLU, Sigmoid, Softplus, Tanh

__all__ = [
    "SATURATION_TOL",
    "ActivationProbe",
    "ActivationSummary",
    "dead_fraction",
    "global_norm",
    "grad_norms",
    "non_finite",
    "saturated_fraction",
    "update_ratios",
    "weight_snapshot",
]

#: A sigmoid output within this of 0 or 1 (a tanh output within twice it of -1 or 1) is
#: saturated: the local derivative there is below ~1% of its maximum (sigma' = y (1 - y) < 0.0099
#: against 0.25; tanh' = 1 - y^2 < 0.04 against 1).
SATURATION_TOL = 0.01

_ACTIVATIONS = (ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh, Softplus, Maxout)


def weight_snapshot(model: Layer) -> dict[str, np.ndarray]:
    """Copies of every trainable parameter's values, by name (to compare after a step)."""
    return {name: p.data.copy() for name, p in model.named_parameters() if p.requires_grad}


def update_ratios(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray]) -> dict[str, float]:
    r"""The ratio of the update's norm to the weight's norm, per parameter.

    .. math::

        r = \frac{\lVert w_{t+1} - w_t \rVert_2}{\lVert w_t \rVert_2}

    Parameters
    ----------
    before, after : mapping of name -> array
        The values before and after the update(s), e.g. two `weight_snapshot`\ s or a snapshot and
        ``{name: p.data}``; names present in both are compared (the shapes must agree).

    Returns
    -------
    dict of name -> float
        0 when nothing moved; inf when a zero weight (a bias at its initial 0) moved; NaN when
        either side holds NaN or inf.

    References
    ----------
    A. Karpathy, CS231n notes, "Neural Networks Part 3: Ratio of weights:updates" (healthy ~1e-3).
    """
    ratios: dict[str, float] = {}
    for name, w0 in before.items():
        if name not in after:
            continue
        a = np.asarray(w0, dtype=np.float64)
        b = np.asarray(after[name], dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"update_ratios: {name!r} has shape {a.shape} before and {b.shape} after")
        step = float(np.linalg.norm((b - a).ravel()))
        norm = float(np.linalg.norm(a.ravel()))
        if not (math.isfinite(step) and math.isfinite(norm)):
            ratios[name] = math.nan
        elif norm == 0:
            ratios[name] = 0.0 if step == 0 else math.inf
        else:
            ratios[name] = step / norm
    return ratios


def grad_norms(model: Layer) -> dict[str, float]:
    """The 2-norm of every trainable parameter's current gradient (``Parameter.grad``), by name.

    After `Trainer`'s step, ``Parameter.grad`` still holds the gradient that step used (penalty
    included, after clipping), so a callback's ``on_train_batch_end`` reads the step's gradients.
    """
    return {
        name: float(np.linalg.norm(np.asarray(p.grad, dtype=np.float64).ravel()))
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def global_norm(norms: Mapping[str, float]) -> float:
    """sqrt(sum of squares) of per-parameter norms: the norm of all gradients as one vector."""
    return math.sqrt(math.fsum(v * v for v in norms.values()))


def non_finite(model: Layer) -> list[str]:
    """Names of the parameters whose values or gradients hold NaN or inf (``name`` or ``name.grad``)."""
    bad = []
    for name, p in model.named_parameters():
        if not np.isfinite(p.data).all():
            bad.append(name)
        if p.requires_grad and not np.isfinite(p.grad).all():
            bad.append(f"{name}.grad")
    return bad


def _units(a: np.ndarray) -> np.ndarray:
    """(N, units) view of a batch of activations: features for (N, D), channels for (N, C, ...)."""
    if a.ndim == 1:
        return a.reshape(-1, 1)
    if a.ndim == 2:
        return a
    # (N, C, L...) -> (N * L..., C): a channel is one unit, seen at every position.
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def dead_fraction(a: np.ndarray) -> float:
    """The fraction of units that are zero (<= 0) for every sample of the batch `a`.

    A "unit" is a feature of a (N, D) output and a channel of a (N, C, ...) output (a filter that
    fires nowhere, for no sample). A ReLU unit whose input is negative for all data passes no
    gradient to its weights and never recovers: it is dead.

    Parameters
    ----------
    a : (N, D) or (N, C, ...) array
        The ReLU outputs of one batch (N >= 1).
    """
    u = _units(np.asarray(a))
    if u.size == 0:
        return 0.0
    return float(np.mean(~np.any(u > 0, axis=0)))


def saturated_fraction(a: np.ndarray, kind: str, tol: float = SATURATION_TOL) -> float:
    """The fraction of outputs in the flat tails of a sigmoid (``y < tol`` or ``y > 1 - tol``) or
    of a tanh (``|y| > 1 - 2 tol``), where almost no gradient flows back.

    Parameters
    ----------
    a : array
        Sigmoid or tanh outputs, any shape.
    kind : {"sigmoid", "tanh"}
    tol : float
        In (0, 0.5).
    """
    if kind not in ("sigmoid", "tanh"):
        raise ValueError(f"saturated_fraction: {kind=} must be 'sigmoid' or 'tanh'")
    if not 0 < tol < 0.5:
        raise ValueError(f"saturated_fraction: {tol=} must be in (0, 0.5)")
    a = np.asarray(a)
    if a.size == 0:
        return 0.0
    if kind == "sigmoid":
        flat = (a < tol) | (a > 1 - tol)
    else:
        flat = np.abs(a) > 1 - 2 * tol
    return float(np.mean(flat))


@dataclass
class ActivationSummary:
    """What `ActivationProbe` kept of one layer's output on one batch.

    Attributes
    ----------
    name, kind : str
        The module's name in ``named_modules`` and its class name.
    mean, std : float
        Over every entry of the output (NaN if it held NaN or inf).
    counts : (B,) float64
    edges : (B + 1,) float64
        Its histogram (finite entries, equal-width bins between the minimum and the maximum).
    dead : float or None
        `dead_fraction` for a ReLU, else None.
    saturated : float or None
        `saturated_fraction` for a sigmoid or tanh, else None.
    finite : bool
        False if the output held NaN or inf.
    """

    name: str
    kind: str
    mean: float
    std: float
    counts: np.ndarray
    edges: np.ndarray
    dead: float | None = None
    saturated: float | None = None
    finite: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "mean": self.mean, "std": self.std,
            "counts": self.counts.tolist(), "edges": self.edges.tolist(),
            "dead": self.dead, "saturated": self.saturated, "finite": self.finite,
        }


def summarize(name: str, module: Layer, out: Any, bins: int = 40) -> ActivationSummary:
    """An `ActivationSummary` of `module`'s output `out` (the probe's wrapper calls this)."""
    a = np.asarray(out[0] if isinstance(out, tuple) else out)  # recurrent layers return (out, state)
    if not np.issubdtype(a.dtype, np.number):
        a = a.astype(np.float64)
    finite_mask = np.isfinite(a)
    finite = bool(finite_mask.all())
    v = a[finite_mask].astype(np.float64, copy=False) if not finite else a.astype(np.float64, copy=False).ravel()
    if v.size == 0:
        v = np.zeros(1)
    counts, edges = np.histogram(v, bins=min(bins, max(5, int(2 * math.sqrt(v.size)))))
    kind = type(module).__name__
    dead = dead_fraction(a) if isinstance(module, ReLU) else None
    sat = None
    if isinstance(module, Sigmoid):
        sat = saturated_fraction(a, "sigmoid")
    elif isinstance(module, Tanh):
        sat = saturated_fraction(a, "tanh")
    return ActivationSummary(
        name=name, kind=kind,
        mean=float(v.mean()) if finite else math.nan, std=float(v.std()) if finite else math.nan,
        counts=counts.astype(np.float64), edges=edges, dead=dead, saturated=sat, finite=finite,
    )


def observed_modules(model: Layer) -> list[tuple[str, Layer]]:
    """The modules an `ActivationProbe` watches: leaves with parameters, and activations.

    Reshapes, dropout and containers are skipped: their outputs repeat another layer's.
    """
    chosen = []
    for name, mod in model.named_modules():
        if next(iter(mod.named_children()), None) is not None:
            continue  # a container: its leaves are observed
        if isinstance(mod, _ACTIVATIONS) or mod._parameters:
            chosen.append((name or type(mod).__name__, mod))
    return chosen


class ActivationProbe:
    """Summarize every observed layer's output during the forward passes inside a ``with`` block.

    Parameters
    ----------
    model : Layer
    bins : int
        Bins of each histogram.

    Attributes
    ----------
    summaries : dict of name -> ActivationSummary
        The last output of each observed module (`observed_modules`) seen inside the block.

    Examples
    --------
    >>> with ActivationProbe(model) as probe:          # doctest: +SKIP
    ...     model.forward(x)
    >>> probe.summaries["1"].dead                       # doctest: +SKIP
    """

    def __init__(self, model: Layer, bins: int = 40) -> None:
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
            raise ValueError(f"ActivationProbe: {bins=} must be an integer >= 1")
        self.model = model
        self.bins = int(bins)
        self.summaries: dict[str, ActivationSummary] = {}
        self._installed: list[Layer] = []

    def __enter__(self) -> ActivationProbe:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def install(self) -> None:
        """Start observing (`__enter__` calls it); `remove` stops."""
        if self._installed:
            return
        self.summaries = {}
        for name, mod in observed_modules(self.model):
            if "forward" in mod.__dict__:
                continue  # someone else's wrapper (or a nested probe): leave it alone
            object.__setattr__(mod, "forward", self._wrap(name, mod))
            self._installed.append(mod)

    def remove(self) -> None:
        for mod in self._installed:
            mod.__dict__.pop("forward", None)
        self._installed = []

    def _wrap(self, name: str, mod: Layer) -> Any:
        inner = type(mod).forward

        def forward(x: Any) -> Any:
            out = inner(mod, x)
            self.summaries[name] = summarize(name, mod, out, self.bins)
            return out

        return forward

    def __iter__(self) -> Iterator[ActivationSummary]:
        return iter(self.summaries.values())

    def __repr__(self) -> str:
        return f"ActivationProbe({type(self.model).__name__}, observing={[n for n, _ in observed_modules(self.model)]})"
