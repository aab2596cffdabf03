"""RNN, LSTM and TimeDistributed: BPTT gradients, torch's equations, state, diagnostics, files."""

import numpy as np
import pytest

import chainrule as cr


def normwise_error(a, b) -> float:
    """‖a − b‖ / max(‖a‖, ‖b‖): the relative error of a whole gradient array."""
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale else 0.0


def worst_normwise(report) -> float:
    return max(normwise_error(c.analytic, c.numeric) for c in report.checks)


def stacked(cls, return_sequences, seed=0, **kwargs):
    top = cls(5, 5, return_sequences=return_sequences, seed=seed + 1, **kwargs)
    head = cr.TimeDistributed(cr.Dense(5, 2, seed=seed + 2)) if return_sequences else cr.Dense(5, 2, seed=seed + 2)
    return cr.Sequential(cls(4, 5, return_sequences=True, seed=seed, **kwargs), top, head, dtype=np.float64)


# --- gradients against central differences ------------------------------------------------------
@pytest.mark.parametrize("cls", [cr.RNN, cr.LSTM])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_two_stacked_layers_match_central_differences(cls, return_sequences):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(3, 6, 4))                    # batch 3, T = 6, 4 features
    y = rng.normal(size=(3, 6, 2) if return_sequences else (3, 2))
    net = stacked(cls, return_sequences)
    report = cr.gradcheck(net, cr.MSE(), X, y, check_input=True)
    assert worst_normwise(report) <= 1e-7, str(report)
    assert report.ok, str(report)


def test_relu_rnn_matches_central_differences_away_from_the_kink():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3, 6, 4))
    net = cr.Sequential(cr.RNN(4, 5, activation="relu", return_sequences=True, seed=4),
                        cr.TimeDistributed(cr.Dense(5, 2, seed=5)), dtype=np.float64)
    report = cr.gradcheck(net, cr.MSE(), X, rng.normal(size=(3, 6, 2)), step=1e-5, check_input=True)
    assert worst_normwise(report) <= 1e-6, str(report)


def test_gradient_of_the_initial_state_matches_central_differences():
    rng = np.random.default_rng(11)
    layer = cr.LSTM(3, 4, return_sequences=True, seed=2, dtype=np.float64)
    X = rng.normal(size=(2, 5, 3))
    h0, c0 = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    weights = rng.normal(size=(2, 5, 4))

    def loss(h, c):
        return float(np.sum(layer.forward(X, initial_state=(h, c)) * weights))

    loss(h0, c0)
    layer.backward(weights)
    dh0, dc0 = layer.initial_state_grad
    eps = 1e-6
    for analytic, which in ((dh0, 0), (dc0, 1)):
        numeric = np.zeros_like(analytic)
        for idx in np.ndindex(*analytic.shape):
            state = [h0.copy(), c0.copy()]
            state[which][idx] += eps
            up = loss(*state)
            state[which][idx] -= 2 * eps
            numeric[idx] = (up - loss(*state)) / (2 * eps)
        assert normwise_error(analytic, numeric) < 1e-8


# --- the equations are torch.nn.LSTM's / torch.nn.RNN's ------------------------------------------
def torch_style_lstm(x, W_ih, W_hh, b_ih, b_hh):
    """torch.nn.LSTM's documented equations, torch's weight layout (4H, n_in), gate order i, f, g, o."""
    n, T, _ = x.shape
    H = W_hh.shape[1]
    h, c = np.zeros((n, H)), np.zeros((n, H))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    out = []
    for t in range(T):
        gates = x[:, t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh
        i, f, g, o = sig(gates[:, :H]), sig(gates[:, H:2 * H]), np.tanh(gates[:, 2 * H:3 * H]), sig(gates[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1)


def test_lstm_follows_torch_equations_with_transposed_weights_and_summed_biases():
    rng = np.random.default_rng(5)
    n_in, H = 3, 4
    W_ih, W_hh = rng.normal(size=(4 * H, n_in)), rng.normal(size=(4 * H, H))
    b_ih, b_hh = rng.normal(size=4 * H), rng.normal(size=4 * H)
    x = rng.normal(size=(2, 7, n_in))
    layer = cr.LSTM(n_in, H, return_sequences=True, weight_ih=W_ih.T, weight_hh=W_hh.T,
                    bias=b_ih + b_hh, dtype=np.float64)
    np.testing.assert_allclose(layer.forward(x), torch_style_lstm(x, W_ih, W_hh, b_ih, b_hh), rtol=0, atol=1e-13)


def test_rnn_follows_torch_equations():
    rng = np.random.default_rng(6)
    W_ih, W_hh, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 5)) * 0.5, rng.normal(size=5)
    x = rng.normal(size=(2, 4, 3))
    for act, f in (("tanh", np.tanh), ("relu", lambda v: np.maximum(v, 0))):
        layer = cr.RNN(3, 5, activation=act, weight_ih=W_ih.T, weight_hh=W_hh.T, bias=b, dtype=np.float64)
        h = np.zeros((2, 5))
        for t in range(4):
            h = f(x[:, t] @ W_ih.T + h @ W_hh.T + b)
        np.testing.assert_allclose(layer.forward(x), h, rtol=0, atol=1e-14)


