"""Tests of gradient clipping in gradwise/training/trainer.py (``clip_grad_norm``/``clip_grad_value``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import gradwise as gw
from gradwise.data.loader import DataLoader
from gradwise.layers import Linear, ReLU
from gradwise.losses import L2, SoftmaxCrossEntropy
from gradwise.optim import SGD
from gradwise.optim.clip import clip_grad_norm, grad_norm
from gradwise.training import Callback, Trainer


class GradProbe(Callback):
    """After each step: the gradients the optimizer used (step() leaves them in place) and the logs."""

    def __init__(self) -> None:
        super().__init__()
        self.norms: list[float] = []
        self.max_abs: list[float] = []
        self.logs: list[dict[str, Any]] = []

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        params = self.model.parameters()
        self.norms.append(grad_norm(params))
        self.max_abs.append(max(float(np.abs(p.grad).max()) for p in params))
        self.logs.append(dict(logs or {}))


def _model(seed: int = 0) -> gw.Sequential:
    rng = np.random.default_rng(seed)
    return gw.Sequential(Linear(2, 16, rng=rng), ReLU(), Linear(16, 3, rng=rng))


def _loader() -> DataLoader:
    rng = np.random.default_rng(5)
    x = 5.0 * rng.standard_normal((64, 2))  # large inputs: large gradients, so clipping bites
    return DataLoader(x, rng.integers(0, 3, 64), batch_size=16)


def _fit(epochs: int = 2, **options: Any) -> tuple[Trainer, GradProbe]:
    model = _model()
    probe = GradProbe()
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1),
                      callbacks=[probe], progress=False, **options)
    trainer.fit(_loader(), epochs=epochs)
    return trainer, probe


def test_gradients_seen_by_the_optimizer_have_norm_at_most_max_norm() -> None:
    _, probe = _fit(clip_grad_norm=0.5)
    assert len(probe.norms) == 8
    assert all(n <= 0.5 for n in probe.norms)
    pre = [logs["grad_norm"] for logs in probe.logs]
    assert all(p >= n for p, n in zip(pre, probe.norms))  # logged: the norm before clipping
    assert max(pre) > 0.5  # clipping did happen


def test_gradients_seen_by_the_optimizer_are_within_clip_value() -> None:
    _, probe = _fit(clip_grad_value=0.0625)  # exact in float32, the model's dtype
    assert all(m <= 0.0625 for m in probe.max_abs)
    assert max(probe.max_abs) == 0.0625
    assert all("grad_norm" not in logs for logs in probe.logs)


def test_without_clipping_nothing_changes() -> None:
    _, probe = _fit()
    assert max(probe.norms) > 0.5
    assert all(logs.keys() == {"loss", "size"} for logs in probe.logs)


def test_clipping_happens_after_the_penalty_and_before_the_step() -> None:
    penalty = L2(0.5)
    trainer, _ = _fit(epochs=1, clip_grad_norm=0.3, penalty=penalty)
    # The same training by hand, in the documented order.
    model = _model()
    loss, opt = SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1)
    for xb, yb in _loader():
        loss.forward(model.forward(xb), yb)
        opt.zero_grad()
        model.backward(loss.backward())
        penalty.backward(model.parameters())
        clip_grad_norm(model.parameters(), 0.3)
        opt.step()
    for ours, manual in zip(trainer.model.parameters(), model.parameters()):
        np.testing.assert_array_equal(ours.data, manual.data)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"clip_grad_norm": 0.0}, "clip_grad_norm=0.0 must be a number > 0"),
        ({"clip_grad_norm": -1}, "clip_grad_norm=-1"),
        ({"clip_grad_value": "1"}, "clip_grad_value='1'"),
        ({"clip_grad_value": True}, "clip_grad_value=True"),
        ({"clip_grad_norm": 1.0, "clip_grad_value": 1.0}, "not both"),
    ],
)
def test_invalid_clip_arguments(options: dict[str, Any], match: str) -> None:
    model = _model()
    with pytest.raises(ValueError, match=match):
        Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), progress=False, **options)
