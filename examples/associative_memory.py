"""An associative memory trained by Almeida–Pineda recurrent backpropagation.

Four random ±1 patterns of 32 bits are stored in a fully recurrent tanh network of 32 visible and
32 hidden units. A cue is a stored pattern with 20 % of its bits flipped (7 of 32); it drives
the visible units as a constant external input (input weights fixed to the identity on the
visible units and zero on the hidden ones). The network relaxes to its fixed point
x* = tanh(x*·W + cue·[I 0] + b), and the signs of the visible units are the recalled pattern.
Only W and b are trained, by recurrent backpropagation (FixedPointRNN, method="rbp"): the
error signal relaxes in the linear adjoint network z = g + Jᵀz, no trajectory stored.

Setup: Adam lr 3e-3, batch 32, 1,500 steps of fresh cues, MSE towards 0.9·pattern (inside
tanh's range, so the weights need not grow without bound).

    python examples/associative_memory.py              # seed 0, a few seconds
    python examples/associative_memory.py --seed 1 --method neumann
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import chainrule as cr

N_BITS, N_HIDDEN, N_PATTERNS, FLIPS = 32, 32, 4, 7


def make_cues(patterns: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` cues (a random stored pattern with FLIPS bits flipped) and the patterns they come from."""
    which = rng.integers(0, len(patterns), n)
    clean = patterns[which]
    flip = np.argsort(rng.random((n, patterns.shape[1])), axis=1)[:, :FLIPS]
    cues = clean.copy()
    np.put_along_axis(cues, flip, -np.take_along_axis(cues, flip, axis=1), axis=1)
    return cues, clean


def recall(net: cr.Sequential, patterns: np.ndarray, n: int, rng) -> tuple[float, float]:
    """Bit accuracy and the fraction of perfectly recalled patterns on ``n`` fresh cues."""
    cues, clean = make_cues(patterns, n, rng)
    correct = np.sign(net.predict(cues)) == clean
    return float(correct.mean()), float(correct.all(axis=1).mean())


def build(seed: int, method: str = "rbp") -> cr.Sequential:
    to_visible = np.hstack([np.eye(N_BITS), np.zeros((N_BITS, N_HIDDEN))])
    layer = cr.FixedPointRNN(N_BITS, N_BITS + N_HIDDEN, n_out=N_BITS, method=method,
                             weight_in=to_visible, seed=seed)
    layer.freeze("weight_in")
    return cr.Sequential(layer)


def main(seed: int = 0, steps: int = 1500, method: str = "rbp", report_every: int = 250) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    patterns = rng.choice([-1.0, 1.0], size=(N_PATTERNS, N_BITS))
    net = build(seed, method)
    optimizer = cr.Adam(3e-3)
    test_rng = np.random.default_rng(10_000 + seed)
    acc, perfect = recall(net, patterns, 1000, test_rng)
    print(f"before training: bit accuracy {acc:.3f}, perfect recall {perfect:.3f}"
          f" (the cues alone: {1 - FLIPS / N_BITS:.3f}, 0)")
    start = time.perf_counter()
    for done in range(0, steps, report_every):
        chunk = min(report_every, steps - done)
        cues, clean = make_cues(patterns, 32 * chunk, rng)
        hist = net.fit(cues, 0.9 * clean, loss="mse", optimizer=optimizer, epochs=1, batch_size=32,
                       shuffle=False, verbose=0)
        layer = net.layers[0]
        acc, perfect = recall(net, patterns, 1000, test_rng)
        print(f"step {done + chunk:5d}: loss {hist.history['loss'][-1]:.4f}, bit accuracy {acc:.4f},"
              f" perfect recall {perfect:.3f}, relaxation {layer.forward_iterations} iterations,"
              f" adjoint {layer.backward_iterations}")
    print(f"trained in {time.perf_counter() - start:.1f} s")
    return acc, perfect


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--method", choices=["rbp", "neumann", "bptt"], default="rbp")
    args = parser.parse_args()
    main(args.seed, args.steps, args.method)
