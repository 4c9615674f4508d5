"""Frozen parameters (requires_grad False) get no gradient work; the input gradient is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from gradwise.layers import GRU, LSTM, BatchNorm1d, Conv1d, LayerNorm, Linear


def _layers():
    return [
        (lambda: Linear(6, 4, rng=np.random.default_rng(0)), (5, 6)),
        (lambda: BatchNorm1d(6), (5, 6)),
        (lambda: LayerNorm(6), (5, 6)),
        (lambda: Conv1d(2, 3, 3, rng=np.random.default_rng(0)), (4, 2, 9)),
        (lambda: GRU(6, 3, bidirectional=True, rng=np.random.default_rng(0)), (7, 2, 6)),
        (lambda: LSTM(6, 3, num_layers=2, rng=np.random.default_rng(0)), (7, 2, 6)),
    ]


@pytest.mark.parametrize(("make", "shape"), _layers(), ids=lambda v: getattr(v, "__name__", str(v)))
def test_frozen_layer_leaves_grads_at_zero(make, shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    trained = make()
    g = np.random.default_rng(2).standard_normal(trained.forward(x).shape).astype(np.float32)
    expected = trained.backward(g)
    frozen = make().freeze()
    frozen.forward(x)
    got = frozen.backward(g)
    assert np.array_equal(got, expected)
    assert all(not p.grad.any() for p in frozen.parameters())
    assert any(p.grad.any() for p in trained.parameters())
