"""Config parsing and validation: every mistake names the file, the key and the valid choices."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from gradwise.cli import config
from gradwise import losses
from gradwise.cli.config import default_config_text
from gradwise.collab import IdEncoder
from gradwise.data import make_spiral
from gradwise.optim import schedules
from gradwise.training.callbacks import CycleMomentum, ReduceLROnPlateau

ROOT = Path(__file__).resolve().parents[2]

SPIRAL = """
[data]
dataset = "spiral"
n_per_class = 50
[model]
layers = [
  { type = "Linear", in_features = 2, out_features = 16 },
  { type = "ReLU" },
  { type = "Linear", in_features = 16, out_features = 3 },
]
[loss]
type = "SoftmaxCrossEntropy"
[optimizer]
type = "Adam"
lr = 1e-2
[train]
epochs = 2
"""


def test_defaults_filled_in():
    cfg = config.parse(SPIRAL, "s.toml")
    assert cfg.section("train")["batch_size"] == 32
    assert cfg.section("data")["val"] == 0.1
    assert cfg.section("model")["init"] == "default"
    assert "penalty" not in cfg.data


def test_builtin_default_is_the_example_default_and_the_cnn():
    assert (ROOT / "examples" / "default.toml").read_text() == default_config_text()
    cnn = (ROOT / "examples" / "mnist1d_cnn.toml").read_text()
    assert config.parse(default_config_text()).data == config.parse(cnn).data


# A `[model] learner` builds from the data's description (Splits.meta): a small one per learner.
LEARNER_META = {
    "collab": lambda: {"user_encoder": IdEncoder.fit([1, 2, 3]), "item_encoder": IdEncoder.fit([5, 7])},
}


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.toml")), ids=lambda p: p.name)
def test_every_example_config_validates_and_builds(path, monkeypatch):
    cfg = config.load(path)
    meta = None
    learner = cfg.section("model").get("learner")
    if learner in LEARNER_META:
        meta = LEARNER_META[learner]()
    elif learner:  # a learner sizes itself from the data's description: load the real data
        from gradwise.data.sources import DatasetNotFoundError

        from helpers import shared_data_dir

        found = shared_data_dir(cfg.section("data")["dataset"])
        if found is not None and not os.environ.get("GRADWISE_DATA"):
            monkeypatch.setenv("GRADWISE_DATA", str(found.parent))
        try:
            meta = config.build_data(cfg, np.random.default_rng(0)).meta
        except DatasetNotFoundError as e:
            pytest.skip(f"{path.name}: its dataset is not here to describe the data ({e})")
    model = config.build_model(cfg, np.random.default_rng(0), meta)
    config.build_optimizer(cfg, model)
    config.build_loss(cfg)
    assert model.num_parameters() > 0


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        (SPIRAL + "[trian]\nepochs = 3\n", ["s.toml", "[trian]", "train"]),
        (SPIRAL.replace("epochs = 2", "epoch = 2"), ["s.toml", "'epoch'", "[train]", "epochs"]),
        (SPIRAL.replace('type = "ReLU"', 'type = "Relu"'), ["layers[1]", "'Relu'", "ReLU", "LeakyReLU"]),
        (SPIRAL.replace("in_features = 2,", "in_feature = 2,"), ["layers[0]", "'in_feature'", "in_features"]),
        (SPIRAL.replace('type = "Adam"', 'type = "Adamm"'), ["[optimizer] type", "'Adamm'", "AdamW", "SGD"]),
        (SPIRAL.replace("lr = 1e-2", "learning_rate = 1e-2"), ["[optimizer]", "'learning_rate'", "lr"]),
        (SPIRAL.replace('dataset = "spiral"', 'dataset = "mnist2d"'), ["[data] dataset", "mnist1d", "spiral"]),
        (SPIRAL.replace('type = "SoftmaxCrossEntropy"', ""), ["[loss]", "'type'"]),
        (SPIRAL + '[train2]\n', ["[train2]"]),
        ("[data\n", ["not valid TOML"]),
    ],
)
def test_mistakes_are_named(text, pieces):
    with pytest.raises(config.ConfigError) as info:
        config.parse(text, "s.toml")
    for piece in pieces:
        assert piece in str(info.value)


def test_invalid_hyperparameter_is_a_config_error():
    cfg = config.parse(SPIRAL.replace("lr = 1e-2", "lr = -1.0"), "s.toml")
    model = config.build_model(cfg, np.random.default_rng(0))
    with pytest.raises(config.ConfigError, match="lr"):
        config.build_optimizer(cfg, model)


def test_overrides():
    cfg = config.parse(
        SPIRAL,
        "s.toml",
        ("train.epochs=7", "optimizer.type=SGD", "model.layers.2.out_features=4", "penalty.type=L2",
         "penalty.strength=1e-3"),
    )
    assert cfg.section("train")["epochs"] == 7
    assert cfg.section("optimizer")["type"] == "SGD"
    assert cfg.section("model")["layers"][2]["out_features"] == 4
    assert isinstance(config.build_penalty(cfg), losses.L2)


@pytest.mark.parametrize("bad", ["train.epochs", "epochs=3", "model.layers.9.out_features=4"])
def test_bad_overrides(bad):
    with pytest.raises(config.ConfigError, match="--set"):
        config.parse(SPIRAL, "s.toml", (bad,))


def test_missing_file():
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load("no/such/config.toml")


def test_build_data_splits_are_disjoint_and_stratified():
    cfg = config.parse(SPIRAL.replace("n_per_class = 50", "n_per_class = 100\nval = 0.25"), "s.toml")
    s = config.build_data(cfg, np.random.default_rng(0))
    assert len(s.x_train) + len(s.x_val) + len(s.x_test) == 300
    assert len(s.x_test) == 60 and len(s.x_val) == 60
    assert np.bincount(s.y_val).tolist() == [20, 20, 20]
    # The same generator draws the full set first, so the three parts are a permutation of it.
    full, _ = make_spiral(n_per_class=100, n_classes=3, noise=0.2, rng=np.random.default_rng(0))
    parts = np.concatenate([s.x_train, s.x_val, s.x_test])
    assert np.array_equal(np.unique(parts, axis=0, return_counts=True)[1],
                          np.unique(full, axis=0, return_counts=True)[1])
    assert np.array_equal(np.sort(parts, axis=0), np.sort(full, axis=0))


@pytest.mark.parametrize(
    ("schedule", "kind"),
    [
        ('type = "cosine"', schedules.Cosine),
        ('type = "step"\nstep_size = 10\ngamma = 0.5', schedules.StepDecay),
        ('type = "one_cycle"', schedules.OneCycle),
        ('type = "inverse_time"\ndecay_rate = 0.5\ndecay_steps = 7\nstaircase = true', schedules.InverseTime),
        ('type = "cosine"\nwarmup_steps = 5', schedules.Warmup),
    ],
)
def test_schedules_take_the_optimizer_lr_and_the_run_length(schedule, kind):
    cfg = config.parse(SPIRAL + "[schedule]\n" + schedule + "\n", "s.toml")
    lr, callbacks = config.build_schedule(cfg, steps_per_epoch=7)
    assert isinstance(lr, kind)
    opt = config.build_optimizer(cfg, config.build_model(cfg, np.random.default_rng(0)), lr)
    assert opt.current_lr(opt.param_groups[0]) == pytest.approx(lr(0))
    if kind is schedules.Cosine:
        assert lr.total_steps == 2 * 7 and lr(0) == pytest.approx(1e-2)
    if kind is schedules.OneCycle:
        assert lr.max_lr == pytest.approx(1e-2) and isinstance(callbacks[0], CycleMomentum)


def test_plateau_is_a_callback():
    cfg = config.parse(SPIRAL + '[schedule]\ntype = "plateau"\npatience = 2\nfactor = 0.5\n', "s.toml")
    lr, callbacks = config.build_schedule(cfg, steps_per_epoch=7)
    assert lr == pytest.approx(1e-2)
    assert isinstance(callbacks[0], ReduceLROnPlateau) and callbacks[0].patience == 2


@pytest.mark.parametrize(
    ("schedule", "pieces"),
    [
        ('type = "cosine_annealing"', ["[schedule] type", "cosine", "one_cycle", "plateau"]),
        ('type = "cosine"\nt_max = 3', ["[schedule]", "'t_max'", "total_steps"]),
    ],
)
def test_schedule_mistakes_are_named(schedule, pieces):
    with pytest.raises(config.ConfigError) as info:
        config.parse(SPIRAL + "[schedule]\n" + schedule + "\n", "s.toml")
    for piece in pieces:
        assert piece in str(info.value)


def test_bad_schedule_argument_is_a_config_error():
    cfg = config.parse(SPIRAL + '[schedule]\ntype = "one_cycle"\npct_start = 1.5\n', "s.toml")
    with pytest.raises(config.ConfigError, match="pct_start"):
        config.build_schedule(cfg, steps_per_epoch=7)


@pytest.mark.parametrize("name", sorted(config.OPTIMIZERS))
def test_every_optimizer_builds_from_a_config(name):
    cfg = config.parse(SPIRAL.replace('type = "Adam"', f'type = "{name}"'), "s.toml")
    opt = config.build_optimizer(cfg, config.build_model(cfg, np.random.default_rng(0)))
    assert opt.current_lr(opt.param_groups[0]) == pytest.approx(1e-2)


NESTED = """
[data]
dataset = "spiral"
[model]
layers = [
  { type = "Concat", branches = [
      [ { type = "Linear", in_features = 2, out_features = 8 }, { type = "Tanh" } ],
      [ { type = "Linear", in_features = 2, out_features = 4 } ],
  ] },
  { type = "Residual", block = [ { type = "Linear", in_features = 12, out_features = 12 }, { type = "ReLU" } ] },
  { type = "Linear", in_features = 12, out_features = 3 },
]
[loss]
type = "SoftmaxCrossEntropy"
[optimizer]
type = "SGD"
lr = 0.1
"""


def test_nested_containers_build_with_torch_style_names():
    cfg = config.parse(NESTED, "n.toml")
    model = config.build_model(cfg, np.random.default_rng(0))
    assert list(model.state_dict()) == [
        "0.0.0.weight", "0.0.0.bias", "0.1.0.weight", "0.1.0.bias",
        "1.block.0.weight", "1.block.0.bias", "2.weight", "2.bias",
    ]
    assert model.forward(np.ones((5, 2), dtype=np.float32)).shape == (5, 3)


@pytest.mark.parametrize(
    ("edit", "pieces"),
    [
        (lambda t: t.replace('{ type = "Tanh" }', '{ type = "Tanhh" }'), ["branches[0][1] type", "'Tanhh'"]),
        (lambda t: t.replace("block = [", "blocks = ["), ["'blocks'"]),
        (lambda t: t.replace("branches = [\n", "branches = [\n[],\n", 1), ["branches[0]", "non-empty"]),
    ],
)
def test_nested_mistakes_are_named(edit, pieces):
    with pytest.raises(config.ConfigError) as info:
        config.parse(edit(NESTED), "n.toml")
    for piece in pieces:
        assert piece in str(info.value)
