"""Tests for gradwise/fileio.py (durable writes) and for the import floors it sits under."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import gradwise
from gradwise import fileio
from gradwise.fileio import atomic_write_bytes, fsync_dir, write_new_file

PACKAGE = Path(gradwise.__file__).parent


def test_write_new_file_creates_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    assert write_new_file(target, b"one") == target
    assert target.read_bytes() == b"one"
    with pytest.raises(FileExistsError):
        write_new_file(target, b"two")
    assert target.read_bytes() == b"one"


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.txt"
    atomic_write_bytes(target, b"old")

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_fsync_dir_tolerates_what_it_cannot_open(tmp_path: Path) -> None:
    fsync_dir(tmp_path)
    fsync_dir(tmp_path / "missing")  # no error: there is nothing to flush


def _gradwise_imports(path: Path) -> set[str]:
    """Every gradwise module `path` imports, function-level imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gradwise"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gradwise"):
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    ("files", "forbidden"),
    [
        (["fileio.py"], ("gradwise.",)),
        (["io.py"], ("gradwise.training", "gradwise.viz", "gradwise.cli")),
        (
            ["training/rundir.py", "training/trainer.py", *(f"training/checkpoint/{p.name}" for p in
                                                            sorted((PACKAGE / "training/checkpoint").glob("*.py")))],
            ("gradwise.viz", "gradwise.cli"),
        ),
    ],
    ids=["fileio-imports-no-gradwise", "io-below-training", "training-below-viz"],
)
def test_import_floors(files: list[str], forbidden: tuple[str, ...]) -> None:
    for name in files:
        bad = sorted(m for m in _gradwise_imports(PACKAGE / name) if m.startswith(forbidden))
        assert not bad, f"gradwise/{name} imports {bad}"
