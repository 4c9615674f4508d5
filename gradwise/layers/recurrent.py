"""Recurrent layers: RNN (tanh or relu), LSTM and GRU, as in PyTorch; and TakeLast.

Parameter names, shapes, gate order, initialization and equations are PyTorch's, so a state dict
moves between a gradwise layer and the `torch.nn` one unchanged (`docs/recurrent.md`). What the
three share (stacked layers, both directions, dropout between layers, states, the matrix products
of backpropagation through time) is in `_rnn_base`; the time loops of each cell, forward and
backward side by side, are in `_rnn_cells`.

State handling
--------------
The layer protocol is ``forward(x)`` with one argument, so:

- ``forward(x)`` returns the output sequence only and starts from ``layer.h0`` (and ``layer.c0``
  for the LSTM), zeros when None; the final state is left in ``layer.h_n`` (and ``layer.c_n``).
- ``forward_with_state(x, hx)`` is the PyTorch call ``rnn(x, hx)``: it returns ``(out, h_n)``
  (``(out, (h_n, c_n))`` for the LSTM) and starts from ``hx`` (zeros when None).
- ``backward(grad_out, grad_h_n=None)`` (and ``grad_c_n=`` for the LSTM) accepts a gradient for the
  final state as well, and leaves the gradient of the initial state in ``layer.grad_h0`` (and
  ``layer.grad_c0``).
"""

from __future__ import annotations

import numpy as np

from gradwise.core import DEFAULT_DTYPE, Layer
from gradwise.layers._rnn_base import _Recurrent


class RNN(_Recurrent):
    """Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu.

    As `torch.nn.RNN` (names, shapes, init U(-1/sqrt(H), 1/sqrt(H)), equations); G = 1.

    Parameters
    ----------
    input_size : int
        Features per time step of the input.
    hidden_size : int
        H, features of the hidden state.
    num_layers : int
        Stacked layers; layer k > 0 reads the output sequence of layer k - 1.
    nonlinearity : {"tanh", "relu"}
        The activation act.
    bias : bool
        With False, no ``bias_ih_*`` / ``bias_hh_*`` parameters.
    batch_first : bool
        Input and output are (N, T, F) instead of (T, N, F); states are never batch-first.
    dropout : float
        Probability of dropping each output of every layer but the last, in training mode
        (inverted dropout, as torch). The masks come from ``rng``.
    bidirectional : bool
        Add a reverse direction (parameters suffixed ``_reverse``); D = 2.
    rng : np.random.Generator, optional
        Source of the initial weights and of the dropout masks; the library default when None.
    dtype : numpy floating dtype
        float32 unless asked otherwise.

    Attributes
    ----------
    h0 : np.ndarray or None
        Initial state used by `forward` (zeros when None). Set it to carry state across batches
        (``layer.h0 = layer.h_n``: truncated BPTT, no gradient flows across).
    h_n : np.ndarray
        Final state of every layer and direction after a forward.
    grad_h0 : np.ndarray
        dL/dh0 after a backward.

    Shapes
    ------
    x : (T, N, input_size), or (N, T, input_size) with ``batch_first``.
    output : (T, N, D * H), or (N, T, D * H) with ``batch_first``; last axis [forward | reverse].
    h0, h_n, grad_h0 : (num_layers * D, N, H); row ``k * D + d`` is layer k, direction d.
    weight_ih_l{k}[_reverse] : (G * H, input_size) for k = 0, (G * H, D * H) for k > 0.
    weight_hh_l{k}[_reverse] : (G * H, H); bias_ih_l{k}, bias_hh_l{k}[_reverse] : (G * H,).

    References
    ----------
    Elman (1990), "Finding structure in time"; `torch.nn.RNN`. See docs/recurrent.md.
    """

    _mode = "RNN"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        rng: np.random.Generator | None = None,
        dtype: type | np.dtype = DEFAULT_DTYPE,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: {nonlinearity=} must be 'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, rng, dtype)
        self.nonlinearity = nonlinearity
        self._relu = nonlinearity == "relu"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._run(x, self.h0, None)[0]

    def forward_with_state(self, x: np.ndarray, hx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """PyTorch's ``rnn(x, hx)``: ``(output, h_n)``, starting from `hx` (zeros when None)."""
        out, h_n, _ = self._run(x, hx, None)
        return out, h_n

    def backward(
        self, grad_out: np.ndarray | None, grad_h_n: np.ndarray | None = None, *, input_grad: bool = True
    ) -> np.ndarray | None:
        """dL/dx from dL/doutput and, optionally, dL/dh_n (either may be None: zero).

        With ``input_grad=False``, only the parameters' gradients (and `grad_h0`) are computed
        and None is returned.
        """
        return self._backprop(grad_out, grad_h_n, None, input_grad)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else ", nonlinearity='relu'")


