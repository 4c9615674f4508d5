"""Tests of gradwise/layers/normalization.py: BatchNorm1d, BatchNorm2d, LayerNorm."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
from helpers import record, rel_err, run_gradwise, run_torch
from hypothesis import given
from hypothesis import strategies as st

from gradwise.core import Sequential
from gradwise.diagnostics import check_layer
from gradwise.layers.normalization import BatchNorm1d, BatchNorm2d, LayerNorm

DTYPES = [np.float32, np.float64]
# (class, input shape): C = shape[1] channels
BN_SHAPES = [
    (BatchNorm1d, (6, 4)),
    (BatchNorm1d, (2, 3)),
    (BatchNorm1d, (5, 3, 7)),
    (BatchNorm1d, (1, 2, 5)),  # one sample, but 5 values per channel: fine while training
    (BatchNorm2d, (4, 3, 5, 6)),
    (BatchNorm2d, (2, 5, 1, 3)),
]
BN_IDS = [f"{cls.__name__}-{shape}" for cls, shape in BN_SHAPES]
# (normalized_shape, input shape)
LN_SHAPES = [
    (5, (4, 5)),
    (7, (7,)),
    (6, (2, 3, 6)),
    ((3, 4), (2, 3, 4)),
    ((2, 3, 4), (3, 2, 3, 4)),
    (1, (3, 1)),
]
LN_IDS = [f"{ns}-{shape}" for ns, shape in LN_SHAPES]
LN_OPTIONS = [(True, True), (True, False), (False, True)]  # (elementwise_affine, bias)
LN_OPTION_IDS = ["affine", "weight-only", "no-affine"]


@pytest.fixture(scope="module")
def torch() -> Any:
    """torch (or skip), on one thread for this module: on tensors this small more threads only
    spin-wait for each other, which makes the oracle tests several times slower on a busy machine."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def make_bn(
    cls: type,
    c: int,
    rng: np.random.Generator,
    dtype: Any = np.float64,
    *,
    affine: bool = True,
    track: bool = True,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
) -> BatchNorm1d | BatchNorm2d:
    """A batch-norm layer with non-trivial weights and running statistics (so that a wrong formula
    cannot hide behind gamma = 1, beta = 0, mean = 0, var = 1)."""
    layer = cls(c, eps=eps, momentum=momentum, affine=affine, track_running_stats=track, dtype=dtype)
    if affine:
        layer.weight.data[...] = rng.uniform(0.5, 2.0, c)
        layer.bias.data[...] = rng.standard_normal(c)
    if track:
        layer.running_mean[...] = rng.standard_normal(c)
        layer.running_var[...] = rng.uniform(0.5, 2.0, c)
        layer.num_batches_tracked[...] = 3
    return layer


def make_ln(
    normalized_shape: Any,
    rng: np.random.Generator,
    dtype: Any = np.float64,
    *,
    affine: bool = True,
    bias: bool = True,
    eps: float = 1e-5,
) -> LayerNorm:
    layer = LayerNorm(normalized_shape, eps=eps, elementwise_affine=affine, bias=bias, dtype=dtype)
    if layer.weight is not None:
        layer.weight.data[...] = rng.uniform(0.5, 2.0, layer.weight.shape)
    if layer.bias is not None:
        layer.bias.data[...] = rng.standard_normal(layer.bias.shape)
    return layer


def conditioned_eps(shape: tuple[int, ...]) -> float:
    """PyTorch's eps, except with two values per channel: then x_hat = +-sqrt(var / (var + eps))
    hardly depends on x, the input gradient is O(eps / var) and computed by cancellation (relative
    error ~ eps_machine * var / eps in both libraries), so a larger eps keeps it O(1) and comparable."""
    return 0.1 if math.prod(shape) // shape[1] == 2 else 1e-5


