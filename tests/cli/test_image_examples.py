"""The image example on the real MNIST test file (skipped, saying why, where it is absent).

It runs `examples/mnist_cnn.toml` for 12 of its 20 epochs (the cosine schedule then decays over the
shorter run), which already passes the 97.5 % bar: 98.05 % measured, the test taking 7-8 s on the
2-core machine at a load average of 3. The full run (98.55 %) is in docs/images.md.
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
def test_mnist_cnn_reaches_97_5_percent_on_the_8k_2k_split_of_the_test_file(tmp_path, capsys):
    assert _run(tmp_path, capsys, "mnist_cnn.toml", "mnist", epochs=12) >= 0.975  # measured: 0.9805
