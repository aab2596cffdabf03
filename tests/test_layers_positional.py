"""PositionalEmbedding: x + P[:T], gradients summed over the samples, sequences up to max_len."""

import time

import numpy as np
import pytest

import chainrule as cr


def test_forward_adds_the_first_rows_and_backward_sums_over_samples():
    table = np.arange(15.0).reshape(5, 3)
    layer = cr.PositionalEmbedding(5, 3, weight=table, dtype=np.float64)
    x = np.ones((2, 4, 3))
    out = layer.forward(x)
    np.testing.assert_array_equal(out[1, 2], [7.0, 8.0, 9.0])          # 1 + row 2
    delta = np.arange(24.0).reshape(2, 4, 3)
    grad_in = layer.backward(delta)
    np.testing.assert_array_equal(grad_in, delta)                      # dL/dx = dL/dy
    expected = np.zeros((5, 3))
    expected[:4] = delta[0] + delta[1]                                 # row 4 unused: 0
    np.testing.assert_array_equal(layer.grads["weight"], expected)
    layer.forward(np.ones((1, 2, 3)))                                  # a shorter sequence
    layer.backward(np.ones((1, 2, 3)))
    np.testing.assert_array_equal(layer.grads["weight"], [[1] * 3] * 2 + [[0] * 3] * 3)


def test_sinusoidal_start_is_the_vaswani_table():
    layer = cr.PositionalEmbedding(6, 5, init="sinusoidal")
    cr.Sequential(layer, dtype=np.float64)
    w = layer.params["weight"]
    assert w[3, 0] == np.sin(3.0) and w[3, 1] == np.cos(3.0)          # ω_0 = 1
    assert w[2, 2] == pytest.approx(np.sin(2 / 10000 ** (2 / 5)), abs=1e-15)
    assert w[2, 3] == pytest.approx(np.cos(2 / 10000 ** (2 / 5)), abs=1e-15)
    assert w[4, 4] == pytest.approx(np.sin(4 / 10000 ** (4 / 5)), abs=1e-15)  # odd dim: a last sine
    np.testing.assert_array_equal(w[0], [0, 1, 0, 1, 0])


def test_default_table_is_normal_with_std_002_drawn_in_float64():
    layer = cr.PositionalEmbedding(40, 6, seed=3)
    cr.Sequential(layer, dtype=np.float64)
    np.testing.assert_array_equal(layer.params["weight"], np.random.default_rng(3).normal(0.0, 0.02, (40, 6)))


def test_gradcheck_every_parameter_and_the_input():
    rng = np.random.default_rng(1)
    net = cr.Sequential(cr.Dense(2, 3, seed=0), cr.PositionalEmbedding(6, 3, seed=1), cr.Tanh(),
                        cr.Flatten(), cr.Dense(12, 2, seed=2), dtype=np.float64)
    X, y = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 2))        # T = 4 < max_len = 6
    report = cr.gradcheck(net, "mse", X, y, check_input=True)
    assert report.ok, str(report)
    assert {"1.weight", "input"} <= {c.name for c in report.checks}


def test_input_gradient_is_the_derivative_of_the_loss():
    rng = np.random.default_rng(2)
    layer = cr.PositionalEmbedding(5, 3, seed=0).astype(np.float64)
    x, w = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 3))

    def loss(xx):
        return float(np.sum(w * np.tanh(layer.forward(xx))))

    analytic = layer.backward(w * (1 - np.tanh(layer.forward(x)) ** 2))
    numeric = np.zeros_like(x)
    h = 1e-6
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (loss(up) - loss(down)) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