def test_lstm_forget_bias_starts_at_one_and_the_other_biases_at_zero():
    bias = cr.LSTM(3, 4, seed=0).params["bias"]
    np.testing.assert_array_equal(bias[4:8], 1.0)
    np.testing.assert_array_equal(np.r_[bias[:4], bias[8:]], 0.0)
    assert np.all(cr.LSTM(3, 4, forget_bias=2.5, seed=0).params["bias"][4:8] == 2.5)


# --- dtypes, shapes, diagnostics --------------------------------------------------------------
@pytest.mark.parametrize("cls", [cr.RNN, cr.LSTM])
def test_float32_in_float32_out_and_gradients(cls):
    rng = np.random.default_rng(0)
    net = cr.Sequential(cls(3, 8, return_sequences=True, seed=0), cr.TimeDistributed(cr.Dense(8, 2, seed=1)))
    out = net.forward(rng.normal(size=(4, 5, 3)))
    assert out.dtype == np.float32 and out.shape == (4, 5, 2)
    grad_x = net.backward(np.ones_like(out))
    assert grad_x.dtype == np.float32 and grad_x.shape == (4, 5, 3)
    assert all(g.dtype == np.float32 for g in net.grads.values())


@pytest.mark.parametrize("cls", [cr.RNN, cr.LSTM])
def test_hidden_grad_norms_give_the_norm_of_dL_dh_at_every_step(cls):
    rng = np.random.default_rng(1)
    layer = cls(2, 6, seed=0, dtype=np.float64)
    x = rng.normal(size=(4, 9, 2))
    layer.forward(x)
    grad = rng.normal(size=(4, 6))
    layer.backward(grad)
    norms = layer.hidden_grad_norms
    assert norms.shape == (9,)
    assert norms[-1] == pytest.approx(np.linalg.norm(grad))
    # an independent value at t = 1: d(<grad, h_T>)/dh_1 by central differences through the steps
    eps, h1_grad = 1e-6, np.zeros((4, 6))
    state = layer._h0 if cls is cr.RNN else (layer._h0, layer._c0)
    first = layer.forward(x[:, :1], initial_state=state)
    rest_state = layer.state
    for idx in np.ndindex(4, 6):
        vals = []
        for sign in (1, -1):
            h = first.copy()
            h[idx] += sign * eps
            start = h if cls is cr.RNN else (h, rest_state[1])
            vals.append(np.sum(layer.forward(x[:, 1:], initial_state=start) * grad))
        h1_grad[idx] = (vals[0] - vals[1]) / (2 * eps)
    assert norms[0] == pytest.approx(np.linalg.norm(h1_grad), rel=1e-7)


def test_gradients_vanish_over_time_with_small_recurrent_weights():
    rng = np.random.default_rng(2)
    layer = cr.RNN(2, 16, weight_hh=0.2 * rng.normal(size=(16, 16)) / 4, seed=0, dtype=np.float64)
    layer.forward(rng.normal(size=(8, 30, 2)))
    layer.backward(np.ones((8, 16)))
    norms = layer.hidden_grad_norms
    assert norms[0] < 1e-6 * norms[-1]
    assert np.all(np.diff(norms) > 0)


def test_return_sequences_false_returns_the_last_hidden_state():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 3))
    seq = cr.LSTM(3, 4, return_sequences=True, seed=9)
    last = cr.LSTM(3, 4, seed=9)
    np.testing.assert_array_equal(last.forward(x), seq.forward(x)[:, -1])
    assert last.output_shape((5, 3)) == (4,) and seq.output_shape((5, 3)) == (5, 4)


