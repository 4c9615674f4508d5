"""The image examples on the real MNIST / KMNIST test files (skipped, saying why, where absent).

The full runs (20 epochs) and their numbers are in docs/images.md; to stay within the suite's time
budget these train for fewer epochs (the cosine schedule then decays over the shorter run) and
check a correspondingly lower bar.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradwise.cli.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
# <repo>/../shared/data; a git worktree under a folder of worktrees finds it one level further up.
SHARED = next(
    (p for p in (ROOT / ".." / "shared" / "data", ROOT / ".." / ".." / "shared" / "data") if p.is_dir()),
    ROOT / ".." / "shared" / "data",
)


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], example: str, data: str, epochs: int) -> float:
    folder = SHARED / data
    if not folder.is_dir():
        pytest.skip(f"the real {data} files are not here ({folder} does not exist)")
    out = tmp_path / "run"
    argv = ["train", str(ROOT / "examples" / example), "--set", f"data.path={folder}", "--epochs", str(epochs)]
    code = main([*argv, "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 125 * epochs  # 8,000 training images in batches of 64
    return metrics["test"]["accuracy"]


@pytest.mark.slow
def test_mnist_cnn_on_the_8k_2k_split_of_the_test_file(tmp_path, capsys):
    assert _run(tmp_path, capsys, "mnist_cnn.toml", "mnist", epochs=4) >= 0.97
