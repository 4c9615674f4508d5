"""Small datasets generated locally: MNIST-1D and the CS231n spiral.

Nothing here touches the network, so tests and the default `gradwise train` run offline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradwise.random import resolve

__all__ = ["make_mnist1d", "load_mnist1d", "mnist1d_templates", "make_spiral"]


# --------------------------------------------------------------------------------------------------
# MNIST-1D
# --------------------------------------------------------------------------------------------------


def mnist1d_templates() -> dict[str, np.ndarray]:
    """The ten hand-drawn 1-D digit templates of MNIST-1D.

    Returns
    -------
    dict
        ``"x"``: (10, 12) float64 templates, whitened per row, shifted to start at 0 and divided by 6;
        ``"t"``: (12,) float64 coordinates ``linspace(-5, 5, 12) / 6``;
        ``"y"``: (10,) int64 labels 0..9.

    Notes
    -----
    Copied from ``mnist1d.data.get_templates`` (Greydanus, 2020) with the same operation order, so
    the floating-point values are identical.
    """
    x = np.stack([
        np.asarray([5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5]),
        np.asarray([5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5]),
        np.asarray([5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5]),
        np.asarray([5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5]),
        np.asarray([5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5]),
        np.asarray([5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5]),
        np.asarray([5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5]),
        np.asarray([5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5]),
        np.asarray([5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5]),
        np.asarray([5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5]),
    ])
    x -= x.mean(1, keepdims=True)
    x /= x.std(1, keepdims=True)
    x -= x[:, :1]  # every signal starts (and ends) at 0, so zero padding joins it smoothly
    return {"x": x / 6.0, "t": np.linspace(-5, 5, x.shape[1]) / 6.0, "y": np.arange(10)}


def _interp_rows(xp: np.ndarray, x_new: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """`np.interp(x_new, xp, row)` for every row of `fp`, with the same floating-point operations.

    Parameters
    ----------
    xp : (M,) increasing sample points, shared by all rows.
    x_new : (Q,) query points inside ``[xp[0], xp[-1]]``.
    fp : (R, M) values.

    Returns
    -------
    (R, Q) array.

    Notes
    -----
    NumPy's C loop computes ``slope * (x - xp[j]) + fp[j]`` with
    ``slope = (fp[j+1] - fp[j]) / (xp[j+1] - xp[j])`` and returns ``fp[j]`` on an exact hit; we
    repeat exactly that (the official MNIST-1D goes through SciPy's ``interp1d(kind="linear")``,
    which delegates to ``np.interp`` for 1-D float64 data), so results match bit for bit.
    """
    j = np.searchsorted(xp, x_new, side="right") - 1  # xp[j] <= x < xp[j+1], as numpy's search
    hit = xp[j] == x_new
    jj = np.minimum(j, xp.size - 2)
    slope = (fp[:, jj + 1] - fp[:, jj]) / (xp[jj + 1] - xp[jj])
    out = slope * (x_new - xp[jj]) + fp[:, jj]
    out[:, hit] = fp[:, j[hit]]
    return out


def _gaussian_filter_rows(x: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter1d(row, sigma)`` (mode ``"reflect"``) for every row of `x`.

    Parameters
    ----------
    x : (R, L) float64, with ``L`` greater than the kernel radius.

    Returns
    -------
    (R, L) float64.

    Notes
    -----
    SciPy's ``reflect`` mode (``d c b a | a b c d | d c b a``) is NumPy's ``pad(mode="symmetric")``.
    For a symmetric kernel SciPy's C correlation computes ``x[i] * w[0]`` and then adds
    ``(x[i-d] + x[i+d]) * w[d]`` for ``d = radius, ..., 1``; we sum in that order to match it exactly.
    """
    radius = int(truncate * float(sigma) + 0.5)
    offsets = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 / (sigma * sigma) * offsets**2)
    w = w / w.sum()  # w[radius + d] is the weight at distance d
    length = x.shape[1]
    padded = np.pad(x, ((0, 0), (radius, radius)), mode="symmetric")
    out = padded[:, radius:radius + length] * w[radius]
    for d in range(radius, 0, -1):
        out += (padded[:, radius - d:radius - d + length] + padded[:, radius + d:radius + d + length]) * w[radius - d]
    return out


