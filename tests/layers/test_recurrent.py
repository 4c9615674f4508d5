"""Tests of gradwise/layers/recurrent.py: RNN, LSTM, GRU and TakeLast (with _rnn_base, _rnn_cells)."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
from helpers import record, rel_err
from hypothesis import given
from hypothesis import strategies as st

import gradwise as gw
from gradwise.diagnostics import check_layer, check_model
from gradwise.diagnostics.gradcheck import numerical_gradient, rel_error
from gradwise.layers import Linear
from gradwise.layers.recurrent import GRU, LSTM, RNN, TakeLast
from gradwise.losses import SoftmaxCrossEntropy

# (id, class, extra constructor arguments)
CELLS = [
    ("rnn-tanh", RNN, {}),
    ("rnn-relu", RNN, {"nonlinearity": "relu"}),
    ("lstm", LSTM, {}),
    ("gru", GRU, {}),
]
CELL_IDS = [c[0] for c in CELLS]
# (num_layers, bidirectional, batch_first)
STRUCTURES = list(itertools.product([1, 2], [False, True], [False, True]))
STRUCTURE_IDS = [f"L{nl}-{'bi' if bi else 'uni'}-{'bf' if bf else 'tf'}" for nl, bi, bf in STRUCTURES]
DTYPES = [np.float32, np.float64]


def make(cell: tuple, input_size: int, hidden: int, rng: np.random.Generator, dtype=np.float64, **kwargs):
    _, cls, extra = cell
    return cls(input_size, hidden, **extra, **kwargs, rng=rng, dtype=dtype)


def is_lstm(layer) -> bool:
    return isinstance(layer, LSTM)


def seq_shape(layer, t: int, n: int, features: int) -> tuple[int, int, int]:
    return (n, t, features) if layer.batch_first else (t, n, features)


def state_shape(layer, n: int) -> tuple[int, int, int]:
    return (layer.num_layers * layer.num_directions, n, layer.hidden_size)


def run_with_state(layer, x, h0, c0):
    """(output, h_n, c_n or None) from one forward started at (h0, c0)."""
    if is_lstm(layer):
        out, (h_n, c_n) = layer.forward_with_state(x, (h0, c0))
        return out, h_n, c_n
    out, h_n = layer.forward_with_state(x, h0)
    return out, h_n, None


def backward_with_state(layer, g, gh, gc):
    if is_lstm(layer):
        return layer.backward(g, grad_h_n=gh, grad_c_n=gc)
    return layer.backward(g, grad_h_n=gh)


# ----------------------------------------------------------------------------------- gradient check


def full_gradient_check(layer, x, h0, c0, rng, eps=1e-6):
    """Relative errors of every gradient (input, h0, c0, each parameter) of
    L = sum(out * G) + sum(h_n * G_h) (+ sum(c_n * G_c)), against centered differences."""
    out, h_n, c_n = run_with_state(layer, x, h0, c0)
    g, gh = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    gc = rng.standard_normal(c_n.shape) if c_n is not None else None
    frozen = copy.deepcopy(layer.rng.bit_generator.state)

    def objective() -> float:
        layer.rng.bit_generator.state = copy.deepcopy(frozen)  # the same dropout masks every time
        o, hn, cn = run_with_state(layer, x, h0, c0)
        total = np.sum(o * g) + np.sum(hn * gh)
        return float(total + (np.sum(cn * gc) if cn is not None else 0.0))

    layer.zero_grad()
    objective()
    analytic = {"input": backward_with_state(layer, g, gh, gc), "h0": layer.grad_h0}
    if c0 is not None:
        analytic["c0"] = layer.grad_c0
    arrays = {"input": x, "h0": h0, "c0": c0}
    targets = [(name, arrays[name], grad) for name, grad in analytic.items()]
    targets += [(name, p.data, p.grad.copy()) for name, p in layer.named_parameters()]
    errors = {}
    for name, array, grad in targets:
        numeric = numerical_gradient(objective, array, np.arange(array.size), eps)
        errors[name] = rel_error(grad.ravel(), numeric)
    return errors


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize(("num_layers", "bidirectional", "batch_first"), STRUCTURES, ids=STRUCTURE_IDS)
def test_gradient_check_input_state_and_every_parameter(rng, tol, cell, num_layers, bidirectional, batch_first):
    layer = make(cell, 2, 3, rng, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    x = rng.standard_normal(seq_shape(layer, 4, 2, 2))
    h0 = rng.standard_normal(state_shape(layer, 2))
    c0 = rng.standard_normal(state_shape(layer, 2)) if is_lstm(layer) else None
    errors = full_gradient_check(layer, x, h0, c0, rng)
    names = {name for name, _ in layer.named_parameters()}
    assert set(errors) == {"input", "h0"} | ({"c0"} if c0 is not None else set()) | names
    assert max(errors.values()) < tol.gradcheck, errors


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_gradient_check_with_dropout_between_layers_in_training_mode(rng, tol, cell):
    # check_layer rewinds every `rng` attribute, so all evaluations see the same dropout masks.
    layer = make(cell, 2, 3, rng, num_layers=3, dropout=0.4, bidirectional=True)
    report = check_layer(layer, rng.standard_normal((4, 2, 2)), max_entries=None)
    assert all(c.checked == c.total for c in report.checks)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_gradient_check_without_bias(rng, tol, cell):
    layer = make(cell, 3, 4, rng, num_layers=2, bias=False, bidirectional=True, batch_first=True)
    report = check_layer(layer, rng.standard_normal((2, 5, 3)), max_entries=None)
    assert [c.name for c in report.checks] == ["input"] + [n for n, _ in layer.named_parameters()]
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


def test_gradient_check_of_a_classifier_on_the_final_states(rng, tol):
    model = gw.Sequential(
        GRU(2, 4, batch_first=True, bidirectional=True, rng=rng), TakeLast(bidirectional=True), Linear(8, 3, rng=rng)
    )
    x, y = rng.standard_normal((5, 6, 2)), rng.integers(0, 3, size=5)
    report = check_model(model, SoftmaxCrossEntropy(), x, y, check_input=True, max_entries=None)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


def test_a_broken_backward_is_caught(rng, tol):
    layer = make(CELLS[3], 2, 3, rng)
    x, h0 = rng.standard_normal((4, 2, 2)), rng.standard_normal((1, 2, 3))
    errors = full_gradient_check(layer, x, h0, None, rng)
    assert max(errors.values()) < tol.gradcheck
    original = layer.backward

    def wrong(grad_out, grad_h_n=None):  # forgets the gradient that arrives through h_n
        return original(grad_out, grad_h_n=None)

    layer.backward = wrong
    errors = full_gradient_check(layer, x, h0, None, rng)
    assert errors["h0"] > tol.gradcheck_bug and errors["weight_hh_l0"] > tol.gradcheck_bug


# ------------------------------------------------------------------------------------------ oracle


@pytest.fixture(scope="module")
def torch():
    """torch (or skip), on one thread for this module: on tensors this small, more threads only
    spin-wait for each other, which makes a test tens of times slower on a busy machine."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def torch_twin(torch, layer, dtype):
    """The torch.nn twin of `layer`, built from its constructor settings, with its state dict."""
    cls = getattr(torch.nn, type(layer).__name__)
    kwargs = {"nonlinearity": layer.nonlinearity} if isinstance(layer, RNN) else {}
    twin = cls(
        layer.input_size,
        layer.hidden_size,
        num_layers=layer.num_layers,
        bias=layer.bias,
        batch_first=layer.batch_first,
        dropout=layer.dropout,
        bidirectional=layer.bidirectional,
        dtype=torch.float64 if np.dtype(dtype) == np.float64 else torch.float32,
        **kwargs,
    )
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return twin


