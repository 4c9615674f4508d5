"""Where a dataset's files come from: an explicit path, an environment variable, or a cache directory.

Every file-backed loader (`load_mnist`, `load_movielens`, `load_adult`, ...) finds its folder with
`find_dataset`, in this order:

1. ``path`` given by the caller (``[data] path`` in a config): a folder holding the files, used as it is;
2. the environment variable ``GRADWISE_DATA`` (a folder of dataset folders): ``$GRADWISE_DATA/<name>``;
3. the cache directory: ``$GRADWISE_CACHE/<name>``, else ``$XDG_CACHE_HOME/gradwise/<name>``, else
   ``~/.cache/gradwise/<name>``.

The first folder that holds every required file wins. With ``download=True`` and nothing found, the
files are fetched from their official source into the cache folder (each written atomically, its
sha256 checked when known, mirrors tried in turn), so an interrupted download leaves nothing that
looks complete. Nothing here touches the network unless asked to; tests never need it.

Errors: `DatasetNotFoundError` (a `FileNotFoundError`) names every folder tried and the ways to
supply the files; `DataFormatError` (a `ValueError`) names the file and the line or byte offset
where a file stops making sense. Loaders raise it before returning anything, so a half-read
dataset is never handed back.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from gradwise.fileio import atomic_write_bytes

ENV_DATA = "GRADWISE_DATA"
ENV_CACHE = "GRADWISE_CACHE"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are in none of the places looked in; the message lists them and the remedies."""


class DataFormatError(ValueError):
    """A data file is truncated or malformed; the message names the file and the line or byte offset."""


def cache_dir() -> Path:
    """The root of gradwise's dataset cache (not created here)."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "gradwise"
    return Path.home() / ".cache" / "gradwise"


def candidate_dirs(name: str, path: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders `find_dataset` tries for dataset `name`, in order."""
    if path is not None:
        return [Path(path).expanduser()]
    dirs = []
    if os.environ.get(ENV_DATA):
        dirs.append(Path(os.environ[ENV_DATA]).expanduser() / name)
    dirs.append(cache_dir() / name)
    return dirs


def _holds(folder: Path, required: Sequence[Sequence[str]]) -> bool:
    # Each requirement is a list of alternatives (e.g. a gzip or a raw copy of the same file).
    return folder.is_dir() and all(any((folder / f).is_file() for f in alts) for alts in required)


def find_dataset(
    name: str,
    required: Sequence[str | Sequence[str]],
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    urls: Mapping[str, str | Sequence[str]] | None = None,
    sha256: Mapping[str, str] | None = None,
) -> Path:
    """The folder holding dataset `name`'s files.

    Parameters
    ----------
    name : str
        The dataset's folder name (``"mnist"``, ``"ml-100k"``, ``"adult"``).
    required : sequence of str or of sequences of str
        Files the folder must hold; an entry that is a sequence is satisfied by any one of its names
        (``("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte")``).
    path : path-like, optional
        An explicit folder; when given, only it is tried (and never downloaded into).
    download : bool
        Fetch the files from `urls` into the cache folder when no folder holds them.
    urls : mapping of file name -> URL or sequence of URLs, optional
        Where each file comes from (the dataset's official source); a sequence lists mirrors,
        tried in order until one answers.
    sha256 : mapping of file name -> hex digest, optional
        Digests checked after a download; a mismatch deletes nothing already there and raises.

    Raises
    ------
    DatasetNotFoundError
        Nothing found and no download asked for (or possible).
    """
    req = [[r] if isinstance(r, str) else list(r) for r in required]
    tried = candidate_dirs(name, path)
    for folder in tried:
        if _holds(folder, req):
            return folder
    if download and path is None and urls:
        target = cache_dir() / name
        _download(target, [alts[0] for alts in req], urls, sha256 or {})
        if _holds(target, req):
            return target
    missing = ", ".join(" or ".join(alts) for alts in req)
    where = "; ".join(str(d) for d in tried)
    how = (
        f"pass the folder as path= (or [data] path in a config), set {ENV_DATA} to a folder holding '{name}/'"
        + (", or use download=True (needs a network)" if urls else "")
    )
    raise DatasetNotFoundError(f"dataset {name!r}: need {missing}; looked in {where}. To fix: {how}")


def _download(
    target: Path, files: Sequence[str], urls: Mapping[str, str | Sequence[str]], sha256: Mapping[str, str]
) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for fname in files:
        if (target / fname).is_file() or fname not in urls:
            continue
        mirrors = [urls[fname]] if isinstance(urls[fname], str) else list(urls[fname])
        want = sha256.get(fname)
        failures: list[str] = []
        mismatch = False
        # Here, not at import time: http.client and urllib cost ~25 ms of `import gradwise`.
        import http.client
        import urllib.request

        for url in mirrors:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - official https sources
                    payload = response.read()
            except (OSError, http.client.HTTPException) as e:  # IncompleteRead: the connection dropped
                failures.append(f"{url}: {e}")
                continue
            got = hashlib.sha256(payload).hexdigest()
            if want is not None and got != want:
                # A mirror answering with something else (an error page, an old version): try the next.
                failures.append(f"{url}: sha256 {got} does not match the expected {want}")
                mismatch = True
                continue
            atomic_write_bytes(target / fname, payload)
            break
        else:
            error = DataFormatError if mismatch else DatasetNotFoundError
            raise error(f"could not download {fname}, so it was not saved: " + "; ".join(failures))