def bn_input(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """Channels with different means and scales, as real activations have."""
    c = shape[1]
    bshape = (1, c) + (1,) * (len(shape) - 2)
    loc = rng.uniform(-2, 2, c).reshape(bshape)
    scale = rng.uniform(0.5, 3, c).reshape(bshape)
    return (loc + scale * rng.standard_normal(shape)).astype(dtype)


def _torch_tensor(a: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.array(a))


def torch_bn(layer: BatchNorm1d | BatchNorm2d) -> Any:
    """The torch module of the same class and options, with `layer`'s state loaded into it."""
    import torch
    from torch import nn

    dtype = torch.float64 if layer._dtype() in (None, np.float64) else torch.float32
    cls = nn.BatchNorm1d if isinstance(layer, BatchNorm1d) else nn.BatchNorm2d
    module = cls(
        layer.num_features,
        eps=layer.eps,
        momentum=layer.momentum,
        affine=layer.affine,
        track_running_stats=layer.track_running_stats,
        dtype=dtype,
    )
    module.load_state_dict({k: _torch_tensor(v) for k, v in layer.state_dict().items()})
    module.train(layer.training)
    return module


def torch_ln(layer: LayerNorm) -> Any:
    import torch
    from torch import nn

    dtype = torch.float64 if layer.weight is None or layer.weight.dtype == np.float64 else torch.float32
    module = nn.LayerNorm(
        layer.normalized_shape,
        eps=layer.eps,
        elementwise_affine=layer.elementwise_affine,
        bias=layer.bias is not None,
        dtype=dtype,
    )
    module.load_state_dict({k: _torch_tensor(v) for k, v in layer.state_dict().items()})
    return module


def compare_step(
    layer: Any, module: Any, x: np.ndarray, upstream: np.ndarray, skip: tuple[str, ...] = ()
) -> dict[str, float]:
    """One forward + backward in both libraries: errors of the output, the input gradient and each
    parameter gradient but those in `skip` (recorded in helpers.OBSERVED for the session's report)."""
    module.zero_grad()
    y, gx, grads = run_gradwise(layer, x, upstream)
    ty, tgx, tgrads = run_torch(module, x, upstream)
    assert sorted(grads) == sorted(tgrads)
    assert y.dtype == x.dtype and gx.dtype == x.dtype
    errors = {"output": rel_err(y, ty), "input": rel_err(gx, tgx)}
    errors.update({name: rel_err(grads[name], tgrads[name]) for name in grads})
    for name in skip:
        errors.pop(name, None)
    kind = np.dtype(x.dtype).name
    for name, err in errors.items():
        quantity = name if name in ("output", "input") else "param"
        record(f"{kind}:{type(layer).__name__}:{'train' if layer.training else 'eval'}:{quantity}", err)
    return errors


def buffer_errors(layer: Any, module: Any) -> dict[str, float]:
    """Errors of the running statistics; num_batches_tracked must be equal."""
    errors: dict[str, float] = {}
    tstate = module.state_dict()
    for name, value in layer.named_buffers():
        expected = tstate[name].numpy()
        if name == "num_batches_tracked":
            assert value.dtype == np.int64 and int(value) == int(expected), (name, value, expected)
            continue
        errors[name] = rel_err(value, expected)
        record(f"{np.dtype(value.dtype).name}:{type(layer).__name__}:running", errors[name])
    return errors


# ----------------------------------------------------------------------------------- gradient check


@pytest.mark.parametrize(("cls", "shape"), BN_SHAPES, ids=BN_IDS)
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize(
    ("training", "track"), [(True, True), (False, True), (False, False)], ids=["train", "eval", "eval-batch-stats"]
)
def test_batchnorm_gradient_check(rng, tol, cls, shape, affine, training, track):
    layer = make_bn(cls, shape[1], rng, affine=affine, track=track, eps=conditioned_eps(shape)).train(training)
    report = check_layer(layer, bn_input(rng, shape), max_entries=None)
    assert [c.name for c in report.checks] == ["input"] + (["weight", "bias"] if affine else [])
    assert all(c.checked == c.total for c in report.checks)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


@pytest.mark.parametrize(("normalized_shape", "shape"), LN_SHAPES, ids=LN_IDS)
@pytest.mark.parametrize(("affine", "bias"), LN_OPTIONS, ids=LN_OPTION_IDS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_layernorm_gradient_check(rng, tol, normalized_shape, shape, affine, bias, training):
    layer = make_ln(normalized_shape, rng, affine=affine, bias=bias).train(training)
    x = 1.5 + 2.0 * rng.standard_normal(shape)
    report = check_layer(layer, x, max_entries=None)
    expected = ["input"] + (["weight"] if affine else []) + (["bias"] if affine and bias else [])
    assert [c.name for c in report.checks] == expected
    if shape[-1] == 1 and isinstance(normalized_shape, int):
        # A single value per group normalizes to 0 whatever it is: every gradient but beta's is 0.
        assert report["input"].max_abs_error < 1e-8
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


def test_batchnorm_in_a_model_gradient_check(rng, tol):
    from gradwise.diagnostics import check_model
    from gradwise.layers import Linear, Tanh
    from gradwise.losses import SoftmaxCrossEntropy

    model = Sequential(Linear(5, 8, rng=rng), BatchNorm1d(8), Tanh(), Linear(8, 3, rng=rng), LayerNorm(3))
    x = rng.standard_normal((10, 5))
    report = check_model(model, SoftmaxCrossEntropy(), x, rng.integers(0, 3, 10), check_input=True, max_entries=None)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


# ------------------------------------------------------------------------------------------ oracle


@pytest.mark.oracle
@pytest.mark.parametrize(("cls", "shape"), BN_SHAPES, ids=BN_IDS)
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize(
    ("track", "momentum"),
    [(True, 0.1), (True, 0.5), (True, None), (False, 0.1)],
    ids=["track-0.1", "track-0.5", "track-cumulative", "no-track"],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_matches_torch_over_training_steps_then_eval(
    torch, rng, tol, cls, shape, affine, track, momentum, dtype
):
    eps = conditioned_eps(shape)
    layer = make_bn(cls, shape[1], rng, dtype, affine=affine, track=track, momentum=momentum, eps=eps)
    module = torch_bn(layer)
    bound = tol.oracle_for(dtype)
    for _ in range(4):  # several training steps: forward, backward, running statistics
        x = bn_input(rng, shape, dtype)
        errors = compare_step(layer, module, x, rng.standard_normal(shape).astype(dtype))
        assert max(errors.values()) < bound, errors
        running = buffer_errors(layer, module)
        assert sorted(running) == (["running_mean", "running_var"] if track else [])
        assert max(running.values(), default=0.0) < bound, running
    layer.eval()
    module.eval()
    x = bn_input(rng, shape, dtype)
    errors = compare_step(layer, module, x, rng.standard_normal(shape).astype(dtype))
    assert max(errors.values()) < bound, errors
    assert max(buffer_errors(layer, module).values(), default=0.0) < bound


LARGE = [(BatchNorm1d, (512, 64)), (BatchNorm1d, (64, 16, 100)), (BatchNorm2d, (32, 8, 28, 28))]
LARGE_IDS = [f"{cls.__name__}-{shape}" for cls, shape in LARGE]


@pytest.mark.oracle
@pytest.mark.parametrize(("cls", "shape"), LARGE, ids=LARGE_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_matches_torch_on_large_batches(torch, rng, tol, cls, shape, dtype):
    layer = make_bn(cls, shape[1], rng, dtype)
    module = torch_bn(layer)
    # Channel means up to 4 standard deviations from 0. Further out, torch's own float32 output
    # loses accuracy (see the next test), so the comparison would measure torch.
    x = bn_input(rng, shape, dtype)
    errors = compare_step(layer, module, x, rng.standard_normal(shape).astype(dtype))
    errors.update(buffer_errors(layer, module))
    assert max(errors.values()) < tol.oracle_for(dtype), errors


@pytest.mark.parametrize(("cls", "shape"), LARGE, ids=LARGE_IDS)
def test_float32_batchnorm_is_accurate_on_large_batches_far_from_zero(rng, tol, cls, shape):
    """Against the float64 layer on the same float32 inputs. Statistics accumulate in float64: a
    float32 running sum over the m = 25k entries of a channel whose mean is 10 standard deviations
    from 0 drifts by ~1e-5 of the spread. (torch's float32 output is off by ~2e-6 here, computing
    y = x * a + b with b = beta - mean * a rounded to float32, so this is checked against float64.)"""
    layer64 = make_bn(cls, shape[1], np.random.default_rng(1))
    layer32 = copy.deepcopy(layer64).astype(np.float32)
    x = (bn_input(rng, shape) + 10.0).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    y32, gx32, grads32 = run_gradwise(layer32, x, g)
    y64, gx64, grads64 = run_gradwise(layer64, x.astype(np.float64), g.astype(np.float64))
    errors = {"output": rel_err(y32, y64), "input": rel_err(gx32, gx64)}
    errors.update({k: rel_err(grads32[k], grads64[k]) for k in grads64})
    state64 = layer64.state_dict()
    errors.update({k: rel_err(v, state64[k]) for k, v in layer32.named_buffers() if k != "num_batches_tracked"})
    assert max(errors.values()) < tol.oracle, errors


@pytest.mark.oracle
@pytest.mark.parametrize(("normalized_shape", "shape"), LN_SHAPES, ids=LN_IDS)
@pytest.mark.parametrize(("affine", "bias"), LN_OPTIONS, ids=LN_OPTION_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_layernorm_matches_torch(torch, rng, tol, normalized_shape, shape, affine, bias, dtype):
    layer = make_ln(normalized_shape, rng, dtype, affine=affine, bias=bias)
    module = torch_ln(layer)
    for _ in range(2):
        x = (1.0 + 2.0 * rng.standard_normal(shape)).astype(dtype)
        # One value per group: x_hat is 0 exactly here and rounding noise / sqrt(eps) in torch, and
        # the true input and weight gradients are 0; only the output and beta compare.
        skip = ("input", "weight") if shape[-1] == 1 and isinstance(normalized_shape, int) else ()
        errors = compare_step(layer, module, x, rng.standard_normal(shape).astype(dtype), skip)
        assert max(errors.values()) < tol.oracle_for(dtype), errors


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
def test_layernorm_matches_torch_on_wide_rows(torch, rng, tol, dtype):
    layer = make_ln(1000, rng, dtype)
    module = torch_ln(layer)
    x = (5.0 + rng.standard_normal((16, 10, 1000))).astype(dtype)
    errors = compare_step(layer, module, x, rng.standard_normal(x.shape).astype(dtype))
    assert max(errors.values()) < tol.oracle_for(dtype), errors


@pytest.mark.oracle
@given(
    two_d=st.booleans(),
    n=st.integers(2, 6),
    c=st.integers(1, 5),
    spatial=st.lists(st.integers(1, 4), min_size=0, max_size=1),
    momentum=st.one_of(st.none(), st.floats(0.0, 1.0)),
    affine=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_batchnorm_matches_torch_for_any_shape_and_momentum(
    torch, tol, two_d, n, c, spatial, momentum, affine, seed
):
    rng = np.random.default_rng(seed)
    cls = BatchNorm2d if two_d else BatchNorm1d
    shape = (n, c, *spatial, *spatial) if two_d and spatial else (n, c, 2, 3) if two_d else (n, c, *spatial)
    layer = make_bn(cls, c, rng, np.float64, affine=affine, momentum=momentum, eps=conditioned_eps(shape))
    module = torch_bn(layer)
    for _ in range(2):
        errors = compare_step(layer, module, bn_input(rng, shape), rng.standard_normal(shape))
        errors.update(buffer_errors(layer, module))
        assert max(errors.values()) < tol.oracle64, errors


@pytest.mark.oracle
@given(
    lead=st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple),
    normalized=st.lists(st.integers(1, 6), min_size=1, max_size=2).map(tuple),
    seed=st.integers(0, 2**32 - 1),
)
def test_layernorm_matches_torch_for_any_shape(torch, tol, lead, normalized, seed):
    rng = np.random.default_rng(seed)
    # Two values per group: the same degenerate case as batch norm's (conditioned_eps).
    layer = make_ln(normalized, rng, eps=0.1 if math.prod(normalized) == 2 else 1e-5)
    shape = (*lead, *normalized)
    # x_hat = 0 for one value per group: zero derivatives, torch's are rounding noise / sqrt(eps)
    skip = ("input", "weight") if math.prod(normalized) == 1 else ()
    x = 1.0 + 2.0 * rng.standard_normal(shape)
    errors = compare_step(layer, torch_ln(layer), x, rng.standard_normal(shape), skip)
    assert max(errors.values()) < tol.oracle64, errors


# -------------------------------------------------------------------------------------- state dict


@pytest.mark.oracle
@pytest.mark.parametrize("cls", [BatchNorm1d, BatchNorm2d])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize("track", [True, False], ids=["track", "no-track"])
def test_batchnorm_state_dict_is_torchs_and_loads_both_ways(torch, rng, cls, affine, track):
    from torch import nn

    layer = make_bn(cls, 6, rng, np.float32, affine=affine, track=track)
    tcls = nn.BatchNorm1d if cls is BatchNorm1d else nn.BatchNorm2d
    module = tcls(6, affine=affine, track_running_stats=track)
    ours, theirs = layer.state_dict(), module.state_dict()
    assert list(ours) == list(theirs)
    for key in ours:
        assert ours[key].shape == tuple(theirs[key].shape), key
        assert str(ours[key].dtype) == str(theirs[key].dtype).removeprefix("torch."), key
    # gradwise -> torch
    module.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()})
    for key, value in module.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), ours[key])
    # torch -> gradwise (a fresh layer)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.5)
        for name, b in module.named_buffers():
            b.add_(2)
    fresh = cls(6, affine=affine, track_running_stats=track)
    fresh.load_state_dict({k: v.numpy() for k, v in module.state_dict().items()})
    for key, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value, module.state_dict()[key].numpy())
        assert value.dtype == ours[key].dtype