def upstream(layer, x, rng):
    """Random upstream gradients for the output and the final state(s), in the dtype of `x`."""
    t, n = x.shape[:2] if not layer.batch_first else x.shape[1::-1]
    out_shape = seq_shape(layer, t, n, layer.num_directions * layer.hidden_size)
    gs = [rng.standard_normal(out_shape), rng.standard_normal(state_shape(layer, n))]
    if is_lstm(layer):
        gs.append(rng.standard_normal(state_shape(layer, n)))
    return [g.astype(x.dtype) for g in gs]


def gradwise_results(layer, x, h0, c0, grads):
    """Output, final states, input / initial-state gradients and parameter gradients by name."""
    out, h_n, c_n = run_with_state(layer, x, h0, c0)
    layer.zero_grad()
    gx = backward_with_state(layer, *grads, *([None] if len(grads) == 2 else []))
    res = {"output": out, "h_n": h_n, "input": gx, "h0": layer.grad_h0}
    if c_n is not None:
        res.update(c_n=c_n, c0=layer.grad_c0)
    res.update({name: p.grad.copy() for name, p in layer.named_parameters()})
    return res


def torch_results(torch, layer, x, h0, c0, grads, dtype):
    """The same quantities from the torch twin of `layer`, computed in `dtype`."""
    twin = torch_twin(torch, layer, dtype)
    twin.train(layer.training)

    def tensor(a):
        return torch.tensor(np.asarray(a, dtype=dtype), requires_grad=True)

    xt, h0t = tensor(x), tensor(h0)
    g = [torch.from_numpy(np.asarray(a, dtype=dtype)) for a in grads]
    if c0 is not None:
        c0t = tensor(c0)
        out, (h_n, c_n) = twin(xt, (h0t, c0t))
        ((out * g[0]).sum() + (h_n * g[1]).sum() + (c_n * g[2]).sum()).backward()
    else:
        out, h_n = twin(xt, h0t)
        ((out * g[0]).sum() + (h_n * g[1]).sum()).backward()
    res = {"output": out, "h_n": h_n, "input": xt.grad, "h0": h0t.grad}
    if c0 is not None:
        res.update(c_n=c_n, c0=c0t.grad)
    res.update({name: p.grad for name, p in twin.named_parameters()})
    return {k: v.detach().numpy() for k, v in res.items()}


