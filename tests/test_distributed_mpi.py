"""Acceptance tests of data-parallel training (issue 10), each through ``mpiexec -n K`` in a
subprocess with a timeout. The scenarios live in test_distributed_worker.py; a few launches cover
every check (each launch costs about a second of MPI start-up on this 2-core machine), and the
single-process references are trained here, on the same data, with plain ``fit``.

Every rank runs with one BLAS/OpenMP thread (OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1): K ranks,
each with a thread pool the size of the machine, oversubscribe the cores, and MPI's busy-waiting
ranks then fight the BLAS threads (a 2-rank run here was about 25 times slower). One thread also
fixes the summation order inside each rank, so repeated runs are bit-identical.

The tests skip only when mpi4py is not installed (``pip install '.[mpi]'`` installs it and MPICH),
and fail instead when CHAINRULE_REQUIRE_MPI is set (as CI does).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr

if importlib.util.find_spec("mpi4py") is None:
    if os.environ.get("CHAINRULE_REQUIRE_MPI"):  # set by CI: missing is a failure, not a skip
        pytest.fail("CHAINRULE_REQUIRE_MPI is set but mpi4py is not installed: pip install '.[mpi]'",
                    pytrace=False)
    pytest.skip("mpi4py is not installed (pip install 'chainrule[mpi]')", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent))
import test_distributed_worker as worker  # noqa: E402

WORKER = Path(worker.__file__)
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def mpiexec() -> str:
    """The mpiexec beside this Python (the mpich wheel puts it in the venv), else the one on PATH."""
    found = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                          os.environ.get("PATH", "")]))
    if found is None:
        pytest.fail("mpi4py is installed but no mpiexec was found: pip install mpich (or put mpiexec on PATH)")
    return found


def launch(n: int, scenario: str, out: Path, timeout: float = 60, command=None):
    """Run a scenario (or ``command``) on n ranks; the finished process, stdout and stderr as text."""
    out.mkdir(parents=True, exist_ok=True)
    argv = command or [sys.executable, str(WORKER), scenario, str(out)]
    env = {**os.environ, **ONE_THREAD}
    return subprocess.run([mpiexec(), "-n", str(n), *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=out)


def ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def weights(out: Path, name: str) -> list[np.ndarray]:
    with np.load(out / f"{name}.npz") as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def info(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


def assert_close(got, want, rtol=1e-5, atol=1e-7):
    """rtol 1e-5; atol 1e-7 (about one float32 ulp of a weight of 0.5) for entries that pass near 0."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def assert_identical(a, b):
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("two_ranks")
    return out, ok(launch(2, "two_ranks", out))


# --- one process ------------------------------------------------------------------------------------
def test_one_process_with_distributed_true_gives_weights_and_history_bit_identical_to_plain_fit(tmp_path):
    ok(launch(1, "one_process", tmp_path))
    for name in ("sgd", "momentum", "adam"):
        assert_identical(weights(tmp_path, f"one-{name}-dist"), weights(tmp_path, f"one-{name}-plain"))
        assert info(tmp_path, f"one-{name}-dist") == info(tmp_path, f"one-{name}-plain")


# --- two ranks: optimizers, rank 0's weights, logs, files --------------------------------------------
@pytest.mark.parametrize("name", list(worker.OPTIMIZERS))
def test_two_ranks_match_single_process_training_and_hold_bit_identical_weights(two_ranks, name):
    out, _ = two_ranks
    reference = worker.classifier(100)  # rank 0's seed
    worker.train(reference, worker.OPTIMIZERS[name]())
    rank0, rank1 = weights(out, f"{name}-rank0"), weights(out, f"{name}-rank1")
    assert_close(rank0, reference.get_weights())
    assert_identical(rank0, rank1)
    assert not np.allclose(rank0[0], worker.classifier(100).get_weights()[0])  # it did train


def test_ranks_seeded_differently_start_from_rank_0s_weights(two_ranks):
    out, _ = two_ranks
    rank0_init = worker.classifier(100).get_weights()
    assert not np.array_equal(worker.classifier(101).get_weights()[0], rank0_init[0])
    assert_identical(weights(out, "start-rank0"), rank0_init)
    assert_identical(weights(out, "start-rank1"), rank0_init)


