"""explain in matrix form for convolutions, pooling, normalization and attention.

The references are independent of the trace: central differences of the loss taken through the
library's own layers (``cr.gradcheck``-style, not through the trace's equations), the layers' own
backward pass, and for the built-in examples numbers worked out by hand.
"""

import numpy as np
import pytest

import chainrule as cr
from chainrule.errors import ConfigError, ShapeError
from chainrule.explain.examples import example


def _fd(net, loss, x, y, param, idx, h=1e-5):
    """Central difference of the loss through the network's own forward pass."""
    loss = cr.losses.get_loss(loss)
    target = loss.prepare_target(np.asarray(y), net.forward(x).shape, np.float64)
    old = param[idx]
    param[idx] = old + h
    up = loss._value(net.forward(x), target)
    param[idx] = old - h
    down = loss._value(net.forward(x), target)
    param[idx] = old
    return (up - down) / (2 * h)


def _numbered(trace):
    return [s for s in trace.steps if s.section == "backward" and s.label]


def test_conv_example_by_hand():
    """The conv example's numbers, worked out by hand from its image and weights."""
    trace = example("conv").explain()
    x = np.array([[0.1, 0.5, -0.3, 0.8], [0.7, -0.2, 0.4, 0.0], [-0.6, 0.3, 0.9, -0.1], [0.2, -0.8, 0.05, 0.6]])
    k = np.array([[0.5, -0.4], [0.3, 0.2]])
    z = np.array([[np.sum(x[i:i + 2, j:j + 2] * k) + 0.1 for j in range(3)] for i in range(3)])
    assert np.allclose(trace.value("A¹"), z[None, None], atol=1e-15)
    r = np.maximum(z, 0)
    pooled = np.array([[r[i:i + 2, j:j + 2].max() for j in range(2)] for i in range(2)])
    assert np.allclose(trace.value("A³"), pooled, atol=1e-15)
    out = pooled.ravel() @ np.array([0.3, -0.2, 0.5, 0.1])
    assert trace.value("E_total") == pytest.approx((out - 0.5) ** 2, abs=1e-15)
    # dE/dW¹[u, v] = Σ_ij dE/dZ[i, j]·x[i+u, j+v]; dE/dZ is the routed gradient through ReLU
    d_out = 2 * (out - 0.5)
    d_pool = d_out * np.array([0.3, -0.2, 0.5, 0.1]).reshape(2, 2)
    d_r = np.zeros((3, 3))
    for i in range(2):
        for j in range(2):
            a, b = np.unravel_index(np.argmax(r[i:i + 2, j:j + 2]), (2, 2))
            d_r[i + a, j + b] += d_pool[i, j]
    d_z = d_r * (z > 0)
    dk = np.array([[np.sum(d_z * x[u:u + 3, v:v + 3]) for v in range(2)] for u in range(2)])
    assert np.allclose(trace.value("dE/dW¹"), dk[None, None], atol=1e-14)
    assert trace.value("dE/db¹") == pytest.approx([d_z.sum()], abs=1e-14)
    assert trace.max_relative_error < 1e-7


def test_attention_example_by_hand():
    trace = example("attention").explain()
    x = np.array([[1.0, 0.5], [-0.5, 2.0]])
    wq, wk = np.array([[0.5, -0.2], [0.1, 0.4]]), np.array([[0.3, 0.6], [-0.5, 0.2]])
    wv, wo = np.array([[0.7, -0.1], [0.2, 0.9]]), np.array([[1.0, 0.3], [-0.4, 0.8]])
    q, k, v = x @ wq + [0.1, 0.0], x @ wk, x @ wv
    s = q @ k.T / np.sqrt(2)
    p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    assert np.allclose(trace.value("S¹"), s, atol=1e-15)
    assert np.allclose(trace.value("P¹"), p, atol=1e-15)
    y = p @ v @ wo
    t = np.array([[0.5, -0.5], [1.0, 0.0]])
    assert trace.value("E_total") == pytest.approx(np.mean((y - t) ** 2), abs=1e-15)
    # the key bias cannot change any softmax row: its gradient is zero
    assert np.allclose(trace.value("dE/db_k¹"), 0, atol=1e-15)
    assert trace.max_relative_error < 1e-7