class LSTM(_Recurrent):
    """Long short-term memory, as `torch.nn.LSTM`; gates stacked i, f, g, o (G = 4)::

        [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    Parameters
    ----------
    input_size : int
        Features per time step of the input.
    hidden_size : int
        H, features of the hidden state.
    num_layers : int
        Stacked layers; layer k > 0 reads the output sequence of layer k - 1.
    bias : bool
        With False, no ``bias_ih_*`` / ``bias_hh_*`` parameters.
    batch_first : bool
        Input and output are (N, T, F) instead of (T, N, F); states are never batch-first.
    dropout : float
        Probability of dropping each output of every layer but the last, in training mode
        (inverted dropout, as torch). The masks come from ``rng``.
    bidirectional : bool
        Add a reverse direction (parameters suffixed ``_reverse``); D = 2.
    rng : np.random.Generator, optional
        Source of the initial weights and of the dropout masks; the library default when None.
    dtype : numpy floating dtype
        float32 unless asked otherwise.

    Attributes
    ----------
    h0, c0 : np.ndarray or None
        Initial states used by `forward` (zeros when None).
    h_n, c_n : np.ndarray
        Final states after a forward.
    grad_h0, grad_c0 : np.ndarray
        dL/dh0 and dL/dc0 after a backward.

    Shapes
    ------
    x : (T, N, input_size), or (N, T, input_size) with ``batch_first``.
    output : (T, N, D * H), or (N, T, D * H) with ``batch_first``; last axis [forward | reverse].
    h0, h_n, grad_h0 : (num_layers * D, N, H); row ``k * D + d`` is layer k, direction d.
    weight_ih_l{k}[_reverse] : (G * H, input_size) for k = 0, (G * H, D * H) for k > 0.
    weight_hh_l{k}[_reverse] : (G * H, H); bias_ih_l{k}, bias_hh_l{k}[_reverse] : (G * H,).
    c0, c_n, grad_c0 : as h0.

    References
    ----------
    Hochreiter & Schmidhuber (1997); the forget gate of Gers, Schmidhuber & Cummins (2000);
    `torch.nn.LSTM` (no ``proj_size``). See docs/recurrent.md.
    """

    _mode = "LSTM"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        rng: np.random.Generator | None = None,
        dtype: type | np.dtype = DEFAULT_DTYPE,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, rng, dtype)
        self.c0: np.ndarray | None = None
        self.c_n: np.ndarray | None = None
        self.grad_c0: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._run(x, self.h0, self.c0)[0]

    def forward_with_state(
        self, x: np.ndarray, hx: tuple[np.ndarray | None, np.ndarray | None] | None = None
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """PyTorch's ``lstm(x, (h0, c0))``: ``(output, (h_n, c_n))``; zeros for a None state."""
        h0, c0 = (None, None) if hx is None else hx
        out, h_n, c_n = self._run(x, h0, c0)
        return out, (h_n, c_n)

    def backward(
        self,
        grad_out: np.ndarray | None,
        grad_h_n: np.ndarray | None = None,
        grad_c_n: np.ndarray | None = None,
        *,
        input_grad: bool = True,
    ) -> np.ndarray | None:
        """dL/dx from dL/doutput and, optionally, dL/dh_n and dL/dc_n (None: zero).

        With ``input_grad=False``, only the parameters' gradients (and `grad_h0`, `grad_c0`)
        are computed and None is returned.
        """
        return self._backprop(grad_out, grad_h_n, grad_c_n, input_grad)


class GRU(_Recurrent):
    """Gated recurrent unit, as `torch.nn.GRU`; gates stacked r, z, n (G = 3)::

        r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    The reset gate multiplies W_hn h + b_hn, after the matrix product, as PyTorch and cuDNN do.
    Cho et al. (2014) apply it before: n = tanh(W_in x + U_n (r * h)); the two are different
    functions (docs/recurrent.md).

    Parameters
    ----------
    input_size : int
        Features per time step of the input.
    hidden_size : int
        H, features of the hidden state.
    num_layers : int
        Stacked layers; layer k > 0 reads the output sequence of layer k - 1.
    bias : bool
        With False, no ``bias_ih_*`` / ``bias_hh_*`` parameters.
    batch_first : bool
        Input and output are (N, T, F) instead of (T, N, F); states are never batch-first.
    dropout : float
        Probability of dropping each output of every layer but the last, in training mode
        (inverted dropout, as torch). The masks come from ``rng``.
    bidirectional : bool
        Add a reverse direction (parameters suffixed ``_reverse``); D = 2.
    rng : np.random.Generator, optional
        Source of the initial weights and of the dropout masks; the library default when None.
    dtype : numpy floating dtype
        float32 unless asked otherwise.

    Attributes
    ----------
    h0 : np.ndarray or None
        Initial state used by `forward` (zeros when None).
    h_n : np.ndarray
        Final state after a forward.
    grad_h0 : np.ndarray
        dL/dh0 after a backward.

    Shapes
    ------
    x : (T, N, input_size), or (N, T, input_size) with ``batch_first``.
    output : (T, N, D * H), or (N, T, D * H) with ``batch_first``; last axis [forward | reverse].
    h0, h_n, grad_h0 : (num_layers * D, N, H); row ``k * D + d`` is layer k, direction d.
    weight_ih_l{k}[_reverse] : (G * H, input_size) for k = 0, (G * H, D * H) for k > 0.
    weight_hh_l{k}[_reverse] : (G * H, H); bias_ih_l{k}, bias_hh_l{k}[_reverse] : (G * H,).

    References
    ----------
    Cho et al. (2014), "Learning phrase representations using RNN encoder-decoder for
    statistical machine translation"; `torch.nn.GRU`. See docs/recurrent.md.
    """

    _mode = "GRU"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        rng: np.random.Generator | None = None,
        dtype: type | np.dtype = DEFAULT_DTYPE,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, rng, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._run(x, self.h0, None)[0]

    def forward_with_state(self, x: np.ndarray, hx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """PyTorch's ``gru(x, hx)``: ``(output, h_n)``, starting from `hx` (zeros when None)."""
        out, h_n, _ = self._run(x, hx, None)
        return out, h_n

    def backward(
        self, grad_out: np.ndarray | None, grad_h_n: np.ndarray | None = None, *, input_grad: bool = True
    ) -> np.ndarray | None:
        """dL/dx from dL/doutput and, optionally, dL/dh_n (either may be None: zero).

        With ``input_grad=False``, only the parameters' gradients (and `grad_h0`) are computed
        and None is returned.
        """
        return self._backprop(grad_out, grad_h_n, None, input_grad)


class TakeLast(Layer):
    """The last time step of a sequence: (N, T, F) -> (N, F), to put a classifier on an RNN.

    Parameters
    ----------
    batch_first : bool
        Input is (N, T, F) (True, the default) or (T, N, F).
    bidirectional : bool
        The features are [forward | reverse] halves, as a bidirectional RNN/LSTM/GRU outputs.
        Then the forward half is taken at the last step and the reverse half at the *first*:
        each direction's final state, what PyTorch users get with
        ``torch.cat((h_n[-2], h_n[-1]), dim=1)``. (The reverse half at the last step has seen
        only one input.) With False, ``x[:, -1]``.

    Shapes
    ------
    x : (N, T, F) or (T, N, F) -> (N, F).
    """

    def __init__(self, batch_first: bool = True, bidirectional: bool = False) -> None:
        super().__init__()
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[1 if self.batch_first else 0] == 0:
            layout = "(N, T, F)" if self.batch_first else "(T, N, F)"
            raise ValueError(f"TakeLast: expected a non-empty sequence {layout}, got shape {x.shape}")
        if self.bidirectional and x.shape[2] % 2:
            raise ValueError(
                f"TakeLast(bidirectional=True): input of shape {x.shape} has an odd number of features, "
                "not [forward | reverse] halves"
            )
        self._shape = x.shape
        seq = x.transpose(1, 0, 2) if self.batch_first else x  # (T, N, F) view
        if not self.bidirectional:
            return seq[-1].copy()
        half = x.shape[2] // 2
        return np.concatenate((seq[-1, :, :half], seq[0, :, half:]), axis=1)

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if self._shape is None:
            raise self.no_cache_error()
        shape, self._shape = self._shape, None
        if not input_grad:
            return None
        grad = np.zeros(shape, dtype=grad_out.dtype)
        seq = grad.transpose(1, 0, 2) if self.batch_first else grad
        if not self.bidirectional:
            seq[-1] = grad_out
        else:
            half = shape[2] // 2
            seq[-1, :, :half] = grad_out[:, :half]
            seq[0, :, half:] = grad_out[:, half:]
        return grad

    def extra_repr(self) -> str:
        return f"batch_first={self.batch_first}, bidirectional={self.bidirectional}"
