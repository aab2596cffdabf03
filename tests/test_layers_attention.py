"""MultiHeadAttention, Residual, GELU and a pre-norm transformer block built from them.

References: central finite differences (cr.gradcheck and a direct check of dL/dx), PyTorch in
float64 (torch.nn.MultiheadAttention, torch.nn.GELU, torch.nn.Linear, the same block written in
torch), and closed forms (x + f(x)).
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import io as cr_io
from crashing import Crash

TOL = 1e-7


class BlockTestLayerNorm(cr.Layer):
    """Test-only layer normalization over the last axis (torch.nn.LayerNorm's equations):
    y = γ ∘ (x − μ)/√(σ² + ε) + β;  dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂ ∘ x̂)) / √(σ² + ε)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.params = {"weight": np.ones(dim), "bias": np.zeros(dim)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x, training=False):
        mu = x.mean(axis=-1, keepdims=True)
        self._inv = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + self.eps)
        self._xhat = (x - mu) * self._inv
        return self._xhat * self.params["weight"] + self.params["bias"]

    def backward(self, grad):
        xhat = self._xhat
        axes = tuple(range(grad.ndim - 1))
        self.grads["weight"][...] = (grad * xhat).sum(axis=axes)
        self.grads["bias"][...] = grad.sum(axis=axes)
        dxhat = grad * self.params["weight"]
        return (dxhat - dxhat.mean(axis=-1, keepdims=True)
                - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)) * self._inv

    def get_config(self):
        return {"dim": self.dim, "eps": self.eps}


class AttentionTestSized(cr.Layer):
    """Test-only layer whose ``size`` counts twice; it records every construction."""

    size_args = ("size", "size")
    built: list = []

    def __init__(self, size: int) -> None:
        super().__init__()
        AttentionTestSized.built.append(size)
        self.size = size
        self.params = {"weight": np.zeros((2,))}
        self.grads = {"weight": np.zeros((2,))}

    def forward(self, x, training=False):
        return x * self.params["weight"][0]

    def backward(self, grad):
        return grad * self.params["weight"][0]

    def get_config(self):
        return {"size": self.size}


def random_attention(dim, heads, causal=False, seed=0):
    """A float64 layer with random weights and biases (biases nonzero, so they are tested)."""
    layer = cr.MultiHeadAttention(dim, heads, causal=causal, seed=seed).astype(np.float64)
    rng = np.random.default_rng(seed + 100)
    for p in layer.params.values():
        p[...] = rng.normal(0.0, 0.5, p.shape)
    return layer


def numeric_input_grad(f, x, step=1e-5):
    """Central differences of the scalar f at x, entry by entry."""
    num = np.zeros_like(x)
    for j in np.ndindex(x.shape):
        orig = x[j]
        x[j] = orig + step
        up = f(x)
        x[j] = orig - step
        down = f(x)
        x[j] = orig
        num[j] = (up - down) / (2 * step)
    return num


def assert_gradcheck_ok(net, loss, X, y):
    report = cr.gradcheck(net, loss, X, y, check_input=True)
    assert report.ok, f"\n{report}"
    names = {c.name for c in report.checks}
    assert names == set(net.params) | {"input"}