def test_equals_torch_position_embedding_forward_and_gradients():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    table, x, delta = rng.normal(size=(7, 4)), rng.normal(size=(3, 5, 4)), rng.normal(size=(3, 5, 4))
    layer = cr.PositionalEmbedding(7, 4, weight=table, dtype=np.float64)
    out = layer.forward(x)
    grad_in = layer.backward(delta)
    pos = torch.nn.Embedding(7, 4).double()
    with torch.no_grad():
        pos.weight.copy_(torch.tensor(table))
    tx = torch.tensor(x, requires_grad=True)
    t_out = tx + pos(torch.arange(5))
    t_out.backward(torch.tensor(delta))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(grad_in, tx.grad.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(layer.grads["weight"], pos.weight.grad.numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("x, match", [
    (np.zeros((2, 6, 3)), r"PositionalEmbedding\(max_len=5, dim=3\) takes sequences of at most max_len=5"
                          r" steps, got 6 steps"),
    (np.zeros((2, 4, 2)), r"PositionalEmbedding\(max_len=5, dim=3\) expects input of shape"
                          r" \(n_samples, time, 3\), got array of shape \(2, 4, 2\)"),
    (np.zeros((2, 3)), r"expects input of shape \(n_samples, time, 3\)"),
])
def test_wrong_shapes_are_refused_naming_the_layer(x, match):
    layer = cr.PositionalEmbedding(5, 3, seed=0)
    with pytest.raises(cr.ShapeError, match=match):
        layer(x)
    net = cr.Sequential(cr.Dense(x.shape[-1], x.shape[-1], seed=0), cr.PositionalEmbedding(5, 3, seed=0))
    if x.ndim == 3 and x.shape[-1] == 3:                      # a later layer checks in forward
        with pytest.raises(cr.ShapeError, match=match):
            net.predict(x)


def test_a_longer_sequence_is_refused_after_an_embedding_in_fit_and_predict():
    net = cr.Sequential(cr.Embedding(4, 3, seed=0), cr.PositionalEmbedding(5, 3, seed=1))
    ids = np.zeros((2, 8), dtype=int)
    for call in (net.predict, lambda x: net.fit(x, np.zeros((2, 8, 3)), verbose=0)):
        with pytest.raises(cr.ShapeError, match="at most max_len=5 steps, got 8"):
            call(ids)


@pytest.mark.parametrize("make, match", [
    (lambda: cr.PositionalEmbedding(0, 3), "PositionalEmbedding max_len must be a positive integer, got 0"),
    (lambda: cr.PositionalEmbedding(4, 2.0), "PositionalEmbedding dim must be a positive integer, got 2.0"),
    (lambda: cr.PositionalEmbedding(True, 3), "PositionalEmbedding max_len"),
    (lambda: cr.PositionalEmbedding(4, float("nan")), "PositionalEmbedding dim"),
    (lambda: cr.PositionalEmbedding(4, 3, init="sinusoid"), "sinusoid"),
])
def test_bad_arguments_are_config_errors(make, match):
    with pytest.raises(cr.ConfigError, match=match):
        make()


def test_save_and_load_give_the_same_outputs_bit_for_bit(tmp_path):
    rng = np.random.default_rng(5)
    X = rng.integers(0, 11, (6, 5))
    net = cr.Sequential(cr.Embedding(11, 4, seed=0), cr.PositionalEmbedding(8, 4, init="sinusoidal"),
                        cr.MultiHeadAttention(4, 2, causal=True, seed=1), cr.Dense(4, 11, seed=2))
    net.fit(X, rng.integers(0, 11, (6, 5)), loss="crossentropy", epochs=2, verbose=0)
    net.save(tmp_path / "pos.npz")
    back = cr.load(tmp_path / "pos.npz")
    assert type(back.layers[1]) is cr.PositionalEmbedding
    assert back.layers[1].get_config() == {"max_len": 8, "dim": 4}
    np.testing.assert_array_equal(back.layers[1].params["weight"], net.layers[1].params["weight"])
    assert np.array_equal(back.predict(X), net.predict(X))


def test_the_size_guard_refuses_a_huge_table_before_building_it(tmp_path):
    from chainrule import io as cr_io

    header, arrays = cr_io.model_parts(cr.Sequential(cr.PositionalEmbedding(5, 3, seed=0)))
    header["layers"][0]["config"].update(max_len=10**8, dim=10**4)
    path = tmp_path / "huge.npz"
    cr_io.write(path, header, arrays)
    start = time.perf_counter()
    with pytest.raises(cr.FileFormatError, match=r"max_len.*100000000.*cannot hold"):
        cr.load(path)
    assert time.perf_counter() - start < 1.0


def test_a_float32_network_learns_where_the_answer_depends_on_position():
    # the target at step t is 1 for t < 3 and 0 after, whatever the token: only positions tell
    rng = np.random.default_rng(6)
    X = rng.integers(0, 5, (64, 6))
    y = np.broadcast_to((np.arange(6) < 3).astype(int), (64, 6))
    net = cr.Sequential(cr.Embedding(5, 8, seed=0), cr.PositionalEmbedding(6, 8, seed=1),
                        cr.Dense(8, 2, seed=2))
    history = net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(0.05), epochs=10, batch_size=16,
                      seed=0, verbose=0)
    assert net.predict(X).dtype == np.float32
    assert net.layers[1].params["weight"].dtype == np.float32
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
