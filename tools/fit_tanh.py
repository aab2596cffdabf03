"""Fit the coefficients of chainrule's float32 tanh (src/chainrule/kernels/tanh.py) and measure it.

    python tools/fit_tanh.py          # prints the coefficients and the error in float32 ulps

The form is tanh(x) ≈ x·P(x²)/Q(x²) on [0, 9] (odd, so the sign comes for free; beyond 9 the float32
tanh is 1 to within one ulp and the kernel clamps x there), P of degree 6 and Q of degree 3 in x²,
Q(0) = 1. The fit minimizes the largest relative error over a dense grid: a weighted linear least
squares problem, in which the denominator of the previous round divides both sides (so the problem
stays linear in the coefficients), and each round raises the weight of the points where the error
was largest (Lawson's iteration), so the least-squares fit moves towards the minimax one.

The reference is NumPy's float64 tanh. The second part evaluates the float32 kernel itself on every
third float32 from 2⁻³⁰ to 10 and prints its largest error in units of the last place, next to that
of NumPy's own float32 tanh.
"""

from __future__ import annotations

import numpy as np

LIMIT, N_P, N_Q = 9.0, 7, 4


def fit(rounds: int = 400):
    k = np.arange(60001)
    x = LIMIT * (1 - np.cos(np.pi * k / 120000))                 # denser towards 0 and 9
    x = np.unique(np.concatenate([x[1:], np.linspace(1e-5, LIMIT, 60000)]))
    t = np.tanh(x)
    u = (x / LIMIT) ** 2                                         # in [0, 1]: a well-conditioned basis
    basis_p = np.stack([x * u**i for i in range(N_P)], axis=1)
    basis_q = np.stack([u**i for i in range(N_Q)], axis=1)
    weight, q_prev, best = np.ones_like(x), np.ones_like(x), (np.inf, None)
    for _ in range(rounds):
        # (x·P − t·Q) / (t·Q_prev) is the relative error when Q = Q_prev; Q's constant term is 1
        a = np.hstack([basis_p, -t[:, None] * basis_q[:, 1:]]) / (t * q_prev)[:, None]
        b = basis_q[:, 0] / q_prev
        root = np.sqrt(weight)
        coef, *_ = np.linalg.lstsq(a * root[:, None], b * root, rcond=None)
        p, q = coef[:N_P], np.concatenate([[1.0], coef[N_P:]])
        q_prev = basis_q @ q
        error = np.abs((basis_p @ p) / q_prev - t) / t
        if error.max() < best[0]:
            best = (error.max(), (p, q))
        weight = weight * error
        weight /= weight.mean()
    p, q = best[1]
    # back to powers of s = x²
    return best[0], p / LIMIT ** (2 * np.arange(N_P)), q / LIMIT ** (2 * np.arange(N_Q))


def ulp_error() -> tuple[float, float]:
    from chainrule import kernels

    kernel = kernels.compiled("tanh", "tanh_array")
    lo, hi = int(np.float32(2.0**-30).view(np.uint32)), int(np.float32(10.0).view(np.uint32))
    ours = theirs = 0.0
    for start in range(lo, hi, 60_000_000):
        x = np.arange(start, min(start + 60_000_000, hi), 3, dtype=np.uint32).view(np.float32)
        out = np.empty_like(x)
        kernel(x, out)
        exact = np.tanh(x.astype(np.float64))
        ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
        ours = max(ours, float(np.max(np.abs(out - exact) / ulp)))
        theirs = max(theirs, float(np.max(np.abs(np.tanh(x) - exact) / ulp)))
    return ours, theirs


if __name__ == "__main__":
    worst, p, q = fit()
    print(f"largest relative error of the fit (exact arithmetic): {worst:.2e}")
    print("P =", ", ".join(repr(float(v)) for v in p))
    print("Q =", ", ".join(repr(float(v)) for v in q))
    ours, theirs = ulp_error()
    print(f"float32 kernel: largest error {ours:.2f} ulp (NumPy's float32 tanh: {theirs:.2f} ulp)")
