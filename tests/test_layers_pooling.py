"""MaxPool2D, AvgPool2D, GlobalAvgPool2D and Flatten: hand-computed cases, finite differences,
PyTorch's functional pools in float64, saving, bad input and a short training run.

Max pooling is piecewise linear: its finite differences are exact as long as no step moves one
window entry past another. The inputs here are a random permutation of evenly spaced values
(gaps of 0.05, steps of at most 1e-3), so no window has ties and no step crosses a kink.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import chainrule as cr

# (kernel_size, stride, padding): the tiled fast path (stride == kernel, no padding, with and
# without rows left over), overlapping windows, padding, rectangular windows and strides.
CONFIGS = [
    (2, None, 0),
    (3, None, 0),
    ((2, 3), None, 0),
    (3, 2, 1),
    (3, 1, 1),
    (2, 1, 0),
    ((3, 2), (1, 2), (1, 0)),
    (4, 3, 2),
    (2, 3, 1),
    (1, None, 0),
    (1, 2, 0),
]
SHAPES = [(2, 3, 7, 9), (3, 2, 8, 8)]


def distinct(shape, seed=0, spacing=0.05) -> np.ndarray:
    """Values spaced ``spacing`` apart in random order: no ties anywhere."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n) - n / 2).reshape(shape) * spacing


def numeric_input_gradient(layer, x, grad_out, h=1e-3) -> np.ndarray:
    """d/dx of sum(grad_out * layer.forward(x)) by central differences."""
    out = np.empty_like(x)
    for i in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[i] += h
        minus[i] -= h
        out[i] = np.sum(grad_out * (layer.forward(plus) - layer.forward(minus))) / (2 * h)
    return out


# --- hand-computed cases ---------------------------------------------------------------------
def test_max_pool_picks_each_windows_maximum_and_routes_the_gradient_there():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    layer = cr.MaxPool2D(2)
    np.testing.assert_array_equal(layer.forward(x), [[[[5, 7], [13, 15]]]])
    grad_in = layer.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = np.zeros((1, 1, 4, 4))
    expected[0, 0, 1, 1], expected[0, 0, 1, 3], expected[0, 0, 3, 1], expected[0, 0, 3, 3] = 1, 2, 3, 4
    np.testing.assert_array_equal(grad_in, expected)


def test_max_pool_pads_with_minus_infinity_not_zero():
    x = -np.array([[[[1.0, 2.0], [3.0, 4.0]]]])  # every value below the padding's 0
    layer = cr.MaxPool2D(2, stride=2, padding=1)  # each window holds one real value
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(np.full((1, 1, 2, 2), 7.0)), np.full((1, 1, 2, 2), 7.0))


def test_overlapping_max_windows_add_their_gradients_at_a_shared_maximum():
    x = np.array([[[[0.0, 9.0, 1.0, 2.0]]]])
    layer = cr.MaxPool2D((1, 2), stride=1)  # windows {0,9}, {9,1}, {1,2}
    np.testing.assert_array_equal(layer.forward(x), [[[[9, 9, 2]]]])
    np.testing.assert_array_equal(layer.backward(np.array([[[[1.0, 10.0, 100.0]]]])), [[[[0, 11, 0, 100]]]])


def test_max_pool_ties_go_to_the_first_maximum_in_row_major_window_order():
    x = np.ones((1, 1, 2, 2))
    for layer in (cr.MaxPool2D(2), cr.MaxPool2D(2, stride=1)):  # tiled and general paths
        layer.forward(x)
        np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1))), [[[[1, 0], [0, 0]]]])


def test_avg_pool_counts_the_zero_padding_in_each_mean():
    x = np.array([[[[4.0, 8.0], [12.0, 16.0]]]])
    layer = cr.AvgPool2D(2, stride=1, padding=1)  # 3x3 outputs, corner windows hold one value
    y = layer.forward(x)
    np.testing.assert_array_equal(y[0, 0, 0], [1, 3, 2])
    np.testing.assert_array_equal(y[0, 0, 1], [4, 10, 6])
    np.testing.assert_array_equal(y[0, 0, 2], [3, 7, 4])
    # every input is in 4 of the 9 windows, each passing on a quarter of its gradient
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 3, 3))), np.ones((1, 1, 2, 2)))


def test_avg_pool_tiles_average_and_spread_evenly():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    layer = cr.AvgPool2D(2)
    np.testing.assert_array_equal(layer.forward(x), [[[[2.5, 4.5], [10.5, 12.5]]]])
    grad_in = layer.backward(np.array([[[[4.0, 8.0], [12.0, 16.0]]]]))
    np.testing.assert_array_equal(grad_in[0, 0], np.repeat(np.repeat([[1.0, 2.0], [3.0, 4.0]], 2, 0), 2, 1))


