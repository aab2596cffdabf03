"""Recurrent training step, chainrule against PyTorch (CPU nn.RNN / nn.LSTM / nn.GRU), in one run.

The case: sequences of 50 steps with 32 features, batch 64, hidden 128, the last hidden state
into a 10-class linear head, softmax cross-entropy, plain SGD (lr 0.01). One step is forward,
backpropagation through time and the update; the clock runs around a whole epoch of 20 steps
(1,280 sequences, shuffled): ``net.fit(..., epochs=1)`` for chainrule, the equivalent loop
(randperm, gather, forward, loss, backward, step) for PyTorch. Data and models are built before
the clock starts; a warm-up epoch runs first.

    python benchmarks/bench_rnn.py                  # tanh RNN, LSTM and GRU, 2 threads, 5 rounds
    python benchmarks/bench_rnn.py --threads 1 --rounds 3 --kinds lstm

Each (framework, kind) runs in a fresh worker process (``--worker``), the frameworks alternate
round by round, and the driver, which imports no numerical library, first drops
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE from the environment (they pin OpenBLAS to an older,
slower kernel on this machine). The table gives the median milliseconds per step over all
timed epochs and the ratio PyTorch / chainrule (> 1: chainrule is faster).

The benchmark suite (run.py) times the same epochs, built by ``chainrule_epoch`` and
``torch_epoch`` from here, as its ``rnn``, ``lstm`` and ``gru`` rows (in steps per second, its workers'
thread settings); this file imports only the standard library at the top, so run.py's driver
can read the constants.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from forced_env import clean_env

SEQ, BATCH, FEATURES, HIDDEN, CLASSES, STEPS = 50, 64, 32, 128, 10, 20
FRAMEWORKS = ("chainrule", "torch")
KINDS = ("rnn", "lstm", "gru")


def data():
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(BATCH * STEPS, SEQ, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=BATCH * STEPS)
    return X, y


def chainrule_epoch(kind: str):
    import chainrule as cr

    X, y = data()
    recurrent = {"rnn": cr.RNN, "lstm": cr.LSTM, "gru": cr.GRU}[kind](FEATURES, HIDDEN, seed=0)
    net = cr.Sequential(recurrent, cr.Dense(HIDDEN, CLASSES, seed=1))
    optimizer, loss = cr.SGD(lr=0.01), cr.CrossEntropy()

    def epoch(seed):
        net.fit(X, y, loss=loss, optimizer=optimizer, epochs=1, batch_size=BATCH, seed=seed, verbose=0)

    return epoch


def torch_epoch(kind: str, threads: int):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    X, y = data()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    layer = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    recurrent = layer(FEATURES, HIDDEN, batch_first=True)
    head = torch.nn.Linear(HIDDEN, CLASSES)
    optimizer = torch.optim.SGD([*recurrent.parameters(), *head.parameters()], lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(seed):
        order = torch.randperm(len(Xt), generator=torch.Generator().manual_seed(seed))
        for b in range(STEPS):
            idx = order[b * BATCH:(b + 1) * BATCH]
            out, _ = recurrent(Xt[idx])
            loss = loss_fn(head(out[:, -1]), yt[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return epoch


def worker(framework: str, kind: str, threads: int, repeats: int) -> None:
    epoch = chainrule_epoch(kind) if framework == "chainrule" else torch_epoch(kind, threads)
    epoch(0)                                            # warm-up
    per_step = []
    for r in range(repeats):
        start = time.perf_counter()
        epoch(r + 1)
        per_step.append((time.perf_counter() - start) / STEPS * 1e3)
    print(json.dumps({"framework": framework, "kind": kind, "ms_per_step": per_step}))


def run_worker(framework, kind, threads, repeats) -> list[float]:
    env = clean_env()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", framework, "--kinds", kind,
           "--threads", str(threads), "--repeats", str(repeats)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["ms_per_step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="rnn,lstm,gru", help="comma-separated: rnn, lstm, gru")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per worker")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between workers")
    parser.add_argument("--worker", choices=FRAMEWORKS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.kinds, args.threads, args.repeats)
        return
    kinds = [k.strip() for k in args.kinds.split(",")]
    times = {(fw, k): [] for fw in FRAMEWORKS for k in kinds}
    for r in range(args.rounds):
        order = FRAMEWORKS if r % 2 == 0 else FRAMEWORKS[::-1]
        for kind in kinds:
            for fw in order:
                times[fw, kind] += run_worker(fw, kind, args.threads, args.repeats)
                time.sleep(args.pause)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"seq {SEQ}, batch {BATCH}, {FEATURES} features, hidden {HIDDEN}, {CLASSES} classes;"
          f" forward + BPTT + SGD update; {args.threads} thread(s);"
          f" median of {args.rounds * args.repeats} epochs of {STEPS} steps")
    print(f"{'layer':<6} {'chainrule ms/step':>18} {'PyTorch ms/step':>16} {'PyTorch/chainrule':>18}")
    for kind in kinds:
        ours, theirs = statistics.median(times["chainrule", kind]), statistics.median(times["torch", kind])
        print(f"{kind.upper():<6} {ours:>18.2f} {theirs:>16.2f} {theirs / ours:>18.2f}")


if __name__ == "__main__":
    main()
