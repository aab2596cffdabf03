"""Acceptance: the adding problem (Hochreiter & Schmidhuber, 1997) learned by BPTT.

The runs hold BLAS to one thread when threadpoolctl is installed: the products here are small,
and on a machine whose other core is busy a two-thread BLAS call can wait a whole scheduler
slice for its second thread (seen here: 11 s per LSTM run on one thread, over 150 s on two
threads while other processes kept both cores busy). The arithmetic is the same either way.
"""


import numpy as np
import pytest

import chainrule as cr

pytestmark = pytest.mark.usefixtures("one_blas_thread")   # (tests/conftest.py)


def adding_problem(n, T, rng):
    """``n`` sequences of T (value, marker) pairs: values ~ U(0, 1), one marker in each half.

    The target is the sum of the two marked values; always predicting 1 gives MSE 1/6.
    """
    values = rng.uniform(0, 1, size=(n, T))
    markers = np.zeros((n, T))
    rows = np.arange(n)
    markers[rows, rng.integers(0, T // 2, n)] = 1
    markers[rows, rng.integers(T // 2, T, n)] = 1
    return np.stack([values, markers], axis=-1), (values * markers).sum(axis=1, keepdims=True)


def train(net, T, seed, lr):
    """2,000 steps: Adam, batch 64, global-norm clip 1, 10 epochs of 12,800 sequences."""
    rng = np.random.default_rng(seed)
    X, y = adding_problem(200 * 64, T, rng)
    net.fit(X, y, loss="mse", optimizer=cr.Adam(lr, clip_norm=1.0), epochs=10, batch_size=64,
            seed=seed, verbose=0)
    X_test, y_test = adding_problem(1000, T, np.random.default_rng(1000 + seed))
    assert np.mean((y_test - 1) ** 2) == pytest.approx(1 / 6, abs=0.02)   # the baseline
    return net.evaluate(X_test, y_test, loss="mse")["loss"]


@pytest.mark.parametrize("seed", [0, 1])
def test_lstm_solves_the_adding_problem_at_T50(seed):
    net = cr.Sequential(cr.LSTM(2, 32, seed=seed), cr.Dense(32, 1, seed=seed + 100))
    assert train(net, T=50, seed=seed, lr=1e-2) <= 0.01


def test_tanh_rnn_near_identity_solves_the_adding_problem_at_T10():
    seed, H = 0, 64
    W = 0.9 * np.eye(H) + 0.01 * np.random.default_rng(seed).normal(size=(H, H))
    net = cr.Sequential(cr.RNN(2, H, weight_hh=W, seed=seed), cr.Dense(H, 1, seed=seed + 100))
    # Adam 1e-2 moves all 64² recurrent weights by ~0.01 per step and saturates the tanh
    # units; 3e-3 keeps the near-identity recurrence
    assert train(net, T=10, seed=seed, lr=3e-3) <= 0.06
