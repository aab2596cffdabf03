"""ModelCheckpoint (atomic, survives a failure mid-write), CSVLogger, ReduceLROnPlateau,
GradientNormLogger, and a History saved with the model."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import chainrule as cr
from chainrule import _container as cr_container
from chainrule import io as cr_io


@pytest.fixture
def data():
    X, y = cr.datasets.moons(200, noise=0.2, seed=0)
    return X[:150], y[:150], X[150:], y[150:]


def small_net(seed=0):
    return cr.mlp([2, 16, 2], activation="tanh", seed=seed)


def fit(net, data, epochs, callbacks, lr=0.01, **kw):
    X, y, Xv, yv = data
    return net.fit(X, y, loss=cr.CrossEntropy(), optimizer=cr.Adam(lr=lr), epochs=epochs, batch_size=32, seed=0,
                   validation_data=(Xv, yv), metrics=["accuracy"], callbacks=callbacks, verbose=0, **kw)


# --- ModelCheckpoint -----------------------------------------------------------------------------
def test_checkpoint_every_epoch_with_history_and_metadata(tmp_path, data):
    net = small_net()
    ckpt = cr.ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}-{val_loss:.3f}.npz")
    history = fit(net, data, 3, [ckpt])
    assert len(ckpt.saved) == 3 and all(p.endswith(".npz") for p in ckpt.saved)
    assert f"ckpt-03-{history.history['val_loss'][-1]:.3f}.npz" in ckpt.saved[-1]
    last = cr.load(ckpt.saved[-1])
    np.testing.assert_array_equal(last.predict(data[2]), net.predict(data[2]))
    assert last.history.history == history.history
    assert last.metadata["checkpoint"]["epoch"] == 3
    first = cr.load(ckpt.saved[0])
    assert first.history.history["loss"] == history.history["loss"][:1]
    assert not list(tmp_path.glob(".*.tmp"))


def test_checkpoint_save_best_only_keeps_the_best_epoch(tmp_path, data):
    path = tmp_path / "best.npz"
    writes = []
    net = small_net()
    ckpt = cr.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    spy = cr.LambdaCallback(on_epoch_end=lambda e, logs: writes.append(net.get_weights()))
    history = fit(net, data, 25, [ckpt, spy], lr=0.2)  # a large step: val_loss goes up and down
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    assert ckpt.best == val[best]
    improving = [e for e in range(len(val)) if val[e] < min(val[:e], default=np.inf)]
    assert len(ckpt.saved) == len(improving) < len(val)
    saved = cr.load(path)
    assert saved.metadata["checkpoint"]["epoch"] == best + 1
    for a, b in zip(saved.get_weights(), writes[best], strict=True):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_monitor_max_mode_and_missing_monitor(tmp_path, data):
    ckpt = cr.ModelCheckpoint(tmp_path / "acc.npz", monitor="val_accuracy", save_best_only=True)
    assert ckpt.mode == "max"
    fit(small_net(), data, 2, [ckpt])
    assert ckpt.best is not None
    with pytest.raises(cr.ConfigError, match="monitors 'val_r2'"):
        fit(small_net(), data, 1, [cr.ModelCheckpoint(tmp_path / "x.npz", monitor="val_r2", save_best_only=True)])


def test_failure_mid_write_leaves_the_previous_checkpoint_loadable(tmp_path, data, monkeypatch):
    """Simulate a crash while the archive is being written: half the bytes, then death."""
    path = tmp_path / "ckpt.npz"
    net = small_net()
    fit(net, data, 2, [cr.ModelCheckpoint(path)])
    before = path.read_bytes()
    good = cr.load(path).predict(data[2])

    real_savez = np.savez

    def dying_savez(f, **arrays):
        import io as _io

        buffer = _io.BytesIO()
        real_savez(buffer, **arrays)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(cr_io.np, "savez", dying_savez)
    with pytest.raises(KeyboardInterrupt):
        fit(net, data, 2, [cr.ModelCheckpoint(path)])
    monkeypatch.undo()
    assert path.read_bytes() == before
    np.testing.assert_array_equal(cr.load(path).predict(data[2]), good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]  # no temporary file left


def test_failure_of_the_rename_also_keeps_the_previous_file(tmp_path, data, monkeypatch):
    path = tmp_path / "ckpt.npz"
    fit(small_net(), data, 1, [cr.ModelCheckpoint(path)])
    before = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(cr_container.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        fit(small_net(seed=1), data, 1, [cr.ModelCheckpoint(path)])
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]


# --- History with the model ------------------------------------------------------------------------
def test_history_saved_with_the_model(tmp_path, data):
    net = small_net()
    history = fit(net, data, 3, [])
    net.save(tmp_path / "m.npz", metadata={"note": "hello"}, history=history)
    loaded = cr.load(tmp_path / "m.npz")
    assert loaded.history.history == history.history and loaded.history.epoch == [0, 1, 2]
    assert loaded.history.params == history.params and loaded.metadata["note"] == "hello"
    cr.save(net, tmp_path / "plain.npz")
    assert cr.load(tmp_path / "plain.npz").history is None
    assert cr.History.from_dict(history.to_dict()).history == history.history


# --- CSVLogger ---------------------------------------------------------------------------------------
def test_csv_logger_rows_and_append(tmp_path, data):
    path = tmp_path / "log.csv"
    history = fit(small_net(), data, 3, [cr.CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert [float(r["val_loss"]) for r in rows] == history.history["val_loss"]
    fit(small_net(), data, 2, [cr.CSVLogger(path, append=True)])
    with open(path, newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1", "2", "0", "1"]
    fit(small_net(), data, 1, [cr.CSVLogger(path, separator=";")])
    assert path.read_text().splitlines()[0] == "epoch;loss;accuracy;val_loss;val_accuracy"


def test_csv_logger_adds_a_column_for_a_late_log(tmp_path):
    logger = cr.CSVLogger(tmp_path / "log.csv")
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 1.0})
    logger.on_epoch_end(1, {"loss": 0.5, "lr": 0.1})
    assert (tmp_path / "log.csv").read_text().splitlines() == ["epoch,loss,lr", "0,1.0,", "1,0.5,0.1"]


# --- ReduceLROnPlateau ---------------------------------------------------------------------------------
class Feed(cr.Callback):
    """Replaces the logs' val_loss with a scripted sequence (runs before the callback under test)."""

    def __init__(self, values):
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


