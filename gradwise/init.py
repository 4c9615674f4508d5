"""Weight initialization.

Every initializer has the signature ``init(shape, rng) -> np.ndarray`` (float64; the layer casts to
its dtype), so any callable of that shape, e.g. ``functools.partial(kaiming_normal, nonlinearity="tanh")``,
can be passed as a layer's ``init=``. Fans follow PyTorch: for a weight of shape ``(out, in, *k)``,
``fan_in = in * prod(k)`` and ``fan_out = out * prod(k)``.

References: Glorot & Bengio (2010); He et al. (2015), "Delving deep into rectifiers"; LeCun et al.
(1998), "Efficient BackProp"; Saxe et al. (2014) for orthogonal matrices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Union

import numpy as np

Shape = tuple[int, ...]
Initializer = Callable[[Shape, np.random.Generator], np.ndarray]
InitChoice = Union[str, Initializer]


def fans(shape: Shape) -> tuple[int, int]:
    """`(fan_in, fan_out)` of a weight of shape `(out, in, *kernel)`, PyTorch's convention."""
    if len(shape) < 2:
        raise ValueError(f"fans need a weight with at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table).

    linear/conv*/sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 + a^2)) with
    slope `a` (default 0.01); selu: 3/4.
    """
    if nonlinearity in (
        "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid"
    ):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + a * a))
    if nonlinearity == "selu":
        return 0.75
    raise ValueError(
        f"{nonlinearity=} is not one of linear, conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, "
        "conv_transpose3d, sigmoid, tanh, relu, leaky_relu, selu"
    )


def _fan(shape: Shape, mode: str) -> int:
    fan_in, fan_out = fans(shape)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"{mode=} must be 'fan_in' or 'fan_out'")


def zeros(shape: Shape, rng: np.random.Generator | None = None) -> np.ndarray:
    return np.zeros(shape)


def ones(shape: Shape, rng: np.random.Generator | None = None) -> np.ndarray:
    return np.ones(shape)


def normal(shape: Shape, rng: np.random.Generator, mean: float = 0.0, std: float = 0.01) -> np.ndarray:
    """N(mean, std^2); the 0.01 default is the small-random-numbers recipe of CS231n."""
    return rng.normal(mean, std, size=shape)


def uniform(shape: Shape, rng: np.random.Generator, a: float = 0.0, b: float = 1.0) -> np.ndarray:
    return rng.uniform(a, b, size=shape)


def xavier_uniform(shape: Shape, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape)


def xavier_normal(shape: Shape, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return rng.normal(0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def kaiming_uniform(
    shape: Shape, rng: np.random.Generator, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> np.ndarray:
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al., 2015).

    `a` is the negative slope of the leaky ReLU that follows; with the defaults (a = 0,
    "leaky_relu") the gain is sqrt(2), the ReLU value, as in PyTorch.
    """
    gain = calculate_gain(nonlinearity, a)
    bound = gain * math.sqrt(3.0 / _fan(shape, mode))
    return rng.uniform(-bound, bound, size=shape)


def kaiming_normal(
    shape: Shape, rng: np.random.Generator, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> np.ndarray:
    """N(0, std^2) with std = gain / sqrt(fan) (He et al., 2015)."""
    gain = calculate_gain(nonlinearity, a)
    return rng.normal(0.0, gain / math.sqrt(_fan(shape, mode)), size=shape)


def lecun_uniform(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """U(-b, b) with b = sqrt(3 / fan_in): variance 1 / fan_in (LeCun et al., 1998)."""
    bound = math.sqrt(3.0 / fans(shape)[0])
    return rng.uniform(-bound, bound, size=shape)


def lecun_normal(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """N(0, 1 / fan_in) (LeCun et al., 1998). Keras truncates this normal; we do not."""
    return rng.normal(0.0, math.sqrt(1.0 / fans(shape)[0]), size=shape)


def orthogonal(shape: Shape, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian one (Saxe et al., 2014).

    Trailing dimensions are flattened: the result viewed as `(shape[0], prod(shape[1:]))` has
    orthonormal rows or columns. The signs of R's diagonal are folded into Q so the distribution is
    uniform (Haar), as PyTorch does.
    """
    if len(shape) < 2:
        raise ValueError(f"orthogonal needs at least 2 dimensions, got shape {shape}")
    rows = shape[0]
    cols = int(np.prod(shape[1:]))
    flat = rng.normal(0.0, 1.0, size=(rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return gain * q.reshape(shape)


def torch_default(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """PyTorch's default for Linear and Conv weights: kaiming_uniform with a = sqrt(5),
    which works out to U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return kaiming_uniform(shape, rng, a=math.sqrt(5.0), nonlinearity="leaky_relu")


# The names a layer's `init=` accepts. Kept here, next to the functions, because `init=` is part of
# every layer's public signature (as in Keras); the CLI uses the same names.
NAMED: dict[str, Initializer] = {
    "default": torch_default,
    "zeros": zeros,
    "normal": normal,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "glorot_uniform": xavier_uniform,
    "glorot_normal": xavier_normal,
    "kaiming_uniform": kaiming_uniform,
    "kaiming_normal": kaiming_normal,
    "he_uniform": kaiming_uniform,
    "he_normal": kaiming_normal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
    "orthogonal": orthogonal,
}


def resolve(init: InitChoice) -> Initializer:
    """The initializer named by `init`, or `init` itself when it is callable."""
    if callable(init):
        return init
    try:
        return NAMED[init]
    except KeyError:
        raise ValueError(f"{init=} is not an initializer; choose one of {sorted(NAMED)} or pass a callable") from None


def init_weight(init: InitChoice, shape: Shape, rng: np.random.Generator, dtype: np.dtype | type) -> np.ndarray:
    """Draw a weight of `shape` with initializer `init` and cast it to `dtype`."""
    w = np.asarray(resolve(init)(shape, rng))
    if w.shape != tuple(shape):
        raise ValueError(f"initializer {init!r} returned shape {w.shape}, expected {tuple(shape)}")
    return w.astype(dtype)


def default_bias(fan_in: int, size: int, rng: np.random.Generator, dtype: np.dtype | type) -> np.ndarray:
    """PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=size).astype(dtype)
