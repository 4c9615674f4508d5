"""The sampler and pruner a config names, and how workers are seeded."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import optuna

from gradwise.search.runner import make_pruner, make_sampler, suggest
from gradwise.search.study import load_spec


def _draws(sampler: optuna.samplers.BaseSampler, spaces: list) -> list[dict]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    out = []
    for _ in range(3):
        trial = study.ask()
        out.append({s.name: suggest(trial, s) for s in spaces})
        study.tell(trial, 0.5)
    return out


def test_the_sampler_and_pruner_are_the_ones_the_config_names(search_config: Callable[..., Path]) -> None:
    spec = load_spec(search_config(settings='sampler = "tpe"\npruner = "median"\nstartup_trials = 2'))
    assert isinstance(make_sampler(spec, 0, 0), optuna.samplers.TPESampler)
    assert isinstance(make_pruner(spec), optuna.pruners.MedianPruner)
    halving = dataclasses.replace(spec, sampler="random", pruner="halving")
    assert isinstance(make_sampler(halving, 0, 0), optuna.samplers.RandomSampler)
    assert isinstance(make_pruner(halving), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner(dataclasses.replace(spec, pruner="none")), optuna.pruners.NopPruner)


def test_a_seed_repeats_its_draws_and_another_worker_or_a_later_join_draws_others(
    search_config: Callable[..., Path],
) -> None:
    spec = load_spec(search_config())
    first = _draws(make_sampler(spec, 0, 0), spec.spaces)
    assert _draws(make_sampler(spec, 0, 0), spec.spaces) == first
    assert _draws(make_sampler(spec, 1, 0), spec.spaces) != first
    assert _draws(make_sampler(spec, 0, 3), spec.spaces) != first
    for draw in first:  # inside the spaces, integers for an int space
        assert 1e-3 <= draw["optimizer.lr"] <= 1e-1 and isinstance(draw["width"], int) and 8 <= draw["width"] <= 32
