"""The package's layering (DESIGN.md, STYLE.md): every module imports only from its own floor or
below, no import cycles, and each package imports alone in a fresh interpreter without pulling in
the heavy optional dependencies.

The static checks read every module of gradwise/ with `ast`, so an import inside a function counts
as much as one at the top of the file (a lazy import is still a dependency); imports under
``if TYPE_CHECKING:`` are annotations only and are skipped.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gradwise"

# One floor per top-level module or subpackage of gradwise; a module may import from its own floor
# or any lower one. To add a module, put its name on the floor it belongs to.
FLOORS: dict[int, tuple[str, ...]] = {
    # The layer protocol and what everything else builds on. `summary` reads a model only through
    # the protocol (`named_modules`, `forward`, `flops`, `input_dtype`), so `core` can offer
    # `Layer.summary`. The low-level file writing (atomic write-rename) lives here, below both
    # `io` and `training`; the version string sits alone so that `io` can stamp files with it.
    0: ("core", "parameter", "random", "special", "init", "summary", "fileio", "_version"),
    1: ("layers", "losses", "data", "io", "transfer"),
    # `distributed` (the MPI communicator, the flat gradient buffer, SyncBatchNorm) builds on
    # core and layers; training imports it, so it sits below training.
    2: ("optim", "diagnostics", "distributed"),
    # A dotted name gives one module (or a package's own __init__, as "pkg.__init__") a floor of
    # its own, above its package's; the most specific name wins. `diagnostics.protocol` runs the
    # babysitting protocol, which trains (Trainer); the `diagnostics` package offers its
    # `diagnose` lazily (a module __getattr__), so its __init__ counts as reaching floor 3 while
    # gradcheck, health, checks and readings stay on floor 2 for `training` to import.
    3: ("training", "diagnostics.__init__", "diagnostics.protocol"),
    4: ("viz", "tabular", "collab"),
    5: ("cli", "bench", "search"),
}
FLOOR_OF = {name: floor for floor, names in FLOORS.items() for name in names}
EXEMPT = {"gradwise", "gradwise.__main__"}  # the curated re-exports and the entry point


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def exists(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below `node` except the bodies of ``if TYPE_CHECKING:`` (their ``else`` is kept)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _walk(other)
            continue
        yield child
        yield from _walk(child)


def imports_of(name: str) -> list[tuple[str, int]]:
    """The gradwise modules `name` imports, with the line of each import.

    ``from pkg import x`` names the submodule ``pkg.x`` when there is one, else ``pkg`` itself
    (its ``__init__``, which defines or re-exports ``x``). Parent packages run implicitly by an
    import are not counted: only the module named is.
    """
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.append((sub if exists(sub) else source, node.lineno))
        elif (  # importlib.import_module("gradwise.x") with a literal name
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, node.lineno))
    return [(target, line) for target, line in found if target == "gradwise" or target.startswith("gradwise.")]


IMPORTS: dict[str, list[tuple[str, int]]] = {name: imports_of(name) for name in MODULES}


def top(name: str) -> str:
    return name.split(".")[1]


def floor(name: str) -> int:
    if name == "gradwise":
        # `import gradwise` (or `from gradwise import Trainer`) runs gradwise/__init__.py: it counts
        # as an import of the highest floor that file imports (training today).
        return max(floor(t) for t, _ in IMPORTS["gradwise"] if t != "gradwise")
    parts = name.split(".")[1:]
    path = MODULES.get(name)
    keys = [".".join([*parts, "__init__"])] if path is not None and path.name == "__init__.py" else []
    keys += [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
    return next(FLOOR_OF[k] for k in keys if k in FLOOR_OF)


# ----------------------------------------------------------------------------------------- static


def test_every_top_level_module_has_a_floor() -> None:
    unknown = sorted({top(name) for name in MODULES if name not in EXEMPT} - set(FLOOR_OF))
    assert not unknown, (
        f"gradwise/{unknown[0]} has no floor: add {unknown} to FLOORS in tests/test_layering.py, on the "
        "lowest floor at or above every gradwise package it imports (and not above what imports it)"
    )


def layering_violations() -> list[str]:
    problems = []
    for name, imports in IMPORTS.items():
        if name in EXEMPT or top(name) not in FLOOR_OF:
            continue
        for target, line in imports:
            if target not in EXEMPT and top(target) not in FLOOR_OF:
                continue  # reported by test_every_top_level_module_has_a_floor
            if floor(target) > floor(name):
                problems.append(
                    f"{MODULES[name].relative_to(ROOT)}:{line}: {name} (floor {floor(name)}) imports "
                    f"{target} (floor {floor(target)})"
                )
    return list(dict.fromkeys(problems))  # one line per import statement


def test_modules_import_only_from_their_floor_or_below() -> None:
    problems = layering_violations()
    floors = "; ".join(f"{k}: {', '.join(v)}" for k, v in FLOORS.items())
    assert not problems, "imports from a higher floor (" + floors + "):\n" + "\n".join(problems)


def find_cycle(graph: dict[str, set[str]], start: str, within: set[str] | None = None) -> list[str] | None:
    """The shortest cycle through `start` as a path ``[start, ..., start]``, or None (breadth-first)."""
    nodes = set(graph) if within is None else within
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph.get(node, set()) & nodes):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if nxt not in parent:
                    parent[nxt] = node
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return None


def cycles_of(graph: dict[str, set[str]]) -> list[list[str]]:
    """The shortest cycle through each module that is on one, each cycle listed once."""
    found: dict[frozenset[str], list[str]] = {}
    for group in tangles(graph):
        for node in sorted(group):
            cycle = find_cycle(graph, node, group)
            if cycle is not None:
                found.setdefault(frozenset(cycle), cycle)
    return list(found.values())


def tangles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with a cycle (Tarjan): every group of modules that import
    each other, so each is reported once however many cycles run through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_find_cycle_names_the_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, "a") == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}, "a") is None
    assert find_cycle({"a": {"a"}}, "a") == ["a", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": {"a"}}, "a") == ["a", "c", "a"]  # the shortest
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}, "e": {"a"}}
    assert sorted(map(sorted, tangles(graph))) == [["a", "b"], ["c", "d"]]
    assert cycles_of({"hub": {"a", "b"}, "a": {"hub"}, "b": {"hub"}}) == [["a", "hub", "a"], ["b", "hub", "b"]]


def test_the_static_check_sees_function_level_imports_and_skips_type_checking() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from gradwise.viz import plot\n"
        "def f():\n    from gradwise.training import trainer\n    import gradwise.optim.sgd\n"
    )
    tree = ast.parse(source)
    seen = [n for n in _walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [getattr(n, "module", None) or n.names[0].name for n in seen] == ["typing", "gradwise.training", "gradwise.optim.sgd"]


def test_no_import_cycles() -> None:
    # The top package and the entry point import everything by design; a module importing the
    # top package is a layering violation (above), so leaving them out loses no cycle among
    # the modules themselves.
    graph = {
        name: {t for t, _ in imports if t not in EXEMPT and t != name}
        for name, imports in IMPORTS.items()
        if name not in EXEMPT
    }
    cycles = [" -> ".join(cycle) for cycle in cycles_of(graph)]
    assert not cycles, "import cycles (break each by moving what both sides need below them):\n" + "\n".join(cycles)


MAX_LINES = 450  # STYLE.md: a file over ~400 lines is asking to be split along a seam a reader would name


def test_no_module_is_over_the_size_guideline() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    over = sorted((n, name) for name, n in sizes.items() if n > MAX_LINES)
    assert not over, f"modules over {MAX_LINES} lines (split each by family): " + ", ".join(
        f"{MODULES[name].relative_to(ROOT)} ({n})" for n, name in reversed(over)
    )


# ----------------------------------------------------------------------------------------- runtime

PACKAGES = [
    "gradwise.core",
    "gradwise.random",
    "gradwise.init",
    "gradwise.summary",
    "gradwise.layers",
    "gradwise.losses",
    "gradwise.data",
    "gradwise.io",
    "gradwise.transfer",
    "gradwise.optim",
    "gradwise.optim.schedules",
    "gradwise.diagnostics",
    "gradwise.diagnostics.health",
    "gradwise.diagnostics.protocol",
    "gradwise.distributed",
    "gradwise.training",
    "gradwise.training.babysitter",
    "gradwise.training.callbacks",
    "gradwise.training.trainer",
    "gradwise.training.ensemble",
    "gradwise.viz",
    "gradwise.tabular",
    "gradwise.cli",
    "gradwise.cli.config",
    "gradwise.search",
]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter that imports this checkout's gradwise."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_imports_alone_in_a_fresh_interpreter(name: str) -> None:
    # `import gradwise.x` normally runs gradwise/__init__.py first, which loads everything in an
    # order that can hide a cycle. Here the package is an empty stand-in, so `name` is the first
    # module imported: it must import cleanly, and what ends up in sys.modules is exactly what it
    # needs, which must not reach above its floor.
    code = (
        "import importlib, sys, types\n"
        f"pkg = types.ModuleType('gradwise'); pkg.__path__ = [{str(PACKAGE)!r}]\n"
        "sys.modules['gradwise'] = pkg\n"
        f"importlib.import_module({name!r})\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('gradwise.'))))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, f"import {name} alone fails:\n{result.stderr}"
    loaded = result.stdout.split()
    # The packages above `name` run first (Python imports parents implicitly); their floor is that
    # of their __init__ as a whole, lazy parts included, so they are judged by what they load.
    parents = {".".join(name.split(".")[:i]) for i in range(2, name.count(".") + 1)}
    above = [m for m in loaded if top(m) in FLOOR_OF and floor(m) > floor(name) and m not in parents]
    assert not above, f"importing {name} (floor {floor(name)}) loads higher floors: {above}"


def test_the_package_and_the_command_line_import_in_a_fresh_interpreter() -> None:
    result = run_python("import gradwise, gradwise.cli.__main__\nprint(gradwise.__version__)")
    assert result.returncode == 0 and result.stdout.strip(), result.stderr


def test_import_gradwise_leaves_the_heavy_dependencies_alone() -> None:
    heavy = ["matplotlib", "torch", "numba", "optuna", "scipy", "tensorboardX", "tensorboard", "nbclient", "mpi4py"]
    code = f"import sys, gradwise\nprint(' '.join(m for m in {heavy!r} if m in sys.modules))\n"
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [], f"`import gradwise` imports {result.stdout.split()}: import them lazily"
