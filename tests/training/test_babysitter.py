"""`gw.callbacks.Babysitter` (gradwise/training/babysitter.py): live checks during `Trainer.fit`,
one warning per problem, recorded in ``babysit.csv``, ``babysit_alerts.csv`` and ``history.csv``."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gradwise as gw
from gradwise.training.babysitter import BabysitterWarning
from gradwise.training.divergence import TrainingDiverged

from diagnostics import scenarios as S  # tests/diagnostics/scenarios.py (tests/ is on sys.path)


def fit(setup: tuple[Any, ...], sitter: gw.callbacks.Babysitter, epochs: int = 3, **kw: Any) -> gw.Trainer:
    model, loss, (x, y), opt = setup
    loader = gw.data.DataLoader(x, y, batch_size=32, shuffle=True, rng=np.random.default_rng(0))
    if "run_dir" in kw:
        kw.setdefault("monitor", "loss")
    trainer = gw.Trainer(model, loss, opt, callbacks=[sitter], progress=False, **kw)
    trainer.fit(loader, epochs=epochs)
    return trainer


def test_a_healthy_run_raises_no_warning_and_records_everything(tmp_path: Path) -> None:
    sitter = gw.callbacks.Babysitter(every=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BabysitterWarning)
        trainer = fit(S.healthy(), sitter, run_dir=tmp_path / "run")
    assert sitter.alerts == [] and all(c.verdict == "ok" for c in sitter.checks.values())
    steps = trainer.global_step
    assert [r["step"] for r in sitter.rows] == list(range(1, steps + 1, 5))  # measured every 5 steps
    row = sitter.rows[-1]
    assert {"update_ratio/0.weight", "grad_norm/4.weight", "dead/1", "act_mean/0", "act_std/4"} <= set(row)
    run = gw.training.rundir.RunDir(tmp_path / "run")
    written = run.read_history()
    assert {"update_ratio", "dead_relu", "grad_norm", "babysit_alerts"} <= set(written[0])
    assert "saturated" not in written[0]  # no sigmoid/tanh: nothing to record
    assert len((tmp_path / "run" / "babysit.csv").read_text().splitlines()) == len(sitter.rows) + 1
    assert (tmp_path / "run" / "babysit_alerts.csv").read_text().strip() == "step,epoch,verdict,check,where,summary,advice"
    # the update/weight ratios it records are those of the optimizer's actual steps
    assert 1e-4 < written[-1]["update_ratio"] < 5e-2


def test_dead_relus_are_warned_once_with_the_advice() -> None:
    sitter = gw.callbacks.Babysitter(every=3)
    with pytest.warns(BabysitterWarning) as record:
        fit(S.dead_relus(), sitter, epochs=3)
    assert any(re.search(r"PROBLEM: dead ReLUs \[1\].*biases", str(w.message)) for w in record)
    dead = [a for a in sitter.alerts if a["check"] == "dead ReLUs"]
    assert len(dead) == 1 and dead[0]["where"] == "1" and dead[0]["verdict"] == "problem"
    assert sum(": dead ReLUs [1]" in str(w.message) for w in record) == 1  # once, though seen at every measurement


def test_saturated_sigmoids_are_warned() -> None:
    sitter = gw.callbacks.Babysitter(every=5, warn=False)
    fit(S.saturated_sigmoids(), sitter, epochs=1)
    assert any(a["check"] == "saturated units" and a["verdict"] == "problem" for a in sitter.alerts)


def test_a_flat_loss_is_warned_after_patience() -> None:
    sitter = gw.callbacks.Babysitter(every=10, patience=50, warn=False)
    fit(S.sgd(1e-5), sitter, epochs=4)
    flat = [a for a in sitter.alerts if a["check"] == "loss during training"]
    assert len(flat) == 1 and "too low" in flat[0]["advice"] and flat[0]["step"] >= 50


def test_a_nan_loss_is_recorded_and_training_still_raises(tmp_path: Path) -> None:
    model, loss, (x, y), _ = S.healthy()
    x = x * 1e3
    opt = gw.optim.SGD(model.parameters(), lr=1e3)
    sitter = gw.callbacks.Babysitter(every=1, warn=False)
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged):
        fit((model, loss, (x, y), opt), sitter, epochs=5, run_dir=tmp_path / "run")
    checks = {a["check"] for a in sitter.alerts}
    assert "loss during training" in checks or "NaN/inf" in checks
    assert (tmp_path / "run" / "babysit_alerts.csv").read_text().count("\n") >= 2


def test_measuring_leaves_the_training_unchanged() -> None:
    plain = fit(S.healthy(), gw.callbacks.Babysitter(every=1000), epochs=2)  # measures step 0 only
    watched = fit(S.healthy(), gw.callbacks.Babysitter(every=2), epochs=2)
    for a, b in zip(plain.model.parameters(), watched.model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert all("forward" not in m.__dict__ for _, m in watched.model.named_modules())


def test_with_gradient_accumulation_it_measures_whole_updates() -> None:
    sitter = gw.callbacks.Babysitter(every=2, warn=False)
    trainer = fit(S.healthy(), sitter, epochs=1, accumulate=3)
    assert sitter.rows and all(r["step"] % 2 == 1 for r in sitter.rows)  # the step taken after the snapshot
    assert all(np.isfinite(r["update_ratio/0.weight"]) and r["update_ratio/0.weight"] > 0 for r in sitter.rows)
    assert trainer.global_step == sitter.rows[-1]["step"] or trainer.global_step > sitter.rows[-1]["step"]


def test_state_dict_keeps_the_warned_problems() -> None:
    sitter = gw.callbacks.Babysitter(every=3, warn=False)
    fit(S.dead_relus(), sitter, epochs=1)
    state = sitter.state_dict()
    again = gw.callbacks.Babysitter(every=3)
    again.load_state_dict(state)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BabysitterWarning)  # already warned before the "resume"
        model, loss, data, opt = S.dead_relus()
        fit((model, loss, data, opt), again, epochs=1)


@pytest.mark.parametrize(("kw", "match"), [
    ({"every": 0}, "every=0"), ({"patience": 1}, "patience=1"), ({"bins": True}, "bins=True"),
    ({"draw": "png"}, "draw"),
])
def test_arguments_are_checked(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gw.callbacks.Babysitter(**kw)


def test_a_loss_that_rises_later_is_warned_but_a_plateau_is_not() -> None:
    sitter = gw.callbacks.Babysitter(every=5, patience=20, warn=False)
    sitter.trainer = type("T", (), {"global_step": 0, "model": None, "run_dir": None})()
    falling = list(np.linspace(2.0, 1.0, 20))
    for v in falling + [1.0] * 40:  # falls, then plateaus: fine
        sitter.on_train_batch_end(0, {"loss": v})
    assert sitter.alerts == []
    for v in np.linspace(1.0, 3.0, 40):  # then rises
        sitter.on_train_batch_end(0, {"loss": v})
    (alert,) = sitter.alerts
    assert alert["check"] == "loss during training" and "too high" in alert["advice"]