def oracle_errors(torch, layer, x, h0, c0, rng):
    """Norm-wise relative errors against torch (same dtype, same weights) of the output, final
    states, input and initial-state gradients and every parameter gradient, with gradients
    flowing in through the output and the final state(s)."""
    grads = upstream(layer, x, rng)
    ours = gradwise_results(layer, x, h0, c0, grads)
    theirs = torch_results(torch, layer, x, h0, c0, grads, x.dtype)
    assert list(ours) == list(theirs), f"{list(ours)} != torch's {list(theirs)}"
    errors = {name: rel_err(ours[name], theirs[name]) for name in ours}
    kind = np.dtype(x.dtype).name
    for name, err in errors.items():
        key = name if name in ("output", "h_n", "c_n", "input", "h0", "c0") else "param"
        record(f"{kind}:{type(layer).__name__}:{key}", err)
    return errors


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize(("num_layers", "bidirectional", "batch_first"), STRUCTURES, ids=STRUCTURE_IDS)
def test_matches_torch(torch, rng, tol, dtype, cell, num_layers, bidirectional, batch_first):
    layer = make(cell, 4, 5, rng, dtype, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    x = rng.standard_normal(seq_shape(layer, 7, 3, 4)).astype(dtype)
    h0 = rng.standard_normal(state_shape(layer, 3)).astype(dtype)
    c0 = rng.standard_normal(state_shape(layer, 3)).astype(dtype) if is_lstm(layer) else None
    errors = oracle_errors(torch, layer, x, h0, c0, rng)
    assert max(errors.values()) < tol.oracle_for(dtype), errors


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_matches_torch_with_dropout_in_eval_mode_and_without_bias(torch, rng, tol, dtype, cell):
    for bias in (True, False):
        layer = make(cell, 3, 6, rng, dtype, num_layers=3, dropout=0.5, bias=bias, bidirectional=True).eval()
        x = rng.standard_normal((6, 4, 3)).astype(dtype)
        h0 = rng.standard_normal(state_shape(layer, 4)).astype(dtype)
        c0 = rng.standard_normal(state_shape(layer, 4)).astype(dtype) if is_lstm(layer) else None
        errors = oracle_errors(torch, layer, x, h0, c0, rng)
        assert max(errors.values()) < tol.oracle_for(dtype), (bias, errors)


@pytest.mark.oracle
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_float32_is_as_accurate_as_torchs_on_a_long_sequence_of_the_mnist1d_shape(torch, rng, tol, cell):
    # Over 40 steps, rounding differences compound (a weight gradient sums 40 * 50 products), so
    # both float32 results are measured against torch in float64 on the same float32 inputs.
    layer = make(cell, 1, 6, rng, np.float32, batch_first=True, bidirectional=True)
    x = rng.standard_normal((50, 40, 1)).astype(np.float32)
    h0 = rng.standard_normal(state_shape(layer, 50)).astype(np.float32)
    c0 = rng.standard_normal(state_shape(layer, 50)).astype(np.float32) if is_lstm(layer) else None
    grads = upstream(layer, x, rng)
    exact = torch_results(torch, layer, x, h0, c0, grads, np.float64)
    ours = gradwise_results(layer, x, h0, c0, grads)
    theirs = torch_results(torch, layer, x, h0, c0, grads, np.float32)
    for name in exact:
        ours_err, torch_err = rel_err(ours[name], exact[name]), rel_err(theirs[name], exact[name])
        record(f"float32-vs-float64:{type(layer).__name__}:{name}", ours_err)
        assert ours_err < max(tol.oracle, 2 * torch_err), (name, ours_err, torch_err)


@pytest.mark.oracle
@given(
    cell=st.sampled_from(CELLS),
    sizes=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 9), st.integers(1, 4)),
    num_layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_torch_for_any_shape(torch, tol, cell, sizes, num_layers, bidirectional, batch_first, seed):
    rng = np.random.default_rng(seed)
    input_size, hidden, t, n = sizes
    layer = make(
        cell, input_size, hidden, rng, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first
    )
    x = rng.standard_normal(seq_shape(layer, t, n, input_size))
    h0 = rng.standard_normal(state_shape(layer, n))
    c0 = rng.standard_normal(state_shape(layer, n)) if is_lstm(layer) else None
    errors = oracle_errors(torch, layer, x, h0, c0, rng)
    assert max(errors.values()) < tol.oracle64, errors


