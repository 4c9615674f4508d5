"""`[data] dataset = "movielens"` and `[model] learner = "collab"` (gradwise/cli/config/{names,datasets,
learners}.py), end to end through `gradwise train` on small generated ratings in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from gradwise.cli import config
from gradwise.cli.__main__ import main
from gradwise.collab import EmbeddingDotBias, EmbeddingNN

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "movielens_collab.toml"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A tiny ml-100k look-alike: 30 users x 40 items, ratings from a rank-2 pattern, and ua/u1 splits."""
    rng = np.random.default_rng(0)
    d = tmp_path / "ml-100k"
    d.mkdir()
    pu, qi = rng.standard_normal((30, 2)), rng.standard_normal((40, 2))
    rows = [(u + 1, i + 1, int(np.clip(np.rint(3 + pu[u] @ qi[i]), 1, 5)), 880000000 + u * 40 + i)
            for u in range(30) for i in range(40) if rng.random() < 0.5]
    lines = [f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows]
    (d / "u.data").write_text("".join(lines))
    test_rows = set(rng.choice(len(lines), len(lines) // 5, replace=False).tolist())
    for split in ("ua", "u1"):
        (d / f"{split}.base").write_text("".join(ln for k, ln in enumerate(lines) if k not in test_rows))
        (d / f"{split}.test").write_text("".join(ln for k, ln in enumerate(lines) if k in test_rows))
    (d / "u.item").write_text("".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x/{i}|" + "|".join("0" * 19) + "\n"
                                      for i in range(1, 41)))
    return d


def _cfg(path: Path, *overrides: str) -> config.Config:
    return config.load(EXAMPLE, (f"data.path={json.dumps(str(path))}", *overrides))


def test_example_config_builds_the_lessons_model(folder: Path) -> None:
    cfg = _cfg(folder)
    assert cfg.section("data")["val"] == 0.0 and cfg.section("data")["split"] == "random"
    rng = np.random.default_rng(0)
    splits = config.build_data(cfg, rng)
    n = len(splits.x_train) + len(splits.x_test)
    assert len(splits.x_test) == int(0.2 * n) and splits.x_train.dtype == np.int64 and splits.x_train.shape[1] == 2
    assert splits.y_train.dtype == np.float32 and splits.y_train.ndim == 1
    meta = splits.meta
    assert meta["n_users"] == len(meta["user_encoder"]) and meta["titles"][7] == "Movie 7 (1995)"
    model = config.build_model(cfg, rng, meta)
    assert isinstance(model, EmbeddingDotBias) and model.n_factors == 50 and model.y_range == (0.0, 5.5)
    assert model.n_items == meta["n_items"]


def test_canonical_split_and_the_neural_variant(folder: Path) -> None:
    cfg = _cfg(folder, "data.split=ua", "model.use_nn=true", "model.layers=[16, 8]", "model.ps=0.1")
    splits = config.build_data(cfg, np.random.default_rng(0))
    assert len(splits.x_test) == len((folder / "ua.test").read_text().splitlines())
    model = config.build_model(cfg, np.random.default_rng(0), splits.meta)
    assert isinstance(model, EmbeddingNN) and model.layer_sizes == (16, 8)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.split=u9", "split='u9' must be 'random' or one of ua"),
        ("data.splitt=ua", "unknown key 'splitt' in [data]"),
        ("model.n_factor=3", "unknown key 'n_factor' in [model]"),
        ("model.layers=[8]", "layers, ps and embed_p are keys of the neural variant"),
    ],
)
def test_config_errors(folder: Path, override: str, message: str) -> None:
    with pytest.raises((config.ConfigError, ValueError), match=message.replace("[", r"\[").replace("]", r"\]")):
        cfg = _cfg(folder, override)
        config.build_model(cfg, np.random.default_rng(0), config.build_data(cfg, np.random.default_rng(0)).meta)


def test_collab_learner_needs_ratings() -> None:
    cfg = config.parse('[data]\ndataset = "spiral"\n[model]\nlearner = "collab"\n[loss]\ntype = "MSE"\n'
                       '[optimizer]\ntype = "Adam"\n')
    with pytest.raises(config.ConfigError, match="needs a ratings dataset"):
        config.build_model(cfg, np.random.default_rng(0), {})


def test_gradwise_train_end_to_end(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["train", str(EXAMPLE), "--no-progress", "--set", f"data.path={json.dumps(str(folder))}",
                 "--set", "train.epochs=3", "--set", "model.n_factors=4", "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert "test loss:" in stdout and "rmse" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["loss"] < 1.5  # predicting 2.75 (the sigmoid's midpoint) everywhere gives ~1.6
    weights = load_file(str(out / "checkpoints" / "best.safetensors"))
    assert np.array_equal(weights["user_ids"], np.unique(weights["user_ids"]))  # the id encoding travels along
    assert weights["u_weight"].shape == (len(weights["user_ids"]) + 1, 4)


def test_missing_data_exits_2_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["train", str(EXAMPLE), "--no-progress", "--set", f"data.path={json.dumps(str(tmp_path / 'none'))}",
                 "--out", str(out)])
    assert code == 2
    assert "ml-100k" in capsys.readouterr().err and not out.exists()
