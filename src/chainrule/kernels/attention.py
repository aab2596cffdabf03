"""Attention's softmax over each row of the scores, forward and backward (compiled by numba; see
__init__).

Each function is part of the NumPy ``forward`` or ``backward`` of chainrule/layers/attention.py,
row by row: the scores are (n, H, T, T) seen as R = n·H·T rows of T, C-contiguous, updated in
place. The exponential between the two forward kernels stays NumPy's (its SIMD loop; numba calls
the C library per element, see activations.py). A row's maximum and sum are taken in a plain
loop, NumPy's in its pairwise order, so a row's sum can differ in its last bit.
"""

from __future__ import annotations


def softmax_shift(s):
    """s_r ← s_r − max(s_r) for every row r (−inf entries, the causal mask, stay −inf)."""
    rows, width = s.shape
    for r in range(rows):
        top = s[r, 0]
        for j in range(1, width):
            if s[r, j] > top:
                top = s[r, j]
        for j in range(width):
            s[r, j] -= top


def softmax_normalize(e):
    """e_r ← e_r / Σ_j e_rj for every row r (e holds exp of the shifted scores)."""
    rows, width = e.shape
    for r in range(rows):
        total = e[r, 0]
        for j in range(1, width):
            total += e[r, j]
        for j in range(width):
            e[r, j] /= total


def softmax_backward(dp, p):
    """dS_r = P_r ∘ (dP_r − Σ_j dP_rj·P_rj), into dp in place, for every row r."""
    rows, width = dp.shape
    for r in range(rows):
        dot = dp[r, 0] * p[r, 0]
        for j in range(1, width):
            dot += dp[r, j] * p[r, j]
        for j in range(width):
            dp[r, j] = (dp[r, j] - dot) * p[r, j]