@pytest.mark.oracle
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, True), (3, False)])
def test_state_dict_keys_and_shapes_are_torchs_and_load_both_ways(torch, rng, tol, cell, num_layers, bidirectional):
    layer = make(cell, 3, 5, rng, np.float32, num_layers=num_layers, bidirectional=bidirectional)
    twin = getattr(torch.nn, type(layer).__name__)(
        3, 5, num_layers=num_layers, bidirectional=bidirectional, **cell[2]
    )
    ours, theirs = layer.state_dict(), twin.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == tuple(theirs[k].shape) and ours[k].dtype == np.float32 for k in ours)
    # torch -> gradwise: same outputs from torch's own initial weights.
    layer.load_state_dict({k: v.numpy() for k, v in theirs.items()})
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x))[0].numpy()
    assert rel_err(layer.forward(x), expected) < tol.oracle
    # gradwise -> torch.
    fresh = make(cell, 3, 5, rng, np.float32, num_layers=num_layers, bidirectional=bidirectional)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in fresh.state_dict().items()})
    with torch.no_grad():
        expected = twin(torch.from_numpy(x))[0].numpy()
    assert rel_err(fresh.forward(x), expected) < tol.oracle


# ------------------------------------------------------------------------------------- semantics


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_forward_uses_the_h0_attribute_and_leaves_the_final_state(rng, cell):
    layer = make(cell, 3, 4, rng, num_layers=2, bidirectional=True)
    x = rng.standard_normal((5, 2, 3))
    h0 = rng.standard_normal(state_shape(layer, 2))
    c0 = rng.standard_normal(state_shape(layer, 2)) if is_lstm(layer) else None
    expected, h_n, c_n = run_with_state(layer, x, h0, c0)
    layer.h0 = h0
    if c0 is not None:
        layer.c0 = c0
    np.testing.assert_array_equal(layer.forward(x), expected)
    np.testing.assert_array_equal(layer.h_n, h_n)
    if c0 is not None:
        np.testing.assert_array_equal(layer.c_n, c_n)
    layer.h0 = None
    layer.c0 = None
    zeros = run_with_state(layer, x, None, None)[0]
    np.testing.assert_array_equal(layer.forward(x), zeros)
    assert not np.array_equal(zeros, expected)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_carrying_the_state_over_equals_one_long_sequence(rng, cell):
    layer = make(cell, 2, 3, rng, num_layers=2)
    x = rng.standard_normal((8, 3, 2))
    whole = layer.forward(x)
    first = layer.forward(x[:5])
    layer.h0 = layer.h_n
    if is_lstm(layer):
        layer.c0 = layer.c_n
    second = layer.forward(x[5:])
    np.testing.assert_allclose(np.concatenate([first, second]), whole, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_final_state_is_the_output_at_each_directions_last_step(rng, cell):
    layer = make(cell, 3, 4, rng, bidirectional=True, batch_first=True)
    out = layer.forward(rng.standard_normal((2, 6, 3)))
    np.testing.assert_array_equal(layer.h_n[0], out[:, -1, :4])
    np.testing.assert_array_equal(layer.h_n[1], out[:, 0, 4:])
    np.testing.assert_array_equal(TakeLast(bidirectional=True).forward(out), np.concatenate(layer.h_n, axis=1))


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_reverse_direction_is_the_forward_one_on_the_reversed_sequence(rng, cell):
    bi = make(cell, 3, 4, rng, bidirectional=True)
    uni = make(cell, 3, 4, rng)
    uni.load_state_dict({k.replace("_reverse", ""): v for k, v in bi.state_dict().items() if "reverse" in k})
    x = rng.standard_normal((6, 2, 3))
    np.testing.assert_allclose(bi.forward(x)[::-1, :, 4:], uni.forward(x[::-1]), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_batch_first_is_a_transpose(rng, cell):
    tf = make(cell, 3, 4, rng, num_layers=2, bidirectional=True)
    bf = make(cell, 3, 4, rng, num_layers=2, bidirectional=True, batch_first=True)
    bf.load_state_dict(tf.state_dict())
    x = rng.standard_normal((5, 2, 3))
    g = rng.standard_normal((5, 2, 8))
    y = tf.forward(x)
    np.testing.assert_array_equal(bf.forward(x.transpose(1, 0, 2)), y.transpose(1, 0, 2))
    np.testing.assert_array_equal(bf.h_n, tf.h_n)
    np.testing.assert_array_equal(bf.backward(g.transpose(1, 0, 2)), tf.backward(g).transpose(1, 0, 2))


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_gradient_of_the_final_state_alone(rng, tol, cell):
    layer = make(cell, 2, 3, rng, num_layers=2, bidirectional=True)
    x = rng.standard_normal((4, 2, 2))
    layer.forward(x)
    gh = rng.standard_normal(layer.h_n.shape)
    gx = layer.backward(None, grad_h_n=gh)  # nothing flows into the output sequence

    def objective() -> float:
        layer.forward(x)
        return float(np.sum(layer.h_n * gh))

    numeric = numerical_gradient(objective, x, np.arange(x.size))
    assert rel_error(gx.ravel(), numeric) < tol.gradcheck


def test_backward_accumulates_into_parameter_gradients(rng):
    layer = make(CELLS[2], 3, 4, rng, num_layers=2)
    x, g = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 4))
    layer.forward(x)
    layer.backward(g)
    once = {name: p.grad.copy() for name, p in layer.named_parameters()}
    layer.forward(x)
    layer.backward(g)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[name], rtol=1e-14)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_dropout_acts_between_layers_in_training_only(rng, cell):
    x = rng.standard_normal((5, 3, 2))
    one = make(cell, 2, 4, rng, dropout=0.5)  # a single layer: nothing to drop (as torch)
    np.testing.assert_array_equal(one.forward(x), one.eval().forward(x))
    two = make(cell, 2, 4, rng, num_layers=2, dropout=0.5)
    assert not np.allclose(two.train().forward(x), two.eval().forward(x))
    everything = make(cell, 2, 4, rng, num_layers=2, dropout=1.0)
    reference = make(cell, 2, 4, rng, num_layers=2)
    reference.load_state_dict(everything.state_dict())
    # With p = 1 the second layer sees zeros: the same output as with a zero first layer.
    for name, p in reference.named_parameters():
        if name.endswith("_l0"):
            p.data[...] = 0
    np.testing.assert_allclose(everything.forward(x), reference.forward(np.zeros_like(x)), rtol=1e-14)