# --- MultiHeadAttention -------------------------------------------------------------------
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_attention_equals_torch_forward_and_backward(causal):
    torch = pytest.importorskip("torch")
    n, T, dim, heads = 3, 5, 6, 3
    layer = random_attention(dim, heads, causal)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, T, dim))
    g = rng.normal(size=(n, T, dim))
    y = layer.forward(x)
    dx = layer.backward(g)

    p = layer.params
    mha = torch.nn.MultiheadAttention(dim, heads, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.from_numpy(np.concatenate(
            [p["weight_q"].T, p["weight_k"].T, p["weight_v"].T])))
        mha.in_proj_bias.copy_(torch.from_numpy(np.concatenate([p["bias_q"], p["bias_k"], p["bias_v"]])))
        mha.out_proj.weight.copy_(torch.from_numpy(p["weight_o"].T))
        mha.out_proj.bias.copy_(torch.from_numpy(p["bias_o"]))
    xt = torch.tensor(x, requires_grad=True)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64) if causal else None
    yt, _ = mha(xt, xt, xt, need_weights=False, attn_mask=mask, is_causal=causal)
    (yt * torch.from_numpy(g)).sum().backward()

    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-10)
    gw, gb = mha.in_proj_weight.grad.numpy(), mha.in_proj_bias.grad.numpy()
    for i, name in enumerate("qkv"):
        np.testing.assert_allclose(layer.grads[f"weight_{name}"], gw[i * dim:(i + 1) * dim].T,
                                   rtol=0, atol=1e-10)
        np.testing.assert_allclose(layer.grads[f"bias_{name}"], gb[i * dim:(i + 1) * dim], rtol=0, atol=1e-10)
    np.testing.assert_allclose(layer.grads["weight_o"], mha.out_proj.weight.grad.numpy().T, rtol=0, atol=1e-10)
    np.testing.assert_allclose(layer.grads["bias_o"], mha.out_proj.bias.grad.numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_attention_gradients_match_finite_differences(causal):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2, 3, 6))
    y = rng.normal(size=(2, 3, 6))
    net = cr.Sequential(random_attention(6, 2, causal, seed=3), dtype=np.float64)
    assert_gradcheck_ok(net, "mse", X, y)

    # dL/dx directly, with L = Σ y ∘ G
    layer = random_attention(6, 2, causal, seed=4)
    x = rng.normal(size=(2, 4, 6))
    G = rng.normal(size=x.shape)
    layer.forward(x)
    analytic = layer.backward(G)
    numeric = numeric_input_grad(lambda z: float((layer.forward(z) * G).sum()), x.copy())
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_causal_attention_does_not_look_ahead():
    """With the mask, changing step t changes no output before t."""
    layer = random_attention(4, 2, causal=True)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 6, 4))
    y = layer.forward(x)
    x2 = x.copy()
    x2[0, 4] += 1.0
    y2 = layer.forward(x2)
    np.testing.assert_array_equal(y[0, :4], y2[0, :4])
    assert not np.allclose(y[0, 4:], y2[0, 4:])


def test_attention_takes_any_sequence_length_and_keeps_float32():
    layer = cr.MultiHeadAttention(8, 2, seed=0)
    for T in (1, 3, 50):
        out = layer(np.ones((2, T, 8), np.float32))
        assert out.shape == (2, T, 8) and out.dtype == np.float32
        assert layer.backward(np.ones_like(out)).dtype == np.float32
        assert all(g.dtype == np.float32 for g in layer.grads.values())


def test_attention_bad_configs_and_inputs():
    with pytest.raises(cr.ConfigError, match=r"dim must be divisible by num_heads.*dim=10.*num_heads=3"):
        cr.MultiHeadAttention(10, 3)
    with pytest.raises(cr.ConfigError, match="MultiHeadAttention dim"):
        cr.MultiHeadAttention(0, 1)
    with pytest.raises(cr.ConfigError, match="MultiHeadAttention num_heads"):
        cr.MultiHeadAttention(4, 2.0)
    with pytest.raises(cr.ConfigError, match="MultiHeadAttention causal"):
        cr.MultiHeadAttention(4, 2, causal="yes")
    layer = cr.MultiHeadAttention(4, 2)
    with pytest.raises(cr.ShapeError, match=r"MultiHeadAttention.*\(n_samples, time, 4\).*\(3, 4\)"):
        layer(np.ones((3, 4)))
    with pytest.raises(cr.ShapeError, match=r"MultiHeadAttention.*\(n_samples, time, 4\).*\(3, 5, 6\)"):
        layer(np.ones((3, 5, 6)))
    with pytest.raises(cr.ShapeError, match="MultiHeadAttention"):
        cr.Sequential(layer).predict(np.ones((2, 5, 3)))


