"""Tests of gradwise/layers/embedding.py: Embedding."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rel_err
from hypothesis import given
from hypothesis import strategies as st

import gradwise as gw
from gradwise.diagnostics import check_model, numerical_gradient, rel_error
from gradwise.layers import Flatten, Linear
from gradwise.layers.embedding import Embedding
from gradwise.losses import MSE
from gradwise.optim import SGD

INDEX_SHAPES = [(6,), (3, 4), (2, 3, 2), (1,)]
DTYPES = [np.float32, np.float64]


def indices(rng: np.random.Generator, num: int, shape: tuple[int, ...]) -> np.ndarray:
    """Random indices with guaranteed repeats (index 1 twice), so the scatter must sum."""
    idx = rng.integers(0, num, size=shape)
    flat = idx.reshape(-1)
    if flat.size >= 2:
        flat[:2] = 1
    return idx


def weight_gradcheck(layer: Embedding, idx: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(analytic, numerical) dL/dW of L = sum(layer(idx) * G) for a random upstream G, float64."""
    upstream = rng.standard_normal((*idx.shape, layer.embedding_dim))
    layer.zero_grad()
    layer.forward(idx)
    assert layer.backward(upstream) is None
    analytic = layer.weight.grad.copy()

    def f() -> float:
        out = layer.forward(idx)
        layer._idx = None  # forward only: no backward follows
        return float(np.sum(out * upstream))

    w = layer.weight.data
    numeric = numerical_gradient(f, w, np.arange(w.size)).reshape(w.shape)
    return analytic, numeric


def torch_embedding(layer: Embedding, dtype: type) -> object:
    import torch

    t = torch.nn.Embedding(
        layer.num_embeddings,
        layer.embedding_dim,
        padding_idx=layer.padding_idx,
        max_norm=layer.max_norm,
        norm_type=layer.norm_type,
        dtype=torch.float64 if dtype == np.float64 else torch.float32,
    )
    t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.state_dict().items()})
    return t


