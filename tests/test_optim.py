"""Optimizers against independent references written from torch.optim's documented algorithms.

Each reference below is a plain NumPy transcription of the pseudocode in the PyTorch docs
(torch.optim.SGD, Adam, AdamW, RMSprop, Adagrad), run on a small parameter with a fixed
sequence of gradients; chainrule's optimizer is fed the same gradients through a layer's
``grads`` and must follow the same trajectory for 5 steps. No chainrule code is used by the
references, and no PyTorch is needed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr

N_STEPS = 5
THETA0 = np.array([[0.5, -1.2, 0.3], [2.0, -0.1, 0.8]])


def gradient_sequence(seed=0):
    rng = np.random.default_rng(seed)
    grads = rng.normal(0, 1, size=(N_STEPS, *THETA0.shape))
    grads[2] *= 10.0  # one large step, to exercise the moment estimates
    grads[3, 0, 0] = 0.0
    return grads


# --- references (torch.optim docs pseudocode) --------------------------------------------------
def ref_sgd(theta, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    theta, b, out = theta.copy(), None, []
    for t, g in enumerate(grads, start=1):
        if weight_decay != 0:
            g = g + weight_decay * theta
        if momentum != 0:
            b = g.copy() if t == 1 else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        theta = theta - lr * g
        out.append(theta)
    return out


def ref_adam(theta, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    b1, b2 = betas
    theta, m, v, out = theta.copy(), np.zeros_like(theta), np.zeros_like(theta), []
    for t, g in enumerate(grads, start=1):
        if decoupled:  # AdamW: θ ← θ − γλθ
            theta = theta - lr * weight_decay * theta
        elif weight_decay != 0:
            g = g + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(theta)
    return out


def ref_rmsprop(theta, grads, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    theta, v, g_ave, b, out = theta.copy(), np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta), []
    for g in grads:
        if weight_decay != 0:
            g = g + weight_decay * theta
        v = alpha * v + (1 - alpha) * g**2
        v_tilde = v
        if centered:
            g_ave = alpha * g_ave + (1 - alpha) * g
            v_tilde = v - g_ave**2
        if momentum > 0:
            b = momentum * b + g / (np.sqrt(v_tilde) + eps)
            theta = theta - lr * b
        else:
            theta = theta - lr * g / (np.sqrt(v_tilde) + eps)
        out.append(theta)
    return out


def ref_adagrad(theta, grads, lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    theta, out = theta.copy(), []
    state_sum = np.full_like(theta, initial_accumulator_value)
    for t, g in enumerate(grads, start=1):
        clr = lr / (1 + (t - 1) * lr_decay)
        if weight_decay != 0:
            g = g + weight_decay * theta
        state_sum = state_sum + g**2
        theta = theta - clr * g / (np.sqrt(state_sum) + eps)
        out.append(theta)
    return out


# --- driving chainrule with the same gradients --------------------------------------------------
def run_chainrule(optimizer, grads):
    layer = cr.Dense(2, 3, weight=THETA0, use_bias=False, dtype=np.float64)
    out = []
    for g in grads:
        layer.grads["weight"][...] = g
        optimizer.step(layer)
        out.append(layer.params["weight"].copy())
    return out


CASES = {
    "SGD": (lambda: cr.SGD(lr=0.1), lambda th, gs: ref_sgd(th, gs, 0.1)),
    "SGD_momentum": (lambda: cr.SGD(lr=0.1, momentum=0.9),
                     lambda th, gs: ref_sgd(th, gs, 0.1, momentum=0.9)),
    "SGD_nesterov": (lambda: cr.SGD(lr=0.1, momentum=0.9, nesterov=True),
                     lambda th, gs: ref_sgd(th, gs, 0.1, momentum=0.9, nesterov=True)),
    "SGD_weight_decay": (lambda: cr.SGD(lr=0.1, weight_decay=0.05),
                         lambda th, gs: ref_sgd(th, gs, 0.1, weight_decay=0.05)),
    "SGD_dampening": (lambda: cr.SGD(lr=0.1, momentum=0.8, dampening=0.3, weight_decay=0.01),
                      lambda th, gs: ref_sgd(th, gs, 0.1, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    "SGD_nesterov_weight_decay": (
        lambda: cr.SGD(lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.1),
        lambda th, gs: ref_sgd(th, gs, 0.05, momentum=0.5, nesterov=True, weight_decay=0.1)),
    "Adam": (lambda: cr.Adam(lr=0.01), lambda th, gs: ref_adam(th, gs, 0.01)),
    "Adam_betas_eps": (lambda: cr.Adam(lr=0.05, betas=(0.8, 0.9), eps=1e-3),
                       lambda th, gs: ref_adam(th, gs, 0.05, betas=(0.8, 0.9), eps=1e-3)),
    "Adam_weight_decay": (lambda: cr.Adam(lr=0.01, weight_decay=0.1),
                          lambda th, gs: ref_adam(th, gs, 0.01, weight_decay=0.1)),
    "AdamW": (lambda: cr.AdamW(lr=0.01, weight_decay=0.1),
              lambda th, gs: ref_adam(th, gs, 0.01, weight_decay=0.1, decoupled=True)),
    "AdamW_default_decay": (lambda: cr.AdamW(lr=0.01),
                            lambda th, gs: ref_adam(th, gs, 0.01, weight_decay=0.01, decoupled=True)),
    "RMSProp": (lambda: cr.RMSProp(lr=0.01), lambda th, gs: ref_rmsprop(th, gs, 0.01)),
    "RMSProp_centered": (lambda: cr.RMSProp(lr=0.01, centered=True),
                         lambda th, gs: ref_rmsprop(th, gs, 0.01, centered=True)),
    "RMSProp_momentum": (lambda: cr.RMSProp(lr=0.01, momentum=0.9, alpha=0.9),
                         lambda th, gs: ref_rmsprop(th, gs, 0.01, momentum=0.9, alpha=0.9)),
    "RMSProp_centered_momentum_decay": (
        lambda: cr.RMSProp(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1),
        lambda th, gs: ref_rmsprop(th, gs, 0.01, momentum=0.5, centered=True, weight_decay=0.1)),
    "Adagrad": (lambda: cr.Adagrad(lr=0.1), lambda th, gs: ref_adagrad(th, gs, 0.1)),
    "Adagrad_lr_decay": (lambda: cr.Adagrad(lr=0.1, lr_decay=0.5),
                         lambda th, gs: ref_adagrad(th, gs, 0.1, lr_decay=0.5)),
    "Adagrad_decay_accumulator": (
        lambda: cr.Adagrad(lr=0.1, lr_decay=0.1, weight_decay=0.2, initial_accumulator_value=0.5),
        lambda th, gs: ref_adagrad(th, gs, 0.1, lr_decay=0.1, weight_decay=0.2, initial_accumulator_value=0.5)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_optimizer_follows_the_torch_optim_trajectory_for_five_steps(case):
    make, reference = CASES[case]
    grads = gradient_sequence()
    got = run_chainrule(make(), grads)
    expected = reference(THETA0, grads)
    for step, (a, b) in enumerate(zip(got, expected, strict=True), start=1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"{case}, step {step}")
    assert not np.allclose(got[-1], THETA0)


def test_defaults_are_torch_optim_defaults():
    assert (cr.SGD().lr, cr.SGD().momentum, cr.SGD().dampening, cr.SGD().nesterov) == (0.01, 0, 0, False)
    adam = cr.Adam()
    assert (adam.lr, adam.betas, adam.eps, adam.weight_decay) == (0.001, (0.9, 0.999), 1e-8, 0)
    assert cr.AdamW().weight_decay == 0.01
    rms = cr.RMSProp()
    assert (rms.lr, rms.alpha, rms.eps, rms.momentum, rms.centered) == (0.01, 0.99, 1e-8, 0, False)
    ada = cr.Adagrad()
    assert (ada.lr, ada.lr_decay, ada.eps, ada.initial_accumulator_value) == (0.01, 0, 1e-10, 0)


def test_float32_parameters_follow_the_reference_to_float32_precision():
    layer = cr.Dense(2, 3, weight=THETA0, use_bias=False)  # float32
    opt = cr.Adam(lr=0.01)
    grads = gradient_sequence(1)
    for g in grads:
        layer.grads["weight"][...] = g
        opt.step(layer)
    assert layer.params["weight"].dtype == np.float32
    np.testing.assert_allclose(layer.params["weight"], ref_adam(THETA0, grads, 0.01)[-1], rtol=1e-5, atol=1e-6)


# --- clipping ---------------------------------------------------------------------------------
def two_params(weight_grad, bias_grad):
    layer = cr.Dense(2, 2, weight=np.zeros((2, 2)), bias=np.zeros(2), dtype=np.float64)
    layer.grads["weight"][...] = weight_grad
    layer.grads["bias"][...] = bias_grad
    return layer


@pytest.mark.parametrize("max_norm", [0.5, 3.0, 100.0])
def test_clip_norm_scales_all_gradients_by_max_norm_over_the_global_norm(max_norm):
    gw, gb = np.array([[1.0, -2.0], [0.5, 2.0]]), np.array([-1.0, 0.25])
    total = math.sqrt((gw**2).sum() + (gb**2).sum())  # 3.25
    coef = min(1.0, max_norm / (total + 1e-6))  # torch.nn.utils.clip_grad_norm_
    layer = two_params(gw, gb)
    cr.SGD(lr=1.0, clip_norm=max_norm).step(layer)
    np.testing.assert_allclose(layer.params["weight"], -coef * gw, rtol=1e-14)
    np.testing.assert_allclose(layer.params["bias"], -coef * gb, rtol=1e-14)


def test_clip_grad_norm_function_returns_the_norm_before_clipping():
    gw, gb = np.array([[3.0, 0.0]]), np.array([4.0])
    norm = cr.clip_grad_norm([gw, gb], 1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([gw.ravel(), gb]), np.array([3.0, 0.0, 4.0]) / (5.0 + 1e-6))


def test_clip_norm_spans_every_layer_of_a_network():
    net = cr.Sequential(cr.Dense(1, 1, weight=[[0.0]], bias=[0.0]), cr.Dense(1, 1, weight=[[0.0]], bias=[0.0]),
                        dtype=np.float64)
    for layer, (gw, gb) in zip(net.layers, [(3.0, 0.0), (0.0, 4.0)], strict=True):
        layer.grads["weight"][...] = gw
        layer.grads["bias"][...] = gb
    cr.SGD(lr=1.0, clip_norm=1.0).step(net)
    coef = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose([p.item() for p in net.params.values()], [-3 * coef, 0.0, 0.0, -4 * coef])


def test_clip_value_clips_each_entry():
    gw, gb = np.array([[1.0, -2.0], [0.5, 2.0]]), np.array([-1.0, 0.25])
    layer = two_params(gw, gb)
    cr.SGD(lr=1.0, clip_value=0.75).step(layer)
    np.testing.assert_array_equal(layer.params["weight"], -np.clip(gw, -0.75, 0.75))
    np.testing.assert_array_equal(layer.params["bias"], -np.clip(gb, -0.75, 0.75))


def test_clip_norm_then_clip_value():
    gw, gb = np.array([[3.0, 0.0], [0.0, 0.0]]), np.array([4.0, 0.0])
    layer = two_params(gw, gb)
    cr.SGD(lr=1.0, clip_norm=2.5, clip_value=0.9).step(layer)
    coef = 2.5 / (5.0 + 1e-6)  # 3 -> 1.5 -> 0.9 and 4 -> 2.0 -> 0.9
    np.testing.assert_allclose(layer.params["weight"], -np.clip(coef * gw, -0.9, 0.9))
    np.testing.assert_allclose(layer.params["bias"], -np.clip(coef * gb, -0.9, 0.9))


# --- frozen parameters ----------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: cr.SGD(lr=0.1, momentum=0.9, weight_decay=0.1),
                                  lambda: cr.Adam(lr=0.1), lambda: cr.AdamW(lr=0.1),
                                  lambda: cr.RMSProp(lr=0.1), lambda: cr.Adagrad(lr=0.1)],
                         ids=["SGD", "Adam", "AdamW", "RMSProp", "Adagrad"])
def test_frozen_parameters_are_left_untouched(make):
    layer = cr.Dense(2, 2, weight=[[1.0, 2.0], [3.0, 4.0]], bias=[0.5, -0.5], dtype=np.float64)
    layer.freeze("bias")
    opt = make()
    for g in gradient_sequence()[:, :2, :2]:
        layer.grads["weight"][...] = g
        layer.grads["bias"][...] = g[0]
        opt.step(layer)
    np.testing.assert_array_equal(layer.params["bias"], [0.5, -0.5])
    assert not np.array_equal(layer.params["weight"], [[1.0, 2.0], [3.0, 4.0]])


def test_frozen_parameters_do_not_count_in_the_clipping_norm():
    layer = two_params(np.array([[3.0, 0.0], [0.0, 0.0]]), np.array([400.0, 0.0]))
    layer.freeze("bias")
    cr.SGD(lr=1.0, clip_norm=10.0).step(layer)
    np.testing.assert_allclose(layer.params["weight"], [[-3.0, 0.0], [0.0, 0.0]])


def test_unfreeze_lets_a_parameter_train_again():
    layer = cr.Dense(1, 1, weight=[[1.0]], bias=[1.0], dtype=np.float64).freeze()
    assert layer.frozen == {"weight", "bias"}
    layer.unfreeze("bias")
    layer.grads["weight"][...] = 1.0
    layer.grads["bias"][...] = 1.0
    cr.SGD(lr=0.5).step(layer)
    assert layer.params["weight"].item() == 1.0 and layer.params["bias"].item() == 0.5


def test_freezing_an_unknown_parameter_is_refused():
    with pytest.raises(cr.ChainruleError, match="gamma"):
        cr.Dense(1, 1).freeze("gamma")


# --- schedules ----------------------------------------------------------------------------------
EPOCHS = range(12)


@pytest.mark.parametrize(("schedule", "closed_form"), [
    (cr.StepLR(step_size=3, gamma=0.5), lambda e: 0.2 * 0.5 ** (e // 3)),
    (cr.StepLR(step_size=1), lambda e: 0.2 * 0.1**e),
    (cr.ExponentialLR(gamma=0.9), lambda e: 0.2 * 0.9**e),
    (cr.CosineLR(t_max=10), lambda e: 0.5 * 0.2 * (1 + math.cos(math.pi * min(e, 10) / 10))),
    (cr.CosineLR(t_max=8, eta_min=0.02),
     lambda e: 0.02 + 0.5 * (0.2 - 0.02) * (1 + math.cos(math.pi * min(e, 8) / 8))),
    (lambda e: 0.2 / (1 + 0.5 * e), lambda e: 0.2 / (1 + 0.5 * e)),
], ids=["StepLR", "StepLR_default_gamma", "ExponentialLR", "CosineLR", "CosineLR_eta_min", "callable"])
def test_schedule_gives_its_closed_form_lr_each_epoch(schedule, closed_form):
    opt = cr.SGD(lr=0.2, schedule=schedule)
    for epoch in EPOCHS:
        opt.set_epoch(epoch)
        assert opt.lr == pytest.approx(closed_form(epoch), rel=1e-12, abs=1e-15), epoch
    assert opt.base_lr == 0.2


def test_cosine_schedule_reaches_eta_min_at_t_max_and_stays():
    schedule = cr.CosineLR(t_max=5, eta_min=0.01)
    assert schedule(0, 0.1) == pytest.approx(0.1)
    assert schedule(5, 0.1) == pytest.approx(0.01)
    assert schedule(9, 0.1) == pytest.approx(0.01)


def test_scheduled_lr_is_the_lr_of_the_update():
    layer = cr.Dense(1, 1, weight=[[0.0]], use_bias=False, dtype=np.float64)
    opt = cr.SGD(lr=1.0, schedule=cr.StepLR(step_size=1, gamma=0.5))
    positions = []
    for epoch in range(4):
        opt.set_epoch(epoch)
        layer.grads["weight"][...] = 1.0
        opt.step(layer)
        positions.append(layer.params["weight"].item())
    np.testing.assert_allclose(positions, [-1.0, -1.5, -1.75, -1.875])


@pytest.mark.parametrize("bad", [lambda: cr.StepLR(0), lambda: cr.ExponentialLR(0.0),
                                 lambda: cr.CosineLR(0), lambda: cr.SGD(lr=0.1, schedule=3)])
def test_bad_schedules_are_refused(bad):
    with pytest.raises(cr.ChainruleError):
        bad()


def test_an_assigned_lr_is_the_lr_of_the_next_update():
    # callbacks such as ReduceLROnPlateau set opt.lr between steps
    layer = cr.Dense(1, 1, weight=[[0.0]], use_bias=False, dtype=np.float64)
    opt = cr.SGD(lr=1.0)
    positions = []
    for lr in (1.0, 0.25, 0.25, 2.0):
        opt.lr = lr
        layer.grads["weight"][...] = 1.0
        opt.step(layer)
        positions.append(layer.params["weight"].item())
    assert positions == [-1.0, -1.25, -1.5, -3.5]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_update_is_theta_minus_lr_times_g_in_the_parameter_dtype(dtype):
    rng = np.random.default_rng(4)
    theta, g = rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=(3, 4)).astype(dtype)
    layer = cr.Dense(3, 4, weight=theta, use_bias=False, dtype=dtype)
    layer.grads["weight"][...] = g
    cr.SGD(lr=0.1).step(layer)
    # NumPy's own rule for a Python float with an array: the float is rounded to the array's dtype
    expected = theta - np.asarray(g * 0.1, dtype)
    assert layer.params["weight"].dtype == dtype
    np.testing.assert_array_equal(layer.params["weight"], expected)
