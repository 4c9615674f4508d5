"""Tests of gradwise/losses.py: the losses against torch and by hand, and the weight penalties."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import record, rel_err

from gradwise.core import Parameter, Sequential
from gradwise.diagnostics import check_model, numerical_gradient, rel_error
from gradwise.layers import Linear, Tanh
from gradwise.losses import L1, L2, MSE, BCEWithLogits, ElasticNet, MulticlassHinge, SoftmaxCrossEntropy

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum"]
CLASS_SHAPES = [(1, 2), (8, 5), (33, 10)]
HINGE_CONFIGS = [(1, 1.0), (1, 0.5), (1, 2.0), (2, 1.0), (2, 0.3), (1, 0.0)]  # (p, margin)


def class_batch(
    rng: np.random.Generator, n: int, c: int, dtype: type, scale: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    return (rng.standard_normal((n, c)) * scale).astype(dtype), rng.integers(0, c, size=n)


def torch_loss_and_grad(torch_loss, scores: np.ndarray, target) -> tuple[float, np.ndarray]:
    import torch

    s = torch.tensor(scores, requires_grad=True)
    value = torch_loss(s, target)
    value.backward()
    return float(value.detach()), s.grad.numpy()


def compare(ours, theirs, scores: np.ndarray, y: np.ndarray, torch_target, tol) -> None:
    """Assert value and gradient of `ours` match the torch loss `theirs` in the scores' dtype."""
    value = ours.forward(scores, y)
    grad = ours.backward()
    t_value, t_grad = torch_loss_and_grad(theirs, scores, torch_target)
    assert isinstance(value, float)
    assert grad.dtype == scores.dtype and grad.shape == scores.shape
    kind = np.dtype(scores.dtype).name
    value_err = record(f"{kind}:{type(ours).__name__}:value", abs(value - t_value) / max(abs(t_value), 1e-300))
    grad_err = record(f"{kind}:{type(ours).__name__}:grad", rel_err(grad, t_grad))
    assert value_err < tol.loss_for(scores.dtype), (value, t_value)
    assert grad_err < tol.oracle_for(scores.dtype)


# ------------------------------------------------------------------------------ softmax cross-entropy


