"""Tests for gradwise/collab/dot.py: EmbeddingDotBias's forward, hand-derived backward (gradient
check in float64, both scatters), a PyTorch twin, raw-id prediction and the ids saved with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import rel_err

import gradwise as gw
from gradwise.collab import EmbeddingDotBias, IdEncoder
from gradwise.collab._scatter import numba_available
from gradwise.diagnostics.gradcheck import check_model
from gradwise.losses import MSE

FUSED = [False] + ([True] if numba_available() else [])


def batch(rng: np.random.Generator, n: int, n_users: int, n_items: int) -> np.ndarray:
    """Pairs with repeated users and items (the scatter must sum them)."""
    return np.stack([rng.integers(0, n_users, n), rng.integers(0, n_items, n)], axis=1).astype(np.int64)


@pytest.mark.parametrize("fused", FUSED)
@pytest.mark.parametrize("y_range", [(0.0, 5.5), None])
def test_gradient_check_float64(rng: np.random.Generator, tol, fused: bool, y_range) -> None:
    model = EmbeddingDotBias(7, 9, 4, y_range, init_std=0.5, fused=fused, rng=rng, dtype=np.float64)
    x = batch(rng, 40, 7, 9)
    y = rng.uniform(1, 5, 40)
    report = check_model(model, MSE(), x, y, max_entries=None)
    assert report.passed, report
    assert max(c.rel_error for c in report.checks) < tol.gradcheck
    assert {c.name for c in report.checks} == {"u_weight", "i_weight", "u_bias", "i_bias"}


def test_forward_is_the_formula(rng: np.random.Generator) -> None:
    model = EmbeddingDotBias(5, 6, 3, (1.0, 5.0), init_std=0.3, rng=rng, dtype=np.float64)
    x = batch(rng, 10, 5, 6)
    u, i = x[:, 0], x[:, 1]
    r = (model.u_weight.data[u] * model.i_weight.data[i]).sum(1) + model.u_bias.data[u] + model.i_bias.data[i]
    np.testing.assert_allclose(model.forward(x), 1 + 4 / (1 + np.exp(-r)), rtol=1e-13)
    assert model.forward(x).shape == (10,)
    big = EmbeddingDotBias(3, 3, 2, (0.0, 5.5), rng=rng, dtype=np.float64)
    big.u_bias.data[:] = [800, -800, 0]  # the sigmoid range neither overflows nor leaves its range
    out = big.forward(np.array([[0, 0], [1, 0]]))
    assert np.all(np.isfinite(out)) and out[0] == pytest.approx(5.5) and out[1] == pytest.approx(0.0)


@pytest.mark.parametrize("fused", FUSED)
def test_fused_and_numpy_scatters_agree(rng: np.random.Generator, fused: bool) -> None:
    a = EmbeddingDotBias(30, 40, 8, fused=fused, rng=np.random.default_rng(1))
    b = EmbeddingDotBias(30, 40, 8, fused=False, rng=np.random.default_rng(1))
    x = batch(rng, 64, 30, 40)
    g = rng.standard_normal(64).astype(np.float32)
    for m in (a, b):
        m.zero_grad()
        m.forward(x)
        m.backward(g)
        m.forward(x[:10])  # a second batch accumulates
        m.backward(g[:10])
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa.grad, pb.grad, rtol=1e-5, atol=1e-7)


def test_frozen_table_gets_no_gradient(rng: np.random.Generator) -> None:
    for fused in FUSED:
        model = EmbeddingDotBias(5, 5, 2, fused=fused, rng=rng)
        model.i_weight.requires_grad = False
        model.zero_grad()
        model.forward(batch(rng, 8, 5, 5))
        model.backward(np.ones(8, dtype=np.float32))
        assert not model.i_weight.grad.any() and model.u_weight.grad.any()


def torch_twin(torch, model: EmbeddingDotBias):
    """fastai's EmbeddingDotBias written with plain tensors (the fastbook's DotProductBias)."""

    class DotProductBias(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for name in ("u_weight", "i_weight", "u_bias", "i_bias"):
                setattr(self, name, torch.nn.Parameter(torch.from_numpy(getattr(model, name).data.copy())))

        def forward(self, x):
            users, items = x[:, 0], x[:, 1]
            res = (self.u_weight[users] * self.i_weight[items]).sum(1) + self.u_bias[users] + self.i_bias[items]
            lo, hi = model.y_range
            return torch.sigmoid(res) * (hi - lo) + lo  # fastai's sigmoid_range

    return DotProductBias()


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch(rng: np.random.Generator, tol, dtype) -> None:
    torch = pytest.importorskip("torch")
    for fused in FUSED:
        model = EmbeddingDotBias(20, 30, 6, init_std=0.3, fused=fused, rng=np.random.default_rng(3), dtype=dtype)
        twin = torch_twin(torch, model)
        x = batch(rng, 64, 20, 30)
        y = rng.uniform(1, 5, 64).astype(dtype)
        model.zero_grad()
        loss = MSE()
        value = loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        out_t = twin(torch.from_numpy(x))
        loss_t = torch.nn.functional.mse_loss(out_t, torch.from_numpy(y))
        loss_t.backward()
        assert value == pytest.approx(loss_t.item(), rel=tol.loss_for(dtype))
        np.testing.assert_allclose(model.forward(x), out_t.detach().numpy(), rtol=tol.oracle_for(dtype) * 10)
        for name, p in model.named_parameters():
            assert rel_err(p.grad, getattr(twin, name).grad.numpy()) < tol.oracle_for(dtype), name


def test_predict_on_raw_ids_and_unknowns(rng: np.random.Generator) -> None:
    users, items = IdEncoder.fit([100, 200, 300]), IdEncoder.fit([7, 8])
    model = EmbeddingDotBias(users, items, 3, rng=rng, dtype=np.float64)
    assert (model.n_users, model.n_items) == (4, 3)
    pred = model.predict([200, 999], [8, 8])
    np.testing.assert_allclose(pred, model.forward(np.array([[2, 2], [0, 2]])))
    assert model.encode([300], [7]).tolist() == [[3, 1]]
    assert model.training  # predict restores the mode
    with pytest.raises(ValueError, match="2 user ids but 1 item ids"):
        model.predict([1, 2], [7])


def test_ids_are_saved_with_the_weights(tmp_path: Path, rng: np.random.Generator) -> None:
    model = EmbeddingDotBias(IdEncoder.fit([5, 9, 11]), IdEncoder.fit([2, 4]), 3, rng=rng)
    path = gw.io.save(model, tmp_path / "collab.safetensors")
    fresh = EmbeddingDotBias(4, 3, 3, rng=np.random.default_rng(99))  # ids 1..3 and 1..2 until loaded
    assert fresh.user_encoder.classes.tolist() == [1, 2, 3]
    gw.io.load(path, fresh)
    assert fresh.user_encoder.classes.tolist() == [5, 9, 11] and fresh.item_encoder.classes.tolist() == [2, 4]
    np.testing.assert_array_equal(fresh.predict([9, 11], [4, 2]), model.predict([9, 11], [4, 2]))
    assert fresh.user_ids.dtype == np.int64


def test_bad_arguments_and_inputs(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="n_factors=0"):
        EmbeddingDotBias(3, 3, 0)
    with pytest.raises(ValueError, match="users=1"):
        EmbeddingDotBias(1, 3)
    with pytest.raises(ValueError, match="low < high"):
        EmbeddingDotBias(3, 3, y_range=(5, 1))
    with pytest.raises(ValueError, match="init_std"):
        EmbeddingDotBias(3, 3, init_std=0)
    model = EmbeddingDotBias(3, 4, 2, rng=rng)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        model.forward(np.zeros((5, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="integer rows"):
        model.forward(np.zeros((5, 2)))
    with pytest.raises(IndexError, match="item row 4 at input row 1 is out of range 0..3"):
        model.forward(np.array([[0, 0], [1, 4]]))
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward(np.zeros(2, dtype=np.float32))
    model.forward(np.array([[0, 0], [1, 1]]))
    with pytest.raises(ValueError, match="grad_out of shape"):
        model.backward(np.zeros((2, 1), dtype=np.float32))


def test_summary_and_repr(rng: np.random.Generator) -> None:
    model = EmbeddingDotBias(10, 20, 5, rng=rng)
    assert model.num_parameters() == 10 * 5 + 20 * 5 + 10 + 20
    table = str(model.summary((4, 2)))
    assert "EmbeddingDotBias" in table and "(4,)" in table
    assert repr(model) == "EmbeddingDotBias(users=10, items=20, n_factors=5, y_range=(0, 5.5))"