def test_attention_save_load_round_trip_is_bit_identical(tmp_path):
    net = cr.Sequential(cr.MultiHeadAttention(6, 3, causal=True, seed=5))
    x = np.random.default_rng(0).normal(size=(2, 4, 6)).astype(np.float32)
    net.fit(x, x, epochs=1, batch_size=2, optimizer="adam", verbose=0)
    net.save(tmp_path / "mha.npz")
    back = cr.load(tmp_path / "mha.npz")
    assert back.layers[0].causal and back.layers[0].num_heads == 3
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


def test_the_size_guard_counts_attention_dim_twice(tmp_path):
    """dim = 4096 asks for four 4096 x 4096 weights (67 million numbers); the file holds 40."""
    header, arrays = cr_io.model_parts(cr.Sequential(cr.MultiHeadAttention(4, 2)))
    header["layers"][0]["config"]["dim"] = 4096
    path = tmp_path / "mha.npz"
    cr_io.write(path, header, arrays)
    with pytest.raises(cr.FileFormatError, match=r"MultiHeadAttention.*dim.*4096.*cannot hold"):
        cr.load(path)


def test_the_size_guard_looks_into_nested_residuals(tmp_path):
    """(A recording test layer rather than attention: a guard that missed it must not allocate.)"""
    net = cr.Sequential(cr.Residual(cr.Residual(AttentionTestSized(3))))
    header, arrays = cr_io.model_parts(net)
    header["layers"][0]["config"]["layers"][0]["config"]["layers"][0]["config"]["size"] = 10**6
    path = tmp_path / "nested.npz"
    cr_io.write(path, header, arrays)
    AttentionTestSized.built.clear()
    with pytest.raises(cr.FileFormatError, match=r"AttentionTestSized.*size.*1000000.*cannot hold"):
        cr.load(path)
    assert AttentionTestSized.built == []


# --- Residual --------------------------------------------------------------------------------
def test_residual_is_x_plus_f_of_x_and_its_backward_adds_the_skip():
    dense = cr.Dense(3, 3, seed=0).astype(np.float64)
    res = cr.Residual(dense, cr.Tanh())
    x = np.random.default_rng(0).normal(size=(4, 3))
    expected = x + np.tanh(x @ dense.params["weight"] + dense.params["bias"])
    np.testing.assert_allclose(res.forward(x), expected, rtol=1e-14, atol=0)
    # f = tanh(xW + b): df/dx·g = (g ∘ (1 − f²))·Wᵀ
    g = np.random.default_rng(1).normal(size=(4, 3))
    f = np.tanh(x @ dense.params["weight"] + dense.params["bias"])
    np.testing.assert_allclose(res.backward(g), g + (g * (1 - f * f)) @ dense.params["weight"].T,
                               rtol=1e-14, atol=1e-15)


def test_residual_gradients_match_finite_differences_with_nesting():
    rng = np.random.default_rng(3)
    net = cr.Sequential(
        cr.Dense(3, 4, seed=0),
        cr.Residual(cr.Dense(4, 5, seed=1), cr.Tanh(), cr.Residual(cr.Dense(5, 5, seed=2), cr.Sigmoid()),
                    cr.Dense(5, 4, seed=3)),
        cr.Residual(cr.Identity()),
        cr.Dense(4, 2, seed=4), dtype=np.float64)
    assert "1.2.0.weight" in net.params and "1.3.bias" in net.params
    assert_gradcheck_ok(net, "mse", rng.normal(size=(3, 3)), rng.normal(size=(3, 2)))


def test_residual_params_are_the_inner_layers_arrays_and_optimizers_update_them():
    inner = cr.Dense(3, 3, seed=0)
    res = cr.Residual(inner, cr.Tanh(), cr.Dense(3, 3, seed=1))
    net = cr.Sequential(res, cr.Dense(3, 1, seed=2), dtype=np.float64)
    assert list(res.params) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert res.params["0.weight"] is inner.params["weight"] and res.grads["2.bias"] is res.layers[2].grads["bias"]
    before = inner.params["weight"].copy()
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
    for opt in ("sgd", "adam"):
        net.fit(X, y, epochs=2, batch_size=4, optimizer=opt, verbose=0)
    assert net.params["0.0.weight"] is inner.params["weight"]
    assert not np.array_equal(inner.params["weight"], before)


