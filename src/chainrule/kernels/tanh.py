"""tanh in float32 that a compiled loop can vectorize (numba; imported by the kernel modules that
use it, after numba).

numba computes tanh by calling the C library once per value (12 ns per float32 value here), and
LLVM cannot vectorize that call; NumPy's own SIMD tanh takes 0.4 ns, but a compiled loop cannot call
it. So a kernel that must take a tanh between its other arithmetic (the recurrences of RNN, LSTM and GRU
in kernels/recurrent.py) uses this one: only multiplications, additions, one division and two
comparisons, which LLVM turns into vector instructions.

    tanh(x) ≈ x·P(x²)/Q(x²)   for |x| ≤ 9,   x clamped to ±9 beyond (tanh(9) = 1 − 3·10⁻⁸)

P of degree 6 and Q of degree 3 in s = x², Q(0) = 1: a near-minimax fit of the relative error on
[0, 9] that tools/fit_tanh.py computes (6.6·10⁻⁹ in exact arithmetic). Evaluated in float32 by
Horner's rule with every product and sum rounded (no fused multiply-add, so the bits do not depend
on the CPU), its largest error is 5.5 units in the last place (NumPy's float32 tanh: 1.4), i.e.
3.3·10⁻⁷ relative; ``python tools/fit_tanh.py`` measures both on every third float32 up to 10. It
is odd (tanh(−x) = −tanh(x) to the bit), keeps NaN, never leaves [−1, 1] (the result is
clamped there: the rounding passes 1 by up to two ulps for some x between 6 and 9), gives
±0.99999988 (two ulps below ±1) for |x| ≥ 9 and ±inf, and x itself, to within one ulp, for tiny x.

float32 only: for float64 these coefficients are too few (the kernels keep NumPy's tanh there).
Speed: 8,192 float32 values in 2.9 µs, NumPy's tanh 3.3 µs, the C library's through numba 95 µs.
numba's disk cache knows a kernel by its own file: after an edit here, touch the files whose
kernels call tanh32 (recurrent.py), or their cached machine code keeps the old coefficients.
"""

from __future__ import annotations

import numba
import numpy as np

_f = np.float32
LIMIT, ONE = _f(9.0), _f(1.0)
P0, P1, P2, P3, P4, P5, P6 = (_f(0.9999999933905737), _f(0.13084007735976594), _f(0.0031039535174197425),
                              _f(1.1154278488405712e-05), _f(-2.0225096359595954e-08),
                              _f(5.277882211557848e-11), _f(-8.48853288589584e-14))
Q0, Q1, Q2, Q3 = _f(1.0), _f(0.4641733483911468), _f(0.024495167811967925), _f(0.0002546141199287743)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def tanh32(x):
    """tanh of one float32 value (the module docstring gives its accuracy)."""
    x = LIMIT if x > LIMIT else x      # NaN fails both tests and stays NaN
    x = -LIMIT if x < -LIMIT else x
    s = x * x
    p = ((((((P6 * s + P5) * s + P4) * s + P3) * s + P2) * s + P1) * s + P0)
    q = (((Q3 * s + Q2) * s + Q1) * s + Q0)
    t = x * (p / q)
    t = ONE if t > ONE else t          # the rounding of p/q can pass 1 by an ulp or two near 6 to 9
    return -ONE if t < -ONE else t


def tanh_array(x, out):
    """out[i] = tanh32(x[i]) over 1-D float32 arrays (for tests and tools/fit_tanh.py)."""
    for i in range(x.shape[0]):
        out[i] = tanh32(x[i])
