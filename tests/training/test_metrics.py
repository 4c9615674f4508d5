"""Tests for gradwise/training/metrics.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradwise.training.metrics import EpochAccumulator, accuracy, mae, rmse, top_k_accuracy


def test_accuracy_multiclass_argmax() -> None:
    scores = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    y = np.array([0, 1, 1, 2])
    assert accuracy(scores, y) == pytest.approx(0.5)


def test_accuracy_accepts_one_hot_targets() -> None:
    scores = np.array([[2.0, 1.0], [0.0, 3.0], [4.0, 1.0]])
    y = np.array([[1, 0], [1, 0], [1, 0]])
    assert accuracy(scores, y) == pytest.approx(2 / 3)


@pytest.mark.parametrize("shape", [(4,), (4, 1)])
def test_accuracy_binary_logits_threshold_at_zero(shape: tuple[int, ...]) -> None:
    logits = np.array([-1.0, 0.5, 2.0, -0.1]).reshape(shape)
    assert accuracy(logits, np.array([0, 1, 0, 0]).reshape(shape)) == pytest.approx(0.75)
    # Float and soft targets count as their nearest class.
    assert accuracy(logits, np.array([0.1, 0.9, 0.2, 0.0])) == pytest.approx(0.75)


def test_accuracy_shape_errors() -> None:
    with pytest.raises(ValueError, match="do not match"):
        accuracy(np.zeros((3, 2)), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="shape"):
        accuracy(np.zeros((2, 2, 2)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="N >= 1"):
        accuracy(np.zeros((0, 3)), np.zeros(0, dtype=int))


def test_metric_names_are_their_log_keys() -> None:
    assert accuracy.__name__ == "accuracy"
    assert rmse.__name__ == "rmse"
    assert mae.__name__ == "mae"
    assert top_k_accuracy(5).__name__ == "top5_accuracy"


def test_top_k_by_hand() -> None:
    scores = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5]])
    y = np.array([2, 2, 0])
    assert top_k_accuracy(1)(scores, y) == pytest.approx(0.0)
    assert top_k_accuracy(2)(scores, y) == pytest.approx(1 / 3)
    assert top_k_accuracy(3)(scores, y) == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), c=st.integers(2, 8), k=st.integers(1, 8), seed=st.integers(0, 2**31))
def test_top_k_matches_a_sort_based_reference(n: int, c: int, k: int, seed: int) -> None:
    k = min(k, c)
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, c))  # continuous: no ties
    y = rng.integers(0, c, size=n)
    top = np.argsort(-scores, axis=1)[:, :k]
    expected = np.mean([y[i] in top[i] for i in range(n)])
    assert top_k_accuracy(k)(scores, y) == pytest.approx(expected)
    if k == 1:
        assert top_k_accuracy(1)(scores, y) == pytest.approx(accuracy(scores, y))


@pytest.mark.parametrize("k", [0, -2, 1.5, True])
def test_top_k_rejects_bad_k(k: object) -> None:
    with pytest.raises(ValueError, match="k="):
        top_k_accuracy(k)  # type: ignore[arg-type]


def test_top_k_needs_enough_classes() -> None:
    with pytest.raises(ValueError, match="C >= 5"):
        top_k_accuracy(5)(np.zeros((2, 3)), np.zeros(2, dtype=int))


def test_rmse_and_mae() -> None:
    pred = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    y = np.array([1.0, 0.0, 3.0, 8.0])
    assert rmse(pred, y) == pytest.approx(np.sqrt((4 + 16) / 4))
    assert mae(pred, y) == pytest.approx((2 + 4) / 4)


def test_regression_metrics_accept_column_predictions() -> None:
    pred = np.array([[1.0], [3.0]])
    y = np.array([0.0, 1.0])
    assert rmse(pred, y) == pytest.approx(np.sqrt((1 + 4) / 2))
    assert mae(pred, y) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="do not match"):
        mae(np.zeros((2, 2)), np.zeros(3))


def test_epoch_accumulator_weights_batches_by_size() -> None:
    class MeanLoss:
        reduction = "mean"

    acc = EpochAccumulator(MeanLoss(), [accuracy])
    acc.add(1.0, np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), np.array([0, 1, 1]))
    acc.add(4.0, np.array([[0.0, 1.0]]), np.array([1]))
    results = acc.results("test")
    assert results["loss"] == pytest.approx((3 * 1.0 + 1 * 4.0) / 4)
    assert results["accuracy"] == pytest.approx(3 / 4)  # a mean of batch accuracies would say 5/6


def test_epoch_accumulator_sums_for_sum_reduction_and_rejects_empty_epochs() -> None:
    class SumLoss:
        reduction = "sum"

    acc = EpochAccumulator(SumLoss(), [])
    acc.add(2.0, np.zeros((3, 2)), np.zeros(3))
    acc.add(5.0, np.zeros((1, 2)), np.zeros(1))
    assert acc.results("test") == {"loss": 7.0}
    with pytest.raises(ValueError, match="empty loader yielded no batches"):
        EpochAccumulator(SumLoss(), []).results("empty loader")
