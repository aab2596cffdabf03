"""Truncated BPTT (fit(bptt_steps=k)) and sequence losses over time."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.sequence import truncated_bptt_step


def normwise_error(a, b) -> float:
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale else 0.0


def seq_net(seed=0):
    """Two stacked recurrent layers and a per-step head, float64."""
    return cr.Sequential(cr.LSTM(3, 5, return_sequences=True, seed=seed),
                         cr.RNN(5, 4, return_sequences=True, seed=seed + 1),
                         cr.TimeDistributed(cr.Dense(4, 3, seed=seed + 2)), dtype=np.float64)


def data(n=4, T=11, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, T, 3)), rng.integers(0, 3, size=(n, T))


def full_bptt(net, loss, X, y):
    out = net.forward(X, training=True)
    value, delta = loss.value_and_grad(out, y)
    net.backward(delta)
    return value, {k: g.copy() for k, g in net.grads.items()}


def windows(T, k):
    return [(s, min(s + k, T)) for s in range(0, T, k)]


def boundary_states(net, X, k):
    """The state every recurrent layer starts each window with, from a plain forward."""
    rec = [layer for layer in net.layers if isinstance(layer, cr.layers.Recurrent)]
    starts, current = [], [None] * len(rec)
    for s, e in windows(X.shape[1], k):
        starts.append(list(current))
        out = X[:, s:e]
        for layer in net.layers:
            if isinstance(layer, cr.layers.Recurrent):
                i = rec.index(layer)
                out = layer.forward(out, initial_state=current[i])
                current[i] = layer.state
            else:
                out = layer.forward(out)
    return rec, starts


def detached_loss(net, loss, X, y, k, rec, starts) -> float:
    """The batch loss with every window started from fixed (constant) states."""
    T, total = X.shape[1], 0.0
    for (s, e), start in zip(windows(T, k), starts, strict=True):
        out = X[:, s:e]
        for layer in net.layers:
            kwargs = {"initial_state": start[rec.index(layer)]} if layer in rec else {}
            out = layer.forward(out, **kwargs)
        total += (e - s) / T * loss.value(out, y[:, s:e])
    return total


@pytest.mark.parametrize("k", [11, 12, 100])
def test_k_at_least_T_equals_full_bptt(k):
    X, y = data()
    loss = cr.CrossEntropy()
    value, ref = full_bptt(seq_net(), loss, X, y)
    net = seq_net()
    out, v = truncated_bptt_step(net, loss, X, y, k)
    assert v == pytest.approx(value, abs=1e-12)
    for key, g in ref.items():
        assert np.abs(net.grads[key] - g).max() <= 1e-12


@pytest.mark.parametrize("k", [1, 3, 4, 5])
def test_k_below_T_is_the_gradient_with_the_state_detached_at_window_boundaries(k):
    X, y = data()
    loss = cr.CrossEntropy()
    net = seq_net()
    out, value = truncated_bptt_step(net, loss, X, y, k)
    # the windows' outputs and losses are those of the whole sequence (the state is carried)
    full = seq_net().forward(X)
    np.testing.assert_allclose(out, full, rtol=0, atol=1e-13)
    assert value == pytest.approx(loss.value(full, y), abs=1e-12)
    # reference: central differences of the loss with each window's starting states held fixed
    ref_net = seq_net()
    rec, starts = boundary_states(ref_net, X, k)
    h = 1e-3                                       # fourth-order central differences
    for i, layer in enumerate(ref_net.layers):
        for name, p in layer.params.items():
            numeric = np.zeros_like(p)
            for idx in np.ndindex(*p.shape):
                orig, vals = p[idx], []
                for step in (2, 1, -1, -2):
                    p[idx] = orig + step * h
                    vals.append(detached_loss(ref_net, loss, X, y, k, rec, starts))
                p[idx] = orig
                numeric[idx] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
            assert normwise_error(net.grads[f"{i}.{name}"], numeric) <= 1e-8, f"{i}.{name}"
    # and the truncation matters: full BPTT differs
    _, ref = full_bptt(seq_net(), loss, X, y)
    assert normwise_error(net.grads["0.weight_hh"], ref["0.weight_hh"]) > 1e-3


def test_k_below_T_equals_the_sum_of_per_window_backward_passes():
    X, y = data(T=10)
    loss, k = cr.MSE(), 4
    y = np.random.default_rng(1).normal(size=(4, 10, 3))
    net = seq_net()
    truncated_bptt_step(net, loss, X, y, k)
    ref = seq_net()
    rec, starts = boundary_states(ref, X, k)
    total = {key: np.zeros_like(g) for key, g in ref.grads.items()}
    for (s, e), start in zip(windows(10, k), starts, strict=True):
        out = X[:, s:e]
        for layer in ref.layers:
            kwargs = {"initial_state": start[rec.index(layer)]} if layer in rec else {}
            out = layer.forward(out, **kwargs)
        ref.backward(loss.grad(out, y[:, s:e]) * (e - s) / 10)
        for key, g in ref.grads.items():
            total[key] += g
    for key, g in total.items():
        assert np.abs(net.grads[key] - g).max() <= 1e-12, key


def test_many_to_one_output_gets_its_gradient_from_the_last_window_only():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(3, 9, 3)), rng.normal(size=(3, 2))
    make = lambda: cr.Sequential(cr.LSTM(3, 4, seed=0), cr.Dense(4, 2, seed=1), dtype=np.float64)  # noqa: E731
    net = make()
    out, value = truncated_bptt_step(net, cr.MSE(), X, y, 4)
    ref = make()
    ref.forward(X[:, :8])                                  # windows [0, 4) and [4, 8) carry the state
    state = ref.layers[0].state
    ref_out = ref.layers[1].forward(ref.layers[0].forward(X[:, 8:], initial_state=state))
    ref.backward(cr.MSE().grad(ref_out, y))
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-14)
    for key, g in ref.grads.items():
        assert np.abs(net.grads[key] - g).max() <= 1e-12, key


def test_fit_with_bptt_steps_makes_one_update_per_batch_from_the_truncated_gradient():
    X, y = data(n=4, T=11)
    loss = cr.CrossEntropy()
    grad_net = seq_net()
    truncated_bptt_step(grad_net, loss, X, y, 4)
    net = seq_net()
    before = net.get_weights()
    net.fit(X, y, loss=loss, optimizer=cr.SGD(lr=0.1), epochs=1, batch_size=4, shuffle=False,
            verbose=0, bptt_steps=4)
    for w0, w1, g in zip(before, net.get_weights(), grad_net.grads.values(), strict=True):
        np.testing.assert_allclose(w1, w0 - 0.1 * g, rtol=0, atol=1e-13)
    # k >= T is full BPTT, exactly as fit without bptt_steps
    a, b = seq_net(), seq_net()
    a.fit(X, y, loss=loss, optimizer=cr.Adam(0.01), epochs=3, batch_size=2, seed=0, verbose=0)
    b.fit(X, y, loss=loss, optimizer=cr.Adam(0.01), epochs=3, batch_size=2, seed=0, verbose=0, bptt_steps=11)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_fit_refuses_bptt_steps_without_sequences():
    with pytest.raises(cr.ConfigError, match="bptt_steps must be a positive integer"):
        seq_net().fit(*data(), loss="crossentropy", bptt_steps=0, verbose=0)
    with pytest.raises(cr.ConfigError, match="needs sequence input"):
        cr.mlp([3, 2]).fit(np.zeros((4, 3)), np.zeros((4, 2)), bptt_steps=2, verbose=0)
    with pytest.raises(cr.ConfigError, match="needs a recurrent layer"):
        cr.Sequential(cr.TimeDistributed(cr.Dense(3, 2))).fit(np.zeros((4, 5, 3)), np.zeros((4, 5, 2)),
                                                               bptt_steps=2, verbose=0)


def test_stateful_fit_carries_the_state_across_batches():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2, 12, 3))
    y = rng.normal(size=(2, 12, 2))
    # the same sequences cut into three consecutive chunks, one chunk per batch
    chunks_X = np.concatenate([X[:, 0:4], X[:, 4:8], X[:, 8:12]])
    chunks_y = np.concatenate([y[:, 0:4], y[:, 4:8], y[:, 8:12]])
    net = cr.Sequential(cr.RNN(3, 4, return_sequences=True, stateful=True, seed=0),
                        cr.TimeDistributed(cr.Dense(4, 2, seed=1)), dtype=np.float64)
    tbptt = cr.Sequential(cr.RNN(3, 4, return_sequences=True, seed=0),
                          cr.TimeDistributed(cr.Dense(4, 2, seed=1)), dtype=np.float64)
    sgd = dict(optimizer=cr.SGD(lr=0.0), epochs=1, verbose=0)
    net.fit(chunks_X, chunks_y, loss="mse", batch_size=2, shuffle=False, **sgd)
    final = net.layers[0]._carried[True][0]
    tbptt.layers[0].forward(X)
    np.testing.assert_allclose(final, tbptt.layers[0].state[0], rtol=0, atol=1e-14)
    cr.sequence.reset_states(net)
    assert net.layers[0].state is None


# --- sequence losses average over time ---------------------------------------------------------
def test_sequence_losses_are_the_average_over_time_of_the_per_step_losses():
    rng = np.random.default_rng(4)
    out, labels, target = rng.normal(size=(5, 7, 3)), rng.integers(0, 3, (5, 7)), rng.normal(size=(5, 7, 3))
    ce = cr.CrossEntropy()
    per_step = [ce.value(out[:, t], labels[:, t]) for t in range(7)]
    assert ce.value(out, labels) == pytest.approx(np.mean(per_step), rel=1e-13)
    mse = cr.MSE()
    assert mse.value(out, target) == pytest.approx(np.mean([mse.value(out[:, t], target[:, t]) for t in range(7)]))
    sse = cr.SSE()
    assert sse.value(out, target) == pytest.approx(np.sum([sse.value(out[:, t], target[:, t]) for t in range(7)]))
    for loss, expected in ((ce, 3 / 7), (mse, 3 / 7), (sse, 1.0), (cr.MSE(reduction="sum"), 1.0)):
        assert cr.sequence.time_weight(loss, 3, 7) == expected
