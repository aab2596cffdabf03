"""gradcheck (float64 central differences) against every layer's and loss's backward pass.

Issue 2 acceptance: max relative error < 1e-7 for every layer and loss, alone and in random
stacks of 2 to 5 layers, at random inputs that keep ReLU-like units away from their kinks.
The reference is the finite difference of the forward pass, never the backward under test.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr

TOL = 1e-7
N_SAMPLES = 3
KINKED = (cr.ReLU, cr.LeakyReLU, cr.ELU)
MARGIN = 0.05  # |z| kept above this at every kinked unit: the largest finite-difference
#                step (2h = 2e-3 on one entry) moves z far less than that.


ZERO_PRESERVING = (cr.Identity, cr.Tanh, cr.LeakyReLU, cr.ELU)


def kink_inputs(net: cr.Sequential, X: np.ndarray, training: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """(pre-activation, held_at_zero) at every ReLU-like layer, in the mode gradcheck will use.

    ``held_at_zero`` marks entries that are exactly 0 whatever the small perturbations of
    the check (a unit Dropout dropped, or a ReLU cut off earlier): they sit at the kink but
    nothing moves them, so the function stays smooth there. Dropout generators are put
    back as they were, so gradcheck draws the same masks.
    """
    states = [(layer.rng, layer.rng.bit_generator.state) for layer in net.layers
              if isinstance(layer, cr.Dropout)]
    seen = []
    out = X
    held = np.zeros(X.shape, dtype=bool)
    for layer in net.layers:
        if isinstance(layer, KINKED):
            seen.append((out.copy(), held))
        new = layer.forward(out, training)
        if isinstance(layer, cr.Dropout):
            held = held | (new == 0) if layer._mask is not None else held
        elif isinstance(layer, cr.ReLU):
            held = held | (out < 0)
        elif not isinstance(layer, ZERO_PRESERVING):
            held = np.zeros(new.shape, dtype=bool)
        out = new
    for rng, state in states:
        rng.bit_generator.state = state
    return seen


def inputs_away_from_kinks(net, shape, rng, training=False, scale=1.0) -> np.ndarray:
    """Draw X until every kinked unit sees |z| > MARGIN (or a z held at exactly 0)."""
    for _ in range(500):
        X = rng.normal(0.0, scale, size=shape)
        if all(((np.abs(z) > MARGIN) | held).all() for z, held in kink_inputs(net, X, training)):
            return X
    raise AssertionError("could not draw inputs away from the kinks")  # pragma: no cover


def assert_gradcheck_ok(net, loss, X, y, training=False):
    report = cr.gradcheck(net, loss, X, y, check_input=True, training=training)
    assert report.ok, f"\n{report}"
    assert report.max_relative_error < TOL
    names = {c.name for c in report.checks}
    expected = {f"{i}.{k}" for i, layer in enumerate(net.layers) for k in layer.params}
    assert names == expected | {"input"}
    return report


def activation(name: str) -> cr.Layer:
    return {
        "Sigmoid": cr.Sigmoid, "Tanh": cr.Tanh, "ReLU": cr.ReLU,
        "LeakyReLU": lambda: cr.LeakyReLU(0.1), "ELU": lambda: cr.ELU(0.7),
        "Softplus": cr.Softplus, "Softmax": cr.Softmax, "Identity": cr.Identity,
    }[name]()


ACTIVATIONS = ["Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "Softplus", "Softmax", "Identity"]


# --- each layer alone ---------------------------------------------------------------------
@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
def test_dense_gradients_match_finite_differences(use_bias):
    rng = np.random.default_rng(1)
    net = cr.Sequential(cr.Dense(4, 3, use_bias=use_bias, bias_init="normal", seed=2), dtype=np.float64)
    X = rng.normal(size=(N_SAMPLES, 4))
    y = rng.normal(size=(N_SAMPLES, 3))
    report = assert_gradcheck_ok(net, cr.MSE(), X, y)
    assert ("0.bias" in {c.name for c in report.checks}) is use_bias


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_alone_input_gradient_matches_finite_differences(name):
    rng = np.random.default_rng(3)
    net = cr.Sequential(activation(name), dtype=np.float64)
    X = inputs_away_from_kinks(net, (N_SAMPLES, 4), rng, scale=2.0)
    y = rng.normal(size=(N_SAMPLES, 4))
    assert_gradcheck_ok(net, cr.MSE(), X, y)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_after_dense_gradients_match_finite_differences(name):
    rng = np.random.default_rng(4)
    net = cr.Sequential(cr.Dense(3, 4, init="normal", bias_init="normal", seed=5), activation(name),
                        dtype=np.float64)
    net.layers[0].params["weight"][...] = rng.normal(size=(3, 4))
    X = inputs_away_from_kinks(net, (N_SAMPLES, 3), rng)
    y = rng.normal(size=(N_SAMPLES, 4))
    assert_gradcheck_ok(net, cr.SSE(), X, y)


def test_kinked_activations_really_see_both_signs():
    """The kink-avoiding inputs still exercise both branches of ReLU, LeakyReLU and ELU."""
    rng = np.random.default_rng(3)
    net = cr.Sequential(cr.ReLU(), dtype=np.float64)
    X = inputs_away_from_kinks(net, (N_SAMPLES, 4), rng, scale=2.0)
    assert (X > MARGIN).any() and (X < -MARGIN).any()


def test_dropout_in_training_mode_gradients_match_finite_differences():
    rng = np.random.default_rng(6)
    net = cr.Sequential(cr.Dense(3, 6, seed=7), cr.Dropout(0.5, seed=8), cr.Tanh(), cr.Dense(6, 2, seed=9),
                        dtype=np.float64)
    X = rng.normal(size=(N_SAMPLES, 3))
    y = rng.normal(size=(N_SAMPLES, 2))
    report = assert_gradcheck_ok(net, cr.MSE(), X, y, training=True)
    # The mask is really on: some units of the first Dense get no gradient through it.
    grad_w = report["0.weight"].analytic
    assert (grad_w == 0).any() and (grad_w != 0).any()


def test_dropout_in_inference_mode_is_the_identity_for_gradients():
    rng = np.random.default_rng(10)
    net = cr.Sequential(cr.Dropout(0.5, seed=0), dtype=np.float64)
    X = rng.normal(size=(N_SAMPLES, 4))
    y = rng.normal(size=(N_SAMPLES, 4))
    report = assert_gradcheck_ok(net, cr.MSE(), X, y, training=False)
    np.testing.assert_allclose(report["input"].analytic, 2 * (X - y) / X.size, rtol=1e-12)


# --- each loss, after a Dense (and a Sigmoid for probability inputs) -----------------------
def loss_case(name: str, reduction: str, n_out: int, rng):
    """(loss, target, needs_sigmoid) for a network with ``n_out`` outputs."""
    if name == "MSE":
        return cr.MSE(reduction=reduction), rng.normal(size=(N_SAMPLES, n_out)), False
    if name == "SSE":
        return cr.SSE(reduction=reduction), rng.normal(size=(N_SAMPLES, n_out)), False
    if name == "BCE_probs":
        return (cr.BinaryCrossEntropy(from_logits=False, reduction=reduction),
                rng.uniform(0, 1, size=(N_SAMPLES, n_out)), True)
    if name == "BCE_logits":
        return (cr.BinaryCrossEntropy(from_logits=True, reduction=reduction),
                rng.uniform(0, 1, size=(N_SAMPLES, n_out)), False)
    if name == "CE_labels":
        return cr.CrossEntropy(reduction=reduction), rng.integers(0, n_out, size=N_SAMPLES), False
    if name == "CE_probs":
        return cr.CrossEntropy(reduction=reduction), rng.dirichlet(np.ones(n_out), size=N_SAMPLES), False
    raise KeyError(name)


LOSSES = ["MSE", "SSE", "BCE_probs", "BCE_logits", "CE_labels", "CE_probs"]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", LOSSES)
def test_loss_gradients_match_finite_differences(name, reduction):
    rng = np.random.default_rng(11)
    loss, y, needs_sigmoid = loss_case(name, reduction, 3, rng)
    layers = [cr.Dense(4, 3, bias_init="normal", seed=12)] + ([cr.Sigmoid()] if needs_sigmoid else [])
    net = cr.Sequential(*layers, dtype=np.float64)
    X = rng.normal(size=(N_SAMPLES, 4))
    assert_gradcheck_ok(net, loss, X, y)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", LOSSES)
def test_loss_gradient_on_the_output_alone_matches_finite_differences(name, reduction):
    """No parameters at all: dL/doutput itself is what gets checked (via the input)."""
    rng = np.random.default_rng(13)
    loss, y, needs_sigmoid = loss_case(name, reduction, 3, rng)
    net = cr.Sequential(cr.Sigmoid() if needs_sigmoid else cr.Identity(), dtype=np.float64)
    X = rng.normal(size=(N_SAMPLES, 3))
    assert_gradcheck_ok(net, loss, X, y)


# --- random stacks of 2 to 5 layers --------------------------------------------------------
LAYER_KINDS = ["dense", "dense_no_bias", "dropout", *ACTIVATIONS]


def random_stack(seed: int):
    """A seeded random Sequential of 2-5 layers (at least one Dense), a loss and a target."""
    rng = np.random.default_rng(seed)
    n_layers = int(rng.integers(2, 6))
    kinds = [str(k) for k in rng.choice(LAYER_KINDS, size=n_layers)]
    if not any(k.startswith("dense") for k in kinds):
        kinds[int(rng.integers(n_layers))] = "dense"
    n_in = width = int(rng.integers(2, 5))
    layers: list[cr.Layer] = []
    for kind in kinds:
        if kind.startswith("dense"):
            n_out = int(rng.integers(2, 5))
            layers.append(cr.Dense(width, n_out, init="normal", bias_init="normal",
                                   use_bias=kind == "dense", seed=int(rng.integers(2**31))))
            layers[-1].params["weight"][...] = rng.normal(0.0, 0.8, size=(width, n_out))
            width = n_out
        elif kind == "dropout":
            layers.append(cr.Dropout(0.3, seed=int(rng.integers(2**31))))
        else:
            layers.append(activation(kind))
    net = cr.Sequential(*layers, dtype=np.float64)
    names = ["MSE", "SSE", "BCE_logits"] + (["CE_labels", "CE_probs"] if width >= 2 else [])
    if kinds[-1] == "Sigmoid":
        names.append("BCE_probs")
    name = str(rng.choice(names))
    reduction = str(rng.choice(["mean", "sum"]))
    loss, y, _ = loss_case(name, reduction, width, rng)
    training = "dropout" in kinds
    X = inputs_away_from_kinks(net, (N_SAMPLES, n_in), rng, training=training)
    return net, loss, X, y, training, f"{kinds} + {name}/{reduction}"


STACK_SEEDS = list(range(24))


@pytest.mark.parametrize("seed", STACK_SEEDS)
def test_random_stack_gradients_match_finite_differences(seed):
    net, loss, X, y, training, description = random_stack(seed)
    report = cr.gradcheck(net, loss, X, y, check_input=True, training=training)
    assert report.ok, f"{description}\n{report}"
    assert report.max_relative_error < TOL


def test_random_stacks_cover_every_layer_kind():
    """The seeded stacks together use every layer type and 2 to 5 layers."""
    seen, depths = set(), set()
    for seed in STACK_SEEDS:
        net = random_stack(seed)[0]
        depths.add(len(net.layers))
        for layer in net.layers:
            seen.add(type(layer).__name__ if not isinstance(layer, cr.Dense) or layer.use_bias
                     else "Dense(no bias)")
    assert seen >= {"Dense", "Dense(no bias)", "Dropout", *ACTIVATIONS}
    assert depths == {2, 3, 4, 5}


def test_gradcheck_leaves_the_network_untouched():
    rng = np.random.default_rng(14)
    net = cr.Sequential(cr.Dense(3, 2, seed=0), cr.Tanh())  # float32
    before = net.get_weights()
    cr.gradcheck(net, cr.MSE(), rng.normal(size=(2, 3)), rng.normal(size=(2, 2)))
    assert net.dtype == np.float32
    for a, b in zip(before, net.get_weights(), strict=True):
        assert a.dtype == np.float32 and np.array_equal(a, b)


# --- gradcheck can fail --------------------------------------------------------------------
class _ScaledBackwardTanh(cr.Tanh):
    """A Tanh whose backward is off by a factor (a deliberately broken layer)."""

    factor = 1.01

    def backward(self, grad):
        return super().backward(grad) * self.factor


class _ScaledWeightGradDense(cr.Dense):
    """A Dense whose dL/dW is off by a factor while dL/dx stays right."""

    def backward_params(self, delta):
        super().backward_params(delta)
        self.grads["weight"] *= 1.001


def test_gradcheck_fails_on_a_backward_off_by_a_factor():
    rng = np.random.default_rng(15)
    net = cr.Sequential(cr.Dense(3, 4, seed=1), _ScaledBackwardTanh(), cr.Dense(4, 2, seed=2),
                        dtype=np.float64)
    report = cr.gradcheck(net, cr.MSE(), rng.normal(size=(3, 3)), rng.normal(size=(3, 2)),
                          check_input=True)
    assert report.ok is False
    assert not report
    assert report.max_relative_error > 1e-3
    # Only what flows through the broken layer is wrong; the last Dense is still right.
    assert report["2.weight"].max_relative_error < TOL
    assert report["0.weight"].max_relative_error > 1e-3
    assert "FAIL" in str(report)


def test_gradcheck_catches_a_wrong_weight_gradient_of_a_tenth_of_a_percent():
    rng = np.random.default_rng(16)
    net = cr.Sequential(_ScaledWeightGradDense(3, 2, seed=1), cr.Sigmoid(), dtype=np.float64)
    report = cr.gradcheck(net, cr.SSE(), rng.normal(size=(3, 3)), rng.uniform(size=(3, 2)),
                          check_input=True)
    assert report.ok is False
    assert report["0.weight"].max_relative_error == pytest.approx(1e-3, rel=1e-2)
    assert report["0.bias"].max_relative_error < TOL
    assert report["input"].max_relative_error < TOL


def test_gradcheck_in_float32_warns():
    rng = np.random.default_rng(17)
    net = cr.Sequential(cr.Dense(2, 2, seed=0), cr.Sigmoid())
    with pytest.warns(UserWarning, match="float32"):
        report = cr.gradcheck(net, cr.MSE(), rng.normal(size=(2, 2)), rng.normal(size=(2, 2)),
                              dtype=np.float32)
    assert np.dtype(report.dtype) == np.float32


def test_gradcheck_in_float64_does_not_warn(recwarn):
    rng = np.random.default_rng(18)
    net = cr.Sequential(cr.Dense(2, 2, seed=0), cr.Sigmoid())
    cr.gradcheck(net, cr.MSE(), rng.normal(size=(2, 2)), rng.normal(size=(2, 2)))
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
