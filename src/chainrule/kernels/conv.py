"""A stride-1 convolution compiled (numba; see __init__): forward and backward sample by sample,
and the col2im adds of the column path.

``conv_forward`` and ``conv_backward`` (``_Conv._forward_samples``, ``_backward_samples`` in
chainrule/layers/conv.py) are the equations of the NumPy column path (``_forward_flat``,
``_backward_flat``) taken one sample at a time: the sample's columns copied into one (C·kh·kw, L)
work array, its products by NumPy's own BLAS gemm (kernels/blas.py, passed in as an argument),
the bias added and the wasted columns cut in one pass, δ laid out and dL/dcols added back onto
the sample's planes while they are in cache. The column path writes the whole batch's columns
(4.3 MB for LeNet's first layer at batch 64) and reads them back twice; here they never leave
the cache. Each sample's dL/dW term goes to its own slot, summed over the samples in order by
the caller, so a split over threads changes no bit. Results agree with the column path to
rounding (other product shapes: the BLAS may sum in another order).

``col2im`` serves the column path where numba runs but NumPy's BLAS is not found (a NumPy built
on MKL or a system BLAS): it adds the columns of kernel offset (u, v) onto the flat plane from
u·dh·W_p + v·dw on, the NumPy code's adds in the same order (offset by offset, onto a zeroed
plane), so the result is the same to the bit, per (sample, channel) plane, which stays in cache
for all kh·kw adds (6x12x12 -> 16, 5x5, batch 64, float32, one thread: 0.13 ms against 0.49 ms
for the NumPy adds).

Every inner loop runs over 1-D slices: LLVM vectorizes those, and a slice has no per-element
index check (``plane[start + l]`` checks each index for a negative value; such a copy loop ran
at a quarter of the speed). This module is imported by ``kernels.compiled`` only, after numba.
"""

from __future__ import annotations

import numba

from .blas import NO_TRANS, ROW_MAJOR, TRANS

_helper = numba.njit(cache=True, nogil=True, error_model="numpy")


def col2im(dcols, samples_first, g, wp, dh, dw):
    """g[a, c, (u·dh·W_p + v·dw) + l] += dL/dcols at (c, u, v, a, l) over every offset (u, v) in
    order, g zeroed first. dcols is (C, kh, kw, m, L) from one product over the batch, or
    (m, C, kh, kw, L) from the per-sample products (``samples_first``)."""
    m, channels = g.shape[0], g.shape[1]
    if samples_first:
        kh, kw, length = dcols.shape[2], dcols.shape[3], dcols.shape[4]
    else:
        kh, kw, length = dcols.shape[1], dcols.shape[2], dcols.shape[4]
    for a in range(m):
        for ch in range(channels):
            plane = g[a, ch]
            plane[:] = 0
            for u in range(kh):
                for v in range(kw):
                    start = u * dh * wp + v * dw
                    target = plane[start:start + length]
                    source = dcols[a, ch, u, v] if samples_first else dcols[ch, u, v, a]
                    for j in range(length):
                        target[j] += source[j]



@_helper
def _columns(planes, kh, kw, dh, dw, wp, cols):
    """cols[(c, u, v), l] = planes[c, u·dh·W_p + v·dw + l] (l < L): one sample's im2col copy, row
    (c, u, v) a run of its flat padded plane c."""
    length, row = cols.shape[1], 0
    for ch in range(planes.shape[0]):
        plane = planes[ch]
        for u in range(kh):
            for v in range(kw):
                start = u * dh * wp + v * dw
                source, target = plane[start:start + length], cols[row]
                for j in range(length):
                    target[j] = source[j]
                row += 1


def conv_forward(gemm, planes, a, b, kh, kw, dh, dw, wp, w_mat, bias, cols, z, out):
    """A stride-1 convolution's forward for the samples a <= s < b (``_Conv._forward_samples``):
    cols (K, L) = the columns of sample s (``_columns``), z (C_out, L) = W_mat·cols by NumPy's
    BLAS gemm, out[s, o, i, j] = z[o, i·W_p + j] + bias[o] (no bias when it is empty). planes
    (n, C, P): the flat padded input."""
    k, length = cols.shape
    co, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    with_bias = bias.shape[0] > 0
    for s in range(a, b):
        _columns(planes[s], kh, kw, dh, dw, wp, cols)
        gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, co, length, k, 1.0, w_mat.ctypes, k, cols.ctypes, length, 0.0,
             z.ctypes, length)
        for o in range(co):
            z_row, plane = z[o], out[s, o]
            for i in range(ho):
                source, target = z_row[i * wp:i * wp + wo], plane[i]
                if with_bias:
                    add = bias[o]
                    for j in range(wo):
                        target[j] = source[j] + add
                else:
                    for j in range(wo):
                        target[j] = source[j]


def conv_backward(gemm, planes, delta, a, b, kh, kw, dh, dw, wp, w_mat, need_dx, cols, d2, dcols, terms, grad_xp):
    """A stride-1 convolution's backward for the samples a <= s < b (``_Conv._backward_samples``):
    d2 (C_out, L) = δ[s] in the columns' layout (0 on the wasted columns), cols = its columns
    again, terms[s] (K, C_out) = cols·d2ᵀ (sample s's dL/dW, transposed), and when ``need_dx``:
    dcols (K, L) = W_matᵀ·d2, added back onto grad_xp[s] (C, P), zeroed first, run by run in
    the order of the rows (c, u, v)."""
    k, length = cols.shape
    co, ho, wo = delta.shape[1], delta.shape[2], delta.shape[3]
    for s in range(a, b):
        for o in range(co):
            d_row, d_plane = d2[o], delta[s, o]
            d_row[:] = 0
            for i in range(ho):
                source, target = d_plane[i], d_row[i * wp:i * wp + wo]
                for j in range(wo):
                    target[j] = source[j]
        _columns(planes[s], kh, kw, dh, dw, wp, cols)
        gemm(ROW_MAJOR, NO_TRANS, TRANS, k, co, length, 1.0, cols.ctypes, length, d2.ctypes, length, 0.0,
             terms[s].ctypes, co)
        if not need_dx:
            continue
        gemm(ROW_MAJOR, TRANS, NO_TRANS, k, length, co, 1.0, w_mat.ctypes, k, d2.ctypes, length, 0.0,
             dcols.ctypes, length)
        g, row = grad_xp[s], 0
        for ch in range(g.shape[0]):
            plane = g[ch]
            plane[:] = 0
            for u in range(kh):
                for v in range(kw):
                    start = u * dh * wp + v * dw
                    source, target = dcols[row], plane[start:start + length]
                    for j in range(length):
                        target[j] += source[j]
                    row += 1
