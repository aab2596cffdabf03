"""Optimizer updates as one loop over a parameter's elements (compiled by numba; see __init__).

Each function is the NumPy ``_update`` of the same name in chainrule/optim.py, element by
element, in the same order of operations, so the results agree to rounding (the same bits
where the math library's sqrt and the hardware agree). Arrays are 1-D and C-contiguous;
every scalar comes in the parameter's dtype (the caller converts it), so float32 stays
float32 as in NumPy, where a Python float meets a float32 array in float32.

``tiny``: a state value whose magnitude is below it becomes +0.0 where it is computed (the
smallest normal number of the dtype, or 0 to keep plain IEEE arithmetic). ``x - x`` writes
that zero: a literal 0.0 would make numba widen a float32 variable to float64.
"""

from __future__ import annotations

import math


def sgd(param, grad, buf, lr, momentum, keep, weight_decay, nesterov, first, tiny):
    """SGD:  g ← g + λθ;  b ← μ·b + (1 − τ)·g  (b = g at the first step);
    g ← g + μ·b if nesterov else b;  θ ← θ − lr·g.   ``keep`` = 1 − τ; momentum 0: no buffer."""
    for i in range(param.size):
        g = grad[i]
        if weight_decay != 0:
            g = g + weight_decay * param[i]
        if momentum != 0:
            if first:
                b = g
            else:
                b = buf[i] * momentum + keep * g
            if abs(b) < tiny:
                b = b - b
            buf[i] = b
            g = g + momentum * b if nesterov else b
        param[i] -= g * lr


def adam(param, grad, m, v, step_size, b1, c1, b2, c2, inv_bias2, eps, weight_decay, decay, tiny, tiny_v):
    """Adam:  m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;
    θ ← θ − step_size · m / (√v · inv_bias2 + ε),  step_size = lr/(1 − β₁ᵗ), inv_bias2 = 1/√(1 − β₂ᵗ).

    c1 = 1 − β₁, c2 = 1 − β₂. Weight decay: coupled (g ← g + λθ) with ``weight_decay`` ≠ 0,
    decoupled (θ ← θ·decay first, AdamW) with ``decay`` ≠ 1. ``tiny_v``: v's own threshold
    (0 when ε = 0: a flushed v would be a zero denominator).
    """
    for i in range(param.size):
        g = grad[i]
        if weight_decay != 0:
            g = g + weight_decay * param[i]
        if decay != 1:
            param[i] *= decay
        mi = m[i] * b1 + c1 * g
        vi = v[i] * b2 + c2 * (g * g)
        if abs(mi) < tiny:
            mi = mi - mi
        if abs(vi) < tiny_v:
            vi = vi - vi
        m[i] = mi
        v[i] = vi
        denom = math.sqrt(vi) * inv_bias2 + eps
        param[i] -= (mi / denom) * step_size


def rmsprop(param, grad, square_avg, grad_avg, buf, lr, alpha, c, eps, weight_decay, momentum,
            centered, tiny, tiny_s):
    """RMSProp:  s ← αs + (1 − α)g²;  d = √s + ε  (centered: ḡ ← αḡ + (1 − α)g, d = √(s − ḡ²) + ε);
    θ ← θ − lr·g/d,  or with momentum b ← μb + g/d;  θ ← θ − lr·b.   c = 1 − α.

    ``tiny_s``: s's own threshold, 0 when centered (a flushed s under an unflushed ḡ² makes
    s − ḡ² negative) or when ε = 0 (a zero denominator)."""
    for i in range(param.size):
        g = grad[i]
        if weight_decay != 0:
            g = g + weight_decay * param[i]
        s = square_avg[i] * alpha + c * (g * g)
        if abs(s) < tiny_s:
            s = s - s
        square_avg[i] = s
        if centered:
            a = grad_avg[i] * alpha + c * g
            if abs(a) < tiny:
                a = a - a
            grad_avg[i] = a
            d = math.sqrt(s - a * a) + eps
        else:
            d = math.sqrt(s) + eps
        if momentum != 0:
            b = buf[i] * momentum + g / d
            if abs(b) < tiny:
                b = b - b
            buf[i] = b
            param[i] -= lr * b
        else:
            param[i] -= lr * (g / d)


def adagrad(param, grad, total, clr, eps, weight_decay, tiny):
    """Adagrad:  s ← s + g²;  θ ← θ − clr·g / (√s + ε),  clr = lr/(1 + (t − 1)·decay)."""
    for i in range(param.size):
        g = grad[i]
        if weight_decay != 0:
            g = g + weight_decay * param[i]
        s = total[i] + g * g
        if abs(s) < tiny:
            s = s - s
        total[i] = s
        param[i] -= clr * g / (math.sqrt(s) + eps)