@pytest.mark.oracle
@pytest.mark.parametrize("shape", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_matches_torch(rng, tol, shape, reduction, dtype):
    torch = pytest.importorskip("torch")
    scores, y = class_batch(rng, *shape, dtype)
    compare(
        SoftmaxCrossEntropy(reduction),
        torch.nn.CrossEntropyLoss(reduction=reduction),
        scores,
        y,
        torch.from_numpy(y),
        tol,
    )


@pytest.mark.oracle
@pytest.mark.parametrize("scale", [1e2, 1e4])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_huge_logits_stay_finite(rng, tol, scale, dtype):
    torch = pytest.importorskip("torch")
    scores, y = class_batch(rng, 16, 6, dtype, scale=scale)
    loss = SoftmaxCrossEntropy()
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        value = loss.forward(scores, y)
        grad = loss.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    compare(SoftmaxCrossEntropy(), torch.nn.CrossEntropyLoss(), scores, y, torch.from_numpy(y), tol)


def test_softmax_cross_entropy_known_values():
    loss = SoftmaxCrossEntropy()
    assert loss.forward(np.zeros((3, 4)), np.array([0, 1, 3])) == pytest.approx(np.log(4), rel=1e-15)
    np.testing.assert_allclose(loss.backward(), (np.full((3, 4), 0.25) - np.eye(4)[[0, 1, 3]]) / 3, rtol=1e-15)


# -------------------------------------------------------------------------------- multiclass hinge


@pytest.mark.oracle
@pytest.mark.parametrize(("p", "margin"), HINGE_CONFIGS, ids=[f"p{p}-m{m}" for p, m in HINGE_CONFIGS])
@pytest.mark.parametrize("shape", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_multiclass_hinge_matches_torch_multi_margin(rng, tol, p, margin, shape, reduction, dtype):
    torch = pytest.importorskip("torch")
    scores, y = class_batch(rng, *shape, dtype, scale=0.7)
    compare(
        MulticlassHinge(margin=margin, p=p, reduction=reduction),
        torch.nn.MultiMarginLoss(p=p, margin=margin, reduction=reduction),
        scores,
        y,
        torch.from_numpy(y),
        tol,
    )


def hinge_by_hand(scores: np.ndarray, y: np.ndarray, margin: float, p: int) -> tuple[float, np.ndarray]:
    """Weston & Watkins / CS231n: sum over j != y of max(0, margin - s_y + s_j)^p, mean over samples."""
    n, c = scores.shape
    value, grad = 0.0, np.zeros_like(scores)
    for i in range(n):
        for j in range(c):
            if j == y[i]:
                continue
            m = margin - scores[i, y[i]] + scores[i, j]
            if m > 0:
                value += m**p
                d = p * m ** (p - 1)
                grad[i, j] += d
                grad[i, y[i]] -= d
    return value / n, grad / n


@pytest.mark.parametrize(("p", "margin"), HINGE_CONFIGS, ids=[f"p{p}-m{m}" for p, m in HINGE_CONFIGS])
def test_multiclass_hinge_without_division_by_classes_by_hand(rng, tol, p, margin):
    scores, y = class_batch(rng, 12, 5, np.float64, scale=0.7)
    loss = MulticlassHinge(margin=margin, p=p, divide_by_classes=False)
    value = loss.forward(scores, y)
    expected_value, expected_grad = hinge_by_hand(scores, y, margin, p)
    assert value == pytest.approx(expected_value, rel=tol.loss64)
    assert rel_err(loss.backward(), expected_grad) < tol.oracle64


def test_multiclass_hinge_default_divides_by_classes(rng):
    scores, y = class_batch(rng, 6, 4, np.float64)
    assert MulticlassHinge().forward(scores, y) == pytest.approx(
        MulticlassHinge(divide_by_classes=False).forward(scores, y) / 4, rel=1e-15
    )


def test_multiclass_hinge_cs231n_example():
    # The three-class example of CS231n: scores of a cat image (3.2, 5.1, -1.7), margin 1: loss 2.9.
    loss = MulticlassHinge(divide_by_classes=False)
    assert loss.forward(np.array([[3.2, 5.1, -1.7]]), np.array([0])) == pytest.approx(2.9, rel=1e-14)
    np.testing.assert_array_equal(loss.backward(), [[-1.0, 1.0, 0.0]])


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"p": 3}, "p=3 must be 1 or 2"),
        ({"margin": -1.0}, "margin=-1.0 must be >= 0"),
        ({"reduction": "none"}, "reduction='none'"),
    ],
)
def test_multiclass_hinge_invalid_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        MulticlassHinge(**kwargs)


# ------------------------------------------------------------------------------------- MSE and BCE


