"""Acceptance: every field of a real checkpoint, edited to hostile values (the wrong type, nested
garbage, negative, huge, NaN, the wrong length or shape) and signed again (the checksums
recomputed, as anyone editing the file can), makes ``fit(resume=...)`` fail with a ChainruleError
that names the field, within 2 seconds, before a single step."""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import pytest

import chainrule as cr
from chainrule import io as cr_io
from crashing import Crash

ARRAY, TUPLE, ITEMS = "__array__", "__tuple__", "__items__"




class Steps(cr.Callback):
    """Counts the batches a resumed run trains (none, when the checkpoint is refused)."""

    def __init__(self) -> None:
        self.batches = 0

    def on_batch_end(self, batch, logs=None):
        self.batches += 1


# --- two real checkpoints, stopped mid-epoch -------------------------------------------------------
def mlp_run(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    y = (X[:, 0] > 0).astype(int)

    def callbacks():
        return [cr.EarlyStopping(monitor="loss", patience=50, restore_best_weights=True),
                cr.ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5, cooldown=2),
                cr.GradientNormLogger(), cr.ModelCheckpoint(tmp_path / "best.npz", monitor="loss"),
                cr.CSVLogger(tmp_path / "log.csv")]

    def fit(net, **kw):
        return net.fit(X, y, loss=cr.CrossEntropy(), optimizer=cr.Adam(lr=0.01), epochs=4, batch_size=8,
                       seed=0, metrics=["accuracy"], verbose=0, **kw)

    def build():
        return cr.mlp([5, 6, 2], dropout=0.2, seed=0)

    return build, fit, callbacks


def rnn_run(tmp_path):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(12, 4, 3)), rng.integers(0, 2, size=(12, 4))

    def build():
        return cr.Sequential(cr.RNN(3, 5, seed=0, return_sequences=True, stateful=True),
                             cr.TimeDistributed(cr.Dense(5, 2, seed=1)), dtype=np.float64)

    def fit(net, **kw):
        return net.fit(X, y, loss=cr.CrossEntropy(), optimizer=cr.SGD(lr=0.05, momentum=0.9), epochs=3,
                       batch_size=4, seed=0, verbose=0, **kw)

    return build, fit, lambda: []


