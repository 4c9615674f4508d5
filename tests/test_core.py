"""Tests of gradwise/core.py: Parameter, Layer and Sequential."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FlagProbe, away_from_zero, oracle_errors, rel_err

import gradwise as gw
from gradwise.core import Layer, Parameter, Sequential
from gradwise.diagnostics import check_layer
from gradwise.layers import ELU, GELU, Flatten, LeakyReLU, Linear, Maxout, ReLU, Sigmoid, Softplus, Tanh


class Scale(Layer):
    """y = x * gamma + beta, with a running-count buffer: a layer with params and buffers."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.gamma = Parameter(np.ones(n, dtype=np.float32))
        self.beta = Parameter(np.zeros(n, dtype=np.float32))
        self.register_buffer("running_mean", np.zeros(n, dtype=np.float32))
        self.register_buffer("num_batches", np.array(0, dtype=np.int64))
        self.register_buffer("unused", None)
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * self.gamma.data + self.beta.data

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._x is None:
            raise self.no_cache_error()
        self.gamma.grad += (grad_out * self._x).sum(axis=0)
        self.beta.grad += grad_out.sum(axis=0)
        self._x = None
        return grad_out * self.gamma.data


class Block(Layer):
    """A layer holding a parameter, two children and a buffer, assigned in a deliberate order."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = Parameter(np.full((2, 2), 3.0, dtype=np.float32))
        self.first = Linear(2, 3, rng=np.random.default_rng(0))
        self.norm = Scale(3)
        self.register_buffer("counter", np.zeros(1, dtype=np.float32))


def small_model(rng: np.random.Generator, dtype: type = np.float32) -> Sequential:
    return Sequential(
        Linear(4, 6, rng=rng, dtype=dtype),
        Tanh(),
        Linear(6, 5, rng=rng, dtype=dtype),
        ReLU(),
        Linear(5, 3, rng=rng, dtype=dtype),
    )


# --------------------------------------------------------------------------------------- Parameter


def test_parameter_holds_data_and_a_zero_grad_of_the_same_shape_and_dtype():
    p = Parameter(np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    assert p.shape == (2, 3) and p.dtype == np.float32 and p.size == 6
    assert p.data.flags.c_contiguous
    assert p.grad.shape == (2, 3) and p.grad.dtype == np.float32 and not p.grad.any()
    assert p.requires_grad


def test_parameter_zero_grad_clears_in_place():
    p = Parameter(np.ones(3, dtype=np.float32))
    grad = p.grad
    grad += 5
    p.zero_grad()
    assert p.grad is grad and not p.grad.any()


def test_parameter_astype_converts_value_and_grad_in_place():
    p = Parameter(np.array([1.5, -2.0], dtype=np.float32))
    p.grad += np.array([0.25, 4.0], dtype=np.float32)
    p.astype(np.float64)
    assert p.dtype == np.float64 and p.grad.dtype == np.float64
    np.testing.assert_array_equal(p.data, [1.5, -2.0])
    np.testing.assert_array_equal(p.grad, [0.25, 4.0])


# ------------------------------------------------------------------------------------ registration


def test_layer_subclass_must_call_super_init_before_assigning():
    class Forgetful(Layer):
        def __init__(self) -> None:
            self.w = Parameter(np.zeros(2))

    with pytest.raises(RuntimeError, match="Forgetful.*super"):
        Forgetful()


def test_registration_follows_assignment_order_with_dotted_names():
    names = [name for name, _ in Block().named_parameters()]
    assert names == ["scale", "first.weight", "first.bias", "norm.gamma", "norm.beta"]


def test_named_parameters_records_the_name_on_each_parameter():
    model = Block()
    for name, p in model.named_parameters():
        assert p.name == name
    assert [p.name for p in model.parameters()] == [name for name, _ in model.named_parameters()]


def test_named_buffers_skips_none_and_keeps_order():
    names = [name for name, _ in Block().named_buffers()]
    assert names == ["counter", "norm.running_mean", "norm.num_batches"]
    assert len(Block().buffers()) == 3


def test_assigning_a_new_array_to_a_buffer_keeps_it_registered_in_place():
    model = Block()
    model.norm.running_mean = np.full(3, 2.0, dtype=np.float32)
    buffers = dict(model.named_buffers())
    assert list(buffers) == ["counter", "norm.running_mean", "norm.num_batches"]
    np.testing.assert_array_equal(buffers["norm.running_mean"], np.full(3, 2.0))
    model.norm.unused = np.zeros(1)
    assert "norm.unused" in dict(model.named_buffers())


def test_reassigning_an_attribute_unregisters_it():
    model = Block()
    model.first = ReLU()
    assert [name for name, _ in model.named_parameters()] == ["scale", "norm.gamma", "norm.beta"]
    model.scale = None
    assert "scale" not in dict(model.named_parameters())


def test_a_shared_parameter_is_listed_once():
    shared = Linear(3, 3, rng=np.random.default_rng(0))
    model = Sequential(shared, ReLU(), shared)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert model.num_parameters() == 12


def test_sequential_names_children_like_torch(rng):
    model = small_model(rng)
    assert [name for name, _ in model.named_parameters()] == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
        "4.weight",
        "4.bias",
    ]
    assert [name for name, _ in model.named_children()] == ["0", "1", "2", "3", "4"]
    assert len(model) == 5 and isinstance(model[1], Tanh) and list(model) == model.layers
    assert model.num_parameters() == 4 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3


def test_sequential_rejects_items_that_are_not_layers():
    with pytest.raises(TypeError, match="item 1 is ufunc, not a Layer"):
        Sequential(ReLU(), np.tanh)


def test_nested_sequential_names(rng):
    model = Sequential(Sequential(Linear(2, 2, rng=rng), ReLU()), Linear(2, 1, rng=rng))
    assert [name for name, _ in model.named_parameters()] == ["0.0.weight", "0.0.bias", "1.weight", "1.bias"]
    assert [name for name, _ in model.named_modules()] == ["", "0", "0.0", "0.1", "1"]


# ------------------------------------------------------------------------------- modes and grads


def test_train_and_eval_propagate_to_every_descendant_and_return_self():
    model = Sequential(Block(), Sequential(ReLU(), Block()))
    assert model.eval() is model
    assert all(not mod.training for _, mod in model.named_modules())
    assert model.train() is model
    assert all(mod.training for _, mod in model.named_modules())
    model.train(False)
    assert all(not mod.training for _, mod in model.named_modules())


def test_zero_grad_clears_every_parameter(rng):
    model = small_model(rng)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    model.backward(np.ones_like(model.forward(x)))
    assert all(p.grad.any() for p in model.parameters())
    model.zero_grad()
    assert all(not p.grad.any() for p in model.parameters())


def test_backward_accumulates_into_grads(rng):
    model = small_model(rng, np.float64)
    x = rng.standard_normal((8, 4))
    g = rng.standard_normal((8, 3))
    model.forward(x)
    model.backward(g)
    once = [p.grad.copy() for p in model.parameters()]
    model.forward(x)
    model.backward(g)
    for p, g1 in zip(model.parameters(), once, strict=True):
        np.testing.assert_allclose(p.grad, 2 * g1, rtol=1e-14)


def test_sequential_is_the_composition_of_its_layers(rng):
    model = small_model(rng, np.float64)
    x = rng.standard_normal((5, 4))
    g = rng.standard_normal((5, 3))
    y = model.forward(x)
    gx = model.backward(g)
    h = x
    for layer in model:
        h = layer.forward(h)
    np.testing.assert_array_equal(y, h)
    grad = g
    for layer in reversed(model.layers):
        grad = layer.backward(grad)
    np.testing.assert_array_equal(gx, grad)


def test_sequential_gradient_check(rng, tol):
    model = small_model(rng)
    report = check_layer(model, away_from_zero(rng, (6, 4)), max_entries=None)
    assert [c.name for c in report.checks] == [
        "input",
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
        "4.weight",
        "4.bias",
    ]
    assert report.max_rel_error < tol.gradcheck, str(report)


# ---------------------------------------------------------------------------------------- astype


def test_astype_float64_keeps_parameter_identity_converts_grads_and_returns_self(rng):
    model = Sequential(Linear(3, 2, rng=rng), Scale(2))
    params = model.parameters()
    for p in params:
        p.grad += 0.5
    values = [p.data.astype(np.float64) for p in params]
    assert model.astype(np.float64) is model
    assert model.dtype == np.float64
    for p, before, v in zip(model.parameters(), params, values, strict=True):
        assert p is before
        assert p.dtype == np.float64 and p.grad.dtype == np.float64
        np.testing.assert_array_equal(p.data, v)
        np.testing.assert_array_equal(p.grad, np.full(p.shape, 0.5))


def test_astype_converts_float_buffers_only():
    model = Block().astype(np.float64)
    buffers = dict(model.named_buffers())
    assert buffers["counter"].dtype == np.float64
    assert buffers["norm.running_mean"].dtype == np.float64
    assert buffers["norm.num_batches"].dtype == np.int64
    assert model.norm.running_mean is buffers["norm.running_mean"]


def test_astype_float64_model_computes_in_float64(rng):
    model = small_model(rng).astype(np.float64)
    y = model.forward(rng.standard_normal((2, 4)).astype(np.float32))
    assert y.dtype == np.float64
    model.backward(np.ones_like(y))
    assert all(p.grad.dtype == np.float64 for p in model.parameters())


def test_dtype_of_a_layer_without_parameters_is_the_default():
    assert ReLU().dtype == np.float32


# ----------------------------------------------------------------------------------------- state


def test_state_dict_has_parameters_and_buffers_in_registration_order():
    state = Block().state_dict()
    assert list(state) == [
        "scale",
        "counter",
        "first.weight",
        "first.bias",
        "norm.gamma",
        "norm.beta",
        "norm.running_mean",
        "norm.num_batches",
    ]


def test_state_dict_returns_copies():
    model = Block()
    state = model.state_dict()
    before = {k: v.copy() for k, v in state.items()}
    for v in state.values():
        v += 7
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_round_trip_copies_values_and_keeps_identity_and_dtype(rng):
    src, dst = small_model(rng), small_model(rng)
    params = dst.parameters()
    state = {k: v.astype(np.float64) for k, v in src.state_dict().items()}
    dst.load_state_dict(state)
    assert dst.parameters() == params
    for (name, p), (_, q) in zip(dst.named_parameters(), src.named_parameters(), strict=True):
        assert p.dtype == np.float32
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    state["0.weight"] += 1  # the model holds its own copy
    np.testing.assert_array_equal(dst[0].weight.data, src[0].weight.data)


def test_load_state_dict_loads_buffers():
    src, dst = Block(), Block()
    src.norm.running_mean = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    src.norm.num_batches = np.array(4, dtype=np.int64)
    dst.load_state_dict(src.state_dict())
    np.testing.assert_array_equal(dst.norm.running_mean, [1.0, 2.0, 3.0])
    assert dst.norm.num_batches == 4 and dst.norm.num_batches.dtype == np.int64


def test_load_state_dict_missing_key_is_named_and_nothing_changes(rng):
    model = small_model(rng)
    before = model.state_dict()
    state = {k: v + 1 for k, v in before.items()}
    del state["2.bias"]
    with pytest.raises(KeyError, match=r"missing keys \['2.bias'\]"):
        model.load_state_dict(state)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_unexpected_key_is_named_and_nothing_changes(rng):
    model = small_model(rng)
    before = model.state_dict()
    state = {k: v + 1 for k, v in before.items()}
    state["9.weight"] = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises(KeyError, match=r"unexpected keys \['9.weight'\]"):
        model.load_state_dict(state)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_shape_mismatch_names_key_and_both_shapes_and_changes_nothing(rng):
    model = small_model(rng)
    before = model.state_dict()
    state = {k: v + 1 for k, v in before.items()}
    state["4.weight"] = np.zeros((5, 3), dtype=np.float32)  # transposed: (out, in) is (3, 5)
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    msg = str(info.value)
    assert "'4.weight'" in msg and "(5, 3)" in msg and "(3, 5)" in msg
    # "0.weight" fits and comes first: it must not have been written either.
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_non_strict_loads_what_it_can(rng):
    model = small_model(rng)
    state = {"0.bias": np.arange(6, dtype=np.float32), "extra": np.zeros(1)}
    before = model.state_dict()
    model.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(model[0].bias.data, np.arange(6))
    np.testing.assert_array_equal(model[0].weight.data, before["0.weight"])


# ------------------------------------------------------------------------- backward before forward


ALL_LAYERS = {
    "Linear": lambda: Linear(4, 4, rng=np.random.default_rng(0)),
    "ReLU": ReLU,
    "LeakyReLU": LeakyReLU,
    "ELU": ELU,
    "Sigmoid": Sigmoid,
    "Tanh": Tanh,
    "Softplus": Softplus,
    "GELU": GELU,
    "GELU-tanh": lambda: GELU("tanh"),
    "Maxout": lambda: Maxout(2),
    "Flatten": Flatten,
    "Sequential": lambda: Sequential(Linear(4, 4, rng=np.random.default_rng(0)), ReLU()),
}


@pytest.mark.parametrize("name", ALL_LAYERS)
def test_backward_before_forward_is_a_runtime_error_naming_the_layer(name):
    layer = ALL_LAYERS[name]()
    expected = "ReLU" if name == "Sequential" else type(layer).__name__  # the last layer runs first
    with pytest.raises(RuntimeError, match=f"{expected}.backward was called before forward"):
        layer.backward(np.ones((2, 4), dtype=np.float32))


@pytest.mark.parametrize("name", ALL_LAYERS)
def test_second_backward_for_one_forward_is_a_runtime_error(name):
    layer = ALL_LAYERS[name]()
    y = layer.forward(np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4))
    layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones_like(y))


def test_base_layer_has_no_computation():
    with pytest.raises(NotImplementedError, match="Layer does not define forward"):
        Layer()(np.zeros(1))
    with pytest.raises(NotImplementedError, match="Layer does not define backward"):
        Layer().backward(np.zeros(1))


def test_repr_lists_children(rng):
    text = repr(Sequential(Linear(2, 3, rng=rng), GELU("tanh")))
    assert "(0): Linear(in_features=2, out_features=3, bias=True)" in text
    assert "(1): GELU(approximate='tanh')" in text


# ----------------------------------------------------------------------------------------- torch


@pytest.mark.oracle
def test_state_dict_keys_and_shapes_equal_torch_sequential(rng):
    torch = pytest.importorskip("torch")
    model = Sequential(Linear(4, 6, rng=rng), ReLU(), Linear(6, 3, bias=False, rng=rng), Tanh(), Linear(3, 2, rng=rng))
    twin = torch.nn.Sequential(
        torch.nn.Linear(4, 6),
        torch.nn.ReLU(),
        torch.nn.Linear(6, 3, bias=False),
        torch.nn.Tanh(),
        torch.nn.Linear(3, 2),
    )
    ours = model.state_dict()
    theirs = twin.state_dict()
    assert list(ours) == list(theirs)
    assert {k: v.shape for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    assert model.num_parameters() == sum(p.numel() for p in twin.parameters())


@pytest.mark.oracle
def test_state_dict_loads_into_torch_and_back(rng, tol):
    torch = pytest.importorskip("torch")
    model = small_model(rng)
    twin = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)
    )
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})  # strict
    x = rng.standard_normal((7, 4)).astype(np.float32)
    assert rel_err(model.forward(x), twin(torch.from_numpy(x)).detach().numpy()) < tol.oracle

    back = small_model(np.random.default_rng(1))
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(-0.5)
    back.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    for k, v in twin.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v.numpy())


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequential_matches_torch(rng, tol, dtype):
    pytest.importorskip("torch")
    model = small_model(rng, dtype)
    x = rng.standard_normal((9, 4)).astype(dtype)
    upstream = rng.standard_normal((9, 3)).astype(dtype)
    errors = oracle_errors(model, x, upstream)
    assert max(errors.values()) < tol.oracle_for(dtype), errors


def test_gradwise_exposes_core_classes():
    assert gw.Layer is Layer and gw.Parameter is Parameter and gw.Sequential is Sequential


# ------------------------------------------------------------------- the protocol: lazy zero_grad


def test_zero_grad_is_lazy_and_a_read_fills_the_same_buffer_with_zeros():
    p = Parameter(np.ones(3, dtype=np.float32))
    buf = p.grad
    buf += 5
    p.zero_grad()
    np.testing.assert_array_equal(buf, 5)  # nothing touched memory yet
    assert p.grad is buf and not buf.any()  # the read materializes the zeros


def test_fresh_grad_hands_out_the_buffer_once_after_zero_grad():
    p = Parameter(np.ones(3, dtype=np.float32))
    assert p.fresh_grad() is None  # a new parameter's zeros are materialized: add to them
    p.zero_grad()
    buf = p.fresh_grad()
    assert buf is p._grad
    buf[...] = 2.0
    assert p.fresh_grad() is None  # written: the next gradient must be added
    np.testing.assert_array_equal(p.grad, 2.0)


def test_add_grad_copies_the_first_gradient_and_adds_the_next():
    p = Parameter(np.zeros(3, dtype=np.float32))
    p.grad += 7  # stale values a copy must overwrite
    p.zero_grad()
    p.add_grad(np.array([1.0, 2.0, 3.0]))  # float64 value: cast to the gradient's float32
    p.add_grad(np.array([0.5, 0.5, 0.5], dtype=np.float32))
    assert p.grad.dtype == np.float32
    np.testing.assert_array_equal(p.grad, [1.5, 2.5, 3.5])


def test_assigning_grad_rebinds_it_and_clears_the_zero_mark():
    p = Parameter(np.zeros(4, dtype=np.float32))
    p.zero_grad()
    flat = np.arange(8, dtype=np.float32)
    p.grad = flat[2:6]  # a view into a flat buffer, as optimizers with flat buffers do
    np.testing.assert_array_equal(p.grad, [2, 3, 4, 5])
    p.zero_grad()
    out = p.fresh_grad()
    assert out is not None and np.shares_memory(out, flat)
    out[...] = -1
    np.testing.assert_array_equal(flat, [0, 1, -1, -1, -1, -1, 6, 7])


def test_astype_keeps_a_zero_mark():
    p = Parameter(np.ones(2, dtype=np.float32))
    p.grad += 3
    p.zero_grad()
    p.astype(np.float64)
    assert p.grad.dtype == np.float64 and not p.grad.any()


def test_a_parameter_used_twice_in_one_backward_gets_the_sum(rng):
    """Tied weights: the later layer in the backward writes fresh, the earlier one adds."""
    a, b = Linear(4, 4, rng=rng, dtype=np.float64), Linear(4, 4, rng=rng, dtype=np.float64)
    b.weight = a.weight
    model = Sequential(a, Tanh(), b)
    x, g = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    model.zero_grad()
    model.forward(x)
    model.backward(g)
    h = np.tanh(x @ a.weight.data.T + a.bias.data)
    gh = (g @ a.weight.data) * (1 - h * h)
    np.testing.assert_allclose(a.weight.grad, g.T @ h + gh.T @ x, rtol=1e-13)


# --------------------------------------------------------------- the protocol: the input_grad flag


class OldStyle(Layer):
    """A custom layer written before the flag existed: y = 2 x, backward(self, grad_out) only."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return 2 * x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return 2 * grad_out