@pytest.mark.parametrize("name", ["conv", "attention", "rnn"])
def test_every_factor_is_numbered_and_checked(name):
    trace = example(name).explain()
    factors = _numbered(trace)
    labels = [s.label for s in factors]
    assert labels == [f"({k})" for k in range(1, len(factors) + 1)]
    checked = {s.label for s in trace.checks}
    assert checked == set(labels)
    assert all(s.rel_error < 1e-7 for s in trace.checks)


@pytest.mark.parametrize("name", ["conv", "attention", "rnn"])
def test_parameter_gradients_match_central_differences_through_the_layers(name):
    ex = example(name)
    trace = ex.explain(lr=None)
    net = ex.net
    for i, layer in enumerate(net.layers):
        for pname, arr in layer.params.items():
            sym = trace.network.layers[i]  # the float64 copy the trace ran on
            assert sym is not layer
            grad = next(s.value for s in trace.steps if s.section == "backward"
                        and s.label and s.name.startswith("dE/d") and np.shape(s.value) == arr.shape
                        and any(c.where and c.where.startswith(f'layers[{i}].params["{pname}"]')
                                and c.label == s.label for c in trace.checks))
            for idx in np.ndindex(arr.shape):
                assert grad[idx] == pytest.approx(_fd(net, ex.loss, ex.x, ex.y, arr, idx), abs=1e-8)


def _block(seed=0):
    rng = np.random.default_rng(seed)
    net = cr.Sequential(cr.LayerNorm(4), cr.MultiHeadAttention(4, 2, causal=True, seed=seed),
                        cr.Dense(4, 3, seed=seed + 1), cr.GELU(), cr.Dense(3, 2, seed=seed + 2), dtype=np.float64)
    net.layers[0].params["weight"][...] = [1.1, 0.9, 1.2, 0.8]
    net.layers[0].params["bias"][...] = [0.1, -0.1, 0.2, 0.0]
    return net, rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 2))


def test_causal_multi_head_block_with_layer_norm_and_gelu():
    net, x, y = _block()
    trace = cr.explain(net, "mse", x, y, max_weights=200, max_units=20)
    assert not trace.oversized and trace.notation == "matrix"
    assert trace.max_relative_error < 1e-7
    dS = trace.value("dE/dS²")                     # (n, heads, T, T)
    above = np.triu(np.ones((3, 3), bool), k=1)
    assert dS.shape == (2, 2, 3, 3) and np.all(dS[..., above] == 0)
    assert np.all(trace.value("P²")[..., above] == 0)
    # the written-out gradients are the ones the layers' own backward computes
    out = net.forward(x)
    loss = cr.MSE()
    net.backward(loss.grad(out, y))
    assert np.allclose(trace.value("dE/dW_q²"), net.layers[1].grads["weight_q"], rtol=1e-12, atol=1e-15)
    assert np.allclose(trace.value("dE/dγ¹"), net.layers[0].grads["weight"], rtol=1e-12, atol=1e-15)


def test_strided_padded_dilated_convolution_with_average_pooling():
    rng = np.random.default_rng(3)
    net = cr.Sequential(cr.Conv2D(2, 2, 3, stride=2, padding=1, seed=0), cr.Tanh(),
                        cr.Conv2D(2, 2, 2, dilation=2, padding=1, seed=1), cr.Sigmoid(),
                        cr.AvgPool2D(2), cr.GlobalAvgPool2D(), cr.Dense(2, 3, seed=2), dtype=np.float64)
    x = rng.normal(size=(2, 2, 5, 5))
    trace = cr.explain(net, cr.CrossEntropy(), x, [0, 2], max_weights=200, max_units=60)
    assert not trace.oversized
    assert trace.max_relative_error < 1e-7
    assert "largest difference" in trace.description[-1]
    own = float(trace.description[-1].split("largest difference ")[1].split(")")[0])
    assert own < 1e-12


