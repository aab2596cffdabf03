"""Loss value and gradient in one pass (compiled by numba; see __init__).

Each function is the NumPy ``_value_and_grad`` of the loss in chainrule/losses.py, row by row
or element by element. Per element the arithmetic is in the output's dtype, as in NumPy (scalars
come in that dtype); the loss value is summed in float64 (NumPy sums float32 terms in float32,
pairwise), so in float32 the value can differ from the NumPy path's in its last digits, the
kernel's being the more accurate.
"""

from __future__ import annotations

import numpy as np


def cross_entropy_labels(z, labels, scale, grad):
    """Softmax cross-entropy from logits z (n, C) and class labels (n,); fills grad (n, C).

    p = softmax(z_i);  ℓ_i = log Σ_k e^(z_ik − m_i) − (z_iy − m_i),  m_i = max_k z_ik;
    grad_i = (p_i − onehot(y_i))·scale;  returns Σ_i ℓ_i (unscaled, float64).
    """
    n, classes = z.shape
    total = 0.0
    for i in range(n):
        top = z[i, 0]
        for k in range(1, classes):
            if z[i, k] > top:
                top = z[i, k]
        sum_exp = z[i, 0] - z[i, 0]  # a zero of z's dtype
        for k in range(classes):
            e = np.exp(z[i, k] - top)
            grad[i, k] = e
            sum_exp += e
        y = labels[i]
        total += float(np.log(sum_exp)) - float(z[i, y] - top)
        for k in range(classes):
            grad[i, k] = grad[i, k] / sum_exp
        grad[i, y] -= 1
        for k in range(classes):
            grad[i, k] *= scale
    return total


def cross_entropy_rows(z, t, scale, grad):
    """Softmax cross-entropy from logits z (n, C) and probability rows t (n, C); fills grad.

    ℓ_i = log Σ_k e^(z_ik − m_i) · Σ_k t_ik − Σ_k t_ik (z_ik − m_i);  grad_i = (p_i − t_i)·scale.
    """
    n, classes = z.shape
    total = 0.0
    for i in range(n):
        top = z[i, 0]
        for k in range(1, classes):
            if z[i, k] > top:
                top = z[i, k]
        sum_exp = z[i, 0] - z[i, 0]
        for k in range(classes):
            e = np.exp(z[i, k] - top)
            grad[i, k] = e
            sum_exp += e
        log_sum = float(np.log(sum_exp))
        for k in range(classes):
            total += float(t[i, k]) * (log_sum - float(z[i, k] - top))
            grad[i, k] = (grad[i, k] / sum_exp - t[i, k]) * scale
    return total


def binary_cross_entropy_logits(z, t, scale, half, grad):
    """Binary cross-entropy from logits z and targets t (flat, the same size); fills grad.

    ℓ = max(z, 0) − z·t + log(1 + e^(−|z|));  σ(z) = ½·tanh(z/2) + ½;  grad = (σ(z) − t)·scale;
    returns Σ ℓ (unscaled, float64). ``half`` is 0.5 in z's dtype.
    """
    total = 0.0
    for i in range(z.size):
        x = z[i]
        target = t[i]
        positive = x if x > 0 else x - x
        total += float(positive - x * target + np.log1p(np.exp(-abs(x))))
        p = np.tanh(x * half) * half + half
        grad[i] = (p - target) * scale
    return total