@pytest.mark.oracle
@pytest.mark.parametrize(("affine", "bias"), LN_OPTIONS, ids=LN_OPTION_IDS)
def test_layernorm_state_dict_is_torchs_and_loads_both_ways(torch, rng, affine, bias):
    from torch import nn

    layer = make_ln((3, 4), rng, np.float32, affine=affine, bias=bias)
    module = nn.LayerNorm((3, 4), elementwise_affine=affine, bias=bias)
    ours = layer.state_dict()
    assert list(ours) == list(module.state_dict())
    assert all(ours[k].shape == tuple(v.shape) and ours[k].dtype == np.float32 for k, v in module.state_dict().items())
    module.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()})
    fresh = LayerNorm((3, 4), elementwise_affine=affine, bias=bias)
    fresh.load_state_dict({k: v.numpy() for k, v in module.state_dict().items()})
    for key, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value, ours[key])


@pytest.mark.oracle
def test_a_trained_model_state_dict_runs_in_torch(torch, rng, tol):
    """A gradwise MLP with batch norm trained a few steps, loaded into its torch twin: same eval outputs."""
    from torch import nn

    from gradwise.layers import Linear, ReLU

    model = Sequential(Linear(4, 8, rng=rng), BatchNorm1d(8), ReLU(), LayerNorm(8), Linear(8, 3, rng=rng))
    for _ in range(3):
        model.forward(bn_input(rng, (16, 4), np.float32))
    twin = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.LayerNorm(8), nn.Linear(8, 3))
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    model.eval()
    twin.eval()
    x = bn_input(rng, (5, 4), np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    assert rel_err(model.forward(x), expected) < tol.oracle


# --------------------------------------------------------------------------------------- semantics


@pytest.mark.parametrize(("cls", "shape"), BN_SHAPES, ids=BN_IDS)
def test_training_output_is_standardized_per_channel(rng, cls, shape):
    layer = cls(shape[1], affine=False, dtype=np.float64)
    x = bn_input(rng, shape)
    y = layer.forward(x)
    axes = (0, *range(2, len(shape)))
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-12)
    var_x = x.var(axis=axes)  # biased, as the normalization uses
    np.testing.assert_allclose(y.var(axis=axes), var_x / (var_x + 1e-5), rtol=1e-12)


