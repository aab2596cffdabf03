"""Synthetic gradients (DNI / cDNI): zero start, oracle equivalence with backprop, the
bootstrapped regression targets against finite differences, and the fit plumbing."""

import copy

import numpy as np
import pytest

import chainrule as cr
from chainrule.credit import DNI, SyntheticGradient


def tanh_net(sizes=(4, 5, 6, 3), seed=0, dtype=np.float64):
    return cr.mlp(list(sizes), activation="tanh", seed=seed, dtype=dtype)


def data(n=8, n_in=4, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)), rng.integers(0, n_classes, n)


def interface_gradients(net, loss, x, y, cuts):
    """dL/dh at the input of each layer index in ``cuts``, by a plain forward/backward
    written here (independent of the rule): returns {cut: dL/d(input of layer cut)}."""
    out = x
    for layer in net.layers:
        out = layer.forward(out, True)
    grad = loss.grad(out, y)
    found = {}
    for i in range(len(net.layers) - 1, 0, -1):
        grad = net.layers[i].backward(grad)
        if i in cuts:
            found[i] = grad.copy()
    return found


class Oracle:
    """A 'synthetic gradient module' that returns the true s·dL/dh set from outside."""

    def __init__(self):
        self.value = None
        self.updates = 0

    def bind(self, optimizer):
        pass

    def predict(self, h, condition=None):
        assert self.value.shape == h.shape
        return self.value

    def update(self, target):
        self.updates += 1
        return 0.0


def max_rel_diff(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("optimizer", [cr.Adam(1e-2), cr.SGD(0.1, momentum=0.9)], ids=["adam", "sgd"])
@pytest.mark.parametrize("conditioned", [False, True], ids=["dni", "cdni"])
def test_zero_initialised_module_gives_exactly_zero_first_update(optimizer, conditioned):
    net = tanh_net(sizes=(4, 5, 6, 7, 3))
    before = net.get_weights()
    x, y = data()
    rule = DNI(conditioned=conditioned, seed=0)
    rule.begin(net, cr.CrossEntropy(), optimizer)
    rule.train_step(net, x, y)
    after = dict(zip(net.params, net.get_weights(), strict=True))
    top = rule.blocks[-1].start
    for (key, w0) in zip(net.params, before, strict=True):
        layer = int(key.split(".")[0])
        if layer < top:
            np.testing.assert_array_equal(after[key], w0, err_msg=f"{key} moved on the first step")
        else:
            assert np.any(after[key] != w0), f"top layer parameter {key} did not move"
    for m in rule.modules:  # the modules started at zero and predicted exactly 0
        assert isinstance(m, SyntheticGradient)
        np.testing.assert_array_equal(m._prediction, 0.0)


@pytest.mark.parametrize("optimizer", [cr.Adam(1e-2), cr.SGD(0.1, momentum=0.9)], ids=["adam", "sgd"])
def test_oracle_synthetic_gradients_reproduce_backprop_over_three_steps(optimizer):
    loss = cr.CrossEntropy()
    net_bp, net_dni = tanh_net(sizes=(4, 5, 6, 7, 3)), tanh_net(sizes=(4, 5, 6, 7, 3))
    opt_bp = copy.deepcopy(optimizer)
    oracles = [Oracle(), Oracle(), Oracle()]
    rule = DNI(modules=oracles)
    rule.begin(net_dni, loss, optimizer)
    cuts = [b.start for b in rule.blocks[1:]]
    for step in range(3):
        x, y = data(n=8, seed=step + 1)
        true = interface_gradients(copy.deepcopy(net_dni), loss, x, y, cuts)
        for oracle, cut in zip(oracles, cuts, strict=True):
            oracle.value = true[cut] * len(x)  # modules speak in s·dL/dh, s = batch size
        rule.train_step(net_dni, x, y)
        out = net_bp.forward(x, training=True)
        net_bp.backward(loss.grad(out, y))
        opt_bp.step(net_bp)
        for key, p in net_bp.params.items():
            assert max_rel_diff(net_dni.params[key], p) <= 1e-12, f"step {step + 1}, {key}"
    assert all(o.updates == 3 for o in oracles)


def test_mix_one_is_backprop():
    X, y = data(n=40, seed=3)
    net_bp, net_mix = tanh_net(), tanh_net()
    kwargs = dict(loss="crossentropy", epochs=3, batch_size=8, seed=0, verbose=0)
    net_bp.fit(X, y, optimizer=cr.Adam(1e-2), **kwargs)
    net_mix.fit(X, y, optimizer=cr.Adam(1e-2), rule=DNI(mix=1.0, seed=0), **kwargs)
    for key, p in net_bp.params.items():
        assert max_rel_diff(net_mix.params[key], p) <= 1e-12, key


def randomised_module(n_features, seed):
    m = SyntheticGradient(n_features, hidden=(4,), activation="tanh", seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed + 100)
    for p in m.net.layers[-1].params.values():
        p[...] = rng.standard_normal(p.shape)
    return m


def test_bootstrapped_target_is_the_vjp_of_the_next_block_with_pre_update_weights():
    loss = cr.CrossEntropy()
    net = tanh_net(sizes=(4, 5, 6, 7, 3))
    modules = [randomised_module(5, 1), randomised_module(6, 2), randomised_module(7, 3)]
    rule = DNI(modules=modules)
    rule.begin(net, loss, cr.SGD(0.5))
    x, y = data(n=6, seed=4)
    rule.train_step(net, x, y)  # one step, so the weights are no longer at their start
    before_net, before_modules = copy.deepcopy(net), copy.deepcopy(modules)
    rule.train_step(net, x, y)
    # the hidden states and the modules' predictions, from the weights before the step
    layer_blocks = [before_net.layers[0:2], before_net.layers[2:4], before_net.layers[4:6], before_net.layers[6:]]
    h, hs = x, []
    for blk in layer_blocks[:-1]:
        for layer in blk:
            h = layer.forward(h)
        hs.append(h)
    for i in range(2):  # the targets of modules 0 and 1: J_{i+1}ᵀ · δ̂_{i+1}
        pred_next = before_modules[i + 1].net.forward(hs[i + 1])

        def block_out(h_in, blk=layer_blocks[i + 1]):
            for layer in blk:
                h_in = layer.forward(h_in)
            return h_in

        def projected(h_in, shift, idx, pred=pred_next, fn=block_out):
            h_in = h_in.copy()
            h_in[idx] += shift
            return np.vdot(pred, fn(h_in))

        eps, numeric = 1e-3, np.zeros_like(hs[i])
        for idx in np.ndindex(hs[i].shape):  # fourth-order central difference of ⟨δ̂, f(h)⟩
            f = [projected(hs[i], k * eps, idx) for k in (-2, -1, 1, 2)]
            numeric[idx] = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * eps)
        rel = np.abs(rule.targets[i] - numeric) / np.maximum(np.abs(numeric), 1e-5)
        assert rel.max() < 1e-7, f"target of module {i}: max relative error {rel.max():.2e}"
    # the top interface: the true gradient (times the batch size)
    true = interface_gradients(before_net, loss, x, y, [6])[6] * len(x)
    assert max_rel_diff(rule.targets[2], true) <= 1e-12