def test_dropout_masks_come_from_the_layer_rng(rng):
    a = GRU(2, 3, num_layers=2, dropout=0.3, rng=np.random.default_rng(1), dtype=np.float64)
    b = copy.deepcopy(a)  # the same generator state: the same masks
    x = rng.standard_normal((4, 2, 2))
    first = a.forward(x)
    np.testing.assert_array_equal(first, b.forward(x))
    assert not np.array_equal(first, a.forward(x))  # a fresh mask at every forward


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("hidden", [1, 4, 25])
def test_initialization_is_bounded_by_one_over_sqrt_hidden(cell, hidden):
    layer = make(cell, 3, hidden, np.random.default_rng(0), np.float32, num_layers=2, bidirectional=True)
    values = np.concatenate([p.data.ravel() for p in layer.parameters()])
    assert values.dtype == np.float32
    assert np.abs(values).max() <= 1 / math.sqrt(hidden)


def test_initialization_has_the_moments_of_the_uniform_distribution(tol):
    layer = LSTM(3, 100, num_layers=2, bidirectional=True, rng=np.random.default_rng(0))
    values = np.concatenate([p.data.ravel() for p in layer.parameters()]).astype(np.float64)
    bound = 1 / math.sqrt(100)
    assert values.size > 250_000
    assert abs(values.mean()) < tol.init_var * bound
    assert abs(values.var() / (bound**2 / 3) - 1) < tol.init_var  # U(-b, b): variance b^2 / 3


