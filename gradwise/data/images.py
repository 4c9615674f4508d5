"""MNIST, Fashion-MNIST and KMNIST: 28x28 grayscale images of ten classes, from files on disk.

`load_mnist(path, kind=..., split=...)` returns one split as ``uint8`` images ``(N, 28, 28)`` and
``int64`` labels ``(N,)``; `load_mnist_splits` returns both. The folder is found by
`gradwise.data.sources.find_dataset` (an explicit `path`, ``$GRADWISE_DATA/<folder>``, the cache
``$GRADWISE_CACHE/<folder>``), and ``download=True`` fetches missing files from the official
source into the cache, each checked against its published SHA-256. Only the files of the split
asked for are needed: a folder holding just the 10,000 test images serves ``split="test"``.

====================  ===============  ===================================================================
``kind``              folder           files (per split; the first name found is read)
====================  ===============  ===================================================================
``"mnist"``           ``mnist``        ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
                                       ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``
``"fashion"``         ``fashion-mnist`` the same IDX names as MNIST
``"kmnist"``          ``kmnist``       ``kmnist-{train,test}-{imgs,labels}.npz``, or the IDX names
====================  ===============  ===================================================================

Every file is checked in full before anything is returned (`gradwise.data.idx`): a damaged file,
images and labels of different counts, labels outside 0-9 or images that are not ``(N, H, W)``
bytes raise `DataFormatError` naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gradwise.data.idx import read_idx, read_npz_array
from gradwise.data.sources import DataFormatError, find_dataset

__all__ = ["CLASSES", "KINDS", "images_to_float", "load_mnist", "load_mnist_splits"]

SPLITS = ("train", "test")


@dataclass(frozen=True)
class _Source:
    """Where one dataset's files are: the folder name, file names per split, URLs and digests."""

    folder: str
    # split -> (image file alternatives, label file alternatives), in order of preference
    files: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]
    urls: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)