def make_mnist1d(
    num_samples: int = 5000,
    train_split: float = 0.8,
    template_len: int = 12,
    padding: tuple[int, int] = (36, 60),
    scale_coeff: float = 0.4,
    max_translation: int = 48,
    corr_noise_scale: float = 0.25,
    iid_noise_scale: float = 2e-2,
    shear_scale: float = 0.75,
    shuffle_seq: bool = False,
    final_seq_length: int = 40,
    seed: int = 42,
) -> dict[str, Any]:
    """Generate the MNIST-1D dataset (Greydanus, 2020), identical to the official generator.

    Each example is one of ten 1-D digit templates, padded with a random number of zeros, dilated to
    ``template_len + padding[1]`` points, scaled, circularly translated, with correlated noise in the
    background, i.i.d. noise everywhere, a random linear shear, and finally resampled to
    ``final_seq_length`` points. The whole set is then centered and scaled to unit standard deviation.
    The defaults are the official ones and give the standard 4000 train / 1000 test split with
    sequences of length 40.

    Parameters
    ----------
    num_samples : int
        Total number of examples; ``num_samples // 10`` are made per class (rounded down).
    train_split : float
        Fraction of the (shuffled) examples that go to the training set.
    template_len : int
        Length of the digit templates (12 for the built-in ones).
    padding : (int, int)
        Inclusive range ``(low, high)`` of the number of zeros appended before dilation.
    scale_coeff : float
        Amplitude scale is drawn from ``1 + scale_coeff * U(-0.5, 0.5)``.
    max_translation : int
        Circular shift drawn uniformly from ``0 .. max_translation - 1``.
    corr_noise_scale : float
        Std of the background noise before Gaussian smoothing (sigma 2).
    iid_noise_scale : float
        Std of the i.i.d. Gaussian noise added to every point.
    shear_scale : float
        Shear slope is drawn from ``shear_scale * U(-0.5, 0.5)``.
    shuffle_seq : bool
        Also apply one fixed random permutation to the time axis (the "shuffled" variant).
    final_seq_length : int
        Length of every output sequence.
    seed : int
        Seed of the private ``np.random.RandomState`` stream.

    Returns
    -------
    dict
        ``"x"``: (n_train, final_seq_length) float64; ``"y"``: (n_train,) int64;
        ``"x_test"``: (n_test, final_seq_length) float64; ``"y_test"``: (n_test,) int64;
        ``"t"``: (final_seq_length,) float64 time coordinates; ``"templates"``: as
        :func:`mnist1d_templates`. With the defaults n_train = 4000 and n_test = 1000.

    Notes
    -----
    A pure-NumPy port of ``mnist1d.data.make_dataset`` (package ``mnist1d`` 0.0.2). The official code
    seeds the legacy global stream with ``np.random.seed(seed)``; we draw the same numbers in the same
    order from a private ``np.random.RandomState(seed)``, so the global state is left alone. SciPy's
    ``interp1d`` and ``gaussian_filter`` are replaced by NumPy code that performs the same floating-point
    operations (see ``_interp_rows`` and ``_gaussian_filter_rows``), and the per-example loop is
    vectorized over examples except for the random draws. The result is bit-identical to the official
    dataset (checked in ``tests/data/test_datasets.py``).

    References
    ----------
    S. Greydanus, "Scaling down deep learning", arXiv:2011.14439, 2020.
    https://github.com/greydanus/mnist1d
    """
    low, high = padding
    if num_samples < 10:
        raise ValueError(f"{num_samples=} must be at least 10 (one example per digit)")
    if not 0.0 < train_split <= 1.0:
        raise ValueError(f"{train_split=} must be in (0, 1]")
    if not 0 <= low <= high:
        raise ValueError(f"{padding=} must be (low, high) with 0 <= low <= high")
    if max_translation < 1:
        raise ValueError(f"{max_translation=} must be at least 1")
    if final_seq_length < 2:
        raise ValueError(f"{final_seq_length=} must be at least 2")

    templates = mnist1d_templates()
    if templates["x"].shape[1] != template_len:
        raise ValueError(f"{template_len=} must equal the template length {templates['x'].shape[1]}")
    n_classes = templates["y"].size
    per_class = num_samples // n_classes
    n = per_class * n_classes
    length = template_len + high  # every example is dilated to this length
    labels = np.repeat(np.arange(n_classes), per_class)  # class-major, as the official loop

    # The draws interleave per example (pad, scale, shift, 2 noise vectors, shear); drawing them in
    # this loop keeps the legacy stream in the official order, and everything else is vectorized.
    # Consecutive draws of one kind are merged (rand(2) is rand() twice, randn(2L) is randn(L) twice:
    # the legacy stream is sequential), which halves the per-call overhead.
    rs = np.random.RandomState(seed)
    uniforms = np.empty((n, 3))  # pad, scale, shear
    shift = np.empty(n, dtype=np.int64)
    noise = np.empty((n, 2 * length))  # correlated-noise draws, then i.i.d.-noise draws
    for i in range(n):
        uniforms[i, :2] = rs.random_sample(2)
        shift[i] = rs.randint(0, max_translation)  # what legacy `choice(max_translation)` draws
        noise[i] = rs.standard_normal(2 * length)
        uniforms[i, 2] = rs.random_sample()
    u_pad, u_scale, u_shear = uniforms.T
    corr, iid = noise[:, :length], noise[:, length:]
    batch_shuffle = rs.permutation(n)
    seq_shuffle = rs.permutation(final_seq_length) if shuffle_seq else None

    # pad with p zeros, then dilate to `length` points; rows with the same p share a grid
    eps = 1e-8
    pads = low + (u_pad * (high - low + 1)).astype(np.int64)
    grid = np.linspace(0, 1, length)
    x = np.empty((n, length))
    for p in np.unique(pads):
        rows = np.flatnonzero(pads == p)
        padded = np.zeros((rows.size, template_len + p))
        padded[:, :template_len] = templates["x"][labels[rows]] + eps
        x[rows] = _interp_rows(np.linspace(0, 1, template_len + p), grid, padded)

    x *= (1 + scale_coeff * (u_scale - 0.5))[:, None]
    x = x[np.arange(n)[:, None], (np.arange(length) - shift[:, None]) % length]  # circular shift

    # background noise only where the signal is exactly zero (the padding); the official arithmetic
    # form mask * x + (1 - mask) * noise is kept so signed zeros match too
    mask = x != 0
    x = mask * x + (1 - mask) * _gaussian_filter_rows(corr_noise_scale * corr, 2)
    x = x + iid_noise_scale * iid
    x = x - (shear_scale * (u_shear - 0.5))[:, None] * np.linspace(-0.5, 0.5, length)
    x = _interp_rows(grid, np.linspace(0, 1, final_seq_length), x)

    t = np.interp(grid, np.linspace(0, 1, template_len), templates["t"])
    t = np.interp(np.linspace(0, 1, final_seq_length), grid, t)

    xs = x[batch_shuffle]
    ys = labels[batch_shuffle]
    if seq_shuffle is not None:
        xs = xs[..., seq_shuffle]
    t = t / xs.std()
    xs = (xs - xs.mean()) / xs.std()

    split = int(n * train_split)
    return {"x": xs[:split], "x_test": xs[split:], "y": ys[:split], "y_test": ys[split:],
            "t": t, "templates": templates}