def test_gate_blocks_follow_torch_order(rng):
    gates = {"lstm": 4, "gru": 3, "rnn-tanh": 1}
    for cell in CELLS:
        if cell[0] not in gates:
            continue
        layer = make(cell, 3, 5, rng, num_layers=2, bidirectional=True)
        g = gates[cell[0]]
        assert [n for n, _ in layer.named_parameters()] == [
            f"{kind}_l{k}{sfx}"
            for k in range(2)
            for sfx in ("", "_reverse")
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        ]
        assert layer.weight_ih_l0.shape == (g * 5, 3) and layer.weight_ih_l1_reverse.shape == (g * 5, 10)
        assert layer.weight_hh_l1.shape == (g * 5, 5) and layer.bias_hh_l0_reverse.shape == (g * 5,)


def test_lstm_gates_are_i_f_g_o(rng):
    # With W = 0 the bias of each gate block alone sets the gate, which identifies the order.
    layer = LSTM(1, 1, rng=rng, dtype=np.float64)
    for p in layer.parameters():
        p.data[...] = 0
    layer.bias_ih_l0.data[:] = [2.0, -1.0, 0.5, 3.0]  # i, f, g, o pre-activations
    layer.c0 = np.full((1, 1, 1), 0.7)
    layer.forward(np.zeros((1, 1, 1)))
    def sig(a):
        return 1 / (1 + np.exp(-a))

    c = sig(-1.0) * 0.7 + sig(2.0) * np.tanh(0.5)
    np.testing.assert_allclose(layer.c_n.ravel(), [c], rtol=1e-14)
    np.testing.assert_allclose(layer.h_n.ravel(), [sig(3.0) * np.tanh(c)], rtol=1e-14)


