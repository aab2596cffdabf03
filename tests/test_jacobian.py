"""Backpropagation as a product of Jacobians ("a few matrix multiplications per level").

For one sample x (a row), a network computes a^l = f_l(a^{l-1}) and its backward pass sends
a row vector g = dL/da^L back as

    dL/dx = g · J_L · J_{L-1} · ... · J_1,        J_l = da^l / da^{l-1}

Here every J_l is built in the test from its closed form (Dense: Wᵀ, sigmoid:
diag(s(1 − s)), softmax: diag(a) − a aᵀ, ...), never from the layer's backward, and the
product is compared with ``net.backward(g)``. The weight gradient of each Dense is the outer
product dL/dW^l = (a^{l-1})ᵀ δ^l with δ^l = g · J_L · ... · J_{l+1} (Wikipedia, Backpropagation,
matrix form).
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr

ALPHA_LEAKY = 0.1
ALPHA_ELU = 0.8


# --- closed forms, written independently of chainrule -----------------------------------------
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def forward_closed_form(layer: cr.Layer, a: np.ndarray) -> np.ndarray:
    """The layer's function on one row vector, from its textbook definition."""
    if isinstance(layer, cr.Dense):
        W = layer.params["weight"]
        b = layer.params.get("bias", np.zeros(W.shape[1]))
        return W.T @ a + b
    if isinstance(layer, cr.Sigmoid):
        return sigmoid(a)
    if isinstance(layer, cr.Tanh):
        return (np.exp(a) - np.exp(-a)) / (np.exp(a) + np.exp(-a))
    if isinstance(layer, cr.ReLU):
        return np.where(a > 0, a, 0.0)
    if isinstance(layer, cr.LeakyReLU):
        return np.where(a > 0, a, layer.alpha * a)
    if isinstance(layer, cr.ELU):
        return np.where(a > 0, a, layer.alpha * (np.exp(a) - 1))
    if isinstance(layer, cr.Softplus):
        return np.log(1 + np.exp(a))
    if isinstance(layer, cr.Softmax):
        e = np.exp(a)
        return e / e.sum()
    if isinstance(layer, cr.Identity):
        return a
    raise TypeError(layer)


def jacobian_closed_form(layer: cr.Layer, a_in: np.ndarray) -> np.ndarray:
    """J = d layer(a) / da at one row vector a_in, shape (n_out, n_in)."""
    if isinstance(layer, cr.Dense):
        return layer.params["weight"].T.copy()
    if isinstance(layer, cr.Sigmoid):
        s = sigmoid(a_in)
        return np.diag(s * (1 - s))
    if isinstance(layer, cr.Tanh):
        return np.diag(1 - np.tanh(a_in) ** 2)
    if isinstance(layer, cr.ReLU):
        return np.diag((a_in > 0).astype(float))
    if isinstance(layer, cr.LeakyReLU):
        return np.diag(np.where(a_in > 0, 1.0, layer.alpha))
    if isinstance(layer, cr.ELU):
        return np.diag(np.where(a_in > 0, 1.0, layer.alpha * np.exp(a_in)))
    if isinstance(layer, cr.Softplus):
        return np.diag(sigmoid(a_in))
    if isinstance(layer, cr.Softmax):
        e = np.exp(a_in - a_in.max())
        a = e / e.sum()
        return np.diag(a) - np.outer(a, a)
    if isinstance(layer, cr.Identity):
        return np.eye(a_in.size)
    raise TypeError(layer)


def numeric_jacobian(f, a: np.ndarray, h: float = 1e-6) -> np.ndarray:
    cols = []
    for j in range(a.size):
        e = np.zeros_like(a)
        e[j] = h
        cols.append((f(a + e) - f(a - e)) / (2 * h))
    return np.stack(cols, axis=1)


# --- the network ----------------------------------------------------------------------------
def small_network(seed: int = 0) -> cr.Sequential:
    rng = np.random.default_rng(seed)

    def dense(n_in, n_out, use_bias=True):
        return cr.Dense(n_in, n_out, weight=rng.normal(0, 0.9, size=(n_in, n_out)),
                        bias=rng.normal(0, 0.5, size=n_out) if use_bias else None, use_bias=use_bias)

    return cr.Sequential(
        dense(3, 5), cr.Sigmoid(),
        dense(5, 4), cr.Tanh(),
        dense(4, 4), cr.LeakyReLU(ALPHA_LEAKY),
        dense(4, 4, use_bias=False), cr.ELU(ALPHA_ELU),
        dense(4, 5), cr.ReLU(),
        dense(5, 4), cr.Softplus(),
        dense(4, 3), cr.Identity(), cr.Softmax(),
        dtype=np.float64,
    )


def closed_form_activations(net, x):
    """a^0 = x, a^l = f_l(a^{l-1}), computed from the closed forms."""
    acts = [x]
    for layer in net.layers:
        acts.append(forward_closed_form(layer, acts[-1]))
    return acts


