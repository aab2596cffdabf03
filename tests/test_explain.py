"""explain on Mazur's example: the numbers the command prints, checked against plain arithmetic
done here (closed-form sigmoid, no chainrule) and against the figures of Mazur's blog post."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import chainrule as cr
from chainrule.cli import main

# Mazur, "A Step by Step Backpropagation Example" (2015), as quoted in issues 2 and 5.
MAZUR = {
    "out_h1": 0.593269992, "out_o1": 0.75136507, "out_o2": 0.772928465, "E_total": 0.298371109,
    "dE/dw5": 0.082167041, "dE/dw1": 0.000438568,
    "w5⁺": 0.35891648, "w6⁺": 0.408666186, "w7⁺": 0.511301270, "w8⁺": 0.561370121,
    "w1⁺": 0.149780716, "w2⁺": 0.19956143, "w3⁺": 0.24975114, "w4⁺": 0.29950229,
}


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def mazur_by_hand() -> dict[str, float]:
    """Every number of the worked example, in plain Python."""
    i1, i2, t1, t2 = 0.05, 0.10, 0.01, 0.99
    w = dict(w1=0.15, w2=0.20, w3=0.25, w4=0.30, w5=0.40, w6=0.45, w7=0.50, w8=0.55)
    b1, b2, lr = 0.35, 0.60, 0.5
    v = {}
    v["net_h1"] = w["w1"] * i1 + w["w2"] * i2 + b1
    v["net_h2"] = w["w3"] * i1 + w["w4"] * i2 + b1
    v["out_h1"], v["out_h2"] = sigmoid(v["net_h1"]), sigmoid(v["net_h2"])
    v["net_o1"] = w["w5"] * v["out_h1"] + w["w6"] * v["out_h2"] + b2
    v["net_o2"] = w["w7"] * v["out_h1"] + w["w8"] * v["out_h2"] + b2
    v["out_o1"], v["out_o2"] = sigmoid(v["net_o1"]), sigmoid(v["net_o2"])
    v["E_o1"], v["E_o2"] = 0.5 * (t1 - v["out_o1"]) ** 2, 0.5 * (t2 - v["out_o2"]) ** 2
    v["E_total"] = v["E_o1"] + v["E_o2"]
    v["dE/dout_o1"], v["dE/dout_o2"] = -(t1 - v["out_o1"]), -(t2 - v["out_o2"])
    v["dout_o1/dnet_o1"] = v["out_o1"] * (1 - v["out_o1"])
    v["dout_o2/dnet_o2"] = v["out_o2"] * (1 - v["out_o2"])
    d_o1 = v["dE/dnet_o1"] = v["dE/dout_o1"] * v["dout_o1/dnet_o1"]
    d_o2 = v["dE/dnet_o2"] = v["dE/dout_o2"] * v["dout_o2/dnet_o2"]
    v["dE/dw5"], v["dE/dw6"] = d_o1 * v["out_h1"], d_o1 * v["out_h2"]
    v["dE/dw7"], v["dE/dw8"] = d_o2 * v["out_h1"], d_o2 * v["out_h2"]
    v["dE/dout_h1"] = d_o1 * w["w5"] + d_o2 * w["w7"]
    v["dE/dout_h2"] = d_o1 * w["w6"] + d_o2 * w["w8"]
    v["dout_h1/dnet_h1"] = v["out_h1"] * (1 - v["out_h1"])
    v["dout_h2/dnet_h2"] = v["out_h2"] * (1 - v["out_h2"])
    d_h1 = v["dE/dnet_h1"] = v["dE/dout_h1"] * v["dout_h1/dnet_h1"]
    d_h2 = v["dE/dnet_h2"] = v["dE/dout_h2"] * v["dout_h2/dnet_h2"]
    v["dE/dw1"], v["dE/dw2"], v["dE/dw3"], v["dE/dw4"] = d_h1 * i1, d_h1 * i2, d_h2 * i1, d_h2 * i2
    for k in range(1, 9):
        v[f"w{k}⁺"] = w[f"w{k}"] - lr * v[f"dE/dw{k}"]
    new = {k: v[f"{k}⁺"] for k in w}
    h1 = sigmoid(new["w1"] * i1 + new["w2"] * i2 + b1)
    h2 = sigmoid(new["w3"] * i1 + new["w4"] * i2 + b1)
    o1 = sigmoid(new["w5"] * h1 + new["w6"] * h2 + b2)
    o2 = sigmoid(new["w7"] * h1 + new["w8"] * h2 + b2)
    v["E_total⁺"] = 0.5 * (t1 - o1) ** 2 + 0.5 * (t2 - o2) ** 2
    return v


STEP_START = re.compile(r"^(\S+) = ")


def parse_steps(text: str) -> dict[str, list[str]]:
    """name -> the lines of each step (a step starts at column 0 with "name = ", continuation
    lines are indented)."""
    steps: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        m = STEP_START.match(line)
        if m:
            current = [line]
            steps.setdefault(m.group(1), current)
        elif current is not None and line.startswith(" ") and line.strip().startswith("="):
            current.append(line)
        else:
            current = None
    return steps


def final_value(lines: list[str]) -> float:
    last = re.sub(r"\s+\[[^\]]*\]$", "", lines[-1])
    return float(last.rsplit(" = ", 1)[-1] if " = " in last else last.split("=", 1)[-1])


@pytest.fixture(scope="module")
def mazur_text():
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["explain", "--example", "mazur", "--lr", "0.5"])
    assert code == 0
    return buf.getvalue()


def test_mazur_numbers_match_independent_arithmetic(mazur_text):
    steps = parse_steps(mazur_text)
    expected = mazur_by_hand()
    for name, value in expected.items():
        assert name in steps, f"{name} missing from the output"
        shown = final_value(steps[name])
        # the printed value is the exact one rounded to 9 decimals / 9 significant digits
        assert shown == pytest.approx(value, abs=5.1e-10, rel=5.1e-9), name
    assert len(expected) >= 30


def test_mazur_numbers_match_the_blog_post(mazur_text):
    steps = parse_steps(mazur_text)
    for name, figure in MAZUR.items():
        decimals = len(repr(figure).split(".")[1])      # equal to the last digit the post gives
        assert round(final_value(steps[name]), decimals) == pytest.approx(figure, abs=1e-12), name


def test_mazur_prints_the_issue_lines_literally(mazur_text):
    text = mazur_text
    assert "net_h1 = w1·i1 + w2·i2 + b1_h1 = 0.15·0.05 + 0.2·0.1 + 0.35 = 0.3775" in text
    assert re.search(r"^out_h1 = .* = 0\.593269992$", text, re.M)
    assert re.search(r"^out_o1 = .* = 0\.75136507$", text, re.M)
    assert re.search(r"^E_total = .* = 0\.298371109$", text, re.M)
    w5 = parse_steps(text)["dE/dw5"]
    assert "dE/dout_o1 · dout_o1/dnet_o1 · dnet_o1/dw5" in w5[0]
    assert any("0.74136507 · 0.186815602 · 0.593269992" in line for line in w5)
    assert w5[-1].strip().endswith("= 0.082167041")
    assert parse_steps(text)["dE/dw1"][-1].strip().endswith("= 0.000438568")
    h1 = parse_steps(text)["dE/dout_h1"]
    assert h1[0] == "dE/dout_h1 = dE_o1/dout_h1 + dE_o2/dout_h1"
    for k, figure in (("w5⁺", "0.35891648"), ("w6⁺", "0.408666186"), ("w7⁺", "0.51130127"),
                      ("w8⁺", "0.561370121"), ("w1⁺", "0.149780716"), ("w2⁺", "0.199561432"),
                      ("w3⁺", "0.249751144"), ("w4⁺", "0.299502287")):
        assert parse_steps(text)[k][-1].endswith(f"= {figure}"), k
    # biases stay where Mazur leaves them
    assert re.search(r"^b2_o1⁺ = b2_o1 = 0\.6 +\[frozen", text, re.M)


def test_text_fits_100_columns(mazur_text):
    assert max(len(line) for line in mazur_text.splitlines()) <= 100


def test_chain_factors_multiply_to_the_gradient():
    trace = cr.explain(*_mazur_args(), lr=None)
    chains = [s for s in trace.steps if s.section == "backward" and s.name.startswith("dE/dw")]
    assert len(chains) == 8
    for s in chains:
        factors = s.rhs[1].numbers()
        assert math.prod(factors) == pytest.approx(s.value, rel=1e-12)


def test_hidden_gradient_is_the_sum_over_paths():
    trace = cr.explain(*_mazur_args())
    s = trace.find("dE/dout_h1")
    products = s.rhs[3].numbers()
    assert len(products) == 2
    assert sum(products) == pytest.approx(s.value, rel=1e-12)
    hand = mazur_by_hand()
    assert products[0] == pytest.approx(hand["dE/dnet_o1"] * 0.40, rel=1e-12)


def test_steps_with_lr_give_falling_error():
    from chainrule.explain.examples import example

    trace = example("mazur").explain(n_steps=3)
    assert len(trace.errors) == 4
    assert trace.errors[0] == pytest.approx(mazur_by_hand()["E_total"], rel=1e-12)
    assert trace.errors[1] == pytest.approx(mazur_by_hand()["E_total⁺"], rel=1e-12)
    assert all(a > b for a, b in zip(trace.errors, trace.errors[1:], strict=False))
    text = str(trace)
    assert "Step 3 of 3" in text and "Error per step" in text
    assert trace.value("out_o1", iteration=2) != trace.value("out_o1", iteration=1)


def test_matrix_notation_has_the_same_numbers():
    net, loss, x, y = _mazur_args()
    scalar = cr.explain(net, loss, x, y, lr=0.5)
    matrix = cr.explain(net, loss, x, y, lr=0.5, notation="matrix")
    dW2 = matrix.value("dE/dW²")
    assert dW2[0, 0] == pytest.approx(scalar.value("dE/dw5"), rel=1e-14)     # w5 = W²[0, 0]
    assert dW2[1, 0] == pytest.approx(scalar.value("dE/dw6"), rel=1e-14)     # w6 = W²[1, 0]
    assert dW2[0, 1] == pytest.approx(scalar.value("dE/dw7"), rel=1e-14)     # w7 = W²[0, 1]
    assert matrix.value("δ²")[0, 1] == pytest.approx(scalar.value("dE/dnet_o2"), rel=1e-14)
    assert matrix.value("W¹⁺")[1, 0] == pytest.approx(scalar.value("w2⁺"), rel=1e-14)
    text = str(matrix)
    assert "z¹ = a⁰·W¹ + b¹" in text and "δ² = dE/da² ∘ σ'(z²)" in text
    assert "w5     h1 → o1" in text and 'W²[0, 0] = layers[2].params["weight"][0, 0]' in text   # the mapping
    # the forward pass shows the weights before the update
    assert "[0.15 0.25; 0.2 0.3]" in text.split("Backward pass")[0]


def test_caller_network_is_left_alone():
    net, loss, x, y = _mazur_args()
    before = [w.copy() for w in net.get_weights()]
    cr.explain(net, loss, x, y, lr=0.5, n_steps=2)
    for a, b in zip(before, net.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_float32_network_is_explained_in_float64_with_a_note():
    net32 = cr.Sequential(cr.Dense(2, 1, weight=[[0.15], [0.2]], bias=[0.35]), cr.Sigmoid())
    trace = cr.explain(net32, "sse", [0.05, 0.1], [0.01])
    assert trace.network.dtype == np.float64
    assert any("float32" in line for line in trace.description)


def _mazur_args():
    net = cr.Sequential(cr.Dense(2, 2, weight=[[0.15, 0.25], [0.2, 0.3]], bias=[0.35, 0.35]), cr.Sigmoid(),
                        cr.Dense(2, 2, weight=[[0.4, 0.5], [0.45, 0.55]], bias=[0.6, 0.6]), cr.Sigmoid(),
                        dtype=np.float64)
    net.layers[0].freeze("bias")
    net.layers[2].freeze("bias")
    return net, cr.SSE(), [0.05, 0.1], [0.01, 0.99]
