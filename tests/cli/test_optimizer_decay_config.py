"""`[optimizer] decay_biases` (gradwise/cli/config/{names,parsing,build}.py): false leaves the biases
and normalization parameters out of weight decay, as fastai's ``wd_bn_bias=False``."""

from __future__ import annotations

import numpy as np
import pytest

from gradwise.cli import config

MLP = """
[data]
dataset = "spiral"
n_per_class = 20
[model]
layers = [
  { type = "Linear", in_features = 2, out_features = 8 },
  { type = "BatchNorm1d", num_features = 8 },
  { type = "ReLU" },
  { type = "Linear", in_features = 8, out_features = 3 },
]
[loss]
type = "SoftmaxCrossEntropy"
[optimizer]
type = "AdamW"
lr = 0.1
weight_decay = 0.5
"""


def _step_with_zero_gradients(extra: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Parameters of the configured model before and after one optimizer step on zero gradients:
    only the decoupled weight decay moves them."""
    cfg = config.parse(MLP + extra, "m.toml")
    model = config.build_model(cfg, np.random.default_rng(0))
    optimizer = config.build_optimizer(cfg, model)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad[...] = 0.0
    optimizer.step()
    return before, {n: p.data.copy() for n, p in model.named_parameters()}


def test_default_decays_every_parameter() -> None:
    before, after = _step_with_zero_gradients("")
    for name in before:
        assert np.allclose(after[name], before[name] * (1 - 0.1 * 0.5)), name


def test_decay_biases_false_decays_only_the_weight_matrices() -> None:
    before, after = _step_with_zero_gradients("decay_biases = false\n")
    for name in before:
        if before[name].ndim == 2:  # the two Linear weights
            assert np.allclose(after[name], before[name] * (1 - 0.1 * 0.5)), name
            assert not np.allclose(after[name], before[name]), name
        else:  # the Linear biases, BatchNorm's scale and shift
            assert np.array_equal(after[name], before[name]), name


def test_decay_biases_must_be_a_bool() -> None:
    with pytest.raises(config.ConfigError, match=r"m\.toml: \[optimizer\] decay_biases = 'no' must be true or false"):
        config.parse(MLP + 'decay_biases = "no"\n', "m.toml")


def test_decay_biases_is_not_passed_to_the_optimizer_but_other_unknown_keys_are_refused() -> None:
    assert config.parse(MLP + "decay_biases = true\n", "m.toml").section("optimizer")["decay_biases"] is True
    with pytest.raises(config.ConfigError, match="unknown key 'decay_bias' for AdamW"):
        config.parse(MLP + "decay_biases = false\ndecay_bias = false\n", "m.toml")