def test_dni_and_cdni_train_through_fit_and_log_their_losses():
    (X, y), (Xt, yt) = cr.credit.teacher_task(2000, 500, seed=0)
    results = {}
    for conditioned in (False, True):
        net = cr.mlp([10, 32, 32, 10], seed=1)
        rule = DNI(conditioned=conditioned, seed=1, track_every=5)
        h = net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(1e-3), epochs=3, batch_size=64,
                    seed=1, verbose=0, rule=rule)
        for key in ("loss", "sg_loss_0", "sg_loss_1", "angle_0", "angle_2", "angle_4"):
            assert len(h.history[key]) == 3, key
        assert h.history["angle_4"] == [0.0, 0.0, 0.0]  # the top layer sees the true gradient
        assert h.history["loss"][-1] < h.history["loss"][0]
        results[conditioned] = net.get_weights()
        # a second fit goes on with the same modules and optimizer states
        modules = rule.modules
        net.fit(X, y, loss="crossentropy", optimizer=net.optimizer, epochs=1, batch_size=64, verbose=0,
                rule=rule)
        assert rule.modules is modules
    assert any(np.any(a != b) for a, b in zip(results[False], results[True], strict=True))


def test_same_seed_same_dni_run_bit_for_bit():
    (X, y), _ = cr.credit.teacher_task(500, 10, seed=0)
    runs = []
    for _ in range(2):
        net = cr.mlp([10, 16, 16, 10], seed=2)
        net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(1e-3), epochs=2, batch_size=50, seed=3,
                verbose=0, rule=DNI(conditioned=True, hidden=(8,), seed=4))
        runs.append(net.get_weights())
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_custom_cuts_put_one_interface_where_asked():
    net = tanh_net(sizes=(4, 5, 6, 7, 3))
    rule = DNI(cuts=[4])
    rule.begin(net, cr.CrossEntropy(), cr.Adam())
    assert [b.start for b in rule.blocks] == [0, 4]
    x, y = data()
    rule.train_step(net, x, y)
    assert len(rule.modules) == 1 and rule.modules[0].n_features == 6


def test_dni_rejects_bad_settings():
    with pytest.raises(cr.ConfigError, match="mix"):
        DNI(mix=1.5)
    with pytest.raises(cr.ConfigError, match="hidden layer"):
        DNI().begin(cr.Sequential(cr.Dense(3, 2)), cr.MSE(), cr.SGD())
    with pytest.raises(cr.ConfigError, match="modules"):
        DNI(modules=[Oracle()]).begin(tanh_net(), cr.MSE(), cr.SGD())
    with pytest.raises(cr.ConfigError, match="cuts"):
        DNI(cuts=[0]).begin(tanh_net(), cr.MSE(), cr.SGD())
    with pytest.raises(cr.ConfigError, match="rule must be"):
        tanh_net().fit(*data(), loss="crossentropy", rule="dni", verbose=0)