def test_running_statistics_by_hand(rng):
    layer = BatchNorm1d(3, momentum=0.25, dtype=np.float64)
    x1, x2 = rng.standard_normal((8, 3)), rng.standard_normal((5, 3))
    layer.forward(x1)
    layer.forward(x2)
    mean = 0.75 * (0.75 * 0.0 + 0.25 * x1.mean(0)) + 0.25 * x2.mean(0)
    var = 0.75 * (0.75 * 1.0 + 0.25 * x1.var(0, ddof=1)) + 0.25 * x2.var(0, ddof=1)
    np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-14)
    np.testing.assert_allclose(layer.running_var, var, rtol=1e-14)
    assert layer.num_batches_tracked.shape == () and int(layer.num_batches_tracked) == 2


def test_momentum_none_is_the_cumulative_average(rng):
    layer = BatchNorm1d(4, momentum=None, dtype=np.float64)
    batches = [rng.standard_normal((6, 4)) + i for i in range(5)]
    for xb in batches:
        layer.forward(xb)
    np.testing.assert_allclose(layer.running_mean, np.mean([b.mean(0) for b in batches], axis=0), rtol=1e-13)
    np.testing.assert_allclose(layer.running_var, np.mean([b.var(0, ddof=1) for b in batches], axis=0), rtol=1e-13)


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_momentum_extremes(rng, momentum):
    layer = BatchNorm1d(2, momentum=momentum, dtype=np.float64)
    x = rng.standard_normal((7, 2))
    layer.forward(x)
    if momentum == 0.0:  # the running statistics never move
        np.testing.assert_array_equal(layer.running_mean, 0.0)
        np.testing.assert_array_equal(layer.running_var, 1.0)
    else:  # they are the last batch's
        np.testing.assert_allclose(layer.running_mean, x.mean(0), rtol=1e-14)
        np.testing.assert_allclose(layer.running_var, x.var(0, ddof=1), rtol=1e-14)


