"""Layer kernels (chainrule/kernels/activations.py, recurrent.py, attention.py, conv.py, pooling.py, norm.py)
against the NumPy path.

The NumPy code of each layer is checked against finite differences and torch in the layer tests;
here the path with numba active must follow it (1e-12 relative in float64, 1e-6 in float32) on
odd shapes and non-contiguous arrays, and the ``kernel_calls`` fixture shows that the compiled
kernels ran. Skipped without numba.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import kernels
from chainrule.layers import conv as conv_module

pytest.importorskip("numba")

TOL = {np.float64: 1e-12, np.float32: 1e-6}


@pytest.fixture(autouse=True)
def _restore_settings():
    saved = dict(kernels._settings)
    yield
    kernels._settings.update(saved)


@pytest.fixture
def kernel_calls(monkeypatch):
    """The (module, kernel) names the code under test asked to run compiled (also on the small
    arrays ReLU, Sigmoid and Tanh leave to NumPy by default)."""
    monkeypatch.setattr(kernels, "ACTIVATION_MIN_SIZE", 0)
    calls, real = [], kernels.compiled
    monkeypatch.setattr(kernels, "compiled", lambda module, name: calls.append((module, name)) or real(module, name))
    return calls


def assert_close(actual, expected, dtype, what, scale=None):
    """Relative to each entry, with a floor at the tolerance times the array's largest entry (or
    ``scale``, for an array that is zero in exact arithmetic and holds only rounding)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    tol = TOL[dtype]
    if scale is None:
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=what)


# --- activations ---------------------------------------------------------------------------------
# layer -> the kernels its forward and backward run with numba active
ACTIVATIONS = {
    "Sigmoid": (cr.Sigmoid, ["sigmoid_backward"]),
    "Tanh": (cr.Tanh, ["tanh_backward"]),
    "ReLU": (cr.ReLU, ["relu_forward", "relu_backward"]),
    "LeakyReLU": (lambda: cr.LeakyReLU(alpha=0.2), ["leaky_relu_forward", "leaky_relu_backward"]),
    "ELU": (lambda: cr.ELU(alpha=0.7), ["elu_backward"]),
    "GELU": (cr.GELU, ["gelu_inner", "gelu_outer", "gelu_backward"]),
}

# (input, dL/da) layouts: odd sizes, 3-D, a transposed input, a sliced input, a transposed gradient
LAYOUTS = {
    "odd-2d": lambda x, g: (x[:7, :13].copy(), g[:7, :13].copy()),
    "3d": lambda x, g: (x.reshape(-1)[:105].reshape(3, 5, 7).copy(), g.reshape(-1)[:105].reshape(3, 5, 7).copy()),
    "transposed-input": lambda x, g: (x[:13, :7].T, g[:7, :13].copy()),
    "sliced-input": lambda x, g: (x[:, ::3], g[:, :9].copy()),
    "transposed-grad": lambda x, g: (x[:7, :13].copy(), g[:13, :7].T),
    "one-row": lambda x, g: (x[:1, :5].copy(), g[:1, :5].copy()),
}


def activation_pass(backend, make, x, grad):
    kernels.use(backend)
    layer = make()
    out = layer.forward(x, training=True)
    return out.copy(), layer.backward(grad)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_kernel_follows_numpy(name, dtype, layout, kernel_calls):
    make, names = ACTIVATIONS[name]
    rng = np.random.default_rng(7)
    x, grad = LAYOUTS[layout]((3 * rng.normal(size=(20, 26))).astype(dtype), rng.normal(size=(20, 26)).astype(dtype))
    x.flat[::5] = 0  # the kinks of ReLU, LeakyReLU, ELU
    out, delta = activation_pass("numpy", make, x, grad)
    assert kernel_calls == []
    fast_out, fast_delta = activation_pass("numba", make, x, grad)
    assert kernel_calls == [("activations", kernel) for kernel in names]
    assert_close(fast_out, out, dtype, f"{name} forward")
    assert_close(fast_delta, delta, dtype, f"{name} backward")


def test_activation_kernels_leave_other_dtypes_to_numpy(kernel_calls):
    kernels.use("numba")
    layer = cr.ReLU()
    out = layer.forward(np.array([[-1.0, 2.0]], np.float16))
    delta = layer.backward(np.array([[3.0, 4.0]], np.float32))  # not the output's dtype
    assert kernel_calls == []
    np.testing.assert_array_equal(out, [[0, 2]])
    np.testing.assert_array_equal(delta, [[0, 4]])