def _idx_names(images: str, labels: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (f"{images}.gz", images), (f"{labels}.gz", labels)


_IDX_FILES = {
    "train": _idx_names("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": _idx_names("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _mirrored(bases: tuple[str, ...], names: list[str]) -> dict[str, tuple[str, ...]]:
    return {name: tuple(base + name for base in bases) for name in names}


_GZ = [alts[0] for pair in _IDX_FILES.values() for alts in pair]
# SHA-256 digests: MNIST's and Fashion-MNIST's as TensorFlow Datasets and many projects list them
# (Fashion-MNIST's README too). The MNIST and KMNIST test-set digests were also checked against our
# copies of those files; KMNIST's training digests come from one public listing only (a mismatch
# saves nothing and says so).
SOURCES: dict[str, _Source] = {
    "mnist": _Source(
        "mnist",
        _IDX_FILES,
        # yann.lecun.com, the original site, often refuses downloads; these mirror it byte for byte.
        _mirrored(
            ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
            _GZ,
        ),
        {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    ),
    "fashion": _Source(
        "fashion-mnist",
        _IDX_FILES,
        _mirrored(
            (
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
            ),
            _GZ,
        ),
        {
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    ),
    "kmnist": _Source(
        "kmnist",
        {
            split: (
                (f"kmnist-{split}-imgs.npz", *_IDX_FILES[split][0]),
                (f"kmnist-{split}-labels.npz", *_IDX_FILES[split][1]),
            )
            for split in SPLITS
        },
        _mirrored(
            ("https://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
            [f"kmnist-{split}-{what}.npz" for split in SPLITS for what in ("imgs", "labels")],
        ),
        {
            "kmnist-train-imgs.npz": "11d69e17c8fd294905864aef177fd10c2185e5a3655f4da03d72ea5a64c17a72",
            "kmnist-train-labels.npz": "a325c877035602cb9b9ba54f4194a2a1b5f718026a463db5b5e0cdc124c03720",
            "kmnist-test-imgs.npz": "692d824896bec8f3c357ebf7a0fe904ed67ac632ce953d0b58f7fbef7bb27d87",
            "kmnist-test-labels.npz": "660f13a4705431ea2a6391c41ecbe384cd0d932c595a101ec4f3b8989e785046",
        },
    ),
}
KINDS = tuple(SOURCES)
# Class names, index = label. KMNIST's are the romanized hiragana of its class map
# (お き す つ な は ま や れ を).
CLASSES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
}


def _read(path: Path) -> np.ndarray:
    return read_npz_array(path) if path.name.endswith(".npz") else read_idx(path)


def _first(folder: Path, names: tuple[str, ...]) -> Path:
    return next(folder / n for n in names if (folder / n).is_file())


def _check_pair(images: np.ndarray, labels: np.ndarray, ipath: Path, lpath: Path, num_classes: int) -> None:
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFormatError(
            f"{ipath}: expected images of shape (N, height, width) and dtype uint8, "
            f"got shape {images.shape} and dtype {images.dtype}"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(
            f"{lpath}: expected integer labels of shape (N,), got shape {labels.shape} and dtype {labels.dtype}"
        )
    if len(images) != len(labels):
        raise DataFormatError(
            f"{ipath} holds {len(images)} images but {lpath} holds {len(labels)} labels; they must match one to one"
        )
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        where = f" (byte {8 + i})" if not lpath.name.endswith(".npz") else ""
        raise DataFormatError(
            f"{lpath}: label {int(labels[i])} at index {i}{where} is outside 0-{num_classes - 1} "
            f"({bad.size} such labels)"
        )


def _source(kind: str) -> _Source:
    if kind not in SOURCES:
        raise ValueError(f"{kind=} must be one of {', '.join(map(repr, KINDS))}")
    return SOURCES[kind]


def load_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    kind: str = "mnist",
    split: str = "train",
    download: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """One split of MNIST, Fashion-MNIST or KMNIST.

    Parameters
    ----------
    path : path-like, optional
        The folder holding the files. Without it, ``$GRADWISE_DATA/<folder>`` and then the cache
        folder are tried (`gradwise.data.sources.find_dataset`; ``<folder>`` is ``mnist``,
        ``fashion-mnist`` or ``kmnist``).
    kind : {"mnist", "fashion", "kmnist"}
        Which dataset.
    split : {"train", "test"}
        The 60,000 training images or the 10,000 test images.
    download : bool
        When no folder holds the files, fetch them from the official source into the cache folder
        (needs a network; each file's SHA-256 is checked before it is saved). Never with `path`.

    Returns
    -------
    images : (N, 28, 28) uint8
        Pixel intensities 0-255 (0 is background), row-major.
    labels : (N,) int64
        Classes 0-9 (`CLASSES[kind]` names them).

    Raises
    ------
    DatasetNotFoundError
        No folder tried holds the split's two files; the message lists every folder tried.
    DataFormatError
        A file is truncated or malformed, or the images and labels do not match (the file and the
        byte offset, or what is wrong). Nothing is returned in that case.

    Examples
    --------
    >>> x, y = load_mnist("data/mnist", split="test")     # t10k-images-idx3-ubyte.gz, ...
    >>> x.shape, x.dtype, y.shape, y.dtype
    ((10000, 28, 28), dtype('uint8'), (10000,), dtype('int64'))
    """
    source = _source(kind)
    if split not in SPLITS:
        raise ValueError(f"{split=} must be 'train' or 'test'")
    image_names, label_names = source.files[split]
    folder = find_dataset(
        source.folder,
        [image_names, label_names],
        path,
        download=download,
        urls=source.urls,
        sha256=source.sha256,
    )
    ipath, lpath = _first(folder, image_names), _first(folder, label_names)
    images, labels = _read(ipath), _read(lpath)
    _check_pair(images, labels, ipath, lpath, len(CLASSES[kind]))
    return images, labels.astype(np.int64)


def load_mnist_splits(
    path: str | os.PathLike[str] | None = None,
    *,
    kind: str = "mnist",
    download: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both splits: ``(x_train, y_train, x_test, y_test)``, as `load_mnist` returns each.

    The training files must be there (or downloadable) too; where only the test files are, use
    ``load_mnist(split="test")`` and split it (`gradwise.data.train_test_split`).
    """
    x_train, y_train = load_mnist(path, kind=kind, split="train", download=download)
    x_test, y_test = load_mnist(path, kind=kind, split="test", download=download)
    return x_train, y_train, x_test, y_test


def images_to_float(images: np.ndarray, *, flatten: bool = False, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """uint8 images to floats in [0, 1]: ``images / 255`` with a channel axis, or flattened.

    Parameters
    ----------
    images : (N, H, W) uint8
    flatten : bool
        Return ``(N, H * W)`` (for an MLP) instead of ``(N, 1, H, W)`` (for ``Conv2d``).
    dtype : floating dtype

    Returns
    -------
    (N, 1, H, W) or (N, H * W) array of `dtype`
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images_to_float needs uint8 images of shape (N, H, W), got {images.dtype} of shape {images.shape}"
        )
    out = np.divide(images, 255, dtype=dtype)  # a division, so that 255 maps to exactly 1
    n, h, w = images.shape
    return out.reshape(n, h * w) if flatten else out.reshape(n, 1, h, w)