def test_sequential_tells_only_its_first_layer_that_no_input_gradient_is_needed():
    first, second, third = FlagProbe(), FlagProbe(), FlagProbe()
    model = Sequential(first, second, third)
    x = np.ones((2, 3))
    model.forward(x)
    assert model.backward(x, input_grad=False) is None
    model.forward(x)
    np.testing.assert_array_equal(model.backward(x), x)
    assert first.flags == [False, True] and second.flags == [True, True] and third.flags == [True, True]


def test_a_nested_sequential_passes_the_flag_to_its_own_first_layer():
    inner_first, inner_second, outer_second = FlagProbe(), FlagProbe(), FlagProbe()
    model = Sequential(Sequential(inner_first, inner_second), outer_second)
    model.forward(np.ones(2))
    model.backward(np.ones(2), input_grad=False)
    assert inner_first.flags == [False] and inner_second.flags == [True] and outer_second.flags == [True]


def test_input_grad_false_gives_the_same_parameter_gradients(rng):
    model = small_model(rng, np.float64)
    x, g = rng.standard_normal((8, 4)), rng.standard_normal((8, 3))
    model.forward(x)
    gx = model.backward(g)
    full = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model.forward(x)
    assert model.backward(g, input_grad=False) is None
    for p, expected in zip(model.parameters(), full, strict=True):
        np.testing.assert_array_equal(p.grad, expected)
    assert gx.shape == x.shape