def test_residual_freeze_keeps_an_inner_parameter_fixed_through_save_and_load(tmp_path):
    frozen_inner = cr.Dense(3, 3, seed=1).freeze("bias")
    res = cr.Residual(cr.Dense(3, 3, seed=0), cr.Tanh(), frozen_inner)
    assert res.frozen == {"2.bias"}
    res.freeze("0.weight")
    net = cr.Sequential(res, dtype=np.float64)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 3))
    w, b = res.layers[0].params["weight"].copy(), frozen_inner.params["bias"].copy()
    net.fit(X, X, epochs=2, batch_size=4, optimizer="adam", verbose=0)
    np.testing.assert_array_equal(res.layers[0].params["weight"], w)
    np.testing.assert_array_equal(frozen_inner.params["bias"], b)
    net.save(tmp_path / "frozen.npz")
    assert cr.load(tmp_path / "frozen.npz").layers[0].frozen == {"0.weight", "2.bias"}


def test_nested_residual_save_load_round_trip_is_bit_identical(tmp_path):
    net = cr.Sequential(
        cr.Residual(cr.Dense(4, 4, seed=0), cr.Residual(cr.Dense(4, 4, seed=1), cr.Tanh())),
        cr.Dense(4, 2, seed=3))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    net.fit(X, y, epochs=2, batch_size=3, optimizer="adam", verbose=0)
    net.save(tmp_path / "nested.npz")
    back = cr.load(tmp_path / "nested.npz")
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    assert list(back.params) == list(net.params)
    # the loaded arrays are the ones the inner layers compute with
    inner = back.layers[0].layers[1].layers[0]
    assert back.params["0.1.0.weight"] is inner.params["weight"]
    back.params["0.1.0.weight"][...] = 0
    assert not np.array_equal(back.predict(X), net.predict(X))


def test_a_gradient_buffer_set_on_the_residual_is_the_one_its_inner_layer_fills():
    """(As data-parallel training moves gradients into one flat buffer.)"""
    res = cr.Residual(cr.Dense(3, 2, seed=0).astype(np.float64), cr.Dense(2, 3, seed=1).astype(np.float64))
    flat = np.zeros(6)
    res.grads["0.weight"] = flat.reshape(3, 2)
    x = np.arange(6.0).reshape(2, 3)
    res.forward(x)
    res.backward(np.ones((2, 3)))
    w1 = res.layers[1].params["weight"]
    np.testing.assert_allclose(flat.reshape(3, 2), x.T @ (np.ones((2, 3)) @ w1.T), rtol=1e-14)


def test_residual_views_survive_copy_and_astype():
    net = cr.Sequential(cr.Residual(cr.Dense(3, 3, seed=0)))
    for other in (net.copy(), net.astype(np.float64)):
        res = other.layers[0]
        assert res.params["0.weight"] is res.layers[0].params["weight"]
        assert res.params["0.weight"] is not net.layers[0].params["0.weight"]
        assert res.params["0.weight"].dtype == other.dtype


def test_residual_passes_the_training_flag_through():
    res = cr.Residual(cr.Dropout(0.5, seed=0))
    x = np.ones((50, 20))
    np.testing.assert_array_equal(res.forward(x, training=False), 2 * x)
    assert not np.array_equal(res.forward(x, training=True), 2 * x)


def test_residual_bad_layers():
    with pytest.raises(cr.ConfigError, match="at least one layer"):
        cr.Residual()
    with pytest.raises(cr.ConfigError, match="Residual layer 1 must be a Layer"):
        cr.Residual(cr.Tanh(), "relu")
    with pytest.raises(cr.ShapeError, match=r"Residual.*\(2, 3\) to \(2, 4\)"):
        cr.Residual(cr.Dense(3, 4))(np.ones((2, 3)))
    with pytest.raises(cr.ShapeError, match=r"Dense\(3, 3\) expects input with 3 features"):
        cr.Residual(cr.Dense(3, 3))(np.ones((2, 5)))


