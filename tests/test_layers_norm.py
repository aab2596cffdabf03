"""BatchNorm and LayerNorm: closed forms, finite differences and PyTorch (float64) as references;
the running statistics as saved, cast and checkpointed state that is not trained."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import io as cr_io
from crashing import Crash

TOL = 1e-10


def set_affine(layer, rng):
    """Random γ, β (away from 1 and 0, so a mix-up of the two shows)."""
    n = layer.params["weight"].size
    layer.params["weight"][:] = rng.uniform(0.5, 2.0, n)
    layer.params["bias"][:] = rng.normal(size=n)
    return layer


def batch_axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


def by_hand(x, gamma, beta, mean, var, eps=1e-5):
    shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * gamma.reshape(shape) \
        + beta.reshape(shape)


# --- closed forms (no torch needed) ----------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7, 3), (4, 3, 5, 2)])
def test_batchnorm_training_and_running_statistics_follow_the_formulas(shape):
    rng = np.random.default_rng(0)
    bn = set_affine(cr.BatchNorm(3, momentum=0.25).astype(np.float64), rng)
    mean_ref, var_ref = np.zeros(3), np.ones(3)
    for _ in range(3):
        x = rng.normal(2.0, 3.0, size=shape)
        axes = batch_axes(x)
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        y = bn.forward(x, training=True)
        np.testing.assert_allclose(y, by_hand(x, bn.params["weight"], bn.params["bias"], mean, var), atol=1e-12)
        mean_ref = 0.75 * mean_ref + 0.25 * mean
        var_ref = 0.75 * var_ref + 0.25 * x.var(axis=axes, ddof=1)  # the unbiased variance
        np.testing.assert_allclose(bn.buffers["running_mean"], mean_ref, rtol=1e-13)
        np.testing.assert_allclose(bn.buffers["running_var"], var_ref, rtol=1e-13)
    x = rng.normal(size=shape)
    kept = {k: b.copy() for k, b in bn.buffers.items()}
    np.testing.assert_allclose(bn.forward(x, training=False),
                               by_hand(x, bn.params["weight"], bn.params["bias"], mean_ref, var_ref), atol=1e-12)
    for k, b in bn.buffers.items():  # evaluation leaves them alone
        np.testing.assert_array_equal(b, kept[k])


def test_layernorm_follows_the_formula():
    rng = np.random.default_rng(1)
    ln = set_affine(cr.LayerNorm(6).astype(np.float64), rng)
    x = rng.normal(1.0, 2.0, size=(3, 4, 6))
    want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) \
        * ln.params["weight"] + ln.params["bias"]
    np.testing.assert_allclose(ln.forward(x, training=True), want, atol=1e-12)
    np.testing.assert_allclose(ln.forward(x, training=False), want, atol=1e-12)


# --- finite differences ----------------------------------------------------------------------------
def numeric_input_gradient(f, x, h=1e-4):
    """Central differences (fourth order) of the scalar f over every entry of x."""
    num = np.zeros_like(x)
    flat, out = x.reshape(-1), num.reshape(-1)
    for j in range(flat.size):
        orig, vals = flat[j], []
        for k in (2, 1, -1, -2):
            flat[j] = orig + k * h
            vals.append(f(x))
        flat[j] = orig
        out[j] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
    return num


@pytest.mark.parametrize("shape", [(5, 3), (3, 3, 2, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_input_gradient_is_the_derivative_of_the_whole_batch_loss(shape, training):
    # In training every output depends on every input of its channel (through μ and σ), so
    # dL/dx is checked against the difference of the loss of the whole batch.
    rng = np.random.default_rng(2)
    bn = set_affine(cr.BatchNorm(3).astype(np.float64), rng)
    bn.buffers["running_mean"][:] = rng.normal(size=3)
    bn.buffers["running_var"][:] = rng.uniform(0.5, 2.0, 3)
    x, w = rng.normal(size=shape), rng.normal(size=shape)
    saved = {k: b.copy() for k, b in bn.buffers.items()}

    def loss(xx):
        out = bn.forward(xx, training)
        for k, b in bn.buffers.items():  # (the updates would otherwise pile up over the differences)
            b[...] = saved[k]
        return float(np.sum(w * out ** 2))

    y = bn.forward(x, training)
    analytic = bn.backward(2 * w * y)
    numeric = numeric_input_gradient(loss, x.copy())
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


def test_layernorm_input_gradient_is_the_derivative_of_the_loss():
    rng = np.random.default_rng(3)
    ln = set_affine(cr.LayerNorm(5).astype(np.float64), rng)
    x, w = rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 3, 5))
    y = ln.forward(x, training=True)
    analytic = ln.backward(2 * w * y)
    numeric = numeric_input_gradient(lambda xx: float(np.sum(w * ln.forward(xx, True) ** 2)), x.copy())
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_gradcheck_every_parameter_and_the_input(norm, training):
    rng = np.random.default_rng(4)
    middle = cr.BatchNorm(5, momentum=0.3) if norm == "batch" else cr.LayerNorm(5)
    net = cr.Sequential(cr.Dense(4, 5, seed=0), middle, cr.Tanh(), cr.Dense(5, 3, seed=1), dtype=np.float64)
    set_affine(net.layers[1], rng)
    X, y = rng.normal(size=(7, 4)), rng.normal(size=(7, 3))
    before = {k: b.copy() for k, b in net.layers[1].buffers.items()}
    report = cr.gradcheck(net, "mse", X, y, check_input=True, training=training)
    assert report.ok, str(report)
    assert {c.name for c in report.checks} == {"0.weight", "0.bias", "1.weight", "1.bias", "3.weight",
                                               "3.bias", "input"}  # buffers are not parameters
    for k, b in net.layers[1].buffers.items():  # the check ran on a copy
        np.testing.assert_array_equal(b, before[k])


def test_gradcheck_batchnorm_on_images_in_training():
    rng = np.random.default_rng(5)
    net = cr.Sequential(cr.BatchNorm(2), cr.Tanh(), dtype=np.float64)
    set_affine(net.layers[0], rng)
    X, y = rng.normal(size=(3, 2, 3, 2)), rng.normal(size=(3, 2, 3, 2))
    report = cr.gradcheck(net, "mse", X, y, check_input=True, training=True)
    assert report.ok, str(report)


# --- PyTorch ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5, 3)])
def test_batchnorm_equals_torch_in_both_modes_over_several_steps(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    bn = set_affine(cr.BatchNorm(4, momentum=0.2, eps=1e-3).astype(np.float64), rng)
    ref = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(4, momentum=0.2, eps=1e-3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(bn.params["weight"].copy()))
        ref.bias.copy_(torch.from_numpy(bn.params["bias"].copy()))
    for training in (True, True, False, True, False):
        x, dy = rng.normal(1.0, 2.0, size=shape), rng.normal(size=shape)
        ref.train(training)
        ref.zero_grad()
        xt = torch.tensor(x, requires_grad=True)
        yt = ref(xt)
        yt.backward(torch.from_numpy(dy))
        y = bn.forward(x, training)
        dx = bn.backward(dy)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=TOL)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=TOL)
        np.testing.assert_allclose(bn.grads["weight"], ref.weight.grad.numpy(), rtol=0, atol=TOL)
        np.testing.assert_allclose(bn.grads["bias"], ref.bias.grad.numpy(), rtol=0, atol=TOL)
        np.testing.assert_allclose(bn.buffers["running_mean"], ref.running_mean.numpy(), rtol=0, atol=TOL)
        np.testing.assert_allclose(bn.buffers["running_var"], ref.running_var.numpy(), rtol=0, atol=TOL)


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7)])
def test_layernorm_equals_torch(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    ln = set_affine(cr.LayerNorm(7, eps=1e-4).astype(np.float64), rng)
    x, dy = rng.normal(1.0, 2.0, size=shape), rng.normal(size=shape)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(ln.params["weight"], requires_grad=True)
    bt = torch.tensor(ln.params["bias"], requires_grad=True)
    yt = torch.nn.functional.layer_norm(xt, (7,), wt, bt, 1e-4)
    yt.backward(torch.from_numpy(dy))
    y = ln.forward(x, training=True)
    dx = ln.backward(dy)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(ln.grads["weight"], wt.grad.numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(ln.grads["bias"], bt.grad.numpy(), rtol=0, atol=TOL)


# --- errors --------------------------------------------------------------------------------------------
def test_one_sample_per_channel_in_training_is_refused_like_torch():
    bn = cr.BatchNorm(3)
    with pytest.raises(cr.ShapeError, match=r"BatchNorm.*more than 1 value per channel when training.*\(1, 3\)"):
        bn(np.ones((1, 3)), training=True)
    assert bn(np.ones((1, 3))).shape == (1, 3)  # evaluation uses the running statistics
    assert bn(np.arange(6.0).reshape(1, 3, 2, 1), training=True).shape == (1, 3, 2, 1)  # 2 values each


@pytest.mark.parametrize("layer, x, match", [
    (cr.BatchNorm(3), np.ones((4, 5)), r"BatchNorm\(num_features=3.*expects 3 features.*\(4, 5\)"),
    (cr.BatchNorm(3), np.ones((4, 2, 5, 5)), r"BatchNorm\(num_features=3.*expects 3 channels.*\(4, 2, 5, 5\)"),
    (cr.BatchNorm(3), np.ones((4, 3, 5)), r"BatchNorm.*\(n, 3\) or \(n, 3, H, W\).*3-D.*LayerNorm"),
    (cr.BatchNorm(3), np.ones(3), r"BatchNorm.*1-D array of shape \(3,\)"),
    (cr.LayerNorm(4), np.ones((2, 5)), r"LayerNorm\(normalized_shape=4.*4 features on the last axis.*\(2, 5\)"),
    (cr.LayerNorm(4), np.ones(4), r"LayerNorm.*at least 2 axes.*\(4,\)"),
])
def test_wrong_shapes_are_refused_naming_the_layer(layer, x, match):
    with pytest.raises(cr.ShapeError, match=match):
        layer(x, training=True)


@pytest.mark.parametrize("make, match", [
    (lambda: cr.BatchNorm(0), "BatchNorm num_features"),
    (lambda: cr.BatchNorm(True), "BatchNorm num_features"),
    (lambda: cr.BatchNorm(3, momentum=1.5), "BatchNorm momentum"),
    (lambda: cr.BatchNorm(3, momentum=float("nan")), "BatchNorm momentum"),
    (lambda: cr.BatchNorm(3, eps=0.0), "BatchNorm eps"),
    (lambda: cr.LayerNorm(2.5), "LayerNorm normalized_shape"),
    (lambda: cr.LayerNorm(4, eps=float("inf")), "LayerNorm eps"),
])
def test_bad_constructor_arguments_are_refused(make, match):
    with pytest.raises(cr.ConfigError, match=match):
        make()


# --- buffers: saved, cast, not trained -------------------------------------------------------------
def bn_net(dtype=np.float32):
    return cr.Sequential(cr.Dense(5, 8, seed=0), cr.BatchNorm(8), cr.ReLU(), cr.Dense(8, 6, seed=1),
                         cr.LayerNorm(6), cr.Dense(6, 3, seed=2), dtype=dtype)


def data(n=67, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] * X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    return X, y


def test_running_statistics_are_buffers_not_parameters():
    net = bn_net()
    assert set(net.layers[1].buffers) == {"running_mean", "running_var"}
    assert not any("running" in k for k in net.params)
    X, y = data()
    net.fit(X, y, loss=cr.CrossEntropy(), optimizer=cr.Adam(lr=0.01), epochs=1, batch_size=8, verbose=0)
    mean = net.layers[1].buffers["running_mean"]
    assert mean.dtype == np.float32 and not np.array_equal(mean, np.zeros(8))  # updated by the forward passes


def test_astype_casts_the_buffers():
    net = bn_net().astype(np.float64)
    assert all(b.dtype == np.float64 for b in net.layers[1].buffers.values())
    assert net.layers[1].astype(np.float32).buffers["running_var"].dtype == np.float32


def trained_net():
    X, y = data()
    net = bn_net()
    net.fit(X, y, loss=cr.CrossEntropy(), optimizer=cr.Adam(lr=0.01), epochs=2, batch_size=8, seed=0, verbose=0)
    return net, X


def test_save_and_load_keep_the_running_statistics_bit_for_bit(tmp_path):
    net, X = trained_net()
    net.save(tmp_path / "m.npz")
    loaded = cr.load(tmp_path / "m.npz")
    for a, b in zip(net.layers, loaded.layers, strict=True):
        assert a.buffers.keys() == b.buffers.keys()
        for k in a.buffers:
            assert a.buffers[k].dtype == b.buffers[k].dtype and np.array_equal(a.buffers[k], b.buffers[k])
    assert np.array_equal(net.predict(X), loaded.predict(X))
    header, arrays = cr_io.read(tmp_path / "m.npz")
    spec = header["layers"][1]
    assert spec["params"] == ["weight", "bias"] and spec["buffers"] == ["running_mean", "running_var"]
    assert "buffers" not in header["layers"][0]  # layers without buffers are written as before


def test_a_wrapped_batchnorm_keeps_its_running_statistics(tmp_path):
    rng = np.random.default_rng(8)
    net = cr.Sequential(cr.TimeDistributed(cr.BatchNorm(3)), dtype=np.float64)
    X = rng.normal(2.0, 1.5, size=(4, 5, 3))
    net.layers[0].forward(X, training=True)  # per feature over the 4·5 rows
    np.testing.assert_allclose(net.layers[0].buffers["running_mean"], 0.1 * X.reshape(-1, 3).mean(0), rtol=1e-13)
    net.save(tmp_path / "m.npz")
    loaded = cr.load(tmp_path / "m.npz")
    assert np.array_equal(loaded.layers[0].buffers["running_var"], net.layers[0].buffers["running_var"])
    assert np.array_equal(loaded.predict(X), net.predict(X))


def tampered(tmp_path, edit):
    net, _ = trained_net()
    header, arrays = cr_io.model_parts(net)
    edit(header, arrays)
    path = tmp_path / "bad.npz"
    cr_io.write(path, header, arrays)  # checksums recomputed: only the model checks can stop it
    return path


@pytest.mark.parametrize("edit, match", [
    (lambda h, a: h["layers"][1].pop("buffers"), r"layer 1 \(BatchNorm\) should have buffers"),
    (lambda h, a: h["layers"][1].update(buffers=["running_mean"]), r"should have buffers"),
    (lambda h, a: a.pop("layers.1.running_var"), r"missing array layers.1.running_var"),
    (lambda h, a: a.update({"layers.1.running_var": np.ones(7, np.float32)}), r"running_var.*shape \(8,\)"),
    (lambda h, a: a.update({"layers.1.running_mean": np.arange(8)}), r"running_mean should be a float array"),
    (lambda h, a: a.update({"layers.1.running_var": np.full(8, np.inf, np.float32)}), "NaN or inf"),
    (lambda h, a: h["layers"][1]["config"].update(num_features=10**12), r"num_features.*cannot hold"),
])
def test_a_damaged_buffer_or_config_is_refused(tmp_path, edit, match):
    path = tampered(tmp_path, edit)
    with pytest.raises(cr.FileFormatError, match=match):
        cr.load(path)


def test_a_model_with_a_diverged_running_variance_is_not_saved(tmp_path):
    net, _ = trained_net()
    net.layers[1].buffers["running_var"][2] = np.inf
    with pytest.raises(cr.DataError, match=r"buffer layers.1.running_var holds inf"):
        net.save(tmp_path / "m.npz")




FIT = dict(loss=cr.CrossEntropy(), epochs=3, batch_size=8, seed=0, verbose=0)


@pytest.mark.parametrize("crash_at", [5, 13])
def test_a_crashed_run_with_batchnorm_resumes_bit_for_bit(tmp_path, crash_at):
    X, y = data()
    ref = bn_net()
    ref.fit(X, y, optimizer=cr.Adam(lr=0.01), **FIT)
    path = tmp_path / "run.ckpt"
    with pytest.raises(RuntimeError, match="simulated"):
        bn_net().fit(X, y, optimizer=cr.Adam(lr=0.01), callbacks=[Crash(crash_at)], checkpoint=path,
                     checkpoint_every=4, **FIT)
    net = bn_net()
    net.fit(X, y, optimizer=cr.Adam(lr=0.01), resume=path, checkpoint=path, checkpoint_every=4, **FIT)
    for key, p in ref.params.items():
        assert np.array_equal(net.params[key], p), key
    for a, b in zip(ref.layers, net.layers, strict=True):
        for k in a.buffers:
            assert np.array_equal(a.buffers[k], b.buffers[k]), k
    assert np.array_equal(ref.predict(X), net.predict(X))


def test_a_float32_network_with_normalization_learns():
    X, y = data(n=128)
    net = bn_net()
    history = net.fit(X, y, loss=cr.CrossEntropy(), optimizer=cr.Adam(lr=0.01), epochs=8, batch_size=16,
                      seed=0, verbose=0)
    losses = history.history["loss"]
    assert net.predict(X).dtype == np.float32
    assert losses[-1] < 0.8 * losses[0]
