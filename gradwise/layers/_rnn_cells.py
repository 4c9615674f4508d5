"""The time loops of the recurrent layers: one forward and one backward per cell, side by side.

`gradwise.layers._rnn_base` does everything the three cells share (layers, directions, the
input projections and the weight gradients, which are single matrix products over all time
steps); what is left here is the part that cannot be vectorized over time: the recurrence
h_{t-1} -> h_t and, in backward, dL/dh_t -> dL/dh_{t-1}.

Layout
------
Both directions of a layer run in the same loop: step ``s`` of direction 0 reads time ``t = s``,
step ``s`` of direction 1 (reverse) reads ``t = T - 1 - s``. Arrays are indexed
``[step, direction, feature, batch]``: one step of all directions is one contiguous block, and
within it each gate is a contiguous (H, N) slab, so a NumPy call per step covers both directions
and whole gates, never rows of a few elements (a (N, G*H) layout would make every gate slice a
strided view with N pieces of H elements, several times slower for small H)::

    xs     (T, D, G*H, N)   input pre-activations W_ih x_t + biases, in step order
    w      (D, G*H, H)      W_hh of each direction (forward: a = W_hh h)
    w_t    (D, H, G*H)      W_hh^T of each direction (backward: dh = W_hh^T da)
    hs     (T+1, D, H, N)   hidden states, hs[0] = h0; hs[s+1] is the output of step s
    dout   (T, D, H, N)     dL/d(output) in step order (gradient from the layers above), or None
    dh_n   (D, H, N)        dL/dh_n (gradient from whoever uses the final state)

Sigmoid gates are evaluated as ``sigmoid(a) = (1 + tanh(a / 2)) / 2`` (exact; one transcendental
call, and no overflow warning for large |a|). The caller folds the 1/2 into the rows of the
weights and biases that feed sigmoid gates (`pre_scale`), so the forward loops receive a/2 for
those gates and a for the others.

Large arrays come from ``buf(name, shape)``, which returns an uninitialized array of the layer's
dtype, the same one on every call while the shape is unchanged (see `_Recurrent._buffer`): a
fresh array of a few hundred kilobytes comes from mmap and costs a page fault per 4 KiB on first
touch, which made a whole MNIST-1D GRU step twice as slow. So every temporary below is written
with ``out=`` into such a buffer.

Every backward returns ``dxs``, the gradient of the loss with respect to ``xs`` (the unscaled
pre-activations fed by the input), ``dhg``, the gradient with respect to the recurrent term
``W_hh h_{s-1} + b_hh`` (the same array as ``dxs`` except for the GRU, whose reset gate scales
the recurrent part of its candidate), and the gradient with respect to the initial state(s).

BPTT in a few calls per step
----------------------------
The backward of every cell is linear in the incoming gradient dL/dh_t, with coefficients that
depend only on forward values. Those coefficients (``k*`` below: gate values times activation
derivatives) are computed for all steps at once before the loop, and each step is then a handful
of element-wise products and one matrix product.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Buffers = Callable[[str, tuple[int, ...]], np.ndarray]


def pre_scale(mode: str, hidden_size: int) -> np.ndarray | None:
    """Factor for each gate row of the forward weights: 1/2 for sigmoid gates, 1 for tanh gates."""
    if mode == "RNN":
        return None
    half, one = np.full(hidden_size, 0.5), np.ones(hidden_size)
    if mode == "LSTM":
        return np.concatenate([half, half, one, half])  # i, f, g, o
    return np.concatenate([half, half, one])  # r, z, n


def _sigmoid_from_half(a: np.ndarray) -> None:
    """In place: a holds x/2 and becomes sigmoid(x) = (1 + tanh(x/2)) / 2."""
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5


def _gates(a: np.ndarray, pieces: int) -> np.ndarray:
    """View (..., pieces * H, N) as (..., pieces, H, N): one call covers several gates."""
    return a.reshape(*a.shape[:-2], pieces, a.shape[-2] // pieces, a.shape[-1])


# ------------------------------------------------------------------------------------------ Elman


def rnn_forward(xs: np.ndarray, h0: np.ndarray, w: np.ndarray, relu: bool, buf: Buffers) -> np.ndarray:
    """h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu (Elman, 1990).

    Returns ``hs`` (T+1, D, H, N), which is also the cache for `rnn_backward`.
    """
    t = xs.shape[0]
    hs = buf("hs", (t + 1, *h0.shape))
    hs[0] = h0
    for s in range(t):
        a = hs[s + 1]
        np.matmul(w, hs[s], out=a)
        a += xs[s]
        if relu:
            np.maximum(a, 0, out=a)
        else:
            np.tanh(a, out=a)
    return hs


def rnn_backward(
    hs: np.ndarray, relu: bool, w_t: np.ndarray, dout: np.ndarray | None, dh_n: np.ndarray, buf: Buffers
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """da_t = (dL/dh_t) act'(a_t);  dL/dh_{t-1} = W_hh^T da_t.

    act'(a) is read from the output: 1 - h^2 for tanh, [h > 0] for relu (0 at the kink, as torch).
    """
    out = hs[1:]
    deriv = buf("deriv", out.shape)
    if relu:
        np.greater(out, 0, out=deriv)
    else:
        np.multiply(out, out, out=deriv)
        np.subtract(1, deriv, out=deriv)
    dxs = buf("dxs", out.shape)
    dh = dh_n.copy()
    for s in range(out.shape[0] - 1, -1, -1):
        if dout is not None:
            dh += dout[s]
        np.multiply(dh, deriv[s], out=dxs[s])
        np.matmul(w_t, dxs[s], out=dh)
    return dxs, dxs, dh


# ------------------------------------------------------------------------------------------- LSTM


def lstm_forward(
    xs: np.ndarray, h0: np.ndarray, c0: np.ndarray, w: np.ndarray, buf: Buffers
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """PyTorch's LSTM (Hochreiter & Schmidhuber, 1997; forget gate of Gers et al., 2000)::

        [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    `xs` and `w` come pre-scaled (i, f, o rows halved), so one tanh covers all four gates.
    Returns ``hs``, ``cs`` (T+1, D, H, N) and the cache for `lstm_backward`.
    """
    t = xs.shape[0]
    h = h0.shape[1]
    hs = buf("hs", (t + 1, *h0.shape))
    cs = buf("cs", (t + 1, *h0.shape))
    hs[0] = h0
    cs[0] = c0
    gates = buf("gates", xs.shape)  # i, f, g, o after their activations
    tanh_c = buf("tanh_c", (t, *h0.shape))
    ig = buf("ig", h0.shape)
    for s in range(t):
        g = gates[s]
        np.matmul(w, hs[s], out=g)
        g += xs[s]
        np.tanh(g, out=g)  # tanh(a/2) for i, f, o; tanh(a) for g
        for sig in (g[:, : 2 * h], g[:, 3 * h :]):
            sig *= 0.5
            sig += 0.5
        c = cs[s + 1]
        np.multiply(g[:, h : 2 * h], cs[s], out=c)
        np.multiply(g[:, :h], g[:, 2 * h : 3 * h], out=ig)
        c += ig
        np.tanh(c, out=tanh_c[s])
        np.multiply(g[:, 3 * h :], tanh_c[s], out=hs[s + 1])
    return hs, cs, (gates, tanh_c, cs)


def lstm_backward(
    cache: tuple[np.ndarray, np.ndarray, np.ndarray],
    w_t: np.ndarray,
    dout: np.ndarray | None,
    dh_n: np.ndarray,
    dc_n: np.ndarray,
    buf: Buffers,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Backward of `lstm_forward`, with a the pre-activations::

        dc_t  += dh_t o (1 - tanh^2 c_t)            (dc_t also arrives from step t+1)
        da_i   = dc_t g i (1 - i)       da_f = dc_t c_{t-1} f (1 - f)
        da_g   = dc_t i (1 - g^2)       da_o = dh_t tanh(c_t) o (1 - o)
        dc_{t-1} = dc_t f               dh_{t-1} = W_hh^T da

    Returns ``dxs``, ``dhg`` (the same array), dL/dh0 and dL/dc0.
    """
    gates, tanh_c, cs = cache
    t = gates.shape[0]
    i, f, g, o = np.moveaxis(_gates(gates, 4), 2, 0)
    # Coefficients of dc for the i, f, g gates (side by side), of dh for o, and of dh for dc.
    k_ifg = buf("k_ifg", (t, i.shape[1], 3, *i.shape[2:]))
    tmp = buf("tmp", i.shape)
    np.subtract(1, i, out=tmp)
    tmp *= i
    np.multiply(tmp, g, out=k_ifg[:, :, 0])
    np.subtract(1, f, out=tmp)
    tmp *= f
    np.multiply(tmp, cs[:t], out=k_ifg[:, :, 1])
    np.multiply(g, g, out=tmp)
    np.subtract(1, tmp, out=tmp)
    np.multiply(tmp, i, out=k_ifg[:, :, 2])
    k_o = buf("k_o", i.shape)
    np.subtract(1, o, out=k_o)
    k_o *= o
    k_o *= tanh_c
    k_c = buf("k_c", i.shape)
    np.multiply(tanh_c, tanh_c, out=k_c)
    np.subtract(1, k_c, out=k_c)
    k_c *= o

    dxs = buf("dxs", gates.shape)
    da = _gates(dxs, 4)
    dh = dh_n.copy()
    dc = dc_n.copy()
    dh_c = np.empty_like(dh)
    for s in range(t - 1, -1, -1):
        if dout is not None:
            dh += dout[s]
        np.multiply(dh, k_c[s], out=dh_c)
        dc += dh_c
        np.multiply(dc[:, None], k_ifg[s], out=da[s, :, :3])
        np.multiply(dh, k_o[s], out=da[s, :, 3])
        dc *= f[s]
        np.matmul(w_t, dxs[s], out=dh)
    return dxs, dxs, dh, dc


# -------------------------------------------------------------------------------------------- GRU


def gru_forward(
    xs: np.ndarray, h0: np.ndarray, w: np.ndarray, b_hn: np.ndarray, buf: Buffers
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """PyTorch's GRU (Cho et al., 2014, with the reset gate after the matrix product)::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h   =   n + z * (h - n)

    `xs` holds W_i* x + b_i* (+ b_hr, b_hz: outside the reset gate they simply add), r and z rows
    pre-scaled by 1/2 like those of `w`; ``b_hn`` (D, H, 1) stays apart because r multiplies it.
    Returns ``hs`` (T+1, D, H, N) and the cache for `gru_backward`.
    """
    t = xs.shape[0]
    h = h0.shape[1]
    hs = buf("hs", (t + 1, *h0.shape))
    hs[0] = h0
    gates = buf("gates", xs.shape)  # r, z, n after their activations
    hn = buf("hn", (t, *h0.shape))  # W_hn h_{t-1} + b_hn: dL/dr needs it
    a = buf("a", xs.shape[1:])
    for s in range(t):
        h_prev = hs[s]
        np.matmul(w, h_prev, out=a)
        g = gates[s]
        rz = g[:, : 2 * h]
        np.add(a[:, : 2 * h], xs[s, :, : 2 * h], out=rz)
        _sigmoid_from_half(rz)
        np.add(a[:, 2 * h :], b_hn, out=hn[s])
        cand = g[:, 2 * h :]
        np.multiply(g[:, :h], hn[s], out=cand)
        cand += xs[s, :, 2 * h :]
        np.tanh(cand, out=cand)
        h_new = hs[s + 1]
        np.subtract(h_prev, cand, out=h_new)
        h_new *= g[:, h : 2 * h]
        h_new += cand
    return hs, (gates, hn, hs)


def gru_backward(
    cache: tuple[np.ndarray, np.ndarray, np.ndarray],
    w_t: np.ndarray,
    dout: np.ndarray | None,
    dh_n: np.ndarray,
    buf: Buffers,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of `gru_forward`; with dh = dL/dh'::

        da_n = dh (1 - z) (1 - n^2)          (a_n: the argument of tanh)
        da_z = dh (h - n) z (1 - z)
        da_r = da_n (W_hn h + b_hn) r (1 - r)
        dL/d(W_hn h + b_hn) = da_n r
        dh_{t-1} = dh z + W_hh^T [da_r, da_z, da_n r]

    Returns ``dxs`` = [da_r, da_z, da_n], ``dhg`` = [da_r, da_z, da_n r] and dL/dh0.
    """
    gates, hn, hs = cache
    t = gates.shape[0]
    r, z, cand = np.moveaxis(_gates(gates, 3), 2, 0)
    # dhg = dh * k_hg gate by gate; dxs differs in the candidate only: da_n = dh * k_n.
    k_hg = buf("k_hg", (t, r.shape[1], 3, *r.shape[2:]))
    k_n = buf("k_n", r.shape)
    tmp = buf("tmp", r.shape)
    np.multiply(cand, cand, out=k_n)
    np.subtract(1, k_n, out=k_n)
    np.subtract(1, z, out=tmp)
    k_n *= tmp  # (1 - z)(1 - n^2)
    np.subtract(1, r, out=tmp)
    tmp *= r
    tmp *= hn
    np.multiply(k_n, tmp, out=k_hg[:, :, 0])  # (1 - z)(1 - n^2) hn r (1 - r)
    np.subtract(1, z, out=tmp)
    tmp *= z
    np.subtract(hs[:t], cand, out=k_hg[:, :, 1])
    k_hg[:, :, 1] *= tmp  # (h - n) z (1 - z)
    np.multiply(k_n, r, out=k_hg[:, :, 2])  # (1 - z)(1 - n^2) r

    dhs = buf("dhs", r.shape)  # dL/dh_t of every step: dxs is computed from it after the loop
    dhg = buf("dhg", gates.shape)
    da = _gates(dhg, 3)
    rec = dh_n.copy()  # what reaches h_t from step t+1 (from h_n at the last step)
    dh_z = np.empty_like(rec)
    for s in range(t - 1, -1, -1):
        dh = dhs[s]
        if dout is not None:
            np.add(dout[s], rec, out=dh)
        else:
            dh[...] = rec
        np.multiply(dh[:, None], k_hg[s], out=da[s])
        np.multiply(dh, z[s], out=dh_z)
        np.matmul(w_t, dhg[s], out=rec)
        rec += dh_z
    dxs = buf("dxs", gates.shape)
    dxs[...] = dhg
    np.multiply(dhs, k_n, out=_gates(dxs, 3)[:, :, 2])
    return dxs, dhg, rec