# --- GELU ---------------------------------------------------------------------------------
def test_gelu_equals_torch_forward_and_backward():
    torch = pytest.importorskip("torch")
    x = np.concatenate([np.linspace(-8, 8, 101), [-1e4, 1e4, 0.0]])
    g = np.random.default_rng(0).normal(size=x.shape)
    layer = cr.GELU()
    y = layer.forward(x)
    dx = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.GELU(approximate="tanh")(xt)
    (yt * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-10)


def test_gelu_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    net = cr.Sequential(cr.Dense(3, 4, seed=0), cr.GELU(), cr.Dense(4, 2, seed=1), dtype=np.float64)
    assert_gradcheck_ok(net, "mse", rng.normal(size=(3, 3)), rng.normal(size=(3, 2)))


def test_gelu_is_registered_and_refuses_the_erf_form():
    from chainrule.layers.base import _NAMED

    assert _NAMED["gelu"] is cr.GELU
    assert cr.GELU()(np.ones(3, np.float32)).dtype == np.float32
    with pytest.raises(cr.ConfigError, match=r"GELU approximate must be 'tanh', got 'none'.*erf"):
        cr.GELU(approximate="none")


# --- Dense on sequences ---------------------------------------------------------------------
def test_dense_acts_on_the_last_axis_of_a_sequence_like_torch_linear():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    dense = cr.Dense(4, 3, seed=0).astype(np.float64)
    dense.params["bias"][...] = rng.normal(size=3)
    x, g = rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 3))
    y = dense.forward(x)
    dx = dense.backward(g)
    lin = torch.nn.Linear(4, 3, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(dense.params["weight"].T))
        lin.bias.copy_(torch.from_numpy(dense.params["bias"]))
    xt = torch.tensor(x, requires_grad=True)
    yt = lin(xt)
    (yt * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dense.grads["weight"], lin.weight.grad.numpy().T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dense.grads["bias"], lin.bias.grad.numpy(), rtol=0, atol=1e-12)


# --- a pre-norm transformer block ----------------------------------------------------------------
def transformer_block(D, H, causal=False, seed=0):
    """The pre-norm block: x + MHA(LN(x)), then x + MLP(LN(x)), as a Sequential."""
    return cr.Sequential(
        cr.Residual(BlockTestLayerNorm(D), cr.MultiHeadAttention(D, H, causal=causal, seed=seed)),
        cr.Residual(BlockTestLayerNorm(D), cr.Dense(D, 4 * D, seed=seed + 1), cr.GELU(),
                    cr.Dense(4 * D, D, seed=seed + 2)),
        dtype=np.float64)


def randomize(net, seed=0):
    rng = np.random.default_rng(seed)
    for p in net.params.values():
        p[...] = rng.normal(0.0, 0.4, p.shape)
    return net


def test_transformer_block_gradients_match_finite_differences():
    rng = np.random.default_rng(5)
    net = randomize(transformer_block(4, 2, causal=True), seed=1)
    assert_gradcheck_ok(net, "mse", rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4)))


