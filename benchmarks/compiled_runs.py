"""What fit's compiled runs of batches (chainrule.step.DenseRuns) change: each case with them on and
off (``DenseRuns.enabled``; the other numba kernels on in both), taking turns in one process.

    python benchmarks/compiled_runs.py            # about two minutes
    python benchmarks/compiled_runs.py --rounds 9 --cases tiny,digits

The cases are run.py's (benchmarks/cases.py, the same data and settings): the 2-2-2 sigmoid
network per sample (2,000 steps), the same network's ``fit(epochs=1,000)`` on its one sample, the
64-32-16-10 sigmoid digits network per sample (one epoch, 1,797 steps), at batch 32, and per
sample with Adam (lr 0.01), and one
epoch of the 784-256-128-10 ReLU MLP on 59,904 MNIST-shaped samples at batch 32 (with and without
momentum 0.9), 128 and 512. Prints the median samples (or steps) per second of
each and the ratio on/off. Needs numba and NumPy's own BLAS (a NumPy wheel). Like run.py, it re-executes itself without
OPENBLAS_CORETYPE first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from forced_env import compiled_chainrule


def digits_batches(cr, batch: int, adam: bool = False) -> float:
    """One epoch of the digits network at ``batch`` (run.py times it per sample with SGD)."""
    from cases import data

    X, Y = data("digits")
    net = cr.mlp([64, 32, 16, 10], activation="sigmoid", output_activation="sigmoid", seed=0)
    optimizer = cr.Adam(lr=0.01) if adam else cr.SGD(lr=0.5)
    start = time.perf_counter()
    net.fit(X, Y, loss=cr.SSE(), optimizer=optimizer, epochs=1, batch_size=batch, seed=0, verbose=0)
    return time.perf_counter() - start


def cases(bench):
    """name -> (a call that runs the case once, the samples or steps it runs)."""
    mlp = 59_904
    return {
        "tiny": (lambda: bench.tiny(2000), 2000),
        "tiny_epochs": (lambda: bench.tiny_epochs(1000), 1000),
        "digits": (lambda: bench.digits(), 1797),
        "digits_b32": (lambda: digits_batches(bench.cr, 32), 1797),
        "digits_adam": (lambda: digits_batches(bench.cr, 1, adam=True), 1797),
        "mlp_b32": (lambda: bench.mlp(mlp, 32, 0.0)["seconds"], mlp),
        "mlp_b32_momentum": (lambda: bench.mlp(mlp, 32, 0.9)["seconds"], mlp),
        "mlp_b128": (lambda: bench.mlp(mlp, 128, 0.0)["seconds"], mlp),
        "mlp_b512": (lambda: bench.mlp(mlp, 512, 0.0)["seconds"], mlp),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per case and setting")
    parser.add_argument("--cases", default="", help="comma-separated names (default: all)")
    args = parser.parse_args(argv)
    if compiled_chainrule(__file__, "compiled runs") is None:
        return 1
    from cases import ChainruleCases

    from chainrule.step import DenseRuns
    bench = ChainruleCases()
    chosen = cases(bench)
    if args.cases:
        chosen = {name: chosen[name] for name in args.cases.split(",")}
    print(f"compiled runs on / off, median of {args.rounds} rounds taking turns (after one warm-up each)")
    for name, (run, work) in chosen.items():
        times: dict[bool, list[float]] = {True: [], False: []}
        for timed, rounds in ((False, 1), (True, args.rounds)):  # a warm-up round first
            for i in range(rounds):
                for enabled in (True, False) if i % 2 == 0 else (False, True):
                    DenseRuns.enabled = enabled
                    seconds = run()
                    if timed:
                        times[enabled].append(seconds)
        DenseRuns.enabled = True
        on, off = statistics.median(times[True]), statistics.median(times[False])
        print(f"  {name:18s} on {work / on:12,.0f}/s   off {work / off:12,.0f}/s   on/off {off / on:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