def run_torch(t: object, idx: np.ndarray, upstream: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    y = t(torch.from_numpy(idx))
    y.backward(torch.from_numpy(upstream))
    return y.detach().numpy(), t.weight.grad.numpy()


# ---------------------------------------------------------------------------------- gradient check


@pytest.mark.parametrize("shape", INDEX_SHAPES, ids=str)
@pytest.mark.parametrize("dim", [1, 4])
def test_gradient_check_weight(rng, tol, shape, dim):
    layer = Embedding(7, dim, rng=rng, dtype=np.float64)
    analytic, numeric = weight_gradcheck(layer, indices(rng, 7, shape), rng)
    assert rel_error(analytic, numeric) < tol.gradcheck


def test_gradient_check_with_padding_idx_gives_the_padding_row_nothing(rng, tol):
    layer = Embedding(6, 3, padding_idx=2, rng=rng, dtype=np.float64)
    idx = np.array([[2, 0, 2], [1, 1, 5]])
    analytic, numeric = weight_gradcheck(layer, idx, rng)
    assert not analytic[2].any()  # by definition, although the lookup does depend on row 2
    others = np.arange(6) != 2
    assert rel_error(analytic[others], numeric[others]) < tol.gradcheck


def test_check_model_through_a_model_with_an_embedding_first(rng, tol):
    model = gw.Sequential(Embedding(9, 3, rng=rng), Flatten(), Linear(12, 2, rng=rng))
    x = indices(rng, 9, (5, 4))
    report = check_model(model, MSE(), x, rng.standard_normal((5, 2)), max_entries=None)
    assert [c.name for c in report.checks] == ["0.weight", "2.weight", "2.bias"]
    assert report.max_rel_error < tol.gradcheck, str(report)


# ------------------------------------------------------------------------------------------ oracle


@pytest.mark.oracle
@pytest.mark.parametrize("shape", INDEX_SHAPES, ids=str)
@pytest.mark.parametrize("padding_idx", [None, 1, -1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch(rng, tol, shape, padding_idx, dtype):
    pytest.importorskip("torch")
    layer = Embedding(8, 5, padding_idx=padding_idx, rng=rng, dtype=dtype)
    t = torch_embedding(layer, dtype)
    idx = indices(rng, 8, shape)
    idx.reshape(-1)[-1] = 7  # the padding row for padding_idx=-1
    upstream = rng.standard_normal((*shape, 5)).astype(dtype)
    y = layer.forward(idx)
    layer.backward(upstream)
    ty, tgrad = run_torch(t, idx, upstream)
    assert y.dtype == dtype and y.shape == (*shape, 5)
    assert rel_err(y, ty) == 0.0  # a lookup copies numbers
    assert rel_err(layer.weight.grad, tgrad) < tol.oracle_for(dtype)
    if padding_idx is not None:
        assert not layer.weight.grad[padding_idx].any()
        assert not layer.weight.data[padding_idx].any()


@pytest.mark.oracle
@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_norm_renormalizes_like_torch(rng, tol, norm_type, dtype):
    pytest.importorskip("torch")
    layer = Embedding(10, 4, max_norm=1.5, norm_type=norm_type, rng=rng, dtype=dtype)
    layer.weight.data[3] *= 0.1  # one looked-up row already inside the ball
    t = torch_embedding(layer, dtype)
    before = layer.weight.data.copy()
    idx = np.array([[3, 0, 0], [5, 3, 9]])
    upstream = rng.standard_normal((2, 3, 4)).astype(dtype)
    y = layer.forward(idx)
    layer.backward(upstream)
    ty, tgrad = run_torch(t, idx, upstream)
    tweight = t.weight.detach().numpy()
    assert rel_err(layer.weight.data, tweight) < tol.oracle_for(dtype)
    assert rel_err(y, ty) < tol.oracle_for(dtype)
    assert rel_err(layer.weight.grad, tgrad) < tol.oracle_for(dtype)
    # Rows looked up end with norm <= max_norm; the others are untouched.
    norms = np.linalg.norm(layer.weight.data.astype(np.float64), ord=norm_type, axis=1)
    assert np.all(norms[[0, 3, 5, 9]] <= 1.5 + 1e-5)
    untouched = [1, 2, 4, 6, 7, 8]
    np.testing.assert_array_equal(layer.weight.data[untouched], before[untouched])
    np.testing.assert_array_equal(layer.weight.data[3], before[3])


@pytest.mark.oracle
@given(
    num=st.integers(1, 30),
    dim=st.integers(1, 9),
    shape=st.lists(st.integers(0, 6), min_size=1, max_size=3).map(tuple),
    use_padding=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_torch_for_any_shape(tol, num, dim, shape, use_padding, seed):
    pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    padding_idx = int(rng.integers(num)) if use_padding else None
    layer = Embedding(num, dim, padding_idx=padding_idx, rng=rng, dtype=np.float64)
    idx = rng.integers(0, num, size=shape)
    upstream = rng.standard_normal((*shape, dim))
    y = layer.forward(idx)
    layer.backward(upstream)
    ty, tgrad = run_torch(torch_embedding(layer, np.float64), idx, upstream)
    np.testing.assert_array_equal(y, ty)
    assert rel_err(layer.weight.grad, tgrad) < tol.oracle64


# ---------------------------------------------------------------------------------------- scatter


@given(
    num=st.integers(1, 50),
    n=st.integers(0, 200),
    dim=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_scatter_equals_add_at(tol, num, n, dim, seed):
    rng = np.random.default_rng(seed)
    layer = Embedding(num, dim, rng=rng, dtype=np.float64)
    idx = rng.integers(0, num, size=n)
    g = rng.standard_normal((n, dim))
    expected = np.zeros((num, dim))
    np.add.at(expected, idx, g)
    layer.forward(idx)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, expected, rtol=1e-12, atol=1e-12)


def test_backward_accumulates(rng):
    layer = Embedding(5, 2, rng=rng, dtype=np.float64)
    idx = np.array([0, 4, 4])
    g = rng.standard_normal((3, 2))
    for _ in range(2):
        layer.forward(idx)
        layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad[4], 2 * (g[1] + g[2]), rtol=1e-14)
    np.testing.assert_allclose(layer.weight.grad[0], 2 * g[0], rtol=1e-14)
    assert not layer.weight.grad[1:4].any()


def test_empty_batch(rng):
    layer = Embedding(5, 3, rng=rng)
    y = layer.forward(np.zeros((0, 4), dtype=np.int64))
    assert y.shape == (0, 4, 3)
    assert layer.backward(np.zeros_like(y)) is None
    assert not layer.weight.grad.any()


# ------------------------------------------------------------------------------- init and dtype


def test_init_is_standard_normal_with_a_zero_padding_row(tol):
    layer = Embedding(2000, 130, padding_idx=7, rng=np.random.default_rng(0))
    w = np.delete(layer.weight.data.astype(np.float64), 7, axis=0)
    assert layer.weight.shape == (2000, 130) and layer.weight.dtype == np.float32
    assert abs(w.mean()) < 0.01
    assert abs(w.var() - 1.0) < tol.init_var
    assert not layer.weight.data[7].any()


def test_same_rng_same_weights_and_default_generator():
    a = Embedding(4, 3, rng=np.random.default_rng(5))
    b = Embedding(4, 3, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    gw.manual_seed(11)
    c = Embedding(4, 3)
    gw.manual_seed(11)
    np.testing.assert_array_equal(c.weight.data, Embedding(4, 3).weight.data)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", [np.int64, np.int32, np.uint8, np.int16])
def test_dtypes(rng, dtype, index_dtype):
    layer = Embedding(6, 2, rng=rng, dtype=dtype)
    y = layer.forward(np.array([[0, 5], [2, 2]], dtype=index_dtype))
    assert y.dtype == dtype
    layer.backward(np.ones_like(y))
    assert layer.weight.grad.dtype == dtype
    assert layer.weight.grad[2].tolist() == [2.0, 2.0]


def test_state_dict_names_and_repr(rng):
    layer = Embedding(6, 2, padding_idx=0, max_norm=1.0, rng=rng)
    assert list(layer.state_dict()) == ["weight"]
    assert repr(layer) == "Embedding(6, 2, padding_idx=0, max_norm=1.0)"
    model = gw.Sequential(Embedding(6, 2, rng=rng), Flatten(), Linear(4, 1, rng=rng))
    assert list(model.state_dict()) == ["0.weight", "2.weight", "2.bias"]


# -------------------------------------------------------------------------------- from_pretrained


def test_from_pretrained_copies_and_freezes(rng):
    matrix = rng.standard_normal((5, 3))
    layer = Embedding.from_pretrained(matrix)
    assert layer.weight.dtype == np.float32 and layer.weight.shape == (5, 3)
    np.testing.assert_array_equal(layer.weight.data, matrix.astype(np.float32))
    assert not np.shares_memory(layer.weight.data, matrix)
    assert layer.weight.requires_grad is False
    opt = SGD(layer.parameters(), lr=1.0)
    y = layer.forward(np.array([0, 1, 1]))
    layer.backward(np.ones_like(y))
    opt.step()
    assert not layer.weight.grad.any()
    np.testing.assert_array_equal(layer.weight.data, matrix.astype(np.float32))


def test_from_pretrained_unfrozen_trains_and_keeps_the_padding_row(rng):
    matrix = rng.standard_normal((4, 2))
    layer = Embedding.from_pretrained(matrix, freeze=False, padding_idx=3, dtype=np.float64)
    np.testing.assert_array_equal(layer.weight.data[3], matrix[3])  # kept, as torch does
    assert layer.weight.requires_grad is True
    opt = SGD(layer.parameters(), lr=0.5)
    y = layer.forward(np.array([3, 0]))
    layer.backward(np.ones_like(y))
    opt.step()
    np.testing.assert_array_equal(layer.weight.data[3], matrix[3])
    np.testing.assert_allclose(layer.weight.data[0], matrix[0] - 0.5, rtol=1e-15)


@pytest.mark.oracle
def test_from_pretrained_matches_torch(rng):
    torch = pytest.importorskip("torch")
    matrix = rng.standard_normal((6, 3))
    layer = Embedding.from_pretrained(matrix, padding_idx=2, max_norm=1.0, dtype=np.float64)
    t = torch.nn.Embedding.from_pretrained(torch.from_numpy(matrix.copy()), padding_idx=2, max_norm=1.0)
    idx = np.array([[2, 5], [0, 0]])
    np.testing.assert_allclose(layer.forward(idx), t(torch.from_numpy(idx)).numpy(), rtol=1e-14)
    np.testing.assert_allclose(layer.weight.data, t.weight.numpy(), rtol=1e-14)
    assert t.weight.requires_grad is layer.weight.requires_grad is False


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(("bad", "position"), [(10, "(1, 0)"), (-1, "(1, 0)"), (99, "(1, 0)")])
def test_out_of_range_index_names_layer_index_and_range(rng, bad, position):
    layer = Embedding(10, 3, rng=rng)
    with pytest.raises(IndexError) as info:
        layer.forward(np.array([[0, 9], [bad, 10]]))
    msg = str(info.value)
    assert "Embedding(10, 3)" in msg and f"index {bad} at position {position}" in msg and "0..9" in msg


@pytest.mark.parametrize(
    ("x", "shown"), [(np.array([1.0, 2.5]), "2.5"), (np.array([1.0, 2.0]), "1.0"), (np.array([True]), "")]
)
def test_non_integer_indices_are_type_errors(rng, x, shown):
    with pytest.raises(TypeError, match=r"Embedding\(10, 3\): indices must be an integer array") as info:
        Embedding(10, 3, rng=rng).forward(x)
    assert f"index {shown}" in str(info.value) if shown else "0..9" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_embeddings": 0, "embedding_dim": 3}, "num_embeddings=0 must be a positive integer"),
        ({"num_embeddings": 4, "embedding_dim": -2}, "embedding_dim=-2"),
        ({"num_embeddings": 4.0, "embedding_dim": 2}, "num_embeddings=4.0"),
        ({"num_embeddings": 4, "embedding_dim": 2, "padding_idx": 4}, r"padding_idx=4 must be in \[-4, 4\)"),
        ({"num_embeddings": 4, "embedding_dim": 2, "padding_idx": -5}, "padding_idx=-5"),
        ({"num_embeddings": 4, "embedding_dim": 2, "max_norm": 0.0}, "max_norm=0.0 must be positive"),
        ({"num_embeddings": 4, "embedding_dim": 2, "norm_type": -1.0}, "norm_type=-1.0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Embedding(**kwargs)


def test_backward_errors(rng):
    layer = Embedding(5, 2, rng=rng)
    with pytest.raises(RuntimeError, match="Embedding.backward was called before forward"):
        layer.backward(np.zeros((3, 2), dtype=np.float32))
    layer.forward(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"Embedding\(5, 2\): grad_out of shape \(3, 3\).*\(3, 2\)"):
        layer.backward(np.zeros((3, 3), dtype=np.float32))


def test_from_pretrained_rejects_a_vector():
    with pytest.raises(ValueError, match=r"must be 2-D.*\(5,\)"):
        Embedding.from_pretrained(np.zeros(5))
