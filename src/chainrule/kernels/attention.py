"""Attention's softmax over each row of the scores, forward and backward (compiled by numba; see
__init__).

Each function is part of the NumPy ``forward`` or ``backward`` of chainrule/layers/attention.py,
row by row: the scores are (n, H, T, T) seen as R = n·H·T rows of T, C-contiguous, updated in
place. The exponential between the two forward kernels stays NumPy's (its SIMD loop; numba calls
the C library per element, see activations.py). A row's maximum is taken in a plain loop, its
sums by kernels/sums.py (in vector lanes; NumPy sums pairwise), so a row's sum can differ in its
last bit. Each inner loop runs over a 1-D row slice.
"""

from __future__ import annotations

import numpy as np

from .sums import dot, total


def softmax_shift(s):
    """s_r ← s_r − max(s_r) for every row r (−inf entries, the causal mask, stay −inf)."""
    for r in range(s.shape[0]):
        row = s[r]
        top = row[0]
        for j in range(1, row.shape[0]):
            if row[j] > top:
                top = row[j]
        for j in range(row.shape[0]):
            row[j] -= top


def softmax_normalize(e):
    """e_r ← e_r / Σ_j e_rj for every row r (e holds exp of the shifted scores)."""
    zero = np.zeros(1, e.dtype)[0]
    for r in range(e.shape[0]):
        row = e[r]
        scale = total(row, zero)
        for j in range(row.shape[0]):
            row[j] /= scale


def softmax_backward(dp, p):
    """dS_r = P_r ∘ (dP_r − Σ_j dP_rj·P_rj), into dp in place, for every row r."""
    zero = np.zeros(1, dp.dtype)[0]
    for r in range(dp.shape[0]):
        d_row, p_row = dp[r], p[r]
        inner = dot(d_row, p_row, zero)
        for j in range(d_row.shape[0]):
            d_row[j] = (d_row[j] - inner) * p_row[j]
