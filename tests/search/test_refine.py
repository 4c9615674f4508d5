"""Coarse to fine: the refined ranges hug the best trials and stay inside the old ones."""

from __future__ import annotations

import math

import pytest

from gradwise.search.refine import refine_spaces
from gradwise.search.spaces import Space


def test_a_log_range_narrows_in_log_units_around_the_best_values() -> None:
    lr = Space("optimizer.lr", "log_uniform", 1e-5, 1e-1, keys=("optimizer.lr",))
    (new,) = refine_spaces([lr], [{"optimizer.lr": 1e-3}, {"optimizer.lr": 1e-2}])
    # span 1 decade in log10, widened by a quarter on each side: 10^-3.25 .. 10^-1.75
    assert math.log10(new.low) == pytest.approx(-3.25) and math.log10(new.high) == pytest.approx(-1.75)
    assert new.kind == "log_uniform" and new.keys == lr.keys


def test_ranges_are_clipped_to_the_old_ones_and_a_point_gets_a_width() -> None:
    p = Space("model.layers.2.p", "uniform", 0.0, 0.5, keys=("model.layers.2.p",))
    (edge,) = refine_spaces([p], [{"model.layers.2.p": 0.0}, {"model.layers.2.p": 0.4}])
    assert edge.low == 0.0 and edge.high == pytest.approx(0.5)
    (point,) = refine_spaces([p], [{"model.layers.2.p": 0.2}])
    assert point.low == pytest.approx(0.175) and point.high == pytest.approx(0.225)  # a tenth of the range


def test_integers_round_outwards_and_choices_keep_what_the_best_used() -> None:
    width = Space("width", "log_int", 8, 512, keys=("a.b",))
    (w,) = refine_spaces([width], [{"width": 64}, {"width": 64}])
    assert isinstance(w.low, int) and w.low < 64 < w.high and 8 <= w.low and w.high <= 512
    epochs = Space("train.epochs", "int", 1, 10, keys=("train.epochs",))
    (e,) = refine_spaces([epochs], [{"train.epochs": 10}])
    assert (e.low, e.high) == (9, 10)  # at least two integers, inside the old range
    opt = Space("optimizer.type", "choice", choices=("SGD", "Adam", "AdamW"), keys=("optimizer.type",))
    (o,) = refine_spaces([opt], [{"optimizer.type": "AdamW"}, {"optimizer.type": "Adam"}])
    assert o.choices == ("Adam", "AdamW")


def test_refining_needs_a_finished_trial() -> None:
    with pytest.raises(ValueError, match="at least one"):
        refine_spaces([Space("a", "uniform", 0.0, 1.0, keys=("x.y",))], [])
