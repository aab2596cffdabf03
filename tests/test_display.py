"""Rich display in Jupyter: Sequential, History and the gradcheck report show HTML (and Markdown)
that is well-formed, carries the object's numbers and escapes text; print() stays as it was.

The expected numbers are written out here by hand (parameter counts of Dense layers) or read
from the object's own plain fields (history values, gradient arrays), never from the reprs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

import chainrule as cr
from chainrule.callbacks import History


def parse(markup: str) -> ET.Element:
    """The markup as an XML tree (fails on unclosed tags or bare & and <)."""
    return ET.fromstring(f"<root>{markup}</root>")


def texts(root: ET.Element) -> list[str]:
    return ["".join(e.itertext()).strip() for e in root.iter()]


def mazur_net() -> cr.Sequential:
    net = cr.Sequential(cr.Dense(2, 2, weight=[[0.15, 0.25], [0.20, 0.30]], bias=[0.35, 0.35]), cr.Sigmoid(),
                        cr.Dense(2, 2, weight=[[0.40, 0.50], [0.45, 0.55]], bias=[0.60, 0.60]), cr.Sigmoid(),
                        dtype=np.float64)
    net.layers[0].freeze("bias")
    return net


# --- Sequential ----------------------------------------------------------------------------------
SUMMARY = """\
#  layer                                  output shape  parameters
-  -------------------------------------  ------------  --------------
0  Dense(n_in=2, n_out=2, use_bias=True)  (None, 2)     6 frozen: bias
1  Sigmoid()                              (None, 2)     0
2  Dense(n_in=2, n_out=2, use_bias=True)  (None, 2)     6
3  Sigmoid()                              (None, 2)     0
-  -------------------------------------  ------------  --------------
parameters: 12 (10 trainable), dtype float64"""


def test_summary_and_print_of_a_network_are_unchanged(capsys):
    net = mazur_net()
    assert [line.rstrip() for line in net.summary().splitlines()] == SUMMARY.splitlines()
    print(net)
    assert capsys.readouterr().out == (
        "Sequential(Dense(n_in=2, n_out=2, use_bias=True), Sigmoid(), Dense(n_in=2, n_out=2, use_bias=True),"
        " Sigmoid(), dtype=float64)\n")


def test_network_html_is_the_summary_table_and_a_drawing_of_the_layers():
    net = mazur_net()
    root = parse(net._repr_html_())
    svg = root.find(".//{http://www.w3.org/2000/svg}svg")
    assert svg is not None and len(svg.findall("{http://www.w3.org/2000/svg}g")) == 4  # one box per layer
    rows = [[td.text for td in tr.findall("td")] for tr in root.iter("tr") if tr.findall("td")]
    assert rows == [["0", "Dense(n_in=2, n_out=2, use_bias=True)", "(None, 2)", "6 frozen: bias"],
                    ["1", "Sigmoid()", "(None, 2)", "0"],
                    ["2", "Dense(n_in=2, n_out=2, use_bias=True)", "(None, 2)", "6"],
                    ["3", "Sigmoid()", "(None, 2)", "0"]]
    assert any("parameters: 12 (10 trainable), dtype float64" in t for t in texts(root))
    assert "http" not in net._repr_html_().replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_network_html_escapes_layer_text():
    class Odd(cr.Identity):
        def __repr__(self) -> str:
            return "Odd(<b>&'\")"

    html = cr.Sequential(cr.Dense(2, 2), Odd())._repr_html_()
    assert "<b>" not in html
    assert "Odd(<b>&'\")" in texts(parse(html))


# --- History -------------------------------------------------------------------------------------
def history(**logs) -> History:
    h = History()
    for epoch, values in enumerate(zip(*logs.values(), strict=True)):
        h.on_epoch_end(epoch, dict(zip(logs, values, strict=True)))
    return h


def test_history_html_draws_one_chart_per_quantity_and_tables_the_final_values():
    h = history(loss=[0.9, 0.5, 0.25, 0.125], accuracy=[0.25, 0.5, 1.0, 0.75],
                val_loss=[1.0, 0.75, 0.5, 0.625], val_accuracy=[0.25, 0.25, 0.5, 0.5])
    root = parse(h._repr_html_())
    svgs = root.findall(".//{http://www.w3.org/2000/svg}svg")
    assert len(svgs) == 2  # loss with val_loss, accuracy with val_accuracy
    lines = [svg.findall("{http://www.w3.org/2000/svg}polyline") for svg in svgs]
    assert [len(x) for x in lines] == [2, 2]
    assert all(len(p.get("points").split()) == 4 for x in lines for p in x)  # one point per epoch
    rows = {tr.findall("td")[0].text: [td.text for td in tr.findall("td")[1:]]
            for tr in root.iter("tr") if tr.findall("td")}
    assert rows == {"loss": ["0.125", "0.125", "4"], "accuracy": ["0.75", "1", "3"],
                    "val_loss": ["0.625", "0.5", "3"], "val_accuracy": ["0.5", "0.5", "3"]}
    md = h._repr_markdown_()
    assert "| loss | 0.125 | 0.125 | 4 |" in md and "4 epochs" in md


def test_history_chart_leaves_a_gap_at_a_nan_and_keeps_one_epoch_runs():
    root = parse(history(loss=[1.0, float("nan"), 0.5, 0.25])._repr_html_())
    svg = root.find(".//{http://www.w3.org/2000/svg}svg")
    assert len(svg.findall("{http://www.w3.org/2000/svg}circle")) == 1  # epoch 1, alone
    assert len(svg.findall("{http://www.w3.org/2000/svg}polyline")) == 1  # epochs 3-4
    parse(History()._repr_html_())  # an empty history still renders


def test_history_repr_is_unchanged_and_names_are_escaped(capsys):
    h = history(**{"loss": [0.5], "a<b>&c": [1.0]})
    print(h)
    assert capsys.readouterr().out == "History(epochs=1, last={'loss': 0.5, 'a<b>&c': 1.0})\n"
    html = h._repr_html_()
    assert "<b>" not in html and "a<b>&c" in texts(parse(html))


def test_history_from_fit_shows_its_loss():
    X = np.array([[0.05, 0.10]])
    net = mazur_net()
    h = net.fit(X, [[0.01, 0.99]], loss="sse", optimizer=cr.SGD(lr=0.5), epochs=2, batch_size=1, verbose=0)
    html = h._repr_html_()
    parse(html)
    assert f"{h.history['loss'][-1]:.9g}" in html and f"{h.history['loss'][0]:.9g}" not in html


# --- the gradcheck report -------------------------------------------------------------------------
def test_gradcheck_html_lists_every_entry_with_analytic_numeric_error_and_verdict():
    net = mazur_net()
    report = cr.gradcheck(net, cr.SSE(), [[0.05, 0.10]], [[0.01, 0.99]])
    root = parse(report._repr_html_())
    assert [th.text for th in root.iter("th")] == ["parameter", "analytic", "numeric", "relative error",
                                                   "pass/fail"]
    rows = [[td.text for td in tr.findall("td")] for tr in root.iter("tr") if tr.findall("td")]
    assert len(rows) == 12  # 8 weights and 4 biases
    by_name = {r[0]: r for r in rows}
    # Mazur's dE/dw5 = 0.082167041 (w5 is layers[2] weight[0, 0]) and dE/dw1 = 0.000438568
    assert float(by_name["2.weight[0, 0]"][1]) == pytest.approx(0.082167041, abs=5e-10)
    assert float(by_name["0.weight[0, 0]"][1]) == pytest.approx(0.000438568, abs=5e-10)
    for name, analytic, numeric, rel, verdict in rows:
        param, index = name.split("[")
        idx = tuple(int(i) for i in index.rstrip("]").split(", "))
        assert analytic == f"{report[param].analytic[idx]:.9g}" and numeric == f"{report[param].numeric[idx]:.9g}"
        assert float(rel) < 1e-7 and verdict == "pass"
    caption = root.find(".//caption").text
    assert caption.startswith("gradcheck ok") and f"{report.max_relative_error:.3e}" in caption


def test_gradcheck_markdown_and_a_failing_entry():
    class Wrong(cr.Sigmoid):  # backward off by 10 %
        def backward(self, grad):
            return 1.1 * super().backward(grad)

    net = cr.Sequential(cr.Dense(2, 1, weight=[[0.15], [0.20]], bias=[0.35]), Wrong(), dtype=np.float64)
    report = cr.gradcheck(net, cr.SSE(), [[0.05, 0.10]], [[0.01]])
    md = report._repr_markdown_()
    assert md.startswith("**gradcheck FAILED")
    table = [line for line in md.splitlines() if line.startswith("| 0.")]
    assert len(table) == 3 and all(line.endswith("| FAIL |") for line in table)
    html = report._repr_html_()
    parse(html)
    assert html.count(">FAIL<") == 3
    assert str(report).splitlines()[0].split() == ["parameter", "shape", "max", "rel.", "error", "max", "abs.",
                                                   "error"]


def test_gradcheck_of_a_large_network_shows_the_worst_entry_of_each_parameter():
    net = cr.Sequential(cr.Dense(6, 8, seed=0), cr.Tanh(), cr.Dense(8, 3, seed=1), dtype=np.float64)
    rng = np.random.default_rng(0)
    report = cr.gradcheck(net, cr.MSE(), rng.normal(size=(4, 6)), rng.normal(size=(4, 3)))
    root = parse(report._repr_html_())
    rows = [[td.text for td in tr.findall("td")] for tr in root.iter("tr") if tr.findall("td")]
    expected = [f"{c.name}[{', '.join(map(str, c.worst_index))}]" for c in report.checks]
    assert [r[0] for r in rows] == expected
