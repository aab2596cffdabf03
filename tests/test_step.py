"""The training step: one update written out, the same whichever door drives it."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    return X, rng.normal(size=(40, 2))


def _net():
    return cr.Sequential(cr.Dense(5, 4, seed=0), cr.Tanh(), cr.Dense(4, 2, seed=1), dtype=np.float64)


def test_a_step_is_forward_loss_backward_update_by_hand():
    X, y = _data()
    net, ref = _net(), _net()
    _, loss, _ = cr.make_step(net, cr.MSE(), cr.SGD(lr=0.1))(X, y)
    out = ref(X)
    ref.backward(cr.MSE().grad(out, y))
    cr.SGD(lr=0.1).step(ref)
    assert loss == pytest.approx(cr.MSE().value(out, y), rel=1e-15)
    for a, b in zip(net.get_weights(), ref.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def _zeroed(net):
    for layer in net.layers:
        for g in layer.grads.values():
            g[...] = 0
    return net


@pytest.mark.parametrize("reg", [cr.L1(0.03), cr.L2(0.03), cr.L2(0.6, per_sample=True)])
def test_regularizer_gradient_matches_a_finite_difference_of_its_penalty(reg):
    net, n = _net(), 20

    def penalty():  # the value alone (the gradient it adds is thrown away)
        value = reg.add_gradient(net, n)
        _zeroed(net)
        return value

    reg.add_gradient(_zeroed(net), n)
    for layer in net.layers:
        if "bias" in layer.params:
            assert not layer.grads["bias"].any()  # biases are not penalized
    analytic = net.layers[2].grads["weight"].copy()
    w, h = net.layers[2].params["weight"], 1e-6
    for idx in np.ndindex(*w.shape):
        old = w[idx]
        w[idx] = old + h
        up = penalty()
        w[idx] = old - h
        down = penalty()
        w[idx] = old
        assert analytic[idx] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-9)


def test_fit_with_l2_equals_weight_decay_by_hand():
    # SGD on MSE + ½λ‖W‖² (weights only) is SGD on MSE with λ·W added to the weights' gradients
    X, y = _data()
    lam, lr = 0.05, 0.1
    net = _net()
    history = net.fit(X, y, loss="mse", optimizer=cr.SGD(lr=lr), epochs=3, batch_size=None, shuffle=False,
                      verbose=0, regularizer=cr.L2(lam))
    ref = _net()
    losses = []
    for _ in range(3):
        out = ref(X)
        value = cr.MSE().value(out, y)
        ref.backward(cr.MSE().grad(out, y))
        penalty = 0.0
        for layer in ref.layers[::2]:
            w = layer.params["weight"]
            penalty += 0.5 * lam * float(np.sum(w * w))
            layer.grads["weight"] += lam * w
        losses.append(value + penalty)
        cr.SGD(lr=lr).step(ref)
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-12)
    for a, b in zip(net.get_weights(), ref.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "x"])
def test_regularizer_rate_is_checked(bad):
    with pytest.raises(cr.errors.ConfigError, match="rate"):
        cr.L2(bad)


def test_fit_refuses_a_regularizer_that_is_not_one():
    X, y = _data()
    with pytest.raises(cr.errors.ConfigError, match="regularizer"):
        _net().fit(X, y, loss="mse", epochs=1, verbose=0, regularizer=0.01)


@pytest.mark.parametrize("loss,target", [
    (cr.MSE(), "real"), (cr.SSE(), "real"), (cr.MSE(reduction="sum"), "real"),
    (cr.BinaryCrossEntropy(from_logits=True), "binary"), (cr.BinaryCrossEntropy(from_logits=True, reduction="sum"),
                                                           "binary"),
    (cr.CrossEntropy(), "labels"), (cr.CrossEntropy(), "rows"),
])
def test_weighted_loss_is_the_weighted_mean_of_per_sample_losses(loss, target):
    rng = np.random.default_rng(1)
    out = rng.normal(size=(6, 3))
    t = {"real": rng.normal(size=(6, 3)), "binary": rng.integers(0, 2, size=(6, 3)).astype(float),
         "labels": rng.integers(0, 3, size=6), "rows": rng.dirichlet(np.ones(3), size=6)}[target]
    w = rng.uniform(0.5, 2, size=6)
    t = loss.prepare_target(t, out.shape, out.dtype)
    value, grad = loss._weighted_value_and_grad(out.copy(), t, w)
    # independent: each sample's loss is the loss of that sample alone (reduction over one sample)
    one = [loss.value(out[i:i + 1], t[i:i + 1]) for i in range(6)]
    assert value == pytest.approx(float(w @ one) / w.sum(), rel=1e-12)
    # equal weights give the plain loss when it averages over samples
    if loss.reduction == "mean":
        assert loss._weighted_value_and_grad(out.copy(), t, np.ones(6))[0] == pytest.approx(loss.value(out, t))
    # the gradient against central differences of the weighted value
    h = 1e-6
    for idx in [(0, 0), (3, 2), (5, 1)]:
        up, down = out.copy(), out.copy()
        up[idx] += h
        down[idx] -= h
        numeric = (loss._weighted_value_and_grad(up, t, w)[0] - loss._weighted_value_and_grad(down, t, w)[0]) / (2 * h)
        assert grad[idx] == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_a_batch_with_all_weights_zero_changes_nothing():
    X, y = _data()
    net = _net()
    before = net.get_weights()
    cr.make_step(net, cr.MSE(), cr.SGD(lr=0.1))(X, y, np.zeros(len(X)))
    for a, b in zip(net.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_run_early_stopping_ended_stays_ended_on_resume(tmp_path):
    X, y = _data()
    path = tmp_path / "run.ckpt"

    def run(resume=None):
        net = _net()
        stop = cr.LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(net, "stop_training", epoch == 2))
        h = net.fit(X, y, loss="mse", optimizer=cr.SGD(lr=0.05), epochs=10, batch_size=8, seed=0, verbose=0,
                    callbacks=[stop], checkpoint=path, resume=resume)
        return net, h

    first, h1 = run()
    assert len(h1.history["loss"]) == 3 and h1.stopped_early
    again, h2 = run(resume=path)
    assert h2.history["loss"] == h1.history["loss"]  # nothing trained after the stop
    for a, b in zip(again.get_weights(), first.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_penalty_reaches_every_weight_but_no_bias_or_normalization_scale():
    net = cr.Sequential(cr.Dense(4, 4, seed=0), cr.Residual(cr.LayerNorm(4), cr.Dense(4, 4, seed=1)),
                        dtype=np.float64)
    names = [k for layer in net.layers for k in layer.penalized()]
    assert names == ["weight", "1.weight"]  # the Residual's inner Dense, not its LayerNorm scale
    _zeroed(net)
    cr.L2(1.0).add_gradient(net, 1)
    inner = net.layers[1].layers
    np.testing.assert_array_equal(inner[1].grads["weight"], inner[1].params["weight"])
    assert not inner[0].grads["weight"].any() and not inner[1].grads["bias"].any()
    gru = cr.GRU(4, 3, seed=2)
    assert gru.penalized() == ["weight_ih", "weight_hh"]
    attention = cr.MultiHeadAttention(4, 2, seed=0)
    assert sorted(attention.penalized()) == ["weight_k", "weight_o", "weight_q", "weight_v"]