def sample_away_from_kinks(net, rng) -> np.ndarray:
    for _ in range(1000):
        x = rng.normal(size=3)
        acts = closed_form_activations(net, x)
        kinks = [acts[i] for i, layer in enumerate(net.layers)
                 if isinstance(layer, (cr.ReLU, cr.LeakyReLU, cr.ELU))]
        positive = [(a > 0).any() for a in kinks]
        if all((np.abs(a) > 0.05).all() for a in kinks) and all(positive):
            return x
    raise AssertionError("no sample away from the kinks")  # pragma: no cover


@pytest.fixture
def net_and_sample():
    net = small_network(0)
    x = sample_away_from_kinks(net, np.random.default_rng(1))
    return net, x


def test_forward_matches_the_closed_forms(net_and_sample):
    net, x = net_and_sample
    acts = closed_form_activations(net, x)
    np.testing.assert_allclose(net.forward(x[None, :])[0], acts[-1], rtol=1e-13, atol=1e-15)


def test_closed_form_jacobians_match_finite_differences(net_and_sample):
    """The test's own Jacobians are right (checked on its own closed-form forward)."""
    net, x = net_and_sample
    acts = closed_form_activations(net, x)
    for layer, a_in in zip(net.layers, acts[:-1], strict=True):
        J = jacobian_closed_form(layer, a_in)
        J_num = numeric_jacobian(lambda a, layer=layer: forward_closed_form(layer, a), a_in)
        np.testing.assert_allclose(J, J_num, rtol=1e-6, atol=1e-8, err_msg=repr(layer))


@pytest.mark.parametrize("g_seed", [0, 1, 2])
def test_backward_equals_the_product_of_the_layer_jacobians(net_and_sample, g_seed):
    net, x = net_and_sample
    acts = closed_form_activations(net, x)
    jacobians = [jacobian_closed_form(layer, a) for layer, a in zip(net.layers, acts[:-1], strict=True)]
    g = np.random.default_rng(g_seed).normal(size=acts[-1].size)

    product = g.copy()
    for J in reversed(jacobians):  # g · J_L · J_{L-1} · ... · J_1
        product = product @ J

    net.forward(x[None, :])
    grad_x = net.backward(g[None, :])
    assert grad_x.shape == (1, x.size)
    np.testing.assert_allclose(grad_x[0], product, rtol=1e-12, atol=1e-14)


def test_backward_of_each_prefix_is_the_partial_product(net_and_sample):
    """Level by level: what layer l's backward hands down is g · J_L · ... · J_l."""
    net, x = net_and_sample
    acts = closed_form_activations(net, x)
    g = np.random.default_rng(3).normal(size=acts[-1].size)
    net.forward(x[None, :])
    grad, expected = g[None, :], g.copy()
    for layer, a_in in zip(reversed(net.layers), reversed(acts[:-1]), strict=True):
        grad = layer.backward(grad)
        expected = expected @ jacobian_closed_form(layer, a_in)
        np.testing.assert_allclose(grad[0], expected, rtol=1e-12, atol=1e-14, err_msg=repr(layer))


def test_dense_weight_gradient_is_the_outer_product_of_input_and_delta(net_and_sample):
    net, x = net_and_sample
    acts = closed_form_activations(net, x)
    jacobians = [jacobian_closed_form(layer, a) for layer, a in zip(net.layers, acts[:-1], strict=True)]
    g = np.random.default_rng(4).normal(size=acts[-1].size)
    net.forward(x[None, :])
    net.backward(g[None, :])

    n_dense = 0
    for l, layer in enumerate(net.layers):
        if not isinstance(layer, cr.Dense):
            continue
        n_dense += 1
        delta = g.copy()  # δ^l = dL/dz^l = g · J_L · ... · J_{l+1}
        for J in reversed(jacobians[l + 1:]):
            delta = delta @ J
        np.testing.assert_allclose(layer.grads["weight"], np.outer(acts[l], delta),
                                   rtol=1e-12, atol=1e-14, err_msg=f"layer {l}")
        if layer.use_bias:
            np.testing.assert_allclose(layer.grads["bias"], delta, rtol=1e-12, atol=1e-14)
    assert n_dense == 7


def test_weight_gradient_over_a_batch_is_the_sum_of_per_sample_outer_products():
    """dL/dW = (A^{l-1})ᵀ Δ^l: the matrix form sums the samples' outer products."""
    net = small_network(5)
    rng = np.random.default_rng(6)
    xs = np.stack([sample_away_from_kinks(net, rng) for _ in range(4)])
    G = rng.normal(size=(4, 3))
    per_sample = {l: np.zeros_like(layer.params["weight"])
                  for l, layer in enumerate(net.layers) if isinstance(layer, cr.Dense)}
    for x, g in zip(xs, G, strict=True):
        acts = closed_form_activations(net, x)
        jacobians = [jacobian_closed_form(layer, a) for layer, a in zip(net.layers, acts[:-1], strict=True)]
        for l in per_sample:
            delta = g.copy()
            for J in reversed(jacobians[l + 1:]):
                delta = delta @ J
            per_sample[l] += np.outer(acts[l], delta)
    net.forward(xs)
    net.backward(G)
    for l, expected in per_sample.items():
        np.testing.assert_allclose(net.layers[l].grads["weight"], expected, rtol=1e-12, atol=1e-14)