def test_eval_uses_running_statistics_and_does_not_update_them(rng):
    layer = make_bn(BatchNorm2d, 3, rng)
    before = layer.state_dict()
    layer.eval()
    x = bn_input(rng, (2, 3, 4, 4))
    y = layer.forward(x)
    b = (1, 3, 1, 1)
    expected = (x - before["running_mean"].reshape(b)) / np.sqrt(before["running_var"].reshape(b) + 1e-5)
    expected = expected * before["weight"].reshape(b) + before["bias"].reshape(b)
    np.testing.assert_allclose(y, expected, rtol=1e-13)
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_eval_without_running_stats_uses_the_batch_and_has_no_buffers(rng):
    layer = BatchNorm1d(3, track_running_stats=False, affine=False, dtype=np.float64)
    assert layer.buffers() == [] and layer.state_dict() == {}
    x = bn_input(rng, (9, 3))
    np.testing.assert_allclose(layer.eval().forward(x), layer.train().forward(x), rtol=1e-15)


def test_eval_backward_is_a_per_channel_scale(rng):
    layer = make_bn(BatchNorm1d, 3, rng).eval()
    layer.forward(bn_input(rng, (5, 3, 2)))
    g = rng.standard_normal((5, 3, 2))
    scale = layer.weight.data / np.sqrt(layer.running_var + layer.eps)
    np.testing.assert_allclose(layer.backward(g), g * scale[None, :, None], rtol=1e-14)