def test_history_loss_and_metrics_equal_single_process_values(two_ranks):
    out, _ = two_ranks
    reference = worker.train(worker.classifier(100), worker.OPTIMIZERS["adam"]())
    for rank in (0, 1):
        got = info(out, f"logged-rank{rank}")["history"]
        assert got.keys() == reference.history.keys() == {"loss", "accuracy", "val_loss", "val_accuracy"}
        for key, values in reference.history.items():
            np.testing.assert_allclose(got[key], values, rtol=0, atol=1e-6, err_msg=key)
    assert info(out, "logged-rank0")["history"] == info(out, "logged-rank1")["history"]


def test_only_rank_0_prints_and_writes_logs_and_checkpoints(two_ranks):
    out, proc = two_ranks
    printed = [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]
    assert len(printed) == worker.EPOCHS, proc.stdout  # verbose=2 on both ranks, one line per epoch
    assert sorted(p.name for p in out.glob("ckpt-*")) == [f"ckpt-rank0-{e}.npz" for e in range(1, 6)]
    assert [p.name for p in out.glob("log-*")] == ["log-rank0.csv"]
    with open(out / "log-rank0.csv") as f:
        rows = list(csv.DictReader(f))
    history = info(out, "logged-rank0")["history"]
    assert [float(r["val_loss"]) for r in rows] == history["val_loss"]
    assert_identical(cr.load(out / "ckpt-rank0-5.npz").get_weights(), weights(out, "logged-rank0"))


def test_truncated_bptt_of_a_recurrent_network_on_two_ranks_matches_single_process_training(two_ranks):
    out, _ = two_ranks
    reference = worker.recurrent(30)
    history = worker.train_recurrent(reference)
    assert_close(weights(out, "tbptt-rank0"), reference.get_weights())
    assert_identical(weights(out, "tbptt-rank0"), weights(out, "tbptt-rank1"))
    np.testing.assert_allclose(info(out, "tbptt-rank1")["history"]["loss"], history.history["loss"], atol=1e-6)


def test_early_stopping_ends_every_rank_at_the_single_process_epoch(two_ranks):
    out, _ = two_ranks
    stop = cr.EarlyStopping(monitor="loss", patience=0)
    reference = worker.train(worker.classifier(100), cr.SGD(lr=1.5), epochs=40, callbacks=[stop])
    assert reference.stopped_early and 2 <= len(reference.epoch) < 40
    for rank in (0, 1):
        got = info(out, f"early-rank{rank}")
        assert got["epochs_run"] == len(reference.epoch)
        assert got["stopped_epoch"] == stop.stopped_epoch
    assert_identical(weights(out, "early-rank0"), weights(out, "early-rank1"))


# --- Allreduce calls and buckets ------------------------------------------------------------------
def test_one_allreduce_per_step_while_the_gradients_fit_in_one_bucket(two_ranks):
    out, _ = two_ranks
    for rank in (0, 1):
        got = info(out, f"buckets-25-rank{rank}")
        assert len(got["calls"]) == got["steps"] == 16
        assert all(call == [0, got["buffer_size"]] for call in got["calls"])


def test_a_tiny_cap_sends_whole_parameters_last_layer_first_with_the_same_result(two_ranks):
    out, _ = two_ranks
    got = info(out, "buckets-1e-06-rank0")
    layout, calls = got["layout"], got["calls"]
    per_step = len(layout)  # one bucket per parameter (the last also carries the loss slots)
    assert len(calls) == got["steps"] * per_step
    step = calls[:per_step]
    assert [start for start, _ in step] == [start for _, _, start, _ in layout]
    assert [layer for layer, _, _, _ in layout] == [4, 4, 2, 2, 0, 0]  # Dense layers, last first
    assert step[-1][0] + step[-1][1] == got["buffer_size"]
    assert all(calls[i:i + per_step] == step for i in range(0, len(calls), per_step))
    assert_identical(weights(out, "buckets-1e-06-rank0"), weights(out, "buckets-25-rank0"))
    assert_identical(weights(out, "buckets-1e-06-rank1"), weights(out, "buckets-25-rank0"))


