"""Optimizer cases: one `step()` on about 10M float32 parameters (SGD, SGD with momentum, Adam).

The parameters are shaped like the layers of a 3072-2048-2048-10 MLP (weights and biases,
10,510,346 in all; 100k with --quick), with fixed random gradients: no forward or backward runs,
only the update. Rows: gradwise as constructed by default; gradwise with each boolean
implementation option its constructor offers (`fused=True`, a flat-buffer option), found with
`inspect.signature`; PyTorch default, `foreach=True` and `fused=True`. The case's ratio is the
fastest gradwise option's row (the fused path when there is one) over PyTorch's default.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from gradwise.bench.context import Context
from gradwise.bench.report import CaseResult, Target
from gradwise.bench.timing import median, time_interleaved

WIDTHS = (3072, 2048, 2048, 10)
QUICK_WIDTHS = (256, 256, 128, 10)
# Implementation options of gradwise optimizers (booleans that change speed, not results).
OPTION_WORDS = ("fused", "flat", "foreach")
KINDS = {
    "sgd": ("SGD", {}, 0.8),
    "momentum": ("SGD", {"momentum": 0.9}, 0.8),
    "adam": ("Adam", {}, 0.5),
}


def mlp_shapes(widths: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Weight (out, in) and bias (out,) shapes of the Linear layers of an MLP, in order."""
    shapes: list[tuple[int, ...]] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        shapes += [(fan_out, fan_in), (fan_out,)]
    return shapes


def implementation_options(cls: type) -> list[str]:
    """Boolean keyword arguments of `cls.__init__` that pick an implementation (fused, flat buffer)."""
    found = []
    for name, param in inspect.signature(cls).parameters.items():
        if any(word in name for word in OPTION_WORDS) and (isinstance(param.default, bool) or param.default is None):
            found.append(name)
    return found


def optimizer_step(ctx: Context, kind: str) -> CaseResult:
    import gradwise.optim as gwo
    from gradwise.core import Parameter

    cls_name, kwargs, target = KINDS[kind]
    cls = getattr(gwo, cls_name)
    widths = ctx.pick(QUICK_WIDTHS, WIDTHS)
    steps = ctx.pick(2, 3)
    rng = np.random.default_rng(ctx.seed)
    shapes = mlp_shapes(widths)
    init = [rng.standard_normal(s, dtype=np.float32) * 0.01 for s in shapes]
    grads = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    n_params = sum(a.size for a in init)
    desc = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    result = CaseResult(f"optim-{kind}", f"{cls_name}({desc or 'lr=1e-3'}).step() on {n_params:,} float32 parameters "
                        f"in {len(shapes)} tensors", "ms/step", ours="gradwise",
                        targets=[Target("ratio", "<=", target)])

    def make_ours(**extra: Any) -> Any:
        params = [Parameter(a.copy()) for a in init]
        for p, g in zip(params, grads):
            p.grad[...] = g
        return cls(params, lr=1e-3, **kwargs, **extra)

    def run(opt: Any) -> None:
        for _ in range(steps):
            opt.step()

    candidates: dict[str, Any] = {"gradwise": (lambda o=make_ours(): run(o))}
    for option in implementation_options(cls):
        try:
            opt = make_ours(**{option: True})
        except (TypeError, ValueError) as err:
            result.notes.append(f"gradwise {option}=True not timed: {err}")
            continue
        candidates[f"gradwise {option}=True"] = lambda o=opt: run(o)
    if len(candidates) == 1:
        result.notes.append(f"gradwise.optim.{cls_name} offers no fused/flat-buffer option on this branch")
    torch = ctx.torch
    if torch is None:
        result.peer_missing = ctx.torch_missing
    else:
        for label, extra in (("torch default", {}), ("torch foreach", {"foreach": True}), ("torch fused", {"fused": True})):
            tparams = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
            for t, g in zip(tparams, grads):
                t.grad = torch.from_numpy(g.copy())
            try:
                opt = getattr(torch.optim, cls_name)(tparams, lr=1e-3, **kwargs, **extra)
                opt.step()
            except (RuntimeError, TypeError, ValueError) as err:
                result.notes.append(f"{label} not timed: {str(err).splitlines()[0]}")
                continue
            candidates[label] = lambda o=opt: run(o)
        result.peer = "torch default"
    # The first step allocates the state: one warm-up run of each.
    runs = time_interleaved(candidates, ctx.pick(1, 7), warmup=candidates)
    for label, rs in runs.items():
        result.add_row(label, [1e3 * r.seconds / steps for r in rs], [r.disturbed for r in rs])
    ours = [label for label in result.rows if label.startswith("gradwise")]
    result.ours = min(ours, key=lambda label: median(result.rows[label]))
    for label in ("torch foreach", "torch fused"):
        if label in result.rows:
            result.extra[f"{result.ours} / {label}"] = median(result.rows[result.ours]) / median(result.rows[label])
    result.notes.append(f"{steps} steps per run, median of {ctx.pick(1, 7)} runs; the ratio uses the fastest "
                        f"gradwise row ({result.ours})")
    return result


def optim_sgd(ctx: Context) -> CaseResult:
    return optimizer_step(ctx, "sgd")


def optim_momentum(ctx: Context) -> CaseResult:
    return optimizer_step(ctx, "momentum")


def optim_adam(ctx: Context) -> CaseResult:
    return optimizer_step(ctx, "adam")