def test_training_input_gradient_is_orthogonal_to_constants_and_to_xhat(rng):
    """The gradient through batch statistics has zero sum and (as eps -> 0) no component along x_hat."""
    layer = BatchNorm1d(4, eps=1e-12, affine=False, dtype=np.float64)
    x = bn_input(rng, (10, 4))
    xhat = layer.forward(x)
    gx = layer.backward(rng.standard_normal((10, 4)))
    np.testing.assert_allclose(gx.sum(0), 0.0, atol=1e-12)
    np.testing.assert_allclose((gx * xhat).sum(0), 0.0, atol=1e-10)


def test_backward_accumulates_into_parameter_gradients(rng):
    layer = make_bn(BatchNorm1d, 3, rng)
    x, g = bn_input(rng, (6, 3)), rng.standard_normal((6, 3))
    layer.forward(x)
    layer.backward(g)
    once = (layer.weight.grad.copy(), layer.bias.grad.copy())
    layer.forward(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * once[0], rtol=1e-14)
    np.testing.assert_allclose(layer.bias.grad, 2 * once[1], rtol=1e-14)


def test_forward_and_backward_do_not_modify_inputs_or_outputs(rng):
    cases = [(make_bn(BatchNorm1d, 3, rng), (5, 3)), (make_ln(4, rng, affine=False), (2, 4)), (make_ln(4, rng), (2, 4))]
    for layer, shape in cases:
        x = bn_input(rng, shape)
        g = rng.standard_normal(shape)
        x0, g0 = x.copy(), g.copy()
        y = layer.forward(x)
        y0 = y.copy()
        layer.backward(g)
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(g, g0)
        np.testing.assert_array_equal(y, y0)


def test_layernorm_is_the_same_in_train_and_eval(rng):
    layer = make_ln((2, 3), rng)
    x = rng.standard_normal((4, 2, 3))
    np.testing.assert_array_equal(layer.train().forward(x), layer.eval().forward(x))
    assert layer.buffers() == []