def test_rows_and_columns_past_the_last_whole_window_get_no_gradient():
    x = distinct((1, 2, 5, 7))
    for layer in (cr.MaxPool2D(2), cr.AvgPool2D(2)):
        y = layer.forward(x)
        assert y.shape == (1, 2, 2, 3)
        grad_in = layer.backward(np.ones(y.shape))
        assert not grad_in[:, :, 4:, :].any() and not grad_in[:, :, :, 6:].any()


def test_global_avg_pool_means_each_channel():
    x = np.arange(24.0).reshape(1, 2, 3, 4)
    layer = cr.GlobalAvgPool2D()
    np.testing.assert_array_equal(layer.forward(x), [[5.5, 17.5]])
    np.testing.assert_array_equal(layer.backward(np.array([[12.0, 24.0]])),
                                  np.stack([np.ones((3, 4)), 2 * np.ones((3, 4))])[None])


def test_flatten_is_c_order_and_backward_restores_the_shape():
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    layer = cr.Flatten()
    y = layer.forward(x)
    assert y.shape == (2, 12)
    np.testing.assert_array_equal(y[1], np.arange(12.0, 24.0))
    np.testing.assert_array_equal(layer.backward(y * 2), x * 2)
    assert layer.output_shape((3, 2, 2)) == (12,)


def test_summary_prints_every_output_shape():
    net = cr.Sequential(cr.MaxPool2D(2), cr.AvgPool2D(3, 1, 1), cr.Flatten(), cr.Dense(196, 10))
    text = net.summary(input_shape=(1, 28, 28))
    assert "(None, 1, 14, 14)" in text and "(None, 196)" in text and "(None, 10)" in text
    assert "?" not in text
    pooled = cr.Sequential(cr.MaxPool2D(3, 2, 1), cr.GlobalAvgPool2D())
    assert "(None, 4, 5, 6)" in pooled.summary(input_shape=(4, 9, 12))
    assert "(None, 4)" in pooled.summary(input_shape=(4, 9, 12))


# --- finite differences ----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [cr.MaxPool2D, cr.AvgPool2D])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_input_gradient_matches_central_differences(cls, config):
    layer = cls(*config)
    x = distinct((2, 2, 7, 9), seed=1)
    grad_out = np.random.default_rng(2).normal(size=layer.forward(x).shape)
    layer.forward(x)
    analytic = layer.backward(grad_out)
    np.testing.assert_allclose(analytic, numeric_input_gradient(layer, x, grad_out), rtol=0, atol=1e-9)


def test_global_avg_pool_and_flatten_gradients_match_central_differences():
    x = distinct((2, 3, 3, 5), seed=3)
    for layer in (cr.GlobalAvgPool2D(), cr.Flatten()):
        grad_out = np.random.default_rng(4).normal(size=layer.forward(x).shape)
        analytic = layer.backward(grad_out)
        np.testing.assert_allclose(analytic, numeric_input_gradient(layer, x, grad_out), rtol=0, atol=1e-9)


@pytest.mark.parametrize("pool", [cr.MaxPool2D(3, 2, 1), cr.AvgPool2D((2, 3), (1, 2)), cr.MaxPool2D(2)],
                         ids=repr)
def test_gradcheck_through_a_pooled_network(pool):
    shape = (3, 2, 5, 7)
    n_features = int(np.prod(pool.output_shape(shape[1:])))
    net = cr.Sequential(pool, cr.Flatten(), cr.Dense(n_features, 2, seed=0), cr.Tanh(), dtype=np.float64)
    report = cr.gradcheck(net, cr.MSE(), distinct(shape, seed=5), np.zeros((3, 2)), check_input=True)
    assert report.ok, f"\n{report}"
    assert {c.name for c in report.checks} == {"2.weight", "2.bias", "input"}
    net = cr.Sequential(cr.AvgPool2D(2, 1), cr.GlobalAvgPool2D(), cr.Dense(2, 3, seed=1), dtype=np.float64)
    assert cr.gradcheck(net, cr.MSE(), distinct(shape, seed=6), np.ones((3, 3)), check_input=True).ok


