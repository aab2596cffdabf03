"""Synthetic gradients across time (credit.RecurrentDNI) with truncated BPTT: a zero module is
truncated BPTT, an oracle module with scale 1 is full BPTT, the regression targets are the
gradients that reach each window's start, and on a delayed-echo task the synthetic gradient
carries credit across the window boundaries that truncated BPTT cuts."""

import copy

import numpy as np
import pytest

import chainrule as cr
from chainrule.credit import DNI, RecurrentDNI, SyntheticGradient

N, T, K = 6, 10, 3  # windows [0, 3), [3, 6), [6, 9), [9, 10)


def seq_net(cell="rnn", seed=1):
    rec = (cr.RNN(2, 5, return_sequences=True, seed=seed) if cell == "rnn"
           else cr.LSTM(2, 5, return_sequences=True, seed=seed))
    return cr.Sequential(rec, cr.TimeDistributed(cr.Dense(5, 3, seed=seed + 1)), dtype=np.float64)


def seq_data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, T, 2)), rng.integers(0, 3, (N, T))


def max_rel_diff(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


class FutureOracle:
    """Returns, in turn, the true s·dL_future/dh at each window boundary of one batch."""

    def __init__(self, values):
        self.values, self.calls = list(values), 0

    def bind(self, optimizer):
        pass

    def predict(self, h):
        value = self.values[self.calls]
        self.calls += 1
        return value

    def regress(self, h, target):
        return 0.0


def future_gradients(net, loss, X, Y):
    """dL/dh_b of the steps after each boundary b, by backprop on the suffix X[:, b:] started
    from the state the prefix ends with (written here, independent of the rule)."""
    rec, out = net.layers[0], []
    for b in range(K, T, K):
        rec.forward(X[:, :b], True)
        start = rec.state
        rec.initial_state = start[0] if len(start) == 1 else start
        suffix = net._forward_train(X[:, b:])
        delta = loss.grad(suffix, Y[:, b:]) * ((T - b) / T)  # the suffix's share of the mean
        net._backward_train(delta)
        out.append(rec.initial_state_grad[0] * N)
        rec.initial_state = None
    return out


@pytest.mark.parametrize("cell", ["rnn"])  # an LSTM's cell-state future is not modelled (docs)
def test_oracle_future_gradient_with_scale_one_is_full_bptt(cell):
    X, Y = seq_data()
    loss = cr.CrossEntropy()
    full = seq_net(cell)
    full._backward_train(loss.grad(full._forward_train(X), Y))
    net = seq_net(cell)
    oracle = FutureOracle(future_gradients(copy.deepcopy(net), loss, X, Y))
    rule = RecurrentDNI(scale=1.0, modules=[oracle])
    rule.begin(net, loss, cr.SGD(0.1))
    rule.bptt_step(net, X, Y, K)
    assert oracle.calls == 3
    for key, g in full.grads.items():
        assert max_rel_diff(net.grads[key], g) <= 1e-12, key


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_zero_module_first_step_is_truncated_bptt(cell):
    X, Y = seq_data(1)
    kwargs = dict(loss="crossentropy", epochs=1, batch_size=N, verbose=0, bptt_steps=K)
    plain, dni = seq_net(cell), seq_net(cell)
    plain.fit(X, Y, optimizer=cr.Adam(1e-2), **kwargs)
    rule = RecurrentDNI(seed=0)
    dni.fit(X, Y, optimizer=cr.Adam(1e-2), rule=rule, **kwargs)
    for key, p in plain.params.items():
        assert max_rel_diff(dni.params[key], p) <= 1e-12, key
    # ... and the module has since learned from the boundaries' targets
    assert np.any(rule.modules[0].net.layers[-1].params["weight"] != 0)


def test_regression_target_is_the_gradient_at_the_next_window_start():
    """With a non-zero module, the target for the boundary after window 0 is the VJP of window 1
    (its loss share plus the injected scaled prediction at its end) with respect to its start
    state: checked against a fourth-order finite difference."""
    X, Y = seq_data(2)
    loss = cr.CrossEntropy()
    net = seq_net("rnn")
    module = SyntheticGradient(5, hidden=(4,), activation="tanh", seed=3, dtype=np.float64)
    for p in module.net.layers[-1].params.values():
        p[...] = np.random.default_rng(4).standard_normal(p.shape)
    frozen_module = copy.deepcopy(module)
    rule = RecurrentDNI(scale=0.1, modules=[module])
    rule.begin(net, loss, cr.SGD(0.0))
    before = copy.deepcopy(net)
    rule.bptt_step(net, X, Y, K)
    states, targets = rule._boundaries
    rec = before.layers[0]
    rec.forward(X[:, :K], True)
    h0 = rec.state[0]
    np.testing.assert_array_equal(states[0][0], h0)

    rec.forward(X[:, K:2 * K], True, initial_state=h0)
    injected = 0.1 / N * frozen_module.net.forward(rec.state[0])  # ĝ at the window's end, a constant

    def window_objective(h_start):
        out = rec.forward(X[:, K:2 * K], True, initial_state=h_start)
        logits = before.layers[1].forward(out, True)
        value = loss.value(logits, Y[:, K:2 * K]) * (K / T)
        return N * (value + float(np.vdot(injected, out[:, -1])))  # s · (loss share + ⟨ĝ, h_end⟩)

    eps, numeric = 1e-3, np.zeros_like(h0)
    for idx in np.ndindex(h0.shape):
        f = []
        for k in (-2, -1, 1, 2):
            h = h0.copy()
            h[idx] += k * eps
            f.append(window_objective(h))
        numeric[idx] = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * eps)
    rel = np.abs(targets[0][0] - numeric) / np.maximum(np.abs(numeric), 1e-5)
    assert rel.max() < 1e-7, rel.max()
    assert len(targets[0]) == 3 and len(states[0]) == 3