def test_layernorm_rows_are_standardized(rng):
    layer = LayerNorm(8, elementwise_affine=False, dtype=np.float64)
    y = layer.forward(3.0 + 5.0 * rng.standard_normal((6, 8)))
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-14)
    np.testing.assert_allclose(y.var(-1), 1.0, rtol=1e-5)


# ------------------------------------------------------------------------------------------- dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("input_dtype", [np.float32, np.float64, np.int64])
def test_dtypes_follow_the_layer(rng, dtype, input_dtype):
    cases = [
        (BatchNorm1d(3, dtype=dtype), (4, 3)),
        (BatchNorm2d(3, dtype=dtype), (2, 3, 2, 2)),
        (LayerNorm(3, dtype=dtype), (4, 3)),
    ]
    for layer, shape in cases:
        y = layer.forward((10 * rng.standard_normal(shape)).astype(input_dtype))
        gx = layer.backward(np.ones(shape))
        assert y.dtype == dtype and gx.dtype == dtype
        assert all(p.grad.dtype == dtype for p in layer.parameters())


def test_without_parameters_or_buffers_the_input_dtype_is_kept(rng):
    for layer in (BatchNorm1d(3, affine=False, track_running_stats=False), LayerNorm(3, elementwise_affine=False)):
        assert layer.forward(rng.standard_normal((4, 3))).dtype == np.float64
        layer.backward(np.ones((4, 3)))
        assert layer.forward(rng.standard_normal((4, 3)).astype(np.float32)).dtype == np.float32
        layer.backward(np.ones((4, 3)))
        assert layer.forward(np.arange(12).reshape(4, 3)).dtype == np.float32


