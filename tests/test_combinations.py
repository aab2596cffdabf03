"""Every door combined with checkpoint and resume: a run killed in the middle of an epoch and
resumed ends bit for bit where the uninterrupted run ends (same machine, same process kind).

The two-rank cases (a rule data-parallel, checkpoints of distributed training) run through
mpiexec in test_distributed_mpi.py; the ones here run in one process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr
from crashing import Crash


def blobs(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return rng.normal(size=(3, 6))[y] + rng.normal(size=(n, 6)), y


def sequences(n=24, T=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, 2))
    return X, (np.cumsum(X[..., 0], axis=1) > 0).astype(np.int64)


def mlp_case(rule):
    def run(**kw):
        net = cr.mlp([6, 12, 8, 3], activation="tanh", dropout=0.1, seed=5)
        X, y = blobs()
        h = net.fit(X, y, loss="crossentropy", optimizer=cr.SGD(lr=0.05, momentum=0.9), epochs=5, batch_size=16,
                    seed=1, metrics=["accuracy"], rule=rule(), verbose=0, **kw)
        return net, h
    return run


def bptt_case(rule):
    def run(**kw):
        net = cr.Sequential(cr.RNN(2, 6, return_sequences=True, seed=0), cr.TimeDistributed(cr.Dense(6, 2, seed=1)))
        X, y = sequences()
        h = net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(lr=0.01), epochs=4, batch_size=8, seed=1,
                    bptt_steps=3, rule=rule(), verbose=0, **kw)
        return net, h
    return run


CASES = {
    "backprop rule": mlp_case(cr.credit.Backprop),
    "feedback alignment": mlp_case(lambda: cr.FeedbackAlignment(seed=3)),
    "direct feedback alignment": mlp_case(lambda: cr.DirectFeedbackAlignment(seed=3)),
    "truncated BPTT": bptt_case(lambda: None),
}


def same(a, b):
    (net_a, h_a), (net_b, h_b) = a, b
    for x, y in zip(net_a.get_weights(), net_b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)
    assert h_a.history == h_b.history


@pytest.mark.parametrize("name", CASES)
def test_killed_mid_epoch_and_resumed_equals_the_uninterrupted_run(name, tmp_path):
    run = CASES[name]
    path = tmp_path / "run.ckpt"
    whole = run()
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(checkpoint=path, checkpoint_every=2, callbacks=[Crash(11)])
    same(run(checkpoint=path, checkpoint_every=2, resume=path), whole)


def test_rule_state_goes_with_the_checkpoint(tmp_path):
    # an unseeded feedback-alignment run resumed takes its random matrices from the file
    path = tmp_path / "run.ckpt"
    first = cr.FeedbackAlignment()
    net = cr.mlp([6, 12, 8, 3], activation="tanh", seed=5)
    X, y = blobs()
    net.fit(X, y, loss="crossentropy", epochs=2, batch_size=16, seed=1, rule=first, checkpoint=path, verbose=0)
    second = cr.FeedbackAlignment()
    cr.mlp([6, 12, 8, 3], activation="tanh", seed=5).fit(X, y, loss="crossentropy", epochs=3, batch_size=16,
                                                         seed=1, rule=second, checkpoint=path, resume=path,
                                                         verbose=0)
    assert second.steps == 3 * 6
    for i, b in first.feedback.items():
        np.testing.assert_array_equal(second.feedback[i], b)


def test_resume_with_another_rule_or_none_is_refused(tmp_path):
    path = tmp_path / "run.ckpt"
    run = CASES["feedback alignment"]
    run(checkpoint=path)
    with pytest.raises(cr.ConfigError, match="rule"):
        mlp_case(lambda: cr.DirectFeedbackAlignment(seed=3))(checkpoint=path, resume=path)
    with pytest.raises(cr.ConfigError, match="rule"):
        mlp_case(lambda: None)(checkpoint=path, resume=path)


@pytest.mark.parametrize("rule", [cr.DNI, cr.credit.LastLayerOnly])
def test_rules_with_modules_of_their_own_refuse_checkpoints_at_the_start(rule, tmp_path):
    with pytest.raises(cr.ConfigError, match="checkpoints do not keep"):
        mlp_case(rule)(checkpoint=tmp_path / "x.ckpt")


CHILD = r"""
import sys
import numpy as np
import chainrule as cr
path, out = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
y = rng.integers(0, 3, 96)
X = rng.normal(size=(3, 6))[y] + rng.normal(size=(96, 6))
net = cr.mlp([6, 12, 8, 3], activation="tanh", seed=5)
slow = cr.LambdaCallback(on_batch_end=lambda b, logs: print("batch", flush=True))
import os
h = net.fit(X, y, loss="crossentropy", optimizer=cr.SGD(lr=0.05, momentum=0.9), epochs=6, batch_size=16, seed=1,
            rule=cr.FeedbackAlignment(seed=3), checkpoint=path, checkpoint_every=2, callbacks=[slow], verbose=0,
            resume=path if os.path.exists(path) else None)
np.savez(out, *net.get_weights())
print("DONE", flush=True)
"""


def test_feedback_alignment_killed_by_sigkill_resumes_bit_identically(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    ckpt, killed, whole = tmp_path / "run.ckpt", tmp_path / "killed.npz", tmp_path / "whole.npz"
    subprocess.run([sys.executable, str(script), str(tmp_path / "other.ckpt"), str(whole)], env=env, check=True,
                   capture_output=True, timeout=120)
    with subprocess.Popen([sys.executable, str(script), str(ckpt), str(killed)], env=env, stdout=subprocess.PIPE,
                          text=True) as child:
        for _ in range(15):  # two and a half epochs (6 batches each)
            child.stdout.readline()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert not killed.exists() and ckpt.exists()
    subprocess.run([sys.executable, str(script), str(ckpt), str(killed)], env=env, check=True, capture_output=True,
                   timeout=120)
    with np.load(killed) as a, np.load(whole) as b:
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])
