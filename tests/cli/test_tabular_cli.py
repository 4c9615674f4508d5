"""`gradwise train` on a CSV with `[model] learner = "tabular"`: tuple inputs end to end, the saved processor."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gradwise as gw
from gradwise.cli import config as cfgmod
from gradwise.cli.__main__ import main
from gradwise.tabular import load_learner


def write_csv(path, n=500, seed=0, bad_line=None):
    rng = np.random.default_rng(seed)
    lines = ["colour,size,x,noise,label"]
    for i in range(n):
        colour = rng.choice(["red", "green", "blue", ""])
        size = rng.choice(["S", "M", "L"])
        x = rng.normal(50, 10)
        label = "hi" if colour == "red" or x > 55 else "lo"
        lines.append(f"{colour},{size},{'' if i % 17 == 0 else f'{x:.3f}'},{rng.normal():.3f},{label}")
    if bad_line is not None:
        lines[bad_line - 1] = "red,S,fifty,0.1,hi"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_config(tmp_path, csv_path, extra=""):
    text = f"""
[data]
dataset = "csv"
path = "{csv_path}"
y_name = "label"
cat_names = ["colour", "size"]
cont_names = ["x", "noise"]
test = 0.2
val = 0.1
{extra}
[model]
learner = "tabular"
layers = [32, 16]
dropout = 0.05
emb_sizes = {{ size = 2 }}
[loss]
type = "SoftmaxCrossEntropy"
[optimizer]
type = "AdamW"
lr = 1e-2
[schedule]
type = "one_cycle"
[train]
epochs = 4
batch_size = 32
drop_last = true
seed = 3
"""
    path = tmp_path / "tab.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_train_saves_the_processor_and_the_run_predicts_new_rows(tmp_path, capsys):
    cfg_path = write_config(tmp_path, write_csv(tmp_path / "t.csv"))
    out = tmp_path / "run"
    assert main(["train", str(cfg_path), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "(360 train / 40 val / 100 test)" in printed and "Input shape: ((1, 3), (1, 2))" in printed
    state = json.loads((out / "processor.json").read_text())
    assert state["na_names"] == ["x"] and state["classes"]["size"] == ["L", "M", "S"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.8

    learn = load_learner(out)  # the final weights, those the test metrics were computed with
    assert [e.embedding_dim for e in learn.model.children()[0].children()[0].children()[1].children()] == [3, 2, 3]
    cfg = cfgmod.load(cfg_path)
    splits = cfgmod.build_data(cfg, np.random.default_rng(3))  # the run's split, drawn again
    learn.model.eval()
    scores = learn.model.forward(splits.x_test)
    assert np.mean(scores.argmax(1) == splits.y_test) == pytest.approx(metrics["test"]["accuracy"], abs=1e-12)
    rows = [
        {"colour": "red", "size": "XL", "x": None, "noise": 0.0},
        {"colour": "green", "size": "M", "x": 20, "noise": 0},
    ]
    assert list(learn.predict(rows)) == ["hi", "lo"]

    # The same from the command line, on a file of new rows in the training data's format.
    new = write_csv(tmp_path / "new.csv", n=30, seed=9)
    capsys.readouterr()
    assert main(["predict", str(out), str(new), "--out", str(tmp_path / "pred.csv")]) == 0
    lines = (tmp_path / "pred.csv").read_text().splitlines()
    assert lines[0] == "row,prediction,p(hi),p(lo)" and len(lines) == 31
    table = gw.data.load_csv(new, ["colour", "size"], ["x", "noise"], "label")
    assert [line.split(",")[1] for line in lines[1:]] == list(learn.predict(table))
    assert "accuracy" in capsys.readouterr().err


def test_the_validation_rows_are_not_seen_by_the_processor(tmp_path):
    cfg = cfgmod.load(write_config(tmp_path, write_csv(tmp_path / "t.csv")))
    splits = cfgmod.build_data(cfg, np.random.default_rng(0))
    proc = splits.meta["processor"]
    x_cat, x_cont = splits.x_train
    assert len(x_cat) == 360 and len(splits.y_val) == 40 and proc.fitted
    # The training inputs are normalized with their own statistics: mean 0, std 1 per column.
    np.testing.assert_allclose(x_cont.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x_cont.std(axis=0), 1, atol=1e-5)
    assert abs(float(splits.x_val[1][:, 0].mean())) > 1e-4  # the held-out rows were not part of the fit
    assert splits.meta["cardinalities"] == [4, 4, 3] and splits.meta["n_classes"] == 2


def test_a_separate_test_file_and_a_file_without_header(tmp_path):
    train = write_csv(tmp_path / "train.csv", n=200)
    test = write_csv(tmp_path / "test.csv", n=80, seed=1)
    for p in (train, test):
        p.write_text("".join(p.read_text().splitlines(keepends=True)[1:]), encoding="utf-8")
    extra = f'test_path = "{test}"\nnames = ["colour", "size", "x", "noise", "label"]'
    splits = cfgmod.build_data(cfgmod.load(write_config(tmp_path, train, extra)), np.random.default_rng(0))
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (180, 20, 80)


def test_a_malformed_row_exits_2_naming_the_file_and_line_before_writing(tmp_path, capsys):
    cfg_path = write_config(tmp_path, write_csv(tmp_path / "t.csv", bad_line=7))
    out = tmp_path / "run"
    assert main(["train", str(cfg_path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "t.csv, line 7, column 'x': 'fifty' is not a number" in err
    assert not out.exists()


def test_config_mistakes_are_named(tmp_path):
    csv_path = write_csv(tmp_path / "t.csv")
    with pytest.raises(cfgmod.ConfigError, match="unknown key 'hidden' in \\[model\\]"):
        cfgmod.load(write_config(tmp_path, csv_path), ("model.hidden=[3]",))
    cfg = cfgmod.load(write_config(tmp_path, csv_path), ("model.emb_sizes={ shape = 3 }",))
    splits = cfgmod.build_data(cfg, np.random.default_rng(0))
    with pytest.raises(cfgmod.ConfigError, match="no categorical column 'shape'"):
        cfgmod.build_model(cfg, np.random.default_rng(0), splits.meta)
    cfg = cfgmod.load(write_config(tmp_path, csv_path), ("data.standardize=true",))
    with pytest.raises(cfgmod.ConfigError, match="several inputs"):
        cfgmod.build_data(cfg, np.random.default_rng(0))


def test_gradcheck_runs_on_the_tabular_model(tmp_path, capsys):
    cfg_path = write_config(tmp_path, write_csv(tmp_path / "t.csv", n=120))
    assert main(["gradcheck", str(cfg_path), "--set", "model.dropout=0.0", "--samples", "6"]) == 0
    assert "PASSED" in capsys.readouterr().out


def test_predict_reads_the_uci_layout_for_an_adult_run(tmp_path):
    from gradwise.cli.predict import _read_rows
    from gradwise.data.adult import ADULT_CAT_NAMES, ADULT_CONT_NAMES
    from gradwise.tabular import TabularProcessor

    row = "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, ?, >50K."
    path = tmp_path / "adult.test"
    path.write_text(f"|1x3 Cross validator\n{row}\n\n", encoding="utf-8")
    proc = TabularProcessor(ADULT_CAT_NAMES, ADULT_CONT_NAMES, "income")
    table, targets = _read_rows(str(path), {"dataset": "adult"}, proc)
    assert len(table) == 1 and table["native-country"][0] is None and list(targets) == [">50K"]


def test_predict_on_a_run_that_is_not_tabular_exits_2(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["predict", str(tmp_path / "run"), str(write_csv(tmp_path / "t.csv", n=5))]) == 2
    assert "neither a saved TabularLearner" in capsys.readouterr().err