def test_transformer_block_equals_the_same_block_in_torch():
    torch = pytest.importorskip("torch")
    D, H, n, T = 8, 2, 3, 5
    net = randomize(transformer_block(D, H, causal=True), seed=2)
    rng = np.random.default_rng(3)
    x, g = rng.normal(size=(n, T, D)), rng.normal(size=(n, T, D))
    y = net.forward(x)
    grad_x = g
    for layer in reversed(net.layers):
        grad_x = layer.backward(grad_x)

    P = {k: torch.tensor(v, requires_grad=True) for k, v in net.params.items()}
    xt = torch.tensor(x, requires_grad=True)
    ln = torch.nn.functional.layer_norm
    mha = torch.nn.MultiheadAttention(D, H, batch_first=True, dtype=torch.float64)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64)
    h = ln(xt, (D,), P["0.0.weight"], P["0.0.bias"], eps=1e-5)
    attn, _ = torch.nn.functional.multi_head_attention_forward(
        h.transpose(0, 1), h.transpose(0, 1), h.transpose(0, 1), D, H,
        torch.cat([P["0.1.weight_q"].T, P["0.1.weight_k"].T, P["0.1.weight_v"].T]),
        torch.cat([P["0.1.bias_q"], P["0.1.bias_k"], P["0.1.bias_v"]]),
        None, None, False, 0.0, P["0.1.weight_o"].T, P["0.1.bias_o"],
        training=False, need_weights=False, attn_mask=mask, is_causal=True)
    del mha
    x1 = xt + attn.transpose(0, 1)
    h = ln(x1, (D,), P["1.0.weight"], P["1.0.bias"], eps=1e-5)
    h = torch.nn.functional.gelu(h @ P["1.1.weight"] + P["1.1.bias"], approximate="tanh")
    yt = x1 + h @ P["1.3.weight"] + P["1.3.bias"]
    (yt * torch.from_numpy(g)).sum().backward()

    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=0, atol=1e-10)
    for k, grad in net.grads.items():
        np.testing.assert_allclose(grad, P[k].grad.numpy(), rtol=0, atol=1e-10, err_msg=k)


def test_transformer_block_trains_in_float32_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 6, 8)).astype(np.float32)
    y = np.cumsum(X, axis=1) / 3  # a causal target: the running sum
    net = transformer_block(8, 2, causal=True).astype(np.float32)
    history = net.fit(X, y, epochs=15, batch_size=8, optimizer="adam", verbose=0)
    losses = history.history["loss"] if hasattr(history, "history") else history["loss"]
    assert losses[-1] < 0.7 * losses[0]
    assert all(p.dtype == np.float32 for p in net.params.values())
    net.save(tmp_path / "block.npz")
    np.testing.assert_array_equal(cr.load(tmp_path / "block.npz").predict(X), net.predict(X))




def test_a_block_with_dropout_inside_residuals_resumes_bit_for_bit(tmp_path):
    """The Adam state of the inner parameters and the inner Dropout's generator are checkpointed."""
    def build():
        return cr.Sequential(
            cr.Residual(cr.MultiHeadAttention(6, 2, causal=True, seed=0), cr.Dropout(0.3, seed=1)),
            cr.Residual(cr.Dense(6, 12, seed=2), cr.GELU(), cr.Residual(cr.Dropout(0.2, seed=3)),
                        cr.Dense(12, 6, seed=4)))

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 5, 6)).astype(np.float32)
    y = np.cumsum(X, axis=1).astype(np.float32)
    fit = dict(epochs=3, batch_size=4, optimizer="adam", seed=0, verbose=0)
    ref = build()
    ref.fit(X, y, **fit)
    path = tmp_path / "run.ckpt"
    with pytest.raises(RuntimeError, match="simulated"):
        build().fit(X, y, callbacks=[Crash(8)], checkpoint=path, checkpoint_every=3, **fit)
    net = build()
    net.fit(X, y, resume=path, checkpoint=path, checkpoint_every=3, **fit)
    for (key, p), q in zip(net.params.items(), ref.params.values(), strict=True):
        assert np.array_equal(p, q), key


def test_gradcheck_in_training_mode_replays_the_dropout_inside_a_residual():
    rng = np.random.default_rng(0)
    net = cr.Sequential(cr.Dense(3, 4, seed=0),
                        cr.Residual(cr.Dense(4, 4, seed=1), cr.Tanh(), cr.Dropout(0.5, seed=2)),
                        dtype=np.float64)
    report = cr.gradcheck(net, "mse", rng.normal(size=(5, 3)), rng.normal(size=(5, 4)),
                          check_input=True, training=True)
    assert report.ok, f"\n{report}"
