"""PCA and ZCA whitening, fitted on the training split (the CS231n notes, "Data Preprocessing").

With the training data as rows of ``X`` (N samples flattened to D = C*H*W features) and
``Xc = X - mu`` centered by the mean image ``mu``:

1. the covariance ``Sigma = Xc^T Xc / N`` (D x D, divided by N as in the notes, so that the
   whitened *training* data has covariance exactly ``diag(S / (S + eps))``);
2. its eigendecomposition ``Sigma = U diag(S) U^T``, eigenvalues ``S`` in descending order, columns of
   ``U`` the principal directions (the notes take ``np.linalg.svd(Sigma)``, which is the same for a
   symmetric positive semi-definite matrix; `numpy.linalg.eigh` is used here);
3. PCA (`PCA`): rotate into the eigenbasis and keep the first k directions, ``Xc U[:, :k]``, and to
   whiten divide each by ``sqrt(S_i + eps)``, giving unit variance in every kept direction;
4. ZCA (`ZCA`): whiten in the eigenbasis and rotate back, ``Xc U diag(1 / sqrt(S + eps)) U^T``. Of
   all the transforms ``W`` with ``W Sigma W^T = I``, ZCA is the one whose output is closest to its
   input in mean squared distance (Kessy, Lewin & Strimmer, "Optimal whitening and decorrelation",
   The American Statistician 72(4), 2018), which is why ZCA-whitened images still look like the
   images, edges enhanced.

``eps`` keeps directions of (almost) zero variance, such as MNIST's always-black border pixels,
from being scaled up without bound; the notes use 1e-5 for data of unit scale. For pixels in
[0, 1], UFLDL's ZCA tutorial suggests 0.01-0.1 for a smoother result. With ``eps = 0`` a direction of
zero variance cannot be whitened, and `fit` says so.

Both keep their state in float64 (`state_dict`: ``mean``, ``components``, ``variances``, ``scale``
and, for PCA, ``total_variance``), save to a file (`save` / `PCA.load`), and transform in the
input's floating dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradwise.data.imageprep import _check_samples, _Fitted, _float_dtype

__all__ = ["PCA", "ZCA"]

# Training rows multiplied at a time when accumulating the covariance, so that float32 data is never
# copied to float64 whole (60,000 MNIST images would take 376 MB).
_BLOCK = 4096


def _covariance_eigen(x: np.ndarray, who: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (F...), eigenvectors U (D, D) and eigenvalues S (D,) descending, of the covariance of `x`."""
    x = _check_samples(x, who, min_samples=2)
    n = x.shape[0]
    flat = x.reshape(n, -1)
    mean = flat.mean(axis=0, dtype=np.float64)
    cov = np.zeros((flat.shape[1], flat.shape[1]))
    for start in range(0, n, _BLOCK):
        block = flat[start : start + _BLOCK].astype(np.float64)
        block -= mean
        cov += block.T @ block
    cov /= n
    variances, vectors = np.linalg.eigh(cov)
    variances, vectors = variances[::-1].copy(), vectors[:, ::-1].copy()
    np.maximum(variances, 0.0, out=variances)  # rounding leaves tiny negative eigenvalues
    # Eigenvectors are unique up to sign: make each one's largest entry positive, so that fitting the
    # same data always gives the same components.
    rows = np.argmax(np.abs(vectors), axis=0)
    vectors *= np.sign(vectors[rows, np.arange(vectors.shape[1])])
    return mean.reshape(x.shape[1:]), vectors, variances


def _check_eps(eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)) or not (
        eps >= 0 and np.isfinite(eps)
    ):
        raise ValueError(f"{eps=} must be a finite number >= 0")
    return float(eps)


def _whitening_scale(variances: np.ndarray, eps: float, who: str, rank_tol: float) -> np.ndarray:
    if eps == 0 and variances[-1] <= rank_tol:
        rank = int((variances > rank_tol).sum())
        raise ValueError(
            f"{who}: only {rank} of the {len(variances)} directions to whiten have nonzero variance; "
            f"with eps=0 a direction of zero variance cannot be scaled to 1 (use eps > 0"
            f"{' or n_components <= ' + str(rank) if who.startswith('PCA') else ''})"
        )
    return np.sqrt(variances + eps)


