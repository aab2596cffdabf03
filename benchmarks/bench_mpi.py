"""Data-parallel training over MPI: 2 ranks against 1 on the 784-256-128-10 MLP, and a 1 MiB Allreduce.

    python benchmarks/bench_mpi.py                  about a minute on 2 cores
    python benchmarks/bench_mpi.py --quick          fewer samples and repeats
    python benchmarks/bench_mpi.py --oversubscribed also 2 ranks with the default BLAS threads (slow)

The driver starts every run with ``mpiexec -n K`` (the one beside this Python, from the mpich
wheel), each rank with one BLAS/OpenMP thread unless a row says otherwise, and without the
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides (as benchmarks/run.py). Rank 0 times ``fit`` on
synthetic MNIST-sized data (784 features, 10 classes, float32), global batch 128, after one
warm-up epoch, and reports milliseconds per global step. The rows alternate run by run, and the median and the best
of the repeats are shown: on a shared machine the figures move by a factor of two between runs.

Rows: plain ``fit`` on 1 and 2 BLAS threads (what one process gets from this machine),
``distributed=True`` on 1 rank (the cost of the distributed path alone), and on 2 ranks. On a
2-core machine 2 ranks cannot beat one process on 2 BLAS threads by much, and no speed-up is
claimed from these numbers: the run shows the overhead of the Allreduce and that the ranks
compute half a batch each. The 1 MiB Allreduce (262,144 float32, in place, MPI_SUM) is timed on
2 ranks, median of 300 calls after 30 warm-up calls.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
SIZES = (784, 256, 128, 10)
BATCH = 128
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --- worker (runs on every rank) --------------------------------------------------------------------
def worker_train(mode: str, n: int, epochs: int) -> dict:
    import numpy as np

    import chainrule as cr

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], n)
    net = cr.mlp(list(SIZES), activation="relu", seed=0)
    settings = dict(loss=cr.CrossEntropy(), optimizer=cr.SGD(lr=0.01, momentum=0.9), batch_size=BATCH,
                    seed=0, verbose=0, distributed=mode == "distributed")
    net.fit(X, y, epochs=1, **settings)  # warm-up: caches, BLAS buffers, the gradient buffer
    start = time.perf_counter()
    net.fit(X, y, epochs=epochs, **settings)
    seconds = time.perf_counter() - start
    steps = epochs * -(-n // BATCH)
    return {"ms_per_step": 1e3 * seconds / steps, "samples_per_s": epochs * n / seconds}


def worker_allreduce(n_bytes: int, warmup: int = 30, calls: int = 300) -> dict:
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    buf = np.ones(n_bytes // 4, dtype=np.float32)
    times = []
    for i in range(warmup + calls):
        comm.Barrier()
        start = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    times.sort()
    median = statistics.median(times)
    return {"median_us": 1e6 * median, "p90_us": 1e6 * times[int(0.9 * len(times))],
            "gb_per_s": n_bytes / median / 1e9}


def worker(args) -> None:
    rank = 0
    if args.ranks_needed:
        from mpi4py import MPI

        rank = MPI.COMM_WORLD.Get_rank()
    result = (worker_allreduce(args.bytes) if args.what == "allreduce"
              else worker_train(args.what, args.samples, args.epochs))
    if rank == 0:
        print("RESULT " + json.dumps(result), flush=True)


# --- driver ---------------------------------------------------------------------------------------
def mpiexec() -> str:
    found = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                          os.environ.get("PATH", "")]))
    if found is None:
        sys.exit("bench_mpi: no mpiexec found; pip install 'chainrule[mpi]'")
    return found


def run(ranks: int, what: str, threads: int | None, extra: list[str], timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    for key in ONE_THREAD:
        env.pop(key, None)
    if threads is not None:
        env.update({k: str(threads) for k in ONE_THREAD})
    argv = [mpiexec(), "-n", str(ranks), sys.executable, str(HERE), "--worker", what, *extra]
    if what == "distributed" or what == "allreduce":
        argv.append("--ranks-needed")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{' '.join(argv)} gave no result:\n{proc.stdout}\n{proc.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--oversubscribed", action="store_true",
                        help="also 2 ranks with the default BLAS threads (each rank as many as cores)")
    parser.add_argument("--worker", dest="what", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ranks-needed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, default=8192, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--bytes", type=int, default=2**20, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.what is not None:
        worker(args)
        return

    samples, epochs, repeats = (4096, 2, 2) if args.quick else (16384, 4, 5)
    train = ["--samples", str(samples), "--epochs", str(epochs)]
    rows = [("plain fit, 1 process, 1 BLAS thread", 1, "plain", 1),
            ("plain fit, 1 process, 2 BLAS threads", 1, "plain", 2),
            ("distributed=True, 1 rank, 1 thread", 1, "distributed", 1),
            ("distributed=True, 2 ranks, 1 thread each", 2, "distributed", 1)]
    if args.oversubscribed:
        rows.append(("distributed=True, 2 ranks, default threads", 2, "distributed", None))
    cores = os.cpu_count()
    print(f"# MLP {'-'.join(map(str, SIZES))}, float32, SGD(momentum=0.9), global batch {BATCH},"
          f" {samples} samples x {epochs} epochs; {cores} cores, {platform.processor() or platform.machine()},"
          f" Python {platform.python_version()}\n")
    # Rows alternate run by run (rotated order), so that the load of a shared machine falls on all
    # of them alike; the median and the best of the repeats are shown.
    results: dict[str, list[dict]] = {label: [] for label, *_ in rows}
    for rep in range(repeats):
        for label, ranks, what, threads in rows[rep % len(rows):] + rows[:rep % len(rows)]:
            extra = train if threads is not None else ["--samples", str(samples // 4), "--epochs", "1"]
            results[label].append(run(ranks, what, threads, extra, timeout=900))
    print("| run | ms per global step, median (best) | vs first row | samples/s, median |")
    print("|---|---:|---:|---:|")
    base = None
    for label, *_ in rows:
        ms = statistics.median(r["ms_per_step"] for r in results[label])
        best = min(r["ms_per_step"] for r in results[label])
        base = base or ms
        rate = statistics.median(r["samples_per_s"] for r in results[label])
        print(f"| {label} | {ms:.2f} ({best:.2f}) | {ms / base:.2f}x | {rate:,.0f} |", flush=True)
    print("\n| Allreduce of 1 MiB (262,144 float32, in place) | median µs | p90 µs | GB/s |")
    print("|---|---:|---:|---:|")
    for ranks in (1, 2):
        r = run(ranks, "allreduce", 1, [], timeout=300)
        print(f"| {ranks} rank{'s' if ranks > 1 else ''} | {r['median_us']:.1f} | {r['p90_us']:.1f} |"
              f" {r['gb_per_s']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
