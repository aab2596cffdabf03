"""The script that tests/test_distributed_mpi.py runs on every rank: ``mpiexec -n K python
tests/test_distributed_worker.py SCENARIO OUT_DIR``. It holds no tests; each scenario trains,
then every rank writes what the tests compare into OUT_DIR (rank-named files, so a test can see
which ranks wrote). The data, networks and optimizers are defined here so that the tests can
train the single-process references on exactly the same problem.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import chainrule as cr
from crashing import Crash

EPOCHS, BATCH = 5, 32
OPTIMIZERS = {
    "sgd": lambda: cr.SGD(lr=0.1),
    "momentum": lambda: cr.SGD(lr=0.05, momentum=0.9),
    "nesterov": lambda: cr.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda: cr.Adam(lr=0.005),
    "rmsprop": lambda: cr.RMSProp(lr=0.002),
}


def classification_data(n=256, n_in=20, n_classes=4, seed=0):
    """Four Gaussian blobs with label noise: learnable, but not to zero loss in 5 epochs."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=1.5, size=(n_classes, n_in))
    y = rng.integers(0, n_classes, n)
    X = centres[y] + rng.normal(size=(n, n_in))
    return X, y


def classifier(seed):
    return cr.mlp([20, 32, 16, 4], activation="relu", seed=seed)


def train(net, optimizer, distributed=False, **kwargs):
    """The training run every scenario and its single-process reference share."""
    X, y = classification_data()
    settings = dict(loss=cr.CrossEntropy(), optimizer=optimizer, epochs=EPOCHS, batch_size=BATCH, seed=3,
                    metrics=["accuracy"], validation_data=(X[:64], y[:64]), verbose=0)
    settings.update(kwargs)
    return net.fit(X, y, distributed=distributed, **settings)


class CountingComm:
    """A communicator that records each Allreduce (buffer address and length) and passes it on."""

    def __init__(self, comm) -> None:
        self.comm, self.allreduces = comm, []

    def Allreduce(self, sendbuf, recvbuf, op=None):  # noqa: N802 (mpi4py's name)
        self.allreduces.append((recvbuf.__array_interface__["data"][0], recvbuf.size))
        return self.comm.Allreduce(sendbuf, recvbuf, op=op)

    def __getattr__(self, name):
        return getattr(self.comm, name)


def save(out: Path, name: str, weights, history=None, **extra) -> None:
    np.savez(out / f"{name}.npz", *weights)
    if history is not None or extra:
        info = {"history": history.history if history is not None else None,
                "epochs_run": len(history.epoch) if history is not None else None, **extra}
        (out / f"{name}.json").write_text(json.dumps(info))


# --- scenarios -------------------------------------------------------------------------------------
def one_process(out: Path, rank: int, comm) -> None:
    """mpiexec -n 1: distributed=True against plain fit, in the same process."""
    for name in ("sgd", "momentum", "adam"):
        plain, dist = classifier(7), classifier(7)
        h_plain = train(plain, OPTIMIZERS[name]())
        h_dist = train(dist, OPTIMIZERS[name](), distributed=True)
        save(out, f"one-{name}-plain", plain.get_weights(), h_plain)
        save(out, f"one-{name}-dist", dist.get_weights(), h_dist)