def test_time_distributed_equals_the_layer_applied_step_by_step():
    rng = np.random.default_rng(4)
    dense = cr.Dense(3, 2, seed=0, dtype=np.float64)
    td = cr.TimeDistributed(dense)
    x = rng.normal(size=(4, 5, 3))
    out = td.forward(x)
    for t in range(5):
        np.testing.assert_allclose(out[:, t], x[:, t] @ dense.params["weight"] + dense.params["bias"])
    grad = rng.normal(size=out.shape)
    grad_x = td.backward(grad)
    np.testing.assert_allclose(grad_x, grad @ dense.params["weight"].T)
    np.testing.assert_allclose(td.grads["weight"], np.einsum("ntk,ntj->kj", x, grad))
    assert td.params is dense.params


# --- initial and carried state -------------------------------------------------------------
@pytest.mark.parametrize("cls", [cr.RNN, cr.LSTM])
def test_initial_state_continues_a_sequence(cls):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 8, 2))
    layer = cls(2, 4, return_sequences=True, seed=0, dtype=np.float64)
    whole = layer.forward(x)
    layer.forward(x[:, :5])
    rest = layer.forward(x[:, 5:], initial_state=layer.state)
    np.testing.assert_allclose(rest, whole[:, 5:], rtol=0, atol=1e-14)


@pytest.mark.parametrize("cls", [cr.RNN, cr.LSTM])
def test_stateful_carries_the_state_and_resets_the_gradient(cls):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 10, 2))
    full = cls(2, 4, return_sequences=True, seed=0, dtype=np.float64).forward(x)
    layer = cls(2, 4, return_sequences=True, stateful=True, seed=0, dtype=np.float64)
    first = layer.forward(x[:, :6], training=True)
    layer.forward(x[:1], training=False)           # an inference forward does not disturb it
    second = layer.forward(x[:, 6:], training=True)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), full, rtol=0, atol=1e-14)
    grad = rng.normal(size=second.shape)
    layer.backward(grad)
    # the gradient is that of the second batch alone, from its (constant) starting state
    ref = cls(2, 4, return_sequences=True, seed=0, dtype=np.float64)
    ref.forward(x[:, :6])
    ref.forward(x[:, 6:], initial_state=ref.state)
    ref.backward(grad)
    for k in ref.grads:
        np.testing.assert_allclose(layer.grads[k], ref.grads[k], rtol=0, atol=1e-14)
    layer.reset_state()
    np.testing.assert_allclose(layer.forward(x[:, :6], training=True), first, rtol=0, atol=1e-14)


def test_initial_state_of_the_wrong_shape_is_refused():
    layer = cr.LSTM(2, 4)
    with pytest.raises(cr.ShapeError, match=r"initial state h must have shape \(3, 4\)"):
        layer.forward(np.zeros((3, 5, 2)), initial_state=(np.zeros((3, 5)), np.zeros((3, 4))))
    with pytest.raises(cr.ShapeError, match="2 array"):
        layer.forward(np.zeros((3, 5, 2)), initial_state=np.zeros((3, 4)))


# --- errors and files -------------------------------------------------------------------------
def test_input_of_the_wrong_shape_names_the_layer_and_the_shape():
    net = cr.Sequential(cr.LSTM(3, 4))
    expected = r"LSTM\(n_in=3, n_hidden=4.*\(n_samples, time, 3\), got array of shape \(2, 5\)"
    with pytest.raises(cr.ShapeError, match=expected):
        net.forward(np.zeros((2, 5)))
    with pytest.raises(cr.ShapeError, match=r"got array of shape \(2, 5, 2\)"):
        net.forward(np.zeros((2, 5, 2)))


def test_bad_arguments_raise_config_errors():
    with pytest.raises(cr.ConfigError, match="activation"):
        cr.RNN(2, 3, activation="sigmoid")
    with pytest.raises(cr.ConfigError, match="n_hidden"):
        cr.LSTM(2, 0)
    with pytest.raises(cr.ConfigError, match="TimeDistributed needs a Layer"):
        cr.TimeDistributed("dense")


def test_save_and_load_give_the_same_outputs_bit_for_bit(tmp_path):
    rng = np.random.default_rng(8)
    net = cr.Sequential(cr.LSTM(3, 6, return_sequences=True, seed=0),
                        cr.RNN(6, 5, activation="relu", return_sequences=True, seed=1),
                        cr.TimeDistributed(cr.Dense(5, 2, seed=2)))
    net.layers[2].freeze("bias")
    x = rng.normal(size=(4, 7, 3)).astype(np.float32)
    net.save(tmp_path / "seq.npz")
    loaded = cr.load(tmp_path / "seq.npz")
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x))
    assert repr(loaded.layers[1]) == repr(net.layers[1])
    assert loaded.layers[2].frozen == {"bias"}