def test_updates_and_several_steps():
    ex = example("conv")
    trace = ex.explain(n_steps=3)
    assert len(trace.errors) == 4 and trace.errors[-1] < trace.errors[0]
    w0 = ex.net.layers[0].params["weight"]
    g = trace.value("dE/dW¹")
    assert np.allclose(trace.value("W¹⁺"), w0 - 0.1 * g, atol=1e-15)
    assert np.array_equal(ex.net.layers[0].params["weight"], w0)   # the caller's network is untouched


def test_every_rendering_carries_the_numbered_factors(tmp_path):
    trace = example("attention").explain()
    text, md, html, tex = str(trace), trace.to_markdown(), trace.to_html(), trace.to_latex()
    assert "(7) dE/dS¹ = P¹∘(dE/dP¹ - rowsum(P¹ ∘ dE/dP¹))" in text
    assert "(7) dE/dS¹" in md and "(7) " in html and r"\text{(7)}" in tex
    assert all(ord(c) < 128 for c in tex)
    assert trace.save(tmp_path / "a.html").read_text().startswith("<!DOCTYPE html>")


def test_refusals_name_the_problem():
    net = cr.Sequential(cr.Conv2D(1, 1, 2), cr.Flatten(), cr.Dense(9, 1), dtype=np.float64)
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ConfigError, match="notation='matrix'"):
        cr.explain(net, "mse", x, [[0.0]], notation="scalar")
    with pytest.raises(ShapeError, match="sample axis"):
        cr.explain(cr.Sequential(cr.MultiHeadAttention(2, 1), dtype=np.float64), "mse", np.zeros(2), np.zeros(2))
    with pytest.raises(ShapeError, match="Conv2D"):
        cr.explain(net, "mse", np.zeros((1, 2, 4, 4)), [[0.0]])
    emb = cr.Sequential(cr.Embedding(5, 2), cr.Residual(cr.BatchNorm(2)), dtype=np.float64)
    with pytest.raises(ConfigError, match=r"layers\[1\].layers\[0\] is BatchNorm"):
        cr.explain(emb, "mse", np.zeros((1, 3), int), np.zeros((1, 3, 2)))
    late = cr.Sequential(cr.Dense(2, 2), cr.Embedding(5, 2), dtype=np.float64)
    with pytest.raises(ConfigError, match=r"layers\[1\] is an Embedding after another layer"):
        cr.explain(late, "mse", np.zeros((1, 2)), np.zeros((1, 2, 2)))
    inner = cr.Sequential(cr.Residual(cr.Embedding(5, 2)), dtype=np.float64)
    with pytest.raises(ConfigError, match=r"layers\[0\].layers\[0\] is an Embedding inside a Residual"):
        cr.explain(inner, "mse", np.zeros((1, 2), int), np.zeros((1, 2, 2)))
    rec = cr.Sequential(cr.Dense(2, 2), cr.Residual(cr.BatchNorm(2)), dtype=np.float64)
    with pytest.raises(ConfigError, match=r"layers\[1\].layers\[0\] is BatchNorm"):
        cr.explain(rec, "mse", np.zeros((1, 3, 2)), np.zeros((1, 3, 2)))


def test_a_big_network_gets_the_layer_summary():
    net = cr.Sequential(cr.Conv2D(1, 4, 3, seed=0), cr.ReLU(), cr.Flatten(), cr.Dense(144, 2, seed=1),
                        dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(2, 1, 8, 8))
    trace = cr.explain(net, cr.CrossEntropy(), x, [0, 1], lr=0.1)
    assert trace.oversized and "too big" in trace.message
    rows = [s for s in trace.steps if s.section == "summary"]
    assert [s.info["layer"] for s in rows] == ["0: Conv2D", "3: Dense"]
    assert all(s.info["check"] < 1e-6 for s in rows)
    assert "Layer summary" in str(trace)


