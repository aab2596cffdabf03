"""Conv2D and Conv1D: forward and backward against PyTorch (float64, 1e-10), against a loop written
from the definition, and against central differences; saving, the load-time size guard, errors.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import io as cr_io

# (constructor arguments, input shape) on small odd shapes; pairs, strides, dilation, padding
CASES_2D = [
    (dict(in_channels=2, out_channels=3, kernel_size=3), (2, 2, 7, 6)),
    (dict(in_channels=3, out_channels=4, kernel_size=(3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
     (2, 3, 9, 8)),
    (dict(in_channels=1, out_channels=2, kernel_size=3, stride=3), (3, 1, 10, 11)),
    (dict(in_channels=2, out_channels=2, kernel_size=4, padding="same"), (2, 2, 7, 8)),
    (dict(in_channels=2, out_channels=3, kernel_size=(2, 3), padding="same", dilation=(3, 1)), (1, 2, 8, 5)),
    (dict(in_channels=2, out_channels=3, kernel_size=2, stride=2, use_bias=False), (2, 2, 5, 7)),
]
CASES_1D = [
    (dict(in_channels=2, out_channels=3, kernel_size=3), (2, 2, 9)),
    (dict(in_channels=3, out_channels=2, kernel_size=3, stride=2, padding=1, dilation=2), (2, 3, 11)),
    (dict(in_channels=2, out_channels=3, kernel_size=4, padding="same"), (3, 2, 8)),
    (dict(in_channels=1, out_channels=2, kernel_size=2, stride=3, use_bias=False), (2, 1, 10)),
]
ALL_CASES = [(cr.Conv2D, *c) for c in CASES_2D] + [(cr.Conv1D, *c) for c in CASES_1D]
IDS = [f"{cls.__name__}-{i}" for i, (cls, _, _) in enumerate(ALL_CASES)]


def built(cls, kwargs, seed=0):
    """A float64 layer with a nonzero bias (zeros would hide a bias bug)."""
    layer = cls(**kwargs, seed=seed, dtype=np.float64)
    if layer.use_bias:
        layer.params["bias"][:] = np.random.default_rng(seed + 1).normal(size=layer.out_channels)
    return layer


def reference_conv2d(x, weight, bias, stride, dilation, pad):
    """z[n, o, i, j] = b[o] + Σ_c Σ_u Σ_v W[o, c, u, v] · x_pad[n, c, i·s + u·d, j·s + v·d], by loops."""
    (pt, pb), (pl, pr) = pad
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    n, _, hp, wp = xp.shape
    c_out, c_in, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    ho, wo = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    z = np.zeros((n, c_out, ho, wo))
    for b in range(n):
        for o in range(c_out):
            for i in range(ho):
                for j in range(wo):
                    total = 0.0 if bias is None else bias[o]
                    for c in range(c_in):
                        for u in range(kh):
                            for v in range(kw):
                                total += weight[o, c, u, v] * xp[b, c, i * sh + u * dh, j * sw + v * dw]
                    z[b, o, i, j] = total
    return z


# --- forward: the definition, shapes ---------------------------------------------------------
def test_forward_matches_the_definition_written_as_loops():
    rng = np.random.default_rng(3)
    layer = built(cr.Conv2D, dict(in_channels=2, out_channels=3, kernel_size=(3, 2), stride=(2, 1),
                                  padding=(1, 2), dilation=(1, 2)))
    x = rng.normal(size=(2, 2, 7, 6))
    want = reference_conv2d(x, layer.params["weight"], layer.params["bias"], (2, 1), (1, 2), ((1, 1), (2, 2)))
    np.testing.assert_allclose(layer.forward(x), want, rtol=0, atol=1e-12)


def test_a_worked_example_by_hand():
    # x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], W = [[1, 0], [0, -1]], b = 10: z[i, j] = x[i, j] - x[i+1, j+1] + 10
    layer = cr.Conv2D(1, 1, 2, dtype=np.float64)
    layer.params["weight"][:] = [[[[1.0, 0.0], [0.0, -1.0]]]]
    layer.params["bias"][:] = 10.0
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(layer.forward(x), [[[[6.0, 6.0], [6.0, 6.0]]]])
    # with padding 1 the corner z[0, 0] = W[1, 1]·x[0, 0] + b = -1 + 10
    padded = cr.Conv2D(1, 1, 2, padding=1, dtype=np.float64)
    padded.params["weight"][:] = layer.params["weight"]
    padded.params["bias"][:] = 10.0
    z = padded.forward(x)
    assert z.shape == (1, 1, 4, 4) and z[0, 0, 0, 0] == 9.0 and z[0, 0, 3, 3] == 19.0


@pytest.mark.parametrize("cls,kwargs,shape", ALL_CASES, ids=IDS)
def test_output_shape_follows_the_formula(cls, kwargs, shape):
    layer = built(cls, kwargs)
    z = layer.forward(np.zeros(shape))
    assert z.shape == (shape[0], *layer.output_shape(shape[1:]))
    if kwargs.get("padding") == "same":
        assert z.shape[2:] == shape[2:]
    else:  # H' = floor((H + 2p - d(k-1) - 1)/s) + 1, on the last axis
        k, s, p, d = (kwargs.get(key, dflt) for key, dflt in
                      (("kernel_size", 1), ("stride", 1), ("padding", 0), ("dilation", 1)))
        last = [v[-1] if isinstance(v, tuple) else v for v in (k, s, p, d)]
        k, s, p, d = last
        assert z.shape[-1] == (shape[-1] + 2 * p - d * (k - 1) - 1) // s + 1


# --- against PyTorch ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls,kwargs,shape", ALL_CASES, ids=IDS)
def test_forward_and_gradients_equal_pytorch(cls, kwargs, shape):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(7)
    layer = built(cls, kwargs)
    x = rng.normal(size=shape)
    z = layer.forward(x, training=True)
    delta = rng.normal(size=z.shape)
    grad_x = layer.backward(delta)

    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.params["weight"], requires_grad=True)
    bt = torch.tensor(layer.params["bias"], requires_grad=True) if layer.use_bias else None
    conv = functional.conv2d if cls is cr.Conv2D else functional.conv1d
    extra = {k: kwargs[k] for k in ("stride", "padding", "dilation") if k in kwargs}
    import warnings
    with warnings.catch_warnings():  # torch warns that "same" with an even kernel copies the input
        warnings.simplefilter("ignore", UserWarning)
        zt = conv(xt, wt, bt, **extra)
    zt.backward(torch.tensor(delta))

    assert layer.params["weight"].shape == tuple(wt.shape)
    np.testing.assert_allclose(z, zt.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(layer.grads["weight"], wt.grad.numpy(), rtol=0, atol=1e-10)
    if layer.use_bias:
        np.testing.assert_allclose(layer.grads["bias"], bt.grad.numpy(), rtol=0, atol=1e-10)


# --- against central differences ----------------------------------------------------------------
def _loss_and_grads(layer, x, r):
    """L = Σ z·r, so dL/dz = r; returns L and the analytic dL/dx, dL/dW, dL/db."""
    z = layer.forward(x, training=True)
    grad_x = layer.backward(r)
    return float(np.sum(z * r)), grad_x, {k: g.copy() for k, g in layer.grads.items()}


@pytest.mark.parametrize("cls,kwargs,shape", ALL_CASES, ids=IDS)
def test_gradients_equal_central_differences(cls, kwargs, shape):
    rng = np.random.default_rng(11)
    layer = built(cls, kwargs)
    x = rng.normal(size=shape)
    r = rng.normal(size=layer.forward(x).shape)
    _, grad_x, grads = _loss_and_grads(layer, x, r)
    h = 1e-5

    def numeric(array):
        out = np.zeros_like(array)
        for idx in np.ndindex(array.shape):
            keep = array[idx]
            array[idx] = keep + h
            up = np.sum(layer.forward(x) * r)
            array[idx] = keep - h
            down = np.sum(layer.forward(x) * r)
            array[idx] = keep
            out[idx] = (up - down) / (2 * h)
        return out

    # the loss is linear in x and in each parameter: central differences are exact up to rounding
    np.testing.assert_allclose(grad_x, numeric(x), rtol=1e-7, atol=1e-8)
    for key, param in layer.params.items():
        np.testing.assert_allclose(grads[key], numeric(param), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("cls,kwargs,shape", [ALL_CASES[1], ALL_CASES[3], ALL_CASES[7]],
                         ids=[IDS[1], IDS[3], IDS[7]])
def test_gradcheck_of_a_network_with_a_nonlinearity(cls, kwargs, shape):
    rng = np.random.default_rng(5)
    layer = built(cls, kwargs)
    second = cls(layer.out_channels, 2, kernel_size=2, seed=4, dtype=np.float64)
    net = cr.Sequential(layer, cr.Tanh(), second, dtype=np.float64)
    X = rng.normal(size=shape)
    y = rng.normal(size=net.forward(X).shape)
    report = cr.gradcheck(net, "mse", X, y, check_input=True)
    assert report.ok, report


@pytest.mark.parametrize("cls,kwargs,shape", [ALL_CASES[1], ALL_CASES[7]], ids=[IDS[1], IDS[7]])
def test_backward_params_fills_the_same_gradients_as_backward(cls, kwargs, shape):
    rng = np.random.default_rng(2)
    layer = built(cls, kwargs)
    x = rng.normal(size=shape)
    delta = rng.normal(size=layer.forward(x, True).shape)
    layer.backward(delta)
    want = {k: g.copy() for k, g in layer.grads.items()}
    for g in layer.grads.values():
        g[:] = 0.0
    layer.forward(x, True)
    assert layer.backward_params(delta) is None
    for k in want:
        np.testing.assert_array_equal(layer.grads[k], want[k])


def test_gradients_are_written_into_the_preallocated_arrays():
    layer = built(cr.Conv2D, CASES_2D[0][0])
    before = {k: id(g) for k, g in layer.grads.items()}
    params = {k: id(p) for k, p in layer.params.items()}
    x = np.random.default_rng(0).normal(size=CASES_2D[0][1])
    layer.backward(np.ones_like(layer.forward(x, True)))
    assert {k: id(g) for k, g in layer.grads.items()} == before
    assert {k: id(p) for k, p in layer.params.items()} == params
    assert np.any(layer.grads["weight"] != 0)


# --- initialization, dtype ---------------------------------------------------------------------
def test_he_uniform_uses_the_fan_in_of_the_kernel():
    layer = cr.Conv2D(6, 16, 5, seed=0, dtype=np.float64)
    bound = np.sqrt(6.0 / (6 * 5 * 5))  # fan_in = C·kh·kw = 150
    w = layer.params["weight"]
    assert w.shape == (16, 6, 5, 5)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    np.testing.assert_array_equal(layer.params["bias"], 0.0)
    again = cr.Conv2D(6, 16, 5, seed=0, dtype=np.float64)
    np.testing.assert_array_equal(again.params["weight"], w)


def test_explicit_initial_weights_are_taken_in_pytorchs_layout():
    weight = np.arange(18.0).reshape(2, 1, 3, 3)
    layer = cr.Conv2D(1, 2, 3, init=weight, dtype=np.float64)
    np.testing.assert_array_equal(layer.params["weight"], weight)
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 0, 1] = 1.0  # picks W[o, 0, 0, 1]
    np.testing.assert_array_equal(layer.forward(x)[0, :, 0, 0], [1.0, 10.0])
    with pytest.raises(cr.ShapeError, match=r"\(2, 1, 3, 3\)"):
        cr.Conv2D(1, 2, 3, init=np.ones((3, 3)))
    assert cr.Conv1D(1, 2, 3, init=np.ones((2, 1, 3))).params["weight"].shape == (2, 1, 3)


def test_repr_names_the_settings_that_differ_from_the_defaults():
    assert repr(cr.Conv2D(1, 6, 5)) == "Conv2D(1, 6, kernel_size=5)"
    assert repr(cr.Conv2D(1, 6, (3, 5), stride=(1, 2), padding=1)) == \
        "Conv2D(1, 6, kernel_size=[3, 5], stride=[1, 2], padding=1)"
    assert repr(cr.Conv1D(2, 3, 4, padding="same", use_bias=False)) == \
        "Conv1D(2, 3, kernel_size=4, padding='same', use_bias=False)"


def test_float32_stays_float32():
    net = cr.Sequential(cr.Conv2D(2, 3, 3, padding=1, seed=0), cr.ReLU(), cr.Conv2D(3, 1, 3, seed=1))
    x = np.random.default_rng(0).normal(size=(2, 2, 6, 6)).astype(np.float32)
    z = net.forward(x, training=True)
    grad_x = net.backward(np.ones_like(z))
    assert z.dtype == np.float32 and grad_x.dtype == np.float32
    assert all(g.dtype == np.float32 for layer in net.layers for g in layer.grads.values())


def test_a_float64_network_keeps_the_exact_float64_draw():
    layer = cr.Conv2D(2, 3, 3, seed=9)
    exact = cr.Conv2D(2, 3, 3, seed=9, dtype=np.float64).params["weight"]
    net = cr.Sequential(layer, dtype=np.float64)
    np.testing.assert_array_equal(net.layers[0].params["weight"], exact)


# --- training, saving ---------------------------------------------------------------------------
def test_a_float32_network_learns_a_few_steps():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 1, 8, 8)).astype(np.float32)
    target = cr.Conv2D(1, 2, 3, seed=5, dtype=np.float64)
    y = target.forward(X.astype(np.float64)).astype(np.float32)
    net = cr.Sequential(cr.Conv2D(1, 4, 3, padding=1, seed=1), cr.Tanh(), cr.Conv2D(4, 2, 3, seed=2))
    before = float(np.mean((net.predict(X) - y) ** 2))
    net.fit(X, y, loss="mse", optimizer="adam", epochs=20, batch_size=8, verbose=0)
    after = float(np.mean((net.predict(X) - y) ** 2))
    assert after < 0.7 * before


@pytest.mark.parametrize("cls,kwargs,shape", [ALL_CASES[1], ALL_CASES[4], ALL_CASES[7], ALL_CASES[8]],
                         ids=[IDS[1], IDS[4], IDS[7], IDS[8]])
def test_save_and_load_round_trip_bit_identical(tmp_path, cls, kwargs, shape):
    net = cr.Sequential(built(cls, kwargs), cr.Tanh(), dtype=np.float64)
    path = tmp_path / "conv.npz"
    net.save(path)
    loaded = cr.load(path)
    assert loaded.layers[0].get_config() == net.layers[0].get_config()
    X = np.random.default_rng(1).normal(size=shape)
    assert np.array_equal(loaded.predict(X), net.predict(X))


@pytest.mark.parametrize("cls,key,value", [
    (cr.Conv2D, "kernel_size", 5000),
    (cr.Conv2D, "kernel_size", [3, 10**7]),
    (cr.Conv2D, "in_channels", 10**5),
    (cr.Conv1D, "kernel_size", 10**8),
])
def test_the_size_guard_refuses_a_huge_tampered_size_before_building(tmp_path, monkeypatch, cls, key, value):
    net = cr.Sequential(cls(1, 2, 2, seed=0))
    header, arrays = cr_io.model_parts(net)
    header["layers"][0]["config"][key] = value
    if key == "in_channels":
        header["layers"][0]["config"]["out_channels"] = 10**5
    path = tmp_path / "huge.npz"
    cr_io.write(path, header, arrays)  # checksums recomputed: only the sizes can stop it
    built_layers = []
    real_init = cls.__init__
    monkeypatch.setattr(cls, "__init__", lambda self, *a, **k: (built_layers.append(k), real_init(self, *a, **k))[1])
    with pytest.raises(cr.FileFormatError, match=rf"{key}.*cannot hold"):
        cr.load(path)
    assert built_layers == []


def test_a_non_square_kernel_is_saved_as_a_pair_and_passes_the_size_guard(tmp_path):
    net = cr.Sequential(cr.Conv2D(1, 2, (1, 3000), seed=0))
    assert net.layers[0].get_config()["kernel_size"] == [1, 3000]
    path = tmp_path / "wide.npz"
    net.save(path)
    assert cr.load(path).layers[0].params["weight"].shape == (2, 1, 1, 3000)


# --- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,shape,match", [
    (cr.Conv2D, (2, 2, 7), r"Conv2D.*4-D.*\(2, 2, 7\)"),
    (cr.Conv2D, (2, 3, 7, 7), r"Conv2D.*2 input channels.*got 3"),
    (cr.Conv2D, (2, 2, 2, 7), r"Conv2D.*smaller than the dilated kernel.*\(2, 2, 2, 7\)"),
    (cr.Conv1D, (2, 2, 7, 7), r"Conv1D.*3-D.*\(2, 2, 7, 7\)"),
    (cr.Conv1D, (2, 1, 7), r"Conv1D.*2 input channels.*got 1"),
    (cr.Conv1D, (2, 2, 2), r"Conv1D.*smaller than the dilated kernel"),
])
def test_bad_input_shapes_raise_shape_errors_naming_the_layer(cls, shape, match):
    layer = cls(2, 3, 3)
    with pytest.raises(cr.ShapeError, match=match):
        layer(np.zeros(shape))
    with pytest.raises(cr.ShapeError, match=match):
        cr.Sequential(layer).predict(np.zeros(shape))


def test_dilation_counts_in_the_smallest_image():
    layer = cr.Conv2D(1, 1, 3, dilation=2)  # spans 5 pixels
    assert layer(np.zeros((1, 1, 5, 5))).shape == (1, 1, 1, 1)
    with pytest.raises(cr.ShapeError, match="smaller than the dilated kernel"):
        layer(np.zeros((1, 1, 4, 5)))
    assert cr.Conv2D(1, 1, 3, dilation=2, padding=1)(np.zeros((1, 1, 3, 3))).shape == (1, 1, 1, 1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(kernel_size=0), "Conv2D kernel_size"),
    (dict(kernel_size=(3, -1)), "Conv2D kernel_size"),
    (dict(kernel_size=(3, 3, 3)), "Conv2D kernel_size"),
    (dict(kernel_size=2.0), "Conv2D kernel_size"),
    (dict(kernel_size=3, stride=0), "Conv2D stride"),
    (dict(kernel_size=3, dilation=True), "Conv2D dilation"),
    (dict(kernel_size=3, padding=-1), "Conv2D padding"),
    (dict(kernel_size=3, padding="valid!"), "Conv2D padding"),
    (dict(kernel_size=3, padding="same", stride=2), r"Conv2D padding='same' needs stride 1"),
    (dict(kernel_size=3, padding=float("nan")), "Conv2D padding"),
])
def test_bad_settings_raise_config_errors(kwargs, match):
    with pytest.raises(cr.ConfigError, match=match):
        cr.Conv2D(2, 3, **kwargs)


@pytest.mark.parametrize("args,match", [
    ((0, 3, 3), "Conv1D in_channels"),
    ((2, -3, 3), "Conv1D out_channels"),
    ((2, 3, (3, 3)), "Conv1D kernel_size"),
    ((2, 3, 3, 2, "same"), r"Conv1D padding='same' needs stride 1"),
])
def test_bad_conv1d_settings_raise_config_errors(args, match):
    with pytest.raises(cr.ConfigError, match=match):
        cr.Conv1D(*args)