def test_astype_converts_running_stats_but_not_the_batch_count(rng):
    layer = BatchNorm1d(3)
    layer.forward(rng.standard_normal((4, 3)))
    layer.astype(np.float64)
    assert layer.running_mean.dtype == np.float64 and layer.running_var.dtype == np.float64
    assert layer.num_batches_tracked.dtype == np.int64 and int(layer.num_batches_tracked) == 1
    assert [name for name, _ in layer.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert layer.forward(rng.standard_normal((4, 3)).astype(np.float32)).dtype == np.float64


def test_buffers_stay_registered_and_in_place_across_steps(rng):
    layer = BatchNorm1d(3)
    mean, var, count = layer.running_mean, layer.running_var, layer.num_batches_tracked
    for _ in range(3):
        layer.forward(rng.standard_normal((4, 3)))
    assert layer.running_mean is mean and layer.running_var is var and layer.num_batches_tracked is count
    assert list(layer.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def test_parameters_and_buffers_start_as_torchs(rng):
    layer = BatchNorm2d(5)
    np.testing.assert_array_equal(layer.weight.data, np.ones(5, np.float32))
    np.testing.assert_array_equal(layer.bias.data, np.zeros(5, np.float32))
    np.testing.assert_array_equal(layer.running_mean, np.zeros(5, np.float32))
    np.testing.assert_array_equal(layer.running_var, np.ones(5, np.float32))
    assert layer.num_batches_tracked.dtype == np.int64 and layer.num_batches_tracked.shape == ()
    ln = LayerNorm((2, 3))
    assert ln.weight.shape == (2, 3) and ln.bias.shape == (2, 3) and ln.normalized_shape == (2, 3)
    assert "BatchNorm2d(5, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)" == repr(layer)
    assert repr(ln) == "LayerNorm((2, 3), eps=1e-05, elementwise_affine=True)"


def test_deepcopy_copies_running_statistics(rng):
    layer = BatchNorm1d(2)
    twin = copy.deepcopy(layer)
    twin.forward(rng.standard_normal((3, 2)) + 5)
    np.testing.assert_array_equal(layer.running_mean, 0.0)


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("layer", "shape", "expected"),
    [
        (BatchNorm1d(4), (8, 3), "(N, 4) or (N, 4, L)"),
        (BatchNorm1d(4), (8, 3, 5), "(N, 4) or (N, 4, L)"),
        (BatchNorm1d(4), (2, 4, 3, 3), "(N, 4) or (N, 4, L)"),
        (BatchNorm1d(4), (4,), "(N, 4) or (N, 4, L)"),
        (BatchNorm2d(4), (2, 4, 5), "(N, 4, H, W)"),
        (BatchNorm2d(4), (2, 3, 5, 5), "(N, 4, H, W)"),
    ],
    ids=str,
)
def test_wrong_shape_names_layer_and_both_shapes(layer, shape, expected):
    with pytest.raises(ValueError) as info:
        layer.forward(np.zeros(shape, dtype=np.float32))
    msg = str(info.value)
    assert type(layer).__name__ in msg and str(shape) in msg and expected in msg


@pytest.mark.parametrize(
    ("shape", "expected"), [((4, 5), "(*, 3)"), ((3, 4), "(*, 2, 3)"), ((2,), "(*, 2, 3)")], ids=str
)
def test_layernorm_wrong_shape_names_both_shapes(shape, expected):
    layer = LayerNorm(3) if expected == "(*, 3)" else LayerNorm((2, 3))
    with pytest.raises(ValueError) as info:
        layer.forward(np.zeros(shape))
    msg = str(info.value)
    assert "LayerNorm" in msg and str(shape) in msg and expected in msg


@pytest.mark.parametrize(
    ("cls", "shape"), [(BatchNorm1d, (1, 3)), (BatchNorm1d, (1, 3, 1)), (BatchNorm2d, (1, 3, 1, 1))], ids=str
)
def test_one_value_per_channel_in_training_is_an_error_like_torch(cls, shape):
    layer = cls(3)
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training") as info:
        layer.forward(np.ones(shape))
    assert str(shape) in str(info.value)
    assert int(layer.num_batches_tracked) == 0  # nothing was updated
    assert layer.eval().forward(np.ones(shape)).shape == shape  # running statistics: fine
    with pytest.raises(ValueError, match="more than 1 value"):
        cls(3, track_running_stats=False).eval().forward(np.ones(shape))  # batch statistics in eval too


@pytest.mark.oracle
def test_torch_raises_for_the_same_single_value_batch(torch):
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        torch.nn.BatchNorm1d(3)(torch.ones(1, 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_features": 0}, "num_features=0"),
        ({"num_features": 2.5}, "num_features=2.5"),
        ({"num_features": 3, "eps": 0.0}, "eps=0.0"),
        ({"num_features": 3, "momentum": 1.5}, "momentum=1.5"),
        ({"num_features": 3, "momentum": -0.1}, "momentum=-0.1"),
        ({"num_features": 3, "dtype": np.int32}, "dtype="),
    ],
    ids=str,
)
@pytest.mark.parametrize("cls", [BatchNorm1d, BatchNorm2d])
def test_batchnorm_argument_errors_name_the_argument(cls, kwargs, match):
    with pytest.raises(ValueError, match=f"{cls.__name__}: {match}"):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"normalized_shape": 0}, "normalized_shape=0"), ({"normalized_shape": ()}, r"normalized_shape=\(\)"),
     ({"normalized_shape": (2, -1)}, "normalized_shape="), ({"normalized_shape": 3, "eps": -1.0}, "eps=-1.0")],
    ids=str,
)
def test_layernorm_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=f"LayerNorm: {match}"):
        LayerNorm(**kwargs)


@pytest.mark.parametrize("layer", [BatchNorm1d(3), BatchNorm2d(3), LayerNorm(3)], ids=lambda m: type(m).__name__)
def test_backward_before_forward_or_twice_is_an_error(layer):
    with pytest.raises(RuntimeError, match="backward was called before forward"):
        layer.backward(np.ones((2, 3)))
    shape = (2, 3, 2, 2) if isinstance(layer, BatchNorm2d) else (2, 3)
    y = layer.forward(np.arange(np.prod(shape), dtype=np.float32).reshape(shape))
    layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="backward was called before forward"):
        layer.backward(np.ones_like(y))


@pytest.mark.parametrize("layer", [BatchNorm1d(3), LayerNorm(3)], ids=lambda m: type(m).__name__)
def test_gradient_of_the_wrong_shape_is_an_error(layer):
    layer.forward(np.arange(12, dtype=np.float32).reshape(4, 3))
    with pytest.raises(ValueError, match=type(layer).__name__):
        layer.backward(np.ones((4, 2), dtype=np.float32))
