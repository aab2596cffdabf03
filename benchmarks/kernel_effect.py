"""How the OpenBLAS kernel this machine forces changes the scikit-learn comparison.

    python benchmarks/kernel_effect.py              # about a minute
    python benchmarks/kernel_effect.py --out benchmarks/results/kernel_effect.md

This machine exports ``OPENBLAS_CORETYPE=Haswell`` (and ``OPENBLAS_L2_SIZE``), which pins
OpenBLAS to an older kernel; ``run.py`` drops both, as every case in the suite runs with the
kernel OpenBLAS picks itself. scikit-learn's MLP spends most of its step in OpenBLAS, so its
speed relative to PyTorch (which uses MKL, untouched by these variables) depends on that
choice. This script times one batch-128 epoch of ``run.py``'s MLP case (60,000 MNIST-shaped
samples, 784-256-128-10, SGD lr 0.1, with and without momentum 0.9) for scikit-learn and
chainrule, in a fresh process per kernel, the two kernels taking turns, best of 3 epochs
each, and prints samples/s. PyTorch's figures for the same case are in the suite's results.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from forced_env import clean_env

HERE = Path(__file__).resolve().parent
FORCED = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}


def worker(momentum: float) -> dict:
    """Best-of-3 samples/s of scikit-learn and chainrule on one batch-128 epoch (this process's BLAS)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    sys.path.insert(0, str(HERE))
    from cases import mnist_like

    import chainrule as cr

    X, y = mnist_like(60_000)
    best = {"scikit-learn": 0.0, "chainrule": 0.0}
    for r in range(3):
        clf = MLPClassifier(hidden_layer_sizes=(256, 128), solver="sgd", alpha=0, batch_size=128,
                            learning_rate_init=0.1, momentum=momentum, nesterovs_momentum=False, max_iter=1,
                            shuffle=True, early_stopping=False, random_state=r)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            clf.fit(X, y)
            best["scikit-learn"] = max(best["scikit-learn"], len(X) / (time.perf_counter() - start))
        net = cr.mlp([784, 256, 128, 10], seed=r)
        start = time.perf_counter()
        net.fit(X, y, loss=cr.CrossEntropy(), optimizer=cr.SGD(lr=0.1, momentum=momentum), epochs=1,
                batch_size=128, verbose=0)
        best["chainrule"] = max(best["chainrule"], len(X) / (time.perf_counter() - start))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.worker)))
        return 0
    clean = clean_env()
    kernels = {"forced (OPENBLAS_CORETYPE=Haswell)": clean | FORCED, "OpenBLAS's own choice": clean}
    rows = []
    for momentum in (0.0, 0.9):
        for label, env in kernels.items():
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(momentum)],
                                  capture_output=True, text=True, env=env, check=True)
            fig = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append((momentum, label, fig["scikit-learn"], fig["chainrule"]))
    lines = [f"kernel effect, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: batch-128 epoch of"
             " 60,000 x 784, MLP 784-256-128-10, SGD lr 0.1; best of 3 epochs, samples/s", "",
             "| momentum | OpenBLAS kernel | scikit-learn | chainrule | chainrule / scikit-learn |",
             "|---|---|---|---|---|"]
    lines += [f"| {m:g} | {label} | {sk / 1e3:.0f}k | {ch / 1e3:.0f}k | {ch / sk:.2f}× |"
              for m, label, sk, ch in rows]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
