"""What RNN, LSTM and GRU share: parameters, stacked layers, both directions, dropout between
layers, the initial and final states, and the parts of backpropagation through time that are a
single matrix product over all time steps. The time loops themselves are in `_rnn_cells`.

Per layer and direction, the forward is

1. ``xs = W_ih x + biases`` for all T steps at once (one matrix product);
2. the recurrence over time (`_rnn_cells`), the only loop;

and the backward, given the pre-activation gradients ``dxs`` and ``dhg`` from the loop,

    dW_ih = sum_t dxs_t x_t^T       dW_hh = sum_t dhg_t h_{t-1}^T       dx_t = W_ih^T dxs_t

each one matrix product over the T * N columns of the stacked steps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gradwise.core import Layer, Parameter
from gradwise.layers import _rnn_cells as cells
from gradwise.random import resolve as _resolve_rng

_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


class _Recurrent(Layer):
    """PyTorch's `RNNBase`: the machinery of `RNN`, `LSTM` and `GRU` (see those classes)."""

    _mode = "RNN"
    c_n: np.ndarray | None  # LSTM only
    grad_c0: np.ndarray | None  # LSTM only

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        rng: np.random.Generator | None,
        dtype: type | np.dtype,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for key, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: {key}={value!r} must be a positive integer")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{name}: {dropout=} must be a number in [0, 1]")
        if not np.issubdtype(np.dtype(dtype), np.floating):
            raise ValueError(f"{name}: {dtype=} must be a floating dtype")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self._relu = False  # RNN(nonlinearity="relu") sets it
        # Initial weights and the dropout masks between layers; gradient checks rewind `rng`.
        self.rng = _resolve_rng(rng)
        gh = _GATES[self._mode] * self.hidden_size
        bound = 1.0 / math.sqrt(self.hidden_size)  # torch: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))
        # Registered in torch's order: per layer, per direction, weight_ih, weight_hh, bias_ih, bias_hh.
        self._cells: list[list[tuple[Parameter, ...]]] = []
        for layer in range(self.num_layers):
            fan_in = self.input_size if layer == 0 else self.num_directions * self.hidden_size
            directions = []
            for d in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if d == 1 else "")
                shapes: list[tuple[str, tuple[int, ...]]] = [
                    ("weight_ih", (gh, fan_in)),
                    ("weight_hh", (gh, self.hidden_size)),
                ]
                if self.bias:
                    shapes += [("bias_ih", (gh,)), ("bias_hh", (gh,))]
                params = []
                for pname, shape in shapes:
                    p = Parameter(self.rng.uniform(-bound, bound, size=shape).astype(dtype))
                    setattr(self, pname + suffix, p)
                    params.append(p)
                directions.append(tuple(params))
            self._cells.append(directions)
        self.h0: np.ndarray | None = None
        self.h_n: np.ndarray | None = None
        self.grad_h0: np.ndarray | None = None
        self._cache: list[dict[str, Any]] | None = None
        self._steps: tuple[int, int] | None = None
        self._work: dict[tuple[int, str], np.ndarray] = {}

    def _buffer(self, layer: int, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialized work array, the same one on every call while its shape is unchanged.

        Reusing them matters: fresh arrays of this size come from mmap, and touching their pages
        for the first time made a whole MNIST-1D GRU step twice as slow. Only internal arrays
        (the cache of one forward, temporaries of one backward) live here; outputs are always new.
        """
        key = (layer, name)
        buf = self._work.get(key)
        if buf is None or buf.shape != shape or buf.dtype != self.dtype:
            buf = self._work[key] = np.empty(shape, dtype=self.dtype)
        return buf

    def _workspace(self, layer: int) -> cells.Buffers:
        return lambda name, shape: self._buffer(layer, name, shape)

    # ------------------------------------------------------------------------------------ checks
    def _signature(self) -> str:
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size})"

    def _layout(self, features: int | str) -> str:
        return f"(N, T, {features})" if self.batch_first else f"(T, N, {features})"

    def _check_input(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 3:
            raise ValueError(
                f"{self._signature()}: expected a sequence of rank 3, {self._layout(self.input_size)} "
                f"(batch_first={self.batch_first}), got rank {x.ndim}, shape {x.shape}"
            )
        if x.shape[2] != self.input_size:
            raise ValueError(
                f"{self._signature()}: input of shape {x.shape} has {x.shape[2]} features per step, "
                f"expected {self._layout(self.input_size)}"
            )
        if x.shape[1 if self.batch_first else 0] == 0:
            raise ValueError(f"{self._signature()}: input of shape {x.shape} has no time steps")
        return x

    def _check_state(self, what: str, state: Any, batch: int) -> np.ndarray:
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if state is None:
            return np.zeros(shape, dtype=self.dtype)
        state = np.asarray(state, dtype=self.dtype)
        if state.shape != shape:
            raise ValueError(
                f"{self._signature()}: {what} of shape {state.shape} does not match the expected shape "
                f"{shape} = (num_layers * num_directions, N, hidden_size)"
            )
        return state

    # ----------------------------------------------------------------------------------- forward
    def _run(self, x: Any, h0: Any, c0: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forward through every layer: (output, h_n, c_n), c_n only meaningful for the LSTM.

        Caches what `_backprop` needs and sets ``h_n`` (and ``c_n``).
        """
        x = self._check_input(x)
        seq = x.transpose(1, 0, 2) if self.batch_first else x  # (T, N, F) view
        t, n, _ = seq.shape
        lstm = self._mode == "LSTM"
        h0 = self._check_state("h0", h0, n)
        c0 = self._check_state("c0", c0, n) if lstm else h0
        dd, hid = self.num_directions, self.hidden_size
        scale = cells.pre_scale(self._mode, hid)
        if scale is not None:
            scale = scale.astype(self.dtype)[:, None]
        h_n = np.empty_like(h0)
        c_n = np.empty_like(h0) if lstm else h_n
        self._cache = []
        inp = np.ascontiguousarray(seq)
        for layer, directions in enumerate(self._cells):
            mask = None
            if layer > 0 and self.training and self.dropout > 0:
                # Inverted dropout on the previous layer's output (none after the last, as torch).
                mask = self._dropout_mask(inp.shape)
                inp = inp * mask
            rows = slice(layer * dd, (layer + 1) * dd)
            buf = self._workspace(layer)
            x2 = inp.reshape(t * n, inp.shape[2])
            gh = directions[0][0].shape[0]
            # Input projections of every step and both directions: one matrix product.
            w_ih = np.concatenate([p[0].data for p in directions])  # (D*GH, F)
            b = np.concatenate([self._input_bias(p) for p in directions])
            if scale is not None:
                w_ih, b = w_ih * np.tile(scale, (dd, 1)), b * np.tile(scale[:, 0], dd)
            # With one input feature this is an outer product, which a broadcast multiplication
            # computes about 25x faster than OpenBLAS's sgemm with an inner dimension of 1.
            proj = buf("proj", (dd * gh, t * n))
            (np.matmul if x2.shape[1] > 1 else np.multiply)(w_ih, x2.T, out=proj)
            proj = proj.reshape(dd, gh, t, n)
            xs = buf("xs", (t, dd, gh, n))
            for d in range(dd):
                # The reverse direction is stored in its own step order, t = T-1-s.
                order = slice(None, None, -1) if d == 1 else slice(None)
                np.add(proj[d].transpose(1, 0, 2)[order], b[d * gh : (d + 1) * gh, None], out=xs[:, d])
            w = np.stack([p[1].data if scale is None else p[1].data * scale for p in directions])
            h0_l = np.ascontiguousarray(h0[rows].transpose(0, 2, 1))  # (D, H, N)
            cell_cache: Any
            if self._mode == "GRU":
                hs, cell_cache = cells.gru_forward(xs, h0_l, w, self._gru_b_hn(directions), buf)
            elif lstm:
                c0_l = np.ascontiguousarray(c0[rows].transpose(0, 2, 1))
                hs, cs, cell_cache = cells.lstm_forward(xs, h0_l, c0_l, w, buf)
                c_n[rows] = cs[t].transpose(0, 2, 1)
            else:
                hs = cell_cache = cells.rnn_forward(xs, h0_l, w, self._relu, buf)
            h_n[rows] = hs[t].transpose(0, 2, 1)
            last = layer == self.num_layers - 1
            out = np.empty((n, t, dd * hid) if last and self.batch_first else (t, n, dd * hid), dtype=self.dtype)
            view = out.transpose(1, 0, 2) if last and self.batch_first else out  # (T, N, D*H)
            view[..., :hid] = hs[1:, 0].transpose(0, 2, 1)
            if dd == 2:
                view[..., hid:] = hs[:0:-1, 1].transpose(0, 2, 1)  # back to time order
            self._cache.append({"x2": x2, "hs": hs, "cell": cell_cache, "mask": mask})
            inp = out
        self.h_n = h_n
        if lstm:
            self.c_n = c_n
        self._steps = (t, n)
        return inp, h_n, c_n

    def _input_bias(self, params: tuple[Parameter, ...]) -> np.ndarray:
        """Biases that add to W_ih x: b_ih + b_hh, except GRU's b_hn (the reset gate scales it)."""
        if not self.bias:
            return np.zeros(params[0].shape[0], dtype=self.dtype)
        b = params[2].data + params[3].data
        if self._mode == "GRU":
            b[2 * self.hidden_size :] = params[2].data[2 * self.hidden_size :]
        return b

    def _gru_b_hn(self, directions: list[tuple[Parameter, ...]]) -> np.ndarray:
        """b_hn of each direction as (D, H, 1)."""
        if not self.bias:
            return np.zeros((len(directions), self.hidden_size, 1), dtype=self.dtype)
        return np.stack([p[3].data[2 * self.hidden_size :] for p in directions])[:, :, None]

    def _dropout_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        if self.dropout >= 1.0:
            return np.zeros(shape, dtype=self.dtype)
        draw = self.dtype if self.dtype in (np.float32, np.float64) else np.float64
        mask = self.rng.random(shape, dtype=draw)
        np.greater_equal(mask, mask.dtype.type(self.dropout), out=mask)
        mask *= mask.dtype.type(1.0 / (1.0 - self.dropout))
        return mask.astype(self.dtype, copy=False)

    # ---------------------------------------------------------------------------------- backward
    def _backprop(self, grad_out: Any, grad_h_n: Any, grad_c_n: Any, input_grad: bool = True) -> np.ndarray | None:
        """BPTT through every layer, top to bottom; adds to the parameters' gradients.

        Without `input_grad` the bottom layer's dL/dx product is skipped and None returned.
        """
        if self._cache is None or self._steps is None:
            raise self.no_cache_error()
        t, n = self._steps
        dd, hid = self.num_directions, self.hidden_size
        out_shape = (n, t, dd * hid) if self.batch_first else (t, n, dd * hid)
        g: np.ndarray | None = None
        if grad_out is not None:
            g = np.asarray(grad_out, dtype=self.dtype)
            if g.shape != out_shape:
                raise ValueError(
                    f"{self._signature()}.backward: grad_out of shape {g.shape} does not match the "
                    f"output shape {out_shape}"
                )
            if self.batch_first:
                g = g.transpose(1, 0, 2)  # (T, N, D*H) view
        lstm = self._mode == "LSTM"
        dh_n = self._check_state("grad_h_n", grad_h_n, n)
        dc_n = self._check_state("grad_c_n", grad_c_n, n) if lstm else dh_n
        grad_h0 = np.empty_like(dh_n)
        grad_c0 = np.empty_like(dh_n) if lstm else grad_h0
        cache, self._cache, self._steps = self._cache, None, None
        for layer in range(self.num_layers - 1, -1, -1):
            directions, c = self._cells[layer], cache[layer]
            rows = slice(layer * dd, (layer + 1) * dd)
            buf = self._workspace(layer)
            dout = None
            if g is not None:
                dout = buf("dout", (t, dd, hid, n))
                dout[:, 0] = g[..., :hid].transpose(0, 2, 1)
                if dd == 2:
                    dout[:, 1] = g[::-1, :, hid:].transpose(0, 2, 1)  # the reverse direction's step order
            w_t = np.stack([p[1].data.T for p in directions])
            dh_n_l = np.ascontiguousarray(dh_n[rows].transpose(0, 2, 1))
            if self._mode == "GRU":
                dxs, dhg, dh0 = cells.gru_backward(c["cell"], w_t, dout, dh_n_l, buf)
            elif lstm:
                dc_n_l = np.ascontiguousarray(dc_n[rows].transpose(0, 2, 1))
                dxs, dhg, dh0, dc0 = cells.lstm_backward(c["cell"], w_t, dout, dh_n_l, dc_n_l, buf)
                grad_c0[rows] = dc0.transpose(0, 2, 1)
            else:
                dxs, dhg, dh0 = cells.rnn_backward(c["cell"], self._relu, w_t, dout, dh_n_l, buf)
            grad_h0[rows] = dh0.transpose(0, 2, 1)
            # Steps side by side as columns, (D, GH, T*N), in time order (the reverse direction's
            # step order flipped): then each weight gradient and dL/dx is one matrix product.
            x2, hs = c["x2"], c["hs"]
            gh = dxs.shape[2]
            dx_cols = buf("dx_cols", (dd, gh, t, n))
            dh_cols = dx_cols if dhg is dxs else buf("dh_cols", (dd, gh, t, n))
            h_cols = buf("h_cols", (dd, hid, t, n))
            for d in range(dd):
                order = slice(None, None, -1) if d == 1 else slice(None)
                dx_cols[d] = dxs[order, d].transpose(1, 0, 2)
                if dhg is not dxs:
                    dh_cols[d] = dhg[order, d].transpose(1, 0, 2)
                h_cols[d] = hs[:t][order, d].transpose(1, 0, 2)  # h_{t-1} of each step
            dx_cols, dh_cols = dx_cols.reshape(dd, gh, t * n), dh_cols.reshape(dd, gh, t * n)
            w_ih = np.concatenate([p[0].data for p in directions])
            if any(p.requires_grad for params in directions for p in params):  # frozen: skip the work
                dw_ih = dx_cols.reshape(dd * gh, t * n) @ x2  # dL/dW_ih = sum_t dxs_t x_t^T
                dw_hh = np.matmul(dh_cols, h_cols.reshape(dd, hid, t * n).transpose(0, 2, 1))
                db_ih = dx_cols.sum(axis=2)
                db_hh = db_ih if dhg is dxs else dh_cols.sum(axis=2)
                for d, params in enumerate(directions):
                    grads = [dw_ih[d * gh : (d + 1) * gh], dw_hh[d]] + ([db_ih[d], db_hh[d]] if self.bias else [])
                    for p, grad in zip(params, grads):
                        if p.requires_grad:
                            p.add_grad(grad)
            if layer == 0 and not input_grad:
                g = None
                break
            gx = dx_cols.reshape(dd * gh, t * n).T @ w_ih  # dL/dx_t = sum_d W_ih^T dxs_t
            gx = gx.reshape(t, n, w_ih.shape[1])
            if c["mask"] is not None:
                gx *= c["mask"]
            g = gx
        self.grad_h0 = grad_h0
        if lstm:
            self.grad_c0 = grad_c0
        if g is None:  # not input_grad
            return None
        return np.ascontiguousarray(g.transpose(1, 0, 2)) if self.batch_first else g

    # ------------------------------------------------------------------------------------ display
    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    def flops(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
        """``2 * G * H * (F_l + H) * T * N`` per layer l and direction (G gates: 1, 4, 3 for RNN, LSTM, GRU).

        F_0 = input_size and F_l = D * H above; the input is (N, T, F) when `batch_first`, else
        (T, N, F). The input-to-hidden and hidden-to-hidden products of every step are counted
        (see docs/summary.md).
        """
        t, n = (input_shape[1], input_shape[0]) if self.batch_first else (input_shape[0], input_shape[1])
        h, d = self.hidden_size, self.num_directions
        gh = getattr(self, "weight_hh_l0").shape[0]  # G * H  # noqa: B009 (registered dynamically)
        total = 0
        for k in range(self.num_layers):
            f = self.input_size if k == 0 else d * h
            total += d * 2 * gh * (f + h) * t * n
        return total
