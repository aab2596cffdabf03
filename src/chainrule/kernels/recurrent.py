"""The element-wise work of one LSTM or GRU time step in one pass, and the whole recurrences of
the Elman RNN, the LSTM and the GRU in one call each (compiled by numba; see __init__).

For LSTM and GRU the matrix products stay BLAS calls in the layers, and tanh stays NumPy's (its SIMD
loop is about 25 times faster than numba's call of the C library per element:
kernels/activations.py); these loops replace the arithmetic between them: in forward the sums, the
gates' σ = ½·t + ½ and the state update around one tanh of the gates (and one of the cell, for
LSTM); in backward the whole of the gate derivatives. They are the NumPy code of the loop bodies in
chainrule/layers/lstm.py and gru.py, row by row, in the same order of operations. Arrays are 2-D (n,
width), the rows of one step (any strides); every scalar comes in the arrays' dtype. As there, σ(z)
= ½·tanh(z/2) + ½ with the inner ½ already folded into the weights and biases.

Speed. Each row is taken as 1-D slices, one per gate block, before the loop over its H units:
LLVM then vectorizes the loop (2-D indexing a[r, k·H + j] it did not), with the same operations
in the same order, so the same results. lstm_backward on (64, 4·128) float32: 7.8 µs against
21.7 µs (best of 5 × 2,000 calls, one thread).

The Elman RNN (rnn_forward, rnn_backward) runs every time step in one compiled call: its step is one
small product and one element-wise pass, for which the NumPy loop makes three calls forward (a
matmul, an add and a tanh) and two backward (a multiply and a matmul), each with its own argument
handling and its own pass over the step's block. The product is NumPy's own BLAS gemm
(kernels/blas.py), the call np.matmul makes; the tanh is kernels/tanh.py's (float32 only, within 5.5
ulp of the exact value where NumPy's is within 1.4), fused with the add. So ReLU and the backward
give NumPy's bits, a float32 tanh forward agrees to rounding, and float64 keeps NumPy's tanh.
Measured (benchmarks/bench_rnn.py's case: batch 64, 50 steps, 128 units, float32, one training step
of the epoch taking turns with and without these two loops, median of 25): 3.51 against 3.87 ms a
step. The LSTM's recurrence runs the same way (lstm_forward in float32, lstm_backward_loop in both
dtypes): its step 12.9 against 14.2 ms (fastest of 24 rounds each, docs/speed.md); and the GRU's
(gru_forward, gru_backward_loop): 10.4 against 11.6 ms.
"""

from __future__ import annotations

import numba

from .blas import NO_TRANS, ROW_MAJOR
from .tanh import tanh32


def lstm_cell(a, c_prev, half, c):
    """The LSTM cell update of one step. a (n, 4H) holds tanh of [zi zf zg zo] (halved for i, f, o)
    and receives the gates: i, f, o = ½·t + ½ (σ), g = t;  c = f ∘ c_{t-1} + i ∘ g."""
    n, H = c.shape
    for r in range(n):
        a_i, a_f, a_g, a_o = a[r, :H], a[r, H:2 * H], a[r, 2 * H:3 * H], a[r, 3 * H:4 * H]
        c_r, c_prev_r = c[r], c_prev[r]
        for j in range(H):
            i = a_i[j] * half + half
            f = a_f[j] * half + half
            a_i[j] = i
            a_f[j] = f
            a_o[j] = a_o[j] * half + half
            c_r[j] = f * c_prev_r[j] + i * a_g[j]


def lstm_backward(a, c_prev, tanh_c, dh, dc_next, one, delta):
    """One LSTM step back. a (n, 4H): the gates i, f, g, o; dh = dL/dh_t; dc_next holds dc_{t+1} ∘ f_{t+1}
    and receives dc_t ∘ f_t. delta (n, 4H) receives [δzi δzf δzg δzo]:
    dc = dh ∘ o ∘ (1 − tanh²c) + dc_next;  δzi = dc ∘ g ∘ i(1 − i);  δzf = dc ∘ c_{t-1} ∘ f(1 − f);
    δzg = dc ∘ i ∘ (1 − g²);  δzo = dh ∘ tanh(c) ∘ o(1 − o)."""
    n, H = tanh_c.shape
    for r in range(n):
        a_i, a_f, a_g, a_o = a[r, :H], a[r, H:2 * H], a[r, 2 * H:3 * H], a[r, 3 * H:4 * H]
        d_i, d_f, d_g, d_o = delta[r, :H], delta[r, H:2 * H], delta[r, 2 * H:3 * H], delta[r, 3 * H:4 * H]
        c_prev_r, tanh_c_r, dh_r, dc_next_r = c_prev[r], tanh_c[r], dh[r], dc_next[r]
        for j in range(H):
            i = a_i[j]
            f = a_f[j]
            g = a_g[j]
            o = a_o[j]
            t = tanh_c_r[j]
            d = dh_r[j]
            dc = d * ((one - t * t) * o) + dc_next_r[j]
            d_i[j] = (i - i * i) * g * dc
            d_f[j] = (f - f * f) * c_prev_r[j] * dc
            d_g[j] = (one - g * g) * i * dc
            d_o[j] = (o - o * o) * t * d
            dc_next_r[j] = dc * f