# --- PyTorch ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_pools_equal_pytorch_in_float64(shape, config):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    kernel, stride, padding = config
    x = distinct(shape, seed=7)
    for layer, pool in [
        (cr.MaxPool2D(*config), lambda t: functional.max_pool2d(t, kernel, stride or kernel, padding)),
        (cr.AvgPool2D(*config), lambda t: functional.avg_pool2d(t, kernel, stride or kernel, padding,
                                                                 count_include_pad=True)),
    ]:
        x_t = torch.tensor(x, requires_grad=True)
        y_t = pool(x_t)
        y = layer.forward(x)
        assert y.shape == tuple(y_t.shape) and layer.output_shape(shape[1:]) == y.shape[1:]
        grad_out = np.random.default_rng(8).normal(size=y.shape)
        y_t.backward(torch.tensor(grad_out))
        np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(layer.backward(grad_out), x_t.grad.numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("config", [(2, None, 0), (3, 1, 1), (3, 2, 1), ((2, 3), 1, 0)], ids=str)
def test_max_pool_ties_resolve_as_in_pytorch(config):
    torch = pytest.importorskip("torch")
    kernel, stride, padding = config
    x = np.random.default_rng(9).integers(0, 3, (2, 3, 8, 9)).astype(np.float64)  # ties everywhere
    layer = cr.MaxPool2D(*config)
    grad_out = np.random.default_rng(10).normal(size=layer.forward(x).shape)
    x_t = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(x_t, kernel, stride or kernel, padding).backward(torch.tensor(grad_out))
    np.testing.assert_allclose(layer.backward(grad_out), x_t.grad.numpy(), rtol=0, atol=1e-10)


def test_global_avg_pool_and_flatten_equal_pytorch():
    torch = pytest.importorskip("torch")
    x = distinct((2, 3, 4, 5), seed=11)
    for layer, op in [(cr.GlobalAvgPool2D(), lambda t: torch.nn.functional.adaptive_avg_pool2d(t, 1)[..., 0, 0]),
                      (cr.Flatten(), torch.nn.Flatten())]:
        x_t = torch.tensor(x, requires_grad=True)
        y_t = op(x_t)
        y = layer.forward(x)
        grad_out = np.random.default_rng(12).normal(size=y.shape)
        y_t.backward(torch.tensor(grad_out))
        np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(layer.backward(grad_out), x_t.grad.numpy(), rtol=0, atol=1e-10)


# --- dtype, saving ---------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [cr.MaxPool2D(2), cr.MaxPool2D(3, 2, 1), cr.AvgPool2D(2),
                                   cr.AvgPool2D(3, 1, 1), cr.GlobalAvgPool2D(), cr.Flatten()], ids=repr)
def test_float32_stays_float32(layer):
    x = distinct((2, 3, 6, 6)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32


def test_save_load_round_trip_is_bit_identical(tmp_path):
    net = cr.Sequential(cr.MaxPool2D((2, 3), stride=(1, 2), padding=(1, 0)), cr.AvgPool2D(2, 1),
                        cr.MaxPool2D(2), cr.Flatten(), cr.Dense(9, 3, seed=0), dtype=np.float64)
    x = distinct((4, 3, 6, 9), seed=13)
    assert net.forward(x).shape == (4, 3)
    net.save(tmp_path / "pooled.npz")
    loaded = cr.load(tmp_path / "pooled.npz")
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in net.layers]
    assert loaded.layers[0].get_config() == {"kernel_size": [2, 3], "stride": [1, 2], "padding": [1, 0]}
    assert np.array_equal(loaded.predict(x), net.predict(x))
    net = cr.Sequential(cr.GlobalAvgPool2D(), cr.Dense(3, 2, seed=1))
    net.save(tmp_path / "global.npz")
    assert np.array_equal(cr.load(tmp_path / "global.npz").predict(x), net.predict(x))


def test_a_tampered_huge_window_loads_without_allocating_and_is_refused_at_forward(tmp_path):
    from chainrule import io as cr_io

    assert cr.MaxPool2D.size_args == () and cr.AvgPool2D.size_args == ()  # nothing to allocate
    header, arrays = cr_io.model_parts(cr.Sequential(cr.MaxPool2D(2), cr.Flatten(), cr.Dense(4, 1)))
    header["layers"][0]["config"].update(kernel_size=10**9, stride=10**9)
    path = tmp_path / "huge.npz"
    cr_io.write(path, header, arrays)  # checksums recomputed
    start = time.perf_counter()
    net = cr.load(path)
    assert time.perf_counter() - start < 1.0
    with pytest.raises(cr.ShapeError, match=r"MaxPool2D.*1000000000x1000000000 window is larger"):
        net.predict(np.zeros((1, 1, 4, 4)))
    header["layers"][0]["config"]["kernel_size"] = -3
    cr_io.write(path, header, arrays)
    with pytest.raises(cr.FileFormatError, match="MaxPool2D kernel_size"):
        cr.load(path)
    header["layers"][0].update({"class": "_Pool2D", "config": {"kernel_size": 2}})  # the shared base
    cr_io.write(path, header, arrays)
    with pytest.raises(cr.FileFormatError, match="unknown type '_Pool2D'"):
        cr.load(path)


