"""`[data] dataset = "mnist" / "fashion_mnist" / "kmnist"`: keys, splits, preprocessing, errors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradwise.cli.__main__ import main
from gradwise.cli.config import ConfigError, build_data, parse
from gradwise.data.idx import write_idx
from gradwise.data.sources import ENV_CACHE, ENV_DATA
from gradwise.data.whitening import PCA, ZCA

MODEL = """
[model]
layers = [{ type = "Flatten" }, { type = "Linear", in_features = 784, out_features = 10 }]
[loss]
type = "SoftmaxCrossEntropy"
[optimizer]
type = "Adam"
[train]
epochs = 1
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_DATA, raising=False)
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))


def _fake_mnist(folder: Path, size: int = 28) -> Path:
    """A fake MNIST folder: 200 test images (20 per class) and 100 training images."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for prefix, n in (("t10k", 200), ("train", 100)):
        y = np.repeat(np.arange(10, dtype=np.uint8), n // 10)
        x = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        x[:, 0, 0] = np.arange(n)  # a sample's id, to follow it through the splits
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
    return folder


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    return _fake_mnist(tmp_path / "mnist")


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """8x8 images: whitening 64 pixels instead of 784 keeps the preprocessing tests fast."""
    return _fake_mnist(tmp_path / "tiny", size=8)


def _cfg(data: str, dataset: str = "mnist", model: str = MODEL):
    return parse(f'[data]\ndataset = "{dataset}"\n{data}\n{model}', "test.toml")


def _data(data: str, seed: int = 0, dataset: str = "mnist"):
    return build_data(_cfg(data, dataset), np.random.default_rng(seed))


def test_standard_split_reads_both_files(mnist_dir):
    s = _data(f'path = "{mnist_dir}"\nval = 0')
    assert s.x_train.shape == (100, 1, 28, 28) and s.x_test.shape == (200, 1, 28, 28)
    assert s.x_train.dtype == np.float32 and 0 <= s.x_train.min() and s.x_train.max() <= 1
    assert s.y_train.dtype == np.int64
    assert s.meta["classes"] == [str(d) for d in range(10)] and s.meta["input_shape"] == (1, 28, 28)


def test_test_file_split_is_stratified_and_the_same_for_every_training_seed(mnist_dir):
    text = f'path = "{mnist_dir}"\nsplit = "test"\nholdout = 40\nval = 0'
    a, b = _data(text, seed=0), _data(text, seed=7)
    assert len(a.x_train) == 160 and len(a.x_test) == 40
    assert np.bincount(a.y_test).tolist() == [4] * 10 and np.bincount(a.y_train).tolist() == [16] * 10
    np.testing.assert_array_equal(a.x_test, b.x_test)
    ids_train = set(np.round(a.x_train[:, 0, 0, 0] * 255).astype(int))
    ids_test = set(np.round(a.x_test[:, 0, 0, 0] * 255).astype(int))
    assert not ids_train & ids_test and len(ids_train | ids_test) == 200  # disjoint and complete
    c = _data(text + "\nsplit_seed = 1")
    assert not np.array_equal(a.x_test, c.x_test)


def test_fraction_holdout_subsets_and_flatten(mnist_dir):
    sizes = "train_size = 50\ntest_size = 30\nflatten = true\nval = 0"
    s = _data(f'path = "{mnist_dir}"\nsplit = "test"\nholdout = 0.25\n{sizes}')
    assert s.x_train.shape == (50, 784) and s.x_test.shape == (30, 784)
    assert np.bincount(s.y_train).tolist() == [5] * 10


def test_validation_comes_out_of_the_training_part(mnist_dir):
    s = _data(f'path = "{mnist_dir}"\nsplit = "test"\nholdout = 40\nval = 0.1')
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (144, 16, 40)


@pytest.mark.parametrize(("name", "cls"), [("zca", ZCA), ("pca", PCA)])
def test_preprocessing_is_fitted_on_the_training_images(tiny_dir, name, cls):
    flatten = "true" if name == "pca" else "false"
    extra = "n_components = 20\n" if name == "pca" else ""
    s = _data(f'path = "{tiny_dir}"\nval = 0\nflatten = {flatten}\npreprocess = "{name}"\neps = 0.1\n{extra}')
    pre = s.meta["preprocessing"]
    assert isinstance(pre, cls) and pre.eps == 0.1
    assert set(s.meta["preprocessing_state"]) == set(pre.state_dict())
    if name == "pca":
        assert s.x_train.shape == (100, 20) and s.meta["input_shape"] == (20,)
    # The training images' statistics, not the test images', fitted on images of shape (1, 28, 28).
    raw = _data(f'path = "{tiny_dir}"\nval = 0')
    assert pre.mean.shape == (1, 8, 8)
    np.testing.assert_allclose(pre.mean, raw.x_train.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(s.x_test, pre.transform(raw.x_test), rtol=1e-5, atol=1e-5)


def test_channel_standardization_is_over_the_one_channel_even_when_flattened(mnist_dir):
    s = _data(f'path = "{mnist_dir}"\nval = 0\nflatten = true\npreprocess = "channel"')
    assert s.x_train.shape == (100, 784) and s.meta["preprocessing"].mean.shape == (1,)
    np.testing.assert_allclose([s.x_train.mean(), s.x_train.std()], [0, 1], atol=1e-5)


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ('split = "val"', r"\[data\] split = 'val': must be \"standard\""),
        ('split = "test"', r"\[data\] holdout = 0: with split = \"test\""),
        ("holdout = 100", r"\[data\] holdout = 100: applies to split = \"test\" only"),
        ('split = "test"\nholdout = 1.5', r"\[data\] holdout = 1.5"),
        ("train_size = -1", r"\[data\] train_size = -1: must be an int >= 0"),
        ("download = 1", r"\[data\] download = 1: must be true or false"),
        ('preprocess = "whiten"', r"preprocess = 'whiten': must be \"none\" or one of channel, mean_image, pca, zca"),
        ('preprocess = "pca"', r"PCA turns images into vectors of components: it needs flatten = true"),
        ("n_components = 5", r"\[data\] n_components = 5: is an argument of preprocess = \"pca\" only"),
        ('preprocess = "zca"\neps = -1.0', r"\[data\] preprocess = 'zca': eps=-1.0 must be a finite number >= 0"),
        ("train_size = 101\nval = 0", r"\[data\] train_size = 101: there are only 100 images"),
    ],
)
def test_bad_data_keys(mnist_dir, data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        _data(f'path = "{mnist_dir}"\n{data}')


def test_a_misspelled_key_is_caught_when_parsing():
    with pytest.raises(ConfigError, match=r"test.toml: unknown key 'hold_out' in \[data\]; valid keys: .*holdout"):
        _cfg("hold_out = 10")


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "kmnist"])
def test_every_image_dataset_finds_its_folder(monkeypatch, tmp_path, mnist_dir, dataset):
    folder = {"mnist": "mnist", "fashion_mnist": "fashion-mnist", "kmnist": "kmnist"}[dataset]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / folder).symlink_to(mnist_dir)
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "data"))
    s = _data('split = "test"\nholdout = 50\nval = 0', dataset=dataset)
    assert len(s.x_test) == 50


def test_the_fitted_preprocessing_is_saved_in_the_run_directory(tmp_path, tiny_dir, capsys):
    model = MODEL.replace("in_features = 784", "in_features = 64")
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\ndataset = "mnist"\npath = "{tiny_dir}"\npreprocess = "zca"\neps = 0.1\n{model}')
    code = main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    saved = ZCA.load(tmp_path / "run" / "preprocessing.safetensors")
    fitted = build_data(parse(config.read_text(), str(config)), np.random.default_rng(0)).meta["preprocessing"]
    x = np.random.default_rng(1).random((3, 1, 8, 8))
    np.testing.assert_array_equal(saved.transform(x), fitted.transform(x))


def test_missing_data_exits_2_naming_the_folders_before_writing_anything(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\ndataset = "mnist"\nsplit = "test"\nholdout = 2000\n{MODEL}')
    out = tmp_path / "run"
    code = main(["train", str(config), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "dataset 'mnist': need t10k-images-idx3-ubyte.gz" in err
    assert str(tmp_path / "cache" / "mnist") in err and "GRADWISE_DATA" in err
    assert not out.exists()


def test_a_damaged_file_exits_2_naming_it(tmp_path, mnist_dir, capsys):
    images = mnist_dir / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:1000])
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\ndataset = "mnist"\npath = "{mnist_dir}"\nsplit = "test"\nholdout = 20\n{MODEL}')
    code = main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and f"{images}: truncated gzip file" in err and "at byte 1000" in err
    assert not (tmp_path / "run").exists()


def test_preprocessing_is_fitted_without_the_validation_images(tmp_path):
    # The mean image must be the mean of the training images left after the validation split.
    from gradwise.cli.config.images import load_images

    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(60, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 6)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    body = {"path": str(folder), "download": False, "split": "test", "holdout": 10, "train_size": 0, "test_size": 0,
            "split_seed": 0, "flatten": False, "preprocess": "mean_image", "n_components": 0, "eps": 1e-5, "val": 20}
    x_train, y_train, x_test, y_test, meta = load_images("mnist", body, np.random.default_rng(1))
    x_val, y_val = meta["val"]
    assert (len(y_train), len(y_val), len(y_test)) == (30, 20, 10)
    # Centred by the mean of exactly these 30 images: a fit that had seen the 20 validation images
    # would leave the training images' mean away from 0.
    np.testing.assert_allclose(x_train.mean(axis=0), 0.0, atol=1e-5)
    assert abs(float(x_val.mean())) > 1e-4
