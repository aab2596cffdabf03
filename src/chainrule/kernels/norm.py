"""LayerNorm over the last axis, each row's forward and dL/dx in one pass (compiled by numba; see
__init__).

The equations are those of chainrule/layers/norm.py (LayerNorm), row by row over the (rows, D)
view of the input: the NumPy code there takes each row sum as a matrix-vector product and each
step as a pass over the whole array; here a row is read once for its sums and once for its
outputs while it is in cache. The sums run in the row's order (NumPy's BLAS sums in blocks), so
results agree with the NumPy path to rounding. Row slices are 1-D (see recurrent.py).
"""

from __future__ import annotations

import numpy as np


def layer_norm_forward(x, gamma, beta, eps, inv_d, one, centered, inv_std, y):
    """Per row r of x (rows, D): μ = Σx·(1/D), centered = x − μ, σ² + ε = Σ centered²·(1/D) + ε,
    inv_std = 1/√(σ² + ε), y = centered·(inv_std·γ) + β;  ``inv_d`` = 1/D, ``one`` = 1, ``eps`` = ε,
    in x's dtype as the NumPy code's scalars are."""
    rows, d = x.shape
    for r in range(rows):
        x_r, c_r, y_r = x[r], centered[r], y[r]
        total = x_r[0] - x_r[0]
        for j in range(d):
            total += x_r[j]
        mean = total * inv_d
        square = total - total
        for j in range(d):
            value = x_r[j] - mean
            c_r[j] = value
            square += value * value
        inv = one / np.sqrt(square * inv_d + eps)
        inv_std[r] = inv
        for j in range(d):
            y_r[j] = c_r[j] * (inv * gamma[j]) + beta[j]


def layer_norm_backward(grad, centered, inv_std, gamma, inv_d, grad_centered, dx):
    """Per row, with g = dL/dy: g·(x − μ) into grad_centered (for dL/dγ), and
    dL/dx = (γ/σ)·g − ((x − μ)·k + c),  k = Σ(g·(x − μ)·γ)·(1/σ)·(1/σ²)·(1/D),  c = Σ(g·γ)·(1/σ)·(1/D)."""
    rows, d = grad.shape
    for r in range(rows):
        g_r, c_r, gc_r, dx_r = grad[r], centered[r], grad_centered[r], dx[r]
        inv = inv_std[r]
        sum_g = g_r[0] - g_r[0]
        sum_gc = sum_g
        for j in range(d):
            gc = g_r[j] * c_r[j]
            gc_r[j] = gc
            sum_g += g_r[j] * gamma[j]
            sum_gc += gc * gamma[j]
        k = sum_gc * inv * (inv * inv) * inv_d
        c = sum_g * inv * inv_d
        for j in range(d):
            dx_r[j] = g_r[j] * (inv * gamma[j]) - (c_r[j] * k + c)
