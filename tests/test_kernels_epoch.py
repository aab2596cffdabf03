"""The compiled runs of batches (chainrule.step.DenseRuns, chainrule/kernels/epoch.py) against the
step fit runs batch by batch.

Each fit below runs twice from the same start: once with the compiled runs, once with them turned
off (the plain step, layer by layer, with the other kernels still on). The weights, the history,
the momentum buffers and the step count must agree: to 1e-12 in float64, and in float32 to a few
units in the last place (the C library's tanh against NumPy's), 1e-6 of the largest weight. The
products go to NumPy's own BLAS (kernels/blas.py), so ReLU networks agree to the bit. Skipped
without numba, or where NumPy's BLAS is not found.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest

import chainrule as cr
from chainrule import kernels
from chainrule.errors import TrainingError
from chainrule.kernels import blas  # noqa: F401  (kernels.blas below)
from chainrule.step import DenseRuns

pytest.importorskip("numba")
if kernels.blas.gemm("float32") is None or kernels.blas.gemm("float64") is None:
    pytest.skip("NumPy's BLAS was not found (a NumPy not from the wheels): fit takes the step",
                allow_module_level=True)

TOL = {"float64": 1e-12, "float32": 1e-6}
ACTIVATIONS = {"relu": cr.ReLU, "tanh": cr.Tanh, "sigmoid": cr.Sigmoid, "identity": cr.Identity}


@pytest.fixture(autouse=True)
def _numba_kernels():
    saved = dict(kernels._settings)
    kernels.use("numba")
    yield
    kernels._settings.update(saved)


class Calls:
    """Counts the compiled calls and records the batches each ran."""

    def __init__(self, monkeypatch) -> None:
        self.spans: list[tuple[int, int, int]] = []
        original = DenseRuns.__call__

        def spy(runs, order, start, stop):
            done = original(runs, order, start, stop)
            self.spans.append((start, stop, done))
            return done

        monkeypatch.setattr(DenseRuns, "__call__", spy)


def fit_both(monkeypatch, build, X, y, optimizer, **kw):
    """(network, history, optimizer) with the compiled runs, then without; and the calls made."""
    calls = Calls(monkeypatch)
    results = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(DenseRuns, "enabled", False)
        net, opt = build(), copy.deepcopy(optimizer)
        history = net.fit(X, y, optimizer=opt, verbose=0, seed=0, **kw)
        results.append((net, history, opt))
    return results, calls


def assert_same(a, b, dtype):
    (net_a, hist_a, opt_a), (net_b, hist_b, opt_b) = a, b
    scale = max(float(np.max(np.abs(w))) for w in net_b.get_weights())
    for wa, wb in zip(net_a.get_weights(), net_b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=TOL[dtype] * scale)
    np.testing.assert_allclose(hist_a.history["loss"], hist_b.history["loss"], rtol=TOL[dtype] * 10)
    assert opt_a.iterations == opt_b.iterations
    assert set(opt_a.state) == set(opt_b.state)
    for key, state in opt_b.state.items():
        assert opt_a.state[key].get("t") == state.get("t")  # Adam's step counts
        for name in ("momentum", "m", "v"):
            if name in state:
                ref = state[name]
                np.testing.assert_allclose(opt_a.state[key][name], ref, rtol=0,
                                           atol=TOL[dtype] * max(1.0, float(np.max(np.abs(ref)))) * 10)


def network(dtype, acts, outputs, use_bias=True):
    def build():
        return cr.Sequential(cr.Dense(6, 5, seed=1, use_bias=use_bias), ACTIVATIONS[acts[0]](),
                             cr.Dense(5, 4, seed=2), ACTIVATIONS[acts[1]](),
                             cr.Dense(4, outputs, seed=3)).astype(dtype)
    return build


def data(dtype, n=203):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, 6)).astype(dtype)
    return X, rng.integers(0, 3, n), rng.standard_normal((n, 2)).astype(dtype)


OPTIMIZERS = [cr.SGD(lr=0.1), cr.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
              cr.SGD(lr=0.05, momentum=0.5, dampening=0.3), cr.Adam(lr=0.01, weight_decay=1e-3),
              cr.AdamW(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss, acts", [("crossentropy", ("relu", "tanh")), ("mse", ("sigmoid", "relu")),
                                        ("sse", ("tanh", "identity"))])
@pytest.mark.parametrize("opt", range(len(OPTIMIZERS)), ids=["sgd", "nesterov-decay", "dampening", "adam", "adamw"])
@pytest.mark.parametrize("batch_size, shuffle", [(16, True), (1, True), (None, False), (50, False)])
def test_compiled_runs_follow_the_step(monkeypatch, dtype, loss, acts, opt, batch_size, shuffle):
    X, labels, rows = data(dtype, 203 if batch_size != 1 else 37)
    y = labels[:len(X)] if loss == "crossentropy" else rows[:len(X)]
    outputs = 3 if loss == "crossentropy" else 2
    optimizer = copy.deepcopy(OPTIMIZERS[opt])
    if batch_size == 1:  # per-sample steps: a tenth of the rate, or momentum diverges
        optimizer.lr = optimizer.base_lr = optimizer.lr / 10
    (a, b), calls = fit_both(monkeypatch, network(dtype, acts, outputs), X, y, optimizer, loss=loss,
                             epochs=2, batch_size=batch_size, shuffle=shuffle)
    assert calls.spans, "the compiled runs did not run"
    assert_same(a, b, dtype)


@pytest.mark.parametrize("optimizer", [cr.SGD(lr=0.1, momentum=0.9), cr.AdamW(lr=0.01, weight_decay=0.01)],
                         ids=["momentum", "adamw"])
def test_relu_networks_agree_to_the_bit_state_included(monkeypatch, optimizer):
    X, labels, _ = data("float32")
    (a, b), _ = fit_both(monkeypatch, network("float32", ("relu", "relu"), 3), X, labels, optimizer,
                         loss="crossentropy", epochs=2, batch_size=16)
    for wa, wb in zip(a[0].get_weights(), b[0].get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert a[1].history["loss"] == b[1].history["loss"]
    for key, state in b[2].state.items():  # SGD's momentum; Adam's m, v and step count (13 batches twice)
        if isinstance(optimizer, cr.Adam):
            assert a[2].state[key]["t"] == state["t"] == 26
        for name in ("momentum", "m", "v"):
            if name in state:
                np.testing.assert_array_equal(a[2].state[key][name], state[name])


def test_a_layer_without_bias_and_grads_left_as_the_step_leaves_them(monkeypatch):
    X, labels, _ = data("float64")
    (a, b), _ = fit_both(monkeypatch, network("float64", ("tanh", "relu"), 3, use_bias=False), X, labels,
                         cr.SGD(lr=0.1), loss="crossentropy", epochs=1, batch_size=32)
    assert_same(a, b, "float64")
    for ga, gb in zip(a[0].grads.values(), b[0].grads.values(), strict=True):  # the last batch's gradients
        np.testing.assert_allclose(ga, gb, rtol=0, atol=1e-12)


@pytest.mark.parametrize("optimizer", [cr.SGD(lr=0.05, momentum=0.9), cr.Adam(lr=0.01)], ids=["momentum", "adam"])
def test_the_update_state_carries_over_to_a_second_fit(monkeypatch, optimizer):
    X, _, rows = data("float64")
    (a, b), _ = fit_both(monkeypatch, network("float64", ("sigmoid", "tanh"), 2), X, rows,
                         optimizer, loss="mse", epochs=1, batch_size=20)
    for compiled, (net, _, opt) in ((True, a), (False, b)):
        DenseRuns.enabled = compiled  # (monkeypatch puts it back)
        net.fit(X, rows, loss="mse", optimizer=opt, epochs=1, batch_size=20, verbose=0, seed=1)
    assert_same(a, b, "float64")


def test_a_loss_that_stops_being_finite_stops_at_the_same_batch(monkeypatch):
    """The batch whose loss is not finite updates nothing: the same error and the same weights."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 6))
    X[40] = 1e200  # overflows the products of the batch that holds it
    y = rng.standard_normal((64, 2))
    errors = []
    calls = Calls(monkeypatch)
    nets = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(DenseRuns, "enabled", False)
        net = network("float64", ("relu", "relu"), 2)()
        with pytest.raises(TrainingError) as info:
            net.fit(X, y, loss="mse", optimizer=cr.SGD(lr=0.01, momentum=0.9), epochs=1, batch_size=8,
                    shuffle=False, verbose=0)
        errors.append(str(info.value))
        nets.append(net)
    assert calls.spans[-1][2] == 5  # batch 6 (rows 40-47) stopped the call
    assert errors[0] == errors[1]
    assert "batch 6 of 8" in errors[0]
    for wa, wb in zip(nets[0].get_weights(), nets[1].get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=1e-12)