def test_float32_network_is_explained_on_a_float64_copy():
    net = cr.Sequential(cr.Conv2D(1, 1, 2, seed=0), cr.Flatten(), cr.Dense(9, 1, seed=1))
    trace = cr.explain(net, "mse", np.ones((1, 1, 4, 4)), [[0.0]])
    assert any("float32" in line for line in trace.description)
    assert trace.network.layers[0].params["weight"].dtype == np.float64


def test_a_pre_norm_transformer_block_with_its_skip_connections():
    """Residual(LayerNorm, attention), Residual(LayerNorm, Dense, GELU, Dense) after positions: every factor
    checked, and the skip connection adds its gradient to the branch's."""
    net = cr.Sequential(cr.PositionalEmbedding(4, 4, seed=0),
                        cr.Residual(cr.LayerNorm(4), cr.MultiHeadAttention(4, 2, causal=True, seed=1)),
                        cr.Residual(cr.LayerNorm(4), cr.Dense(4, 8, seed=2), cr.GELU(), cr.Dense(8, 4, seed=3)),
                        dtype=np.float64)
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    trace = cr.explain(net, "mse", x, y, lr=0.1, max_weights=400, max_units=20)
    assert not trace.oversized and trace.max_relative_error < 1e-7
    own = float(trace.description[-1].split("largest difference ")[1].split(")")[0])
    assert own < 1e-12
    # A¹ (after positions) feeds the first block's branch (B², its copy; LayerNorm A², attention A³) and its
    # skip connection (A⁴ = A¹ + A³)
    assert trace.find("A⁴", section="forward").rhs[0].render("text", 9) == "A¹ + A³"
    skip = trace.find("dE/dA¹", section="backward")
    assert skip.rhs[0].render("text", 9) == "dE/dA⁴ + dE/dB²"
    assert np.allclose(skip.value, trace.value("dE/dA⁴") + trace.value("dE/dB²"), rtol=0, atol=1e-15)
    names = " ".join(line for line in trace.description if line.startswith("parameters"))
    assert 'layers[1].layers[1].params["weight_q"]' in names and 'layers[0].params["weight"]' in names
    out = net.forward(x)
    net.backward(cr.MSE().grad(out, y))
    assert np.allclose(trace.value("dE/dE_pos¹"), net.layers[0].grads["weight"], rtol=1e-12, atol=1e-15)


def test_token_embeddings_add_the_gradient_of_a_repeated_id():
    """A tiny token model, Embedding → PositionalEmbedding → Flatten → Dense: the table's gradient,
    as the trace writes it, equals central differences through the layers' own forward, and the row
    of an id that occurs twice is the sum of its two positions' rows of dE/dA¹."""
    net = cr.Sequential(cr.Embedding(4, 2, seed=0), cr.PositionalEmbedding(3, 2, seed=1), cr.Flatten(),
                        cr.Dense(6, 2, seed=2), dtype=np.float64)
    x, y = np.array([[1, 3, 1]]), np.array([1])
    trace = cr.explain(net, "cross_entropy", x, y)
    assert all(s.rel_error < 1e-7 for s in trace.checks)
    table = trace.network.layers[0].params["weight"]
    grad = next(s.value for s in _numbered(trace) if s.name.startswith("dE/dE_tok"))
    d_a1 = next(s.value for s in _numbered(trace) if s.name.startswith("dE/dA¹"))
    np.testing.assert_allclose(grad[1], d_a1[0, 0] + d_a1[0, 2], rtol=1e-12)
    assert not grad[0].any() and not grad[2].any()  # ids 0 and 2 do not occur
    for idx in np.ndindex(table.shape):
        assert grad[idx] == pytest.approx(_fd(trace.network, "cross_entropy", x, y, table, idx), abs=1e-8)