def gru_preactivations(a, recur, b_hh, hn):
    """The sums before GRU's σ. a (n, 3H) holds the input part [ir iz in] (halved for r, z) and
    receives ir + hr, iz + hz in its r, z blocks; recur (n, 3H) = h_{t-1}·W_hh and b_hh (3H,)
    (halved likewise);  hr = (h·W_hh)_r + b_hr, ...;  hn = (h·W_hh)_n + b_hn."""
    n, H = hn.shape
    b_rz, b_n = b_hh[:2 * H], b_hh[2 * H:3 * H]
    for row in range(n):
        a_rz, recur_rz, recur_n, hn_r = a[row, :2 * H], recur[row, :2 * H], recur[row, 2 * H:3 * H], hn[row]
        for j in range(2 * H):
            a_rz[j] = a_rz[j] + (recur_rz[j] + b_rz[j])
        for j in range(H):
            hn_r[j] = recur_n[j] + b_n[j]


def gru_candidate(a, hn, half):
    """a (n, 3H) holds tanh of the halved r, z sums: r, z = ½·t + ½ in place, and its n block
    receives in + r ∘ hn, the argument of the candidate's tanh."""
    n, H = hn.shape
    for row in range(n):
        a_r, a_z, a_n, hn_r = a[row, :H], a[row, H:2 * H], a[row, 2 * H:3 * H], hn[row]
        for j in range(H):
            r = a_r[j] * half + half
            a_r[j] = r
            a_z[j] = a_z[j] * half + half
            a_n[j] = a_n[j] + r * hn_r[j]


def gru_state(a, h_prev, h):
    """h_t = n + z ∘ (h_{t-1} − n), from the gates z, n in a (n, 3H)."""
    n, H = h.shape
    for row in range(n):
        a_z, a_n, h_prev_r, h_r = a[row, H:2 * H], a[row, 2 * H:3 * H], h_prev[row], h[row]
        for j in range(H):
            new = a_n[j]
            h_r[j] = (h_prev_r[j] - new) * a_z[j] + new


def gru_backward(a, hn, h_prev, dh, one, delta, delta_in, direct):
    """One GRU step back. a (n, 3H): the gates r, z, n; dh = dL/dh_t. delta (n, 3H) receives
    [δr δz δhn], delta_in (n, H) δin, direct (n, H) dh ∘ z (the path to h_{t-1} that skips W_hh):
    δin = dh ∘ (1 − z) ∘ (1 − n²);  δz = dh ∘ (h_{t-1} − n) ∘ z(1 − z);
    δr = δin ∘ hn ∘ r(1 − r);  δhn = δin ∘ r."""
    n, H = delta_in.shape
    for row in range(n):
        a_r, a_z, a_n = a[row, :H], a[row, H:2 * H], a[row, 2 * H:3 * H]
        d_r, d_z, d_hn = delta[row, :H], delta[row, H:2 * H], delta[row, 2 * H:3 * H]
        hn_r, h_prev_r, dh_r, d_in_r, direct_r = hn[row], h_prev[row], dh[row], delta_in[row], direct[row]
        for j in range(H):
            r = a_r[j]
            z = a_z[j]
            new = a_n[j]
            d = dh_r[j]
            keep = one - z
            d_in = (one - new * new) * keep * d
            d_in_r[j] = d_in
            d_z[j] = (h_prev_r[j] - new) * d * (keep * z)
            d_r[j] = d_in * hn_r[j] * ((one - r) * r)
            d_hn[j] = d_in * r
            direct_r[j] = d * z


_step = numba.njit(cache=True, nogil=True, error_model="numpy")


@_step
def _add_rows(target, source):
    """target += source, row by row (2-D arrays of one shape)."""
    for r in range(target.shape[0]):
        t_r, s_r = target[r], source[r]
        for j in range(t_r.shape[0]):
            t_r[j] = t_r[j] + s_r[j]


