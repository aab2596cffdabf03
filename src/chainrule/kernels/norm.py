"""LayerNorm over the last axis, each row's forward and dL/dx in one pass (compiled by numba; see
__init__).

The equations are those of chainrule/layers/norm.py (LayerNorm), row by row over the (rows, D)
view of the input: the NumPy code there takes each row sum as a matrix-vector product and each
step as a pass over the whole array; here each row's passes run while it is in cache. The row
sums are kernels/sums.py's, in vector lanes, so results agree with the NumPy path (whose BLAS
sums in blocks) to rounding. Row slices are 1-D (see recurrent.py).
"""

from __future__ import annotations

import numpy as np

from .sums import dot, total


def layer_norm_forward(x, gamma, beta, eps, inv_d, one, centered, inv_std, y):
    """Per row r of x (rows, D): μ = Σx·(1/D), centered = x − μ, σ² + ε = Σ centered²·(1/D) + ε,
    inv_std = 1/√(σ² + ε), y = centered·(inv_std·γ) + β;  ``inv_d`` = 1/D, ``one`` = 1, ``eps`` = ε,
    in x's dtype as the NumPy code's scalars are."""
    rows, d = x.shape
    zero = one - one
    for r in range(rows):
        x_r, c_r, y_r = x[r], centered[r], y[r]
        mean = total(x_r, zero) * inv_d
        for j in range(d):
            c_r[j] = x_r[j] - mean
        inv = one / np.sqrt(dot(c_r, c_r, zero) * inv_d + eps)
        inv_std[r] = inv
        for j in range(d):
            y_r[j] = c_r[j] * (inv * gamma[j]) + beta[j]


def layer_norm_backward(grad, centered, inv_std, gamma, inv_d, grad_centered, dx):
    """Per row, with g = dL/dy: g·(x − μ) into grad_centered (for dL/dγ), and
    dL/dx = (γ/σ)·g − ((x − μ)·k + c),  k = Σ(g·(x − μ)·γ)·(1/σ)·(1/σ²)·(1/D),  c = Σ(g·γ)·(1/σ)·(1/D)."""
    rows, d = grad.shape
    zero = inv_d - inv_d
    for r in range(rows):
        g_r, c_r, gc_r, dx_r = grad[r], centered[r], grad_centered[r], dx[r]
        inv = inv_std[r]
        for j in range(d):
            gc_r[j] = g_r[j] * c_r[j]
        k = dot(gc_r, gamma, zero) * inv * (inv * inv) * inv_d
        c = dot(g_r, gamma, zero) * inv * inv_d
        for j in range(d):
            dx_r[j] = g_r[j] * (inv * gamma[j]) - (c_r[j] * k + c)
