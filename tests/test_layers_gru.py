"""GRU: torch.nn.GRU's equations, BPTT gradients, state, truncated BPTT, checkpoints and files."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.sequence import truncated_bptt_step
from crashing import Crash


def normwise_error(a, b) -> float:
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale else 0.0


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def documented_gru(x, W_ih, W_hh, b_ih, b_hh, h0):
    """torch.nn.GRU's documented equations, torch's layout (3H, n_in), gate order r, z, n."""
    H = W_hh.shape[1]
    h, out = h0, []
    for t in range(x.shape[1]):
        gi, gh = x[:, t] @ W_ih.T + b_ih, h @ W_hh.T + b_hh
        r = sigmoid(gi[:, :H] + gh[:, :H])
        z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out, axis=1)


def from_torch_layout(W_ih, W_hh, b_ih, b_hh, **kwargs):
    return cr.GRU(W_ih.shape[1], W_hh.shape[1], weight_ih=W_ih.T, weight_hh=W_hh.T, bias_ih=b_ih,
                  bias_hh=b_hh, dtype=np.float64, **kwargs)


# --- the equations ---------------------------------------------------------------------------
@pytest.mark.parametrize("return_sequences", [True, False])
def test_forward_follows_the_documented_equations(return_sequences):
    rng = np.random.default_rng(0)
    n_in, H = 3, 5
    W_ih, W_hh = rng.normal(size=(3 * H, n_in)), rng.normal(size=(3 * H, H))
    b_ih, b_hh = rng.normal(size=3 * H), rng.normal(size=3 * H)
    x, h0 = rng.normal(size=(4, 6, n_in)), rng.normal(size=(4, H))
    layer = from_torch_layout(W_ih, W_hh, b_ih, b_hh, return_sequences=return_sequences)
    ref = documented_gru(x, W_ih, W_hh, b_ih, b_hh, h0)
    out = layer.forward(x, initial_state=h0)
    np.testing.assert_allclose(out, ref if return_sequences else ref[:, -1], rtol=0, atol=1e-13)
    np.testing.assert_allclose(layer.state[0], ref[:, -1], rtol=0, atol=1e-13)


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("with_h0", [True, False])
def test_equals_torch_gru_forward_state_and_every_gradient(return_sequences, with_h0):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    n, T, n_in, H = 3, 7, 4, 5
    ref = torch.nn.GRU(n_in, H, batch_first=True, dtype=torch.float64)
    with torch.no_grad():                           # non-default values everywhere, biases included
        for p in ref.parameters():
            p.copy_(torch.tensor(rng.normal(scale=0.6, size=tuple(p.shape))))
    x, h0 = rng.normal(size=(n, T, n_in)), rng.normal(size=(n, H))
    x_t = torch.tensor(x, requires_grad=True)
    h0_t = torch.tensor(h0[None] if with_h0 else np.zeros((1, n, H)), requires_grad=True)
    out_t, h_T = ref(x_t, h0_t)
    out_t = out_t if return_sequences else out_t[:, -1]
    grad = rng.normal(size=tuple(out_t.shape))
    out_t.backward(torch.tensor(grad))

    def t(name):
        return getattr(ref, name).detach().numpy()

    layer = from_torch_layout(t("weight_ih_l0"), t("weight_hh_l0"), t("bias_ih_l0"), t("bias_hh_l0"),
                              return_sequences=return_sequences)
    out = layer.forward(x, initial_state=h0 if with_h0 else None)
    dx = layer.backward(grad)
    tol = dict(rtol=0, atol=1e-10)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **tol)
    np.testing.assert_allclose(layer.state[0], h_T[0].detach().numpy(), **tol)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.initial_state_grad[0], h0_t.grad[0].numpy(), **tol)
    np.testing.assert_allclose(layer.grads["weight_ih"], ref.weight_ih_l0.grad.numpy().T, **tol)
    np.testing.assert_allclose(layer.grads["weight_hh"], ref.weight_hh_l0.grad.numpy().T, **tol)
    np.testing.assert_allclose(layer.grads["bias_ih"], ref.bias_ih_l0.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.grads["bias_hh"], ref.bias_hh_l0.grad.numpy(), **tol)


def test_default_parameters_are_uniform_like_torch_and_zero_biases_with_an_init():
    layer = cr.GRU(6, 16, seed=0, dtype=np.float64)
    assert list(layer.params) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    shapes = {k: p.shape for k, p in layer.params.items()}
    assert shapes == {"weight_ih": (6, 48), "weight_hh": (16, 48), "bias_ih": (48,), "bias_hh": (48,)}
    for p in layer.params.values():
        assert np.abs(p).max() <= 0.25 and np.abs(p).max() > 0.2   # U(-1/√16, 1/√16)
    assert not np.array_equal(layer.params["bias_ih"], layer.params["bias_hh"])
    zeros = cr.GRU(6, 16, init="xavier", seed=0)
    assert not zeros.params["bias_ih"].any() and not zeros.params["bias_hh"].any()


# --- gradients against central differences ---------------------------------------------------
@pytest.mark.parametrize("return_sequences", [True, False])
def test_two_stacked_layers_match_central_differences(return_sequences):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(3, 6, 4))
    y = rng.normal(size=(3, 6, 2) if return_sequences else (3, 2))
    head = cr.TimeDistributed(cr.Dense(5, 2, seed=2)) if return_sequences else cr.Dense(5, 2, seed=2)
    net = cr.Sequential(cr.GRU(4, 5, return_sequences=True, seed=0),
                        cr.GRU(5, 5, return_sequences=return_sequences, seed=1), head, dtype=np.float64)
    report = cr.gradcheck(net, cr.MSE(), X, y, check_input=True)
    assert max(normwise_error(c.analytic, c.numeric) for c in report.checks) <= 1e-7, str(report)
    assert report.ok, str(report)


def test_gradient_of_the_initial_state_matches_central_differences():
    rng = np.random.default_rng(11)
    layer = cr.GRU(3, 4, return_sequences=True, seed=2, dtype=np.float64)
    X, h0, weights = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 5, 4))

    def loss(h):
        return float(np.sum(layer.forward(X, initial_state=h) * weights))

    loss(h0)
    layer.backward(weights)
    (analytic,) = layer.initial_state_grad
    numeric, eps = np.zeros_like(h0), 1e-6
    for idx in np.ndindex(*h0.shape):
        up, down = h0.copy(), h0.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (loss(up) - loss(down)) / (2 * eps)
    assert normwise_error(analytic, numeric) < 1e-8


def test_hidden_grad_norms_are_the_norms_of_the_total_dL_dh():
    rng = np.random.default_rng(12)
    layer = cr.GRU(2, 3, return_sequences=False, seed=0, dtype=np.float64)
    X, w = rng.normal(size=(2, 4, 2)), rng.normal(size=(2, 3))
    layer.forward(X)
    layer.backward(w)
    norms = layer.hidden_grad_norms
    # dL/dh_t by central differences through a perturbation added to h_t (steps t+1.. rerun)
    for t in range(4):
        layer.forward(X[:, :t + 1])
        h_t = layer.state[0]
        numeric, eps = np.zeros_like(h_t), 1e-6
        for idx in np.ndindex(*h_t.shape):
            vals = []
            for s in (eps, -eps):
                h = h_t.copy()
                h[idx] += s
                rest = layer.forward(X[:, t + 1:], initial_state=h) if t < 3 else h
                vals.append(float(np.sum(rest * w)))
            numeric[idx] = (vals[0] - vals[1]) / (2 * eps)
        assert norms[t] == pytest.approx(np.linalg.norm(numeric), rel=1e-7)


# --- state and truncated BPTT ----------------------------------------------------------------
def test_stateful_carries_the_state_and_resets_the_gradient():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 10, 2))
    full = cr.GRU(2, 4, return_sequences=True, seed=0, dtype=np.float64).forward(x)
    layer = cr.GRU(2, 4, return_sequences=True, stateful=True, seed=0, dtype=np.float64)
    first = layer.forward(x[:, :6], training=True)
    layer.forward(x[:1], training=False)
    second = layer.forward(x[:, 6:], training=True)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), full, rtol=0, atol=1e-14)
    grad = rng.normal(size=second.shape)
    layer.backward(grad)
    ref = cr.GRU(2, 4, return_sequences=True, seed=0, dtype=np.float64)
    ref.forward(x[:, :6])
    ref.forward(x[:, 6:], initial_state=ref.state)
    ref.backward(grad)
    for k in ref.grads:
        np.testing.assert_allclose(layer.grads[k], ref.grads[k], rtol=0, atol=1e-14)


def gru_net(seed=0):
    return cr.Sequential(cr.GRU(3, 5, return_sequences=True, seed=seed),
                         cr.TimeDistributed(cr.Dense(5, 2, seed=seed + 1)), dtype=np.float64)


def test_truncated_bptt_is_the_gradient_with_the_state_detached_at_window_boundaries():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(4, 10, 3)), rng.integers(0, 2, size=(4, 10))
    loss, k = cr.CrossEntropy(), 4
    net = gru_net()
    out, value = truncated_bptt_step(net, loss, X, y, k)
    np.testing.assert_allclose(out, gru_net().forward(X), rtol=0, atol=1e-13)
    # reference: central differences of the loss with each window's starting state held fixed
    ref = gru_net()
    starts, h = [], None
    for s in range(0, 10, k):
        starts.append(h)
        ref.layers[0].forward(X[:, s:s + k], initial_state=h)
        h = ref.layers[0].state

    def detached_loss():
        total = 0.0
        for s, h_start in zip(range(0, 10, k), starts, strict=True):
            e = min(s + k, 10)
            o = ref.layers[1].forward(ref.layers[0].forward(X[:, s:e], initial_state=h_start))
            total += (e - s) / 10 * loss.value(o, y[:, s:e])
        return total

    assert value == pytest.approx(detached_loss(), abs=1e-12)
    for name, p in ref.layers[0].params.items():
        numeric = np.zeros_like(p)
        for idx in np.ndindex(*p.shape):
            orig, vals = p[idx], []
            for step in (1e-5, -1e-5):
                p[idx] = orig + step
                vals.append(detached_loss())
            p[idx] = orig
            numeric[idx] = (vals[0] - vals[1]) / 2e-5
        assert normwise_error(net.grads[f"0.{name}"], numeric) <= 1e-8, name
    full = gru_net()
    full.backward(loss.grad(full.forward(X), y))
    assert normwise_error(net.grads["0.weight_hh"], full.grads["0.weight_hh"]) > 1e-3


def test_fit_with_bptt_steps_updates_from_the_truncated_gradient():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(4, 9, 3)), rng.integers(0, 2, size=(4, 9))
    grad_net = gru_net()
    truncated_bptt_step(grad_net, cr.CrossEntropy(), X, y, 4)
    net = gru_net()
    before = net.get_weights()
    net.fit(X, y, loss="cross_entropy", optimizer=cr.SGD(lr=0.1), epochs=1, batch_size=4, shuffle=False,
            verbose=0, bptt_steps=4)
    for w0, w1, g in zip(before, net.get_weights(), grad_net.grads.values(), strict=True):
        np.testing.assert_allclose(w1, w0 - 0.1 * g, rtol=0, atol=1e-13)


def test_an_embedding_then_gru_trains_with_bptt_steps_on_integer_ids():
    rng = np.random.default_rng(5)
    X = rng.integers(0, 6, size=(16, 12))
    y = np.roll(X, 1, axis=1) % 2                   # the parity of the previous id
    net = cr.Sequential(cr.Embedding(6, 4, seed=0), cr.GRU(4, 8, return_sequences=True, seed=1),
                        cr.TimeDistributed(cr.Dense(8, 2, seed=2)))
    history = net.fit(X, y, loss="cross_entropy", optimizer=cr.Adam(0.05), epochs=20, batch_size=8,
                      seed=0, verbose=0, bptt_steps=4)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]


def test_a_stateful_gru_with_truncated_bptt_resumes_from_a_checkpoint_exactly(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 6, 3)), rng.integers(0, 2, size=(24, 6))

    def build():
        return cr.Sequential(cr.GRU(3, 5, seed=0, return_sequences=True, stateful=True),
                             cr.TimeDistributed(cr.Dense(5, 2, seed=1)), dtype=np.float64)

    fit = dict(loss=cr.CrossEntropy(), epochs=3, batch_size=4, seed=0, verbose=0, bptt_steps=2)
    ref = build()
    ref.fit(X, y, optimizer=cr.Adam(lr=0.01), **fit)
    path = tmp_path / "gru.ckpt"
    with pytest.raises(RuntimeError):
        build().fit(X, y, optimizer=cr.Adam(lr=0.01), callbacks=[Crash(10)], checkpoint=path,
                    checkpoint_every=4, **fit)
    net = build()
    net.fit(X, y, optimizer=cr.Adam(lr=0.01), resume=path, **fit)
    for (key, p), q in zip(net.params.items(), ref.params.values(), strict=True):
        assert np.array_equal(p, q), key


# --- training, errors and files --------------------------------------------------------------
def test_float32_gru_stays_float32_and_learns():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(32, 8, 2)).astype(np.float32)
    y = X[:, :, 0].sum(axis=1, keepdims=True)       # the sum of the first feature over time
    net = cr.Sequential(cr.GRU(2, 12, seed=0), cr.Dense(12, 1, seed=1))
    out = net.forward(X)
    assert out.dtype == np.float32 and all(p.dtype == np.float32 for p in net.params.values())
    history = net.fit(X, y, optimizer=cr.Adam(0.02), epochs=30, batch_size=8, seed=0, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert all(g.dtype == np.float32 for g in net.grads.values())


def test_wrong_input_and_arguments_are_named_errors():
    net = cr.Sequential(cr.GRU(3, 4))
    expected = r"GRU\(n_in=3, n_hidden=4.*\(n_samples, time, 3\), got array of shape \(2, 5, 2\)"
    with pytest.raises(cr.ShapeError, match=expected):
        net.forward(np.zeros((2, 5, 2)))
    with pytest.raises(cr.ShapeError, match=r"initial state h must have shape \(2, 4\)"):
        net.layers[0].forward(np.zeros((2, 5, 3)), initial_state=np.zeros((2, 5)))
    with pytest.raises(cr.ConfigError, match="GRU n_hidden"):
        cr.GRU(2, 0)
    with pytest.raises(cr.ConfigError, match="GRU n_in"):
        cr.GRU(1.5, 2)
    with pytest.raises(cr.ConfigError, match="GRU seed"):
        cr.GRU(2, 2, seed=-1)


def test_save_and_load_give_the_same_outputs_bit_for_bit(tmp_path):
    rng = np.random.default_rng(8)
    net = cr.Sequential(cr.GRU(3, 6, return_sequences=True, seed=0), cr.GRU(6, 5, seed=1),
                        cr.Dense(5, 2, seed=2))
    x = rng.normal(size=(4, 7, 3)).astype(np.float32)
    net.fit(x, rng.normal(size=(4, 2)), epochs=2, verbose=0)
    net.save(tmp_path / "gru.npz")
    back = cr.load(tmp_path / "gru.npz")
    assert [type(la) for la in back.layers] == [cr.GRU, cr.GRU, cr.Dense]
    assert back.layers[0].return_sequences and not back.layers[1].return_sequences
    for k, p in net.params.items():
        assert np.array_equal(back.params[k], p), k
    assert np.array_equal(back.predict(x), net.predict(x))


def test_the_size_guard_counts_the_hidden_size_squared(tmp_path):
    from chainrule import io as cr_io

    header, arrays = cr_io.model_parts(cr.Sequential(cr.GRU(1, 2)))
    header["layers"][0]["config"]["n_hidden"] = 3000
    path = tmp_path / "gru.npz"
    cr_io.write(path, header, arrays)
    with pytest.raises(cr.FileFormatError, match=r"n_hidden.*3000.*cannot hold"):
        cr.load(path)
