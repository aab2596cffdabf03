"""The renderings of a trace: one self-contained HTML page with an SVG edge per weight, Markdown
with the numbers of the text, LaTeX that stays ASCII and balanced, and the layer summary of a
network too big to write out."""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser

import numpy as np
import pytest

import chainrule as cr
from chainrule.explain.examples import EXAMPLES, example

VOID = {"meta", "br", "input", "img", "hr", "link", "circle", "line", "path"}
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


class StrictParser(HTMLParser):
    """Records tags, checks that every element is closed in order, and collects edges."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.edges: list[dict] = []
        self.tags: Counter = Counter()
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] += 1
        if tag == "line" and a.get("class") == "edge":
            self.edges.append(a)
        for key in ("src", "href"):
            if key in a:
                self.external.append(f"{tag} {key}={a[key]}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def parse(page: str) -> StrictParser:
    p = StrictParser()
    p.feed(page)
    p.close()
    return p


LAYERED_EXAMPLES = ["conv", "attention", "rnn"]  # written out layer by layer, in matrix form
DENSE_EXAMPLES = [name for name in EXAMPLES if name not in LAYERED_EXAMPLES]


@pytest.mark.parametrize("name", LAYERED_EXAMPLES)
def test_layer_by_layer_html_is_one_valid_self_contained_page(name):
    page = example(name).explain().to_html()
    p = parse(page)
    assert p.errors == [] and p.stack == []
    assert p.tags["html"] == p.tags["style"] == p.tags["script"] == 1 and p.tags["svg"] == 0
    assert "http://" not in page and "https://" not in page and p.external == []
    assert page.count('class="cr-step"') > 10


@pytest.mark.parametrize("name", DENSE_EXAMPLES)
def test_html_is_one_valid_self_contained_page_with_an_edge_per_weight(name):
    ex = example(name)
    trace = ex.explain()
    page = trace.to_html()
    p = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert p.errors == [] and p.stack == []
    assert p.tags["html"] == p.tags["svg"] == p.tags["style"] == p.tags["script"] == 1
    n_weights = sum(layer.params["weight"].size for layer in ex.net.layers if "weight" in layer.params)
    assert len(p.edges) == n_weights
    assert sorted(e["data-name"] for e in p.edges) == sorted(f"w{k}" for k in range(1, n_weights + 1))
    assert "http://" not in page and "https://" not in page and p.external == []
    w1 = next(e for e in p.edges if e["data-name"] == "w1")
    assert float(w1["data-gradient"]) == pytest.approx(trace.value("dE/dw1", section="check"), rel=1e-12)
    assert float(w1["data-weight"]) == pytest.approx(float(ex.net.layers[0].params["weight"][0, 0]))


def test_html_edges_show_sign_and_size():
    trace = example("xor").explain()
    edges = {e["data-name"]: e for e in parse(trace.to_html()).edges}
    # w1 = 0.5 (positive, blue); w5 = -1.2 (negative, red, the largest, the thickest)
    assert edges["w1"]["stroke"] != edges["w5"]["stroke"]
    widths = {k: float(e["stroke-width"]) for k, e in edges.items()}
    assert max(widths, key=widths.get) == "w5"
    contribution = float(edges["w2"]["data-contribution"])   # w2 = 0.4 from i2 = 0 (first sample)
    assert contribution == 0.0


def test_notebook_display_is_a_fragment():
    trace = example("single-neuron").explain()
    frag = trace._repr_html_()
    p = parse(frag)
    assert p.errors == [] and p.stack == []
    assert "<html" not in frag and "<script" not in frag
    assert len(p.edges) == 2


def text_numbers(text: str) -> Counter:
    return Counter(NUMBER.findall(text))


@pytest.mark.parametrize("name,notation", [("mazur", "scalar"), ("test-score", "scalar"), ("xor", "matrix")])
def test_markdown_has_the_numbers_of_the_text(name, notation):
    trace = example(name).explain(notation=notation, n_steps=2)
    text, md = trace.to_text(), trace.to_markdown()
    body_text = text.split("\n\n", 1)[1]                       # past the title and description
    body_md = md.split("\n\n", 2)[2]
    assert text_numbers(body_text) == text_numbers(body_md)
    assert "```text" in md and "| name | connects | value | where |" in md


def test_latex_is_ascii_and_balanced():
    for notation in ("scalar", "matrix"):
        tex = example("mazur").explain(notation=notation).to_latex()
        assert tex.isascii()
        assert tex.count("{") == tex.count("}")
        assert tex.count(r"\left") == tex.count(r"\right")
        assert tex.count(r"\begin{align*}") == tex.count(r"\end{align*}") > 10
        assert tex.startswith(r"\documentclass") and tex.rstrip().endswith(r"\end{document}")
    body = example("mazur").explain().to_latex(standalone=False)
    assert r"\documentclass" not in body
    assert r"\frac{\partial E}{\partial w_{5}}" in body and "0.082167041" in body


def test_save_picks_the_format_from_the_extension(tmp_path):
    trace = example("single-neuron").explain()
    for ext, marker in ((".txt", "Forward pass\n"), (".md", "## Forward pass"), (".tex", r"\subsection*"),
                        (".html", "<!DOCTYPE html>")):
        path = trace.save(tmp_path / f"t{ext}")
        assert marker in path.read_text(encoding="utf-8")
    with pytest.raises(cr.ChainruleError, match="format"):
        trace.save(tmp_path / "t.pdf")


def test_digits_is_a_rendering_choice():
    trace = example("mazur").explain()
    assert "= 0.593269992" in trace.to_text()
    assert "= 0.5933\n" in trace.to_text(digits=4)
    assert "= 0.593269992" in str(cr.explain(*_args(), digits=9))
    assert "= 0.59327\n" in str(cr.explain(*_args(), digits=5))


def _args():
    net = cr.Sequential(cr.Dense(2, 1, weight=[[0.15], [0.2]], bias=[0.35]), cr.Sigmoid(), dtype=np.float64)
    return net, "sse", [0.05, 0.1], [0.01]


def test_oversized_network_gets_the_message_and_the_layer_summary():
    net = cr.mlp([20, 16, 10], activation="tanh", seed=0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(4, 20))
    trace = cr.explain(net, cr.CrossEntropy(), x, [1, 3, 5, 7], lr=0.1)
    assert trace.oversized and "too big" in trace.message and "480 weights" in trace.message
    text = str(trace)
    assert "Layer summary" in text and "update ratio" in text
    assert "net_h1 =" not in text and "dE/dw1 =" not in text
    summary = [s for s in trace.steps if s.section == "summary"]
    assert len(summary) == 2
    for s, layer in zip(summary, [net.layers[0], net.layers[2]], strict=True):
        assert s.info["W shape"] == "x".join(map(str, layer.params["weight"].shape))
        assert s.info["check"] < 1e-7
        assert s.info["update ratio"] == pytest.approx(
            0.1 * s.info["‖dE/dW‖"] / np.linalg.norm(layer.params["weight"]), rel=1e-12)
    assert len(text.splitlines()) < 40
    page = trace.to_html()
    assert parse(page).errors == [] and "too big" in page and "<svg" not in page
    assert "Layer summary" in trace.to_markdown() and "Layer summary" in trace.to_latex()


def test_wide_layer_and_large_batch_are_oversized_too():
    net = cr.Sequential(cr.Dense(2, 17, seed=0), cr.Sigmoid(), cr.Dense(17, 1, seed=1), dtype=np.float64)
    trace = cr.explain(net, "mse", [[0.1, 0.2]], [[0.5]])
    assert trace.oversized and "17 units" in trace.message
    small = cr.Sequential(cr.Dense(2, 1, seed=0), dtype=np.float64)
    trace = cr.explain(small, "mse", np.ones((9, 2)), np.ones((9, 1)))
    assert trace.oversized and "9 samples" in trace.message
    assert not cr.explain(small, "mse", np.ones((9, 2)), np.ones((9, 1)), max_samples=9).oversized