def delayed_echo(n, seed, T=20, delay=6):
    """y_t = [x_{t−delay} > 0]: every label depends on an input in an earlier window."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, 1)).astype(np.float32)
    y = np.zeros((n, T), np.int64)
    y[:, delay:] = X[:, :-delay, 0] > 0
    return X, y


def test_synthetic_gradient_carries_credit_across_window_boundaries():
    (X, y), (Xt, yt) = delayed_echo(2000, 0), delayed_echo(1000, 1)
    acc = {}
    for name, rule in (("truncated", None), ("dni", RecurrentDNI(seed=0, track_every=25))):
        net = cr.Sequential(cr.RNN(1, 32, return_sequences=True, seed=0), cr.TimeDistributed(cr.Dense(32, 2, seed=0)))
        h = net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(3e-3), epochs=15, batch_size=64, seed=0,
                    verbose=0, bptt_steps=4, rule=rule)
        acc[name] = float(np.mean(net.predict(Xt).argmax(-1)[:, 6:] == yt[:, 6:]))
    assert acc["truncated"] < 0.65  # the delay (6) is longer than a window (4): truncated BPTT can't see it
    assert acc["dni"] > acc["truncated"] + 0.1, acc
    assert {"sg_loss_0", "angle_0", "angle_1"} <= set(h.history)


def test_recurrent_dni_needs_bptt_steps_a_recurrent_layer_and_no_state_carry():
    X, Y = seq_data()
    with pytest.raises(cr.ConfigError, match="bptt_steps"):
        seq_net().fit(X, Y, loss="crossentropy", rule=RecurrentDNI(), verbose=0)
    with pytest.raises(cr.ConfigError, match="recurrent layer"):
        RecurrentDNI().begin(cr.mlp([2, 3, 2]), cr.MSE(), cr.SGD())
    stateful = cr.Sequential(cr.RNN(2, 5, return_sequences=True, stateful=True), cr.TimeDistributed(cr.Dense(5, 3)))
    with pytest.raises(cr.ConfigError, match="stateful"):
        stateful.fit(X, Y, loss="crossentropy", rule=RecurrentDNI(), bptt_steps=K, verbose=0)
    with pytest.raises(cr.ConfigError, match="bptt_step"):
        seq_net().fit(X, Y, loss="crossentropy", rule=DNI(), bptt_steps=K, verbose=0)
