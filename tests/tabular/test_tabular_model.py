"""`gradwise.tabular.model`: fastai's TabularModel layout from gradwise layers; gradients and a torch oracle."""

from __future__ import annotations

import numpy as np
import pytest

from gradwise.core import Sequential
from gradwise.diagnostics import check_model
from gradwise.layers import BatchNorm1d, Dropout, Embedding, Linear, Parallel, ReLU
from gradwise.losses import SoftmaxCrossEntropy
from gradwise.tabular.model import Identity, NoFeatures, SplitColumns, emb_sz_rule, embedding_sizes, tabular_model

CARDS = [4, 9, 3]


def inputs(rng, n=16, cards=CARDS, n_cont=2):
    x_cat = (
        np.stack([rng.integers(0, c, n) for c in cards], axis=1).astype(np.int64)
        if cards
        else np.zeros((n, 0), np.int64)
    )
    return x_cat, rng.standard_normal((n, n_cont)).astype(np.float32)


@pytest.mark.parametrize(("n", "size"), [(2, 2), (3, 3), (9, 5), (17, 8), (42, 13), (100, 21), (10**6, 600)])
def test_emb_sz_rule_is_fastais(n, size):
    assert emb_sz_rule(n) == size == min(600, round(1.6 * n**0.56))


def test_embedding_sizes_take_overrides_by_name():
    assert embedding_sizes([9, 42], ["a", "b"], {"b": 4}) == [5, 4]
    with pytest.raises(ValueError, match="no categorical column 'c'"):
        embedding_sizes([9], ["a"], {"c": 3})
    with pytest.raises(ValueError, match="positive integer"):
        embedding_sizes([9], ["a"], {"a": 0})


def test_the_layout_is_fastais_linear_relu_batchnorm_dropout():
    model = tabular_model(CARDS, 2, 3, [8, 6], dropout=[0.1, 0.2], emb_dropout=0.05, rng=np.random.default_rng(0))
    front, block1, block2, head = model.children()
    assert isinstance(front, Parallel)
    emb_branch, cont_branch = front.children()
    split, embeds, emb_drop = emb_branch.children()
    assert isinstance(split, SplitColumns) and isinstance(emb_drop, Dropout) and emb_drop.p == 0.05
    assert [(e.num_embeddings, e.embedding_dim) for e in embeds.children()] == [(4, 3), (9, 5), (3, 3)]
    assert all(isinstance(e, Embedding) for e in embeds.children())
    assert isinstance(cont_branch, BatchNorm1d)
    for block, (n_in, h, p) in zip((block1, block2), ((11 + 2, 8, 0.1), (8, 6, 0.2))):
        lin, act, bn, drop = block.children()
        assert isinstance(lin, Linear) and lin.bias is None and lin.weight.shape == (h, n_in)
        assert isinstance(act, ReLU) and isinstance(bn, BatchNorm1d) and isinstance(drop, Dropout) and drop.p == p
        assert np.all(bn.bias.data == np.float32(1e-3))
    assert isinstance(head, Linear) and head.bias is not None and head.out_features == 3
    out = model(inputs(np.random.default_rng(1)))
    assert out.shape == (16, 3) and out.dtype == np.float32


def test_options_without_batch_norm_or_dropout_and_with_bn_final():
    model = tabular_model(CARDS, 2, 2, [5], use_bn=False, bn_cont=False, bn_final=True)
    front, block, head = model.children()
    assert isinstance(front.children()[1], Identity)
    assert len(front.children()[0].children()) == 2  # no embedding dropout at p = 0
    lin, act = block.children()
    assert lin.bias is not None and isinstance(act, ReLU)
    assert isinstance(head, Sequential) and isinstance(head.children()[1], BatchNorm1d)


def test_embeddings_start_small_as_fastais_truncated_normal():
    model = tabular_model([1000], 1, 2, [4], rng=np.random.default_rng(0))
    w = model.children()[0].children()[0].children()[1].children()[0].weight.data
    assert np.abs(w).max() <= 0.02 and 0.008 < w.std() < 0.012


