"""Tests for gradwise/training/ensemble/ (model.py, members.py): averaging, the gain over members, snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gradwise as gw
from gradwise.data.datasets import load_mnist1d, make_spiral
from gradwise.data.loader import DataLoader
from gradwise.layers import Linear, ReLU
from gradwise.losses import MSE, SoftmaxCrossEntropy
from gradwise.training.ensemble import (
    Ensemble,
    Snapshots,
    combine,
    ensemble_gain,
    train_seeds,
)
from gradwise.training.metrics import accuracy, rmse


class Fixed(gw.Layer):
    """Row i of a fixed array for the input i: x is (N, 1) sample indices."""

    def __init__(self, out: np.ndarray) -> None:
        super().__init__()
        self.out = np.asarray(out)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.out[np.asarray(x)[:, 0].astype(np.intp)].copy()


IDX = np.arange(4.0)[:, None]  # the inputs of the Fixed members


def softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


S1 = np.array([[2.0, 0.0, -1.0], [0.0, 0.5, 0.0], [-3.0, 1.0, 3.0], [1.0, 1.0, 0.0]])
S2 = np.array([[0.0, 3.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.5], [0.0, 2.0, 0.0]])
Y = np.array([0, 1, 2, 1])


# ----------------------------------------------------------------------------------------- averaging


def test_mean_probs_averages_softmax_probabilities_and_scores_are_their_log() -> None:
    ens = Ensemble([Fixed(S1), Fixed(S2)], weights=[3, 1])
    x = IDX
    expected = 0.75 * softmax(S1) + 0.25 * softmax(S2)
    np.testing.assert_allclose(ens.predict(x), expected, rtol=1e-12)
    scores = ens(x)
    np.testing.assert_allclose(np.log(expected), scores, rtol=1e-12)
    np.testing.assert_allclose(softmax(scores), expected, rtol=1e-12)  # valid logits
    np.testing.assert_allclose(ens.weights, [0.75, 0.25])


def test_binary_logits_average_sigmoid_probabilities() -> None:
    a, b = np.array([[2.0], [-1.0]]), np.array([[0.0], [-3.0]])
    ens = Ensemble([Fixed(a), Fixed(b)])
    p = (1 / (1 + np.exp(-a)) + 1 / (1 + np.exp(-b))) / 2
    np.testing.assert_allclose(ens.predict(IDX[:2]), p, rtol=1e-12)
    np.testing.assert_allclose(ens(IDX[:2]), np.log(p / (1 - p)), rtol=1e-12)


def test_mean_scores_averages_raw_outputs() -> None:
    ens = Ensemble([Fixed(S1), Fixed(S2)], mode="mean_scores", weights=[1, 1])
    np.testing.assert_allclose(ens.predict(IDX, batch_size=3), (S1 + S2) / 2)
    np.testing.assert_allclose(ens(IDX), (S1 + S2) / 2)


def test_evaluate_gives_the_nll_and_metrics_of_the_averaged_probabilities() -> None:
    ens = Ensemble([Fixed(S1), Fixed(S2)])
    loader = DataLoader(IDX, Y, batch_size=4)
    p = (softmax(S1) + softmax(S2)) / 2
    results = ens.evaluate(loader, [accuracy], loss=SoftmaxCrossEntropy())
    assert results["loss"] == pytest.approx(-np.mean(np.log(p[np.arange(4), Y])), rel=1e-12)
    assert results["accuracy"] == np.mean(p.argmax(axis=1) == Y)


def test_combine_keeps_the_output_dtype() -> None:
    outs = [S1.astype(np.float32), S2.astype(np.float32)]
    scores, probs = combine(outs, np.array([0.5, 0.5]), "mean_probs")
    assert scores.dtype == probs.dtype == np.float32


def test_predict_uses_eval_mode_and_restores_it() -> None:
    rng = np.random.default_rng(0)
    members = [gw.Sequential(Linear(3, 4, rng=rng), gw.layers.Dropout(0.5), Linear(4, 2, rng=rng)) for _ in range(2)]
    ens = Ensemble(members)
    ens.train()
    x = rng.standard_normal((5, 3)).astype(np.float32)
    first, second = ens.predict(x), ens.predict(x)
    np.testing.assert_array_equal(first, second)  # no dropout noise
    assert all(m.training for _, m in ens.named_modules())
    expected = (softmax(members[0].eval()(x)) + softmax(members[1].eval()(x))) / 2
    np.testing.assert_allclose(first, expected, rtol=1e-5)


def test_ensemble_is_a_layer_with_torch_like_names() -> None:
    rng = np.random.default_rng(0)
    ens = Ensemble([Linear(2, 3, rng=rng), Linear(2, 3, rng=rng)])
    assert list(ens.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert len(ens) == 2 and ens[1] is ens.models[1]
    with pytest.raises(NotImplementedError, match="train each member"):
        ens.backward(np.zeros((1, 3)))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (([],), {}, ValueError, "at least one model"),
        (([np.zeros(3)],), {}, TypeError, r"models\[0\]"),
        (([Linear(2, 3)],), {"mode": "vote"}, ValueError, "mode"),
        (([Linear(2, 3), Linear(2, 3)],), {"weights": [1.0]}, ValueError, "1 weights for 2 models"),
        (([Linear(2, 3), Linear(2, 3)],), {"weights": [1.0, -1.0]}, ValueError, ">= 0"),
        (([Linear(2, 3), Linear(2, 3)],), {"weights": [0.0, 0.0]}, ValueError, "not all 0"),
    ],
)
def test_invalid_arguments(args: tuple, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Ensemble(*args, **kwargs)


def test_members_with_different_output_shapes() -> None:
    ens = Ensemble([Linear(2, 3), Linear(2, 4)])
    with pytest.raises(ValueError, match="differ in shape"):
        ens.predict(np.zeros((2, 2), dtype=np.float32))


# ----------------------------------------------------------------------------------------- the gain


def test_ensemble_gain_for_a_larger_and_a_smaller_is_better_metric() -> None:
    loader = DataLoader(IDX, Y, batch_size=3)
    gain = ensemble_gain([Fixed(S1), Fixed(S2)], loader, accuracy)
    indiv = [accuracy(S1, Y), accuracy(S2, Y)]
    assert gain["individual"] == indiv and gain["mean_individual"] == pytest.approx(np.mean(indiv))
    assert gain["best_individual"] == max(indiv)
    assert gain["ensemble"] == Ensemble([Fixed(S1), Fixed(S2)]).evaluate(loader, [accuracy])["accuracy"]
    assert gain["gain"] == pytest.approx(gain["ensemble"] - gain["mean_individual"])

    targets = np.array([[1.0], [2.0], [3.0], [4.0]])
    a, b = targets + 1.0, targets - 1.0  # each off by 1, their mean exact
    reg = DataLoader(IDX, targets, batch_size=4)
    result = ensemble_gain([Fixed(a), Fixed(b)], reg, rmse, mode="mean_scores")
    assert result["individual"] == [pytest.approx(1.0), pytest.approx(1.0)]
    assert result["ensemble"] == pytest.approx(0.0, abs=1e-12)
    assert result["gain"] == pytest.approx(1.0) and result["best_individual"] == pytest.approx(1.0)
    assert Ensemble([Fixed(a), Fixed(b)], mode="mean_scores").evaluate(reg, [rmse], MSE())["loss"] == pytest.approx(0.0)


def test_three_seeds_on_mnist1d_beat_their_mean() -> None:
    x, y, x_test, y_test = load_mnist1d()
    train = DataLoader(x, y, batch_size=100, shuffle=True)
    test = DataLoader(x_test, y_test, batch_size=1000)

    def build(seed: int) -> gw.Trainer:
        rng = np.random.default_rng(seed)
        model = gw.Sequential(Linear(40, 128, rng=rng), ReLU(), Linear(128, 128, rng=rng), ReLU(), Linear(128, 10, rng=rng))
        return gw.Trainer(model, SoftmaxCrossEntropy(), gw.optim.Adam(model.parameters(), lr=3e-3), progress=False)

    models = train_seeds(build, [0, 1, 2], train, epochs=12)
    assert len({id(m) for m in models}) == 3
    assert not np.array_equal(models[0][0].weight.data, models[1][0].weight.data)
    result = ensemble_gain(models, test, accuracy)
    assert result["ensemble"] >= result["mean_individual"]
    assert result["gain"] > 0.005  # about 3 points with these seeds
    assert min(result["individual"]) > 0.45  # the members learned something (chance is 0.1)
    assert Ensemble(models).evaluate(test, [accuracy])["accuracy"] == result["ensemble"]


def test_train_seeds_needs_seeds() -> None:
    with pytest.raises(ValueError, match="no seeds"):
        train_seeds(lambda seed: None, [], [], epochs=1)  # type: ignore[arg-type,return-value]


# ----------------------------------------------------------------------------------------- snapshots


def _spiral_trainer(callbacks: list) -> tuple[gw.Trainer, DataLoader]:
    x, y = make_spiral(60, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    model = gw.Sequential(Linear(2, 32, rng=rng), ReLU(), Linear(32, 3, rng=rng))
    sched = gw.optim.schedules.Cosine(0.1, total_steps=2 * 6, restarts=True)  # one cycle per 2 epochs
    opt = gw.optim.SGD(model.parameters(), lr=sched, momentum=0.9)
    trainer = gw.Trainer(model, SoftmaxCrossEntropy(), opt, callbacks=callbacks, progress=False)
    return trainer, DataLoader(x, y, batch_size=30, shuffle=True, rng=np.random.default_rng(2))


def test_snapshots_every_k_epochs_keep_the_last_ones_and_build_an_ensemble(tmp_path: Path) -> None:
    snaps = Snapshots(every=2, keep=2, out_dir=tmp_path / "snaps")
    trainer, loader = _spiral_trainer([snaps])
    trainer.fit(loader, epochs=6)
    assert [e for e, _ in snaps.snapshots] == [4, 6]
    final = trainer.model.state_dict()
    assert all(np.array_equal(snaps.snapshots[-1][1][k], final[k]) for k in final)
    assert not np.array_equal(snaps.snapshots[0][1]["0.weight"], final["0.weight"])
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == [
        f"snapshot_epoch_{e:04d}.safetensors" for e in (2, 4, 6)
    ]
    ens = snaps.ensemble()
    assert len(ens) == 2 and ens[0] is not trainer.model
    x = loader.x[:5]
    np.testing.assert_allclose(ens.models[1](x), trainer.model.eval()(x), rtol=1e-6)

    # a resumed run reads the kept snapshots back from out_dir
    fresh = Snapshots(every=2, keep=2, out_dir=tmp_path / "snaps")
    fresh.load_state_dict(snaps.state_dict())
    assert [e for e, _ in fresh.snapshots] == [4, 6]
    assert np.array_equal(fresh.snapshots[0][1]["0.weight"], snaps.snapshots[0][1]["0.weight"])


def test_snapshots_in_memory_and_errors() -> None:
    snaps = Snapshots(every=3)
    trainer, loader = _spiral_trainer([snaps])
    with pytest.raises(ValueError, match="no snapshot"):
        snaps.ensemble(trainer.model)
    trainer.fit(loader, epochs=2)
    assert snaps.snapshots == []
    trainer.fit(loader, epochs=1)
    assert [e for e, _ in snaps.snapshots] == [3]
    assert snaps.state_dict() == {"epochs": [3]}
    for bad in ({"every": 0}, {"every": 1.5}, {"keep": 0}):
        with pytest.raises(ValueError):
            Snapshots(**bad)  # type: ignore[arg-type]
