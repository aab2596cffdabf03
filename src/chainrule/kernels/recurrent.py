"""The element-wise work of one LSTM or GRU time step in one pass (compiled by numba; see __init__).

The matrix products stay BLAS calls in the layers, and tanh stays NumPy's (its SIMD loop is about
25 times faster than numba's call of the C library per element: kernels/activations.py); these
loops replace the arithmetic between them: in forward the sums, the gates' σ = ½·t + ½ and the
state update around one tanh of the gates (and one of the cell, for LSTM); in backward the whole
of the gate derivatives. They are the NumPy code of the loop bodies in chainrule/layers/lstm.py
and gru.py, row by row, in the same order of operations. Arrays are 2-D (n, width), the rows of
one step (any strides); every scalar comes in the arrays' dtype. As there, σ(z) = ½·tanh(z/2) + ½
with the inner ½ already folded into the weights and biases.
"""

from __future__ import annotations


def lstm_cell(a, c_prev, half, c):
    """The LSTM cell update of one step. a (n, 4H) holds tanh of [zi zf zg zo] (halved for i, f, o)
    and receives the gates: i, f, o = ½·t + ½ (σ), g = t;  c = f ∘ c_{t-1} + i ∘ g."""
    n, H = c.shape
    for r in range(n):
        for j in range(H):
            i = a[r, j] * half + half
            f = a[r, H + j] * half + half
            g = a[r, 2 * H + j]
            a[r, j] = i
            a[r, H + j] = f
            a[r, 3 * H + j] = a[r, 3 * H + j] * half + half
            c[r, j] = f * c_prev[r, j] + i * g


def lstm_backward(a, c_prev, tanh_c, dh, dc_next, one, delta):
    """One LSTM step back. a (n, 4H): the gates i, f, g, o; dh = dL/dh_t; dc_next holds dc_{t+1} ∘ f_{t+1}
    and receives dc_t ∘ f_t. delta (n, 4H) receives [δzi δzf δzg δzo]:
    dc = dh ∘ o ∘ (1 − tanh²c) + dc_next;  δzi = dc ∘ g ∘ i(1 − i);  δzf = dc ∘ c_{t-1} ∘ f(1 − f);
    δzg = dc ∘ i ∘ (1 − g²);  δzo = dh ∘ tanh(c) ∘ o(1 − o)."""
    n, H = tanh_c.shape
    for r in range(n):
        for j in range(H):
            i = a[r, j]
            f = a[r, H + j]
            g = a[r, 2 * H + j]
            o = a[r, 3 * H + j]
            t = tanh_c[r, j]
            d = dh[r, j]
            dc = d * ((one - t * t) * o) + dc_next[r, j]
            delta[r, j] = (i - i * i) * g * dc
            delta[r, H + j] = (f - f * f) * c_prev[r, j] * dc
            delta[r, 2 * H + j] = (one - g * g) * i * dc
            delta[r, 3 * H + j] = (o - o * o) * t * d
            dc_next[r, j] = dc * f


def gru_preactivations(a, recur, b_hh, hn):
    """The sums before GRU's σ. a (n, 3H) holds the input part [ir iz in] (halved for r, z) and
    receives ir + hr, iz + hz in its r, z blocks; recur (n, 3H) = h_{t-1}·W_hh and b_hh (3H,)
    (halved likewise);  hr = (h·W_hh)_r + b_hr, ...;  hn = (h·W_hh)_n + b_hn."""
    n, H = hn.shape
    for row in range(n):
        for j in range(2 * H):
            a[row, j] = a[row, j] + (recur[row, j] + b_hh[j])
        for j in range(H):
            hn[row, j] = recur[row, 2 * H + j] + b_hh[2 * H + j]


def gru_candidate(a, hn, half):
    """a (n, 3H) holds tanh of the halved r, z sums: r, z = ½·t + ½ in place, and its n block
    receives in + r ∘ hn, the argument of the candidate's tanh."""
    n, H = hn.shape
    for row in range(n):
        for j in range(H):
            r = a[row, j] * half + half
            a[row, j] = r
            a[row, H + j] = a[row, H + j] * half + half
            a[row, 2 * H + j] = a[row, 2 * H + j] + r * hn[row, j]


def gru_state(a, h_prev, h):
    """h_t = n + z ∘ (h_{t-1} − n), from the gates z, n in a (n, 3H)."""
    n, H = h.shape
    for row in range(n):
        for j in range(H):
            new = a[row, 2 * H + j]
            h[row, j] = (h_prev[row, j] - new) * a[row, H + j] + new


def gru_backward(a, hn, h_prev, dh, one, delta, delta_in, direct):
    """One GRU step back. a (n, 3H): the gates r, z, n; dh = dL/dh_t. delta (n, 3H) receives
    [δr δz δhn], delta_in (n, H) δin, direct (n, H) dh ∘ z (the path to h_{t-1} that skips W_hh):
    δin = dh ∘ (1 − z) ∘ (1 − n²);  δz = dh ∘ (h_{t-1} − n) ∘ z(1 − z);
    δr = δin ∘ hn ∘ r(1 − r);  δhn = δin ∘ r."""
    n, H = delta_in.shape
    for row in range(n):
        for j in range(H):
            r = a[row, j]
            z = a[row, H + j]
            new = a[row, 2 * H + j]
            d = dh[row, j]
            keep = one - z
            d_in = (one - new * new) * keep * d
            delta_in[row, j] = d_in
            delta[row, H + j] = (h_prev[row, j] - new) * d * (keep * z)
            delta[row, j] = d_in * hn[row, j] * ((one - r) * r)
            delta[row, 2 * H + j] = d_in * r
            direct[row, j] = d * z
