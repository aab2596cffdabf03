"""What plain NumPy can reach on this machine, without chainrule: the floors behind two targets.

    python benchmarks/numpy_floor.py            # both parts, about a minute
    python benchmarks/numpy_floor.py --part mlp --batch 128 --momentum 0.9

1. **The batch-512 MLP step** (issue target: >= 75 % of the NumPy matmul peak). The 784-256-128-10
   ReLU MLP step of ``run.py``'s ``step_b512`` case, written inline with the fewest NumPy calls
   (no layers, no loss object, no checks, no callbacks): per-batch gather ``np.take``, forward,
   fused softmax cross-entropy, backward without dL/dx of the first layer, plain SGD. Timed as
   the median step over epochs of 60,000 shuffled samples, once with the gather inside the step
   (as chainrule's ``fit`` does for data above 16 MiB) and once with the epoch gathered ahead
   (as the PyTorch loop does), then the matrix products alone, and chainrule's own ``fit``
   step (timed as run.py's ``step_b512``), the four taking turns epoch by epoch, each against
   the float32 2048 x 2048 matmul peak measured in the same process. ``--batch`` and ``--momentum`` time
   the same step at another batch size or with torch.optim's momentum rule, in samples/s to
   set beside run.py's ``mlp_b*`` rows (for instance against scikit-learn at batch 128).
2. **The LSTM step** (issue target: >= 1x PyTorch's nn.LSTM). The recurrent case of
   ``bench_rnn.py`` (seq 50, batch 64, 32 -> 128): the matrix products one BPTT step cannot avoid
   (input projection, 50 recurrent products forward and 50 backward, the weight gradients),
   timed alone, and the cost of each element-wise NumPy call an LSTM time step needs at these
   shapes, summed over the shortest sequence of calls found (forward 10, local derivatives 10,
   backward 6 per time step). Nothing else is counted: not the loss, the head, the update, nor
   the Python between the calls. Compare the sum with PyTorch's whole step, ms/step from
   ``bench_rnn.py --kinds lstm``.

Like run.py, it re-executes itself without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from forced_env import reexec_without_forced_env


def per_call(fn, number: int = 200) -> float:
    """Median seconds of one call over 7 batches of ``number`` calls, after a warm-up."""
    for _ in range(20):
        fn()
    times = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


# --- 1. the batch-512 MLP step -----------------------------------------------------------------
def mlp_part(np, epochs: int, bs: int = 512, momentum: float = 0.0) -> None:
    from cases import mnist_like, numpy_matmul_peak

    n, lr, mu = 60_000, np.float32(0.1), np.float32(momentum)
    X, y = mnist_like(n)
    rng = np.random.default_rng(0)
    sizes = (784, 256, 128, 10)
    pairs = list(zip(sizes, sizes[1:], strict=False))
    W = [rng.standard_normal((a, b), dtype=np.float32) * np.float32((2 / a) ** 0.5) for a, b in pairs]
    B = [np.zeros(b, np.float32) for b in sizes[1:]]
    zeros = [np.zeros(b, np.float32) for b in sizes[1:3]]
    buffers = [np.zeros_like(p) for p in (*W, *B)]
    # run.py's FLOP count: x·W and xᵀ·δ for every layer, δ·Wᵀ for all but the first
    flops = (sum(4 * a * b for a, b in pairs) + sum(2 * a * b for a, b in pairs[1:])) * bs / 1e9

    def step(xb, yb):
        z1 = np.dot(xb, W[0])
        z1 += B[0]
        a1 = np.maximum(z1, zeros[0])
        z2 = np.dot(a1, W[1])
        z2 += B[1]
        a2 = np.maximum(z2, zeros[1])
        z3 = np.dot(a2, W[2])
        z3 += B[2]
        p = np.exp(z3 - np.maximum.reduce(z3, axis=1, keepdims=True))
        p /= np.add.reduce(p, axis=1, keepdims=True)
        p[np.arange(len(yb)), yb] -= 1
        p *= np.float32(1 / len(yb))
        g3, gb3 = np.dot(a2.T, p), np.add.reduce(p, axis=0)
        d2 = np.dot(p, W[2].T)
        d2 *= a2 > 0
        g2, gb2 = np.dot(a1.T, d2), np.add.reduce(d2, axis=0)
        d1 = np.dot(d2, W[1].T)
        d1 *= a1 > 0
        g1, gb1 = np.dot(xb.T, d1), np.add.reduce(d1, axis=0)
        for param, grad, buf in zip((*W, *B), (g1, g2, g3, gb1, gb2, gb3), buffers, strict=True):
            if mu:  # torch.optim's rule, as chainrule and the PyTorch case use: b ← μb + g, θ ← θ − lr·b
                buf *= mu
                buf += grad
                grad = buf
            param -= grad * lr

    def products(xb, yb):  # the matrix products of the same step alone, on the same shapes
        a1 = np.dot(xb, W[0])
        a2 = np.dot(a1, W[1])
        p = np.dot(a2, W[2])
        np.dot(a2.T, p), np.dot(a1.T, a2), np.dot(xb.T, a1)
        np.dot(p, W[2].T), np.dot(a2, W[1].T)

    import chainrule as cr

    net = cr.mlp(list(sizes), seed=0)
    optimizer = cr.SGD(lr=0.1, momentum=momentum)
    marks: list[float] = []
    stamp = cr.LambdaCallback(on_batch_end=lambda batch, logs: marks.append(time.perf_counter()))

    def plain_epoch(fn, ahead: bool, seed: int) -> list[float]:
        order = np.random.default_rng(seed).permutation(n)
        Xs, ys = (np.take(X, order, axis=0), np.take(y, order, axis=0)) if ahead else (X, y)
        times, last = [], time.perf_counter()
        for b in range(n // bs):
            if ahead:
                xb, yb = Xs[b * bs:(b + 1) * bs], ys[b * bs:(b + 1) * bs]
            else:
                rows = order[b * bs:(b + 1) * bs]
                xb, yb = np.take(X, rows, axis=0), np.take(y, rows, axis=0)
            fn(xb, yb)
            now = time.perf_counter()
            times.append(now - last)
            last = now
        return times[1:]

    def chainrule_epoch(seed: int) -> list[float]:  # run.py's step_b512: from one batch's end to the next
        marks.clear()
        net.fit(X, y, loss=cr.CrossEntropy(), optimizer=optimizer, epochs=1, batch_size=bs, seed=seed,
                verbose=0, callbacks=[stamp])
        return [b - a for a, b in zip(marks, marks[1:], strict=False)]

    variants = {
        "chainrule fit, the same step": lambda e: chainrule_epoch(e),
        "step, batch gathered in the step": lambda e: plain_epoch(step, False, e),
        "step, epoch gathered ahead": lambda e: plain_epoch(step, True, e),
        "matrix products alone": lambda e: plain_epoch(products, True, e),
    }
    # The variants take turns epoch by epoch (a slow stretch of the shared machine hits them alike);
    # each one's first epoch warms up.
    times: dict[str, list[float]] = {label: [] for label in variants}
    for e in range(epochs):
        for label, run_epoch in variants.items():
            step_times = run_epoch(e)
            if e:
                times[label] += step_times
    results = {label: statistics.median(v) for label, v in times.items()}
    peak = numpy_matmul_peak(2048, 10)
    print(f"MLP 784-256-128-10, batch {bs}, SGD" + (f" momentum {momentum}" if momentum else "")
          + f", median step over {epochs - 1} epochs of 60,000; float32 matmul peak {peak:.0f} GFLOP/s")
    for label, seconds in results.items():
        print(f"  {label:36s} {seconds * 1e3:6.3f} ms  {bs / seconds / 1e3:5.0f}k samples/s"
              f"  {flops / seconds:5.0f} GFLOP/s  {flops / seconds / peak:5.1%} of the peak")
    ratio = results["step, batch gathered in the step"] / results["chainrule fit, the same step"]
    print(f"  chainrule's step runs at {ratio:.0%} of the speed of the hand-written one")


# --- 2. the LSTM step --------------------------------------------------------------------------
def lstm_part(np) -> None:
    from cases import numpy_matmul_peak

    T, n, n_in, H = 50, 64, 32, 128
    rng = np.random.default_rng(0)
    f32 = np.float32
    x = rng.standard_normal((T * n, n_in), dtype=f32)
    w_ih, w_hh = rng.standard_normal((n_in, 4 * H), dtype=f32), rng.standard_normal((H, 4 * H), dtype=f32)
    w_hh_t = np.ascontiguousarray(w_hh.T)
    h, z4, d4 = rng.random((n, H), dtype=f32), rng.random((n, 4 * H), dtype=f32), rng.random((n, 4 * H), dtype=f32)
    hs, deltas = rng.random((T * n, H), dtype=f32), rng.random((T * n, 4 * H), dtype=f32)
    a, b, c = (rng.random((n, H), dtype=f32) for _ in range(3))
    out4, out1 = np.empty((n, 4 * H), f32), np.empty((n, H), f32)
    d3, c3 = d4.reshape(n, 4, H)[:, :3], c[:, None, :]
    g_ih, g_hh, g_b = np.empty((n_in, 4 * H), f32), np.empty((H, 4 * H), f32), np.empty(4 * H, f32)

    products = {
        "input projection x·W_ih (once)": (1, lambda: np.dot(x, w_ih)),
        "h·W_hh, forward (per time step)": (T, lambda: np.dot(h, w_hh, out=out4)),
        "δ·W_hhᵀ, backward (per time step)": (T, lambda: np.dot(d4, w_hh_t, out=out1)),
        "weight gradients xᵀδ, hᵀδ, Σδ (once)": (1, lambda: (np.dot(x.T, deltas, out=g_ih),
                                                           np.dot(hs.T, deltas, out=g_hh),
                                                           np.add.reduce(deltas, axis=0, out=g_b))),
    }
    # The shortest sequence found of element-wise calls per time step. Forward: add the recurrent
    # part, one tanh over the four gates, the affine ½t + ½ of the sigmoid gates (2 calls), then
    # c = f∘c + i∘g (3), tanh(c), h = o∘tanh(c). The local derivatives, per time step while its
    # gates are in cache: 1 − t² over the four gates and its scale (¼ for the sigmoid gates: 3
    # calls), times each gate's partner (g, c_{t-1}, i, tanh c: 4 calls), and ∂h/∂c =
    # o∘(1 − tanh²c) (3 calls). Backward: dc = dh∘(∂h/∂c) + dc' (2), δ of i, f, g in one broadcast
    # call, δ of o, dc∘f, and the sum into dh (6).
    elementwise = {
        "forward: 4H-wide calls (add, affine x2)": (3 * T, lambda: np.add(z4, d4, out=out4)),
        "forward: tanh over 4H": (T, lambda: np.tanh(z4, out=out4)),
        "forward: H-wide calls (x5)": (5 * T, lambda: np.multiply(a, b, out=out1)),
        "forward: tanh over H": (T, lambda: np.tanh(a, out=out1)),
        "derivatives: 4H-wide calls (x3)": (3 * T, lambda: np.multiply(z4, d4, out=out4)),
        "derivatives: H-wide calls (x7)": (7 * T, lambda: np.multiply(a, b, out=out1)),
        "backward: 3H-wide broadcast δ (x1)": (T, lambda: np.multiply(d3, c3, out=d3)),
        "backward: H-wide calls (x5)": (5 * T, lambda: np.multiply(a, b, out=out1)),
    }
    peak = numpy_matmul_peak(2048, 10)
    print(f"LSTM {n_in}-{H}, seq {T}, batch {n}, plain NumPy, per training step;"
          f" float32 matmul peak {peak:.0f} GFLOP/s")
    total = {}
    for group, items in (("matrix products", products), ("element-wise calls", elementwise)):
        total[group] = 0.0
        for label, (count, fn) in items.items():
            seconds = per_call(fn, 50 if count == 1 else 500) * count
            total[group] += seconds
            print(f"  {label:42s} x{count:<4d} {seconds * 1e3:6.3f} ms")
        print(f"  {'= ' + group:48s} {total[group] * 1e3:6.3f} ms")
    print(f"  floor: {sum(total.values()) * 1e3:.2f} ms per step, before the loss, the head, the update"
          " and any Python between the calls; compare PyTorch's ms/step from bench_rnn.py --kinds lstm")


def main(argv=None) -> int:
    reexec_without_forced_env(__file__)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("mlp", "lstm", "both"), default="both")
    parser.add_argument("--epochs", type=int, default=4, help="MLP epochs per variant (the first warms up)")
    parser.add_argument("--batch", type=int, default=512, help="MLP batch size (the target's case: 512)")
    parser.add_argument("--momentum", type=float, default=0.0, help="MLP SGD momentum")
    args = parser.parse_args(argv)
    import numpy as np

    if args.part in ("mlp", "both"):
        mlp_part(np, args.epochs, args.batch, args.momentum)
    if args.part in ("lstm", "both"):
        lstm_part(np)
    return 0


if __name__ == "__main__":
    sys.exit(main())
