"""Sums along a 1-D row for the other kernels (compiled by numba with its adds reassociable).

One running sum waits for each add to finish before the next (four cycles a value here), and
without leave to reorder the adds LLVM keeps it that way. These two functions may reassociate
(numba's fastmath "reassoc", on them only): LLVM then sums in vector lanes and adds the lanes at
the end, as NumPy's pairwise sums and BLAS's blocked ones do in their own orders. So a kernel's
sums agree with the NumPy path to rounding, and may differ in their last bits between CPUs of
other vector widths. Measured: 2,048 rows of 128 float32 values, Σ a·b per row, 147 µs with one
running sum against 16 µs here; LayerNorm forward + backward on (32, 64, 128), 702 µs against
201 µs (NumPy: 556 µs).

Imported by the kernel modules that sum rows (norm.py, attention.py), which ``kernels.compiled``
imports after numba.
"""

from __future__ import annotations

import numba

_reassociable = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})


@_reassociable
def total(a, zero):
    """Σ a[j] (``zero`` = 0 in a's dtype)."""
    s = zero
    for j in range(a.shape[0]):
        s += a[j]
    return s


@_reassociable
def dot(a, b, zero):
    """Σ a[j]·b[j] (``zero`` = 0 in the arrays' dtype)."""
    s = zero
    for j in range(a.shape[0]):
        s += a[j] * b[j]
    return s