# --- three ranks, uneven shards -------------------------------------------------------------------
def test_uneven_shards_on_three_ranks_match_single_process_training(tmp_path):
    ok(launch(3, "three_ranks", tmp_path, timeout=90))
    X, y = worker.classification_data(n=61)
    for name in ("momentum", "adam"):
        reference = worker.classifier(5)
        history = reference.fit(X, y, loss=cr.CrossEntropy(), optimizer=worker.OPTIMIZERS[name](),
                                epochs=worker.EPOCHS, batch_size=10, seed=3, metrics=["accuracy"], verbose=0)
        ranks = [weights(tmp_path, f"uneven-{name}-rank{r}") for r in range(3)]
        assert_close(ranks[0], reference.get_weights())
        assert_identical(ranks[0], ranks[1])
        assert_identical(ranks[0], ranks[2])
        got = info(tmp_path, f"uneven-{name}-rank2")["history"]
        for key, values in history.history.items():
            np.testing.assert_allclose(got[key], values, rtol=0, atol=1e-6, err_msg=key)
    reference = cr.mlp([20, 16, 2], activation="tanh", seed=9)
    target = np.stack([X[:, 0] - X[:, 1], np.tanh(X[:, 2])], axis=1)
    history = reference.fit(X, target, loss=cr.MSE(), optimizer=worker.OPTIMIZERS["adam"](), epochs=worker.EPOCHS,
                            batch_size=10, seed=3, metrics=["mse", "mae", "r2"], verbose=0)
    assert_close(weights(tmp_path, "uneven-mse-rank1"), reference.get_weights())
    got = info(tmp_path, "uneven-mse-rank1")["history"]
    for key, values in history.history.items():
        np.testing.assert_allclose(got[key], values, rtol=0, atol=1e-6, err_msg=key)


# --- errors ---------------------------------------------------------------------------------------
def test_ranks_that_disagree_raise_a_clear_error_on_every_rank_and_never_hang(tmp_path):
    ok(launch(2, "mismatches", tmp_path))
    expected = {"shape": ("ShapeError", "X shape: rank 0 has (200, 20), rank 1 has (210, 20)"),
                "dtype": ("ConfigError", "dtype: rank 0 has float32, rank 1 has float64"),
                "layers": ("ShapeError", "rank 1 has Dense(n_in=20, n_out=33, use_bias=True), ReLU(), Dense(n_in=33"),
                "contents": ("ConfigError", "X contents: rank 0 has crc32"),
                "settings": ("ConfigError", "optimizer: rank 0 has SGD(lr=0.1"),
                "nan": ("TrainingError", "at epoch 1, batch 1 (on 1 of 2 ranks)")}
    for case, (error, text) in expected.items():
        for rank in (0, 1):
            got = json.loads((tmp_path / f"mismatch-{case}-rank{rank}.json").read_text())
            assert got["raised"] == error, (case, rank, got)
            assert text in got["message"], (case, rank, got["message"])


def test_a_rank_that_fails_alone_brings_the_job_down_with_its_message(tmp_path):
    proc = launch(2, "one_rank_fails", tmp_path, timeout=60)
    assert proc.returncode != 0
    assert "rank 1 of 2 failed; aborting the job" in proc.stderr
    assert "the callback of rank 1 fails at epoch 2" in proc.stderr
    assert not list(tmp_path.glob("finished-*"))


# --- the command line -----------------------------------------------------------------------------
def test_chainrule_train_distributed_on_two_ranks_matches_the_single_process_command(tmp_path):
    from chainrule.cli import main

    X, y = worker.classification_data(n=120)
    lines = [",".join([*(f"x{i}" for i in range(X.shape[1])), "label"])]
    lines += [",".join([*(f"{v:.6f}" for v in row), f"c{label}"]) for row, label in zip(X, y, strict=True)]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    args = ["train", "data.csv", "--target", "label", "--hidden", "16", "--epochs", "4", "--batch-size", "16",
            "--validation-split", "0.25", "--early-stopping", "3", "--log", "log.csv"]
    proc = ok(launch(2, "", tmp_path, command=[sys.executable, "-m", "chainrule", *args, "--distributed",
                                                "--out", "dist.npz"]))
    assert proc.stdout.count("saved dist.npz") == 1, proc.stdout
    assert proc.stdout.count("epoch 4/4") == 1, proc.stdout
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert main([*args, "--out", "plain.npz", "--quiet"]) == 0
    finally:
        os.chdir(cwd)
    dist, plain = cr.load(tmp_path / "dist.npz"), cr.load(tmp_path / "plain.npz")
    assert_close(dist.get_weights(), plain.get_weights())
    assert dist.history.history.keys() == plain.history.history.keys()
    assert (tmp_path / "log.csv").exists()