@pytest.mark.parametrize("kind, returns, activation, before", [
    ("RNN", False, "tanh", False), ("RNN", True, "relu", True),
    ("LSTM", False, None, False), ("LSTM", True, None, True),
    ("GRU", False, None, False), ("GRU", True, None, True),
], ids=["rnn-last-state-tanh", "rnn-sequence-relu-after-dense", "lstm-last-state", "lstm-sequence-after-dense",
        "gru-last-state", "gru-sequence-after-dense"])
def test_backpropagation_through_time(kind, returns, activation, before):
    """Every parameter's gradient as the trace writes it equals central differences through the
    layers' own forward; the trace's dE/dH at each step gathers the output's part and the next
    step's dE/dZ·W_hhᵀ (for the GRU, dE/dQ·W_hhᵀ plus the direct path dE/dH∘Z)."""
    rng = np.random.default_rng(4)
    layers = [cr.Dense(2, 2, seed=3)] if before else []
    options = {"activation": activation} if activation else {}
    layers += [getattr(cr, kind)(2, 2, return_sequences=returns, seed=0, **options)]
    layers += [cr.Flatten(), cr.Dense(6, 1, seed=1)] if returns else [cr.Dense(2, 1, seed=1)]
    net = cr.Sequential(*layers, dtype=np.float64)
    x, y = rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 1))
    trace = cr.explain(net, "mse", x, y, max_samples=2)
    assert all(s.rel_error < 1e-7 for s in trace.checks)
    work = trace.network
    r = len(layers) - (3 if returns else 2)  # the RNN's index
    numbered = _numbered(trace)
    for pname, arr in work.layers[r].params.items():
        where = f'layers[{r}].params["{pname}"]'
        grad = next(s.value for s in numbered
                    if any(c.label == s.label and c.where and c.where.startswith(where) for c in trace.checks))
        for idx in np.ndindex(arr.shape):
            assert grad[idx] == pytest.approx(_fd(work, "mse", x, y, arr, idx), abs=1e-8)
    # the step back in time, recomputed from the trace's own numbers: dE/dH_2 = (part from the output)
    # + dE/dZ_3·W_hhᵀ (GRU: + dE/dH_3∘Z_3 + dE/dQ_3·W_hhᵀ)
    l = r + 1
    value = {s.name.split(" ")[0]: s.value for s in numbered}
    forward = {s.name.split(" ")[0]: s.value for s in trace.steps if s.section == "forward"}
    dh2 = value[f"dE/dH{_sup(l)}₂"]
    w_hh = work.layers[r].params["weight_hh"]
    if kind == "GRU":
        through = value[f"dE/dH{_sup(l)}₃"] * forward[f"Z{_sup(l)}₃"] + value[f"dE/dQ{_sup(l)}₃"] @ w_hh.T
    else:
        through = value[f"dE/dZ{_sup(l)}₃"] @ w_hh.T
    from_out = np.zeros_like(dh2)
    if returns:
        from_out = value[f"dE/dA{_sup(l)}"][:, 1]
    np.testing.assert_allclose(dh2, from_out + through, rtol=1e-12, atol=1e-15)


def _sup(n: int) -> str:
    return str(n).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_recurrent_refusals(kind):
    stateful = cr.Sequential(getattr(cr, kind)(2, 2, stateful=True), cr.Dense(2, 1), dtype=np.float64)
    with pytest.raises(ConfigError, match=r"layers\[0\] carries a state between calls"):
        cr.explain(stateful, "mse", np.zeros((1, 3, 2)), np.zeros((1, 1)))
    fixed = cr.Sequential(cr.FixedPointRNN(2, 2, 1), dtype=np.float64)
    with pytest.raises(ConfigError, match=r"layers\[0\] is FixedPointRNN.*not written out yet"):
        cr.explain(fixed, "mse", np.zeros((1, 2)), np.zeros((1, 1)))
