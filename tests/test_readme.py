"""The README's commands and Python example stay true."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_the_two_commands():
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    assert blocks[0].strip() == "pip install . && gradwise train"
    assert blocks[1].strip() == 'pip install -e ".[test]" && pytest'
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]" && pytest' in ci


def test_python_example_runs(capsys):
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    assert "epochs=50" in code
    exec(compile(code.replace("epochs=50", "epochs=2"), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "'accuracy'" in out and "PASSED" in out