@pytest.mark.parametrize(("cards", "n_cont"), [(CARDS, 0), ([], 3)])
def test_only_categorical_or_only_continuous_columns(cards, n_cont):
    model = tabular_model(cards, n_cont, 2, [4], rng=np.random.default_rng(0))
    assert any(isinstance(b, NoFeatures) for b in model.children()[0].children())
    x = inputs(np.random.default_rng(0), cards=cards, n_cont=n_cont)
    assert model(x).shape == (16, 2)
    loss = SoftmaxCrossEntropy()
    loss.forward(model(x), np.zeros(16, dtype=np.int64))
    model.backward(loss.backward(), input_grad=False)


def test_argument_mistakes_are_named():
    with pytest.raises(ValueError, match="at least one"):
        tabular_model([], 0, 2)
    with pytest.raises(ValueError, match="2 probabilities for 1 hidden layers"):
        tabular_model(CARDS, 1, 2, [4], dropout=[0.1, 0.2])
    with pytest.raises(ValueError, match="emb_sizes for 3"):
        tabular_model(CARDS, 1, 2, emb_sizes=[2])
    with pytest.raises(ValueError, match=r"expected \(N, 3\)"):
        tabular_model(CARDS, 2, 2)((np.zeros((4, 2), np.int64), np.zeros((4, 2), np.float32)))


def test_gradients_check_in_float64(tol):
    rng = np.random.default_rng(0)
    model = tabular_model(CARDS, 2, 3, [6, 5], rng=rng)
    x = inputs(rng, n=12)
    report = check_model(model, SoftmaxCrossEntropy(), x, rng.integers(0, 3, 12), tolerance=tol.gradcheck)
    assert report.passed, str(report)


@pytest.mark.oracle
def test_matches_a_torch_tabular_model(tol):
    torch = pytest.importorskip("torch")
    from torch import nn

    rng = np.random.default_rng(0)
    layers = [7, 5]
    model = tabular_model(CARDS, 2, 3, layers, rng=rng).astype(np.float64)

    class TorchTabular(nn.Module):  # fastai's TabularModel with lin_first=True, ps = 0, embed_p = 0
        def __init__(self) -> None:
            super().__init__()
            self.embeds = nn.ModuleList([nn.Embedding(n, emb_sz_rule(n)) for n in CARDS])
            self.bn_cont = nn.BatchNorm1d(2)
            sizes, mods = [sum(emb_sz_rule(n) for n in CARDS) + 2, *layers], []
            for a, b in zip(sizes[:-1], sizes[1:]):
                mods += [nn.Linear(a, b, bias=False), nn.ReLU(), nn.BatchNorm1d(b)]
            self.layers = nn.Sequential(*mods, nn.Linear(sizes[-1], 3))

        def forward(self, x_cat, x_cont):
            x = torch.cat([e(x_cat[:, i]) for i, e in enumerate(self.embeds)], 1)
            return self.layers(torch.cat([x, self.bn_cont(x_cont)], 1))

    twin = TorchTabular().double()
    names = {f"0.0.1.{i}.weight": f"embeds.{i}.weight" for i in range(len(CARDS))}
    names.update(
        {f"0.1.{k}": f"bn_cont.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    )
    for j in range(len(layers)):
        names[f"{j + 1}.0.weight"] = f"layers.{3 * j}.weight"
        for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            names[f"{j + 1}.2.{k}"] = f"layers.{3 * j + 2}.{k}"
    names.update({f"{len(layers) + 1}.{k}": f"layers.{3 * len(layers)}.{k}" for k in ("weight", "bias")})
    state = model.state_dict()
    assert set(state) == set(names)
    twin.load_state_dict({names[k]: torch.from_numpy(np.array(v)) for k, v in state.items()})

    x_cat, x_cont = inputs(rng, n=20)
    y = rng.integers(0, 3, 20)
    loss = SoftmaxCrossEntropy()
    value = loss.forward(model((x_cat, x_cont.astype(np.float64))), y)
    model.backward(loss.backward(), input_grad=False)
    t_out = twin(torch.from_numpy(x_cat), torch.from_numpy(x_cont.astype(np.float64)))
    t_loss = nn.functional.cross_entropy(t_out, torch.from_numpy(y))
    t_loss.backward()
    assert value == pytest.approx(t_loss.item(), rel=tol.loss64)
    grads = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        g = grads[names[name]].grad.numpy()
        assert np.linalg.norm(p.grad - g) <= tol.oracle64 * max(np.linalg.norm(g), 1e-12), name
