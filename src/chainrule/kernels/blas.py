"""NumPy's own BLAS, for compiled code: its ``cblas_sgemm`` and ``cblas_dgemm`` as ctypes functions.

A compiled loop that multiplies matrices (kernels/epoch.py) calls the gemm of the BLAS library
NumPy itself was built with, passed in as an argument: the same library, the same call and so
the same bits as ``np.dot`` on the same arrays, on the same thread pool. numba's own ``np.dot``
calls SciPy's BLAS instead, a second build with a second thread pool; on this machine a batch-32
MLP epoch ran 0.86x as fast that way as batch by batch through NumPy, and 1.21x through NumPy's
gemm (docs/speed.md).

The library is found where NumPy's wheels put it (``numpy.libs`` on Linux and Windows,
``numpy/.dylibs`` on macOS: OpenBLAS as ``libscipy_openblas``); the 64-bit-integer interface
when its symbols end in ``64_``. Anything else (a NumPy linked against MKL or a system BLAS)
gives None, and the caller keeps to NumPy.
"""

from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # the CBLAS enums

_found: dict = {}


def gemm(dtype):
    """NumPy's BLAS ``cblas_<s|d>gemm`` for ``dtype`` (float32 or float64) as a ctypes function, or
    None where it cannot be found. Arguments: (order, transA, transB, M, N, K, alpha, A, lda, B,
    ldb, beta, C, ldc), pointers as ``array.ctypes``."""
    dtype = np.dtype(dtype)
    if dtype not in _found:
        _found[dtype] = _load(dtype)
    return _found[dtype]


def _libraries() -> list[str]:
    root = os.path.dirname(np.__file__)
    patterns = [os.path.join(root + ".libs", "*openblas*"), os.path.join(root, ".dylibs", "*openblas*")]
    return sorted(path for pattern in patterns for path in glob.glob(pattern))


def _load(dtype):
    letter = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}.get(dtype)
    if letter is None:
        return None
    scalar = ctypes.c_float if letter == "s" else ctypes.c_double
    for path in _libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        wide, narrow = ctypes.c_int64, ctypes.c_int32  # the ILP64 interface ends its names in 64_
        for name, index in ((f"scipy_cblas_{letter}gemm64_", wide), (f"cblas_{letter}gemm64_", wide),
                            (f"scipy_cblas_{letter}gemm", narrow), (f"cblas_{letter}gemm", narrow)):
            function = getattr(lib, name, None)
            if function is None:
                continue
            enum, pointer = ctypes.c_int, ctypes.c_void_p
            function.restype = None
            function.argtypes = [enum, enum, enum, index, index, index, scalar, pointer, index, pointer, index,
                                 scalar, pointer, index]
            if _agrees(function, dtype):
                return function
    return None


def _agrees(function, dtype) -> bool:
    """A small product through ``function`` equals NumPy's, to the bit (the interface is right)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((7, 5)).astype(dtype), rng.standard_normal((5, 3)).astype(dtype)
    out = np.full((7, 3), np.nan, dtype)
    function(ROW_MAJOR, NO_TRANS, NO_TRANS, 7, 3, 5, 1.0, a.ctypes, 5, b.ctypes, 3, 0.0, out.ctypes, 3)
    return bool(np.array_equal(out, a @ b))