@pytest.mark.oracle
@pytest.mark.parametrize("shape", [(7,), (6, 3), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_matches_torch(rng, tol, shape, reduction, dtype):
    torch = pytest.importorskip("torch")
    scores = rng.standard_normal(shape).astype(dtype)
    target = rng.standard_normal(shape).astype(dtype)
    compare(MSE(reduction), torch.nn.MSELoss(reduction=reduction), scores, target, torch.from_numpy(target), tol)


@pytest.mark.oracle
@pytest.mark.parametrize("shape", [(7,), (6, 3), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("targets", ["soft", "hard"])
def test_bce_with_logits_matches_torch(rng, tol, shape, reduction, dtype, targets):
    torch = pytest.importorskip("torch")
    scores = (rng.standard_normal(shape) * 3).astype(dtype)
    target = (rng.uniform(size=shape) if targets == "soft" else rng.integers(0, 2, size=shape)).astype(dtype)
    compare(
        BCEWithLogits(reduction),
        torch.nn.BCEWithLogitsLoss(reduction=reduction),
        scores,
        target,
        torch.from_numpy(target),
        tol,
    )


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_with_logits_large_logits_stay_finite(rng, tol, dtype):
    torch = pytest.importorskip("torch")
    scores = np.array([-1e4, -1e3, -50.0, -20.0, 0.0, 20.0, 50.0, 1e3, 1e4], dtype=dtype)
    target = np.array([0.0, 1.0, 0.3, 1.0, 0.5, 0.0, 0.9, 1.0, 0.0], dtype=dtype)
    loss = BCEWithLogits()
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        value = loss.forward(scores, target)
        grad = loss.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    compare(BCEWithLogits(), torch.nn.BCEWithLogitsLoss(), scores, target, torch.from_numpy(target), tol)


def test_mse_and_bce_known_values():
    mse = MSE()
    assert mse.forward(np.array([1.0, 2.0]), np.array([0.0, 4.0])) == 2.5
    np.testing.assert_array_equal(mse.backward(), [1.0, -2.0])
    bce = BCEWithLogits(reduction="sum")
    assert bce.forward(np.zeros(3), np.array([0.0, 0.5, 1.0])) == pytest.approx(3 * np.log(2), rel=1e-15)
    np.testing.assert_array_equal(bce.backward(), [0.5, 0.0, -0.5])


def test_regression_targets_are_cast_to_the_scores_dtype(rng):
    scores = rng.standard_normal((4, 2)).astype(np.float32)
    for loss, target in [(MSE(), rng.standard_normal((4, 2))), (BCEWithLogits(), rng.uniform(size=(4, 2)))]:
        loss.forward(scores, target)
        assert loss.backward().dtype == np.float32


# ---------------------------------------------------------------------------------- gradient checks


CHECK_LOSSES = {
    "ce-mean": (lambda: SoftmaxCrossEntropy(), "class"),
    "ce-sum": (lambda: SoftmaxCrossEntropy("sum"), "class"),
    "hinge-p1": (lambda: MulticlassHinge(), "class"),
    "hinge-p2-m0.5": (lambda: MulticlassHinge(margin=0.5, p=2), "class"),
    "hinge-cs231n": (lambda: MulticlassHinge(divide_by_classes=False, reduction="sum"), "class"),
    "mse": (lambda: MSE(), "real"),
    "mse-sum": (lambda: MSE("sum"), "real"),
    "bce-soft": (lambda: BCEWithLogits(), "prob"),
}


def targets_for(kind: str, rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    if kind == "class":
        return rng.integers(0, c, size=n)
    if kind == "real":
        return rng.standard_normal((n, c))
    return rng.uniform(size=(n, c))


@pytest.mark.parametrize("name", CHECK_LOSSES)
def test_gradient_check_through_a_model(rng, tol, name):
    factory, kind = CHECK_LOSSES[name]
    model = Sequential(Linear(5, 7, rng=rng), Tanh(), Linear(7, 4, rng=rng))
    x = rng.standard_normal((9, 5))
    report = check_model(model, factory(), x, targets_for(kind, rng, 9, 4), check_input=True, max_entries=None)
    assert [c.name for c in report.checks] == ["input", "0.weight", "0.bias", "2.weight", "2.bias"]
    assert report.max_rel_error < tol.gradcheck, str(report)


@pytest.mark.parametrize("name", CHECK_LOSSES)
def test_gradient_check_of_the_loss_itself(rng, tol, name):
    factory, kind = CHECK_LOSSES[name]
    loss = factory()
    scores = rng.standard_normal((6, 5))
    y = targets_for(kind, rng, 6, 5)
    loss.forward(scores, y)
    analytic = loss.backward()
    numeric = numerical_gradient(lambda: loss.forward(scores, y), scores, np.arange(scores.size))
    assert rel_error(analytic.ravel(), numeric) < tol.gradcheck


INTEGER_SCORE_CASES = {
    "SoftmaxCrossEntropy": (SoftmaxCrossEntropy, np.array([[1, 2, 0], [3, 0, 1]]), np.array([0, 1])),
    "MulticlassHinge": (lambda: MulticlassHinge(margin=0.5), np.array([[1, 1, 0], [0, 2, 2]]), np.array([0, 1])),
    "MSE": (MSE, np.array([1, 2, -1]), np.array([0.5, 1.5, 0.25])),
    "BCEWithLogits": (BCEWithLogits, np.array([1, -1, 2]), np.array([0.25, 0.75, 0.5])),
}


@pytest.mark.parametrize("name", INTEGER_SCORE_CASES)
def test_integer_scores_give_the_float_result(name):
    factory, scores, y = INTEGER_SCORE_CASES[name]
    loss = factory()
    value = loss.forward(scores, y)
    grad = loss.backward()
    expected_value = loss.forward(scores.astype(np.float64), y)
    expected_grad = loss.backward()
    assert np.issubdtype(grad.dtype, np.floating)
    assert value == pytest.approx(expected_value, rel=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------- labels


CLASS_LOSSES = {"SoftmaxCrossEntropy": SoftmaxCrossEntropy, "MulticlassHinge": MulticlassHinge}


@pytest.mark.parametrize("name", CLASS_LOSSES)
@pytest.mark.parametrize("bad", [3, 7, -1])
def test_label_out_of_range_names_the_label_and_class_count(name, bad):
    y = np.array([0, bad, 1, 2])
    with pytest.raises(ValueError) as info:
        CLASS_LOSSES[name]().forward(np.zeros((4, 3)), y)
    msg = str(info.value)
    assert name in msg and f"label {bad}" in msg and "3 classes" in msg


@pytest.mark.parametrize("name", CLASS_LOSSES)
@pytest.mark.parametrize("labels_shape", [(3,), (4, 1), (5,)], ids=str)
def test_label_shape_mismatch(name, labels_shape):
    with pytest.raises(
        ValueError, match=rf"labels of shape \({labels_shape[0]},.*do not match scores of shape \(4, 3\)"
    ):
        CLASS_LOSSES[name]().forward(np.zeros((4, 3)), np.zeros(labels_shape, dtype=int))


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_scores_must_be_two_dimensional(name):
    with pytest.raises(ValueError, match=r"scores must have shape \(N, C\), got \(4,\)"):
        CLASS_LOSSES[name]().forward(np.zeros(4), np.zeros(4, dtype=int))


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_non_integer_float_labels_are_rejected(name):
    with pytest.raises(ValueError, match="labels must be integers, got dtype float64"):
        CLASS_LOSSES[name]().forward(np.zeros((3, 3)), np.array([0.0, 1.5, 2.0]))


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_integral_float_labels_are_accepted(rng, name):
    scores = rng.standard_normal((4, 3))
    loss = CLASS_LOSSES[name]()
    as_float = loss.forward(scores, np.array([0.0, 2.0, 1.0, 2.0]))
    grad_float = loss.backward()
    assert as_float == loss.forward(scores, np.array([0, 2, 1, 2]))
    np.testing.assert_array_equal(grad_float, loss.backward())


@pytest.mark.parametrize("loss", [MSE(), BCEWithLogits()], ids=repr)
def test_target_shape_mismatch(loss):
    with pytest.raises(ValueError, match=r"targets of shape \(4,\) do not match scores of shape \(4, 1\)"):
        loss.forward(np.zeros((4, 1)), np.zeros(4))


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_bce_targets_outside_the_unit_interval(bad):
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\]"):
        BCEWithLogits().forward(np.zeros(3), np.array([0.0, bad, 1.0]))


ALL_LOSSES = {
    "SoftmaxCrossEntropy": (SoftmaxCrossEntropy, np.array([0, 1])),
    "MulticlassHinge": (MulticlassHinge, np.array([0, 1])),
    "MSE": (MSE, np.zeros((2, 3))),
    "BCEWithLogits": (BCEWithLogits, np.zeros((2, 3))),
}


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_backward_before_forward_and_twice(name):
    cls, y = ALL_LOSSES[name]
    loss = cls()
    with pytest.raises(RuntimeError, match=f"{name}.backward was called before forward"):
        loss.backward()
    loss.forward(np.ones((2, 3)), y)
    loss.backward()
    with pytest.raises(RuntimeError, match="before forward"):
        loss.backward()


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_unknown_reduction_is_a_value_error(name):
    with pytest.raises(ValueError, match=f"{name}: reduction='batchmean' must be 'mean' or 'sum'"):
        ALL_LOSSES[name][0](reduction="batchmean")


# ---------------------------------------------------------------------------------------- penalties


def penalty_model(rng: np.random.Generator) -> Sequential:
    return Sequential(Linear(4, 5, rng=rng, dtype=np.float64), Tanh(), Linear(5, 3, rng=rng, dtype=np.float64))


def test_l1_value_and_gradient_by_hand(rng):
    model = penalty_model(rng)
    w0, w2 = model[0].weight.data, model[2].weight.data
    penalty = L1(0.3)
    assert penalty.value(model.parameters()) == pytest.approx(0.3 * (np.abs(w0).sum() + np.abs(w2).sum()), rel=1e-14)
    penalty.backward(model.parameters())
    np.testing.assert_array_equal(model[0].weight.grad, 0.3 * np.sign(w0))
    np.testing.assert_array_equal(model[2].weight.grad, 0.3 * np.sign(w2))
    assert not model[0].bias.grad.any() and not model[2].bias.grad.any()


@pytest.mark.parametrize("lam", [0.0, 1e-3, 0.7])
def test_l2_gradient_is_lambda_times_w(rng, lam):
    model = penalty_model(rng)
    penalty = L2(lam)
    expected = 0.5 * lam * sum(float((p.data**2).sum()) for p in model.parameters() if p.data.ndim == 2)
    assert penalty(model.parameters()) == pytest.approx(expected, rel=1e-14, abs=0.0)
    penalty.backward(model.parameters())
    for p in model.parameters():
        np.testing.assert_array_equal(p.grad, lam * p.data if p.data.ndim == 2 else np.zeros_like(p.data))


def test_elastic_net_is_l1_plus_l2(rng):
    model = penalty_model(rng)
    params = model.parameters()
    net, l1, l2 = ElasticNet(0.2, 0.5), L1(0.2), L2(0.5)
    assert net.value(params) == pytest.approx(l1.value(params) + l2.value(params), rel=1e-14)
    net.backward(params)
    for p in params:
        expected = (0.2 * np.sign(p.data) + 0.5 * p.data) if p.data.ndim == 2 else np.zeros_like(p.data)
        np.testing.assert_allclose(p.grad, expected, rtol=1e-15)


@pytest.mark.parametrize(
    "penalty",
    [L1(0.1, weights_only=False), L2(0.4, weights_only=False), ElasticNet(0.1, 0.2, weights_only=False)],
    ids=repr,
)
def test_weights_only_false_includes_biases(rng, penalty):
    model = penalty_model(rng)
    penalty.backward(model.parameters())
    assert all(p.grad.any() for p in model.parameters())


def test_penalties_skip_frozen_parameters(rng):
    model = penalty_model(rng)
    model[0].weight.requires_grad = False
    L2(1.0).backward(model.parameters())
    assert not model[0].weight.grad.any() and model[2].weight.grad.any()
    assert L2(1.0).value(model.parameters()) == pytest.approx(0.5 * (model[2].weight.data ** 2).sum(), rel=1e-14)


def test_penalty_applies_to_any_parameter_with_two_or_more_dimensions():
    conv_like = Parameter(np.ones((2, 3, 4)))
    scale = Parameter(np.ones(4))
    assert L1(1.0).value([conv_like, scale]) == 24.0
    assert L1(1.0, weights_only=False).value([conv_like, scale]) == 28.0


@pytest.mark.parametrize(
    "penalty",
    [L1(0.05), L2(0.3), ElasticNet(0.05, 0.3), L2(0.3, weights_only=False), ElasticNet(0.02, 0.1, weights_only=False)],
    ids=repr,
)
def test_penalty_gradient_check_through_check_model(rng, tol, penalty):
    model = penalty_model(rng)
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 3, size=8)
    report = check_model(model, SoftmaxCrossEntropy(), x, y, penalty=penalty, max_entries=None)
    assert report.max_rel_error < tol.gradcheck, str(report)


@pytest.mark.parametrize(
    ("factory", "pattern"),
    [
        (lambda: L1(-1.0), "L1: strength=-1.0 must be >= 0"),
        (lambda: L2(-0.1), "L2: strength=-0.1 must be >= 0"),
        (lambda: ElasticNet(0.1, -1.0), "L2: strength=-1.0"),
    ],
    ids=["l1", "l2", "elastic"],
)
def test_negative_strength_is_a_value_error(factory, pattern):
    with pytest.raises(ValueError, match=pattern):
        factory()


def test_penalty_reprs():
    assert repr(L1(0.5)) == "L1(strength=0.5)"
    assert repr(L2(0.25)) == "L2(strength=0.25)"
    assert repr(ElasticNet(0.1, 0.2)) == "ElasticNet(l1=0.1, l2=0.2)"
