"""`TabularProcessor`: categorify (reserved index 0), fill missing (+ `_na`), normalize; fitted on train only."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradwise.data.tabular import Table
from gradwise.data.tabular_preprocessing import TabularProcessor

TRAIN = Table(
    {
        "color": ["red", "blue", None, "red", "green"],
        "size": [3, 1, 2, 3, 1],  # integer-valued categories read as "1", "2", "3"
        "x": [1.0, 2.0, math.nan, 4.0, 10.0],
        "z": [0.5, 0.5, 0.5, 0.5, 0.5],  # constant
        "y": ["no", "yes", "no", "no", "yes"],
    }
)


def fitted(**kwargs):
    return TabularProcessor(["color", "size"], ["x", "z"], "y", **kwargs).fit(TRAIN)


def test_categorify_sorted_training_categories_from_1_unknown_and_missing_to_0():
    proc = fitted()
    assert proc.classes == {"color": ["blue", "green", "red"], "size": ["1", "2", "3"]}
    new = {"color": ["green", "purple", None], "size": [2.0, 7, None], "x": [1, 2, 3], "z": [0, 0, 0]}
    x_cat, _ = proc.transform(new)
    assert x_cat.dtype == np.int64
    np.testing.assert_array_equal(x_cat[:, :2], [[2, 2], [0, 0], [0, 0]])
    assert proc.cardinalities == [4, 4, 3]  # categories + the reserved 0; x_na: False, True + 0


def test_fill_missing_with_the_training_median_and_an_na_column():
    proc = fitted(normalize=False)
    assert proc.na_names == ["x"] and proc.all_cat_names == ["color", "size", "x_na"]
    assert proc.medians["x"] == 3.0  # median of 1, 2, 4, 10
    x_cat, x_cont = proc.transform(TRAIN)
    np.testing.assert_array_equal(x_cont[:, 0], [1, 2, 3, 4, 10])
    np.testing.assert_array_equal(x_cat[:, 2], [1, 1, 2, 1, 1])  # 2: was missing
    assert x_cont.dtype == np.float32


def test_normalize_with_training_mean_and_population_std_of_the_filled_column():
    proc = fitted()
    filled = np.array([1, 2, 3, 4, 10.0])
    _, x_cont = proc.transform({"color": ["red"], "size": [1], "x": [7.0], "z": [2.0]})
    assert x_cont[0, 0] == pytest.approx((7 - filled.mean()) / filled.std(), rel=1e-6)
    assert x_cont[0, 1] == pytest.approx(1.5)  # constant column: only centered (std 0 < eps)
    _, x_train = proc.transform(TRAIN)
    assert abs(float(x_train[:, 0].mean())) < 1e-6 and float(x_train[:, 0].std()) == pytest.approx(1, rel=1e-6)


def test_statistics_come_from_the_fitted_rows_only():
    proc = fitted()
    before = proc.to_dict()
    proc.transform({"color": ["pink"] * 3, "size": [9] * 3, "x": [1e6] * 3, "z": [9.0] * 3})
    assert proc.to_dict() == before


def test_targets_classification_and_regression():
    proc = fitted()
    assert proc.y_classes == ["no", "yes"]
    np.testing.assert_array_equal(proc.transform_y(TRAIN), [0, 1, 0, 0, 1])
    assert list(proc.decode_y(np.array([1, 0]))) == ["yes", "no"]
    with pytest.raises(ValueError, match="'maybe', not one of the training classes"):
        proc.transform_y({**{k: TRAIN[k][:1] for k in TRAIN.names}, "y": ["maybe"]})
    reg = TabularProcessor(["color"], ["z"], "x", task="regression").fit(
        Table({"color": ["a", "b"], "z": [1.0, 2.0], "x": ["1.5", "2"]})
    )
    np.testing.assert_array_equal(reg.transform_y(Table({"color": ["a"], "z": [1.0], "x": [3.0]})), [[3.0]])


def test_state_round_trips_through_json(tmp_path):
    proc = fitted()
    again = TabularProcessor.from_dict(json.loads(json.dumps(proc.to_dict())))
    for a, b in zip(proc.transform(TRAIN), again.transform(TRAIN)):
        np.testing.assert_array_equal(a, b)
    proc.save(tmp_path / "p.json")
    assert TabularProcessor.load(tmp_path / "p.json").to_dict() == proc.to_dict()


def test_bad_states_and_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="not a saved TabularProcessor"):
        TabularProcessor.from_dict({"format": "other"})
    state = fitted().to_dict()
    del state["means"]
    with pytest.raises(ValueError, match="incomplete"):
        TabularProcessor.from_dict(state)
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json: not JSON"):
        TabularProcessor.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="'x' is given twice"):
        TabularProcessor(["x"], ["x"])
    with pytest.raises(RuntimeError, match="fit"):
        TabularProcessor(["color"]).transform(TRAIN)
    with pytest.raises(KeyError, match="no column 'color'"):
        fitted().transform({"x": [1.0], "z": [1.0]})
    with pytest.raises(ValueError, match="fill_missing=False"):
        TabularProcessor([], ["x"], fill_missing=False).fit(TRAIN)
    with pytest.raises(ValueError, match="row 1: 'abc' is not a number"):
        fitted().transform({"color": ["red", "red"], "size": [1, 1], "x": ["1", "abc"], "z": [1, 1]})


columns = st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"])), min_size=2, max_size=40)


@given(train=columns, test=columns, values=st.lists(st.floats(-1e3, 1e3), min_size=40, max_size=40))
def test_indices_stay_in_range_and_saved_state_encodes_identically(train, test, values):
    n, m = len(train), len(test)
    xs = [v if i % 3 else math.nan for i, v in enumerate(values[:n])]
    if all(math.isnan(v) for v in xs):
        xs[0] = 1.0
    proc = TabularProcessor(["c"], ["x"], None).fit(Table({"c": train, "x": xs}))
    rows = Table({"c": test, "x": values[:m]})
    x_cat, x_cont = proc.transform(rows)
    assert ((0 <= x_cat) & (x_cat < np.array(proc.cardinalities))).all()
    seen = {v for v in train if v is not None}
    np.testing.assert_array_equal(x_cat[:, 0] == 0, [v is None or v not in seen for v in test])
    assert np.isfinite(x_cont).all()
    again = TabularProcessor.from_dict(json.loads(json.dumps(proc.to_dict())))
    for a, b in zip((x_cat, x_cont), again.transform(rows)):
        np.testing.assert_array_equal(a, b)
