"""Tests of gradwise/layers/structure.py: Residual, Concat and Parallel (Flatten: test_structure.py)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import away_from_zero, rel_err

import gradwise as gw
from gradwise.data import DataLoader
from gradwise.diagnostics import check_layer, numerical_gradient, rel_error
from gradwise.layers import Flatten, Linear, ReLU, Tanh
from gradwise.layers.embedding import Embedding
from gradwise.layers.structure import Concat, Parallel, Residual
from gradwise.losses import MSE
from gradwise.optim import Adam

DTYPES = [np.float32, np.float64]


def mlp_block(rng: np.random.Generator, d: int, dtype: type = np.float64) -> gw.Sequential:
    return gw.Sequential(Linear(d, 6, rng=rng, dtype=dtype), Tanh(), Linear(6, d, rng=rng, dtype=dtype))


def tabular_model(rng: np.random.Generator, dtype: type = np.float64) -> gw.Sequential:
    """User and item embeddings beside a small MLP on dense features, then a Linear head."""
    return gw.Sequential(
        Parallel(
            Embedding(7, 3, rng=rng, dtype=dtype),
            Embedding(5, 2, padding_idx=0, rng=rng, dtype=dtype),
            gw.Sequential(Linear(4, 3, rng=rng, dtype=dtype), Tanh()),
        ),
        Linear(8, 2, rng=rng, dtype=dtype),
    )


def tabular_inputs(rng: np.random.Generator, n: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    users = rng.integers(0, 7, size=n)
    items = rng.integers(0, 5, size=n)
    items[:2] = 0  # the padding row is looked up
    users[:3] = 4  # a repeated user
    return users, items, rng.standard_normal((n, 4))


def tuple_gradcheck(model: gw.Layer, inputs: tuple[np.ndarray, ...], rng: np.random.Generator) -> dict[str, float]:
    """Relative errors of every floating input's and every parameter's gradient of
    L = sum(model(inputs) * G) against centered differences (float64, random upstream G)."""
    inputs = tuple(np.array(x, copy=True) for x in inputs)
    upstream = rng.standard_normal(model.forward(inputs).shape)
    model.zero_grad()
    model.forward(inputs)
    grads_in = model.backward(upstream.copy())

    def f() -> float:
        out = float(np.sum(model.forward(inputs) * upstream))
        model.forward(inputs)  # leave caches consistent for the next call (no backward follows)
        return out

    errors = {}
    for i, (x, g) in enumerate(zip(inputs, grads_in)):
        if np.issubdtype(x.dtype, np.floating):
            errors[f"input{i}"] = rel_error(g, numerical_gradient(f, x, np.arange(x.size)))
        else:
            assert g is None
    for name, p in model.named_parameters():
        analytic = p.grad.copy()
        numeric = numerical_gradient(f, p.data, np.arange(p.size)).reshape(p.shape)
        padding = getattr(_owner(model, name), "padding_idx", None)
        if padding is not None:  # the padding row's gradient is zero by definition
            assert not analytic[padding].any()
            analytic, numeric = np.delete(analytic, padding, 0), np.delete(numeric, padding, 0)
        errors[name] = rel_error(analytic, numeric)
    return errors


def _owner(model: gw.Layer, param_name: str) -> gw.Layer:
    modules = dict(model.named_modules())
    return modules[param_name.rpartition(".")[0]]


# ------------------------------------------------------------------------------------------ Residual


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)], ids=str)
def test_residual_gradient_check(rng, tol, shape):
    layer = Residual(mlp_block(rng, 4))
    report = check_layer(layer, rng.standard_normal(shape), max_entries=None)
    assert [c.name for c in report.checks] == [
        "input",
        "block.0.weight",
        "block.0.bias",
        "block.2.weight",
        "block.2.bias",
    ]
    assert report.max_rel_error < tol.gradcheck, str(report)


def test_residual_is_x_plus_block_of_x(rng):
    block = mlp_block(rng, 3)
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(Residual(block).forward(x), x + block.forward(x), rtol=1e-15)


def test_residual_around_an_identity_block_leaves_the_input_alone(rng):
    # Flatten on (N, F) returns a view of its input: y must still be a new array, x unchanged.
    x = rng.standard_normal((3, 4))
    before = x.copy()
    layer = Residual(Flatten())
    y = layer.forward(x)
    np.testing.assert_array_equal(y, 2 * before)
    np.testing.assert_array_equal(x, before)
    g = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(layer.backward(g), 2 * g)


@pytest.mark.parametrize("dtype", DTYPES)
def test_residual_keeps_the_blocks_dtype(rng, dtype):
    layer = Residual(mlp_block(rng, 3, dtype))
    y = layer.forward(rng.standard_normal((2, 3)))
    assert y.dtype == dtype
    assert layer.backward(np.ones_like(y)).dtype == dtype


def test_residual_shape_mismatch_names_block_and_shapes(rng):
    layer = Residual(Linear(4, 3, rng=rng))
    with pytest.raises(ValueError, match=r"Residual: the block Linear .*\(5, 4\).*\(5, 3\)"):
        layer.forward(np.zeros((5, 4)))


def test_residual_errors(rng):
    with pytest.raises(TypeError, match="wrap a list in Sequential"):
        Residual([Linear(2, 2)])  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="Residual.backward was called before forward"):
        Residual(Linear(2, 2, rng=rng)).backward(np.zeros((1, 2)))


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
def test_residual_matches_torch(rng, tol, dtype):
    torch = pytest.importorskip("torch")
    from torch import nn

    class TorchResidual(nn.Module):
        def __init__(self, block: nn.Module) -> None:
            super().__init__()
            self.block = block

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.block(x)

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    model = gw.Sequential(Residual(mlp_block(rng, 5, dtype)), ReLU(), Residual(mlp_block(rng, 5, dtype)))
    twin = nn.Sequential(
        TorchResidual(nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 5))),
        nn.ReLU(),
        TorchResidual(nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 5))),
    ).to(tdtype)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})  # same names
    x = away_from_zero(rng, (4, 5)).astype(dtype)
    g = rng.standard_normal((4, 5)).astype(dtype)
    errors = _compare(model, twin, (x,), g)
    assert max(errors.values()) < tol.oracle_for(dtype), errors


# -------------------------------------------------------------------------------------------- Concat


@pytest.mark.parametrize(("axis", "shape"), [(-1, (5, 4)), (1, (2, 3, 4)), (-1, (2, 3, 4))], ids=str)
def test_concat_gradient_check(rng, tol, axis, shape):
    d = shape[-1]
    layer = Concat(Linear(d, d, rng=rng), gw.Sequential(Linear(d, d, rng=rng), Tanh()), Tanh(), axis=axis)
    report = check_layer(layer, rng.standard_normal(shape), max_entries=None)
    assert [c.name for c in report.checks] == ["input", "0.weight", "0.bias", "1.0.weight", "1.0.bias"]
    assert report.max_rel_error < tol.gradcheck, str(report)


def test_concat_joins_along_the_axis(rng):
    a, b = Linear(3, 2, rng=rng, dtype=np.float64), Linear(3, 4, rng=rng, dtype=np.float64)
    x = rng.standard_normal((5, 3))
    y = Concat(a, b).forward(x)
    assert y.shape == (5, 6)
    np.testing.assert_array_equal(y, np.concatenate([a.forward(x), b.forward(x)], axis=1))
    y1 = Concat(Flatten(), Flatten(), axis=0).forward(x)
    np.testing.assert_array_equal(y1, np.concatenate([x, x]))


def test_concat_of_embeddings_returns_none_as_input_gradient(rng):
    layer = Concat(Embedding(6, 2, rng=rng), Embedding(6, 3, rng=rng))
    y = layer.forward(np.array([1, 5, 5]))
    assert y.shape == (3, 5)
    assert layer.backward(np.ones_like(y)) is None
    assert layer[1].weight.grad[5].tolist() == [2.0, 2.0, 2.0]


def test_concat_shape_mismatch_names_branches_and_shapes(rng):
    layer = Concat(Linear(4, 2, rng=rng), Flatten(start_dim=0))
    with pytest.raises(ValueError, match=r"Concat: .*branch 0 \(Linear\): \(3, 2\), branch 1 \(Flatten\): \(12,\)"):
        layer.forward(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"Concat: .*every axis but axis=1.*\(3, 2, 2\).*\(3, 2, 3\)"):
        Concat(Linear(4, 2, rng=rng), Linear(4, 3, rng=rng), axis=1).forward(np.zeros((3, 2, 4)))
    with pytest.raises(ValueError, match=r"Concat: cannot join the branch outputs along axis=3"):
        Concat(Linear(4, 2, rng=rng), axis=3).forward(np.zeros((3, 4)))


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
def test_concat_matches_torch(rng, tol, dtype):
    torch = pytest.importorskip("torch")
    from torch import nn

    class TorchConcat(nn.Module):
        def __init__(self, *branches: nn.Module, dim: int) -> None:
            super().__init__()
            self.branches = nn.ModuleList(branches)
            self.dim = dim

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([b(x) for b in self.branches], dim=self.dim)

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    model = gw.Sequential(
        Concat(Linear(4, 3, rng=rng, dtype=dtype), gw.Sequential(Linear(4, 2, rng=rng, dtype=dtype), ReLU())),
        Linear(5, 2, rng=rng, dtype=dtype),
    )
    twin = nn.Sequential(
        TorchConcat(nn.Linear(4, 3), nn.Sequential(nn.Linear(4, 2), nn.ReLU()), dim=-1), nn.Linear(5, 2)
    )
    twin = twin.to(tdtype)
    state = {k.replace("0.", "0.branches.", 1) if k.startswith("0.") else k: v for k, v in model.state_dict().items()}
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    x = away_from_zero(rng, (6, 4)).astype(dtype)
    g = rng.standard_normal((6, 2)).astype(dtype)
    errors = _compare(model, twin, (x,), g, rename=lambda k: k.replace("0.branches.", "0.", 1))
    assert max(errors.values()) < tol.oracle_for(dtype), errors


# ------------------------------------------------------------------------------------------ Parallel


def test_parallel_gradient_check_with_embeddings_and_dense_features(rng, tol):
    model = tabular_model(rng)
    errors = tuple_gradcheck(model, tabular_inputs(rng), rng)
    assert set(errors) == {"input2", "0.0.weight", "0.1.weight", "0.2.0.weight", "0.2.0.bias", "1.weight", "1.bias"}
    assert max(errors.values()) < tol.gradcheck, errors


def test_parallel_gradient_check_of_float_inputs_along_axis_1(rng, tol):
    model = Parallel(Linear(3, 2, rng=rng, dtype=np.float64), Tanh(), axis=1)
    inputs = (rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 2)))
    assert model.forward(inputs).shape == (2, 9, 2)
    errors = tuple_gradcheck(model, inputs, rng)
    assert set(errors) == {"input0", "input1", "0.weight", "0.bias"}
    assert max(errors.values()) < tol.gradcheck, errors


def test_parallel_backward_returns_one_gradient_per_input(rng):
    model = tabular_model(rng, np.float32)
    y = model.forward(tabular_inputs(rng))
    grads = model.backward(np.ones_like(y))
    assert isinstance(grads, tuple) and len(grads) == 3
    assert grads[0] is None and grads[1] is None
    assert grads[2].shape == (6, 4) and grads[2].dtype == np.float32


def test_parallel_accepts_a_list_and_concatenates_in_branch_order(rng):
    a, b = Linear(2, 3, rng=rng), Linear(4, 1, rng=rng)
    xa, xb = rng.standard_normal((5, 2)), rng.standard_normal((5, 4))
    y = Parallel(a, b).forward([xa, xb])
    np.testing.assert_array_equal(y, np.concatenate([a.forward(xa), b.forward(xb)], axis=-1))


def test_parallel_state_dict_names_follow_torch():
    model = tabular_model(np.random.default_rng(0))
    assert list(model.state_dict()) == ["0.0.weight", "0.1.weight", "0.2.0.weight", "0.2.0.bias", "1.weight", "1.bias"]
    assert len(model[0]) == 3 and isinstance(model[0][1], Embedding)
    assert "(0): Parallel(" in repr(model) and "(2): Sequential(" in repr(model)


def test_parallel_input_errors(rng):
    layer = Parallel(Embedding(4, 2, rng=rng), Linear(3, 2, rng=rng))
    with pytest.raises(
        ValueError, match=r"Parallel with 2 branches expects a tuple of 2 arrays.*ndarray of shape \(5, 3\)"
    ):
        layer.forward(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="a tuple of 3 items"):
        layer.forward((np.zeros(5, dtype=int), np.zeros((5, 3)), np.zeros(5)))
    with pytest.raises(ValueError, match=r"branch 0 \(Embedding\): \(5, 2\), branch 1 \(Linear\): \(4, 2\)"):
        layer.forward((np.zeros(5, dtype=int), np.zeros((4, 3))))
    with pytest.raises(RuntimeError, match="Parallel.backward was called before forward"):
        layer.backward(np.zeros((5, 4)))


@pytest.mark.parametrize("cls", [Parallel, Concat])
def test_branch_errors(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}: needs at least one branch"):
        cls()
    with pytest.raises(TypeError, match=r"branch 1 is list, not a Layer \(wrap a list of layers in Sequential\)"):
        cls(Linear(2, 2), [Linear(2, 2), ReLU()])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_matches_torch(rng, tol, dtype):
    torch = pytest.importorskip("torch")
    from torch import nn

    class TorchParallel(nn.Module):
        """Branch i on input i, outputs concatenated; a ModuleList keeps gradwise's names."""

        def __init__(self, *branches: nn.Module) -> None:
            super().__init__()
            self.branches = nn.ModuleList(branches)

        def forward(self, xs: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return torch.cat([b(x) for b, x in zip(self.branches, xs)], dim=-1)

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    model = tabular_model(rng, dtype)
    twin = nn.Sequential(
        TorchParallel(nn.Embedding(7, 3), nn.Embedding(5, 2, padding_idx=0), nn.Sequential(nn.Linear(4, 3), nn.Tanh())),
        nn.Linear(8, 2),
    ).to(tdtype)
    state = {k.replace("0.", "0.branches.", 1) if k.startswith("0.") else k: v for k, v in model.state_dict().items()}
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    users, items, dense = tabular_inputs(rng)
    g = rng.standard_normal((6, 2)).astype(dtype)
    errors = _compare(
        model,
        twin,
        (users, items, dense.astype(dtype)),
        g,
        rename=lambda k: k.replace("0.branches.", "0.", 1),
        packed=True,
    )
    assert set(errors) >= {"output", "input2", "0.0.weight", "0.1.weight", "1.weight"}
    assert max(errors.values()) < tol.oracle_for(dtype), errors


def _compare(
    model: gw.Layer,
    twin: object,
    inputs: tuple[np.ndarray, ...],
    upstream: np.ndarray,
    *,
    rename: object = None,
    packed: bool = False,
) -> dict[str, float]:
    """Relative errors of output, floating-input gradients and parameter gradients against torch."""
    import torch

    model.zero_grad()
    y = model.forward(inputs if packed else inputs[0])
    gx = model.backward(upstream)
    gx = gx if packed else (gx,)
    tx = [torch.tensor(x, requires_grad=np.issubdtype(x.dtype, np.floating)) for x in inputs]
    ty = twin(tuple(tx) if packed else tx[0])
    ty.backward(torch.from_numpy(upstream))
    errors = {"output": rel_err(y, ty.detach().numpy())}
    for i, (g, t) in enumerate(zip(gx, tx)):
        if t.requires_grad:
            errors[f"input{i}"] = rel_err(g, t.grad.numpy())
    grads = {name: p.grad for name, p in model.named_parameters()}
    for name, p in twin.named_parameters():
        key = rename(name) if rename else name
        errors[key] = rel_err(grads[key], p.grad.numpy())
    return errors


# ------------------------------------------------------------------------------ training, end to end


def test_a_parallel_model_trains_from_a_multi_input_loader():
    rng = np.random.default_rng(3)
    n = 400
    users, items = rng.integers(0, 20, n), rng.integers(0, 15, n)
    dense = rng.standard_normal((n, 2)).astype(np.float32)
    true_u, true_i = rng.standard_normal(20), rng.standard_normal(15)
    y = (true_u[users] + true_i[items] + 0.5 * dense[:, 0])[:, None]
    model = gw.Sequential(
        Parallel(Embedding(20, 4, rng=rng), Embedding(15, 4, rng=rng), Linear(2, 4, rng=rng)),
        ReLU(),
        Linear(12, 1, rng=rng),
    )
    loader = DataLoader((users, items, dense), y, batch_size=50, shuffle=True, rng=rng)
    trainer = gw.Trainer(model, MSE(), Adam(model.parameters(), lr=0.02), progress=False)
    first = trainer.evaluate(loader)["loss"]
    trainer.fit(loader, epochs=30)
    last = trainer.evaluate(loader)["loss"]
    assert last < 0.1 * first
    assert trainer.predict((users, items, dense)).shape == (n, 1)