@pytest.mark.parametrize("layer", [cr.ReLU, cr.Sigmoid, cr.Tanh])
def test_small_arrays_of_single_ufunc_activations_stay_numpy(layer, kernel_calls, monkeypatch):
    monkeypatch.setattr(kernels, "ACTIVATION_MIN_SIZE", 12)
    kernels.use("numba")
    small, large = layer(), layer()
    small.backward(small.forward(np.ones((1, 11)), True))
    assert kernel_calls == []
    large.backward(large.forward(np.ones((3, 4)), True))
    assert kernel_calls and all(module == "activations" for module, _ in kernel_calls)


# --- LSTM and GRU --------------------------------------------------------------------------------
RECURRENT = {
    "LSTM": (cr.LSTM, ["lstm_cell", "lstm_backward_loop"]),
    "GRU": (cr.GRU, ["gru_preactivations", "gru_candidate", "gru_state", "gru_backward_loop"]),
}
#: in float32 the whole forward recurrence is one compiled call (kernels/tanh.py's tanh)
FLOAT32_RECURRENT = {"LSTM": ["lstm_forward", "lstm_backward_loop"], "GRU": ["gru_forward", "gru_backward_loop"]}


def sequence_pass(backend, make, x, grad, state):
    """Output, every parameter gradient, dL/dx and dL/d(initial state) of one forward and backward."""
    kernels.use(backend)
    layer = make()
    out = layer.forward(x, training=True, initial_state=state)
    dx = layer.backward(grad)
    return out.copy(), {k: v.copy() for k, v in layer.grads.items()}, dx, layer.initial_state_grad


#: (samples, steps, inputs, units): odd sizes, and one sample over one step with one unit
SEQUENCE_SHAPES = {"odd": (3, 9, 5, 7), "single": (1, 1, 2, 1)}


