"""MaxPool2D with 2×2 windows and stride 2, forward and backward, each one pass over the windows
(compiled by numba; see __init__).

The NumPy code in chainrule/layers/pooling.py takes the maximum as kh·kw whole-array maximum
calls over strided views, marks each window's first maximum with one boolean mask per offset,
and routes the gradient through one masked multiply per mask. Here each window's four numbers
are read once: their maximum, and the offset k = 2·u + v of its first maximum (one int32 per
output instead of four masks); the backward writes each gradient where that offset points and
zeros at the window's three other positions.

The same numbers as the NumPy path: the maximum is taken in the same order with NumPy's
maximum (a NaN in a window makes its maximum NaN), the offset is the first that equals it (the
last, 3, when none does: a NaN). One difference: the NumPy path multiplies the gradient by each
mask, so an infinite or NaN gradient also leaves NaN (inf · 0) at the window's other positions,
where this writes 0.

Only these windows: with the window size and stride as run-time numbers, the loops over the
window did not vectorize and its branches were mispredicted (0.49 ms for the forward on
(64, 6, 24, 24) float32, against 0.25 ms for the NumPy views and 0.047 ms here); other pools
take the NumPy path. Speed: docs/speed.md, "Convolution and pooling".
"""

from __future__ import annotations


def max_pool_2x2(x, out, arg):
    """out[a, c, i, j] = max of x[a, c, 2i + u, 2j + v] over u, v < 2; arg[a, c, i, j] = 2u + v of
    the first (u, v) equal to it, 3 when none is (a NaN maximum). x is the padded input."""
    n, channels = x.shape[0], x.shape[1]
    ho, wo = out.shape[2], out.shape[3]
    for a in range(n):
        for c in range(channels):
            plane, o_plane, a_plane = x[a, c], out[a, c], arg[a, c]
            for i in range(ho):
                top, bottom, o_row, a_row = plane[2 * i], plane[2 * i + 1], o_plane[i], a_plane[i]
                for j in range(wo):
                    p, q, r, s = top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1]
                    # np.maximum: the first operand when it is >= the second or NaN
                    best = p if p >= q or p != p else q
                    best = best if best >= r or best != best else r
                    best = best if best >= s or best != best else s
                    where = 3
                    where = 2 if r == best else where
                    where = 1 if q == best else where
                    where = 0 if p == best else where
                    o_row[j] = best
                    a_row[j] = where


def max_pool_2x2_backward(grad, arg, grad_in):
    """grad_in[a, c, 2i + u, 2j + v] = grad[a, c, i, j] where 2u + v = arg[a, c, i, j], else 0
    (rows and columns past the last window included)."""
    n, channels, h, w = grad_in.shape
    ho, wo = grad.shape[2], grad.shape[3]
    for a in range(n):
        for c in range(channels):
            g_in, g, a_plane = grad_in[a, c], grad[a, c], arg[a, c]
            for i in range(ho):
                top, bottom, g_row, a_row = g_in[2 * i], g_in[2 * i + 1], g[i], a_plane[i]
                for j in range(wo):
                    k, value = a_row[j], g_row[j]
                    top[2 * j] = value if k == 0 else 0
                    top[2 * j + 1] = value if k == 1 else 0
                    bottom[2 * j] = value if k == 2 else 0
                    bottom[2 * j + 1] = value if k == 3 else 0
                for q in range(2 * wo, w):
                    top[q] = 0
                    bottom[q] = 0
            for p in range(2 * ho, h):
                g_in[p, :] = 0
