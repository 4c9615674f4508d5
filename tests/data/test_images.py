"""MNIST / Fashion-MNIST / KMNIST loaders: small generated files in every layout, the real test sets."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from gradwise.data import images
from gradwise.data.idx import write_idx
from gradwise.data.images import CLASSES, KINDS, SOURCES, images_to_float, load_mnist, load_mnist_splits
from gradwise.data.sources import ENV_CACHE, ENV_DATA, DataFormatError, DatasetNotFoundError

# The real data sits beside the repository (<repo>/../shared/data); a git worktree under a folder
# of worktrees finds it one level further up.
_REPO = Path(__file__).resolve().parents[2]
SHARED = next((p for p in (_REPO / ".." / "shared" / "data", _REPO / ".." / ".." / "shared" / "data") if p.is_dir()),
              _REPO / ".." / "shared" / "data")
IDX = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_DATA, raising=False)
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))


def _fake(n: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def _write_idx_split(folder: Path, split: str, x: np.ndarray, y: np.ndarray, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write_idx(folder / (IDX[split][0] + suffix), x)
    write_idx(folder / (IDX[split][1] + suffix), y)


def _real(name: str) -> Path:
    folder = SHARED / name
    if not folder.is_dir():
        pytest.skip(f"the real {name} files are not here ({folder} does not exist)")
    return folder


# ------------------------------------------------------------------------------ generated files


@pytest.mark.parametrize("gz", [True, False])
def test_both_splits_from_idx_files(tmp_path, gz):
    """The full layout (60k training files in the real thing): train and test read from their files."""
    train, test = _fake(60, 1), _fake(20, 2)
    _write_idx_split(tmp_path / "mnist", "train", *train, gz=gz)
    _write_idx_split(tmp_path / "mnist", "test", *test, gz=gz)
    x_train, y_train, x_test, y_test = load_mnist_splits(tmp_path / "mnist")
    assert x_train.shape == (60, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60,) and y_train.dtype == np.int64
    np.testing.assert_array_equal(x_train, train[0])
    np.testing.assert_array_equal(y_train, train[1])
    np.testing.assert_array_equal(x_test, test[0])
    np.testing.assert_array_equal(y_test, test[1])


def test_the_test_split_needs_only_the_test_files(tmp_path):
    _write_idx_split(tmp_path / "mnist", "test", *_fake(10, 3))
    x, y = load_mnist(tmp_path / "mnist", split="test")
    assert x.shape == (10, 28, 28)
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte.gz or train-images-idx3-ubyte"):
        load_mnist(tmp_path / "mnist", split="train")


def test_gzip_is_preferred_when_both_copies_are_there(tmp_path):
    gz, raw = _fake(5, 4), _fake(5, 5)
    _write_idx_split(tmp_path / "mnist", "test", *gz, gz=True)
    _write_idx_split(tmp_path / "mnist", "test", *raw, gz=False)
    np.testing.assert_array_equal(load_mnist(tmp_path / "mnist", split="test")[0], gz[0])


def test_kmnist_npz_and_its_idx_alternative(tmp_path):
    x, y = _fake(12, 6)
    folder = tmp_path / "kmnist"
    folder.mkdir()
    np.savez(folder / "kmnist-test-imgs.npz", x)
    np.savez(folder / "kmnist-test-labels.npz", y)
    got_x, got_y = load_mnist(folder, kind="kmnist", split="test")
    np.testing.assert_array_equal(got_x, x)
    assert got_y.dtype == np.int64
    other = _fake(7, 7)
    _write_idx_split(tmp_path / "kmnist-idx", "test", *other)
    np.testing.assert_array_equal(load_mnist(tmp_path / "kmnist-idx", kind="kmnist", split="test")[1], other[1])


@pytest.mark.parametrize(("kind", "folder"), [("mnist", "mnist"), ("fashion", "fashion-mnist"), ("kmnist", "kmnist")])
def test_each_kind_has_its_folder_under_gradwise_data(monkeypatch, tmp_path, kind, folder):
    _write_idx_split(tmp_path / "data" / folder, "test", *_fake(4, 8))
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "data"))
    assert load_mnist(kind=kind, split="test")[0].shape == (4, 28, 28)
    assert len(CLASSES[kind]) == 10


def test_not_found_names_the_folders_tried(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "data"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(kind="fashion", split="test")
    message = str(info.value)
    assert str(tmp_path / "data" / "fashion-mnist") in message and str(tmp_path / "cache" / "fashion-mnist") in message
    assert "t10k-images-idx3-ubyte.gz" in message and "download=True" in message


def test_images_and_labels_of_different_counts(tmp_path):
    x, _ = _fake(10, 9)
    _, y = _fake(9, 9)
    _write_idx_split(tmp_path / "mnist", "test", x, y)
    with pytest.raises(DataFormatError) as info:
        load_mnist(tmp_path / "mnist", split="test")
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz holds 10 images" in message
    assert "t10k-labels-idx1-ubyte.gz holds 9 labels" in message


def test_a_label_outside_0_to_9_names_index_and_byte(tmp_path):
    x, y = _fake(6, 10)
    y[4] = 10
    _write_idx_split(tmp_path / "mnist", "test", x, y)
    with pytest.raises(DataFormatError, match=r"labels-idx1-ubyte.gz: label 10 at index 4 \(byte 12\) is outside 0-9"):
        load_mnist(tmp_path / "mnist", split="test")


@pytest.mark.parametrize(
    ("array", "which", "pattern"),
    [
        (
            np.zeros((5, 784), np.uint8),
            0,
            r"expected images of shape \(N, height, width\) and dtype uint8, got shape \(5, 784\)",
        ),
        (np.zeros((5, 28, 28), np.float32), 0, "got shape \\(5, 28, 28\\) and dtype float32"),
        (np.zeros((5, 2), np.uint8), 1, r"expected integer labels of shape \(N,\), got shape \(5, 2\)"),
    ],
)
def test_arrays_of_the_wrong_kind(tmp_path, array, which, pattern):
    x, y = _fake(5, 11)
    pair = [x, y]
    pair[which] = array
    _write_idx_split(tmp_path / "mnist", "test", *pair)
    with pytest.raises(DataFormatError, match=pattern):
        load_mnist(tmp_path / "mnist", split="test")


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind='emnist' must be one of 'mnist', 'fashion', 'kmnist'"):
        load_mnist(kind="emnist")
    with pytest.raises(ValueError, match="split='val' must be 'train' or 'test'"):
        load_mnist(split="val")


def test_download_fetches_the_split_into_the_cache(monkeypatch, tmp_path):
    """`download=True` with the URLs pointing at a local folder: fetched, checked, then loaded."""
    upstream = tmp_path / "upstream"
    _write_idx_split(upstream, "test", *_fake(8, 12))
    names = [f"{stem}.gz" for stem in IDX["test"]]
    source = images._Source(
        "mnist",
        SOURCES["mnist"].files,
        {n: ((upstream / "nothing-here").as_uri(), (upstream / n).as_uri()) for n in names},
        {n: hashlib.sha256((upstream / n).read_bytes()).hexdigest() for n in names},
    )
    monkeypatch.setitem(SOURCES, "mnist", source)
    x, y = load_mnist(split="test", download=True)
    assert x.shape == (8, 28, 28)
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(names)


def test_every_source_has_a_digest_and_an_https_or_official_url():
    for kind in KINDS:
        source = SOURCES[kind]
        for name, urls in source.urls.items():
            assert len(source.sha256[name]) == 64 and urls
            assert all(u.startswith(("https://", "http://fashion-mnist.s3")) for u in urls)
        downloadable = {alts[0] for pair in source.files.values() for alts in pair}
        assert downloadable == set(source.urls)


def test_images_to_float():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    f = images_to_float(x)
    assert f.shape == (1, 1, 2, 2) and f.dtype == np.float32
    assert f.max() == 1.0 and f.min() == 0.0
    np.testing.assert_allclose(f.ravel(), [0, 1, 0.2, 0.4], rtol=1e-7)
    assert images_to_float(x, flatten=True, dtype=np.float64).shape == (1, 4)
    with pytest.raises(ValueError, match=r"uint8 images of shape \(N, H, W\), got float64 of shape \(2, 2\)"):
        images_to_float(np.zeros((2, 2)))


# ---------------------------------------------------------------------------------- real files


def test_real_mnist_test_set():
    x, y = load_mnist(_real("mnist"), split="test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(x.mean() - 33.791) < 1e-3
    # The uncompressed md5 of the file (SOURCE.md) pins down every byte we parsed.
    header = bytes([0, 0, 8, 3]) + (10000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    assert hashlib.md5(header + x.tobytes()).hexdigest() == "2646ac647ad5339dbf082846283269ea"


def test_real_kmnist_test_set():
    x, y = load_mnist(_real("kmnist"), kind="kmnist", split="test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10
    assert abs(x.mean() - 47.062) < 1e-3


@pytest.mark.parametrize("cut", [0.001, 0.5, 0.9999])
def test_real_mnist_truncated(tmp_path, cut):
    folder = _real("mnist")
    mine = tmp_path / "mnist"
    mine.mkdir()
    shutil.copy(folder / "t10k-labels-idx1-ubyte.gz", mine)
    raw = (folder / "t10k-images-idx3-ubyte.gz").read_bytes()
    (mine / "t10k-images-idx3-ubyte.gz").write_bytes(raw[: int(len(raw) * cut)])
    end = int(len(raw) * cut)
    with pytest.raises(DataFormatError, match=rf"t10k-images-idx3-ubyte.gz: truncated gzip file: .* at byte {end} "):
        load_mnist(mine, split="test")


def test_real_kmnist_truncated(tmp_path):
    folder = _real("kmnist")
    mine = tmp_path / "kmnist"
    mine.mkdir()
    shutil.copy(folder / "kmnist-test-labels.npz", mine)
    raw = (folder / "kmnist-test-imgs.npz").read_bytes()
    (mine / "kmnist-test-imgs.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFormatError, match="kmnist-test-imgs.npz: not a valid npz"):
        load_mnist(mine, kind="kmnist", split="test")
