"""Matt Mazur's "A Step by Step Backpropagation Example" (2-2-2 sigmoid network, one SGD step).

Every reference figure is the one printed in issue 2 (and Mazur's post), kept as a string so
the comparison uses exactly the digits given: |actual − figure| <= half a unit in the last
digit. The six dE/dw the issue gives only through the updated weights are recovered as
(w_before − w_after) / lr, so their tolerance is half a unit of w_after divided by lr.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

import chainrule as cr

LR = 0.5
INPUTS = np.array([[0.05, 0.10]])
TARGETS = np.array([[0.01, 0.99]])
W = {"w1": 0.15, "w2": 0.20, "w3": 0.25, "w4": 0.30, "w5": 0.40, "w6": 0.45, "w7": 0.50, "w8": 0.55}
B1, B2 = 0.35, 0.60

# Mazur's figures (issue 2), as printed.
OUT_H1 = "0.593269992"
OUT_H2 = "0.596884378"  # from Mazur's post
NET_H1 = "0.3775"  # from Mazur's post
NET_O1 = "1.105905967"  # from Mazur's post
OUT_O1 = "0.75136507"
OUT_O2 = "0.772928465"
E_TOTAL = "0.298371109"
DE_DW_GIVEN = {"w5": "0.082167041", "w1": "0.000438568"}
W_AFTER = {"w5": "0.35891648", "w6": "0.408666186", "w7": "0.511301270", "w8": "0.561370121",
           "w1": "0.149780716", "w2": "0.19956143", "w3": "0.24975114", "w4": "0.29950229"}

# (layer index, row, column) of each wᵢ with the (n_in, n_out) layout: weight[i, j] joins
# input i to unit j, so w1 (i1 -> h1) and w2 (i2 -> h1) form column 0 of the hidden weight.
POSITION = {"w1": (0, 0, 0), "w2": (0, 1, 0), "w3": (0, 0, 1), "w4": (0, 1, 1),
            "w5": (2, 0, 0), "w6": (2, 1, 0), "w7": (2, 0, 1), "w8": (2, 1, 1)}


def half_unit(figure: str) -> float:
    """Half a unit in the last digit of a printed decimal figure."""
    return 0.5 * 10.0 ** Decimal(figure).as_tuple().exponent


def assert_figure(actual: float, figure: str, scale: float = 1.0, what: str = "") -> None:
    tol = half_unit(figure) * scale * (1 + 1e-9)
    assert abs(float(actual) - float(figure)) <= tol, f"{what}: {actual!r} vs the figure {figure}"


def mazur_network(dtype=np.float64) -> cr.Sequential:
    hidden = cr.Dense(2, 2, weight=[[W["w1"], W["w3"]], [W["w2"], W["w4"]]], bias=[B1, B1])
    output = cr.Dense(2, 2, weight=[[W["w5"], W["w7"]], [W["w6"], W["w8"]]], bias=[B2, B2])
    net = cr.Sequential(hidden, cr.Sigmoid(), output, cr.Sigmoid(), dtype=dtype)
    hidden.freeze("bias")
    output.freeze("bias")
    return net


def weight(net, name: str) -> float:
    layer, i, j = POSITION[name]
    return float(net.layers[layer].params["weight"][i, j])


def grad(net, name: str) -> float:
    layer, i, j = POSITION[name]
    return float(net.layers[layer].grads["weight"][i, j])


def test_weight_layout_puts_w1_and_w2_in_column_zero():
    net = mazur_network()
    for name, value in W.items():
        assert weight(net, name) == value
    np.testing.assert_array_equal(net.layers[0].params["weight"][:, 0], [W["w1"], W["w2"]])


def test_forward_pass_reproduces_the_hidden_and_output_values():
    net = mazur_network()
    x = net._check_input(INPUTS)
    net_h = net.layers[0].forward(x)
    out_h = net.layers[1].forward(net_h)
    net_o = net.layers[2].forward(out_h)
    out_o = net.layers[3].forward(net_o)
    assert_figure(net_h[0, 0], NET_H1, what="net_h1")
    assert_figure(out_h[0, 0], OUT_H1, what="out_h1")
    assert_figure(out_h[0, 1], OUT_H2, what="out_h2")
    assert_figure(net_o[0, 0], NET_O1, what="net_o1")
    assert_figure(out_o[0, 0], OUT_O1, what="out_o1")
    assert_figure(out_o[0, 1], OUT_O2, what="out_o2")
    np.testing.assert_array_equal(net.forward(INPUTS), out_o)


def test_total_error_is_the_sse_of_the_worked_example():
    net = mazur_network()
    assert_figure(cr.SSE().value(net.forward(INPUTS), TARGETS), E_TOTAL, what="E_total")
    assert_figure(cr.SSE(reduction="sum").value(net.forward(INPUTS), TARGETS), E_TOTAL, what="E_total")


def test_backward_pass_gives_the_eight_weight_gradients():
    net = mazur_network()
    out = net.forward(INPUTS)
    net.backward(cr.SSE().grad(out, TARGETS))
    for name, figure in DE_DW_GIVEN.items():
        assert_figure(grad(net, name), figure, what=f"dE/d{name}")
    for name, after in W_AFTER.items():  # dE/dw = (w − w⁺)/lr, to the digits w⁺ is given
        expected = (Decimal(repr(W[name])) - Decimal(after)) / Decimal(repr(LR))
        tol = half_unit(after) / LR * (1 + 1e-9)
        assert abs(grad(net, name) - float(expected)) <= tol, f"dE/d{name}"
    # The hidden-layer gradients are the small ones, all positive; w7 and w8 point the other way.
    assert grad(net, "w7") < 0 and grad(net, "w8") < 0
    assert all(grad(net, f"w{k}") > 0 for k in (1, 2, 3, 4, 5, 6))


def test_frozen_biases_still_get_gradients():
    net = mazur_network()
    out = net.forward(INPUTS)
    net.backward(cr.SSE().grad(out, TARGETS))
    assert np.all(net.layers[0].grads["bias"] != 0) and np.all(net.layers[2].grads["bias"] != 0)


def check_after_one_step(net) -> None:
    for name, figure in W_AFTER.items():
        assert_figure(weight(net, name), figure, what=name)
    np.testing.assert_array_equal(net.layers[0].params["bias"], [B1, B1])
    np.testing.assert_array_equal(net.layers[2].params["bias"], [B2, B2])


def test_one_manual_sgd_step_gives_the_updated_weights():
    net = mazur_network()
    out = net.forward(INPUTS)
    net.backward(cr.SSE().grad(out, TARGETS))
    cr.SGD(lr=LR).step(net)
    check_after_one_step(net)


def test_one_epoch_of_fit_gives_the_updated_weights_and_the_error():
    net = mazur_network()
    history = net.fit(INPUTS, TARGETS, loss=cr.SSE(), optimizer=cr.SGD(lr=LR), epochs=1,
                      batch_size=1, shuffle=False, verbose=0)
    check_after_one_step(net)
    # The epoch's loss is measured on the forward pass before the step: Mazur's E_total.
    assert_figure(history.history["loss"][0], E_TOTAL, what="history loss")


def test_error_after_the_step_is_the_error_of_the_published_weights():
    net = mazur_network()
    net.fit(INPUTS, TARGETS, loss=cr.SSE(), optimizer=cr.SGD(lr=LR), epochs=1, batch_size=1,
            shuffle=False, verbose=0)
    # The error of the published w1..w8 (biases unchanged), worked out in closed form here.
    # (Mazur's post prints 0.291027924, which carries the rounding of his intermediate values.)
    w = {k: float(v) for k, v in W_AFTER.items()}
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    i1, i2 = INPUTS[0]
    h1, h2 = sig(w["w1"] * i1 + w["w2"] * i2 + B1), sig(w["w3"] * i1 + w["w4"] * i2 + B1)
    o1, o2 = sig(w["w5"] * h1 + w["w6"] * h2 + B2), sig(w["w7"] * h1 + w["w8"] * h2 + B2)
    expected = 0.5 * ((TARGETS[0, 0] - o1) ** 2 + (TARGETS[0, 1] - o2) ** 2)
    after = cr.SSE().value(net.predict(INPUTS), TARGETS)
    assert after == pytest.approx(expected, abs=1e-9)
    assert after < float(E_TOTAL)


def test_default_float32_network_agrees_to_float32_precision():
    net = mazur_network(np.float32)
    net.fit(INPUTS, TARGETS, loss=cr.SSE(), optimizer=cr.SGD(lr=LR), epochs=1, batch_size=1,
            shuffle=False, verbose=0)
    assert net.layers[0].params["weight"].dtype == np.float32
    for name, figure in W_AFTER.items():
        assert weight(net, name) == pytest.approx(float(figure), rel=1e-6)
