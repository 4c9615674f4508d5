"""`gw.search` is there without `import gradwise` importing Optuna, before and after the package loads."""

from __future__ import annotations

import subprocess
import sys

from conftest import cli_env


def test_gw_search_is_lazy_and_callable_before_and_after_the_package_is_imported() -> None:
    code = (
        "import sys, gradwise as gw\n"
        "assert 'optuna' not in sys.modules and 'gradwise.search' not in sys.modules\n"
        "first = gw.search\n"
        "import gradwise.search\n"
        "from gradwise.search import search\n"
        "assert first is gw.search is gradwise.search and callable(gw.search) and callable(search)\n"
        "print(gw.search.__doc__.splitlines()[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Hyperparameter search on Optuna")