def test_reduce_lr_on_plateau_patience_cooldown_min_lr(data):
    values = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8]
    reduce = cr.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    opt = cr.SGD(lr=0.1)
    X, y, Xv, yv = data
    small_net().fit(X, y, loss=cr.CrossEntropy(), optimizer=opt, epochs=len(values), validation_data=(Xv, yv),
                    callbacks=[Feed(values), reduce], verbose=0)
    # epochs 2,3 stale -> reduce at 3; cooldown epoch 4; stale 5,6 -> reduce at 6; cooldown 7; 8 improves;
    # stale 9,10 -> reduce at 10 (to min_lr 0.02)
    assert reduce.reductions == [(3, 0.05), (6, 0.025), (10, 0.02)]
    assert opt.lr == 0.02 and opt.base_lr == pytest.approx(0.02)


def test_reduce_lr_validates_arguments():
    with pytest.raises(cr.ConfigError, match="factor"):
        cr.ReduceLROnPlateau(factor=1.5)
    with pytest.raises(cr.ConfigError, match="patience"):
        cr.ReduceLROnPlateau(patience=-1)
    with pytest.raises(cr.ConfigError, match="mode"):
        cr.ReduceLROnPlateau(mode="up")


# --- GradientNormLogger -----------------------------------------------------------------------------
def test_gradient_norm_logger_matches_a_hand_computed_norm(data):
    X, y, _, _ = data
    net = small_net()
    per_batch = cr.GradientNormLogger(every="batch")
    last = {}

    def grab(batch, logs):
        last["g"] = [layer.grads["weight"].copy() for layer in net.layers if layer.grads]
        last["b"] = [layer.grads["bias"].copy() for layer in net.layers if layer.grads]

    net.fit(X, y, loss=cr.CrossEntropy(), optimizer=cr.SGD(lr=0.1), epochs=2, batch_size=50, verbose=0,
            callbacks=[per_batch, cr.LambdaCallback(on_batch_end=grab)])
    assert list(per_batch.norms) == ["0: Dense(n_in=2, n_out=16, use_bias=True)",
                                     "2: Dense(n_in=16, n_out=2, use_bias=True)"]
    assert all(len(v) == 6 for v in per_batch.norms.values())
    expected = np.sqrt((last["g"][1].astype(np.float64) ** 2).sum() + (last["b"][1].astype(np.float64) ** 2).sum())
    assert per_batch.norms["2: Dense(n_in=16, n_out=2, use_bias=True)"][-1] == pytest.approx(expected, rel=1e-5)
    per_epoch = cr.GradientNormLogger()
    net.fit(X, y, loss=cr.CrossEntropy(), optimizer=cr.SGD(lr=0.1), epochs=3, verbose=0, callbacks=[per_epoch])
    assert all(len(v) == 3 for v in per_epoch.norms.values())


# --- EarlyStopping(restore_best_weights=True) and layer buffers ------------------------------------
def batchnorm_net():
    return cr.Sequential(cr.Dense(2, 8, seed=0), cr.BatchNorm(8), cr.Tanh(), cr.Dense(8, 2, seed=1))


SCORES = [1.0, 0.5, 0.9, 0.9, 0.9, 0.9]  # best at epoch 1; patience 2 stops at the end of epoch 3


def scored_run(net, data, callbacks, **kw):
    """4 epochs of EarlyStopping on injected scores; the parameters and running statistics that
    every epoch ended with, copied as they were."""
    snapshots = []

    def record(epoch, logs):
        logs["score"] = SCORES[epoch]
        bn = net.layers[1].buffers
        snapshots.append((net.get_weights(), bn["running_mean"].copy(), bn["running_var"].copy()))

    stop = cr.EarlyStopping(monitor="score", patience=2, restore_best_weights=True)
    fit(net, data, len(SCORES), [cr.LambdaCallback(on_epoch_end=record), stop, *callbacks], **kw)
    return snapshots


def assert_holds(net, snapshot):
    weights, mean, var = snapshot
    assert all(np.array_equal(a, b) for a, b in zip(net.get_weights(), weights, strict=True))
    assert np.array_equal(net.layers[1].buffers["running_mean"], mean)
    assert np.array_equal(net.layers[1].buffers["running_var"], var)


def test_early_stopping_restores_the_running_statistics_of_the_best_epoch_with_its_weights(data):
    net = batchnorm_net()
    snapshots = scored_run(net, data, [])
    assert len(snapshots) == 4
    assert not np.allclose(snapshots[1][1], snapshots[-1][1])  # the statistics moved after epoch 1
    assert_holds(net, snapshots[1])


def test_early_stopping_restores_the_best_running_statistics_after_a_resume(tmp_path, data):
    from crashing import Crash

    snapshots = scored_run(batchnorm_net(), data, [])
    path = tmp_path / "run.ckpt"
    with pytest.raises(RuntimeError, match="simulated"):  # 5 batches an epoch: dies in epoch 3
        scored_run(batchnorm_net(), data, [Crash(12)], checkpoint=path)
    net = batchnorm_net()
    scored_run(net, data, [], checkpoint=path, resume=path)
    assert_holds(net, snapshots[1])
