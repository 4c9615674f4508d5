"""Tests of gradwise/optim/groups.py: weight-decay exemption and per-layer learning rates."""

from __future__ import annotations

import numpy as np
import pytest

from gradwise.core import Layer, Parameter, Sequential
from gradwise.layers import Linear, ReLU
from gradwise.optim import SGD, AdamW, layer_groups, weight_decay_groups
from gradwise.optim.groups import is_decay_exempt


class Scale(Layer):
    """A normalization-like layer: a 1-D learned scale and shift (like LayerNorm's)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = Parameter(np.ones(n))
        self.bias = Parameter(np.zeros(n))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * self.weight.data + self.bias.data


class Block(Layer):
    """Named children, as a user's model has them: a projection, a norm, an embedding-like table."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = Linear(3, 4, rng=np.random.default_rng(0), dtype=np.float64)
        self.norm1 = Scale(4)
        self.embed = Parameter(np.ones((5, 4)))
        self.temperature = Parameter(np.array(1.0))   # a 0-d parameter


def mlp() -> Sequential:
    rng = np.random.default_rng(0)
    return Sequential(Linear(3, 4, rng=rng, dtype=np.float64), Scale(4), ReLU(),
                      Linear(4, 2, rng=rng, dtype=np.float64))


def names(group: dict) -> list[str]:
    return [p.name for p in group["params"]]


# ---------------------------------------------------------------------- weight_decay_groups
def test_biases_and_normalization_parameters_are_exempt() -> None:
    groups = weight_decay_groups(mlp(), 0.05)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    assert names(groups[0]) == ["0.weight", "3.weight"]
    # "1.weight" is the Scale's: only its shape (1-D) marks it as a normalization parameter
    assert names(groups[1]) == ["0.bias", "1.weight", "1.bias", "3.bias"]


def test_name_rules_and_the_shape_rule() -> None:
    model = Block()
    groups = weight_decay_groups(model, 0.1)
    # a layer's own parameters come before its children's (named_parameters order)
    assert names(groups[0]) == ["embed", "proj.weight"]
    assert names(groups[1]) == ["temperature", "proj.bias", "norm1.weight", "norm1.bias"]
    # "embed" added to the name fragments; the shape rule switched off
    groups = weight_decay_groups(model, 0.1, no_decay=("bias", "embed"), exempt_1d=False)
    assert set(names(groups[0])) == {"proj.weight", "norm1.weight", "temperature"}
    assert set(names(groups[1])) == {"embed", "proj.bias", "norm1.bias"}


def test_is_decay_exempt() -> None:
    w, b = Parameter(np.zeros((2, 2))), Parameter(np.zeros(2))
    assert not is_decay_exempt("0.weight", w)
    assert is_decay_exempt("0.weight", b)
    assert is_decay_exempt("encoder.norm.weight", w)
    assert not is_decay_exempt("0.weight", b, exempt_1d=False)
    # a lone string is one fragment ("bias"), not the characters b, i, a, s
    assert not is_decay_exempt("basis.weight", w, no_decay="bias")
    assert is_decay_exempt("head.bias", w, no_decay="bias")


def test_empty_group_is_left_out_and_named_parameters_work() -> None:
    model = mlp()
    weights_only = [(n, p) for n, p in model.named_parameters() if p.data.ndim == 2]
    groups = weight_decay_groups(weights_only, 0.1)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.1


def test_exempt_parameters_are_not_decayed_by_the_optimizer(tol) -> None:
    model = mlp()
    params = dict(model.named_parameters())
    before = {n: p.data.copy() for n, p in params.items()}
    opt = AdamW(weight_decay_groups(model, 0.5), lr=0.1)
    opt.step()  # zero gradients: only the decoupled decay moves anything
    np.testing.assert_allclose(params["0.weight"].data, before["0.weight"] * (1 - 0.1 * 0.5),
                               rtol=tol.optim_golden)
    for n in ("0.bias", "1.weight", "1.bias", "3.bias"):
        np.testing.assert_array_equal(params[n].data, before[n])


def test_weight_decay_groups_errors() -> None:
    with pytest.raises(ValueError, match=r"weight_decay=-0\.1 must be >= 0"):
        weight_decay_groups(mlp(), -0.1)
    with pytest.raises(TypeError, match="item 0 is a Parameter"):
        weight_decay_groups([Parameter(np.zeros(2))], 0.1)  # type: ignore[list-item]


# ---------------------------------------------------------------------- layer_groups
def test_layer_groups_give_each_prefix_its_lr() -> None:
    groups = layer_groups(mlp(), {"0.": 1e-4, "3.": 1e-3})
    assert [(names(g), g.get("lr")) for g in groups] == [
        (["0.weight", "0.bias"], 1e-4),
        (["3.weight", "3.bias"], 1e-3),
        (["1.weight", "1.bias"], None),    # unmatched: the optimizer's lr
    ]
    opt = SGD(groups, lr=1e-2, momentum=0.9)
    assert [opt.current_lr(g) for g in opt.param_groups] == [1e-4, 1e-3, 1e-2]


def test_longest_prefix_wins_and_schedules_are_kept() -> None:
    def schedule(step: int) -> float:
        return 1e-3 / (1 + step)

    groups = layer_groups(Block(), {"proj.": 1e-3, "proj.w": schedule})
    assert [(names(g), g.get("lr")) for g in groups[:2]] == [
        (["proj.bias"], 1e-3), (["proj.weight"], schedule)
    ]


def test_layer_groups_with_weight_decay_split_each_group() -> None:
    groups = layer_groups(mlp(), {"0.": 1e-4}, weight_decay=0.01)
    assert [(names(g), g.get("lr"), g["weight_decay"]) for g in groups] == [
        (["0.weight"], 1e-4, 0.01),
        (["0.bias"], 1e-4, 0.0),
        (["3.weight"], None, 0.01),
        (["1.weight", "1.bias", "3.bias"], None, 0.0),
    ]
    opt = AdamW(groups, lr=1e-3)
    assert [(g["lr"], g["weight_decay"]) for g in opt.param_groups] == [
        (1e-4, 0.01), (1e-4, 0.0), (1e-3, 0.01), (1e-3, 0.0)
    ]


def test_every_parameter_lands_in_exactly_one_group() -> None:
    model = mlp()
    groups = layer_groups(model, {"0.": 1e-4, "1.": 1e-3, "3.": 1e-2}, weight_decay=0.1)
    listed = [p for g in groups for p in g["params"]]
    assert len(listed) == len({id(p) for p in listed}) == len(model.parameters())


def test_a_prefix_matching_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"prefix\(es\) \['2\.'\] match no parameter"):
        layer_groups(mlp(), {"0.": 1e-4, "2.": 1e-3})   # "2" is the ReLU: no parameters
    with pytest.raises(ValueError, match=r"weight_decay=-1\.0 must be >= 0"):
        layer_groups(mlp(), {"0.": 1e-4}, weight_decay=-1.0)
