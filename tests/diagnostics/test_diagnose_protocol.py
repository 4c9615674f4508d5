"""`gradwise.diagnostics.diagnose` (``gradwise/diagnostics/protocol.py``): each planted problem is
named, with the right advice, and a healthy model passes every step (issue 10, "Done when")."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import scenarios as S

import gradwise as gw
from gradwise.diagnostics import Diagnosis


def run(setup: tuple[Any, ...], **kw: Any) -> Diagnosis:
    model, loss, data, opt = setup
    kw.setdefault("steps", 300)
    kw.setdefault("sweep_steps", 100)
    kw.setdefault("batch_size", 32)
    return gw.diagnostics.diagnose(model, loss, data, optimizer=opt, **kw)


def test_a_healthy_model_passes_every_step(tmp_path) -> None:
    model, loss, data, opt = S.healthy()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    d = run((model, loss, data, opt), penalty=gw.losses.L2(1e-4), run_dir=tmp_path / "run")
    assert [c.verdict for c in d.checks] == ["ok"] * len(d.checks), str(d)
    assert d.exit_code == 0
    steps = [c.step for c in d.checks]
    for step in ("initial loss", "penalty raises the loss", "gradient check", "overfit 20 samples", "learning rate",
                 "loss during training", "update/weight ratio", "dead ReLUs", "saturated units", "gradient norms",
                 "activations", "bias/variance"):
        assert step in steps
    # The model and the optimizer passed in are untouched: every step trains a copy.
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    assert opt.state == {} or not opt.state
    # report.json and report.md in the run directory, with the same verdicts
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["exit_code"] == 0 and [c["verdict"] for c in report["checks"]] == ["ok"] * len(d.checks)
    assert "| 1 | initial loss |" in (tmp_path / "run" / "report.md").read_text()
    assert (tmp_path / "run" / "lr_sweep.csv").is_file() and (tmp_path / "run" / "babysit.csv").is_file()


def test_expected_initial_loss_is_ln_c_for_softmax_cross_entropy() -> None:
    d = run(S.healthy(), steps=50)
    c = d["initial loss"]
    assert c.numbers["expected"] == pytest.approx(np.log(3))
    assert abs(c.numbers["measured"] - np.log(3)) < 0.1


def test_lr_ten_times_too_high_is_named() -> None:
    d = run(S.sgd(1.0))  # 0.1 trains this model well (next test)
    assert d["learning rate"].verdict == "problem" and "lr too high" in d["learning rate"].summary
    assert "Lower the learning rate" in d["learning rate"].advice
    assert d["loss during training"].verdict == "problem" and "too high" in d["loss during training"].advice
    assert d.exit_code == 1


def test_the_same_model_at_a_good_lr_is_fine() -> None:
    d = run(S.sgd(0.1))
    assert d["learning rate"].verdict == "ok" and d["loss during training"].verdict == "ok"


def test_lr_a_thousand_times_too_low_is_named() -> None:
    d = run(S.sgd(1e-4))
    lr = d["learning rate"]
    assert lr.verdict == "problem" and "lr probably too low" in lr.summary and "Raise" in lr.advice
    flat = d["loss during training"]
    assert flat.verdict == "problem" and "barely changes" in flat.advice
    assert d["update/weight ratio"].verdict == "problem" and "raise the learning rate" in d["update/weight ratio"].advice


@pytest.mark.parametrize("bug", ["weight", "input"])
def test_a_custom_layer_with_a_wrong_backward_is_named(bug: str) -> None:
    d = run(S.wrong_backward(bug), steps=50)
    c = d["gradient check"]
    assert c.verdict == "problem"
    # The wrong input gradient shows in the whole model as wrong gradients of the layers *before*
    # it (0.bias); the layer-by-layer check still names the custom layer.
    assert c.where is not None and c.where.startswith("layer 2 (BadLinear)")
    assert ("parameter 2.weight" if bug == "weight" else "its input gradient") in c.where
    assert "fix its gradient formula" in c.advice


def test_dead_relus_from_a_large_negative_bias_are_named() -> None:
    d = run(S.dead_relus())
    dead = d["dead ReLUs"]
    assert dead.verdict == "problem" and dead.where == "1" and dead.numbers["dead_by_layer"]["1"] == 1.0
    assert "biases" in dead.advice
    assert d["gradient norms"].verdict == "problem" and d["gradient norms"].where == "0.weight"


def test_sigmoid_saturation_from_a_huge_weight_scale_is_named() -> None:
    d = run(S.saturated_sigmoids())
    sat = d["saturated units"]
    assert sat.verdict == "problem" and sat.where in ("1", "3")
    assert "Xavier" in sat.advice
    assert d["initial loss"].verdict == "problem" and "scale down the init" in d["initial loss"].advice


def test_an_overfitting_setup_reads_as_high_variance() -> None:
    d = run(S.overfitting(), steps=200, train_dev=0.2)
    bv = d["bias/variance"]
    assert bv.verdict == "warning" and "high variance" in bv.summary
    assert "more data" in bv.advice and "regularization" in bv.advice and "dropout" in bv.advice
    assert bv.numbers["train"] < 0.05 and bv.numbers["variance"] > 0.3
    assert "data mismatch" in d  # a dev set was given: the train-dev split separates mismatch


def test_an_underfitting_setup_reads_as_high_bias() -> None:
    d = run(S.underfitting())
    bv = d["bias/variance"]
    assert bv.verdict == "warning" and "high bias" in bv.summary
    assert "bigger network" in bv.advice and "train longer" in bv.advice
    assert bv.numbers["avoidable_bias"] > 0.2


def test_the_baseline_error_moves_the_bias() -> None:
    d = run(S.underfitting(), baseline_error=0.45, steps=150)
    bv = d["bias/variance"]
    assert bv.numbers["baseline"] == 0.45
    assert bv.numbers["avoidable_bias"] == pytest.approx(bv.numbers["train"] - 0.45)


def test_a_penalty_that_applies_to_nothing_is_a_problem() -> None:
    model, loss, data, opt = S.healthy()
    # weights_only penalizes (out, in) matrices; a model of biases only... here: strength 0
    d = run((model, loss, data, opt), penalty=gw.losses.L2(0.0), steps=30)
    assert d["penalty raises the loss"].verdict == "problem"


# ------------------------------------------------------------------------------------ bad input


def test_data_with_nan_is_one_clear_error(tmp_path) -> None:
    model, loss, (x, y), opt = S.healthy()
    x = x.copy()
    x[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"x_train holds NaN or inf \(first in sample 7\)"):
        run((model, loss, (x, y), opt), run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_model_whose_output_does_not_fit_the_loss_is_one_clear_error(tmp_path) -> None:
    gw.manual_seed(0)
    model = gw.Sequential(gw.layers.Linear(2, 2))  # 2 scores for 3 classes
    x, y = S.spiral()
    with pytest.raises(ValueError, match="does not fit SoftmaxCrossEntropy") as err:
        gw.diagnostics.diagnose(model, S.CE(), (x, y), run_dir=tmp_path / "run")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ((np.zeros((30, 2)),), "must be"),
        ((np.zeros((30, 2)), np.zeros(29, dtype=int)), "30 samples but y_train has 29"),
        ((np.zeros((10, 2)), np.zeros(10, dtype=int)), "need at least 40"),
    ],
)
def test_malformed_data_is_refused(data: tuple[Any, ...], match: str) -> None:
    model, loss, _, _ = S.healthy()
    with pytest.raises(ValueError, match=match):
        gw.diagnostics.diagnose(model, loss, data)


def test_a_diagnosis_never_writes_over_an_existing_run_directory(tmp_path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("earlier run")
    with pytest.raises(FileExistsError):
        run(S.healthy(), run_dir=tmp_path / "run", steps=20)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["keep.txt"]


def test_diagnose_is_loaded_lazily_and_is_the_function() -> None:
    from gradwise.diagnostics.protocol import diagnose

    assert gw.diagnostics.diagnose is diagnose and callable(gw.diagnostics.diagnose)
    assert "diagnose" in gw.diagnostics.__all__


def test_a_regression_model_is_read_with_its_loss() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (400, 1)).astype(np.float32)
    y = np.sin(3 * x).astype(np.float32)
    gw.manual_seed(0)
    model = gw.Sequential(gw.layers.Linear(1, 32), gw.layers.Tanh(), gw.layers.Linear(32, 1))
    d = run((model, gw.losses.MSE(), (x, y), gw.optim.Adam(model.parameters(), lr=1e-2)), steps=400)
    init = d["initial loss"]
    # the targets of the training split (90% of them): close to those of all
    assert init.numbers["expected"] == pytest.approx(float(np.mean(y.astype(np.float64) ** 2)), rel=0.05)
    assert "mean square" in init.numbers["formula"]
    assert d["overfit 20 samples"].numbers["accuracy"] is None  # regression: judged on the loss
    bv = d["bias/variance"]
    assert "(MSE)" in bv.summary and bv.numbers["train"] < init.numbers["expected"]
    assert d["saturated units"].step == "saturated units"  # tanh layers are watched


def test_a_binary_classifier_on_logits_starts_at_ln_2() -> None:
    x, y = gw.data.make_spiral(150, 2, noise=0.2, rng=np.random.default_rng(0))
    gw.manual_seed(0)
    model = gw.Sequential(gw.layers.Linear(2, 32), gw.layers.ReLU(), gw.layers.Linear(32, 1))
    targets = y.reshape(-1, 1).astype(np.float32)
    d = run((model, gw.losses.BCEWithLogits(), (x, targets), gw.optim.Adam(model.parameters(), lr=1e-2)), steps=150)
    assert d["initial loss"].numbers["expected"] == pytest.approx(np.log(2))
    assert 0 <= d["bias/variance"].numbers["train"] <= 1  # an error rate: 1 - accuracy


def test_a_flat_optimizer_is_copied_with_its_buffers() -> None:
    model, loss, data, _ = S.healthy()
    opt = gw.optim.Adam(model.parameters(), lr=1e-2, flat=True)
    d = run((model, loss, data, opt), steps=150)
    assert d["overfit 20 samples"].verdict == "ok" and d["loss during training"].verdict == "ok"


def test_an_optimizer_of_another_model_is_refused() -> None:
    model, loss, data, _ = S.healthy()
    other = S.mlp()
    with pytest.raises(ValueError, match="not this model's"):
        gw.diagnostics.diagnose(model, loss, data, optimizer=gw.optim.Adam(other.parameters()))


def test_a_dev_set_from_another_distribution_reads_as_data_mismatch() -> None:
    model, loss, (x, y), opt = S.healthy()
    x_dev, y_dev = S.spiral(seed=1, n_per_class=100)
    turn = np.deg2rad(60.0)  # the same spirals, rotated: a shifted input distribution
    rot = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]], dtype=np.float32)
    d = run((model, loss, (x, y, x_dev @ rot.T, y_dev), opt), steps=400)
    mismatch = d["data mismatch"]
    assert mismatch.verdict == "warning" and "more like the dev data" in mismatch.advice
    assert d["bias/variance"].numbers["variance"] < 0.05  # train-dev is fine: not variance
