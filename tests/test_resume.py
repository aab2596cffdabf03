"""Checkpoints and exact resume (in process): a run stopped anywhere and resumed ends bit for bit
where the uninterrupted run ends; graceful stop on SIGINT/SIGTERM; divergence keeps the last good
checkpoint. The subprocess kill -9 acceptance test is in test_crash_resume.py."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import chainrule as cr
from chainrule import checkpoint as ckpt_io
from crashing import Crash


def data(n=67, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] * X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    return X, y


def build(dropout=0.2, dtype=np.float32):
    return cr.mlp([5, 12, 8, 3], dropout=dropout, seed=3, dtype=dtype)


def callbacks():
    return [cr.EarlyStopping(monitor="loss", patience=50, restore_best_weights=True),
            cr.ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5),
            cr.GradientNormLogger()]


FIT = dict(loss=cr.CrossEntropy(), epochs=5, batch_size=8, seed=0, metrics=["accuracy"], verbose=0)




class SendSignal(cr.Callback):
    def __init__(self, at: int, sig=signal.SIGINT) -> None:
        self.at, self.seen, self.sig = at, 0, sig

    def on_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at:
            os.kill(os.getpid(), self.sig)


def reference(optimizer_factory=lambda: cr.Adam(lr=0.01), **kw):
    X, y = data()
    net = build(**kw)
    history = net.fit(X, y, optimizer=optimizer_factory(), callbacks=callbacks(), **FIT)
    return net, history


def assert_same_weights(a, b):
    for (key, p), q in zip(a.params.items(), b.params.values(), strict=True):
        assert p.dtype == q.dtype and np.array_equal(p, q), key


@pytest.mark.parametrize("crash_at", [1, 9, 17, 25, 40])
@pytest.mark.parametrize("every", [3, "epoch"])
def test_a_crash_anywhere_then_resume_gives_the_uninterrupted_weights_bit_for_bit(tmp_path, crash_at, every):
    ref, ref_history = reference()
    X, y = data()
    path = tmp_path / "run.ckpt"
    with pytest.raises(RuntimeError, match="simulated"):
        build().fit(X, y, optimizer=cr.Adam(lr=0.01), callbacks=[*callbacks(), Crash(crash_at)],
                    checkpoint=path, checkpoint_every=every, **FIT)
    if not path.exists():  # crashed before the first checkpoint: start again from scratch
        assert crash_at <= (3 if every == 3 else 9)
        return
    net = build()
    history = net.fit(X, y, optimizer=cr.Adam(lr=0.01), callbacks=callbacks(), resume=path,
                      checkpoint=path, checkpoint_every=every, **FIT)
    assert_same_weights(net, ref)
    assert history.history == ref_history.history and history.epoch == ref_history.epoch
    assert not history.interrupted


@pytest.mark.parametrize("make_opt", [
    lambda: cr.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda: cr.RMSProp(lr=0.01, momentum=0.5, centered=True),
    lambda: cr.Adagrad(lr=0.05),
    lambda: cr.AdamW(lr=0.01, clip_norm=1.0, schedule=cr.StepLR(2, 0.5)),
], ids=["sgd-nesterov", "rmsprop-centered", "adagrad", "adamw-clip-schedule"])
def test_every_optimizer_state_resumes_exactly(tmp_path, make_opt):
    ref, _ = reference(make_opt, dtype=np.float64)
    X, y = data()
    path = tmp_path / "run.ckpt"
    with pytest.raises(RuntimeError):
        build(dtype=np.float64).fit(X, y, optimizer=make_opt(), callbacks=[*callbacks(), Crash(21)],
                                    checkpoint=path, checkpoint_every=4, **FIT)
    net = build(dtype=np.float64)
    net.fit(X, y, optimizer=make_opt(), callbacks=callbacks(), resume=path, **FIT)
    assert_same_weights(net, ref)


def test_a_stateful_rnn_with_truncated_bptt_and_dropout_resumes_exactly(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 6, 3)), rng.integers(0, 2, size=(24, 6))

    def build_rnn():
        return cr.Sequential(cr.RNN(3, 5, seed=0, return_sequences=True, stateful=True), cr.Dropout(0.2, seed=3),
                             cr.TimeDistributed(cr.Dense(5, 2, seed=1)), dtype=np.float64)

    fit = dict(loss=cr.CrossEntropy(), epochs=3, batch_size=4, seed=0, verbose=0, bptt_steps=2)
    ref = build_rnn()
    ref.fit(X, y, optimizer=cr.Adam(lr=0.01), **fit)
    path = tmp_path / "rnn.ckpt"
    with pytest.raises(RuntimeError):
        build_rnn().fit(X, y, optimizer=cr.Adam(lr=0.01), callbacks=[Crash(10)], checkpoint=path,
                        checkpoint_every=4, **fit)
    net = build_rnn()
    net.fit(X, y, optimizer=cr.Adam(lr=0.01), resume=path, **fit)
    assert_same_weights(net, ref)


def test_the_checkpoint_is_a_loadable_model_with_the_training_state(tmp_path):
    X, y = data()
    path = tmp_path / "run.ckpt"
    net = build()
    net.fit(X, y, optimizer=cr.Adam(lr=0.01), checkpoint=path, **FIT)
    loaded = cr.load(path)
    assert_same_weights(loaded, net)
    ckpt = ckpt_io.read(path)
    pos = ckpt.position
    assert (pos.epoch, pos.batch, pos.finished) == (5, 0, True)
    opt = ckpt.value("optimizer")
    assert opt["class"] == "Adam" and opt["iterations"] == 5 * 9
    assert set(opt["state"]) == {k for k in net.params}
    assert set(ckpt.value("rng")["layers"]) == {"2.rng", "5.rng"}  # the two Dropout layers


def test_resuming_a_finished_run_with_more_epochs_continues_it(tmp_path):
    X, y = data()
    fit = {**FIT, "epochs": 6}
    ref = build()
    ref.fit(X, y, optimizer=cr.Adam(lr=0.01), **fit)
    path = tmp_path / "run.ckpt"
    first = build()
    first.fit(X, y, optimizer=cr.Adam(lr=0.01), checkpoint=path, **{**fit, "epochs": 4})
    net = build()
    history = net.fit(X, y, optimizer=cr.Adam(lr=0.01), resume=path, checkpoint=path, **fit)
    assert_same_weights(net, ref)
    assert len(history.epoch) == 6


def test_resuming_a_finished_run_does_nothing_more(tmp_path):
    X, y = data()
    path = tmp_path / "run.ckpt"
    done = build()
    done.fit(X, y, optimizer=cr.Adam(lr=0.01), checkpoint=path, **FIT)
    before = path.read_bytes()
    net = build()
    history = net.fit(X, y, optimizer=cr.Adam(lr=0.01), resume=path, checkpoint=path, **FIT)
    assert_same_weights(net, done)
    assert len(history.epoch) == 5 and path.read_bytes() == before


# --- graceful stop -----------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_after_the_batch_writes_the_checkpoint_and_marks_the_history(tmp_path, sig):
    X, y = data()
    path = tmp_path / "run.ckpt"
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    net = build()
    history = net.fit(X, y, optimizer=cr.Adam(lr=0.01), callbacks=[*callbacks(), SendSignal(13, sig)],
                      checkpoint=path, **FIT)
    assert history.interrupted and history.checkpoint == str(path)
    assert len(history.epoch) == 1  # 9 batches per epoch: stopped in the second epoch, after batch 13
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    pos = ckpt_io.read(path).position
    assert (pos.epoch, pos.batch, pos.step) == (1, 4, 13)

    ref, ref_history = reference()
    resumed = build()
    history = resumed.fit(X, y, optimizer=cr.Adam(lr=0.01), callbacks=callbacks(), resume=path, **FIT)
    assert_same_weights(resumed, ref)
    assert history.history == ref_history.history and not history.interrupted


def test_a_signal_without_a_checkpoint_still_stops_cleanly(tmp_path):
    X, y = data()
    net = build()
    history = net.fit(X, y, optimizer="adam", callbacks=[SendSignal(3)], **FIT)
    assert history.interrupted and history.checkpoint is None and history.epoch == []
    path = tmp_path / "run.ckpt"  # with one: it holds the weights after the third batch
    net = build()
    net.fit(X, y, optimizer="adam", callbacks=[SendSignal(3)], checkpoint=path, **FIT)
    assert_same_weights(cr.load(path), net)


def test_signal_handlers_are_left_alone_outside_the_main_thread():
    import threading

    X, y = data()
    seen = {}

    def train():
        seen["history"] = build().fit(X, y, optimizer="adam", **FIT)

    installed = signal.getsignal(signal.SIGINT)
    t = threading.Thread(target=train)
    t.start()
    t.join()
    assert not seen["history"].interrupted and signal.getsignal(signal.SIGINT) is installed


def test_graceful_stop_can_be_turned_off():
    X, y = data()
    with pytest.raises(KeyboardInterrupt):
        build().fit(X, y, optimizer="adam", callbacks=[SendSignal(3)], graceful_stop=False, **FIT)


# --- refusals ------------------------------------------------------------------------------------
def test_resume_refuses_other_data_or_settings(tmp_path):
    X, y = data()
    path = tmp_path / "run.ckpt"
    build().fit(X, y, optimizer=cr.Adam(lr=0.01), checkpoint=path, **{**FIT, "epochs": 1})
    X2 = X.copy()
    X2[0, 0] += 1
    with pytest.raises(cr.ConfigError, match="training X differs"):
        build().fit(X2, y, optimizer=cr.Adam(lr=0.01), resume=path, **FIT)
    with pytest.raises(cr.ConfigError, match="batch_size was 8, now 16"):
        build().fit(X, y, optimizer=cr.Adam(lr=0.01), resume=path, **{**FIT, "batch_size": 16})
    with pytest.raises(cr.ConfigError, match="optimizer"):
        build().fit(X, y, optimizer=cr.SGD(lr=0.01), resume=path, **FIT)
    with pytest.raises(cr.ConfigError, match="build the same network"):
        cr.mlp([5, 7, 3], seed=3).fit(X, y, optimizer=cr.Adam(lr=0.01), resume=path, **FIT)
    with pytest.raises(cr.ConfigError, match="callbacks"):
        build().fit(X, y, optimizer=cr.Adam(lr=0.01), resume=path, callbacks=callbacks(), **FIT)


def test_resume_refuses_a_model_file_and_a_damaged_checkpoint(tmp_path):
    X, y = data()
    model = tmp_path / "model.npz"
    build().save(model)
    with pytest.raises(cr.FileFormatError, match="not a training checkpoint"):
        build().fit(X, y, optimizer="adam", resume=model, **FIT)
    path = tmp_path / "run.ckpt"
    build().fit(X, y, optimizer="adam", checkpoint=path, **{**FIT, "epochs": 1})
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(cr.FileFormatError):
        build().fit(X, y, optimizer="adam", resume=path, **FIT)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"checkpoint": 3}, "checkpoint must be a file path"),
    ({"checkpoint": "x.ckpt", "checkpoint_every": 0}, "checkpoint_every"),
    ({"checkpoint": "x.ckpt", "checkpoint_every": "often"}, "checkpoint_every"),
    ({"checkpoint": "x.ckpt", "rule": cr.DNI()}, "checkpoints do not keep"),  # (FA and DFA checkpoint now)
])
def test_bad_checkpoint_arguments_are_config_errors(kwargs, match):
    X, y = data()
    with pytest.raises(cr.ConfigError, match=match):
        build().fit(X, y, optimizer="adam", **{**FIT, **kwargs})


# --- divergence ----------------------------------------------------------------------------------
def test_divergence_names_epoch_batch_and_last_finite_loss_and_keeps_the_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)) * 10
    y = X @ rng.normal(size=(4, 1)) * 10
    path = tmp_path / "run.ckpt"
    net = cr.mlp([4, 16, 1], seed=0, dtype=np.float64)
    with pytest.raises(cr.TrainingError) as info:
        net.fit(X, y, loss="mse", optimizer=cr.SGD(lr=0.5), epochs=50, batch_size=8, seed=0, verbose=0,
                checkpoint=path, checkpoint_every=2)
    message = str(info.value)
    assert "epoch" in message and "batch" in message and "last finite loss was" in message
    assert "was kept untouched" in message
    good = cr.load(path)  # the last checkpoint loads and holds finite weights
    assert all(np.isfinite(p).all() for p in good.params.values())
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]


def test_a_broken_model_is_never_saved_over_a_good_file(tmp_path):
    path = tmp_path / "model.npz"
    net = build()
    net.save(path)
    before = path.read_bytes()
    net.layers[0].params["weight"][1, 2] = np.nan
    with pytest.raises(cr.DataError, match=r"layers\.0\.weight.*nan at index \[1, 2\]"):
        net.save(path)
    assert path.read_bytes() == before