@_step
def _back_through_w_hh(gemm, d, w_hh_t, dh, back, t, every_step, direct, with_direct):
    """Step t's way back through W_hh, for the three backward loops below: d (n, G) = δ_t,
    w_hh_t = W_hhᵀ (G, H). dh_{t-1} = δ_t·W_hhᵀ (NumPy's gemm) + ``direct`` (GRU's dh_t ∘ z, when
    ``with_direct``), written over dh_{t-1} when only h_T went on (``every_step`` false: its own
    part is zero), else made in ``back`` and added to dh_{t-1}; at t = 0 it stays in back, dL/dh_0."""
    n, G = d.shape
    H = back.shape[1]
    straight = t > 0 and not every_step
    out = dh[t - 1] if straight else back
    gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, H, G, 1.0, d.ctypes, G, w_hh_t.ctypes, H, 0.0, out.ctypes, H)
    if with_direct:
        _add_rows(out, direct)
    if t > 0 and not straight:
        _add_rows(dh[t - 1], back)


def rnn_forward(gemm, hs, h0, w_hh, recur, bias, relu, zero):
    """The RNN's forward recurrence over all T steps. hs (T, n, H) holds x_t·W_ih and receives h_t
    in place: recur = h_{t-1}·W_hh (NumPy's gemm), h_t = f((x_t·W_ih + b) + recur), the bias added
    here (one pass less than adding it to all T steps first; the same sums in the same order), with
    f = max(·, 0) when ``relu``, else tanh (kernels/tanh.py: float32 arrays only). h0 (n, H) and
    w_hh (H, H) C-contiguous; ``zero`` is 0 in the arrays' dtype."""
    T, n, H = hs.shape
    h = h0
    for t in range(T):
        gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, H, H, 1.0, h.ctypes, H, w_hh.ctypes, H, 0.0, recur.ctypes, H)
        z = hs[t]
        for r in range(n):
            z_r, recur_r = z[r], recur[r]
            if relu:
                for j in range(H):
                    v = (z_r[j] + bias[j]) + recur_r[j]
                    z_r[j] = zero if v <= zero else v      # NaN stays NaN, as in np.maximum
            else:
                for j in range(H):
                    z_r[j] = tanh32((z_r[j] + bias[j]) + recur_r[j])
        h = z


def rnn_backward(gemm, dh, hs, delta, w_hh_t, back, every_step, relu, one, zero):
    """The RNN's backward recurrence over all T steps, from t = T down to 1. delta (T, n, H) receives
    δ_t = dh_t ∘ f'(z_t), with f'(z_t) = 1 − h_t·h_t (tanh) or [h_t > 0] (relu) from hs (T, n, H);
    dh (T, n, H) holds dL/dh_t from the layer above and receives dh_{t-1} = δ_t·W_hhᵀ, added to
    its own part when ``every_step`` (the layer returned every h_t), written over it otherwise
    (only h_T went on); back (n, H) receives δ_1·W_hhᵀ = dL/dh_0. w_hh_t = W_hhᵀ C-contiguous;
    ``one``, ``zero`` in the arrays' dtype."""
    T, n, H = dh.shape
    for t in range(T - 1, -1, -1):
        d, g, h = delta[t], dh[t], hs[t]
        for r in range(n):
            d_r, g_r, h_r = d[r], g[r], h[r]
            if relu:
                for j in range(H):
                    d_r[j] = g_r[j] * (one if h_r[j] > zero else zero)
            else:
                for j in range(H):
                    v = h_r[j]
                    d_r[j] = g_r[j] * (one - v * v)
        _back_through_w_hh(gemm, d, w_hh_t, dh, back, t, every_step, back, False)


def lstm_forward(gemm, gates, h0, c0, w_hh, recur, bias, mul, add, cs, tanh_cs, hs):
    """The LSTM's forward recurrence over all T steps, float32 arrays only (kernels/tanh.py's tanh).
    gates (T, n, 4H) holds every step's x_t·W_ih (halved for i, f, o) and receives the gates
    i, f, g, o: recur = h_{t-1}·W_hh (NumPy's gemm; w_hh and bias halved likewise), then per row
    t = tanh((gates_t + b) + recur) and gate = t·mul + add (½·t + ½ for i, f, o: σ; t for g), then
    c_t = f ∘ c_{t-1} + i ∘ g into cs, tanh(c_t) into tanh_cs, h_t = o ∘ tanh(c_t) into hs.
    h0, c0, w_hh C-contiguous; mul, add (4H,). Each inner loop touches few arrays: with the
    eleven of one loop over the H units LLVM vectorized less (24.6 against 21.6 µs a step)."""
    T, n, G = gates.shape
    H = G // 4
    h, c = h0, c0
    for t in range(T):
        gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, G, H, 1.0, h.ctypes, H, w_hh.ctypes, G, 0.0, recur.ctypes, G)
        a, c_t, tc_t, h_t = gates[t], cs[t], tanh_cs[t], hs[t]
        for r in range(n):
            a_r, s_r = a[r], recur[r]
            for j in range(G):
                a_r[j] = tanh32((a_r[j] + bias[j]) + s_r[j]) * mul[j] + add[j]
            a_i, a_f, a_g, a_o = a_r[:H], a_r[H:2 * H], a_r[2 * H:3 * H], a_r[3 * H:]
            c_r, c_prev_r, tc_r, h_r = c_t[r], c[r], tc_t[r], h_t[r]
            for j in range(H):
                c_r[j] = a_f[j] * c_prev_r[j] + a_i[j] * a_g[j]
            for j in range(H):
                tc_r[j] = tanh32(c_r[j])
            for j in range(H):
                h_r[j] = a_o[j] * tc_r[j]
        h, c = h_t, c_t