def test_an_old_style_custom_layer_works_first_in_a_sequential_and_inside_containers():
    from gradwise.layers import Concat, Parallel, Residual

    x = np.arange(6.0).reshape(2, 3)
    ones = np.ones_like(x)
    for model, expected in [
        (Sequential(OldStyle(), Linear(3, 2)), None),
        (Sequential(Residual(OldStyle())), 3 * ones),  # 1 (skip) + 2 (block)
        (Sequential(Concat(OldStyle(), OldStyle())), 4 * ones),
    ]:
        y = model.forward(x)
        assert model.backward(np.ones_like(y), input_grad=False) is None
        y = model.forward(x)
        grad = model.backward(np.ones_like(y))
        if expected is not None:
            np.testing.assert_array_equal(grad, expected)
    par = Parallel(OldStyle(), FlagProbe())
    y = par.forward((x, x))
    assert par.backward(np.ones_like(y), input_grad=False) is None
    y = par.forward((x, x))
    g0, g1 = par.backward(np.ones_like(y))
    np.testing.assert_array_equal(g0, 2 * np.ones_like(x))
    assert par[1].flags == [False, True]


def test_whether_backward_takes_the_flag_is_looked_up_once_per_class():
    from gradwise import core

    class Kwargs(Layer):
        def forward(self, x):
            return x

        def backward(self, grad_out, **kwargs):
            return None if kwargs.get("input_grad") is False else grad_out

    assert core._takes_input_grad(Kwargs) and not core._takes_input_grad(OldStyle)
    assert core._takes_input_grad(FlagProbe) and core._takes_input_grad(Linear)
    assert core._TAKES_INPUT_GRAD[OldStyle] is False
    core._TAKES_INPUT_GRAD[OldStyle] = True  # the cache is what is consulted
    try:
        with pytest.raises(TypeError, match="input_grad"):
            core.backward_of(OldStyle(), np.ones(2), input_grad=False)
    finally:
        core._TAKES_INPUT_GRAD[OldStyle] = False
    np.testing.assert_array_equal(core.backward_of(OldStyle(), np.ones(2), input_grad=False), 2 * np.ones(2))
