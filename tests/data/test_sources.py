"""Where datasets are looked for (`find_dataset`) and how they are downloaded, without the internet.

Downloads are tested against ``file://`` URLs and a local `http.server` on a thread: the same
`urllib` code path the official https sources take.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from gradwise.data.sources import (
    ENV_CACHE,
    ENV_DATA,
    DataFormatError,
    DatasetNotFoundError,
    cache_dir,
    candidate_dirs,
    find_dataset,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the user's own data or cache folders."""
    monkeypatch.delenv(ENV_DATA, raising=False)
    monkeypatch.delenv(ENV_CACHE, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _folder(root: Path, name: str, files: dict[str, bytes]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for fname, content in files.items():
        (folder / fname).write_bytes(content)
    return folder


# ------------------------------------------------------------------------------- where it looks


def test_cache_dir_prefers_gradwise_cache_then_xdg_then_home(monkeypatch, tmp_path):
    assert cache_dir() == tmp_path / "home" / ".cache" / "gradwise"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "gradwise"
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_candidate_dirs_order_env_then_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    assert candidate_dirs("mnist") == [tmp_path / "cache" / "mnist"]
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "data"))
    assert candidate_dirs("mnist") == [tmp_path / "data" / "mnist", tmp_path / "cache" / "mnist"]
    # An explicit path is the only candidate, used as it is (not path/<name>).
    assert candidate_dirs("mnist", tmp_path / "x") == [tmp_path / "x"]


def test_found_through_the_environment_variable(monkeypatch, tmp_path):
    folder = _folder(tmp_path / "data", "toy", {"a.txt": b"1"})
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "data"))
    assert find_dataset("toy", ["a.txt"]) == folder


def test_found_in_the_cache_dir(monkeypatch, tmp_path):
    folder = _folder(tmp_path / "cache", "toy", {"a.txt": b"1"})
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    assert find_dataset("toy", ["a.txt"]) == folder


def test_environment_variable_wins_over_the_cache(monkeypatch, tmp_path):
    env = _folder(tmp_path / "data", "toy", {"a.txt": b"env"})
    _folder(tmp_path / "cache", "toy", {"a.txt": b"cache"})
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "data"))
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    assert find_dataset("toy", ["a.txt"]) == env


def test_a_folder_missing_a_file_is_passed_over(monkeypatch, tmp_path):
    _folder(tmp_path / "data", "toy", {"a.txt": b"1"})  # lacks b.txt
    cached = _folder(tmp_path / "cache", "toy", {"a.txt": b"1", "b.txt": b"2"})
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "data"))
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    assert find_dataset("toy", ["a.txt", "b.txt"]) == cached


def test_explicit_path_is_the_only_place_tried(monkeypatch, tmp_path):
    mine = _folder(tmp_path, "mine", {"a.txt": b"1"})
    assert find_dataset("toy", ["a.txt"], mine) == mine
    _folder(tmp_path / "data", "toy", {"a.txt": b"1"})
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "data"))
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset("toy", ["a.txt"], tmp_path / "empty")
    assert str(tmp_path / "empty") in str(info.value)
    assert str(tmp_path / "data") not in str(info.value)


@pytest.mark.parametrize("present", ["a.gz", "a"])
def test_any_one_of_the_alternatives_is_enough(tmp_path, present):
    folder = _folder(tmp_path, "toy", {present: b"1", "b": b"2"})
    assert find_dataset("toy", [("a.gz", "a"), "b"], folder) == folder


def test_the_error_names_every_folder_tried_the_files_and_the_remedies(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "data"))
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    _folder(tmp_path / "data", "toy", {"b": b"only b"})
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset("toy", [("a.gz", "a"), "b"])
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "\n" not in message
    assert str(tmp_path / "data" / "toy") in message and str(tmp_path / "cache" / "toy") in message
    assert "a.gz or a" in message and "b" in message
    assert ENV_DATA in message and "path" in message
    assert "download" not in message  # no URLs known: downloading is not offered
    with pytest.raises(DatasetNotFoundError, match="download=True"):
        find_dataset("toy", ["a"], urls={"a": "file:///nonexistent/a"})


