"""Mean-image subtraction and per-channel standardization, fitted on training images, saved."""

from __future__ import annotations

import numpy as np
import pytest

from gradwise.data.imageprep import ChannelStandardizer, MeanImage


def _images(rng: np.random.Generator, n: int = 64, c: int = 3) -> np.ndarray:
    # Channels of different means and spreads, as in natural images.
    return rng.normal(loc=[[[0.5]], [[0.2]], [[-1.0]]][:c], scale=[[[0.1]], [[2.0]], [[0.5]]][:c], size=(n, c, 5, 4))


def test_mean_image(rng, tol):
    x = _images(rng)
    pre = MeanImage().fit(x)
    assert pre.mean.shape == (3, 5, 4)
    out = pre.transform(x)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(pre.inverse_transform(out), x, rtol=0, atol=1e-12)
    assert pre.transform(x.astype(np.float32)).dtype == np.float32
    assert pre.transform(np.ones((2, 3, 5, 4), dtype=np.uint8)).dtype == np.float64


def test_channel_standardizer(rng):
    x = _images(rng)
    pre = ChannelStandardizer().fit(x)
    assert pre.mean.shape == (3,) and pre.scale.shape == (3,)
    out = pre.transform(x)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, rtol=1e-12)
    # torchvision's Normalize(mean, std), with the per-channel statistics over samples and pixels.
    expected = (x - x.mean(axis=(0, 2, 3)).reshape(1, 3, 1, 1)) / x.std(axis=(0, 2, 3)).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_allclose(pre.inverse_transform(out), x, rtol=0, atol=1e-12)


def test_channel_standardizer_on_other_layouts(rng):
    x = rng.normal(size=(20, 2, 7))  # (N, C, L)
    out = ChannelStandardizer().fit_transform(x)
    np.testing.assert_allclose(out.std(axis=(0, 2)), 1, rtol=1e-12)
    flat = rng.normal(size=(20, 4))  # (N, C): per feature
    np.testing.assert_allclose(ChannelStandardizer().fit_transform(flat).std(axis=0), 1, rtol=1e-12)


def test_a_constant_channel_is_only_centered(rng):
    x = _images(rng, c=2)
    x[:, 1] = 0.7
    pre = ChannelStandardizer().fit(x)
    assert pre.scale[1] == 1.0
    assert np.all(pre.transform(x)[:, 1] == 0)


@pytest.mark.parametrize("make", [MeanImage, ChannelStandardizer])
def test_save_load_round_trip(tmp_path, rng, make):
    x = _images(rng)
    fitted = make().fit(x)
    loaded = make.load(fitted.save(tmp_path / "pre.safetensors"))
    np.testing.assert_array_equal(loaded.transform(x), fitted.transform(x))
    fresh = make()
    fresh.load_state_dict(fitted.state_dict())
    np.testing.assert_array_equal(fresh.transform(x), fitted.transform(x))


def test_bad_input_is_named_by_its_shape(rng):
    x = _images(rng)
    with pytest.raises(ValueError, match=r"fit on images of shape \(3, 5, 4\), got x of shape \(2, 3, 4, 5\)"):
        MeanImage().fit(x).transform(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"fit on 3 channels \(axis 1\), got x of shape \(2, 1, 5, 4\)"):
        ChannelStandardizer().fit(x).transform(np.zeros((2, 1, 5, 4)))
    with pytest.raises(ValueError, match=r"got shape \(5,\)"):
        ChannelStandardizer().fit(np.zeros(5))
    with pytest.raises(ValueError, match="needs real numbers, got dtype <U1"):
        MeanImage().fit(np.array([["a"]]))
    with pytest.raises(RuntimeError, match="MeanImage.transform called before fit"):
        MeanImage().transform(x)
    with pytest.raises(ValueError, match="eps=0 must be positive"):
        ChannelStandardizer(eps=0)


def test_load_state_dict_checks(rng):
    state = ChannelStandardizer().fit(_images(rng)).state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['scale'\], unexpected keys \['std'\]"):
        ChannelStandardizer().load_state_dict({"mean": state["mean"], "std": state["scale"]})
    with pytest.raises(ValueError, match="scale must be positive"):
        ChannelStandardizer().load_state_dict({**state, "scale": -state["scale"]})
    with pytest.raises(ValueError, match=r"'mean' \(shape \(3,\)\) has NaN or inf"):
        ChannelStandardizer().load_state_dict({**state, "mean": np.full(3, np.inf)})
