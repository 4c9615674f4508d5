"""The command line end to end: the main job, the examples, and every user error exits 2 cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from gradwise.cli.__main__ import main

ROOT = Path(__file__).resolve().parents[2]

SPIRAL = """
[data]
dataset = "spiral"
n_per_class = 100
[model]
layers = [
  { type = "Linear", in_features = 2, out_features = 64 },
  { type = "ReLU" },
  { type = "Linear", in_features = 64, out_features = 3 },
]
[loss]
type = "SoftmaxCrossEntropy"
[optimizer]
type = "Adam"
lr = 3e-2
[train]
epochs = 30
batch_size = 32
seed = 3
"""


def _write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _train(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["train", "--no-progress", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_spiral_run_writes_the_run_directory(tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, err = _train([str(_write(tmp_path, SPIRAL)), "--out", str(out_dir)], capsys)
    assert code == 0, err
    assert "test accuracy:" in out
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert set(metrics) >= {"train", "val", "test", "wall_time", "steps", "epochs", "status"}
    assert metrics["test"]["accuracy"] > 0.8
    assert metrics["epochs"] == 30 and metrics["steps"] == 30 * 7  # 216 training samples, batches of 32
    config_text = (out_dir / "config.toml").read_text()
    assert 'dataset = "spiral"' in config_text and "batch_size = 32" in config_text
    assert len((out_dir / "history.csv").read_text().strip().splitlines()) == 31
    best = load_file(str(out_dir / "checkpoints" / "best.safetensors"))
    assert sorted(best) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert best["0.weight"].shape == (64, 2) and best["0.weight"].dtype == np.float32
    assert (out_dir / "checkpoints" / "last.safetensors").stat().st_size > 0
    assert all(p.stat().st_size > 1000 for p in (out_dir / "plots").glob("*.png"))


@pytest.mark.parametrize(("val", "monitor"), [("0", "loss"), ("0.2", "val_loss")])
def test_without_a_validation_split_the_best_checkpoint_is_by_training_loss(tmp_path, capsys, val, monitor):
    # [data] val = 0: the CLI asks for monitor="loss" itself, instead of the Trainer's val_loss
    # falling back to it with a warning about a val_loader the config chose not to have.
    import warnings

    out_dir = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, _, err = _train([str(_write(tmp_path, SPIRAL)), "--out", str(out_dir), "--epochs", "2",
                               "--set", f"data.val={val}"], capsys)
    assert code == 0, err
    assert json.loads((out_dir / "metrics.json").read_text())["monitor"] == monitor


def test_same_seed_same_result(tmp_path, capsys):
    cfg = str(_write(tmp_path, SPIRAL))
    for name in ("a", "b"):
        assert _train([cfg, "--out", str(tmp_path / name), "--epochs", "3"], capsys)[0] == 0
    a = load_file(str(tmp_path / "a" / "checkpoints" / "last.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "last.safetensors"))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_overrides_reach_the_resolved_config(tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, _, err = _train(
        [str(_write(tmp_path, SPIRAL)), "--out", str(out_dir), "--epochs", "2", "--set", "optimizer.lr=0.01"], capsys
    )
    assert code == 0, err
    text = (out_dir / "config.toml").read_text()
    assert "epochs = 2" in text and "lr = 0.01" in text


@pytest.mark.parametrize(
    ("edit", "pieces"),
    [
        (lambda t: t.replace("epochs = 30", "epoch = 30"), ["'epoch'", "epochs"]),
        (lambda t: t.replace('type = "ReLU"', 'type = "Relu"'), ["'Relu'", "ReLU"]),
        (lambda t: t.replace("out_features = 3 }", "out_features = 2 }"), ["label 2", "2 classes"]),
        (lambda t: t.replace("in_features = 2,", "in_features = 5,"), ["Linear(5, 64)", "(2, 2)"]),
        (lambda t: t.replace("lr = 3e-2", "lr = -1.0"), ["lr"]),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, edit, pieces):
    cfg = _write(tmp_path, edit(SPIRAL))
    out_dir = tmp_path / "run"
    code, _, err = _train([str(cfg), "--out", str(out_dir)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradwise: error:")
    assert str(cfg) in lines[0] or "lr" in lines[0]
    for piece in pieces:
        assert piece in lines[0]
    assert not out_dir.exists()  # nothing written before the config and data were checked


def test_missing_config_file(tmp_path, capsys):
    code, _, err = _train([str(tmp_path / "nope.toml")], capsys)
    assert code == 2 and "does not exist" in err and "Traceback" not in err


def test_existing_run_directory_is_never_overwritten(tmp_path, capsys):
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    (out_dir / "metrics.json").write_text('{"earlier": true}')
    code, _, err = _train([str(_write(tmp_path, SPIRAL)), "--out", str(out_dir)], capsys)
    assert code == 2 and str(out_dir) in err
    assert (out_dir / "metrics.json").read_text() == '{"earlier": true}'
    assert sorted(p.name for p in out_dir.iterdir()) == ["metrics.json"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow on the way to divergence is the point
def test_divergence_exits_1_and_keeps_weights_finite(tmp_path, capsys):
    text = SPIRAL.replace('type = "Adam"\nlr = 3e-2', 'type = "SGD"\nlr = 1e30')
    out_dir = tmp_path / "run"
    code, _, err = _train([str(_write(tmp_path, text)), "--out", str(out_dir)], capsys)
    assert code == 1 and "diverged" in err
    assert json.loads((out_dir / "metrics.json").read_text())["status"] == "diverged"
    for path in (out_dir / "checkpoints").glob("*.safetensors"):
        assert all(np.all(np.isfinite(v)) for v in load_file(str(path)).values())


def test_debug_shows_the_traceback(tmp_path):
    cfg = _write(tmp_path, SPIRAL.replace("epochs = 30", "epoch = 30"))
    with pytest.raises(ValueError, match="epoch"):
        main(["train", str(cfg), "--debug"])


def test_gradcheck_command(tmp_path, capsys):
    text = SPIRAL.replace('type = "ReLU"', 'type = "Tanh"') + '[penalty]\ntype = "L2"\nstrength = 0.1\n'
    code = main(["gradcheck", str(_write(tmp_path, text)), "--samples", "4"])
    out = capsys.readouterr().out
    assert code == 0
    assert "PASSED" in out and "0.weight" in out and "input" in out


@pytest.mark.slow
def test_default_main_job_reaches_92_percent(tmp_path):
    """The README's main job: `gradwise train` with no config, as a subprocess in a fresh directory."""
    result = subprocess.run(
        [sys.executable, "-m", "gradwise", "train", "--no-progress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.92  # the paper's CNN; the paper reports 94%
    assert f"test accuracy: {metrics['test']['accuracy']:.4f}" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("example", "low", "high"),
    [
        ("mnist1d_logreg.toml", 0.27, 0.37),
        ("mnist1d_mlp.toml", 0.62, 0.72),
        ("mnist1d_gru.toml", 0.87, 1.0),
    ],
)
def test_examples_reproduce_the_paper(tmp_path, capsys, example, low, high):
    """MNIST-1D paper: 32% logistic regression, 68% MLP, 91% GRU; we reproduce within a few points."""
    code, _, err = _train([str(ROOT / "examples" / example), "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    accuracy = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["accuracy"]
    assert low <= accuracy <= high


def test_schedule_and_clipping_from_the_config(tmp_path, capsys):
    text = SPIRAL + '[schedule]\ntype = "cosine"\nwarmup_steps = 10\n'
    out_dir = tmp_path / "run"
    code, _, err = _train(
        [str(_write(tmp_path, text)), "--out", str(out_dir), "--set", "train.clip_grad_norm=1.0"], capsys
    )
    assert code == 0, err
    rows = (out_dir / "history.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    lrs = [float(r.split(",")[header.index("lr")]) for r in rows[1:]]
    assert lrs[-1] < lrs[len(lrs) // 2] < max(lrs)  # annealed after the warm-up
    assert json.loads((out_dir / "metrics.json").read_text())["test"]["accuracy"] > 0.8


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "optimizers").glob("*.toml")), ids=lambda p: p.stem)
def test_every_optimizer_config_converges_on_mnist1d(tmp_path, capsys, path):
    code, _, err = _train([str(path), "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train"]["loss"] < 1.0  # from ln(10) = 2.30 at chance
    assert metrics["test"]["accuracy"] > 0.5


def test_gradcheck_passes_on_the_default_cnn(capsys):
    assert main(["gradcheck", "--samples", "4", "--max-entries", "50"]) == 0
    assert "PASSED" in capsys.readouterr().out


def test_seeds_accumulate_and_histograms_from_the_config(tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, err = _train(
        [str(_write(tmp_path, SPIRAL)), "--out", str(out_dir), "--epochs", "4", "--set", "train.seeds=3",
         "--set", "train.accumulate=2", "--set", "train.histogram_epochs=[1, 4]"],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["steps"] == 4 * 4  # 7 batches per epoch, accumulated in pairs: 4 updates
    ensemble = metrics["ensemble"]
    assert len(ensemble["individual"]) == 3 and "gain" in ensemble and "ensemble of 3 seeds" in out
    assert (out_dir / "seed-4" / "metrics.json").is_file() and (out_dir / "seed-5" / "metrics.json").is_file()
    assert sorted(p.name for p in (out_dir / "histograms").iterdir()) == [
        "epoch_0001.safetensors", "epoch_0004.safetensors"
    ]
