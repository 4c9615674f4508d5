"""The two textbook forms of SGD momentum, written out, against `SGD` (docs/optimizers.md, "Two
textbook forms of momentum").

- Velocity form (Sutskever et al., 2013; CS231n): v = mu v - lr g; w += v.
  Equal to SGD(momentum=mu, dampening=0) for a constant learning rate (v = -lr b).
- Exponentially weighted form (Ng's deep-learning course): v = beta v + (1 - beta) g; w -= lr v.
  Equal to SGD(momentum=beta, dampening=beta) when the average starts at the first gradient; the
  course's start v_0 = 0 differs from it by beta^t g_1 in the buffer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from helpers import rel_err

from gradwise.core import Parameter
from gradwise.optim import SGD

STEPS = 100


def run_both(
    make_sgd: Callable[[list[Parameter]], SGD],
    hand_step: Callable[[np.ndarray, np.ndarray, dict, int], np.ndarray],
    steps: int = STEPS,
) -> tuple[np.ndarray, np.ndarray]:
    """`SGD` and a hand-written update on the noisy quadratic 0.05 |w|^2 + <noise_t, w>, each with
    the gradient at its own parameters; returns both final parameter vectors.

    ``hand_step(w, g, state, t)`` returns the new w; `state` is a dict it may keep values in;
    `t` counts from 1.
    """
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal(6)
    p = Parameter(w0.copy())
    opt = make_sgd([p])
    w, state = w0.copy(), {}
    for t in range(1, steps + 1):
        noise = rng.standard_normal(6)
        p.grad[...] = 0.1 * p.data + noise
        opt.step()
        w = hand_step(w, 0.1 * w + noise, state, t)
    return p.data, w


def velocity_step(lr: Callable[[int], float], mu: float):
    def step(w: np.ndarray, g: np.ndarray, state: dict, t: int) -> np.ndarray:
        # v = mu v - lr g; w += v   (v_0 = 0)
        state["v"] = mu * state.get("v", 0.0) - lr(t - 1) * g
        return w + state["v"]
    return step


def ewa_step(lr: float, beta: float, start_at_first_gradient: bool):
    def step(w: np.ndarray, g: np.ndarray, state: dict, t: int) -> np.ndarray:
        if t == 1 and start_at_first_gradient:
            state["v"] = g.copy()
        else:
            # v = beta v + (1 - beta) g; w -= lr v   (v_0 = 0 in the course's form)
            state["v"] = beta * state.get("v", 0.0) + (1 - beta) * g
        return w - lr * state["v"]
    return step


def test_velocity_form_is_torch_momentum_for_a_constant_lr(tol) -> None:
    ours, hand = run_both(lambda ps: SGD(ps, lr=0.05, momentum=0.9),
                          velocity_step(lambda step: 0.05, 0.9))
    assert rel_err(ours, hand) < tol.optim_golden


def test_velocity_form_differs_once_the_lr_changes(tol) -> None:
    # With a schedule the velocity keeps the old rates inside it, while SGD applies the new rate
    # to the whole buffer; the two trajectories drift apart.
    def schedule(step: int) -> float:
        return 0.05 * 0.95**step

    ours, hand = run_both(lambda ps: SGD(ps, lr=schedule, momentum=0.9),
                          velocity_step(schedule, 0.9))
    assert rel_err(ours, hand) > 1e3 * tol.optim_golden


def test_ewa_form_is_torch_dampening_when_started_at_the_first_gradient(tol) -> None:
    ours, hand = run_both(lambda ps: SGD(ps, lr=0.05, momentum=0.9, dampening=0.9),
                          ewa_step(0.05, 0.9, start_at_first_gradient=True))
    assert rel_err(ours, hand) < tol.optim_golden


def test_ewa_form_from_zero_lags_by_beta_to_the_t_times_g1(tol) -> None:
    # On a fixed gradient sequence (no feedback): b_t - v_t = beta^t g_1 for the buffers, and the
    # parameters differ by lr g_1 (beta + ... + beta^t).
    beta, lr = 0.9, 0.05
    rng = np.random.default_rng(4)
    grads = rng.standard_normal((30, 4))
    p = Parameter(np.zeros(4))
    opt = SGD([p], lr=lr, momentum=beta, dampening=beta)
    w, v = np.zeros(4), np.zeros(4)
    for t, g in enumerate(grads, start=1):
        p.grad[...] = g
        opt.step()
        v = beta * v + (1 - beta) * g
        w = w - lr * v
        np.testing.assert_allclose(opt.state[p]["momentum_buffer"] - v, beta**t * grads[0],
                                   rtol=tol.optim_golden)
    lag = lr * grads[0] * sum(beta**s for s in range(1, len(grads) + 1))
    np.testing.assert_allclose(w - p.data, lag, rtol=tol.optim_golden)