def fa_run(tmp_path):
    """Feedback alignment: the checkpoint also holds the rule's steps, angle sums and matrices."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 5))
    y = (X[:, 0] > 0).astype(int)

    def build():
        return cr.mlp([5, 6, 4, 2], activation="tanh", seed=0)

    def fit(net, **kw):
        return net.fit(X, y, loss=cr.CrossEntropy(), optimizer=cr.SGD(lr=0.05), epochs=4, batch_size=8, seed=0,
                       rule=cr.FeedbackAlignment(seed=1, track_every=2), verbose=0, **kw)

    return build, fit, lambda: []


RUNS = {"mlp": mlp_run, "rnn": rnn_run, "fa": fa_run}


@pytest.fixture(params=sorted(RUNS))
def run(request, tmp_path):
    build, fit, callbacks = RUNS[request.param](tmp_path)
    path = tmp_path / "run.ckpt"
    with pytest.raises(RuntimeError, match="simulated"):  # (the last checkpoint: after a batch of epoch 2)
        fit(build(), callbacks=[*callbacks(), Crash(5 if request.param == "rnn" else 7)], checkpoint=path,
            checkpoint_every=2)
    header, arrays = cr_io.read(path)
    assert header["training"]["position"]["batch"] > 0  # mid-epoch: every field is there
    return request.param, path, header, {k: np.array(v) for k, v in arrays.items()}, build, fit, callbacks


def resume_edited(run, tmp_path, change):
    """Write the checkpoint with ``change(training, arrays)`` applied and signed; resume from it."""
    _, _, header, arrays, build, fit, callbacks = run
    header, arrays = copy.deepcopy(header), {k: v.copy() for k, v in arrays.items()}
    change(header["training"], arrays)
    edited = tmp_path / "edited.ckpt"
    cr_io.write(edited, header, arrays)
    steps = Steps()
    start = time.perf_counter()
    try:
        fit(build(), callbacks=[*callbacks(), steps], resume=edited)
    except cr.ChainruleError as exc:
        elapsed = time.perf_counter() - start
        assert elapsed < 2.0 and steps.batches == 0, (elapsed, steps.batches)
        return exc
    return None


# --- the fields, enumerated from the file itself ------------------------------------------------------
def leaves(value, path=()):
    """(path, value) of every leaf of the packed training tree; an array reference is a leaf."""
    if isinstance(value, dict) and ARRAY not in value:
        for k, v in value.items():
            yield from leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))
    else:
        yield path, value


def put(tree, path, value):
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def named(path) -> tuple[str, str]:
    """What the error must name: the training field (``training.position``, ``training.callbacks``)
    and the leaf's own name (the last key that is a word, the setting's name under settings)."""
    top = f"training.{path[0]}"
    words = [k for k in path if isinstance(k, str) and k not in (ARRAY, TUPLE, ITEMS) and not k.isdigit()]
    if path[0] in ("settings", "data"):
        return top, f"{path[0]}.{path[1]}"
    return top, words[-1]


#: Leaves that no run reads: the History's fit settings are those of the resuming run.
UNREAD = ("history", "params")


def wrong_type(value):
    return 12345 if isinstance(value, str) else ["not", {"a": "number"}]


GARBAGE = {ITEMS: [[{"a": [1]}, {TUPLE: [[[]]]}]]}


def test_every_field_of_the_training_state_is_enumerated(run):
    name, _, header, *_ = run
    paths = {p[:2] for p, _ in leaves(header["training"])}
    tops = {p[0] for p in paths}
    assert tops == {"kind", "version", "settings", "data", "position", "optimizer", "rng", "carried",
                    "history", "callbacks", "rule"} - {"mlp": {"carried", "rule"}, "rnn": {"callbacks", "rule"},
                                                       "fa": {"carried", "callbacks"}}[name]
    assert {p[1] for p in paths if p[0] == "position"} == {"epoch", "batch", "step", "epoch_rng", "total",
                                                           "metrics", "finished", "last_loss"} - (
        {"metrics"} if name != "mlp" else set())
    assert {p[1] for p in paths if p[0] == "optimizer"} == {"class", "config", "state", "iterations", "lr",
                                                            "base_lr", "last_grad_norm"}


@pytest.mark.parametrize("hostile", ["wrong type", "nested garbage"])
def test_every_field_edited_to_the_wrong_kind_is_refused_naming_it(run, tmp_path, hostile):
    _, _, header, *_ = run
    accepted, unnamed = [], []
    fields = [(p, v) for p, v in leaves(header["training"]) if p[:2] != UNREAD]
    assert len(fields) > 40
    for path, value in fields:
        bad = wrong_type(value) if hostile == "wrong type" else GARBAGE
        exc = resume_edited(run, tmp_path, lambda training, arrays, path=path, bad=bad: put(training, path, bad))
        if exc is None:
            accepted.append(path)
        elif not all(n in str(exc) for n in named(path)) and path[0] not in ("kind", "version"):
            unnamed.append((path, str(exc)[:300]))
    assert accepted == [] and unnamed == []


def array_of(training, arrays, path):
    node = training
    for key in path:
        node = node[key]
    return arrays[node[ARRAY]]


def set_array(shape_change=None, value=None, dtype=None):
    def change(training, arrays, path):
        node = training
        for key in path:
            node = node[key]
        arr = arrays[node[ARRAY]]
        if shape_change is not None:
            arr = np.zeros(shape_change(arr.shape), arr.dtype)
        if dtype is not None:
            arr = arr.astype(dtype)
        if value is not None:
            arr = arr.copy()
            arr.flat[0] = value
        arrays[node[ARRAY]] = arr
    return change


def test_every_array_of_the_wrong_shape_dtype_or_values_is_refused_naming_it(run, tmp_path):
    _, _, header, *_ = run
    refs = [p for p, v in leaves(header["training"]) if isinstance(v, dict)]
    assert refs
    failures = []
    for path in refs:
        for what, change in [("one more column", set_array(lambda s: (*s[:-1], s[-1] + 1) if s else (1,))),
                             ("a scalar", set_array(lambda s: ())),
                             ("NaN", set_array(value=np.nan)),
                             ("integers", set_array(dtype=np.int64))]:
            exc = resume_edited(run, tmp_path, lambda t, a, path=path, change=change: change(t, a, path))
            if exc is None or not all(n in str(exc) for n in named(path)):
                failures.append((path, what, None if exc is None else str(exc)[:200]))
    assert failures == []


def pcg_paths(training):
    return [p[:-1] for p, v in leaves(training) if p[-1] == "bit_generator"]


# (field path, hostile value, what the error must say); the paths are those of the mlp run
RANGES = [
    (("position", "epoch"), -1_000_000, "position.epoch"),
    (("position", "epoch"), 10**30, "position.epoch"),
    (("position", "epoch"), 9, "ask for at least 9 epochs"),
    (("position", "epoch"), 2.0, "position.epoch"),
    (("position", "batch"), -1, "position.batch"),
    (("position", "batch"), 5, "position.batch"),
    (("position", "batch"), 10**30, "position.batch"),
    (("position", "step"), -1, "position.step"),
    (("position", "step"), 10**6, "position.step"),
    (("position", "total"), math.nan, "position.total"),
    (("position", "total"), math.inf, "position.total"),
    (("position", "total"), 10**400, "position.total"),
    (("position", "last_loss"), math.nan, "position.last_loss"),
    (("position", "finished"), 1, "position.finished"),
    (("position", "metrics"), [], "position.metrics"),
    (("position", "metrics", 0, "count"), -5, "position.metrics[0].count"),
    (("position", "metrics", 0, "correct"), 1.5, "position.metrics[0].correct"),
    (("position", "metrics", 0, "threshold"), math.nan, "position.metrics[0].threshold"),
    (("position", "epoch_rng", "state", "state"), -1, "position.epoch_rng.state.state"),
    (("position", "epoch_rng", "state", "inc"), 2**200, "position.epoch_rng.state.inc"),
    (("position", "epoch_rng", "has_uint32"), 7, "position.epoch_rng.has_uint32"),
    (("position", "epoch_rng", "bit_generator"), "MT19937", "position.epoch_rng"),
    (("optimizer", "lr"), -0.1, "optimizer.lr"),
    (("optimizer", "lr"), math.nan, "optimizer.lr"),
    (("optimizer", "base_lr"), math.inf, "optimizer.base_lr"),
    (("optimizer", "iterations"), -1, "optimizer.iterations"),
    (("optimizer", "iterations"), 2**70, "optimizer.iterations"),
    (("optimizer", "last_grad_norm"), -1.0, "optimizer.last_grad_norm"),
    (("optimizer", "config", "eps"), 0.5, "optimizer.config.eps"),
    (("optimizer", "config", "lr"), -1, "optimizer.config.lr"),
    (("optimizer", "state", "0.weight", "t"), 0, "optimizer.state.0.weight.t"),
    (("optimizer", "state", "0.weight", "t"), 10**9, "optimizer.state.0.weight.t"),
    (("optimizer", "state", "9.weight"), {}, "optimizer.state"),
    (("optimizer", "state", "0.weight", "extra"), 1, "optimizer.state.0.weight"),
    (("rng", "shuffle", "uinteger"), -3, "rng.shuffle.uinteger"),
    (("rng", "layers", "7.rng"), {"bit_generator": "PCG64"}, "rng.layers"),
    (("history", "epoch", 0), -1, "history.epoch[0]"),
    (("history", "epoch", 0), 5, "history.epoch[0]"),
    (("history", "epoch"), [0, 1, 2, 3, 4, 5], "history.epoch"),
    (("history", "history", "loss"), [0.1] * 50, "history.history.loss"),
    (("history", "stopped_early"), "yes", "history.stopped_early"),
    (("callbacks", 0, "state", "wait"), -1, "callbacks[0].state.wait"),
    (("callbacks", 0, "state", "wait"), 10**12, "callbacks[0].state.wait"),
    (("callbacks", 0, "state", "best"), math.nan, "callbacks[0].state.best"),
    (("callbacks", 0, "state", "best_epoch"), 99, "callbacks[0].state.best_epoch"),
    (("callbacks", 0, "state", "best_weights"), [], "callbacks[0].state.best_weights"),
    (("callbacks", 0, "state", "best_buffers"), [[1.0]], "callbacks[0].state.best_buffers"),
    (("callbacks", 0, "state", "surprise"), 1, "callbacks[0].state"),
    (("callbacks", 0, "index"), 3, "callbacks[0].index"),
    (("callbacks", 1, "state", "cooldown_counter"), 3, "callbacks[1].state.cooldown_counter"),
    (("callbacks", 1, "state", "reductions"), [{TUPLE: [0]}], "callbacks[1].state.reductions[0]"),
    (("callbacks", 1, "state", "reductions"), [{TUPLE: [0, -0.5]}], "callbacks[1].state.reductions[0][1]"),
    (("callbacks", 1, "state", "reductions"), [{TUPLE: [0, 0.1]}] * 9, "callbacks[1].state.reductions"),
    (("callbacks", 2, "state", "_count"), 10**9, "callbacks[2].state._count"),
    (("callbacks", 2, "state", "_sums"), {"0": -1.0}, "callbacks[2].state._sums"),
    (("callbacks", 3, "state", "history", "epoch"), [-5], "callbacks[3].state.history.epoch[0]"),
    (("callbacks", 3, "state", "saved"), ["a"] * 40, "callbacks[3].state.saved"),
    (("callbacks", 4, "state", "rows"), [{"loss": [1, 2]}], "callbacks[4].state.rows[0]"),
    (("callbacks",), [], "training.callbacks"),
    (("settings", "batch_size"), -8, "settings.batch_size"),
    (("settings",), [1, 2], "training.settings"),
    (("data", "X", "shape"), [-40, 5], "data.X.shape[0]"),
    (("data", "X", "sha256"), "0" * 10, "data.X.sha256"),
    (("data",), {"X": 5}, "data.X"),
]


@pytest.mark.parametrize(("path", "value", "message"), RANGES, ids=[f"{'.'.join(map(str, p))}={str(v)[:20]}"
                                                                    for p, v, _ in RANGES])
def test_numbers_out_of_range_and_wrong_lengths_are_refused_naming_the_field(tmp_path, path, value, message):
    build, fit, callbacks = mlp_run(tmp_path)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(RuntimeError, match="simulated"):
        fit(build(), callbacks=[*callbacks(), Crash(7)], checkpoint=ckpt, checkpoint_every=2)
    header, arrays = cr_io.read(ckpt)
    run = ("mlp", ckpt, header, {k: np.array(v) for k, v in arrays.items()}, build, fit, callbacks)
    exc = resume_edited(run, tmp_path, lambda training, _: put(training, path, value))
    assert exc is not None and message in str(exc), exc


def test_rnn_carried_state_of_the_wrong_size_or_layer_is_refused(tmp_path):
    build, fit, callbacks = rnn_run(tmp_path)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(RuntimeError, match="simulated"):
        fit(build(), callbacks=[Crash(4)], checkpoint=ckpt, checkpoint_every=1)
    header, arrays = cr_io.read(ckpt)
    run = ("rnn", ckpt, header, {k: np.array(v) for k, v in arrays.items()}, build, fit, callbacks)
    carried = header["training"]["carried"]
    assert list(carried) == ["0"]
    for change, message in [
        (lambda t, a: t["carried"].update({"1": t["carried"]["0"]}), "carried.1"),
        (lambda t, a: t["carried"].update({"-1": {}}), "training.carried"),
        (lambda t, a: t["carried"].update({"99": {}}), "training.carried"),
        (lambda t, a: t["carried"]["0"][ITEMS][0].__setitem__(0, "yes"), "carried.0"),
        (lambda t, a: t["carried"]["0"][ITEMS][0][1][TUPLE].append(t["carried"]["0"][ITEMS][0][1][TUPLE][0]),
         "carried.0.False"),
        (lambda t, a: a.__setitem__(t["carried"]["0"][ITEMS][0][1][TUPLE][0][ARRAY], np.zeros((9, 5))),
         "rows (the batch size)"),
        (lambda t, a: a.__setitem__(t["carried"]["0"][ITEMS][0][1][TUPLE][0][ARRAY], np.zeros((4, 6))),
         "carried.0.False.h"),
    ]:
        exc = resume_edited(run, tmp_path, change)
        assert exc is not None and message in str(exc), (message, exc)


def test_an_untouched_checkpoint_still_resumes(run, tmp_path):
    assert resume_edited(run, tmp_path, lambda training, arrays: None) is None