def test_a_signal_to_one_rank_stops_every_rank_after_the_same_batch(tmp_path):
    pytest.importorskip("chainrule.interrupt")  # fit's graceful stop (SIGINT/SIGTERM after a batch)
    ok(launch(2, "signal_on_one_rank", tmp_path))
    got = [info(tmp_path, f"signal-rank{rank}") for rank in (0, 1)]
    assert all(g["interrupted"] for g in got)
    assert got[0]["steps"] == got[1]["steps"] == 4  # SIGINT after batch 3's update: batch 4 is the last
    assert_identical(weights(tmp_path, "signal-rank0"), weights(tmp_path, "signal-rank1"))


# --- BatchNorm: the ranks' running statistics averaged ---------------------------------------------
def running_statistics(X, batch, epochs, momentum=0.1, ranks=2, last_batches=None):
    """BatchNorm's running mean and variance after data-parallel training, by hand (float64): each
    rank's exponential average over its shards (mean, variance with n - 1), averaged over the ranks
    at the end of every epoch (and where training stopped)."""
    mean, var = np.zeros(X.shape[1]), np.ones(X.shape[1])
    n_batches = len(X) // batch
    for epoch in range(epochs):
        per_rank = []
        for r in range(ranks):
            m, v = mean.copy(), var.copy()
            for b in range(n_batches if last_batches is None or epoch < epochs - 1 else last_batches):
                lo, hi = r * batch // ranks, (r + 1) * batch // ranks  # (batch a multiple of ranks)
                shard = X[b * batch + lo:b * batch + hi]
                m = (1 - momentum) * m + momentum * shard.mean(axis=0)
                v = (1 - momentum) * v + momentum * shard.var(axis=0, ddof=1)
            per_rank.append((m, v))
        mean = sum(m for m, _ in per_rank) / ranks
        var = sum(v for _, v in per_rank) / ranks
    return mean, var


def test_batchnorm_running_statistics_are_the_mean_over_ranks_and_identical_on_every_rank(tmp_path):
    ok(launch(2, "batchnorm", tmp_path))
    X, _ = worker.batchnorm_data()
    mean, var = running_statistics(X, batch=10, epochs=3)
    rank0, rank1 = weights(tmp_path, "bn-rank0"), weights(tmp_path, "bn-rank1")
    assert_identical(rank0, rank1)
    np.testing.assert_allclose(rank0[0], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rank0[1], var, rtol=1e-5)
    # a stop in the middle of the first epoch (SIGINT to rank 1 during batch 3: 4 batches run)
    assert info(tmp_path, "bn-stopped-rank0")["steps"] == 4
    stopped0, stopped1 = weights(tmp_path, "bn-stopped-rank0"), weights(tmp_path, "bn-stopped-rank1")
    assert_identical(stopped0, stopped1)
    mean, var = running_statistics(X, batch=10, epochs=1, last_batches=4)
    np.testing.assert_allclose(stopped0[0], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stopped0[1], var, rtol=1e-5)


# --- combinations: a rule data-parallel, checkpoints and resume on two ranks -------------------------
def test_rules_and_checkpoints_combine_with_distributed_training(tmp_path):
    ok(launch(2, "combinations", tmp_path, timeout=120))
    # feedback alignment on two ranks: both ranks equal, and equal to one process (up to float32 sums)
    reference = worker.classifier(11)
    worker.train(reference, cr.SGD(lr=0.05), rule=cr.FeedbackAlignment(seed=2))
    assert_identical(weights(tmp_path, "fa-rank0"), weights(tmp_path, "fa-rank1"))
    assert_close(weights(tmp_path, "fa-rank0"), reference.get_weights())
    # a job killed mid-epoch (a rank fails, MPI aborts it), then resumed from rank 0's checkpoint by a
    # new job: bit for bit the uninterrupted run, on every rank
    for name in worker.RULES:
        (tmp_path / "rule.txt").write_text(name)
        died = launch(2, "dies_mid_epoch", tmp_path, timeout=120)
        assert died.returncode != 0 and "simulated crash" in died.stderr
        assert (tmp_path / f"{name}.ckpt").exists()
        ok(launch(2, "resumes", tmp_path, timeout=120))
        for rank in (0, 1):
            assert_identical(weights(tmp_path, f"{name}-resumed-rank{rank}"),
                             weights(tmp_path, f"{name}-whole-rank{rank}"))
            assert info(tmp_path, f"{name}-resumed-rank{rank}")["history"] == \
                info(tmp_path, f"{name}-whole-rank{rank}")["history"]
