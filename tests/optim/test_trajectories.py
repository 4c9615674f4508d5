"""Tests of gradwise/optim/trajectories.py: the surfaces' gradients, their minima, and the driver."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gradwise.optim import SGD, Adam
from gradwise.optim.trajectories import (
    Beale,
    IllConditionedBowl,
    Rosenbrock,
    Saddle,
    Surface,
    run_optimizer,
)

SURFACES = [
    IllConditionedBowl(),
    IllConditionedBowl(a=2.0, b=0.1),
    Saddle(),
    Rosenbrock(),
    Rosenbrock(a=0.5, b=10.0),
    Beale(),
]
IDS = [repr(s) for s in SURFACES]


@pytest.mark.parametrize("surface", SURFACES, ids=IDS)
def test_gradient_matches_central_differences(surface: Surface, rng: np.random.Generator, tol) -> None:
    (x0, x1), (y0, y1) = surface.bounds
    pts = np.column_stack([rng.uniform(x0, x1, 20), rng.uniform(y0, y1, 20)])
    h = 1e-6
    x, y = pts[:, 0], pts[:, 1]
    gx, gy = surface.grad(x, y)
    num_x = (surface.value(x + h, y) - surface.value(x - h, y)) / (2 * h)
    num_y = (surface.value(x, y + h) - surface.value(x, y - h)) / (2 * h)
    for analytic, numeric in ((gx, num_x), (gy, num_y)):
        err = np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), 1.0)
        assert err.max() < tol.gradcheck


@pytest.mark.parametrize("surface", SURFACES, ids=IDS)
def test_stationary_points(surface: Surface) -> None:
    point = surface.minimum if surface.minimum is not None else surface.saddle_point
    assert point is not None
    assert np.allclose(surface.grad(*point), 0.0, atol=1e-12)
    if surface.minimum is not None:
        assert float(surface.value(*surface.minimum)) == pytest.approx(0.0, abs=1e-12)
        (x0, x1), (y0, y1) = surface.bounds
        gx, gy = np.meshgrid(np.linspace(x0, x1, 101), np.linspace(y0, y1, 101))
        assert surface.value(gx, gy).min() >= float(surface.value(*surface.minimum))


@pytest.mark.parametrize("surface", SURFACES, ids=IDS)
def test_value_and_grad_are_vectorized(surface: Surface) -> None:
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    y = np.linspace(-0.5, 0.5, 12).reshape(3, 4)
    value = surface.value(x, y)
    gx, gy = surface.grad(x, y)
    assert value.shape == gx.shape == gy.shape == (3, 4)
    assert value[1, 2] == pytest.approx(float(surface(x[1, 2], y[1, 2])), rel=1e-15)
    (sx0, sx1), (sy0, sy1) = surface.bounds
    assert sx0 <= surface.start[0] <= sx1 and sy0 <= surface.start[1] <= sy1


def test_gradient_descent_on_the_bowl_follows_the_closed_form() -> None:
    # Each coordinate is multiplied by (1 - lr * curvature) per step: x_t = x_0 (1 - lr a)^t.
    bowl = IllConditionedBowl(a=0.05, b=1.0)
    lr, steps = 1.8, 300
    path = run_optimizer(lambda ps: SGD(ps, lr=lr), bowl, steps=steps)
    t = np.arange(steps + 1)
    expected = np.column_stack([bowl.start[0] * (1 - lr * bowl.a) ** t, bowl.start[1] * (1 - lr * bowl.b) ** t])
    np.testing.assert_allclose(path, expected, rtol=1e-11, atol=1e-300)
    assert np.linalg.norm(path[-1]) < 1e-10  # converged
    assert np.all(np.diff(np.sign(path[:20, 1])) != 0)  # the steep coordinate zig-zags


def test_momentum_beats_plain_gradient_descent_on_the_bowl() -> None:
    # Each at its best constant rate for a = 0.05, b = 1 (kappa = 20): GD contracts by
    # (kappa - 1) / (kappa + 1) = 0.90 per step, heavy ball by about (sqrt kappa - 1) / (sqrt kappa + 1) = 0.63.
    bowl = IllConditionedBowl(a=0.05, b=1.0)
    gd = run_optimizer(lambda ps: SGD(ps, lr=2 / (bowl.a + bowl.b)), bowl, steps=400)
    mu = ((np.sqrt(20) - 1) / (np.sqrt(20) + 1)) ** 2
    lr = 4 / (np.sqrt(bowl.a) + np.sqrt(bowl.b)) ** 2
    hb = run_optimizer(lambda ps: SGD(ps, lr=lr, momentum=mu), bowl, steps=200)

    def steps_to(path: np.ndarray, eps: float = 1e-8) -> int:
        reached = np.linalg.norm(path, axis=1) < eps
        assert reached.any()
        return int(np.argmax(reached))

    assert steps_to(hb) < 0.5 * steps_to(gd)


def test_adam_escapes_the_saddle_faster_than_sgd() -> None:
    saddle = Saddle()
    sgd = run_optimizer(lambda ps: SGD(ps, lr=0.01), saddle, steps=100)
    adam = run_optimizer(lambda ps: Adam(ps, lr=0.03), saddle, steps=100)
    assert abs(sgd[-1, 1]) < 0.1
    assert abs(adam[-1, 1]) > 1.0


def test_run_optimizer_shape_start_and_defaults() -> None:
    path = run_optimizer(lambda ps: Adam(ps, lr=0.05), Rosenbrock(), start=(0.5, -0.5), steps=25)
    assert path.shape == (26, 2) and path.dtype == np.float64
    assert path[0].tolist() == [0.5, -0.5] and np.isfinite(path).all()
    assert run_optimizer(lambda ps: SGD(ps, lr=0.1), Beale(), steps=0).tolist() == [list(Beale.start)]


def test_run_optimizer_fills_a_divergent_run_with_nan_quietly() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow RuntimeWarning escapes
        path = run_optimizer(lambda ps: SGD(ps, lr=1e3), IllConditionedBowl(), steps=200)
    finite = np.isfinite(path).all(axis=1)
    assert finite[0] and not finite[-1]
    assert np.all(finite[: np.argmin(finite)]) and not finite[np.argmin(finite):].any()


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"steps": -1}, "steps"), ({"steps": 1.5}, "steps"), ({"start": (1.0, 2.0, 3.0)}, "start")]
)
def test_run_optimizer_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run_optimizer(lambda ps: SGD(ps, lr=0.1), Saddle(), **kwargs)


def test_bowl_rejects_non_positive_curvature() -> None:
    with pytest.raises(ValueError, match="a="):
        IllConditionedBowl(a=0.0)
