"""Acceptance: training in a subprocess killed with SIGKILL at random points (one of them inside a
checkpoint write) and resumed each time ends with the weights of an uninterrupted run, bit for
bit; `chainrule train` stopped by SIGINT exits 130, names its checkpoint and resumes exactly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

CHILD = r'''
import json, os, sys, time
import numpy as np
import chainrule as cr
import chainrule._container as container

ckpt, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
pause_at = int(os.environ.get("PAUSE_AT_FSYNC", "0"))
if pause_at:  # hold the n-th fsync: the parent kills us in the middle of a checkpoint write
    real_fsync, calls = os.fsync, [0]
    def fsync(fd):
        calls[0] += 1
        if calls[0] == pause_at:
            print("WRITING", flush=True)
            time.sleep(60)
        real_fsync(fd)
    container.os.fsync = fsync

rng = np.random.default_rng(0)
X = rng.normal(size=(120, 6))
y = (X[:, 0] * X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
net = cr.mlp([6, 24, 12, 3], dropout=0.25, seed=1)
callbacks = [cr.EarlyStopping(monitor="loss", patience=100),
             cr.ReduceLROnPlateau(monitor="loss", patience=1, factor=0.7),
             cr.LambdaCallback(on_batch_end=lambda b, logs: print("batch", flush=True))]
kw = {}
if mode == "checkpoint":
    kw = dict(checkpoint=ckpt, checkpoint_every=3, resume=ckpt if os.path.exists(ckpt) else None)
history = net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(lr=0.01), epochs=8, batch_size=16, seed=0,
                  metrics=["accuracy"], callbacks=callbacks, verbose=0, **kw)
np.savez(out, *net.get_weights())
with open(out + ".json", "w") as f:
    json.dump(history.to_dict(), f)
print("DONE", flush=True)
'''

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONHASHSEED": "0"}


def run_child(script, ckpt, out, mode, kill_after=None, pause_at=0, timeout=120):
    """Run the child; kill it with SIGKILL after `kill_after` batch lines or when it says WRITING."""
    env = {**ENV, "PAUSE_AT_FSYNC": str(pause_at)}
    with open(str(out) + ".err", "w") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(ckpt), str(out), mode],
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        killed, batches = False, 0
        deadline = time.monotonic() + timeout
        for line in proc.stdout:
            batches += line.startswith("batch")
            if (kill_after is not None and batches >= kill_after) or line.startswith("WRITING"):
                time.sleep(random.uniform(0, 0.01))  # anywhere in what follows
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("child ran too long")
        proc.stdout.close()
        rc = proc.wait(timeout=timeout)
    if not killed:
        assert rc == 0, Path(str(out) + ".err").read_text()
    return killed, batches


def weights(out):
    with np.load(out) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def test_sigkill_at_random_points_and_resume_gives_the_uninterrupted_weights(tmp_path):
    random.seed(1234)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    reference = tmp_path / "reference.npz"
    run_child(script, tmp_path / "unused.ckpt", reference, "plain")

    ckpt, out = tmp_path / "run.ckpt", tmp_path / "resumed.npz"
    kills = 0
    # The third kill lands inside a checkpoint write (the 5th fsync of that run is the file fsync
    # of its third write: each write fsyncs the file, then the folder).
    plan = [random.randint(4, 11) for _ in range(5)]
    plan.insert(2, "write")
    for step in plan:
        before = ckpt.read_bytes() if ckpt.exists() else None
        if step == "write":
            killed, _ = run_child(script, ckpt, out, "checkpoint", pause_at=5)
            assert killed
            # killed mid-write: the checkpoint in place is a complete one (the one before, or
            # the new one if the rename had happened), never a mix; a temporary may be left
            from chainrule import checkpoint as ckpt_io

            ckpt_io.read(ckpt)
            assert list(tmp_path.glob(".run.ckpt.*.tmp")), "the kill should have left the write's temporary"
        else:
            killed, _ = run_child(script, ckpt, out, "checkpoint", kill_after=step)
        kills += killed
        assert ckpt.exists() or before is None
    assert kills >= 5
    killed, _ = run_child(script, ckpt, out, "checkpoint")  # runs to the end
    assert not killed
    ref, got = weights(reference), weights(out)
    assert len(ref) == len(got)
    for a, b in zip(ref, got, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    ref_history = json.loads(Path(str(reference) + ".json").read_text())
    got_history = json.loads(Path(str(out) + ".json").read_text())
    assert got_history["history"] == ref_history["history"] and got_history["epoch"] == list(range(8))
    assert not list(tmp_path.glob(".run.ckpt.*.tmp"))  # resume cleared the dead write's temporary


CSV = "a,b,c,label\n" + "".join(
    f"{x:.4f},{y:.4f},{(x * y):.4f},{'yes' if x * y > 0 else 'no'}\n"
    for x, y in np.random.default_rng(5).normal(size=(150, 2)))


def chainrule_cmd(*args):
    return [sys.executable, "-m", "chainrule", *map(str, args)]


def test_sigint_stops_chainrule_train_with_exit_130_and_resume_finishes_it(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text(CSV)
    common = ["train", data, "--target", "label", "--hidden", "32,16", "--epochs", "40", "--batch-size", "8",
              "--dropout", "0.1", "--seed", "3", "--lr", "0.01", "--early-stopping", "30"]
    ref = tmp_path / "ref.npz"
    done = subprocess.run(chainrule_cmd(*common, "--out", ref), env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "ref.npz.ckpt").exists()  # the default checkpoint goes once the model is saved

    out = tmp_path / "model.npz"
    proc = subprocess.Popen(chainrule_cmd(*common, "--out", out), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # one line per epoch (stderr is not a terminal)
        if line.startswith("epoch 3/"):
            proc.send_signal(signal.SIGINT)
            break
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert f"{out}.ckpt" in stderr and "--resume" in stderr
    assert not out.exists() and Path(f"{out}.ckpt").exists()

    resumed = subprocess.run(chainrule_cmd(*common, "--out", out, "--resume"), env=ENV, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    import chainrule as cr

    a, b = cr.load(ref), cr.load(out)
    for key, p in a.params.items():
        assert np.array_equal(p, b.params[key]), key
    assert a.history.history == b.history.history
    assert not Path(f"{out}.ckpt").exists()
