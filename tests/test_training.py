"""The training loop: convergence, determinism, batching, validation, metrics, logging,
callbacks, learning-rate schedules, divergence and dtypes.

Reference values are computed here with plain NumPy (hand-written forward and backward of a
two-layer network, metric formulas), never with the code under test.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import chainrule as cr
from chainrule.demo import train_digits

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=float)


def regression_data(n=12, n_in=3, n_out=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    y = np.tanh(X @ rng.normal(size=(n_in, n_out))) + 0.1 * rng.normal(size=(n, n_out))
    return X, y


def two_layer(seed=0, dtype=np.float64, n_in=3, n_hidden=4, n_out=2):
    return cr.Sequential(cr.Dense(n_in, n_hidden, bias_init="normal", seed=seed), cr.Tanh(),
                         cr.Dense(n_hidden, n_out, bias_init="normal", seed=seed + 1), dtype=dtype)


# --- convergence ------------------------------------------------------------------------------
def test_xor_2_2_1_sigmoid_sse_sgd_per_sample_puts_every_point_on_its_side_of_one_half():
    net = cr.Sequential(cr.Dense(2, 2, seed=5), cr.Sigmoid(), cr.Dense(2, 1, seed=105), cr.Sigmoid())
    history = net.fit(XOR_X, XOR_Y, loss=cr.SSE(), optimizer=cr.SGD(lr=0.5), epochs=3000,
                      batch_size=1, shuffle=True, seed=0, verbose=0)
    pred = net.predict(XOR_X).ravel()
    assert np.array_equal(pred > 0.5, XOR_Y.ravel() == 1), pred
    assert history.history["loss"][-1] < 0.01 < history.history["loss"][0]


def test_digits_demo_configuration_reaches_97_percent_test_accuracy():
    net, history, (X_test, y_test) = train_digits(verbose=0)
    assert X_test.shape == (450, 64)  # the 25 % test split of the 1,797 images
    accuracy = float(np.mean(net.predict(X_test).argmax(axis=1) == y_test))
    assert accuracy >= 0.97
    assert history.history["val_accuracy"][-1] == pytest.approx(accuracy)


# --- determinism ------------------------------------------------------------------------------
def seeded_run(net_seed, shuffle_seed):
    X, y = regression_data(n=20)
    net = cr.mlp([3, 8, 2], activation="tanh", dropout=0.2, seed=net_seed)
    history = net.fit(X, y, loss=cr.MSE(), optimizer=cr.Adam(lr=0.01), epochs=5, batch_size=4,
                      shuffle=True, seed=shuffle_seed, validation_data=(X[:5], y[:5]),
                      metrics=["mae"], verbose=0)
    return net.get_weights(), history.history


def test_same_seeds_give_bit_identical_weights_and_history():
    w1, h1 = seeded_run(1, 2)
    w2, h2 = seeded_run(1, 2)
    assert len(w1) == len(w2) == 4
    for a, b in zip(w1, w2, strict=True):
        assert np.array_equal(a, b)
    assert h1.keys() == h2.keys() == {"loss", "mae", "val_loss", "val_mae"}
    for k in h1:
        assert np.array_equal(h1[k], h2[k])


@pytest.mark.parametrize("seeds", [(3, 2), (1, 4)], ids=["other_net_seed", "other_shuffle_seed"])
def test_different_seeds_give_different_weights_and_history(seeds):
    w1, h1 = seeded_run(1, 2)
    w2, h2 = seeded_run(*seeds)
    assert not all(np.array_equal(a, b) for a, b in zip(w1, w2, strict=True))
    assert not np.array_equal(h1["loss"], h2["loss"])


def test_dense_seed_fixes_the_initial_weights():
    a, b, c = cr.Dense(4, 3, seed=7), cr.Dense(4, 3, seed=7), cr.Dense(4, 3, seed=8)
    assert np.array_equal(a.params["weight"], b.params["weight"])
    assert not np.array_equal(a.params["weight"], c.params["weight"])


# --- batching ---------------------------------------------------------------------------------
def numpy_step(params, X, y, lr):
    """One gradient-descent step of Dense-Tanh-Dense with MSE (mean over elements), by hand."""
    W1, b1, W2, b2 = params
    a1 = np.tanh(X @ W1 + b1)
    out = a1 @ W2 + b2
    loss = np.mean((out - y) ** 2)
    delta2 = 2 * (out - y) / out.size
    gW2, gb2 = a1.T @ delta2, delta2.sum(axis=0)
    delta1 = (delta2 @ W2.T) * (1 - a1**2)
    gW1, gb1 = X.T @ delta1, delta1.sum(axis=0)
    return [W1 - lr * gW1, b1 - lr * gb1, W2 - lr * gW2, b2 - lr * gb2], loss


def test_batch_size_none_is_full_batch_gradient_descent():
    X, y = regression_data(n=12)
    net = two_layer(seed=3)
    params = net.get_weights()
    opt = cr.SGD(lr=0.2)
    history = net.fit(X, y, loss=cr.MSE(), optimizer=opt, epochs=4, batch_size=None, shuffle=True,
                      seed=0, verbose=0)
    losses = []
    for _ in range(4):
        params, loss = numpy_step(params, X, y, 0.2)
        losses.append(loss)
    assert opt.iterations == 4  # one step per epoch
    assert history.params["steps"] == 1
    for got, expected in zip(net.get_weights(), params, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-12)


def test_batch_size_one_updates_after_every_sample():
    X, y = regression_data(n=6)
    net = two_layer(seed=4)
    params = net.get_weights()
    opt = cr.SGD(lr=0.1)
    history = net.fit(X, y, loss=cr.MSE(), optimizer=opt, epochs=2, batch_size=1, shuffle=False,
                      verbose=0)
    epoch_losses = []
    for _ in range(2):
        total = 0.0
        for i in range(len(X)):
            params, loss = numpy_step(params, X[i:i + 1], y[i:i + 1], 0.1)
            total += loss
        epoch_losses.append(total / len(X))
    assert opt.iterations == 2 * len(X)
    for got, expected in zip(net.get_weights(), params, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(history.history["loss"], epoch_losses, rtol=1e-12)


def test_minibatches_cover_the_epoch_with_a_short_last_batch():
    X, y = regression_data(n=10)
    net = two_layer(seed=5)
    params = net.get_weights()
    opt = cr.SGD(lr=0.1)
    history = net.fit(X, y, loss=cr.MSE(), optimizer=opt, epochs=1, batch_size=4, shuffle=False,
                      verbose=0)
    total = 0.0
    for start in (0, 4, 8):
        params, loss = numpy_step(params, X[start:start + 4], y[start:start + 4], 0.1)
        total += loss * len(X[start:start + 4])
    assert opt.iterations == 3
    for got, expected in zip(net.get_weights(), params, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    # The epoch loss is the sample-weighted mean of the batch losses.
    assert history.history["loss"][0] == pytest.approx(total / len(X), rel=1e-12)


# --- validation and metrics -------------------------------------------------------------------
def test_validation_data_gives_val_loss_of_the_network_after_each_epoch():
    X, y = regression_data(n=12)
    Xv, yv = regression_data(n=5, seed=1)
    net = two_layer(seed=6)
    after_epoch = []
    record = cr.LambdaCallback(on_epoch_end=lambda epoch, logs: after_epoch.append(net.predict(Xv)))
    history = net.fit(X, y, loss=cr.MSE(), optimizer=cr.SGD(lr=0.1), epochs=3, batch_size=4,
                      validation_data=(Xv, yv), callbacks=[record], seed=0, verbose=0)
    assert set(history.history) == {"loss", "val_loss"}
    expected = [np.mean((out - yv) ** 2) for out in after_epoch]
    np.testing.assert_allclose(history.history["val_loss"], expected, rtol=1e-12)


def test_no_validation_data_gives_no_val_loss():
    X, y = regression_data()
    history = two_layer().fit(X, y, loss="mse", epochs=2, verbose=0)
    assert set(history.history) == {"loss"}
    assert len(history.history["loss"]) == 2


def numpy_r2(t, p):
    ss_res = ((t - p) ** 2).sum(axis=0)
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1 - ss_res / ss_tot))


def test_regression_metrics_match_numpy_on_the_outputs_before_the_update():
    X, y = regression_data(n=16)
    net = two_layer(seed=7)
    before = net.copy().predict(X)
    history = net.fit(X, y, loss=cr.MSE(), optimizer=cr.SGD(lr=0.1), epochs=1, batch_size=None,
                      metrics=["mse", "mae", "r2"], verbose=0)
    h = history.history
    assert h["mse"][0] == pytest.approx(np.mean((y - before) ** 2), rel=1e-12)
    assert h["mae"][0] == pytest.approx(np.mean(np.abs(y - before)), rel=1e-12)
    assert h["r2"][0] == pytest.approx(numpy_r2(y, before), rel=1e-10)
    assert h["mse"][0] == pytest.approx(h["loss"][0], rel=1e-12)


def test_r2_over_minibatches_is_the_r2_of_the_whole_epoch():
    X, y = regression_data(n=12)
    net = two_layer(seed=8)
    ref = net.copy()
    opt_ref = cr.SGD(lr=0.1)
    outputs = []
    for start in range(0, 12, 4):  # the same steps, outputs collected before each update
        out = ref.forward(X[start:start + 4])
        outputs.append(out.copy())
        ref.backward(cr.MSE().grad(out, y[start:start + 4]))
        opt_ref.step(ref)
    history = net.fit(X, y, loss=cr.MSE(), optimizer=cr.SGD(lr=0.1), epochs=1, batch_size=4,
                      shuffle=False, metrics=["r2", "mae"], verbose=0)
    outputs = np.concatenate(outputs)
    assert history.history["r2"][0] == pytest.approx(numpy_r2(y, outputs), rel=1e-10)
    assert history.history["mae"][0] == pytest.approx(np.mean(np.abs(y - outputs)), rel=1e-12)


def test_accuracy_metric_and_evaluate_match_numpy():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(30, 4))
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    net = cr.Sequential(cr.Dense(4, 3, seed=1), dtype=np.float64)
    before = net.copy().predict(X)
    history = net.fit(X, labels, loss=cr.CrossEntropy(), optimizer=cr.SGD(lr=0.5), epochs=1,
                      batch_size=None, metrics=["accuracy"], verbose=0)
    assert history.history["accuracy"][0] == np.mean(before.argmax(axis=1) == labels)
    out = net.predict(X)
    result = net.evaluate(X, labels, loss=cr.CrossEntropy(), metrics=["accuracy"])
    assert result["accuracy"] == np.mean(out.argmax(axis=1) == labels)
    shifted = out - out.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    assert result["loss"] == pytest.approx(-np.mean(log_p[np.arange(30), labels]), rel=1e-12)


def test_accuracy_reads_labels_one_hot_rows_and_thresholded_probabilities():
    scores = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.4, 0.5, 0.1]])
    labels = np.array([1, 0, 1, 1])
    assert cr.metrics.accuracy(labels, scores) == 0.75
    assert cr.metrics.accuracy(np.eye(3)[labels], scores) == 0.75
    probs = np.array([[0.9], [0.2], [0.6], [0.4]])
    assert cr.metrics.accuracy(np.array([1, 0, 0, 0]), probs) == 0.75
    assert cr.metrics.accuracy(np.array([[1.0], [0.0], [1.0], [0.0]]), probs) == 1.0


def test_regression_metric_functions_match_numpy():
    rng = np.random.default_rng(10)
    t, p = rng.normal(size=(9, 2)), rng.normal(size=(9, 2))
    assert cr.metrics.mse(t, p) == pytest.approx(np.mean((t - p) ** 2), rel=1e-12)
    assert cr.metrics.mae(t, p) == pytest.approx(np.mean(np.abs(t - p)), rel=1e-12)
    assert cr.metrics.r2(t, p) == pytest.approx(numpy_r2(t, p), rel=1e-12)
    assert cr.metrics.r2(t, t) == 1.0


# --- logging ----------------------------------------------------------------------------------
def test_verbose_0_prints_nothing(capsys):
    X, y = regression_data()
    two_layer().fit(X, y, loss="mse", epochs=3, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    X, y = regression_data()
    history = two_layer().fit(X, y, loss="mse", epochs=4, verbose=2, metrics=["mae"])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 4
    for k, line in enumerate(lines, start=1):
        assert line.startswith(f"epoch {k}/4")
        loss = float(re.search(r"\bloss=([-+0-9.e]+)", line).group(1))
        assert loss == pytest.approx(history.history["loss"][k - 1], rel=1e-5)
        assert "mae=" in line


def test_print_every_prints_epoch_and_loss_every_n_epochs(capsys):
    X, y = regression_data()
    history = two_layer().fit(X, y, loss="mse", epochs=10, verbose=0, print_every=3)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [int(re.match(r"epoch=(\d+), loss=", line).group(1)) for line in lines] == [3, 6, 9]
    for line in lines:
        epoch, loss = re.fullmatch(r"epoch=(\d+), loss=([0-9.]+)", line).groups()
        assert float(loss) == pytest.approx(history.history["loss"][int(epoch) - 1], abs=1e-7)


# --- callbacks --------------------------------------------------------------------------------
def injected_score(values):
    """A callback that puts ``values[epoch]`` into the logs under "score"."""
    return cr.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.__setitem__("score", values[epoch]))


SCORES = [1.0, 0.9, 0.85, 0.849, 0.95, 0.84, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]


@pytest.mark.parametrize(("min_delta", "patience", "best", "epochs_run"), [
    (0.01, 2, 2, 5),   # 0.849 is not 0.01 better than 0.85: waits at epochs 3 and 4
    (0.0, 2, 5, 8),    # 0.849 and 0.84 count as improvements
    (0.0, 0, 3, 5),    # patience 0: stop at the first epoch without improvement
    (0.0, 4, 5, 10),
])
def test_early_stopping_honours_patience_and_min_delta(min_delta, patience, best, epochs_run):
    X, y = regression_data()
    net = two_layer()
    stop = cr.EarlyStopping(monitor="score", patience=patience, min_delta=min_delta)
    history = net.fit(X, y, loss="mse", epochs=len(SCORES), callbacks=[injected_score(SCORES), stop],
                      verbose=0)
    assert len(history.history["loss"]) == epochs_run
    assert history.stopped_early
    assert stop.best_epoch == best and stop.best == SCORES[best]


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_restores_the_best_weights_when_asked(restore):
    X, y = regression_data()
    net = two_layer()
    snapshots = []
    record = cr.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(net.get_weights()))
    stop = cr.EarlyStopping(monitor="score", patience=2, min_delta=0.01, restore_best_weights=restore)
    net.fit(X, y, loss="mse", optimizer=cr.SGD(lr=0.1), epochs=len(SCORES), verbose=0,
            callbacks=[record, injected_score(SCORES), stop])
    assert len(snapshots) == 5
    expected = snapshots[2] if restore else snapshots[-1]
    for got, want in zip(net.get_weights(), expected, strict=True):
        assert np.array_equal(got, want)
    assert not all(np.array_equal(a, b) for a, b in zip(snapshots[2], snapshots[-1], strict=True))


def test_early_stopping_on_a_loss_that_never_improves():
    X, y = regression_data()
    history = two_layer().fit(X, y, loss="mse", optimizer=cr.SGD(lr=0.0), epochs=50, verbose=0,
                              validation_data=(X, y), callbacks=[cr.EarlyStopping(patience=3)])
    assert len(history.history["val_loss"]) == 4


def test_early_stopping_on_a_missing_log_says_which():
    X, y = regression_data()
    with pytest.raises(cr.ChainruleError, match="val_loss"):
        two_layer().fit(X, y, loss="mse", epochs=2, verbose=0, callbacks=[cr.EarlyStopping()])


def lr_recorder(net, lrs, steps):
    """Record the lr of each epoch and check every update against it (full batch, SGD)."""
    state = {}

    def begin(epoch, logs=None):
        lrs.append(net.optimizer.lr)
        state["before"] = net.get_weights()

    def end(batch, logs=None):
        grads = [g.copy() for g in net.grads.values()]
        for w0, w1, g in zip(state["before"], net.get_weights(), grads, strict=True):
            steps.append(np.allclose(w0 - w1, lrs[-1] * g, rtol=1e-10, atol=1e-15))

    return cr.LambdaCallback(on_epoch_begin=begin, on_batch_end=end)


@pytest.mark.parametrize(("schedule", "expected"), [
    (lambda epoch: 0.1 * 0.5**epoch, [0.1 * 0.5**e for e in range(5)]),
    (lambda epoch, lr: lr * 0.9, [0.1 * 0.9 ** (e + 1) for e in range(5)]),
    (cr.StepLR(step_size=2, gamma=0.5), [0.1, 0.1, 0.05, 0.05, 0.025]),
], ids=["epoch_callable", "epoch_lr_callable", "StepLR"])
def test_learning_rate_scheduler_sets_the_lr_each_epoch(schedule, expected):
    X, y = regression_data()
    net = two_layer()
    lrs, steps = [], []
    net.fit(X, y, loss="mse", optimizer=cr.SGD(lr=0.1), epochs=5, batch_size=None, verbose=0,
            callbacks=[cr.LearningRateScheduler(schedule), lr_recorder(net, lrs, steps)])
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert steps and all(steps)


@pytest.mark.parametrize(("schedule", "expected"), [
    (cr.StepLR(step_size=2, gamma=0.5), [0.1, 0.1, 0.05, 0.05, 0.025]),
    (cr.ExponentialLR(gamma=0.8), [0.1 * 0.8**e for e in range(5)]),
    (cr.CosineLR(t_max=4, eta_min=0.01),
     [0.01 + 0.045 * (1 + np.cos(np.pi * min(e, 4) / 4)) for e in range(5)]),
    (lambda epoch: 0.1 / (1 + epoch), [0.1 / (1 + e) for e in range(5)]),
], ids=["StepLR", "ExponentialLR", "CosineLR", "callable"])
def test_optimizer_schedule_sets_the_lr_each_epoch(schedule, expected):
    X, y = regression_data()
    net = two_layer()
    lrs, steps = [], []
    net.fit(X, y, loss="mse", optimizer=cr.SGD(lr=0.1, schedule=schedule), epochs=5, batch_size=None,
            verbose=0, callbacks=[lr_recorder(net, lrs, steps)])
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert steps and all(steps)


# --- divergence -------------------------------------------------------------------------------
def test_a_loss_that_becomes_inf_or_nan_stops_training_naming_epoch_and_batch():
    X, y = regression_data(n=16)
    net = two_layer(dtype=np.float32)
    seen = []
    epoch_now = [0]
    record = cr.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: epoch_now.__setitem__(0, epoch),
                               on_batch_end=lambda batch, logs: seen.append((epoch_now[0], batch)))
    with np.errstate(all="ignore"), pytest.raises(cr.ChainruleError) as info:
        net.fit(X * 100, y, loss=cr.MSE(), optimizer=cr.SGD(lr=1e6), epochs=5, batch_size=4,
                shuffle=False, callbacks=[record], verbose=0)
    assert isinstance(info.value, cr.TrainingError)
    message = str(info.value)
    match = re.search(r"(inf|nan) at epoch (\d+), batch (\d+)", message)
    assert match, message
    # The failing batch is the one right after the last one that completed (1-based in the message).
    last_epoch, last_batch = seen[-1] if seen else (0, -1)
    failing = (last_epoch, last_batch + 1) if last_batch < 3 else (last_epoch + 1, 0)
    assert (int(match.group(2)) - 1, int(match.group(3)) - 1) == failing


# --- dtypes -----------------------------------------------------------------------------------
def test_float32_is_preserved_end_to_end():
    X, y = regression_data()  # float64 data, cast once at the boundary
    net = cr.Sequential(cr.Dense(3, 5, seed=0), cr.Sigmoid(), cr.Dropout(0.2, seed=1), cr.Dense(5, 2, seed=2))
    assert net.dtype == np.float32
    opt = cr.Adam(lr=0.01)
    net.fit(X, y, loss=cr.MSE(), optimizer=opt, epochs=2, batch_size=4, verbose=0)
    for layer in net.layers:
        for k in layer.params:
            assert layer.params[k].dtype == np.float32
            assert layer.grads[k].dtype == np.float32
    for state in opt.state.values():
        for v in state.values():
            if isinstance(v, np.ndarray):
                assert v.dtype == np.float32
    out = X
    for layer in net.layers:
        out = layer.forward(out.astype(np.float32) if out is X else out, training=True)
        assert out.dtype == np.float32
    assert net.forward(X).dtype == np.float32
    assert net.predict(X).dtype == np.float32
    grad = cr.MSE().grad(net.forward(X), y)
    assert grad.dtype == np.float32
    assert net.backward(grad).dtype == np.float32


def test_float64_network_trains_in_float64():
    X, y = regression_data()
    net = cr.Sequential(cr.Dense(3, 5, seed=0), cr.Tanh(), cr.Dense(5, 2, seed=2), dtype=np.float64)
    opt = cr.Adam(lr=0.01)
    history = net.fit(X.astype(np.float32), y, loss=cr.MSE(), optimizer=opt, epochs=20, batch_size=4,
                      verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert all(p.dtype == np.float64 for p in net.params.values())
    assert all(g.dtype == np.float64 for g in net.grads.values())
    assert all(v.dtype == np.float64 for s in opt.state.values() for v in s.values()
               if isinstance(v, np.ndarray))
    assert net.predict(X).dtype == np.float64


def test_explicit_weights_keep_full_precision_in_a_float64_network():
    net = cr.Sequential(cr.Dense(2, 1, weight=[[0.15], [0.2]], bias=[0.35]), dtype=np.float64)
    assert net.layers[0].params["weight"][0, 0] == 0.15
    assert net.layers[0].params["bias"][0] == 0.35
    seeded = cr.mlp([3, 2], seed=0, dtype=np.float64).layers[0].params["weight"]
    assert seeded.dtype == np.float64
    assert not np.array_equal(seeded, seeded.astype(np.float32).astype(np.float64))


def test_weights_set_before_joining_a_network_are_kept():
    dense = cr.Dense(2, 2, seed=0)
    dense.params["weight"][...] = [[1.0, 2.0], [3.0, 4.0]]
    net = cr.Sequential(dense, dtype=np.float64)
    np.testing.assert_array_equal(net.layers[0].params["weight"], [[1.0, 2.0], [3.0, 4.0]])


def test_an_update_that_overflows_a_parameter_is_reported_after_the_epoch():
    # z = w·x = 1e18 gives a finite loss (1e36 in float32), but lr·dL/dw = 1e24 · 2e15 overflows,
    # so the weight becomes −inf while every loss the loop saw was finite
    net = cr.Sequential(cr.Dense(1, 1, weight=[[1e21]], bias=[0.0]))
    x, t = np.array([[1e-3]], np.float32), np.array([[0.0]], np.float32)
    with pytest.raises(cr.TrainingError, match=r"parameter 0\.weight became NaN or inf during epoch 1"):
        net.fit(x, t, loss="mse", optimizer=cr.SGD(lr=1e24), epochs=3, verbose=0)
    assert net.layers[0].params["weight"][0, 0] == -np.inf


def test_huge_but_finite_parameters_are_not_reported():
    # w·w overflows float32 (the quick test), but w itself is finite: the exact test must decide
    net = cr.Sequential(cr.Dense(1, 1, weight=[[1e30]], bias=[0.0]))
    x, t = np.array([[1e-30]], np.float32), np.array([[1.0]], np.float32)
    history = net.fit(x, t, loss="mse", optimizer=cr.SGD(lr=0.0), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