_lstm_step_back = _step(lstm_backward)


def lstm_backward_loop(gemm, gates, cs, c0, tanh_cs, dh, dc_next, delta, w_hh_t, back, every_step, one):
    """The LSTM's backward recurrence over all T steps, from t = T down to 1: lstm_backward for each
    step (δ_t into delta[t], dc_t ∘ f_t into dc_next, which holds zeros at the start), then
    δ_t·W_hhᵀ (NumPy's gemm) into dh_{t-1}, added to its own part when ``every_step``, written over
    it otherwise; back (n, H) receives δ_1·W_hhᵀ = dL/dh_0. c0, w_hh_t = W_hhᵀ C-contiguous."""
    T = gates.shape[0]
    for t in range(T - 1, -1, -1):
        d = delta[t]
        _lstm_step_back(gates[t], cs[t - 1] if t > 0 else c0, tanh_cs[t], dh[t], dc_next, one, d)
        _back_through_w_hh(gemm, d, w_hh_t, dh, back, t, every_step, back, False)


def gru_forward(gemm, gates, h0, w_hh, b_ih, b_hh, recur, half, hns, hs):
    """The GRU's forward recurrence over all T steps, float32 arrays only (kernels/tanh.py's tanh).
    gates (T, n, 3H) holds every step's x_t·W_ih (halved for r, z), to which b_ih is added here, and
    receives the gates r, z, n: recur = h_{t-1}·W_hh (NumPy's gemm; w_hh, b_ih and b_hh halved
    likewise), then per row, with i = x_t·W_ih + b_ih: r, z = ½·tanh(i + (h·W_hh + b_hh)) + ½ over
    the first 2H columns, hn = (h·W_hh)_n + b_hn into hns, n = tanh(in + r ∘ hn), and h_t = n + z ∘
    (h_{t-1} − n) into hs, as gru_preactivations, gru_candidate and gru_state do around NumPy's
    tanh. h0, w_hh C-contiguous."""
    T, n, G = gates.shape
    H = G // 3
    b_rz, b_n = b_hh[:2 * H], b_hh[2 * H:]
    i_rz, i_n = b_ih[:2 * H], b_ih[2 * H:]
    h = h0
    for t in range(T):
        gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, G, H, 1.0, h.ctypes, H, w_hh.ctypes, G, 0.0, recur.ctypes, G)
        a, hn_t, h_t = gates[t], hns[t], hs[t]
        for row in range(n):
            a_r, s_r = a[row], recur[row]
            a_rz, s_rz = a_r[:2 * H], s_r[:2 * H]
            for j in range(2 * H):
                a_rz[j] = tanh32((a_rz[j] + i_rz[j]) + (s_rz[j] + b_rz[j])) * half + half
            reset, new, s_n, hn_r = a_r[:H], a_r[2 * H:], s_r[2 * H:], hn_t[row]
            for j in range(H):
                hn = s_n[j] + b_n[j]
                hn_r[j] = hn
                new[j] = tanh32((new[j] + i_n[j]) + reset[j] * hn)
            update, h_prev_r, out_r = a_r[H:2 * H], h[row], h_t[row]
            for j in range(H):
                out_r[j] = (h_prev_r[j] - new[j]) * update[j] + new[j]
        h = h_t


_gru_step_back = _step(gru_backward)


def gru_backward_loop(gemm, gates, hns, hs, h0, dh, delta_h, delta_in, w_hh_t, direct, back, every_step, one):
    """The GRU's backward recurrence over all T steps, from t = T down to 1: gru_backward for each
    step (δh_t into delta_h[t], δin_t into delta_in[t], dh_t ∘ z into ``direct``), then
    dh_{t-1} = dh_t ∘ z + δh_t·W_hhᵀ (NumPy's gemm), added to its own part when ``every_step``,
    written over it otherwise; back (n, H) receives dL/dh_0. h0, w_hh_t = W_hhᵀ C-contiguous."""
    T = gates.shape[0]
    for t in range(T - 1, -1, -1):
        d = delta_h[t]
        _gru_step_back(gates[t], hns[t], hs[t - 1] if t > 0 else h0, dh[t], one, d, delta_in[t], direct)
        _back_through_w_hh(gemm, d, w_hh_t, dh, back, t, every_step, direct, True)