@pytest.mark.parametrize("shape", list(SEQUENCE_SHAPES))
@pytest.mark.parametrize("sequences", [True, False], ids=["every-h", "last-h"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(RECURRENT))
def test_recurrent_kernels_follow_numpy_over_a_sequence(name, dtype, sequences, shape, kernel_calls):
    cls, names = RECURRENT[name]
    if dtype == np.float32:
        names = FLOAT32_RECURRENT.get(name, names)
    n, T, n_in, H = SEQUENCE_SHAPES[shape]
    rng = np.random.default_rng(11)
    x = rng.normal(size=(T, n, n_in)).astype(dtype).transpose(1, 0, 2)  # batch-first view, not contiguous
    grad = rng.normal(size=(n, T, H) if sequences else (n, H)).astype(dtype)
    state = tuple(rng.normal(size=(n, H)).astype(dtype) for _ in cls._state_names)

    def make():
        return cls(n_in, H, return_sequences=sequences, seed=3, dtype=dtype)

    out, grads, dx, state_grad = sequence_pass("numpy", make, x, grad, state)
    assert kernel_calls == []
    fast_out, fast_grads, fast_dx, fast_state_grad = sequence_pass("numba", make, x, grad, state)
    called = [kernel for _, kernel in kernel_calls]
    assert set(called) == set(names) and kernel_calls[0][0] == "recurrent"
    assert_close(fast_out, out, dtype, f"{name} output")
    for key in grads:
        assert_close(fast_grads[key], grads[key], dtype, f"{name} dL/d{key}")
    assert_close(fast_dx, dx, dtype, f"{name} dL/dx")
    # measured against the size of both state gradients: in the one-unit LSTM case dL/dh_0 = δ_1·W_hhᵀ
    # is one entry, −7.8e-4, the sum of four gate terms up to 1.4e-2 that nearly cancel, so the
    # 1e-7-relative rounding of the terms (kernels/tanh.py's tanh against NumPy's) is 6e-6 of it
    scale = max(float(np.max(np.abs(slow))) for slow in state_grad)
    for fast, slow in zip(fast_state_grad, state_grad, strict=True):
        assert_close(fast, slow, dtype, f"{name} dL/d(initial state)", scale)


@pytest.mark.parametrize("shape", list(SEQUENCE_SHAPES))
@pytest.mark.parametrize("sequences", [True, False], ids=["every-h", "last-h"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rnn_recurrence_kernels_follow_numpy(dtype, activation, sequences, shape, kernel_calls):
    """The RNN's compiled recurrence (every step in one call) against its NumPy loop. In float64
    the tanh forward stays NumPy's (kernels/tanh.py is float32 only); the backward always runs."""
    from chainrule.kernels import blas

    if blas.gemm(dtype) is None:
        pytest.skip("NumPy's BLAS gemm is not reachable from compiled code here")
    n, T, n_in, H = SEQUENCE_SHAPES[shape]
    rng = np.random.default_rng(12)
    x = rng.normal(size=(T, n, n_in)).astype(dtype).transpose(1, 0, 2)
    grad = rng.normal(size=(n, T, H) if sequences else (n, H)).astype(dtype)
    state = (rng.normal(size=(1, H)).astype(dtype),)  # broadcast to the batch: not (n, H) C-ordered

    def make():
        return cr.RNN(n_in, H, activation=activation, return_sequences=sequences, seed=3, dtype=dtype)

    out, grads, dx, state_grad = sequence_pass("numpy", make, x, grad, state)
    assert kernel_calls == []
    fast_out, fast_grads, fast_dx, fast_state_grad = sequence_pass("numba", make, x, grad, state)
    forward_compiled = activation == "relu" or dtype == np.float32
    assert kernel_calls == [("recurrent", "rnn_forward")] * forward_compiled + [("recurrent", "rnn_backward")]
    assert_close(fast_out, out, dtype, "RNN output")
    for key in grads:
        assert_close(fast_grads[key], grads[key], dtype, f"RNN dL/d{key}")
    assert_close(fast_dx, dx, dtype, "RNN dL/dx")
    assert_close(fast_state_grad[0], state_grad[0], dtype, "RNN dL/dh_0")


def test_float32_tanh_kernel_against_float64_tanh():
    """kernels/tanh.py against NumPy's float64 tanh, the exact value to float32's precision: within
    6 units in the last place on 200,001 points of [-12, 12] and 2,000 tiny ones, odd to the bit,
    never outside [-1, 1], NaN kept."""
    tanh_array = kernels.compiled("tanh", "tanh_array")
    x = np.concatenate([np.linspace(-12, 12, 200_001), np.geomspace(1e-38, 1e-3, 1000),
                        -np.geomspace(1e-38, 1e-3, 1000)]).astype(np.float32)
    out = np.empty_like(x)
    tanh_array(x, out)
    exact = np.tanh(x.astype(np.float64))
    ulps = np.abs(out - exact) / np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert ulps.max() <= 6, f"largest error {ulps.max():.1f} ulp at x = {x[np.argmax(ulps)]}"
    assert np.abs(out).max() <= 1
    mirror = np.empty_like(x)
    tanh_array(-x, mirror)
    np.testing.assert_array_equal(mirror, -out)
    special = np.array([np.nan, np.inf, -np.inf, 0.0, 30.0], np.float32)
    result = np.empty_like(special)
    tanh_array(special, result)
    assert np.isnan(result[0]) and result[3] == 0
    np.testing.assert_allclose(result[[1, 2, 4]], [1, -1, 1], rtol=2.5e-7)


# --- attention ------------------------------------------------------------------------------------
def attention_pass(backend, causal, dtype, x, grad, training):
    kernels.use(backend)
    layer = cr.MultiHeadAttention(x.shape[-1], 3, causal=causal, seed=4).astype(dtype)
    out = layer.forward(x, training=training)
    dx = layer.backward(grad)
    return out.copy(), {k: v.copy() for k, v in layer.grads.items()}, dx


@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_attention_softmax_kernels_follow_numpy(dtype, causal, training, kernel_calls):
    """Odd sizes (5 samples, 7 steps, 3 heads of 3) and a non-contiguous input."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(7, 5, 9)).astype(dtype).transpose(1, 0, 2)
    grad = rng.normal(size=(5, 7, 9)).astype(dtype)
    out, grads, dx = attention_pass("numpy", causal, dtype, x, grad, training)
    assert kernel_calls == []
    fast_out, fast_grads, fast_dx = attention_pass("numba", causal, dtype, x, grad, training)
    assert [name for _, name in kernel_calls] == ["softmax_shift", "softmax_normalize", "softmax_backward"]
    assert_close(fast_out, out, dtype, "attention output")
    for key in grads:
        # dL/db_k is 0 in exact arithmetic (a softmax does not change when every score of a row
        # moves by the same amount): only rounding is left, measured against dL/dW_k's size
        scale = float(np.max(np.abs(grads["weight_k"]))) if key == "bias_k" else None
        assert_close(fast_grads[key], grads[key], dtype, f"attention dL/d{key}", scale)
    assert_close(fast_dx, dx, dtype, "attention dL/dx")


# --- convolution ----------------------------------------------------------------------------------
def conv_pass(backend, make, x, grad):
    kernels.use(backend)
    layer = make()
    layer.forward(x, training=True)
    dx = layer.backward(grad)
    return dx, {k: v.copy() for k, v in layer.grads.items()}


CONV_CASES = [
    # 3·2·3·3 = 54 weights: per-sample products, their dL/dcols layout
    (lambda dt: cr.Conv2D(2, 3, 3, padding=1, seed=0).astype(dt), (5, 2, 7, 6)),
    # 16·6·5·5 = 2,400 weights: one product over the batch (LeNet's second convolution, smaller images)
    (lambda dt: cr.Conv2D(6, 16, 5, seed=0).astype(dt), (3, 6, 9, 8)),
    (lambda dt: cr.Conv2D(4, 64, (2, 3), dilation=(2, 1), padding=(1, 0), seed=0).astype(dt), (3, 4, 8, 9)),
    (lambda dt: cr.Conv1D(3, 5, 4, padding="same", seed=0).astype(dt), (4, 3, 11)),
    (lambda dt: cr.Conv2D(3, 2, 3, use_bias=False, seed=0).astype(dt), (1, 3, 3, 3)),
]
CONV_IDS = ["per-sample", "one-product", "dilated-padded", "conv1d", "no-bias-one-pixel"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("make, shape", CONV_CASES, ids=CONV_IDS)
def test_col2im_kernel_gives_the_numpy_adds_to_the_bit(make, shape, dtype, kernel_calls, monkeypatch):
    """Where NumPy's BLAS is not found (the column path with numba active), the col2im kernel
    makes NumPy's adds in NumPy's order: dL/dx is the same to the bit."""
    monkeypatch.setattr(conv_module.blas, "gemm", lambda dtype: None)
    rng = np.random.default_rng(2)
    x = rng.normal(size=shape).astype(dtype)
    grad = rng.normal(size=(shape[0], *make(dtype).output_shape(shape[1:]))).astype(dtype)
    dx, grads = conv_pass("numpy", lambda: make(dtype), x, grad)
    assert kernel_calls == []
    fast_dx, fast_grads = conv_pass("numba", lambda: make(dtype), x, grad)
    assert ("conv", "col2im") in kernel_calls
    np.testing.assert_array_equal(fast_dx, dx)
    for key in grads:
        np.testing.assert_array_equal(fast_grads[key], grads[key])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("make, shape", CONV_CASES, ids=CONV_IDS)
def test_sample_by_sample_convolution_follows_numpy(make, shape, dtype, kernel_calls):
    """The compiled stride-1 path (conv_forward, conv_backward: the columns sample by sample,
    NumPy's BLAS) gives the NumPy column path's output, dL/dx, dL/dW and dL/db, in training and
    evaluation, and as a network's first layer (no dL/dx)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape).astype(dtype)
    grad = rng.normal(size=(shape[0], *make(dtype).output_shape(shape[1:]))).astype(dtype)

    def run(backend):
        kernels.use(backend)
        layer = make(dtype)
        evaluated = layer.forward(x)
        out = layer.forward(x, training=True)
        dx = layer.backward(grad)
        grads = {k: v.copy() for k, v in layer.grads.items()}
        layer.forward(x, training=True)
        layer.grads["weight"][...] = np.nan
        layer.backward_params(grad)
        return evaluated, out, dx, grads, {k: v.copy() for k, v in layer.grads.items()}

    expected = run("numpy")
    assert kernel_calls == []
    actual = run("numba")
    assert ("conv", "conv_forward") in kernel_calls and ("conv", "conv_backward") in kernel_calls
    for name, got, want in zip(["evaluation output", "output", "dL/dx"], actual[:3], expected[:3], strict=True):
        assert_close(got, want, dtype, name)
    for got, want in zip(actual[3:], expected[3:], strict=True):
        for key in want:
            assert_close(got[key], want[key], dtype, f"dL/d{key}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sample_by_sample_convolution_on_non_contiguous_input(dtype, kernel_calls):
    """A transposed image batch and a strided δ take the compiled path and give the NumPy path's
    numbers."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 2, 9, 7)).astype(dtype).transpose(0, 1, 3, 2)  # (3, 2, 7, 9), not contiguous
    grad = rng.normal(size=(3, 4, 5, 14)).astype(dtype)[:, :, :, ::2]        # (3, 4, 5, 7), strided

    def run(backend):
        kernels.use(backend)
        layer = cr.Conv2D(2, 4, 3, seed=0).astype(dtype)
        out = layer.forward(x, training=True)
        return out, layer.backward(grad), {k: v.copy() for k, v in layer.grads.items()}

    expected = run("numpy")
    actual = run("numba")
    assert ("conv", "conv_forward") in kernel_calls and ("conv", "conv_backward") in kernel_calls
    assert_close(actual[0], expected[0], dtype, "output")
    assert_close(actual[1], expected[1], dtype, "dL/dx")
    for key in expected[2]:
        assert_close(actual[2][key], expected[2][key], dtype, f"dL/d{key}")


def test_strided_convolution_stays_numpy(kernel_calls):
    layer = cr.Conv2D(2, 3, 3, stride=2, seed=0)
    x = np.random.default_rng(0).normal(size=(2, 2, 7, 7)).astype(np.float32)
    kernels.use("numba")
    layer.backward(np.ones_like(layer.forward(x, training=True)))
    assert not [call for call in kernel_calls if call[0] == "conv"]


# --- max pooling ---------------------------------------------------------------------------------
def pool_pass(backend, layer, x, grad):
    kernels.use(backend)
    out = layer.forward(x, training=True)
    return out.copy(), layer.backward(grad)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("args, shape", [
    ((2,), (3, 4, 8, 10)),           # windows that tile the image
    ((2,), (2, 3, 9, 7)),            # a row and a column past the last window
    ((2, 2, 1), (2, 2, 7, 8)),       # padded
    ((2, 2, (0, 1)), (1, 2, 5, 5)),
    ((2,), (1, 1, 2, 2)),
], ids=["tiled", "odd", "padded", "padded-columns", "one-window"])
def test_max_pool_2x2_kernels_give_the_numpy_path_to_the_bit(args, shape, dtype, kernel_calls):
    """Output and dL/dx equal to the bit, ties (zeros after a ReLU) and a NaN in a window included:
    the first maximum in window order takes the gradient, the last offset where the maximum is NaN."""
    rng = np.random.default_rng(4)
    x = np.maximum(rng.normal(size=shape), 0).astype(dtype)  # many windows of equal zeros
    x.reshape(-1)[3] = np.nan
    grad = rng.normal(size=(shape[0], *cr.MaxPool2D(*args).output_shape(shape[1:]))).astype(dtype)
    out, dx = pool_pass("numpy", cr.MaxPool2D(*args), x, grad)
    assert kernel_calls == []
    fast_out, fast_dx = pool_pass("numba", cr.MaxPool2D(*args), x, grad)
    assert [name for _, name in kernel_calls] == ["max_pool_2x2", "max_pool_2x2_backward"]
    np.testing.assert_array_equal(fast_out, out)
    np.testing.assert_array_equal(fast_dx, dx)
    assert np.isnan(fast_out).sum() == 1


def test_max_pool_2x2_kernels_on_non_contiguous_input(kernel_calls):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 3, 9, 8)).astype(np.float32).transpose(0, 1, 3, 2)  # not contiguous
    grad = rng.normal(size=(2, 3, 4, 8)).astype(np.float32)[:, :, :, ::2]       # (2, 3, 4, 4), strided
    out, dx = pool_pass("numpy", cr.MaxPool2D(2), x, grad)
    fast_out, fast_dx = pool_pass("numba", cr.MaxPool2D(2), x, grad)
    assert [name for _, name in kernel_calls] == ["max_pool_2x2", "max_pool_2x2_backward"]
    np.testing.assert_array_equal(fast_out, out)
    np.testing.assert_array_equal(fast_dx, dx)


@pytest.mark.parametrize("args", [(3, 2, 1), (2, 1), ((2, 3),)], ids=["3x3", "stride-1", "2x3"])
def test_other_max_pools_stay_numpy(args, kernel_calls):
    kernels.use("numba")
    layer = cr.MaxPool2D(*args)
    out = layer.forward(np.random.default_rng(0).normal(size=(2, 2, 7, 7)).astype(np.float32), training=True)
    layer.backward(np.ones_like(out))
    assert kernel_calls == []


@pytest.mark.parametrize("args", [(2,), (2, 2, 1)], ids=["tiled", "padded"])
def test_max_pool_backward_after_the_kernels_were_switched_off(args):
    """A forward with the kernels and a backward without them route the gradient the same way."""
    rng = np.random.default_rng(5)
    x, layer, reference = rng.normal(size=(2, 3, 9, 9)), cr.MaxPool2D(*args), cr.MaxPool2D(*args)
    kernels.use("numba")
    grad = rng.normal(size=layer.forward(x, training=True).shape)
    kernels.use("numpy")
    reference.forward(x, training=True)
    np.testing.assert_array_equal(layer.backward(grad), reference.backward(grad))


# --- layer normalization ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(5, 7, 9), (3, 13)], ids=["3d", "2d"])
def test_layer_norm_kernels_follow_numpy(shape, dtype, kernel_calls):
    rng = np.random.default_rng(6)
    x = (rng.normal(size=shape) * 3 + 1).astype(dtype)
    grad = rng.normal(size=shape).astype(dtype)

    def run(backend):
        kernels.use(backend)
        layer = cr.LayerNorm(shape[-1]).astype(dtype)
        layer.params["weight"][...] = rng_w
        layer.params["bias"][...] = rng_b
        out = layer.forward(x, training=True)
        return out, layer.backward(grad), {k: v.copy() for k, v in layer.grads.items()}

    rng_w, rng_b = rng.normal(size=shape[-1]).astype(dtype), rng.normal(size=shape[-1]).astype(dtype)
    out, dx, grads = run("numpy")
    assert kernel_calls == []
    fast_out, fast_dx, fast_grads = run("numba")
    assert [name for _, name in kernel_calls] == ["layer_norm_forward", "layer_norm_backward"]
    assert_close(fast_out, out, dtype, "LayerNorm output")
    assert_close(fast_dx, dx, dtype, "LayerNorm dL/dx")
    for key in grads:
        assert_close(fast_grads[key], grads[key], dtype, f"LayerNorm dL/d{key}")


# --- gradcheck with the kernels on ---------------------------------------------------------------
@pytest.mark.parametrize("layers", [
    lambda: [cr.Dense(4, 6, seed=0), cr.Sigmoid(), cr.Dense(6, 5, seed=1), cr.Tanh(), cr.Dense(5, 3, seed=2)],
    lambda: [cr.Dense(4, 6, seed=0), cr.LeakyReLU(0.1), cr.Dense(6, 5, seed=1), cr.ELU(), cr.Dense(5, 5, seed=2),
             cr.GELU(), cr.Dense(5, 3, seed=3)],
    lambda: [cr.LSTM(4, 5, return_sequences=True, seed=0), cr.GRU(5, 6, seed=1), cr.Dense(6, 3, seed=2)],
    lambda: [cr.MultiHeadAttention(4, 2, causal=True, seed=0), cr.LayerNorm(4), cr.Flatten(), cr.Dense(24, 3, seed=1)],
    lambda: [cr.Conv2D(2, 3, 3, padding=1, seed=0), cr.Tanh(), cr.Conv2D(3, 2, 2, seed=1), cr.Flatten(),
             cr.Dense(32, 3, seed=2)],
], ids=["sigmoid-tanh", "leaky-elu-gelu", "lstm-gru", "attention", "conv"])
def test_gradcheck_passes_with_the_kernels(layers, kernel_calls):
    kernels.use("numba")
    rng = np.random.default_rng(5)
    net = cr.Sequential(layers(), dtype=np.float64)
    first = net.layers[0]
    shape = (3, 2, 5, 5) if isinstance(first, cr.Conv2D) else (3, 6, 4) if isinstance(
        first, (cr.LSTM, cr.MultiHeadAttention)) else (3, 4)
    X = rng.normal(size=shape)
    report = cr.gradcheck(net, "cross_entropy", X, np.array([0, 2, 1]), check_input=True)
    assert report.ok, report
    assert kernel_calls