def test_a_first_batch_that_diverges_leaves_no_momentum_buffers(monkeypatch):
    X = np.full((8, 6), 1e200)
    net = network("float64", ("relu", "relu"), 2)()
    opt = cr.SGD(lr=0.01, momentum=0.9)
    with pytest.raises(TrainingError):
        net.fit(X, np.zeros((8, 2)), loss="mse", optimizer=opt, epochs=1, batch_size=4, verbose=0)
    assert all("momentum" not in state for state in opt.state.values())
    assert opt.iterations == 0


def test_calls_end_where_a_checkpoint_is_due(monkeypatch, tmp_path):
    X, labels, _ = data("float64", 230)
    calls = Calls(monkeypatch)
    net = network("float64", ("relu", "relu"), 3)()
    net.fit(X, labels, loss="crossentropy", optimizer=cr.SGD(lr=0.1), epochs=2, batch_size=10, verbose=0,
            checkpoint=tmp_path / "ckpt.npz", checkpoint_every=7)
    steps = 0
    for start, stop, done in calls.spans:
        assert done == stop
        steps += stop - start
        assert steps % 7 == 0 or stop == 23  # every call ends at a due checkpoint or at the epoch's end
    assert steps == 46


def test_the_switch_turns_the_runs_off(monkeypatch):
    X, labels, _ = data("float64")
    calls = Calls(monkeypatch)
    monkeypatch.setattr(DenseRuns, "enabled", False)
    network("float64", ("relu", "relu"), 3)().fit(X, labels, loss="crossentropy", verbose=0)
    assert not calls.spans