def test_gru_reset_gate_is_applied_after_the_matrix_product(rng):
    # r multiplies (W_hn h + b_hn): with h0 = 0 and b_hn = 1 the candidate is tanh(r * 1); with
    # Cho et al.'s placement, r * h = 0 and it would be tanh(b_hn) = tanh(1).
    layer = GRU(1, 1, rng=rng, dtype=np.float64)
    for p in layer.parameters():
        p.data[...] = 0
    layer.bias_hh_l0.data[:] = [0.0, -30.0, 1.0]  # r = 1/2, z ~ 0, b_hn = 1
    out = layer.forward(np.zeros((1, 1, 1)))
    np.testing.assert_allclose(out.ravel(), [np.tanh(0.5)], rtol=1e-12)


# ------------------------------------------------------------------------------------------ dtypes


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("input_dtype", [np.float32, np.float64, np.int64])
def test_float32_layer_computes_in_float32(rng, cell, input_dtype):
    layer = make(cell, 3, 4, rng, np.float32, bidirectional=True)
    x = (rng.standard_normal((5, 2, 3)) * 3).astype(input_dtype)
    y = layer.forward(x)
    assert y.dtype == np.float32 and y.shape == (5, 2, 8) and layer.h_n.dtype == np.float32
    gx = layer.backward(np.ones_like(y))
    assert gx.dtype == np.float32 and gx.shape == (5, 2, 3) and layer.grad_h0.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_astype_float64_then_everything_is_float64(rng, cell):
    layer = make(cell, 3, 4, rng, np.float32).astype(np.float64)
    layer.h0 = np.zeros((1, 2, 4), dtype=np.float32)
    y = layer.forward(rng.standard_normal((5, 2, 3)).astype(np.float32))
    assert y.dtype == np.float64 and layer.h_n.dtype == np.float64
    assert layer.backward(np.ones_like(y)).dtype == np.float64


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("shape", [(5, 3), (5,), (2, 5, 3, 3)], ids=str)
def test_a_sequence_of_the_wrong_rank_names_layer_and_shapes(rng, cell, shape):
    layer = make(cell, 3, 4, rng, batch_first=True)
    with pytest.raises(ValueError) as info:
        layer.forward(np.zeros(shape))
    msg = str(info.value)
    name = type(layer).__name__
    assert f"{name}(3, 4)" in msg and "rank 3" in msg and str(shape) in msg and "(N, T, 3)" in msg


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_wrong_input_size_names_layer_and_shapes(rng, cell):
    layer = make(cell, 3, 4, rng)
    with pytest.raises(ValueError) as info:
        layer.forward(np.zeros((5, 2, 7)))
    msg = str(info.value)
    assert f"{type(layer).__name__}(3, 4)" in msg and "(5, 2, 7)" in msg and "(T, N, 3)" in msg


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_wrong_initial_state_shape_names_layer_and_shapes(rng, cell):
    layer = make(cell, 3, 4, rng, num_layers=2, bidirectional=True)
    x = np.zeros((5, 2, 3))
    good, bad = np.zeros((4, 2, 4)), np.zeros((2, 2, 4))
    for h0, c0, which in ((bad, good, "h0"), (good, bad, "c0")):
        if which == "c0" and not is_lstm(layer):
            continue
        with pytest.raises(ValueError) as info:
            run_with_state(layer, x, h0, c0)
        msg = str(info.value)
        assert f"{type(layer).__name__}(3, 4)" in msg and which in msg and "(2, 2, 4)" in msg and "(4, 2, 4)" in msg
    layer.h0 = bad
    with pytest.raises(ValueError, match=r"h0 of shape \(2, 2, 4\)"):
        layer.forward(x)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_backward_errors(rng, cell):
    layer = make(cell, 3, 4, rng)
    with pytest.raises(RuntimeError, match="backward was called before forward"):
        layer.backward(np.zeros((5, 2, 4)))
    layer.forward(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"grad_out of shape \(5, 2, 3\) does not match the output shape \(5, 2, 4\)"):
        layer.backward(np.zeros((5, 2, 3)))
    layer.backward(np.zeros((5, 2, 4)))
    with pytest.raises(RuntimeError, match="backward was called before forward"):
        layer.backward(np.zeros((5, 2, 4)))


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_empty_batch(rng, cell):
    layer = make(cell, 3, 4, rng, np.float32, num_layers=2, bidirectional=True)
    y = layer.forward(np.zeros((5, 0, 3), dtype=np.float32))
    assert y.shape == (5, 0, 8) and layer.h_n.shape == (4, 0, 4)
    assert layer.backward(y).shape == (5, 0, 3) and layer.grad_h0.shape == (4, 0, 4)
    assert not any(p.grad.any() for p in layer.parameters())


