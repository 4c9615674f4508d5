"""Classic 2-D test surfaces and a driver that runs any gradwise optimizer on them.

The math only (no matplotlib): `gradwise.viz.plot_trajectories` and
`gradwise.viz.animate_trajectories` draw the paths, ``examples/compare_optimizers.py`` makes the
familiar "comparing optimizers" pictures, and ``docs/trajectories.md`` explains what they show.

Each surface is a function :math:`f(x, y)` with its gradient, vectorized over arrays of points
(for contour grids) and carrying a plotting window, a start point that makes an informative
picture, and its minimum (or saddle point).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from gradwise.core import Parameter

if TYPE_CHECKING:
    from gradwise.optim.optimizer import Optimizer

__all__ = ["Beale", "IllConditionedBowl", "Rosenbrock", "Saddle", "Surface", "run_optimizer"]

Point = tuple[float, float]


class Surface:
    """A scalar function of two variables with its gradient.

    Attributes
    ----------
    name : str
        Title for plots.
    bounds : ((float, float), (float, float))
        ``((x_min, x_max), (y_min, y_max))``: the plotting window.
    start : (float, float)
        A start point that shows the optimizers' characteristic behaviour.
    minimum : (float, float) or None
        The global minimizer; None when the surface is unbounded below.
    saddle_point : (float, float) or None
        A saddle point worth marking, if any.
    """

    name: str = ""
    bounds: tuple[Point, Point] = ((-1.0, 1.0), (-1.0, 1.0))
    start: Point = (0.5, 0.5)
    minimum: Point | None = None
    saddle_point: Point | None = None

    def value(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """f(x, y), elementwise over broadcast arrays of coordinates."""
        raise NotImplementedError(f"{type(self).__name__} does not define value")

    def grad(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(df/dx, df/dy), elementwise over broadcast arrays of coordinates."""
        raise NotImplementedError(f"{type(self).__name__} does not define grad")

    def __call__(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        return self.value(x, y)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class IllConditionedBowl(Surface):
    r"""The quadratic :math:`f = \tfrac12 (a x^2 + b y^2)`, shallow along x and steep along y.

    With :math:`a \ll b` (the default condition number :math:`b/a` is 20) the level sets are
    long, flat ellipses: a narrow valley. Gradient descent with rate :math:`\eta` multiplies x by
    :math:`1 - \eta a` and y by :math:`1 - \eta b` each step, so a rate large enough to make
    progress along the valley floor (x) makes y zig-zag from wall to wall (:math:`\eta` near
    :math:`2/b`), and a rate small enough to stop the zig-zag crawls along x. Momentum and
    per-coordinate scaling (Adagrad, RMSprop, Adam) are the two cures.

    Parameters
    ----------
    a, b : float
        Curvatures along x and y, > 0. Any values work; the defaults put the steep direction
        vertical so that the valley lies along the plot's long side.
    """

    minimum = (0.0, 0.0)

    def __init__(self, a: float = 0.05, b: float = 1.0) -> None:
        if not (a > 0 and b > 0):
            raise ValueError(f"IllConditionedBowl: {a=} and {b=} must be > 0")
        self.a = float(a)
        self.b = float(b)
        self.name = f"ill-conditioned bowl 0.5*({self.a:g} x^2 + {self.b:g} y^2)"
        # Start on the level set through (x0, 0) rotated a little towards the steep wall, in a
        # window whose shape follows the level sets' aspect ratio sqrt(a / b).
        x0 = 5.0
        y0 = round(x0 * float(np.sqrt(0.25 * self.a / self.b)), 2)
        self.start = (-x0, y0)
        self.bounds = ((-1.12 * x0, 0.32 * x0), (-2.2 * y0, 2.2 * y0))

    def value(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        return 0.5 * (self.a * np.square(x) + self.b * np.square(y))

    def grad(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        return self.a * np.asarray(x), self.b * np.asarray(y)

    def __repr__(self) -> str:
        return f"IllConditionedBowl(a={self.a:g}, b={self.b:g})"


class Saddle(Surface):
    r"""The saddle :math:`f = x^2 - y^2`, unbounded below.

    Started just off the ridge (:math:`y_0 \approx 0`), plain gradient descent slides to the
    saddle point and escapes only as fast as :math:`y` grows, by a factor :math:`1 + 2\eta`
    per step; methods that rescale each coordinate (Adagrad, RMSprop, Adam) amplify the tiny
    y-gradient and leave almost at once.
    """

    name = "saddle x^2 - y^2"
    bounds = ((-1.5, 1.5), (-1.5, 1.5))
    start = (1.4, 1e-3)
    saddle_point = (0.0, 0.0)

    def value(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        return np.square(x) - np.square(y)

    def grad(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        return 2 * np.asarray(x), -2 * np.asarray(y)


class Rosenbrock(Surface):
    r"""Rosenbrock's banana :math:`f = (a - x)^2 + b (y - x^2)^2`, minimum 0 at :math:`(a, a^2)`.

    A curved, flat-bottomed valley with steep walls: finding the valley is easy, following it to
    the minimum is slow.

    .. math::

        \partial_x f = -2(a - x) - 4 b x (y - x^2), \qquad \partial_y f = 2 b (y - x^2)

    Parameters
    ----------
    a, b : float
        The classic values are 1 and 100 (Rosenbrock, 1960).
    """

    def __init__(self, a: float = 1.0, b: float = 100.0) -> None:
        self.a = float(a)
        self.b = float(b)
        self.name = "Rosenbrock" if (self.a, self.b) == (1.0, 100.0) else f"Rosenbrock(a={a:g}, b={b:g})"
        self.minimum = (self.a, self.a**2)
        self.bounds = ((self.a - 3.0, self.a + 1.0), (self.a**2 - 2.0, self.a**2 + 2.0))
        # Rosenbrock's own start (-1.2, 1) for the classic parameters.
        self.start = (round(self.a - 2.2, 12), self.a**2)

    def value(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        return np.square(self.a - x) + self.b * np.square(y - np.square(x))

    def grad(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x)
        r = y - np.square(x)
        return -2 * (self.a - x) - 4 * self.b * x * r, 2 * self.b * r

    def __repr__(self) -> str:
        return f"Rosenbrock(a={self.a:g}, b={self.b:g})"


class Beale(Surface):
    r"""Beale's function, minimum 0 at :math:`(3, 0.5)`:

    .. math::

        f = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2

    Flat plateaus and sharp ridges spanning many orders of magnitude. With
    :math:`t_k = c_k - x + x y^k` (:math:`c = 1.5, 2.25, 2.625`):

    .. math::

        \partial_x f = \sum_k 2 t_k (y^k - 1), \qquad \partial_y f = \sum_k 2 t_k\, k x y^{k-1}
    """

    name = "Beale"
    bounds = ((-4.5, 4.5), (-4.5, 4.5))
    start = (1.0, 1.5)
    minimum = (3.0, 0.5)
    _C = (1.5, 2.25, 2.625)

    def value(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        x, y = np.asarray(x), np.asarray(y)
        return sum(np.square(c - x + x * y**k) for k, c in enumerate(self._C, start=1))

    def grad(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        x, y = np.asarray(x), np.asarray(y)
        gx = np.zeros(np.broadcast(x, y).shape)
        gy = np.zeros_like(gx)
        for k, c in enumerate(self._C, start=1):
            t = c - x + x * y**k
            gx = gx + 2 * t * (y**k - 1)
            gy = gy + 2 * t * k * x * y ** (k - 1)
        return gx, gy


def run_optimizer(
    optimizer_factory: Callable[[list[Parameter]], Optimizer],
    surface: Surface,
    start: Sequence[float] | np.ndarray | None = None,
    steps: int = 100,
) -> np.ndarray:
    """Drive an optimizer on a surface and return the path it takes.

    Parameters
    ----------
    optimizer_factory : callable
        ``factory([param]) -> Optimizer``, e.g. ``lambda ps: SGD(ps, lr=0.1, momentum=0.9)``.
    surface : Surface
    start : (2,) array_like, optional
        Initial point; ``surface.start`` when None.
    steps : int
        Number of optimizer steps, >= 0.

    Returns
    -------
    (steps + 1, 2) float64
        The point before each step, then the final point. If the iterate leaves the floating-point
        range (a rate that diverges), the remaining rows are NaN.

    Notes
    -----
    The optimizer sees a single float64 `Parameter` of shape (2,) named ``"xy"`` whose gradient
    is set to the surface's exact gradient before each step (deterministic, no noise).
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"run_optimizer: {steps=} must be an integer >= 0")
    xy = np.array(surface.start if start is None else start, dtype=np.float64)
    if xy.shape != (2,):
        raise ValueError(f"run_optimizer: start must have shape (2,), got {xy.shape}")
    p = Parameter(xy, name="xy")
    optimizer = optimizer_factory([p])
    path = np.full((steps + 1, 2), np.nan)
    path[0] = p.data
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, steps + 1):
            gx, gy = surface.grad(p.data[0], p.data[1])
            p.grad[0] = gx
            p.grad[1] = gy
            optimizer.step()
            if not np.isfinite(p.data).all():
                break
            path[t] = p.data
    return path
