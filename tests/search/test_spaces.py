"""The [search] table: every kind of space, and the mistakes caught before any trial runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import re
import tomllib

import pytest

from gradwise.cli.__main__ import main
from gradwise.cli.config import ConfigError
from gradwise.search.spaces import Space, apply_params, parse_search, set_key
from gradwise.search.study import load_spec


def test_every_kind_of_space_is_read_with_its_keys(search_config: Callable[..., Path]) -> None:
    spec = load_spec(search_config(settings='"train.batch_size" = { choice = [16, 32] }'))
    by_name = {s.name: s for s in spec.spaces}
    assert by_name["optimizer.lr"] == Space("optimizer.lr", "log_uniform", 1e-3, 1e-1, keys=("optimizer.lr",))
    assert by_name["model.layers.2.p"].kind == "uniform" and not by_name["model.layers.2.p"].log
    assert by_name["width"].log and by_name["width"].keys == ("model.layers.0.out_features", "model.layers.3.in_features")
    assert by_name["train.batch_size"].choices == (16, 32)
    assert (spec.metric, spec.direction, spec.sampler, spec.pruner, spec.seed) == ("accuracy", "maximize", "random", "none", 3)
    data = spec.trial_config({"optimizer.lr": 0.05, "width": 12, "model.layers.2.p": 0.3, "train.batch_size": 32}).data
    assert data["optimizer"]["lr"] == 0.05 and data["train"]["batch_size"] == 32
    assert data["model"]["layers"][0]["out_features"] == 12 == data["model"]["layers"][3]["in_features"]
    assert "search" not in data
    assert spec.base["optimizer"]["lr"] == 1e-2  # the base is left alone


def test_a_loss_is_minimized_by_default(search_config: Callable[..., Path]) -> None:
    assert load_spec(search_config(settings='metric = "loss"')).direction == "minimize"


def test_set_key_reaches_list_entries_and_names_the_missing_part() -> None:
    data = {"model": {"layers": [{"type": "ReLU"}]}}
    set_key(data, "model.layers.0.type", "Tanh")
    assert data["model"]["layers"][0]["type"] == "Tanh"
    with pytest.raises(ConfigError, match="indexes a list of 1 entries"):
        set_key(data, "model.layers.3.type", "Tanh")
    with pytest.raises(ConfigError, match=r"no \[optimiser\] section"):
        set_key(data, "optimiser.lr", 1.0)
    assert apply_params(data, [Space("a", "uniform", 0.0, 1.0, keys=("model.layers.0.p",))], {"a": 0.5}) != data


BAD = [
    ('"optimizer.lrr" = { log_uniform = [1e-3, 1e-1] }', "unknown key 'lrr' for Adam"),
    ('"train.epochz" = { int = [1, 3] }', "unknown key 'epochz' in \\[train\\]"),
    ('"model.layers.9.p" = { uniform = [0.0, 0.5] }', "indexes a list of 4 entries"),
    ('"model.layers.2.pp" = { uniform = [0.0, 0.5] }', "unknown key 'pp' for Dropout"),
    ('"optimiser.lr" = { log_uniform = [1e-3, 1e-1] }', "no \\[optimiser\\] section"),
    ('metrc = "loss"', "unknown setting 'metrc' in \\[search\\]"),
    ('"optimizer.betas" = 0.9', "a space is a table"),
    ('"optimizer.eps" = { uniform = [0.1, 0.1] }', "empty range"),
    ('"optimizer.eps" = { uniform = [0.2, 0.1] }', "empty range"),
    ('"train.epochs" = { int = [3, 2] }', "empty range"),
    ('"optimizer.eps" = { choice = [] }', "non-empty list"),
    ('"optimizer.eps" = { log_uniform = [0.0, 0.1] }', "a log range needs bounds > 0"),
    ('"train.epochs" = { log_int = [-1, 4] }', "a log range needs bounds > 0"),
    ('"optimizer.eps" = { normal = [0, 1] }', "unknown key 'normal'"),
    ('lr = { uniform = [0.0, 1.0] }', "needs keys"),
]


@pytest.mark.parametrize(("line", "message"), BAD, ids=[b[0].split("=")[0].strip() for b in BAD])
def test_a_bad_search_table_is_one_line_and_exit_2_before_anything_is_written(
    search_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    config = search_config(settings=line, name="bad.toml")
    out = tmp_path / "searches"
    assert main(["search", str(config), "--trials", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gradwise: error: ")
    assert "bad.toml" in err and re.search(message, err), err
    assert not out.exists()


@pytest.mark.parametrize(
    "url",
    ["postgresql://nobody@127.0.0.1:1/nodb", "sqlite:////no/such/dir/studies.db", "nosuchdb://x/y"],
)
def test_an_unreachable_storage_is_one_line_and_exit_2(
    search_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    out = tmp_path / "searches"
    assert main(["search", str(search_config()), "--trials", "2", "--storage", url, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot open the study storage" in err, err
    assert not out.exists()


def test_the_metric_must_be_measured_on_a_validation_split(search_config: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError, match="one of \\[train\\] metrics"):
        load_spec(search_config(settings='metric = "rmse"'))
    text = search_config().read_text().replace("n_per_class = 40", "n_per_class = 40\nval = 0.0")
    with pytest.raises(ConfigError, match="val > 0"):
        parse_search(tomllib.loads(text), "x.toml")
