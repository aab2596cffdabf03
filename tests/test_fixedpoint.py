"""FixedPointRNN: Almeida–Pineda recurrent backpropagation, its Neumann and unrolled variants."""

import numpy as np
import pytest

import chainrule as cr

H, N_IN, N = 6, 3, 4


def normwise_error(a, b) -> float:
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale else 0.0


def contraction(seed=0, norm=0.8, size=H):
    """A recurrent weight matrix with spectral norm ``norm``."""
    W = np.random.default_rng(seed).normal(size=(size, size))
    return W * (norm / np.linalg.norm(W, 2))


def layer64(method="rbp", **kwargs):
    kwargs.setdefault("tol", 1e-14)
    kwargs.setdefault("backward_tol", 1e-14)
    return cr.FixedPointRNN(N_IN, H, method=method, weight=contraction(), seed=1, dtype=np.float64, **kwargs)


def inputs(seed=2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, N_IN)), rng.normal(size=(N, H))


def test_forward_reaches_the_fixed_point():
    u, _ = inputs()
    layer = layer64()
    x = layer.forward(u)
    W, U, b = (layer.params[k] for k in ("weight", "weight_in", "bias"))
    np.testing.assert_allclose(x, np.tanh(x @ W + u @ U + b), rtol=0, atol=1e-14)
    assert 10 < layer.forward_iterations < 1000


def test_relaxation_adjoint_equals_the_direct_linear_solve():
    u, g = inputs()
    layer = layer64()
    x = layer.forward(u)
    layer.backward(g)
    W = layer.params["weight"]
    for i in range(N):
        J = np.diag(1 - x[i] ** 2) @ W.T            # J_jk = ∂x_j/∂x_k for one step at x*
        z = np.linalg.solve(np.eye(H) - J.T, g[i])  # (I − Jᵀ)⁻¹ g
        assert normwise_error(layer.adjoint[i], z) <= 1e-12


@pytest.mark.parametrize("n_out", [None, 4])
def test_rbp_gradient_matches_central_differences(n_out):
    u, _ = inputs()
    net = cr.Sequential(layer64(n_out=n_out), dtype=np.float64)
    y = np.random.default_rng(3).normal(size=(N, n_out or H))
    report = cr.gradcheck(net, cr.MSE(), u, y, check_input=True)
    worst = max(normwise_error(c.analytic, c.numeric) for c in report.checks)
    assert worst <= 1e-7, str(report)


def truncated_bptt_reference(W, U, b, u, x_star, g, K):
    """BPTT through K steps x_k = tanh(x_{k-1}W + uU + b) started at (and staying at) x*."""
    trajectory = [x_star]
    for _ in range(K):
        trajectory.append(np.tanh(trajectory[-1] @ W + u @ U + b))
    dW, da, dx = np.zeros_like(W), np.zeros_like(x_star), g
    for k in range(K, 0, -1):
        delta = dx * (1 - trajectory[k] ** 2)
        dW += trajectory[k - 1].T @ delta
        da += delta
        dx = delta @ W.T
    return {"weight": dW, "weight_in": u.T @ da, "bias": da.sum(axis=0)}


@pytest.mark.parametrize("K", [1, 2, 5, 12])
def test_neumann_with_K_terms_equals_bptt_over_the_last_K_steps(K):
    u, g = inputs()
    layer = layer64("neumann", neumann_steps=K)
    x = layer.forward(u)
    layer.backward(g)
    ref = truncated_bptt_reference(*(layer.params[k] for k in ("weight", "weight_in", "bias")), u, x, g, K)
    for name, expected in ref.items():
        assert normwise_error(layer.grads[name], expected) <= 1e-10, name


def test_unrolled_bptt_over_100_steps_matches_rbp():
    u, g = inputs()
    rbp, bptt = layer64("rbp"), layer64("bptt", unroll_steps=100)
    rbp.forward(u)
    bptt.forward(u)
    grad_in = (rbp.backward(g), bptt.backward(g))
    assert bptt.forward_iterations == 100 and bptt.backward_iterations == 100
    for name in rbp.grads:
        assert normwise_error(bptt.grads[name], rbp.grads[name]) <= 1e-8, name
    assert normwise_error(*grad_in) <= 1e-8
    assert bptt.hidden_grad_norms.shape == (100,)
    assert bptt.hidden_grad_norms[-1] == pytest.approx(np.linalg.norm(g))


def test_neumann_series_converges_to_rbp():
    u, g = inputs()
    rbp, neumann = layer64("rbp"), layer64("neumann", neumann_steps=200)
    for layer in (rbp, neumann):
        layer.forward(u)
        layer.backward(g)
    assert normwise_error(neumann.grads["weight"], rbp.grads["weight"]) <= 1e-10


def test_spectral_radius_above_one_raises_in_the_backward_pass():
    W = contraction(norm=1.0) * 1.5 / max(abs(np.linalg.eigvals(contraction(norm=1.0))))
    layer = cr.FixedPointRNN(N_IN, H, weight=W, weight_in=np.zeros((N_IN, H)), bias=np.zeros(H),
                             backward_max_iter=500, dtype=np.float64)
    x = layer.forward(np.ones((2, N_IN)))          # x* = 0 is a fixed point, J = Wᵀ there
    assert np.all(x == 0)
    with pytest.raises(cr.ChainruleError, match=r"did not converge: after \d+ iterations") as info:
        layer.backward(np.ones((2, H)))
    assert isinstance(info.value, cr.ConvergenceError)
    assert "spectral radius" in str(info.value)


def test_a_forward_relaxation_that_oscillates_raises_with_the_iteration_count():
    layer = cr.FixedPointRNN(1, 1, weight=[[-3.0]], weight_in=[[1.0]], bias=[0.0], max_iter=50,
                             dtype=np.float64)
    with pytest.raises(cr.ConvergenceError, match="did not reach a fixed point in 50 iterations"):
        layer.forward(np.full((1, 1), 0.1))


def test_float32_defaults_train_and_keep_float32():
    rng = np.random.default_rng(0)
    net = cr.Sequential(cr.FixedPointRNN(3, 8, n_out=2, seed=0))
    X, y = rng.normal(size=(32, 3)), rng.normal(size=(32, 2)) * 0.5
    hist = net.fit(X, y, loss="mse", optimizer=cr.Adam(1e-2), epochs=30, batch_size=8, seed=0, verbose=0)
    assert net.predict(X).dtype == np.float32
    assert hist.history["loss"][-1] < 0.8 * hist.history["loss"][0]


def test_save_and_load_keep_the_method_and_the_outputs(tmp_path):
    u, _ = inputs()
    net = cr.Sequential(cr.FixedPointRNN(N_IN, H, n_out=2, method="neumann", neumann_steps=7, seed=3))
    net.save(tmp_path / "fp.npz")
    loaded = cr.load(tmp_path / "fp.npz")
    np.testing.assert_array_equal(loaded.predict(u), net.predict(u))
    assert loaded.layers[0].get_config() == net.layers[0].get_config()


def test_bad_arguments_and_inputs_are_refused():
    with pytest.raises(cr.ConfigError, match="method must be one of"):
        cr.FixedPointRNN(2, 3, method="cg")
    with pytest.raises(cr.ConfigError, match="n_out must be <= n_hidden"):
        cr.FixedPointRNN(2, 3, n_out=4)
    with pytest.raises(cr.ShapeError, match=r"expects input of shape \(n_samples, 2\), got array of shape \(5, 3\)"):
        cr.FixedPointRNN(2, 3).forward(np.zeros((5, 3)))