def two_ranks(out: Path, rank: int, comm) -> None:
    """mpiexec -n 2: the optimizers, rank 0's weights, logs and checkpoints, Allreduce counts, buckets."""
    start = classifier(100 + rank)  # seeded differently on each rank
    cr.DataParallel(start).broadcast_parameters()
    save(out, f"start-rank{rank}", start.get_weights())
    for name, make in OPTIMIZERS.items():
        net = classifier(100 + rank)
        history = train(net, make(), distributed=True)
        save(out, f"{name}-rank{rank}", net.get_weights(), history)

    # history, printing and files: rank-named paths show which ranks wrote
    net = classifier(100 + rank)
    callbacks = [cr.ModelCheckpoint(out / f"ckpt-rank{rank}-{{epoch}}.npz", monitor="val_loss"),
                 cr.CSVLogger(out / f"log-rank{rank}.csv")]
    history = train(net, OPTIMIZERS["adam"](), distributed=True, callbacks=callbacks, verbose=2)
    save(out, f"logged-rank{rank}", net.get_weights(), history)

    # one Allreduce per step with the default cap; with a tiny cap, one per parameter
    for cap in (cr.distributed.DEFAULT_BUCKET_CAP_MB, 1e-6):
        counting = CountingComm(comm)
        net = classifier(100 + rank)
        dp = cr.DataParallel(net, comm=counting, bucket_cap_mb=cap)
        history = dp.fit(*classification_data(), loss=cr.CrossEntropy(), optimizer=OPTIMIZERS["momentum"](),
                         epochs=2, batch_size=BATCH, seed=3, verbose=0)
        base, item = dp.buffer.__array_interface__["data"][0], dp.buffer.itemsize
        calls = [((address - base) // item, size) for address, size in counting.allreduces]
        save(out, f"buckets-{cap:g}-rank{rank}", net.get_weights(), history, calls=calls,
             layout=dp.layout, buffer_size=int(dp.buffer.size), steps=2 * len(range(0, 256, BATCH)))

    # truncated BPTT: the windows' gradients are summed on each rank before the one Allreduce
    net = recurrent(30 + rank)
    history = train_recurrent(net, distributed=True)
    save(out, f"tbptt-rank{rank}", net.get_weights(), history)

    # early stopping on the allreduced training loss; the epoch differs if ranks used their own
    net = classifier(100 + rank)
    stop = cr.EarlyStopping(monitor="loss", patience=0)
    history = train(net, cr.SGD(lr=1.5), distributed=True, epochs=40, callbacks=[stop])
    save(out, f"early-rank{rank}", net.get_weights(), history, stopped_epoch=stop.stopped_epoch)


def sequences(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 12, 3))
    return X, np.cumsum(X[:, :, :2], axis=1) / 4


def recurrent(seed):
    return cr.Sequential(cr.RNN(3, 8, return_sequences=True, seed=seed),
                         cr.TimeDistributed(cr.Dense(8, 2, seed=seed + 1)))


def train_recurrent(net, distributed=False):
    """Truncated BPTT (windows of 5 of 12 steps) with a sequence MSE."""
    return net.fit(*sequences(), loss=cr.MSE(), optimizer=cr.Adam(lr=0.01), epochs=3, batch_size=8, seed=0,
                   verbose=0, bptt_steps=5, distributed=distributed)


def three_ranks(out: Path, rank: int, comm) -> None:
    """mpiexec -n 3: global batch 10 (shards 4, 3, 3); 61 samples, so the last batch (1 row) leaves
    two ranks empty; regression metrics too."""
    X, y = classification_data(n=61)
    for name in ("momentum", "adam"):
        net = classifier(5 + rank)
        history = net.fit(X, y, loss=cr.CrossEntropy(), optimizer=OPTIMIZERS[name](), epochs=EPOCHS,
                          batch_size=10, seed=3, metrics=["accuracy"], verbose=0, distributed=True)
        save(out, f"uneven-{name}-rank{rank}", net.get_weights(), history)
    net = cr.mlp([20, 16, 2], activation="tanh", seed=9 + rank)
    target = np.stack([X[:, 0] - X[:, 1], np.tanh(X[:, 2])], axis=1)
    history = net.fit(X, target, loss=cr.MSE(), optimizer=OPTIMIZERS["adam"](), epochs=EPOCHS, batch_size=10,
                      seed=3, metrics=["mse", "mae", "r2"], verbose=0, distributed=True)
    save(out, f"uneven-mse-rank{rank}", net.get_weights(), history)


def mismatches(out: Path, rank: int, comm) -> None:
    """mpiexec -n 2: each case differs between the ranks; every rank must raise, none may hang."""
    X, y = classification_data()
    huge = X.copy()
    huge[0] = 3e38  # finite, but it overflows the first layer: a NaN loss on rank 0's shard alone
    cases = {
        "shape": lambda: classifier(1).fit(X[:200 + 10 * rank], y[:200 + 10 * rank], distributed=True,
                                           loss="crossentropy", verbose=0),
        "dtype": lambda: cr.mlp([20, 32, 4], dtype=np.float64 if rank else np.float32).fit(
            X, y, distributed=True, loss="crossentropy", verbose=0),
        "layers": lambda: cr.mlp([20, 32 + rank, 4]).fit(X, y, distributed=True, loss="crossentropy", verbose=0),
        "contents": lambda: classifier(1).fit(X + rank, y, distributed=True, loss="crossentropy", verbose=0),
        "settings": lambda: classifier(1).fit(X, y, distributed=True, loss="crossentropy", verbose=0,
                                              optimizer=cr.SGD(lr=0.1 * (1 + rank))),
        "nan": lambda: classifier(1).fit(huge, y, distributed=True, loss="crossentropy", verbose=0, shuffle=False),
    }
    for case, run in cases.items():
        try:
            run()
            result = {"raised": None}
        except cr.ChainruleError as exc:
            result = {"raised": type(exc).__name__, "message": str(exc)}
        (out / f"mismatch-{case}-rank{rank}.json").write_text(json.dumps(result))


def one_rank_fails(out: Path, rank: int, comm) -> None:
    """mpiexec -n 2: a callback raises on rank 1 alone at epoch 2; the job must end, non-zero."""
    def fail(epoch, logs):
        if rank == 1 and epoch == 1:
            raise RuntimeError("the callback of rank 1 fails at epoch 2")

    train(classifier(1), OPTIMIZERS["sgd"](), distributed=True, epochs=50,
          callbacks=[cr.LambdaCallback(on_epoch_end=fail)])
    (out / f"finished-rank{rank}").write_text("the job should have been aborted")


def signal_on_one_rank(out: Path, rank: int, comm) -> None:
    """mpiexec -n 2: rank 1 alone gets SIGINT during batch 3; both ranks must stop after the same batch."""
    import os
    import signal

    def interrupt(batch, logs):
        if rank == 1 and batch == 2:
            os.kill(os.getpid(), signal.SIGINT)

    net = classifier(1)
    history = train(net, OPTIMIZERS["sgd"](), distributed=True, epochs=50,
                    callbacks=[cr.LambdaCallback(on_batch_end=interrupt)])
    save(out, f"signal-rank{rank}", net.get_weights(), history, interrupted=history.interrupted,
         steps=int(net.optimizer.iterations))


def batchnorm_data(n=80, batch=10):
    """Rows whose first half of each batch of ``batch`` (rank 0's shard) centres near -1 and second
    half (rank 1's) near 3, so the two ranks see different batch statistics."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(n, 4)) * np.array([1.0, 2.0, 0.5, 1.5]) + np.where(np.arange(n) % batch < batch // 2,
                                                                            -1.0, 3.0)[:, None]
    return X, X @ np.array([1.0, -0.5, 2.0, 0.25])


def batchnorm_net():
    return cr.Sequential(cr.BatchNorm(4), cr.Dense(4, 1, seed=6))


def batchnorm(out: Path, rank: int, comm) -> None:
    """mpiexec -n 2: a BatchNorm network over 3 epochs (rank 1 starting from other statistics), and
    one that a SIGINT to rank 1 stops in the middle of its first epoch; every rank writes its
    running statistics."""
    import os
    import signal

    X, y = batchnorm_data()
    settings = dict(loss="mse", batch_size=10, shuffle=False, verbose=0, distributed=True)
    net = batchnorm_net()
    if rank == 1:  # rank 0's statistics are broadcast with its weights
        net.layers[0].buffers["running_var"][...] = 5.0
    net.fit(X, y, optimizer=cr.SGD(lr=0.01), epochs=3, validation_data=(X[:20], y[:20]), **settings)
    bn = net.layers[0].buffers
    save(out, f"bn-rank{rank}", [bn["running_mean"], bn["running_var"]])

    def interrupt(batch, logs):
        if rank == 1 and batch == 2:
            os.kill(os.getpid(), signal.SIGINT)

    net = batchnorm_net()
    history = net.fit(X, y, optimizer=cr.SGD(lr=0.01), epochs=5,
                      callbacks=[cr.LambdaCallback(on_batch_end=interrupt)], **settings)
    bn = net.layers[0].buffers
    save(out, f"bn-stopped-rank{rank}", [bn["running_mean"], bn["running_var"]], history,
         steps=int(net.optimizer.iterations))


RULES = {"plain": lambda: None, "dfa": lambda: cr.DirectFeedbackAlignment(seed=4)}


def combinations(out: Path, rank: int, comm) -> None:
    """Two ranks: feedback alignment data-parallel, and the uninterrupted runs that
    ``dies_mid_epoch`` and ``resumes`` are compared with."""
    fa = classifier(11)
    h = train(fa, cr.SGD(lr=0.05), distributed=True, rule=cr.FeedbackAlignment(seed=2))
    save(out, f"fa-rank{rank}", fa.get_weights(), h)
    for name, rule in RULES.items():
        whole = classifier(12)
        h_whole = train(whole, cr.Adam(lr=0.005), distributed=True, rule=rule())
        save(out, f"{name}-whole-rank{rank}", whole.get_weights(), h_whole)


def dies_mid_epoch(out: Path, rank: int, comm) -> None:
    """Checkpointed runs (rank 0 writes) that die in the middle of epoch 3: the job is aborted."""
    name = (out / "rule.txt").read_text()
    train(classifier(12), cr.Adam(lr=0.005), distributed=True, rule=RULES[name](), checkpoint=out / f"{name}.ckpt",
          callbacks=[Crash(20)])  # (8 batches an epoch)


def resumes(out: Path, rank: int, comm) -> None:
    """Every rank resumes from rank 0's checkpoint of the run that died."""
    name = (out / "rule.txt").read_text()
    again = classifier(12)
    path = out / f"{name}.ckpt"
    h = train(again, cr.Adam(lr=0.005), distributed=True, rule=RULES[name](), checkpoint=path, resume=path)
    save(out, f"{name}-resumed-rank{rank}", again.get_weights(), h)


SCENARIOS = {"one_process": one_process, "combinations": combinations, "dies_mid_epoch": dies_mid_epoch,
             "resumes": resumes, "two_ranks": two_ranks, "three_ranks": three_ranks,
             "mismatches": mismatches, "one_rank_fails": one_rank_fails, "signal_on_one_rank": signal_on_one_rank,
             "batchnorm": batchnorm}

if __name__ == "__main__":
    from mpi4py import MPI

    scenario, out_dir = sys.argv[1], Path(sys.argv[2])
    SCENARIOS[scenario](out_dir, MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD)
