"""What the compiled convolution and pooling paths change in run.py's LeNet case: one epoch of
``fit`` with each path on and off, taking turns in one process.

    python benchmarks/conv_paths.py               # about a minute
    python benchmarks/conv_paths.py --rounds 9 --samples 5120

Settings (the other numba kernels on in all but the last):

- ``compiled``: the default: stride-1 convolutions sample by sample (``_Conv._forward_samples``,
  kernels/conv.py) and 2×2 max pools by kernels/pooling.py;
- ``column conv``: the convolutions through the NumPy column path (the whole batch's columns,
  the col2im kernel), the pools compiled;
- ``mask pools``: the convolutions compiled, the pools through the NumPy masks;
- ``numpy``: ``chainrule.kernels.use("numpy")``, no compiled code at all.

The case is run.py's ``lenet`` (benchmarks/cases.py: conv 1→6 5×5, max-pool 2, conv 6→16 5×5,
max-pool 2, Dense 256-120-84-10, ReLU, SGD lr 0.05, batch 64, float32, MNIST-shaped images).
Prints the median samples/s of each setting and its ratio to ``compiled``. Like run.py, it
re-executes itself without OPENBLAS_CORETYPE first.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from forced_env import compiled_chainrule


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per setting")
    parser.add_argument("--samples", type=int, default=2560, help="samples per epoch (run.py --quick: 2,560)")
    args = parser.parse_args(argv)
    cr = compiled_chainrule(__file__, "compiled paths")
    if cr is None:
        return 1
    from cases import ChainruleCases

    from chainrule.layers.conv import _Conv
    from chainrule.layers.pooling import MaxPool2D
    sample_gemm, pool_compiled = _Conv._sample_gemm, MaxPool2D._compiled

    def setting(name: str) -> None:
        cr.kernels.use("numpy" if name == "numpy" else "numba")
        _Conv._sample_gemm = (lambda self, xp: None) if name == "column conv" else sample_gemm
        MaxPool2D._compiled = (lambda self, x: False) if name == "mask pools" else pool_compiled

    bench = ChainruleCases()
    names = ["compiled", "column conv", "mask pools", "numpy"]
    times: dict[str, list[float]] = {name: [] for name in names}
    for timed, rounds in ((False, 1), (True, args.rounds)):  # a warm-up round first
        for i in range(rounds):
            for name in names if i % 2 == 0 else names[::-1]:
                setting(name)
                seconds = bench.lenet(args.samples, 64)
                if timed:
                    times[name].append(seconds)
    setting("compiled")
    print(f"LeNet, batch 64, one epoch of {args.samples:,} samples: median of {args.rounds} rounds taking turns")
    base = statistics.median(times["compiled"])
    for name in names:
        median = statistics.median(times[name])
        print(f"  {name:12s} {args.samples / median:10,.0f} samples/s   {median / base:5.2f}x the time of compiled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
