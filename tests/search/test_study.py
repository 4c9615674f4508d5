"""A search from start to report on spiral: run directories, results, plots, best.toml, resuming,
coarse to fine, pruning, two workers on one SQLite study, and a SIGKILL in the middle."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from conftest import cli, cli_env
from optuna.trial import TrialState

import gradwise as gw
from gradwise.cli.__main__ import main
from gradwise.cli.config import ConfigError
from gradwise.search.storage import DB_NAME


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))


def test_a_search_leaves_runs_results_plots_and_a_best_config_that_trains_to_the_same_score(
    search_config: Callable[..., Path], tmp_path: Path
) -> None:
    config, out = search_config(settings='metric = "accuracy"\nrefine_top = 2'), tmp_path / "searches"
    result = gw.search(config, trials=2, out=out, verbose=False)
    here = out / "spiral_search"
    assert result.directory == here and (out / DB_NAME).is_file()
    assert [r["trial"] for r in result.rows] == [0, 1]
    for n in range(2):
        run = here / "trials" / f"{n:04d}"
        assert {"config.toml", "history.csv", "metrics.json"} <= {p.name for p in run.iterdir()}
        assert (here / "trials" / f"{n:04d}.toml").is_file()
    with open(here / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["trial"]) for r in rows] == [0, 1]
    assert {"val_accuracy", "optimizer.lr", "width", "test_accuracy", "run_dir"} <= set(rows[0])
    plots = sorted(p.name for p in (here / "plots").iterdir())
    assert plots == ["history.png", "param_model.layers.2.p.png", "param_optimizer.lr.png", "param_width.png"]
    assert max(float(r["val_accuracy"]) for r in rows) == pytest.approx(result.best_value)
    # best.toml is a plain training config: `gradwise train` reproduces the best trial's score.
    assert main(["train", str(result.best_config), "--out", str(tmp_path / "again"), "--no-progress"]) == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["val"]["accuracy"] == pytest.approx(result.best_value)

    # The same call again has nothing left to run; more trials add to the same study.
    assert len(gw.search(config, trials=2, out=out, verbose=False).study.trials) == 2
    more = gw.search(config, trials=4, out=out, verbose=False)
    assert [t.number for t in _finished(more.study)] == [0, 1, 2, 3]

    # Coarse to fine: a new study whose ranges sit inside the old ones, around the best trials.
    fine = gw.search(config, trials=2, out=out, refine=True, verbose=False)
    assert fine.study.study_name == "spiral_search-fine" and fine.directory == out / "spiral_search-fine"
    old = {s.name: s for s in more.spaces}
    for s in fine.spaces:
        if s.kind != "choice":
            assert old[s.name].low <= s.low < s.high <= old[s.name].high
            assert (s.low, s.high) != (old[s.name].low, old[s.name].high) or s.kind == "uniform"
            assert all(s.low <= t.params[s.name] <= s.high for t in _finished(fine.study))

    # Changing the spaces of an existing study is refused before anything runs.
    changed = config.read_text().replace("[1e-3, 1e-1]", "[1e-4, 1e-1]")
    config.write_text(changed)
    with pytest.raises(ConfigError, match="other spaces"):
        gw.search(config, trials=6, out=out, verbose=False)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")  # the blown-up runs
def test_bad_trials_are_pruned_and_diverged_ones_count_as_pruned(search_config: Callable[..., Path], tmp_path: Path) -> None:
    settings = 'pruner = "halving"\nwarmup_epochs = 1\nreduction_factor = 2'
    result = gw.search(search_config(epochs=3, settings=settings), trials=4, out=tmp_path / "s", verbose=False)
    states = [r["state"] for r in result.rows]
    assert len(states) == 4 and "pruned" in states and "complete" in states
    for r in result.rows:
        assert (r["epochs"] < 3) == (r["state"] == "pruned")

    wild = search_config(settings='"optimizer.momentum" = { choice = [0.9] }', name="wild.toml")
    wild.write_text(wild.read_text().replace('type = "Adam"', 'type = "SGD"').replace("[1e-3, 1e-1]", "[1e30, 1e32]"))
    blown = gw.search(wild, trials=2, out=tmp_path / "w", verbose=False)
    assert [r["state"] for r in blown.rows] == ["diverged", "diverged"]
    assert [t.state for t in blown.study.trials] == [TrialState.PRUNED, TrialState.PRUNED]
    assert blown.best_config is None


def test_two_workers_share_one_sqlite_study_without_duplicates_or_losses(
    search_config: Callable[..., Path], tmp_path: Path
) -> None:
    result = gw.search(search_config(), trials=4, workers=2, out=tmp_path / "s", verbose=False)
    done = _finished(result.study)
    assert sorted(t.number for t in done) == sorted({t.number for t in done}) and len(done) == 4
    assert all(t.user_attrs.get("surplus") for t in result.study.trials if t.state == TrialState.FAIL)
    for t in done:
        assert (Path(t.user_attrs["run_dir"]) / "metrics.json").is_file()
    assert len(result.rows) == 4


def _poll(deadline: float, what: str, check: Callable[[], bool]) -> None:
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_search_killed_with_sigkill_resumes_with_no_trial_lost_or_counted_twice(
    search_config: Callable[..., Path], tmp_path: Path
) -> None:
    # 150 epochs: a trial lasts a second or more, so the one seen RUNNING is still running when the
    # kill lands (with 10 epochs it sometimes finished in between on a loaded machine).
    config, out = search_config(epochs=150), tmp_path / "s"
    args = cli(str(config), "--trials", "3", "--out", str(out), "--grace-period", "2", "--quiet")
    url = f"sqlite:///{out / DB_NAME}"

    def states() -> dict[int, TrialState]:
        try:
            study = optuna.load_study(study_name="spiral_search", storage=url)
        except (KeyError, Exception):
            return {}
        return {t.number: t.state for t in study.get_trials()}

    proc = subprocess.Popen(args, env=cli_env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        _poll(deadline, "a finished and a running trial", lambda: (
            TrialState.COMPLETE in states().values() and list(states().values())[-1] == TrialState.RUNNING
        ))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = states()
    killed = max(before)
    assert before[killed] == TrialState.RUNNING

    again = subprocess.run(args, env=cli_env(), capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="spiral_search", storage=url)
    done = _finished(study)
    assert len(done) == 3 and len({t.number for t in done}) == 3
    lost = study.trials[killed]
    assert lost.state == TrialState.FAIL  # marked by the heartbeat check, not left RUNNING
    retry = [t for t in done if t.system_attrs.get("failed_trial") == killed]
    assert len(retry) == 1 and retry[0].params == lost.params  # run again, once, with its values