# --- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [cr.MaxPool2D, cr.AvgPool2D])
@pytest.mark.parametrize("kwargs, argument", [
    ({"kernel_size": 0}, "kernel_size"),
    ({"kernel_size": -2}, "kernel_size"),
    ({"kernel_size": (2, 0)}, "kernel_size"),
    ({"kernel_size": (2, 2, 2)}, "kernel_size"),
    ({"kernel_size": 2.0}, "kernel_size"),
    ({"kernel_size": True}, "kernel_size"),
    ({"kernel_size": 2, "stride": 0}, "stride"),
    ({"kernel_size": 2, "stride": (1, -1)}, "stride"),
    ({"kernel_size": 2, "padding": -1}, "padding"),
    ({"kernel_size": 2, "padding": float("nan")}, "padding"),
    ({"kernel_size": 2, "padding": 2}, "padding"),
    ({"kernel_size": 3, "padding": 2}, "padding"),
    ({"kernel_size": (4, 2), "padding": (1, 2)}, "padding"),
])
def test_bad_settings_are_config_errors_naming_the_argument(cls, kwargs, argument):
    with pytest.raises(cr.ConfigError, match=f"{cls.__name__} {argument}"):
        cls(**kwargs)


def test_padding_of_half_the_kernel_is_allowed_as_in_pytorch():
    assert cr.MaxPool2D(3, padding=1).padding == (1, 1)
    assert cr.AvgPool2D((4, 2), padding=(2, 1)).padding == (2, 1)


@pytest.mark.parametrize("cls, name", [(cr.MaxPool2D, "max_pool2d"), (cr.AvgPool2D, "avg_pool2d")])
def test_the_padding_limit_is_pytorchs(cls, name):
    torch = pytest.importorskip("torch")
    pool = getattr(torch.nn.functional, name)
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    for kernel in range(1, 6):
        for padding in range(4):
            try:
                pool(x, kernel, 1, padding)
                torch_accepts = True
            except RuntimeError:
                torch_accepts = False
            try:
                cls(kernel, 1, padding)
                accepts = True
            except cr.ConfigError:
                accepts = False
            assert accepts == torch_accepts, (kernel, padding)


@pytest.mark.parametrize("layer", [cr.MaxPool2D(2), cr.AvgPool2D(3, 1, 1), cr.GlobalAvgPool2D()], ids=repr)
@pytest.mark.parametrize("shape", [(2, 8, 8), (2, 1, 8, 8, 1), (8,)], ids=str)
def test_input_that_is_not_four_dimensional_is_a_shape_error(layer, shape):
    name = type(layer).__name__
    with pytest.raises(cr.ShapeError, match=rf"{name}.*\(n, channels, height, width\).*{shape}"):
        layer(np.zeros(shape))
    with pytest.raises(cr.ShapeError, match=name):
        layer.forward(np.zeros(shape))


@pytest.mark.parametrize("layer, shape", [
    (cr.MaxPool2D(3), (1, 1, 2, 5)),
    (cr.MaxPool2D(5, padding=1), (1, 1, 2, 9)),
    (cr.AvgPool2D((2, 4), padding=(0, 1)), (1, 1, 3, 1)),
], ids=str)
def test_a_window_larger_than_the_padded_input_is_a_shape_error(layer, shape):
    with pytest.raises(cr.ShapeError, match=f"{type(layer).__name__}.*larger than the padded input"):
        layer(np.zeros(shape))
    with pytest.raises(cr.ShapeError, match="larger than the padded input"):
        layer.forward(np.zeros(shape))
    with pytest.raises(cr.ShapeError, match="larger than the padded input"):
        layer.output_shape(shape[1:])


def test_flatten_refuses_a_single_axis():
    with pytest.raises(cr.ShapeError, match=r"Flatten.*at least 2 axes"):
        cr.Flatten()(np.zeros(5))


# --- training --------------------------------------------------------------------------------
def test_a_float32_pooled_network_learns():
    rng = np.random.default_rng(14)
    X = rng.normal(size=(96, 2, 8, 8)).astype(np.float32)
    y = (X[:, 0, :4].max(axis=(1, 2)) > X[:, 1, 4:].max(axis=(1, 2))).astype(int)
    net = cr.Sequential(cr.MaxPool2D(2), cr.AvgPool2D(3, 1, 1), cr.MaxPool2D(3, 2, 1), cr.Flatten(),
                        cr.Dense(8, 2, seed=0))
    history = net.fit(X, y, loss="cross_entropy", optimizer=cr.Adam(0.05), epochs=8, verbose=0, seed=0)
    losses = history.history["loss"]
    assert net.predict(X).dtype == np.float32
    assert losses[-1] < 0.8 * losses[0]