class _Eigenbasis(_Fitted):
    _KEYS: tuple[str, ...] = ("mean", "components", "variances", "scale")

    def __init__(self, eps: float) -> None:
        self.eps = _check_eps(eps)
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None
        self.variances: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def _check_x(self, x: np.ndarray, method: str) -> tuple[np.ndarray, np.dtype]:
        self._require_fit(method)
        assert self.mean is not None
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[1:] != self.mean.shape:
            raise ValueError(
                f"{type(self).__name__}.{method}: fit on samples of shape {self.mean.shape}, "
                f"got x of shape {x.shape}"
            )
        dtype = _float_dtype(x)
        centered = np.subtract(x.reshape(len(x), -1), self.mean.reshape(-1).astype(dtype), dtype=dtype)
        return centered, dtype

    def _check_basis(self, arrays: dict[str, np.ndarray]) -> tuple[int, int]:
        name = type(self).__name__
        mean, comps, var, scale = (arrays[k] for k in ("mean", "components", "variances", "scale"))
        d = mean.size
        if comps.ndim != 2 or comps.shape[0] != d or var.shape != (comps.shape[1],) or scale.shape != var.shape:
            raise ValueError(
                f"{name}.load_state_dict: inconsistent shapes: mean {mean.shape} ({d} features), components "
                f"{comps.shape} (expected ({d}, k)), variances {var.shape} and scale {scale.shape} (expected (k,))"
            )
        if not (scale > 0).all() or not (var >= 0).all():
            raise ValueError(f"{name}.load_state_dict: scale must be positive and variances >= 0")
        return d, comps.shape[1]


class PCA(_Eigenbasis):
    """Principal component analysis: project onto the top-k eigenvectors of the covariance, whitened.

    ``transform(x) = (x - mu) U_k / sqrt(S_k + eps)`` (``U_k`` the first k eigenvectors, ``S_k``
    their variances); without whitening, ``(x - mu) U_k``. Samples of shape F... become vectors of
    k components, the first the direction of largest variance.

    Parameters
    ----------
    n_components : int, float or None
        Components kept: an int k in [1, D]; a float in (0, 1), the smallest k whose components
        explain at least that fraction of the variance; None for all D (a rotation, no reduction).
    whiten : bool
        Divide each component by ``sqrt(S_i + eps)`` so each has unit variance on the training data.
    eps : float
        Added to the variances before the square root (>= 0); only used when whitening.

    Attributes
    ----------
    mean : (F...) float64
    components : (D, k) float64
        The principal directions as columns, orthonormal.
    variances : (k,) float64
        The variance of the training data along each (the eigenvalues S), descending.
    scale : (k,) float64
        What each component is divided by: ``sqrt(S + eps)``, or ones without whitening.
    total_variance : () float64
        The sum of all D variances; ``explained_variance_ratio = variances / total_variance``.

    Examples
    --------
    >>> pca = PCA(n_components=50)                   # 784 pixels -> 50 whitened components
    >>> z_train = pca.fit_transform(x_train)         # (N, 50), covariance ~ identity
    >>> z_test = pca.transform(x_test)
    >>> x_approx = pca.inverse_transform(z_test)     # (M, 1, 28, 28), the best rank-50 approximation
    """

    _KEYS = ("mean", "components", "variances", "scale", "total_variance")

    def __init__(self, n_components: int | float | None = None, *, whiten: bool = True, eps: float = 1e-5) -> None:
        super().__init__(eps)
        if n_components is not None:
            if isinstance(n_components, (bool, np.bool_)) or not isinstance(
                n_components, (int, float, np.integer, np.floating)
            ):
                raise ValueError(f"{n_components=} must be an int >= 1, a fraction in (0, 1) or None")
            if isinstance(n_components, (float, np.floating)) and not 0 < n_components < 1:
                raise ValueError(f"{n_components=} as a float must be a fraction of the variance in (0, 1)")
            if isinstance(n_components, (int, np.integer)) and n_components < 1:
                raise ValueError(f"{n_components=} must be >= 1")
        self.n_components = n_components
        self.whiten = bool(whiten)
        self.total_variance: np.ndarray | None = None

    def _hyper(self) -> dict[str, Any]:
        k = self.n_components
        if k is not None:
            k = float(k) if isinstance(k, (float, np.floating)) else int(k)
        return {"n_components": k, "whiten": self.whiten, "eps": self.eps}

    def fit(self, x: np.ndarray) -> PCA:
        """Fit on training samples `x` of shape (N, F...), N >= 2.

        Raises
        ------
        ValueError
            `x` of the wrong shape (the message gives it), NaN or inf, more components than the
            D features, or with ``eps = 0`` a kept direction of zero variance.
        """
        mean, vectors, variances = _covariance_eigen(x, "PCA.fit")
        d = variances.size
        total = variances.sum()
        k = self.n_components
        if k is None:
            k = d
        elif isinstance(k, (float, np.floating)):
            # The smallest k whose cumulative share reaches the fraction (all D for constant data).
            share = np.cumsum(variances) / total if total > 0 else np.ones(d)
            k = int(np.searchsorted(share, k * (1 - 1e-12)) + 1)
        elif k > d:
            raise ValueError(f"PCA.fit: {k} components asked for, but x of shape {np.shape(x)} has {d} features")
        k = int(min(k, d))
        variances_k = variances[:k]
        if self.whiten:
            tol = variances[0] * d * np.finfo(np.float64).eps
            scale = _whitening_scale(variances_k, self.eps, "PCA.fit", tol)
        else:
            scale = np.ones(k)
        state = {"mean": mean, "components": vectors[:, :k].copy(), "variances": variances_k.copy()}
        self._set_state({**state, "scale": scale, "total_variance": np.asarray(total)})
        return self

    @property
    def explained_variance_ratio(self) -> np.ndarray:
        """(k,) the share of the training data's variance along each kept component."""
        self._require_fit("explained_variance_ratio")
        assert self.variances is not None and self.total_variance is not None
        return self.variances / self.total_variance if self.total_variance > 0 else np.zeros_like(self.variances)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Samples `x` (M, F...) to components (M, k), in the dtype of `x` (float64 for integers)."""
        centered, dtype = self._check_x(x, "transform")
        return centered @ self._projection.astype(dtype)

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Components `z` (M, k) back to samples (M, F...): ``(z * scale) U_k^T + mu``.

        Exact when all D components are kept; otherwise the projection of the original onto the
        kept directions (the best rank-k approximation in squared error).
        """
        self._require_fit("inverse_transform")
        assert self.mean is not None and self.components is not None
        z = np.asarray(z)
        k = self.components.shape[1]
        if z.ndim != 2 or z.shape[1] != k:
            raise ValueError(f"PCA.inverse_transform: expected components of shape (M, {k}), got shape {z.shape}")
        dtype = _float_dtype(z)
        out = z @ self._reconstruction.astype(dtype)
        out += self.mean.reshape(-1).astype(dtype)
        return out.reshape(len(z), *self.mean.shape)

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self._check_basis(arrays)
        if arrays["total_variance"].shape != ():
            shape = arrays["total_variance"].shape
            raise ValueError(f"PCA.load_state_dict: total_variance must be a scalar, got shape {shape}")
        self.mean, self.components, self.variances, self.scale = (
            arrays[k] for k in ("mean", "components", "variances", "scale")
        )
        self.total_variance = arrays["total_variance"]
        self._projection = self.components / self.scale  # (D, k)
        self._reconstruction = (self.components * self.scale).T  # (k, D)

    def __repr__(self) -> str:
        fitted = "unfitted" if self.components is None else "{} -> {}".format(*self.components.shape)
        return f"PCA(n_components={self.n_components}, whiten={self.whiten}, eps={self.eps}, {fitted})"


