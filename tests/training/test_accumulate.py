"""Gradient accumulation in gradwise/training/trainer.py (`Trainer(accumulate=k)`).

k batches of size b, accumulated, must update the weights as one batch of k * b samples does,
for a mean-reduced loss (float64, to rounding: `tol.optim_oracle`, the tolerance of optimizer
trajectories) and for a sum-reduced one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import gradwise as gw
from gradwise.data import make_spiral
from gradwise.data.loader import DataLoader
from gradwise.layers import Linear, Tanh
from gradwise.losses import L2, MSE, SoftmaxCrossEntropy
from gradwise.optim import SGD, Adam
from gradwise.training import Callback, Trainer

X, Y = make_spiral(40, 3, 0.3, rng=np.random.default_rng(2))  # 120 samples


def _model() -> gw.Sequential:
    rng = np.random.default_rng(4)
    return gw.Sequential(Linear(2, 12, rng=rng), Tanh(), Linear(12, 3, rng=rng)).astype(np.float64)


def _fit(batch_size: int, accumulate: int, optimizer: Any, epochs: int = 2, loss: Any = None, **kwargs: Any) -> Trainer:
    model = _model()
    trainer = Trainer(
        model, loss or SoftmaxCrossEntropy(), optimizer(model.parameters()), progress=False,
        accumulate=accumulate, **kwargs,
    )
    loader = DataLoader(X, Y, batch_size=batch_size, shuffle=True, rng=np.random.default_rng(9), dtype=np.float64)
    trainer.fit(loader, epochs=epochs)
    return trainer


def _rel(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    num = np.sqrt(sum(float(np.sum((a[k] - b[k]) ** 2)) for k in a))
    return num / np.sqrt(sum(float(np.sum(b[k] ** 2)) for k in b))


OPTIMIZERS = {
    "sgd-momentum": lambda p: SGD(p, lr=0.1, momentum=0.9),
    "adam": lambda p: Adam(p, lr=1e-2),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize(
    "extra", [{}, {"penalty": L2(1e-2)}, {"clip_grad_norm": 0.05}], ids=["plain", "penalty", "clip-norm"]
)
def test_accumulating_4_batches_of_8_equals_batches_of_32(name: str, extra: dict[str, Any], tol) -> None:
    """120 samples: 15 batches of 8 in groups of 4, the last of 3 (24 samples), as 4 batches of 32."""
    big = _fit(32, 1, OPTIMIZERS[name], **extra)
    small = _fit(8, 4, OPTIMIZERS[name], **extra)
    assert _rel(small.model.state_dict(), big.model.state_dict()) < tol.optim_oracle
    assert small.optimizer.step_count == big.optimizer.step_count == small.global_step == 2 * 4
    assert len(small.history.batch_loss) == 2 * 15  # the history still counts batches
    assert small.history.steps == [4, 8]
    # The epoch loss is the same sample-weighted mean whatever the batching (before each update).
    assert small.history["loss"][0] == pytest.approx(big.history["loss"][0], rel=tol.loss64)


def test_sum_reduced_losses_are_summed_not_averaged(tol) -> None:
    targets = np.eye(3)[Y]
    big_model, small_model = _model(), _model()
    for model, bs, k in ((big_model, 30, 1), (small_model, 10, 3)):
        trainer = Trainer(model, MSE(reduction="sum"), SGD(model.parameters(), lr=1e-3), progress=False, accumulate=k)
        trainer.fit(DataLoader(X, targets, batch_size=bs, dtype=np.float64), epochs=2)
    assert _rel(small_model.state_dict(), big_model.state_dict()) < tol.optim_oracle


class Calls(Callback):
    def __init__(self) -> None:
        super().__init__()
        self.batch_ends: list[tuple[int, int]] = []

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        assert self.trainer is not None and logs is not None
        self.batch_ends.append((batch, self.trainer.global_step))


def test_batch_hooks_run_per_batch_and_updates_every_k() -> None:
    calls = Calls()
    model = _model()
    opt = SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, callbacks=[calls], progress=False, accumulate=3)
    trainer.fit(DataLoader(X, Y, batch_size=30, dtype=np.float64), epochs=1)  # 4 batches: groups of 3 and 1
    assert calls.batch_ends == [(0, 0), (1, 0), (2, 1), (3, 2)]


def test_stopping_mid_group_waits_for_the_update() -> None:
    class StopAt(Callback):
        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if batch == 4:
                self.trainer.stop_training = True  # type: ignore[union-attr]

    model = _model()
    opt = SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, callbacks=[StopAt()], progress=False, accumulate=3)
    trainer.fit(DataLoader(X, Y, batch_size=10, dtype=np.float64), epochs=3)
    assert len(trainer.history.batch_loss) == 6 and trainer.global_step == 2 and trainer.epoch == 1


class Batches:
    """An iterable of batches without len(): the last group is only known when it ends."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(self.n):
            yield X[i * 10 : (i + 1) * 10], Y[i * 10 : (i + 1) * 10]


def test_a_loader_without_len_applies_its_last_partial_group(tol) -> None:
    model, ref_model = _model(), _model()
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), progress=False, accumulate=2)
    trainer.fit(Batches(5), epochs=1)
    assert trainer.global_step == 3 and trainer.optimizer.step_count == 3
    ref = Trainer(ref_model, SoftmaxCrossEntropy(), SGD(ref_model.parameters(), lr=0.1), progress=False)
    ref.fit(DataLoader(X[:50], Y[:50], batch_size=20, dtype=np.float64), epochs=1)  # 20, 20, 10
    assert _rel(model.state_dict(), ref_model.state_dict()) < tol.optim_oracle


def test_accumulate_1_is_the_plain_loop_bit_for_bit() -> None:
    a = _fit(16, 1, OPTIMIZERS["adam"])
    model = _model()
    opt = Adam(model.parameters(), lr=1e-2)
    loss = SoftmaxCrossEntropy()
    loader = DataLoader(X, Y, batch_size=16, shuffle=True, rng=np.random.default_rng(9), dtype=np.float64)
    for _ in range(2):
        for xb, yb in loader:
            loss.forward(model.forward(xb), yb)
            opt.zero_grad()
            model.backward(loss.backward())
            opt.step()
    assert all(np.array_equal(v, a.model.state_dict()[k]) for k, v in model.state_dict().items())
