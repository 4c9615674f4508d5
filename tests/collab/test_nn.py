"""Tests for gradwise/collab/nn.py: EmbeddingNN (embeddings concatenated into an MLP), gradient check
in float64 and a PyTorch twin laid out as fastai's TabularModel."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rel_err

from gradwise.collab import EmbeddingNN, IdEncoder, emb_size
from gradwise.diagnostics.gradcheck import check_model
from gradwise.losses import MSE


def batch(rng: np.random.Generator, n: int, n_users: int, n_items: int) -> np.ndarray:
    return np.stack([rng.integers(0, n_users, n), rng.integers(0, n_items, n)], axis=1).astype(np.int64)


def test_emb_size_is_fastais_rule() -> None:
    assert emb_size(944) == round(1.6 * 944**0.56) == 74
    assert emb_size(1665) == 102  # fastai on MovieLens by title (1664 titles + #na#)
    assert emb_size(1683) == 103
    assert emb_size(10**9) == 600


@pytest.mark.parametrize("use_bn", [True, False])
def test_gradient_check_float64(rng: np.random.Generator, tol, use_bn: bool) -> None:
    model = EmbeddingNN(6, 8, layers=(7, 5), emb_sizes=(3, 4), use_bn=use_bn, init_std=0.5, rng=rng,
                        dtype=np.float64)
    x = batch(rng, 32, 6, 8)
    report = check_model(model, MSE(), x, rng.uniform(1, 5, 32), max_entries=None)
    assert max(c.rel_error for c in report.checks) < tol.gradcheck, report
    names = {c.name for c in report.checks}
    assert {"u_emb.weight", "i_emb.weight"} <= names and len(names) == len(model.parameters())


def test_layout_follows_fastai(rng: np.random.Generator) -> None:
    model = EmbeddingNN(IdEncoder.fit(np.arange(1, 944)), IdEncoder.fit(np.arange(1, 1683)), layers=[100, 50],
                        ps=[0.1, 0.2], rng=rng)
    kinds = [type(layer).__name__ for layer in model.mlp]
    assert kinds == ["Linear", "ReLU", "BatchNorm1d", "Dropout", "Linear", "ReLU", "BatchNorm1d", "Dropout", "Linear"]
    assert model.mlp[0].in_features == 74 + 103 and model.mlp[0].bias is None
    assert model.forward(batch(rng, 5, 944, 1683)).shape == (5,)
    assert abs(float(model.u_emb.weight.data.std()) - 0.01) < 1e-3
    out = model.predict([1, 5000], [1, 1])
    assert out.shape == (2,) and np.all((out > 0) & (out < 5.5))


@pytest.mark.oracle
def test_matches_torch(rng: np.random.Generator, tol) -> None:
    torch = pytest.importorskip("torch")
    dtype = np.float64
    model = EmbeddingNN(10, 12, layers=(8,), emb_sizes=(4, 5), init_std=0.5, rng=np.random.default_rng(0), dtype=dtype)
    nn = torch.nn

    class Twin(nn.Module):  # fastai's TabularModel(n_cont=0) with LinBnDrop(lin_first=True)
        def __init__(self) -> None:
            super().__init__()
            self.u_emb, self.i_emb = nn.Embedding(10, 4), nn.Embedding(12, 5)
            self.mlp = nn.Sequential(nn.Linear(9, 8, bias=False), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 1))

        def forward(self, x):
            h = torch.cat([self.u_emb(x[:, 0]), self.i_emb(x[:, 1])], dim=1)
            return torch.sigmoid(self.mlp(h)[:, 0]) * 5.5

    twin = Twin().double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items() if not k.endswith("_ids")})
    x = batch(rng, 48, 10, 12)
    y = rng.uniform(1, 5, 48)
    loss = MSE()
    model.zero_grad()
    value = loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    loss_t = nn.functional.mse_loss(twin(torch.from_numpy(x)), torch.from_numpy(y))
    loss_t.backward()
    assert value == pytest.approx(loss_t.item(), rel=tol.loss64)
    grads_t = {k: p.grad.numpy() for k, p in twin.named_parameters()}
    for name, p in model.named_parameters():
        assert rel_err(p.grad, grads_t[name]) < tol.oracle64, name


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="layers"):
        EmbeddingNN(3, 3, layers=[])
    with pytest.raises(ValueError, match="ps has 1 entries for 2 layers"):
        EmbeddingNN(3, 3, layers=[4, 4], ps=[0.1])
    model = EmbeddingNN(3, 3, layers=[4])
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward(np.zeros(2))