def test_empty_sequence_is_refused(rng):
    with pytest.raises(ValueError, match=r"GRU\(3, 4\): input of shape \(0, 2, 3\) has no time steps"):
        GRU(3, 4, rng=rng).forward(np.zeros((0, 2, 3)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_size": 0}, "input_size=0 must be a positive integer"),
        ({"hidden_size": -1}, "hidden_size=-1 must be a positive integer"),
        ({"num_layers": 0}, "num_layers=0 must be a positive integer"),
        ({"dropout": 1.5}, r"dropout=1.5 must be a number in \[0, 1\]"),
        ({"dtype": np.int32}, "dtype=.* must be a floating dtype"),
    ],
)
@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_constructor_arguments_are_validated(cls, kwargs, match):
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(ValueError, match=f"{cls.__name__}: {match}"):
        cls(**args)


def test_rnn_nonlinearity_is_validated():
    with pytest.raises(ValueError, match="RNN: nonlinearity='sigmoid' must be 'tanh' or 'relu'"):
        RNN(3, 4, nonlinearity="sigmoid")


def test_repr_shows_the_options():
    assert repr(RNN(3, 4)) == "RNN(3, 4)"
    assert repr(RNN(3, 4, nonlinearity="relu")) == "RNN(3, 4, nonlinearity='relu')"
    expected = "GRU(1, 6, num_layers=2, bias=False, batch_first=True, dropout=0.2, bidirectional=True)"
    assert repr(GRU(1, 6, 2, False, True, 0.2, True)) == expected


# ----------------------------------------------------------------------------------------- TakeLast


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_take_last_gradient_check(rng, tol, batch_first, bidirectional):
    report = check_layer(TakeLast(batch_first, bidirectional), rng.standard_normal((3, 5, 4)), max_entries=None)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


def test_take_last_picks_the_right_steps(rng):
    x = rng.standard_normal((2, 5, 6))
    np.testing.assert_array_equal(TakeLast().forward(x), x[:, -1])
    np.testing.assert_array_equal(TakeLast(batch_first=False).forward(x), x[-1])
    both = TakeLast(bidirectional=True).forward(x)
    np.testing.assert_array_equal(both, np.concatenate([x[:, -1, :3], x[:, 0, 3:]], axis=1))


def test_take_last_errors(rng):
    with pytest.raises(ValueError, match=r"TakeLast: expected a non-empty sequence \(N, T, F\), got shape \(2, 5\)"):
        TakeLast().forward(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"odd number of features"):
        TakeLast(bidirectional=True).forward(np.zeros((2, 5, 3)))
    with pytest.raises(RuntimeError, match="backward was called before forward"):
        TakeLast().backward(np.zeros((2, 3)))