@pytest.mark.parametrize("change", ["metrics", "batch callback", "frozen", "rmsprop", "dropout", "numpy kernels",
                                    "regularizer", "softmax", "probability rows", "clipping",
                                    "no NumPy BLAS"])
def test_the_step_runs_batch_by_batch_where_the_loop_or_the_network_needs_it(monkeypatch, change):
    X, labels, _ = data("float64")
    y = np.eye(3)[labels] if change == "probability rows" else labels
    layers = [cr.Dense(6, 5, seed=1), cr.ReLU(), cr.Dense(5, 3, seed=2)]
    kw = {"loss": "crossentropy", "optimizer": cr.SGD(lr=0.1)}
    if change == "metrics":
        kw["metrics"] = ["accuracy"]
    elif change == "batch callback":
        kw["callbacks"] = [cr.LambdaCallback(on_batch_end=lambda batch, logs: None)]
    elif change == "frozen":
        layers[0].freeze()
    elif change == "rmsprop":
        kw["optimizer"] = cr.RMSProp()
    elif change == "dropout":
        layers.insert(2, cr.Dropout(0.1, seed=0))
    elif change == "numpy kernels":
        kernels.use("numpy")
    elif change == "regularizer":
        kw["regularizer"] = cr.L2(1e-3)
    elif change == "softmax":
        layers.append(cr.Softmax())
        kw["loss"] = "mse"
        y = np.eye(3)[labels]
    elif change == "clipping":
        kw["optimizer"] = cr.SGD(lr=0.1, clip_norm=1.0)
    elif change == "no NumPy BLAS":
        monkeypatch.setattr(kernels.blas, "_found", {np.dtype(np.float32): None, np.dtype(np.float64): None})
    calls = Calls(monkeypatch)
    cr.Sequential(*layers).fit(X, y, epochs=1, batch_size=16, verbose=0, **kw)
    assert not calls.spans


def test_a_signal_between_calls_stops_there_and_the_resume_gives_the_same_weights(monkeypatch, tmp_path):
    """SIGINT during a run of batches: fit stops after that call, writes the checkpoint mid-epoch,
    and resuming from it ends where the uninterrupted fit ends, to the bit."""
    import signal

    monkeypatch.setattr(DenseRuns, "RUN_SAMPLES", 40)  # 5 batches of 8 a call: 8 calls an epoch
    X, labels, _ = data("float32", 300)
    kw = dict(loss="crossentropy", epochs=3, batch_size=8, seed=0, verbose=0)

    def run(**extra):
        net = network("float32", ("relu", "relu"), 3)()
        history = net.fit(X, labels, optimizer=cr.SGD(lr=0.05, momentum=0.9), **kw, **extra)
        return net, history

    whole, _ = run()
    original, calls = DenseRuns.__call__, []

    def interrupt_on_the_tenth(runs, order, start, stop):
        done = original(runs, order, start, stop)
        calls.append((start, done))
        if len(calls) == 10:  # epoch 2, batches 5 to 9
            os.kill(os.getpid(), signal.SIGINT)
        return done

    monkeypatch.setattr(DenseRuns, "__call__", interrupt_on_the_tenth)
    path = tmp_path / "run.ckpt"
    _, history = run(checkpoint=path)
    assert history.interrupted and calls[-1] == (5, 10)
    monkeypatch.setattr(DenseRuns, "__call__", original)
    resumed, _ = run(checkpoint=path, resume=path)
    for wa, wb in zip(resumed.get_weights(), whole.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_an_activation_on_the_logits_is_in_the_chain_too(monkeypatch):
    """CrossEntropy on the output of a Tanh: the runs apply the Tanh's derivative to dL/doutput."""
    X, labels, _ = data("float64")

    def build():
        return cr.Sequential(cr.Dense(6, 5, seed=1), cr.ReLU(), cr.Dense(5, 3, seed=2), cr.Tanh()).astype("float64")

    (a, b), calls = fit_both(monkeypatch, build, X, labels, cr.SGD(lr=0.1), loss="crossentropy", epochs=2,
                             batch_size=16)
    assert calls.spans
    assert_same(a, b, "float64")


@pytest.mark.parametrize("optimizer", [cr.SGD(lr=0.1, momentum=0.9, schedule=cr.StepLR(1, gamma=0.5)),
                                       cr.Adam(lr=0.01, schedule=cr.ExponentialLR(0.7))], ids=["sgd", "adam"])
def test_a_schedule_changes_the_rate_between_epochs_as_in_the_step(monkeypatch, optimizer):
    X, labels, _ = data("float64")
    (a, b), calls = fit_both(monkeypatch, network("float64", ("relu", "tanh"), 3), X, labels, optimizer,
                             loss="crossentropy", epochs=3, batch_size=32)
    assert calls.spans and a[2].lr == b[2].lr
    assert_same(a, b, "float64")
