"""examples/quickstart.ipynb runs headless end to end (nbclient, a kernel of this interpreter), and
its outputs are what a notebook user sees: the progress as rich HTML, the plots as PNG images, the
final accuracy printed, no error cell and no raw ANSI escape anywhere."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def _texts(output: Any) -> list[str]:
    """Every text an output carries (stream text, tracebacks, each text-like MIME type)."""
    texts = [output.get("text", ""), *output.get("traceback", [])]
    texts += [v for k, v in output.get("data", {}).items() if isinstance(v, str) and not k.startswith("image/")]
    return texts


def test_quickstart_notebook_runs_and_renders(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat (the test extra)")
    nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient (the test extra)")
    pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel (the test extra)")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    # A kernel of this very interpreter that imports this checkout of gradwise (whatever else is
    # installed, and whichever "python3" kernel the machine has); the notebook's cwd is tmp_path.
    spec_dir = tmp_path / "kernels" / "gradwise-test"
    spec_dir.mkdir(parents=True)
    pythonpath = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gradwise test", "language": "python", "env": {"PYTHONPATH": pythonpath},
    }))
    km = KernelManager(
        kernel_name="gradwise-test", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    )
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, km=km, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    for text in (t for o in outputs for t in _texts(o)):
        assert "\x1b[" not in text, f"raw ANSI escape in a notebook output: {text[:200]!r}"

    html = [o.data["text/html"] for o in outputs if o.output_type == "display_data" and "text/html" in o.data]
    assert len(html) == 1, "the progress is one HTML output, updated in place"
    assert html[0].startswith("<pre") and "epoch 30/30" in html[0] and "val_acc" in html[0]

    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # loss.png and accuracy.png, inline
    assert (tmp_path / "quickstart_plots" / "loss.png").is_file()

    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "PASSED" in printed  # the gradient check
    line = next(ln for ln in printed.splitlines() if ln.startswith("test accuracy:"))
    assert float(line.split(":")[1]) > 0.9
