"""Tests of gradwise/data/augment.py: random_crop, horizontal_flip, gaussian_noise, random_shift_1d, compose."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradwise.data import augment

IMAGE_SHAPES = [(6, 3, 5, 7), (6, 5, 7), (1, 1, 4, 4)]
SEQ_SHAPES = [(6, 11), (6, 2, 11), (1, 1, 3)]


def images(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(shape).astype(dtype)


def all_transforms() -> list[augment.Transform]:
    return [
        augment.random_crop(2),
        augment.horizontal_flip(0.5),
        augment.gaussian_noise(0.3),
        augment.random_shift_1d(2),
        augment.random_shift_1d(2, mode="zeros"),
    ]


# ---------------------------------------------------------------------------------- common contract


@pytest.mark.parametrize("t", all_transforms(), ids=lambda t: t.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_dtype_determinism_and_no_mutation(t, dtype):
    shape = (8, 3, 6, 6) if "crop" in t.__name__ else (8, 3, 12)
    x = images(shape, dtype)
    before = x.copy()
    a = t(x, np.random.default_rng(7))
    b = t(x, np.random.default_rng(7))
    assert a.shape == x.shape and a.dtype == dtype
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, before)
    assert not np.shares_memory(a, x)
    assert not np.array_equal(a, t(x, np.random.default_rng(8)))


@pytest.mark.parametrize(
    "t",
    [
        augment.random_crop(0),
        augment.horizontal_flip(0.0),
        augment.gaussian_noise(0.0),
        augment.random_shift_1d(0),
        augment.random_shift_1d(0, "zeros"),
        augment.compose(),
    ],
    ids=lambda t: t.__name__,
)
def test_zero_parameters_are_the_identity(t):
    x = images((4, 2, 5))
    assert t(x, np.random.default_rng(0)) is x


# -------------------------------------------------------------------------------------- random_crop


def _crop_reference(x: np.ndarray, padding: int, seed: int) -> np.ndarray:
    """The definition, sample by sample: pad with zeros, take the window at the drawn offset."""
    offsets = np.random.default_rng(seed).integers(0, 2 * padding + 1, size=(len(x), 2))
    h, w = x.shape[-2:]
    out = np.empty_like(x)
    for n, (dy, dx) in enumerate(offsets):
        padded = np.pad(x[n], [(0, 0)] * (x.ndim - 3) + [(padding, padding)] * 2)
        out[n] = padded[..., dy : dy + h, dx : dx + w]
    return out


@pytest.mark.parametrize("shape", IMAGE_SHAPES, ids=str)
@pytest.mark.parametrize("padding", [1, 3, 9])
def test_random_crop_is_pad_then_crop_per_sample(shape, padding):
    x = images(shape)
    out = augment.random_crop(padding)(x, np.random.default_rng(3))
    np.testing.assert_array_equal(out, _crop_reference(x, padding, 3))
    assert out.flags.c_contiguous


def test_random_crop_moves_all_channels_together():
    x = np.broadcast_to(images((5, 1, 6, 6)), (5, 3, 6, 6)).copy()
    out = augment.random_crop(2)(x, np.random.default_rng(0))
    np.testing.assert_array_equal(out[:, 0], out[:, 2])


def test_random_crop_offsets_cover_the_range():
    x = np.zeros((2000, 5, 5), dtype=np.float32)
    x[:, 2, 2] = 1.0  # a single bright pixel in the middle
    out = augment.random_crop(2)(x, np.random.default_rng(0))
    rows, cols = np.nonzero(out.sum(axis=0))
    assert set(rows) == set(cols) == {0, 1, 2, 3, 4}  # moved by -2..2 in each direction
    assert np.all(out.reshape(2000, -1).sum(axis=1) == 1.0)  # never cropped away at padding 2


# ---------------------------------------------------------------------------------- horizontal_flip


@pytest.mark.parametrize("shape", IMAGE_SHAPES + [(6, 9)], ids=str)
def test_horizontal_flip_mirrors_a_subset_of_samples(shape):
    x = images(shape)
    out = augment.horizontal_flip(0.5)(x, np.random.default_rng(2))
    flipped = np.random.default_rng(2).random(len(x)) < 0.5
    for n in range(len(x)):
        np.testing.assert_array_equal(out[n], x[n, ..., ::-1] if flipped[n] else x[n])


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_flip_rate_matches_p(p):
    n = 20000
    x = np.tile(np.arange(4, dtype=np.float32), (n, 1, 1))  # (n, 1, 4)
    out = augment.horizontal_flip(p)(x, np.random.default_rng(0))
    rate = np.mean(out[:, 0, 0] == 3.0)
    # Binomial standard error sqrt(p (1-p) / n) <= 0.0035; 5 of them.
    assert abs(rate - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_flip_with_p_one_flips_everything():
    x = images((5, 2, 3, 4))
    np.testing.assert_array_equal(augment.horizontal_flip(1.0)(x, np.random.default_rng(0)), x[..., ::-1])


# ----------------------------------------------------------------------------------- gaussian_noise


def test_gaussian_noise_statistics():
    x = np.full((400, 50, 50), 3.0, dtype=np.float32)
    out = augment.gaussian_noise(0.2)(x, np.random.default_rng(0))
    noise = (out - x).astype(np.float64)
    assert abs(noise.mean()) < 0.002  # standard error 0.2 / 1000
    assert abs(noise.std() / 0.2 - 1.0) < 0.005


def test_gaussian_noise_refuses_integer_batches():
    with pytest.raises(TypeError, match="gaussian_noise: the batch must be floating, got dtype uint8"):
        augment.gaussian_noise(0.1)(np.zeros((2, 3), dtype=np.uint8), np.random.default_rng(0))


# ---------------------------------------------------------------------------------- random_shift_1d


@pytest.mark.parametrize("shape", SEQ_SHAPES, ids=str)
@pytest.mark.parametrize("max_shift", [1, 4, 30])
def test_wrap_shift_is_a_per_sample_roll(shape, max_shift):
    x = images(shape)
    out = augment.random_shift_1d(max_shift)(x, np.random.default_rng(5))
    shifts = max_shift - np.random.default_rng(5).integers(0, 2 * max_shift + 1, size=(len(x), 1))[:, 0]
    for n in range(len(x)):
        np.testing.assert_array_equal(out[n], np.roll(x[n], shifts[n], axis=-1))


@pytest.mark.parametrize("shape", SEQ_SHAPES, ids=str)
@pytest.mark.parametrize("max_shift", [1, 4, 30])
def test_zeros_shift_fills_vacated_steps_with_zeros(shape, max_shift):
    x = images(shape)
    out = augment.random_shift_1d(max_shift, mode="zeros")(x, np.random.default_rng(5))
    shifts = max_shift - np.random.default_rng(5).integers(0, 2 * max_shift + 1, size=(len(x), 1))[:, 0]
    length = x.shape[-1]
    for n, s in enumerate(shifts):
        expected = np.zeros_like(x[n])
        if abs(s) < length:
            if s >= 0:
                expected[..., s:] = x[n, ..., : length - s]
            else:
                expected[..., :s] = x[n, ..., -s:]
        np.testing.assert_array_equal(out[n], expected)


def test_shift_distribution_is_uniform_over_the_range():
    n = 7000
    x = np.zeros((n, 9), dtype=np.float32)
    x[:, 4] = 1.0
    out = augment.random_shift_1d(3)(x, np.random.default_rng(0))
    positions = np.argmax(out, axis=1)
    counts = np.bincount(positions - 4 + 3, minlength=7)
    assert counts.size == 7 and np.all(np.abs(counts / n - 1 / 7) < 0.02)


# ------------------------------------------------------------------------------------------ compose


def test_compose_applies_in_order_with_one_generator():
    x = images((5, 2, 6, 6))
    crop, flip = augment.random_crop(1), augment.horizontal_flip(0.5)
    rng = np.random.default_rng(4)
    expected = flip(crop(x, rng), rng)
    np.testing.assert_array_equal(augment.compose(crop, flip)(x, np.random.default_rng(4)), expected)
    assert augment.compose(crop, flip).__name__ == "compose(random_crop(1), horizontal_flip(0.5))"


@given(
    n=st.integers(1, 6),
    c=st.integers(1, 3),
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    padding=st.integers(0, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_crop_any_shape(n, c, h, w, padding, seed):
    x = np.random.default_rng(seed).standard_normal((n, c, h, w))
    out = augment.random_crop(padding)(x, np.random.default_rng(seed))
    assert out.shape == x.shape
    if padding:
        np.testing.assert_array_equal(out, _crop_reference(x, padding, seed))


# ------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: augment.random_crop(-1), r"random_crop: padding=-1 must be an integer >= 0"),
        (lambda: augment.random_crop(1.5), r"padding=1.5"),
        (lambda: augment.horizontal_flip(1.5), r"horizontal_flip: p=1.5 must be in \[0, 1\]"),
        (lambda: augment.gaussian_noise(-0.1), r"gaussian_noise: std=-0.1 must be >= 0"),
        (lambda: augment.random_shift_1d(-2), r"random_shift_1d: max_shift=-2"),
        (lambda: augment.random_shift_1d(2, mode="reflect"), r"mode='reflect' must be 'wrap' or 'zeros'"),
    ],
)
def test_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("t", "shape", "match"),
    [
        (
            augment.random_crop(1),
            (4, 5),
            r"random_crop: expected images \(N, C, H, W\) or \(N, H, W\), got shape \(4, 5\)",
        ),
        (augment.random_crop(1), (2, 1, 1, 4, 4), r"got shape \(2, 1, 1, 4, 4\)"),
        (augment.random_shift_1d(1), (4,), r"random_shift_1d: expected sequences \(N, L\) or \(N, C, L\)"),
        (augment.random_shift_1d(1), (2, 1, 3, 3), r"got shape \(2, 1, 3, 3\)"),
        (augment.horizontal_flip(), (5,), r"horizontal_flip: expected a batch"),
    ],
)
def test_wrong_layout_names_transform_and_shape(t, shape, match):
    with pytest.raises(ValueError, match=match):
        t(np.zeros(shape, dtype=np.float32), np.random.default_rng(0))


def test_tuple_batch_is_refused_with_advice():
    with pytest.raises(TypeError, match="multi-input batch"):
        augment.horizontal_flip()((np.zeros((2, 3)), np.zeros((2, 3))), np.random.default_rng(0))


def test_compose_refuses_non_callables():
    with pytest.raises(TypeError, match="compose: item 1 is int"):
        augment.compose(augment.horizontal_flip(), 3)
