"""Comparing optimizers on classic 2-D surfaces: the familiar picture, made with gradwise.

SGD, momentum, Nesterov momentum, Adagrad, RMSprop and Adam each start from the same point on an
ill-conditioned bowl, a saddle, Rosenbrock's banana and Beale's function, with exact gradients (no
noise). Run from the repository root:

    python examples/compare_optimizers.py

It writes ``examples/out/trajectories_<surface>.png`` for each surface and
``examples/out/trajectories_rosenbrock.gif``. What to look for is in ``docs/trajectories.md``.

The learning rates are chosen per surface so that each path shows its method's character within
the step budget: every method is stable, but none is tuned to win. The momentum methods share the
plain-SGD rate where that rate is stable for them too, so the effect of momentum alone is visible.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from gradwise import optim
from gradwise.core import Parameter
from gradwise.optim.trajectories import (
    Beale,
    IllConditionedBowl,
    Rosenbrock,
    Saddle,
    Surface,
    run_optimizer,
)
from gradwise.viz import animate_trajectories, plot_trajectories

OUT = Path(__file__).resolve().parent / "out"

Factory = Callable[[list[Parameter]], optim.Optimizer]


def factories(lrs: dict[str, float]) -> dict[str, Factory]:
    """One optimizer factory per method, at the given learning rates; other hyperparameters are the
    PyTorch defaults (momentum 0.9 for the two momentum methods)."""
    available = {
        "SGD": lambda lr: lambda ps: optim.SGD(ps, lr=lr),
        "Momentum": lambda lr: lambda ps: optim.SGD(ps, lr=lr, momentum=0.9),
        "Nesterov": lambda lr: lambda ps: optim.SGD(ps, lr=lr, momentum=0.9, nesterov=True),
    }
    # Written in parallel with this script; skip any that a checkout does not have yet.
    for name in ("Adagrad", "RMSprop", "Adam"):
        cls = getattr(optim, name, None)
        if cls is None:
            print(f"note: gradwise.optim.{name} is not available in this checkout; skipping it")
            continue
        available[name] = lambda lr, cls=cls: lambda ps: cls(ps, lr=lr)
    return {name: make(lrs[name]) for name, make in available.items()}


# surface, steps, learning rate per method
SETUPS: dict[str, tuple[Surface, int, dict[str, float]]] = {
    "bowl": (
        IllConditionedBowl(a=0.05, b=1.0),
        80,
        # SGD at 1.8 < 2/b: stable across the valley, but y flips sign every step (1 - 1.8b = -0.8)
        # while x shrinks only by 1 - 1.8a = 0.91 per step.
        {"SGD": 1.8, "Momentum": 0.3, "Nesterov": 0.3, "Adagrad": 0.7, "RMSprop": 0.1, "Adam": 0.3},
    ),
    "saddle": (
        Saddle(),
        120,
        {"SGD": 0.01, "Momentum": 0.01, "Nesterov": 0.01, "Adagrad": 0.05, "RMSprop": 0.01, "Adam": 0.03},
    ),
    "rosenbrock": (
        Rosenbrock(),
        1000,
        {"SGD": 1e-3, "Momentum": 1e-3, "Nesterov": 1e-3, "Adagrad": 0.5, "RMSprop": 0.01, "Adam": 0.05},
    ),
    "beale": (
        Beale(),
        1000,
        {"SGD": 1e-2, "Momentum": 1e-3, "Nesterov": 1e-3, "Adagrad": 0.3, "RMSprop": 3e-3, "Adam": 3e-2},
    ),
}
GIF_OF = "rosenbrock"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for key, (surface, steps, lrs) in SETUPS.items():
        paths = {name: run_optimizer(make, surface, steps=steps) for name, make in factories(lrs).items()}
        print(f"{surface.name}, {steps} steps from {surface.start}:")
        for name, path in paths.items():
            finite = path[np.isfinite(path).all(axis=1)]
            x, y = finite[-1]
            print(f"  {name:<9} lr {lrs[name]:<7g} ends at ({x: .4f}, {y: .4f}), f = {float(surface.value(x, y)):.3g}")
        title = f"{surface.name}: {steps} steps"
        written = [plot_trajectories(paths, surface, OUT / f"trajectories_{key}.png", title=title)]
        if key == GIF_OF:
            written.append(animate_trajectories(paths, surface, OUT / f"trajectories_{key}.gif", title=title))
        print("  wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