class ZCA(_Eigenbasis):
    """ZCA whitening: ``(x - mu) U diag(1 / sqrt(S + eps)) U^T``, the output shaped like the input.

    The whitened training data has covariance ``U diag(S / (S + eps)) U^T`` (the identity for
    ``S >> eps``), and of all whitening transforms ZCA changes the data least.

    Parameters
    ----------
    eps : float
        Added to the variances before the square root (>= 0).

    Attributes
    ----------
    mean : (F...) float64
    components : (D, D) float64
        The eigenvectors U of the training covariance.
    variances : (D,) float64
        Its eigenvalues S, descending.
    scale : (D,) float64
        ``sqrt(S + eps)``.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__(eps)

    def _hyper(self) -> dict[str, Any]:
        return {"eps": self.eps}

    def fit(self, x: np.ndarray) -> ZCA:
        """Fit on training samples `x` of shape (N, F...), N >= 2.

        Raises
        ------
        ValueError
            `x` of the wrong shape (the message gives it), NaN or inf, or with ``eps = 0`` data
            whose covariance is singular.
        """
        mean, vectors, variances = _covariance_eigen(x, "ZCA.fit")
        tol = variances[0] * variances.size * np.finfo(np.float64).eps
        scale = _whitening_scale(variances, self.eps, "ZCA.fit", tol)
        self._set_state({"mean": mean, "components": vectors, "variances": variances, "scale": scale})
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Whiten samples `x` (M, F...); returns (M, F...) in the dtype of `x` (float64 for integers)."""
        centered, dtype = self._check_x(x, "transform")
        return (centered @ self._whitening.astype(dtype)).reshape(np.shape(x))

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """Undo `transform`: ``x U diag(sqrt(S + eps)) U^T + mu``."""
        self._require_fit("inverse_transform")
        assert self.mean is not None
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[1:] != self.mean.shape:
            raise ValueError(
                f"ZCA.inverse_transform: fit on samples of shape {self.mean.shape}, got x of shape {x.shape}"
            )
        dtype = _float_dtype(x)
        out = x.reshape(len(x), -1) @ self._coloring.astype(dtype)
        out += self.mean.reshape(-1).astype(dtype)
        return out.reshape(x.shape)

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        d, kept = self._check_basis(arrays)
        if kept != d:
            shape = arrays["components"].shape
            raise ValueError(f"ZCA.load_state_dict: components must be square ({d}, {d}), got {shape}")
        self.mean, self.components, self.variances, self.scale = (
            arrays[k] for k in ("mean", "components", "variances", "scale")
        )
        u = self.components
        self._whitening = (u / self.scale) @ u.T  # U diag(1/scale) U^T, symmetric
        self._coloring = (u * self.scale) @ u.T

    def __repr__(self) -> str:
        fitted = "unfitted" if self.components is None else f"features={self.components.shape[0]}"
        return f"ZCA(eps={self.eps}, {fitted})"