# ------------------------------------------------------------------------------------ download


def _url(path: Path) -> str:
    return path.resolve().as_uri()


def test_download_from_a_file_url_into_the_cache(monkeypatch, tmp_path):
    src = _folder(tmp_path, "upstream", {"a.gz": b"alpha", "b": b"beta"})
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    sha = {"a.gz": hashlib.sha256(b"alpha").hexdigest()}
    got = find_dataset(
        "toy", [("a.gz", "a"), "b"], download=True, urls={"a.gz": _url(src / "a.gz"), "b": _url(src / "b")}, sha256=sha
    )
    assert got == tmp_path / "cache" / "toy"
    assert (got / "a.gz").read_bytes() == b"alpha" and (got / "b").read_bytes() == b"beta"
    assert sorted(p.name for p in got.iterdir()) == ["a.gz", "b"]  # no temporary files left
    # Found the second time without downloading (the source is gone).
    (src / "a.gz").unlink()
    assert find_dataset("toy", [("a.gz", "a"), "b"], download=True, urls={"a.gz": _url(src / "a.gz")}) == got


def test_no_download_unless_asked(monkeypatch, tmp_path):
    src = _folder(tmp_path, "upstream", {"a": b"alpha"})
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError):
        find_dataset("toy", ["a"], urls={"a": _url(src / "a")})
    assert not (tmp_path / "cache").exists()


def test_never_downloads_into_an_explicit_path(monkeypatch, tmp_path):
    src = _folder(tmp_path, "upstream", {"a": b"alpha"})
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError):
        find_dataset("toy", ["a"], tmp_path / "mine", download=True, urls={"a": _url(src / "a")})
    assert not (tmp_path / "mine").exists() and not (tmp_path / "cache").exists()


def test_a_sha256_mismatch_saves_nothing(monkeypatch, tmp_path):
    src = _folder(tmp_path, "upstream", {"a": b"tampered"})
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    with pytest.raises(DataFormatError) as info:
        find_dataset("toy", ["a"], download=True, urls={"a": _url(src / "a")}, sha256={"a": "0" * 64})
    assert "sha256" in str(info.value) and hashlib.sha256(b"tampered").hexdigest() in str(info.value)
    assert list((tmp_path / "cache" / "toy").iterdir()) == []


def test_mirrors_are_tried_in_order(monkeypatch, tmp_path):
    src = _folder(tmp_path, "upstream", {"a": b"alpha", "wrong": b"an error page"})
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    mirrors = [_url(tmp_path / "missing"), _url(src / "wrong"), _url(src / "a")]
    sha = {"a": hashlib.sha256(b"alpha").hexdigest()}
    got = find_dataset("toy", ["a"], download=True, urls={"a": mirrors}, sha256=sha)
    assert (got / "a").read_bytes() == b"alpha"


def test_every_mirror_failing_names_each(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    mirrors = [_url(tmp_path / "gone1"), _url(tmp_path / "gone2")]
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset("toy", ["a"], download=True, urls={"a": mirrors})
    assert "gone1" in str(info.value) and "gone2" in str(info.value)
    assert not (tmp_path / "cache" / "toy" / "a").exists()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # keep the test output clean


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on localhost (a free port), for as long as the test runs."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_download_over_http(monkeypatch, tmp_path, http_root):
    root, base = http_root
    payload = bytes(range(256)) * 1000
    (root / "data.bin").write_bytes(payload)
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    got = find_dataset(
        "toy",
        ["data.bin"],
        download=True,
        urls={"data.bin": [base + "404.bin", base + "data.bin"]},  # the first mirror answers 404
        sha256={"data.bin": hashlib.sha256(payload).hexdigest()},
    )
    assert (got / "data.bin").read_bytes() == payload


def test_http_errors_are_reported_with_the_url(monkeypatch, tmp_path, http_root):
    _, base = http_root
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset("toy", ["x"], download=True, urls={"x": base + "x"})
    assert base + "x" in str(info.value) and "404" in str(info.value)
