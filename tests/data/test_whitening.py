"""PCA and ZCA whitening: identity covariance, ZCA's least change, exact float64 math, save/load."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradwise.data.imageprep import MeanImage
from gradwise.data.whitening import PCA, ZCA


def _correlated(rng: np.random.Generator, n: int = 400, shape: tuple[int, ...] = (3, 2, 2)) -> np.ndarray:
    """Samples with a full-rank, far-from-diagonal covariance (condition number about 100)."""
    d = int(np.prod(shape))
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    mixing = q * np.geomspace(0.1, 1.0, d)
    return (rng.standard_normal((n, d)) @ mixing.T + rng.uniform(-2, 2, d)).reshape(n, *shape)


def _cov(z: np.ndarray) -> np.ndarray:
    flat = z.reshape(len(z), -1).astype(np.float64)
    centered = flat - flat.mean(axis=0)
    return centered.T @ centered / len(z)


def _orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# ------------------------------------------------------------------------------------------ ZCA


def test_zca_whitened_training_data_has_identity_covariance(rng, tol):
    x = _correlated(rng)
    z = ZCA(eps=0).fit_transform(x)
    assert z.shape == x.shape and z.dtype == np.float64
    np.testing.assert_allclose(_cov(z), np.eye(12), rtol=0, atol=tol.whiten)
    np.testing.assert_allclose(z.reshape(len(z), -1).mean(axis=0), 0, atol=tol.whiten)


def test_zca_with_eps_shrinks_each_direction_by_s_over_s_plus_eps(rng, tol):
    x = _correlated(rng)
    zca = ZCA(eps=0.05).fit(x)
    u, s = zca.components, zca.variances
    np.testing.assert_allclose(_cov(zca.transform(x)), (u * (s / (s + 0.05))) @ u.T, rtol=0, atol=tol.whiten)


def test_zca_is_the_whitening_closest_to_its_input(rng):
    """Kessy et al. (2018): among all W with W Sigma W^T = I, ZCA minimizes E||W xc - xc||^2."""
    x = _correlated(rng)
    xc = (x - x.mean(axis=0)).reshape(len(x), -1)
    z = ZCA(eps=0).fit_transform(x).reshape(len(x), -1)
    pca = PCA(whiten=True, eps=0).fit_transform(x)  # whitened too, in the eigenbasis
    distance = np.mean(np.sum((z - xc) ** 2, axis=1))
    assert distance < np.mean(np.sum((pca - xc) ** 2, axis=1))
    for _ in range(20):  # every other whitening is a rotation of this one: Q W
        rotated = z @ _orthogonal(rng, 12).T
        assert distance < np.mean(np.sum((rotated - xc) ** 2, axis=1))


def test_zca_matrix_is_symmetric_and_inverse_transform_is_exact(rng, tol):
    x = _correlated(rng)
    zca = ZCA(eps=1e-3).fit(x)
    np.testing.assert_allclose(zca._whitening, zca._whitening.T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(zca.inverse_transform(zca.transform(x)), x, rtol=0, atol=tol.whiten)


@given(
    n_extra=st.integers(0, 40),
    d=st.integers(1, 8),
    scale=st.floats(1e-2, 1e2),
    seed=st.integers(0, 2**16),
)
def test_zca_whitens_any_full_rank_data(n_extra, d, scale, seed, tol):
    rng = np.random.default_rng(seed)
    n = 4 * d + 4 + n_extra
    x = _correlated(rng, n=n, shape=(d,)) * scale
    z = ZCA(eps=0).fit_transform(x)
    np.testing.assert_allclose(_cov(z), np.eye(d), rtol=0, atol=tol.whiten * 10)


def test_zca_keeps_float32_and_promotes_integers(rng):
    x = _correlated(rng)
    zca = ZCA().fit(x)
    assert zca.transform(x.astype(np.float32)).dtype == np.float32
    ints = rng.integers(0, 255, (50, 3, 2, 2))
    assert ZCA().fit(ints).transform(ints).dtype == np.float64


def test_zca_fit_on_the_training_data_only(rng, tol):
    x = _correlated(rng, n=800)
    train, test = x[:600], x[600:] * 3  # new data is transformed with the training statistics
    zca = ZCA(eps=0).fit(train)
    expected = ((test - train.mean(axis=0)).reshape(200, -1) @ zca._whitening).reshape(test.shape)
    np.testing.assert_allclose(zca.transform(test), expected, rtol=0, atol=tol.whiten)


# ------------------------------------------------------------------------------------------ PCA


def test_pca_matches_the_svd_of_the_centered_data(rng, tol):
    """CS231n: U, S = svd(Xc^T Xc / N); the variances are the squared singular values of Xc over N."""
    x = _correlated(rng)
    xc = (x - x.mean(axis=0)).reshape(len(x), -1)
    pca = PCA(whiten=False).fit(x)
    _, sv, vt = np.linalg.svd(xc, full_matrices=False)
    np.testing.assert_allclose(pca.variances, sv**2 / len(x), rtol=1e-12)
    # The same directions up to sign.
    np.testing.assert_allclose(np.abs(pca.components.T @ vt.T), np.eye(12), rtol=0, atol=1e-9)
    np.testing.assert_allclose(pca.components.T @ pca.components, np.eye(12), rtol=0, atol=1e-12)
    np.testing.assert_allclose(pca.explained_variance_ratio.sum(), 1.0, rtol=1e-12)
    rotated = pca.transform(x)
    np.testing.assert_allclose(_cov(rotated), np.diag(pca.variances), rtol=0, atol=tol.whiten)


def test_pca_whitened_reduced_data_has_identity_covariance(rng, tol):
    x = _correlated(rng)
    pca = PCA(n_components=5, eps=0).fit(x)
    z = pca.transform(x)
    assert z.shape == (400, 5) and pca.components.shape == (12, 5)
    np.testing.assert_allclose(_cov(z), np.eye(5), rtol=0, atol=tol.whiten)
    # The first component carries the most variance.
    assert np.all(np.diff(pca.variances) <= 0)


def test_pca_inverse_transform(rng, tol):
    x = _correlated(rng)
    full = PCA(eps=1e-4).fit(x)
    np.testing.assert_allclose(full.inverse_transform(full.transform(x)), x, rtol=0, atol=tol.whiten)
    reduced = PCA(n_components=4).fit(x)
    approx = reduced.inverse_transform(reduced.transform(x))
    assert approx.shape == x.shape
    xc = (x - x.mean(axis=0)).reshape(len(x), -1)
    u = reduced.components
    projection = (xc @ u @ u.T + x.mean(axis=0).reshape(-1)).reshape(x.shape)
    np.testing.assert_allclose(approx, projection, rtol=0, atol=tol.whiten)


def test_pca_fraction_of_variance(rng):
    x = _correlated(rng)
    ratio = np.cumsum(PCA().fit(x).explained_variance_ratio)
    pca = PCA(n_components=0.8).fit(x)
    k = pca.components.shape[1]
    assert ratio[k - 1] >= 0.8 and (k == 1 or ratio[k - 2] < 0.8)


def test_pca_components_are_reproducible(rng):
    x = _correlated(rng)
    a, b = PCA().fit(x), PCA().fit(x[::-1].copy())  # the same data in another order
    np.testing.assert_allclose(a.components, b.components, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------------- state, files


@pytest.mark.parametrize(
    "make", [lambda: ZCA(eps=0.01), lambda: PCA(n_components=3, eps=0.1), lambda: PCA(whiten=False)]
)
def test_save_load_round_trip(tmp_path, rng, make):
    x = _correlated(rng)
    fitted = make().fit(x)
    path = fitted.save(tmp_path / "pre.safetensors")
    loaded = type(fitted).load(path)
    assert repr(loaded) == repr(fitted)
    np.testing.assert_array_equal(loaded.transform(x), fitted.transform(x))
    fresh = make()
    fresh.load_state_dict(fitted.state_dict())
    np.testing.assert_array_equal(fresh.transform(x), fitted.transform(x))
    assert all(v.dtype == np.float64 for v in fitted.state_dict().values())


def test_loading_the_wrong_file(tmp_path, rng):
    path = ZCA().fit(_correlated(rng)).save(tmp_path / "zca.safetensors")
    with pytest.raises(ValueError, match="holds a ZCA, not a PCA; load it with ZCA.load"):
        PCA.load(path)
    MeanImage().fit(np.zeros((2, 3))).save(tmp_path / "mean.safetensors")
    with pytest.raises(ValueError, match="holds a MeanImage, not a ZCA"):
        ZCA.load(tmp_path / "mean.safetensors")
    (tmp_path / "junk").write_bytes(b"not a file of ours")
    with pytest.raises(ValueError, match="junk: not a preprocessing file written by ZCA.save"):
        ZCA.load(tmp_path / "junk")


def test_load_state_dict_checks_the_arrays(rng):
    state = PCA(n_components=3).fit(_correlated(rng)).state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['total_variance'\]"):
        PCA().load_state_dict({k: v for k, v in state.items() if k != "total_variance"})
    with pytest.raises(ValueError, match=r"components \(12, 2\) \(expected \(12, k\)\), variances \(3,\)"):
        PCA().load_state_dict({**state, "components": state["components"][:, :2]})
    with pytest.raises(ValueError, match=r"components must be square \(12, 12\), got \(12, 3\)"):
        ZCA().load_state_dict({k: v for k, v in state.items() if k != "total_variance"})


# --------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("cls", [PCA, ZCA])
def test_bad_input_is_named_by_its_shape(rng, cls):
    x = _correlated(rng)
    fitted = cls().fit(x)
    with pytest.raises(ValueError, match=r"fit on samples of shape \(3, 2, 2\), got x of shape \(5, 12\)"):
        fitted.transform(x.reshape(400, 12)[:5])
    with pytest.raises(ValueError, match=r"N >= 2 and at least one feature, got shape \(7,\)"):
        cls().fit(np.zeros(7))
    with pytest.raises(ValueError, match=r"got shape \(1, 4\)"):
        cls().fit(np.zeros((1, 4)))
    bad = x.copy()
    bad[3, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"x of shape \(400, 3, 2, 2\) has NaN or inf"):
        cls().fit(bad)
    with pytest.raises(RuntimeError, match="transform called before fit"):
        cls().transform(x)


def test_pca_argument_checks(rng):
    with pytest.raises(ValueError, match="20 components asked for, but x of shape \\(400, 3, 2, 2\\) has 12 features"):
        PCA(n_components=20).fit(_correlated(rng))
    for bad in (0, -1, 1.5, True, "all"):
        with pytest.raises(ValueError, match="n_components="):
            PCA(n_components=bad)
    with pytest.raises(ValueError, match="eps=-1.0 must be a finite number >= 0"):
        PCA(eps=-1.0)
    with pytest.raises(ValueError, match=r"expected components of shape \(M, 12\), got shape \(3, 5\)"):
        PCA().fit(_correlated(rng)).inverse_transform(np.zeros((3, 5)))


def test_eps_zero_on_rank_deficient_data_says_what_to_do(rng):
    x = np.repeat(rng.standard_normal((30, 1)), 4, axis=1)  # rank 1
    with pytest.raises(ValueError, match=r"only 1 of the 4 directions .*\(use eps > 0 or n_components <= 1\)"):
        PCA(eps=0).fit(x)
    with pytest.raises(ValueError, match=r"ZCA.fit: only 1 of the 4 directions to whiten .*\(use eps > 0\)"):
        ZCA(eps=0).fit(x)
    assert PCA(n_components=1, eps=0).fit(x).transform(x).shape == (30, 1)
    assert np.isfinite(ZCA(eps=1e-5).fit_transform(x)).all()
