"""Tests for gradwise/data/datasets.py: MNIST-1D against the official generator, and the spiral."""

from __future__ import annotations

import numpy as np
import pytest

from gradwise.data.datasets import load_mnist1d
from gradwise.data.datasets import make_mnist1d
from gradwise.data.datasets import make_spiral
from gradwise.data.datasets import mnist1d_templates

ARRAY_KEYS = ("x", "x_test", "y", "y_test", "t")


@pytest.fixture(scope="module")
def default_mnist1d() -> dict:
    return make_mnist1d()


@pytest.fixture(scope="module")
def official():
    pytest.importorskip("scipy", reason="the official MNIST-1D generator needs scipy")
    return pytest.importorskip("mnist1d.data", reason="package mnist1d (test extra) is not installed")


# ---------------------------------------------------------------------------------------- MNIST-1D


def test_mnist1d_bit_identical_to_official_defaults(official, default_mnist1d) -> None:
    ref = official.make_dataset(official.get_dataset_args())
    for key in ARRAY_KEYS:
        assert default_mnist1d[key].dtype == ref[key].dtype, key
        assert np.array_equal(default_mnist1d[key], ref[key]), key
    for key in ("x", "t", "y"):
        assert np.array_equal(default_mnist1d["templates"][key], ref["templates"][key]), key


@pytest.mark.parametrize(
    "overrides",
    [
        {"num_samples": 1000, "seed": 0, "shuffle_seq": True},
        {"num_samples": 503, "seed": 7, "padding": (10, 20), "max_translation": 5, "final_seq_length": 25},
        {"num_samples": 300, "seed": 3, "train_split": 0.5, "scale_coeff": 0.0, "corr_noise_scale": 1.0,
         "iid_noise_scale": 0.0, "shear_scale": 2.0},
    ],
)
def test_mnist1d_bit_identical_to_official_other_args(official, overrides: dict) -> None:
    args = official.get_dataset_args(as_dict=True)
    args.update(overrides)
    ref = official.make_dataset(official.ObjectView(args))
    ours = make_mnist1d(**overrides)
    for key in ARRAY_KEYS:
        assert np.array_equal(ours[key], ref[key]), key


def test_mnist1d_shapes_dtypes_and_labels(default_mnist1d) -> None:
    d = default_mnist1d
    assert d["x"].shape == (4000, 40) and d["x"].dtype == np.float64
    assert d["x_test"].shape == (1000, 40) and d["x_test"].dtype == np.float64
    assert d["y"].shape == (4000,) and d["y"].dtype == np.int64
    assert d["y_test"].shape == (1000,) and d["y_test"].dtype == np.int64
    assert d["t"].shape == (40,)
    # 5000 examples, 500 of each digit, split 4000 / 1000 after shuffling
    counts = np.bincount(d["y"], minlength=10) + np.bincount(d["y_test"], minlength=10)
    assert np.array_equal(counts, np.full(10, 500))
    assert set(np.unique(d["y_test"])) == set(range(10))


def test_mnist1d_is_standardized_as_a_whole(default_mnist1d) -> None:
    x = np.concatenate([default_mnist1d["x"], default_mnist1d["x_test"]])
    assert abs(x.mean()) < 1e-12
    assert abs(x.std() - 1.0) < 1e-12


def test_mnist1d_leaves_global_numpy_state_alone() -> None:
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    make_mnist1d(num_samples=20)
    assert np.array_equal(np.random.get_state()[1], before)


def test_mnist1d_rounds_samples_down_to_whole_classes() -> None:
    d = make_mnist1d(num_samples=57, train_split=0.8)
    assert d["x"].shape[0] + d["x_test"].shape[0] == 50
    assert d["x"].shape[0] == 40


def test_mnist1d_seed_changes_data() -> None:
    a = make_mnist1d(num_samples=50, seed=1)
    b = make_mnist1d(num_samples=50, seed=2)
    assert not np.array_equal(a["x"], b["x"])


def test_mnist1d_templates_start_at_zero() -> None:
    tpl = mnist1d_templates()
    assert tpl["x"].shape == (10, 12) and tpl["t"].shape == (12,)
    assert np.array_equal(tpl["x"][:, 0], np.zeros(10))
    assert np.array_equal(tpl["y"], np.arange(10))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_samples": 5}, "num_samples"),
        ({"train_split": 0.0}, "train_split"),
        ({"train_split": 1.5}, "train_split"),
        ({"padding": (5, 2)}, "padding"),
        ({"max_translation": 0}, "max_translation"),
        ({"final_seq_length": 1}, "final_seq_length"),
        ({"template_len": 10}, "template_len"),
    ],
)
def test_mnist1d_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_mnist1d(**kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_load_mnist1d_casts_inputs(default_mnist1d, dtype) -> None:
    x_train, y_train, x_test, y_test = load_mnist1d(dtype=dtype)
    assert x_train.dtype == dtype and x_test.dtype == dtype
    assert x_train.shape == (4000, 40) and x_test.shape == (1000, 40)
    assert np.array_equal(x_train, default_mnist1d["x"].astype(dtype))
    assert np.array_equal(y_train, default_mnist1d["y"])
    assert np.array_equal(y_test, default_mnist1d["y_test"])


def test_load_mnist1d_rejects_integer_dtype() -> None:
    with pytest.raises(ValueError, match="dtype"):
        load_mnist1d(dtype=np.int32)


# ------------------------------------------------------------------------------------------- spiral


@pytest.mark.parametrize(("n_per_class", "n_classes"), [(100, 3), (7, 5), (1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spiral_shapes_and_labels(n_per_class: int, n_classes: int, dtype) -> None:
    X, y = make_spiral(n_per_class, n_classes, rng=np.random.default_rng(0), dtype=dtype)
    assert X.shape == (n_per_class * n_classes, 2) and X.dtype == dtype
    assert y.shape == (n_per_class * n_classes,) and y.dtype == np.int64
    assert np.array_equal(np.bincount(y, minlength=n_classes), np.full(n_classes, n_per_class))
    assert np.all(np.linalg.norm(X.astype(np.float64), axis=1) <= 1.0 + 1e-6)  # radius in [0, 1]


def test_spiral_without_noise_is_the_cs231n_curve() -> None:
    X, y = make_spiral(50, 3, noise=0.0, dtype=np.float64, rng=np.random.default_rng(0))
    for j in range(3):
        r = np.linspace(0.0, 1.0, 50)
        t = np.linspace(4 * j, 4 * (j + 1), 50)
        np.testing.assert_allclose(X[y == j], np.c_[r * np.sin(t), r * np.cos(t)], rtol=0, atol=1e-15)


def test_spiral_is_deterministic_given_a_seeded_generator() -> None:
    a = make_spiral(rng=np.random.default_rng(3))
    b = make_spiral(rng=np.random.default_rng(3))
    c = make_spiral(rng=np.random.default_rng(4))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_per_class": 0}, "n_per_class"), ({"n_classes": 0}, "n_classes"), ({"noise": -1.0}, "noise")],
)
def test_spiral_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_spiral(**kwargs)