def load_mnist1d(
    dtype: np.dtype | type = np.float32, seed: int = 42
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The standard MNIST-1D split as arrays ready for training.

    Parameters
    ----------
    dtype : numpy dtype
        Floating dtype of the inputs (float32 by default, float64 for gradient checks).
    seed : int
        Generator seed; 42 is the official dataset.

    Returns
    -------
    x_train : (4000, 40) `dtype`
    y_train : (4000,) int64
    x_test : (1000, 40) `dtype`
    y_test : (1000,) int64

    Notes
    -----
    Generated on every call with the default arguments of :func:`make_mnist1d`; it takes well under
    a second, so nothing is cached on disk.
    """
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise ValueError(f"{dtype=} must be a floating dtype")
    d = make_mnist1d(seed=seed)
    return d["x"].astype(dtype), d["y"], d["x_test"].astype(dtype), d["y_test"]


# --------------------------------------------------------------------------------------------------
# Toy sets
# --------------------------------------------------------------------------------------------------


def make_spiral(
    n_per_class: int = 100,
    n_classes: int = 3,
    noise: float = 0.2,
    rng: np.random.Generator | None = None,
    dtype: np.dtype | type = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """The interleaved-spiral toy set from CS231n ("Putting it together: a neural network case study").

    Class ``j`` has points at radius ``r = linspace(0, 1, n_per_class)`` and angle
    ``theta = linspace(4 j, 4 (j + 1), n_per_class) + noise * N(0, 1)``, placed at
    ``(r sin theta, r cos theta)``. Not linearly separable, so a linear classifier stalls near
    chance while a small MLP fits it.

    Parameters
    ----------
    n_per_class : int
        Points per class.
    n_classes : int
        Number of spiral arms.
    noise : float
        Std of the Gaussian noise on the angle (radians).
    rng : np.random.Generator, optional
        Source of the angle noise; the library default when None.
    dtype : numpy dtype
        Floating dtype of `X`.

    Returns
    -------
    X : (n_per_class * n_classes, 2) `dtype`
    y : (n_per_class * n_classes,) int64, class-major (all of class 0 first).

    References
    ----------
    A. Karpathy, CS231n notes, https://cs231n.github.io/neural-networks-case-study/
    """
    if n_per_class < 1:
        raise ValueError(f"{n_per_class=} must be at least 1")
    if n_classes < 1:
        raise ValueError(f"{n_classes=} must be at least 1")
    if noise < 0:
        raise ValueError(f"{noise=} must be non-negative")
    rng = resolve(rng)
    y = np.repeat(np.arange(n_classes, dtype=np.int64), n_per_class)
    r = np.tile(np.linspace(0.0, 1.0, n_per_class), n_classes)
    theta = np.concatenate([np.linspace(4.0 * j, 4.0 * (j + 1), n_per_class) for j in range(n_classes)])
    theta += noise * rng.standard_normal(theta.size)
    X = np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1).astype(dtype, copy=False)
    return X, y
