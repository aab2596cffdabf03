"""explain for networks beyond a stack of Dense layers: convolution, pooling, attention, normalization.

Matrix notation, one layer at a time. Layer l maps Aˡ⁻¹ to Aˡ (A⁰ = x); a layer whose forward
is more than one product writes its inner matrices out too (the patch matrix X̂ˡ of a
convolution; the queries Qˡ, scores Sˡ and attention weights Pˡ of attention). The backward pass
is a list of numbered factors, each the matrix form of one link of the chain rule, from dE/dAᴸ
down to the first layer's parameters.

How the numbers are checked:

- every factor, entry by entry, against the central difference of E taken through the same
  forward equations (perturb that one matrix entry, recompute everything after it, take E);
- every layer's output Aˡ against the layer's own ``forward``, and every parameter gradient
  against the layer's own ``backward`` (the trace's description gives the largest difference).

So a trace is both a derivation a learner can follow and a test of the library's layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..gradcheck import relative_error
from ..layers import (
    ELU,
    GELU,
    GRU,
    LSTM,
    RNN,
    AvgPool2D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool2D,
    Identity,
    LayerNorm,
    LeakyReLU,
    MaxPool2D,
    MultiHeadAttention,
    PositionalEmbedding,
    ReLU,
    Residual,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from .formulas import LossForm
from .symbols import Call, Expr, Frac, Lit, Mat, Num, Part, Sym, at_step, deriv, layer_sym, total_error
from .tape import FD_STEP
from .trace import Step

ELEMENTWISE = (Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Softplus, GELU)

#: Layers the matrix trace writes out (besides Dropout and Identity, which pass their input on).
SUPPORTED = (Embedding, Dense, Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten, MultiHeadAttention,
             LayerNorm, PositionalEmbedding, RNN, LSTM, GRU, Softmax, *ELEMENTWISE)

#: A factor with more entries than this is checked on this many of them (chosen with a fixed seed).
CHECKED_ENTRIES = 12


# --- showing arrays ------------------------------------------------------------------------------
def squeezed(a: np.ndarray) -> np.ndarray:
    """``a`` without its leading axes of length 1 (one sample, one channel, one head), as shown."""
    a = np.asarray(a, dtype=np.float64)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    return a


class Blocks(Part):
    """An array of more than two axes: its matrices side by side, ( [..], [..] )."""

    def __init__(self, array) -> None:
        self.array = np.array(array, dtype=np.float64, copy=True)

    def render(self, fmt, digits):
        inner = [show(a).render(fmt, digits) for a in self.array]
        if fmt == "tex":
            return r"\left(" + ", ".join(inner) + r"\right)"
        if fmt == "html":
            return '<span class="cr-blocks">(' + ", ".join(inner) + ")</span>"
        return "(" + ", ".join(inner) + ")"

    def numbers(self):
        return [float(v) for v in self.array.ravel()]


def show(a) -> Part:
    a = squeezed(a)
    return Mat(a) if a.ndim <= 2 else Blocks(a)


# --- the graph of one forward pass ---------------------------------------------------------------
@dataclass
class Node:
    """One matrix of the forward pass: the input, a parameter, or one computed from earlier ones."""

    key: str
    sym: Sym
    value: np.ndarray
    fn: Callable | None = None        # fn(values) -> array; None for the input and the parameters
    where: str | None = None          # a parameter: 'layers[0].params["weight"]'
    owner: tuple | None = None        # a parameter: (its layer, its name)


class Graph:
    """The forward pass as an ordered list of nodes, so that E can be recomputed from any of them."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def leaf(self, key: str, sym: Sym, value, where: str | None = None, owner: tuple | None = None) -> np.ndarray:
        self.nodes[key] = Node(key, sym, np.array(value, dtype=np.float64), None, where, owner)
        return self.nodes[key].value

    def add(self, key: str, sym: Sym, fn: Callable) -> np.ndarray:
        value = np.asarray(fn(self.values()), dtype=np.float64)
        self.nodes[key] = Node(key, sym, value, fn)
        return value

    def values(self) -> dict[str, np.ndarray]:
        return {k: n.value for k, n in self.nodes.items()}

    def output(self, replaced: dict[str, np.ndarray]) -> np.ndarray:
        """The last node, recomputed with some nodes' values replaced."""
        vals: dict[str, np.ndarray] = {}
        for key, node in self.nodes.items():
            if key in replaced:
                vals[key] = replaced[key]
            elif node.fn is None:
                vals[key] = node.value
            else:
                vals[key] = node.fn(vals)
        return vals[key]

    def central_difference(self, key: str, index: tuple, energy: Callable, step: float = FD_STEP) -> float:
        """(−E(v+2h) + 8E(v+h) − 8E(v−h) + E(v−2h)) / 12h for one entry v of node ``key``."""
        base = self.nodes[key].value
        vals = []
        for k in (2, 1, -1, -2):
            moved = base.copy()
            moved[index] += k * step
            vals.append(energy(self.output({key: moved})))
        return (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * step)


# --- the trace being written --------------------------------------------------------------------
class Writer:
    """Collects the forward steps, the numbered backward factors and what each factor checks."""

    def __init__(self, graph: Graph, iteration: int) -> None:
        self.graph = graph
        self.iteration = iteration
        self.forward: list[Step] = []
        self.backward: list[Step] = []
        self.factors: list[tuple[str, str, np.ndarray]] = []   # (label, node key, dE/dnode)
        self.param_grads: dict[str, np.ndarray] = {}           # node key of a parameter -> dE/dθ
        self.numbers = 0                                        # layers numbered so far

    def count(self) -> int:
        """The number of the next layer (A¹, A², ... in the order the layers run)."""
        self.numbers += 1
        return self.numbers

    def node(self, key: str, sym: Sym, fn: Callable, forms: list, note: str = "") -> np.ndarray:
        value = self.graph.add(key, sym, fn)
        self.forward.append(Step("forward", sym, [*forms, show(value)], value, self.iteration, note=note))
        return value

    def factor(self, key: str, forms: list, value: np.ndarray, note: str = "") -> np.ndarray:
        """Number dE/d(node ``key``) and write it ``= forms... = value``."""
        value = np.asarray(value, dtype=np.float64)
        label = f"({len(self.factors) + 1})"
        sym = self.graph.nodes[key].sym
        self.backward.append(Step("backward", deriv("E", sym), [*forms, show(value)], value, self.iteration,
                                  note=note, label=label))
        self.factors.append((label, key, value))
        if self.graph.nodes[key].where is not None:
            self.param_grads[key] = value
        return value

    def say(self, lhs: Sym, forms: list, value, note: str = "") -> None:
        """A step of the backward pass that is not itself a factor (f'(z), a routing mask)."""
        self.backward.append(Step("backward", lhs, [*forms, show(value)], np.asarray(value), self.iteration,
                                  note=note))


def _sym(base: str, l: int, tex: str | None = None, html: str | None = None) -> Sym:
    s = layer_sym(base, l, tex_base=tex)
    if html is not None:
        s = Sym(s.text, s.tex, f"{html}<sup>{l}</sup>")
    return s


def _hat(base: str, l: int) -> Sym:
    return _sym(f"{base}\u0302", l, tex=rf"\hat{{{base}}}", html=f"{base}&#770;")


def _t(sym: Sym) -> Sym:
    """The transpose of a named matrix."""
    return Sym(f"({sym.text})ᵀ" if any(c in sym.text for c in "_/") else f"{sym.text}ᵀ",
               rf"\left({sym.tex}\right)^{{\mathsf{{T}}}}", f"{sym.html}<sup>T</sup>")


SUM = Lit("Σ ", r"\sum ", "Σ ")


# --- the layers ----------------------------------------------------------------------------------
def param_symbol(l: int, name: str, layer) -> Sym:
    """W¹, b¹, γ², W_q³: the symbol of parameter ``name`` of the layer numbered ``l``."""
    if isinstance(layer, LayerNorm):
        return _sym({"weight": "γ", "bias": "β"}[name], l, tex={"weight": r"\gamma", "bias": r"\beta"}[name])
    if isinstance(layer, PositionalEmbedding):
        return _sym("E_pos", l, tex=r"E_{\mathrm{pos}}", html="E<sub>pos</sub>")
    if isinstance(layer, Embedding):
        return _sym("E_tok", l, tex=r"E_{\mathrm{tok}}", html="E<sub>tok</sub>")
    base = {"weight": "W", "bias": "b"}[name.split("_")[0]]
    if "_" not in name:
        return _sym(base, l)
    sub = name.split("_", 1)[1]
    return _sym(f"{base}_{sub}", l, tex=f"{base}_{{{sub}}}", html=f"{base}<sub>{sub}</sub>")


def _params(w: Writer, layer, path: str, l: int) -> dict[str, str]:
    """Parameter leaves of the layer at ``path`` ("layers[2]"): {param name: node key}."""
    keys = {}
    for name in layer.params:
        key = f"{l}.{name}"
        w.graph.leaf(key, param_symbol(l, name, layer), layer.params[name], where=f'{path}.params["{name}"]',
                     owner=(layer, name))
        keys[name] = key
    return keys


def _patch_index(layer, h: int, wd: int):
    """Row and column indices (ho, wo, kh, kw) of every window's entries in the padded input."""
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    dh, dw = getattr(layer, "dilation", (1, 1))
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    i = (np.arange(ho) * sh)[:, None, None, None] + (np.arange(kh) * dh)[None, None, :, None]
    j = (np.arange(wo) * sw)[None, :, None, None] + (np.arange(kw) * dw)[None, None, None, :]
    return i, j, ho, wo


def _pads(layer) -> tuple[tuple[int, int], tuple[int, int]]:
    if hasattr(layer, "pad"):
        return layer.pad
    ph, pw = layer.padding
    return (ph, ph), (pw, pw)


def _windows(x: np.ndarray, layer, fill: float = 0.0):
    """(n, C, H, W) -> every window of the (padded) input, (n, C, ho, wo, kh, kw), and its indices."""
    (pt, pb), (pl, pr) = _pads(layer)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    i, j, ho, wo = _patch_index(layer, xp.shape[2], xp.shape[3])
    return xp[:, :, i, j], (i, j, xp.shape)


def _unwindow(d: np.ndarray, index, layer, x_shape) -> np.ndarray:
    """The adjoint of _windows: each input entry sums the window entries it was copied to."""
    i, j, padded = index
    (pt, _), (pl, _) = _pads(layer)
    out = np.zeros(padded)
    np.add.at(out, (slice(None), slice(None), i, j), d)
    return out[:, :, pt:pt + x_shape[2], pl:pl + x_shape[3]]


def conv2d(w: Writer, layer: Conv2D, path: str, l: int, a_in: str):
    P = _params(w, layer, path, l)
    A_in, W = w.graph.nodes[a_in].sym, w.graph.nodes[P["weight"]].sym
    c_out, c_in, kh, kw = layer.params["weight"].shape
    n = w.graph.nodes[a_in].value.shape[0]

    def patches(v):
        win, _ = _windows(v[a_in], layer)                        # (n, C, ho, wo, kh, kw)
        return win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, c_in * kh * kw)

    Xh, Wc, Z, A = _hat("X", l), _sym("W\u0303", l, tex=r"\tilde{W}", html="W&#771;"), _sym("Z", l), _sym("A", l)
    cols = w.node(f"{l}.X", Xh, patches, [Call("patches", r"\mathrm{patches}", A_in)],
                  note=f"one row per output position, one column per kernel entry ({c_in}·{kh}·{kw})")
    w.node(f"{l}.Wc", Wc, lambda v: v[P["weight"]].reshape(c_out, -1).T, [Expr(W, " as columns")],
           note="one column per output channel")
    win_shape = _windows(w.graph.nodes[a_in].value, layer)[0].shape
    ho, wo = win_shape[2], win_shape[3]
    bias = [" + ", w.graph.nodes[P["bias"]].sym] if "bias" in P else []

    def zfn(v):
        z = v[f"{l}.X"] @ v[f"{l}.Wc"]
        return z + v[P["bias"]] if "bias" in P else z

    w.node(f"{l}.Z", Z, zfn, [Expr(Xh, "·", Wc, *bias)])
    w.node(f"{l}.A", A, lambda v: v[f"{l}.Z"].reshape(n, ho, wo, c_out).transpose(0, 3, 1, 2),
                 [Expr(Z, Lit(" arranged as (n, C_out, H', W')"))])

    def back(G):
        dZ = w.factor(f"{l}.Z", [Expr(deriv("E", A), " arranged as rows")], G.transpose(0, 2, 3, 1).reshape(-1, c_out))
        dWc = w.factor(f"{l}.Wc", [Expr(_t(Xh), "·", deriv("E", Z)), Expr(Mat(cols.T), "·", Mat(dZ))], cols.T @ dZ)
        w.factor(P["weight"], [Expr(deriv("E", Wc), Lit(" arranged as the kernel (C_out, C_in, kh, kw)"))],
                 dWc.T.reshape(layer.params["weight"].shape))
        if "bias" in P:
            w.factor(P["bias"], [Expr(SUM, deriv("E", Z), Lit(" (over the rows)"))], dZ.sum(axis=0))
        if a_in == "x":
            return None
        dX = w.factor(f"{l}.X", [Expr(deriv("E", Z), "·", _t(Wc)),
                                 Expr(Mat(dZ), "·", Mat(w.graph.nodes[f"{l}.Wc"].value.T))],
                      dZ @ w.graph.nodes[f"{l}.Wc"].value.T)
        d6 = dX.reshape(n, ho, wo, c_in, kh, kw).transpose(0, 3, 1, 2, 4, 5)
        _, idx = _windows(w.graph.nodes[a_in].value, layer)
        return w.factor(a_in, [Call("unpatch", r"\mathrm{unpatch}", deriv("E", Xh))],
                        _unwindow(d6, idx, layer, w.graph.nodes[a_in].value.shape),
                        note="each input entry sums the patch entries it was copied to")

    return f"{l}.A", back


def pool2d(w: Writer, layer, path: str, l: int, a_in: str):
    A_in, A = w.graph.nodes[a_in].sym, _sym("A", l)
    x = w.graph.nodes[a_in].value
    is_max = isinstance(layer, MaxPool2D)
    fill = -np.inf if is_max else 0.0
    kh, kw = layer.kernel_size

    def fn(v):
        win, _ = _windows(v[a_in], layer, fill)
        return win.max(axis=(4, 5)) if is_max else win.mean(axis=(4, 5))

    name = "maxpool" if is_max else "avgpool"
    w.node(f"{l}.A", A, fn, [Call(name, rf"\mathrm{{{name}}}", A_in)],
           note=f"the {'largest' if is_max else 'mean'} entry of each {kh}×{kw} window")
    win, idx = _windows(x, layer, fill)
    if is_max:
        n, c, ho, wo = win.shape[:4]
        flat = win.reshape(n, c, ho, wo, kh * kw)
        mask = np.zeros_like(flat)
        np.put_along_axis(mask, flat.argmax(axis=-1)[..., None], 1.0, axis=-1)   # the first maximum
        mask = mask.reshape(win.shape)
        M = _sym("M", l)
        counts = _unwindow(mask, idx, layer, x.shape)
        w.forward.append(Step("forward", M, [Lit("[the entry is its window's maximum]"), show(counts)], counts,
                              w.iteration, note="how many windows take their maximum from each entry"))

    def back(G):
        if is_max:
            d = mask * G[..., None, None]
            form = [Expr(deriv("E", A), Lit(" routed to each window's maximum"))]
        else:
            d = np.broadcast_to(G[..., None, None] / (kh * kw), win.shape)
            form = [Expr(Lit("spread("), deriv("E", A), Lit(f") / {kh * kw}"))]
        return w.factor(a_in, form, _unwindow(d, idx, layer, x.shape))

    return f"{l}.A", back


def global_pool(w: Writer, layer, path: str, l: int, a_in: str):
    A_in, A = w.graph.nodes[a_in].sym, _sym("A", l)
    x = w.graph.nodes[a_in].value
    hw = x.shape[2] * x.shape[3]
    w.node(f"{l}.A", A, lambda v: v[a_in].mean(axis=(2, 3)), [Expr(Lit("mean over H, W of "), A_in)])

    def back(G):
        return w.factor(a_in, [Expr(deriv("E", A), Lit(f" / {hw} in every position"))],
                        np.broadcast_to(G[:, :, None, None] / hw, x.shape))

    return f"{l}.A", back


def flatten(w: Writer, layer, path: str, l: int, a_in: str):
    A_in, A = w.graph.nodes[a_in].sym, _sym("A", l)
    shape = w.graph.nodes[a_in].value.shape
    w.node(f"{l}.A", A, lambda v: v[a_in].reshape(shape[0], -1), [Expr(A_in, Lit(" as one row per sample"))])

    def back(G):
        return w.factor(a_in, [Expr(deriv("E", A), Lit(f" arranged as {shape[1:]}"))], G.reshape(shape))

    return f"{l}.A", back


def dense(w: Writer, layer: Dense, path: str, l: int, a_in: str):
    P = _params(w, layer, path, l)
    A_in, A = w.graph.nodes[a_in].sym, _sym("A", l)
    W = w.graph.nodes[P["weight"]].sym
    bias = [" + ", w.graph.nodes[P["bias"]].sym] if "bias" in P else []

    def fn(v):
        z = v[a_in] @ v[P["weight"]]
        return z + v[P["bias"]] if "bias" in P else z

    x = w.graph.nodes[a_in].value
    Wv = layer.params["weight"].astype(np.float64)
    w.node(f"{l}.A", A, fn, [Expr(A_in, "·", W, *bias), Expr(show(x), "·", Mat(Wv), *bias[:1],
                                                             *([Mat(layer.params["bias"])] if bias else []))])
    rows = " (the tokens of every sample as rows)" if x.ndim > 2 else ""

    def back(G):
        x2, g2 = x.reshape(-1, x.shape[-1]), G.reshape(-1, G.shape[-1])
        w.factor(P["weight"], [Expr(_t(A_in), "·", deriv("E", A)), Expr(Mat(x2.T), "·", Mat(g2))], x2.T @ g2,
                 note=rows.strip(" ()"))
        if "bias" in P:
            w.factor(P["bias"], [Expr(SUM, deriv("E", A), Lit(" (over the rows)"))], g2.sum(axis=0))
        if a_in == "x":
            return None
        return w.factor(a_in, [Expr(deriv("E", A), "·", _t(W)), Expr(show(G), "·", Mat(Wv.T))], G @ Wv.T)

    return f"{l}.A", back


_DERIVATIVES = {
    "Sigmoid": lambda z, a: Expr(a, "∘(1 - ", a, ")"),
    "Tanh": lambda z, a: Expr("1 - ", a, "∘", a),
    "ReLU": lambda z, a: Expr("[", z, " > 0]"),
    "LeakyReLU": lambda z, a: Expr("[", z, " > 0] + α·[", z, " ≤ 0]"),
    "ELU": lambda z, a: Expr("[", z, " > 0] + (", a, " + α)∘[", z, " ≤ 0]"),
    "Softplus": lambda z, a: Call("σ", r"\sigma", z),
    "GELU": lambda z, a: Expr(Lit("½(1 + t) + ½·"), z, Lit("·(1 - t²)·√(2/π)·(1 + 3·0.044715·"), z,
                              Lit("²), t = tanh(√(2/π)·("), z, Lit(" + 0.044715·"), z, Lit("³))")),
}


def elementwise(w: Writer, layer, path: str, l: int, a_in: str):
    A_in, A = w.graph.nodes[a_in].sym, _sym("A", l)
    f = type(layer).__name__
    w.node(f"{l}.A", A, lambda v: layer.forward(v[a_in].copy()), [Call(f, rf"\mathrm{{{f}}}", A_in)])

    def back(G):
        layer.forward(w.graph.nodes[a_in].value.copy())
        slope = np.asarray(layer.backward(np.ones_like(G)), dtype=np.float64)
        fp = Sym(f"{f}'({A_in.text})", rf"\mathrm{{{f}}}'\left({A_in.tex}\right)", f"{f}'({A_in.html})")
        w.say(fp, [_DERIVATIVES[f](A_in, A)], slope)
        return w.factor(a_in, [Expr(deriv("E", A), "∘", fp), Expr(show(G), "∘", show(slope))], G * slope)

    return f"{l}.A", back


def softmax(w: Writer, layer, path: str, l: int, a_in: str):
    A_in, A = w.graph.nodes[a_in].sym, _sym("A", l)

    def fn(v):
        e = np.exp(v[a_in] - v[a_in].max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    a = w.node(f"{l}.A", A, fn, [Call("softmax", r"\mathrm{softmax}", A_in)], note="over each row")

    def back(G):
        return w.factor(a_in, [Expr(A, "∘(", deriv("E", A), Lit(" - rowsum("), A, "∘", deriv("E", A), Lit("))"))],
                        a * (G - (G * a).sum(axis=-1, keepdims=True)), note="the softmax Jacobian applied")

    return f"{l}.A", back


def layer_norm(w: Writer, layer: LayerNorm, path: str, l: int, a_in: str):
    P = _params(w, layer, path, l)
    A_in, A, Xh = w.graph.nodes[a_in].sym, _sym("A", l), _hat("X", l)
    g, b = w.graph.nodes[P["weight"]].sym, w.graph.nodes[P["bias"]].sym
    eps = layer.eps
    x = w.graph.nodes[a_in].value
    inv = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)

    def norm(v):
        c = v[a_in] - v[a_in].mean(axis=-1, keepdims=True)
        return c / np.sqrt((c * c).mean(axis=-1, keepdims=True) + eps)

    root = Lit(f"√(σ² + {eps:g})", rf"\sqrt{{\sigma^2 + {eps:g}}}")
    xh = w.node(f"{l}.X", Xh, norm, [Frac(Expr("(", A_in, " - μ)"), root)],
                note="μ, σ² the mean and variance of each row")
    w.node(f"{l}.A", A, lambda v: v[f"{l}.X"] * v[P["weight"]] + v[P["bias"]], [Expr(Xh, "∘", g, " + ", b)])

    def back(G):
        d = x.shape[-1]
        g2, xh2 = G.reshape(-1, d), xh.reshape(-1, d)
        w.factor(P["weight"], [Expr(SUM, deriv("E", A), "∘", Xh)], (g2 * xh2).sum(axis=0))
        w.factor(P["bias"], [Expr(SUM, deriv("E", A))], g2.sum(axis=0))
        dxh = w.factor(f"{l}.X", [Expr(deriv("E", A), "∘", g)], G * layer.params["weight"])
        if a_in == "x":
            return None
        tex = (r"\left(\frac{\partial E}{\partial \hat{X}} - \mathrm{mean}(\cdot) - \hat{X}\circ"
               r"\mathrm{mean}(\cdot\circ\hat{X})\right)/\sqrt{\sigma^2+\epsilon}")
        return w.factor(a_in, [Expr(Lit("(dE/dX̂ - mean(dE/dX̂) - X̂∘mean(dE/dX̂∘X̂)) / √(σ² + ε)", tex))],
                        (dxh - dxh.mean(axis=-1, keepdims=True)
                         - xh * (dxh * xh).mean(axis=-1, keepdims=True)) * inv, note="means over each row")

    return f"{l}.A", back


def attention(w: Writer, layer: MultiHeadAttention, path: str, l: int, a_in: str):
    P = _params(w, layer, path, l)
    sym = {k: w.graph.nodes[key].sym for k, key in P.items()}
    A_in, A = w.graph.nodes[a_in].sym, _sym("A", l)
    x = w.graph.nodes[a_in].value
    n, T, D = x.shape
    H, d = layer.num_heads, layer.head_dim
    root = np.sqrt(d)
    mask = np.triu(np.full((T, T), -np.inf), k=1) if layer.causal else np.zeros((T, T))

    def heads(a):
        return a.reshape(n, T, H, d).transpose(0, 2, 1, 3)

    S_, P_, O_ = _sym("S", l), _sym("P", l), _sym("O", l)
    proj = {}
    for p in "qkv":
        s = _sym(p.upper(), l)
        w.node(f"{l}.{p}", s, lambda v, p=p: heads(v[a_in] @ v[P[f"weight_{p}"]] + v[P[f"bias_{p}"]]),
               [Expr(A_in, "·", sym[f"weight_{p}"], " + ", sym[f"bias_{p}"])],
               note=f"split into {H} heads of width {d}" if H > 1 else "")
        proj[p] = s
    Q, K, V = proj["q"], proj["k"], proj["v"]
    masked = [" + ", Lit("M")] if layer.causal else []
    w.node(f"{l}.S", S_, lambda v: v[f"{l}.q"] @ v[f"{l}.k"].swapaxes(-1, -2) / root + mask,
           [Expr(Frac(Expr(Q, "·", _t(K)), Lit(f"√{d}")), *masked)],
           note="M = −inf above the diagonal (causal)" if layer.causal else "")

    def soft(v):
        e = np.exp(v[f"{l}.S"] - v[f"{l}.S"].max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    probs = w.node(f"{l}.P", P_, soft, [Call("softmax", r"\mathrm{softmax}", S_)], note="over each row")
    o = w.node(f"{l}.O", O_, lambda v: (v[f"{l}.P"] @ v[f"{l}.v"]).transpose(0, 2, 1, 3).reshape(n, T, D),
               [Expr(P_, "·", V)], note="the heads side by side" if H > 1 else "")
    w.node(f"{l}.A", A, lambda v: v[f"{l}.O"] @ v[P["weight_o"]] + v[P["bias_o"]],
           [Expr(O_, "·", sym["weight_o"], " + ", sym["bias_o"])])
    val = {p: w.graph.nodes[f"{l}.{p}"].value for p in "qkv"}
    par = {k: layer.params[k].astype(np.float64) for k in P}

    def back(G):
        g2, o2, x2 = G.reshape(-1, D), o.reshape(-1, D), x.reshape(-1, D)
        w.factor(P["weight_o"], [Expr(_t(O_), "·", deriv("E", A))], o2.T @ g2)
        w.factor(P["bias_o"], [Expr(SUM, deriv("E", A))], g2.sum(axis=0))
        dO = w.factor(f"{l}.O", [Expr(deriv("E", A), "·", _t(sym["weight_o"]))], G @ par["weight_o"].T)
        dOh = heads(dO)
        dV = w.factor(f"{l}.v", [Expr(_t(P_), "·", deriv("E", O_))], probs.swapaxes(-1, -2) @ dOh)
        dP = w.factor(f"{l}.P", [Expr(deriv("E", O_), "·", _t(V))], dOh @ val["v"].swapaxes(-1, -2))
        dS = w.factor(f"{l}.S", [Expr(P_, "∘(", deriv("E", P_), Lit(" - rowsum("), P_, "∘", deriv("E", P_),
                                      Lit("))"))],
                      probs * (dP - (dP * probs).sum(axis=-1, keepdims=True)),
                      note="the softmax Jacobian applied" + ("; 0 where masked" if layer.causal else ""))
        dQ = w.factor(f"{l}.q", [Frac(Expr(deriv("E", S_), "·", K), Lit(f"√{d}"))], dS @ val["k"] / root)
        dK = w.factor(f"{l}.k", [Frac(Expr(_t(deriv("E", S_)), "·", Q), Lit(f"√{d}"))],
                      dS.swapaxes(-1, -2) @ val["q"] / root)
        flat = {}
        for p, dh in (("q", dQ), ("k", dK), ("v", dV)):
            s = proj[p]
            flat[p] = dh.transpose(0, 2, 1, 3).reshape(-1, D)
            w.factor(P[f"weight_{p}"], [Expr(_t(A_in), "·", deriv("E", s))], x2.T @ flat[p],
                     note="the heads side by side" if H > 1 else "")
            w.factor(P[f"bias_{p}"], [Expr(SUM, deriv("E", s))], flat[p].sum(axis=0),
                     note="zero up to rounding: b_k adds the same amount to every score of a row, which softmax"
                          " ignores" if p == "k" else "")
        if a_in == "x":
            return None
        return w.factor(a_in, [Expr(deriv("E", Q), "·", _t(sym["weight_q"]), " + ", deriv("E", K), "·",
                                    _t(sym["weight_k"]), " + ", deriv("E", V), "·", _t(sym["weight_v"]))],
                        sum(flat[p] @ par[f"weight_{p}"].T for p in "qkv").reshape(n, T, D))

    return f"{l}.A", back


def passthrough(w: Writer, layer, path: str, l: int, a_in: str):
    A_in, A = w.graph.nodes[a_in].sym, _sym("A", l)
    w.node(f"{l}.A", A, lambda v: v[a_in], [A_in],
           note=f"{type(layer).__name__} is the identity outside training")

    def back(G):
        return w.factor(a_in, [deriv("E", A)], G)

    return f"{l}.A", back


def embedding(w: Writer, layer: Embedding, path: str, l: int, a_in: str):
    """Aˡ = E_tok[x]: each token id picks its row of the table; the table's gradient adds the rows of
    dE/dAˡ into the rows of their ids (an id that occurs twice gets both). The ids get no factor."""
    P = _params(w, layer, path, l)
    ids = layer.check_indices(w.graph.nodes[a_in].value, "explain x")
    A, table = _sym("A", l), w.graph.nodes[P["weight"]].sym
    w.node(f"{l}.A", A, lambda v: v[P["weight"]][ids], [Expr(table, Lit("[x]"))],
           note=f"row x of {table.text} for each token id x")

    def back(G):
        d = np.zeros_like(w.graph.nodes[P["weight"]].value)
        np.add.at(d, ids, G)
        w.factor(P["weight"], [Expr(SUM, deriv("E", A), Lit(" over the tokens, into the row of each token's id"))], d)
        return None

    return f"{l}.A", back


def _unrolled_start(w: Writer, layer, path: str, l: int, a_in: str):
    """What a recurrent writer starts from: its parameter leaves and their symbols, the input's and
    output's symbols, (n, T). explain unrolls from a zero state: a layer carrying its own is refused."""
    if layer.stateful or layer.initial_state is not None:
        raise ConfigError(f"explain: {path} carries a state between calls (stateful or initial_state);"
                          f" explain starts every {type(layer).__name__} from a zero state: use a fresh one")
    P = _params(w, layer, path, l)
    sym = {k: w.graph.nodes[key].sym for k, key in P.items()}
    return P, sym, w.graph.nodes[a_in].sym, _sym("A", l), w.graph.nodes[a_in].value.shape[:2]


def _unrolled_output(w: Writer, layer, l: int, hs: list[tuple[str, Sym]]) -> None:
    """Aˡ: every step's Hₜ along time (``return_sequences``) or the last one."""
    A = _sym("A", l)
    if layer.return_sequences:
        keys = [k for k, _ in hs]
        w.node(f"{l}.A", A, lambda v: np.stack([v[k] for k in keys], axis=1),
               [Expr(Lit("["), *[p for _, s_ in hs for p in (s_, Lit(", "))][:-1], Lit("] along time"))])
    else:
        w.node(f"{l}.A", A, lambda v, k=hs[-1][0]: v[k], [hs[-1][1]], note="the last step's state")


def _from_output(G, layer, t: int, T: int, n: int, width: int, A: Sym) -> tuple[np.ndarray, list]:
    """The part of dE/dHₜ that comes from the layer's output, and its form (none: zeros)."""
    if layer.return_sequences:
        return G[:, t - 1], [deriv("E", at_step(A, t))]
    if t == T:
        return G, [deriv("E", A)]
    return np.zeros((n, width)), []


def _unrolled_weights(w: Writer, layer, P: dict, l: int, a_in: str, h_vals: list, d_in: list, d_hh: list,
                      s_in: Sym, s_hh: Sym):
    """The weights' factors of a layer unrolled in time, each summed over the steps: dE/dW_ih =
    Σₜ Aₜᵀ·d_inₜ, dE/dW_hh = Σₜ Hₜ₋₁ᵀ·d_hhₜ (from t = 2: H₀ = 0), the bias (RNN, LSTM: Σ d_in) or
    the two biases (GRU: Σ d_in and Σ d_hh); then dE/dAˡ⁻¹ (each step's d_inₜ·W_ihᵀ) unless the
    input is x. ``s_in``, ``s_hh``: the symbols of the nodes d_in and d_hh are the gradients of."""
    A_in, x, T = w.graph.nodes[a_in].sym, w.graph.nodes[a_in].value, len(d_in)
    sym = {k: w.graph.nodes[key].sym for k, key in P.items()}
    w.factor(P["weight_ih"], [Expr(SUM, _t(at_step(A_in, "t")), "·", deriv("E", s_in))],
             sum(x[:, t].T @ d_in[t] for t in range(T)), note="summed over the time steps t")
    w.factor(P["weight_hh"], [Expr(SUM, _t(at_step(_sym("H", l), "t-1")), "·", deriv("E", s_hh))],
             sum(h_vals[t - 1].T @ d_hh[t] for t in range(1, T)), note="from t = 2 on (H₀ = 0)")
    if "bias" in P:
        w.factor(P["bias"], [Expr(SUM, deriv("E", s_in))], sum(d.sum(axis=0) for d in d_in),
                 note="over the rows and the time steps")
    else:
        w.factor(P["bias_ih"], [Expr(SUM, deriv("E", s_in))], sum(d.sum(axis=0) for d in d_in),
                 note="over the rows and the time steps")
        w.factor(P["bias_hh"], [Expr(SUM, deriv("E", s_hh))], sum(d.sum(axis=0) for d in d_hh),
                 note="over the rows and every time step (b_hh enters Q₁ too)")
    if a_in == "x":
        return None
    W_ih = layer.params["weight_ih"].astype(np.float64)
    return w.factor(a_in, [Expr(deriv("E", s_in), "·", _t(sym["weight_ih"]))],
                    np.stack([d @ W_ih.T for d in d_in], axis=1), note="at each step t")


def rnn(w: Writer, layer: RNN, path: str, l: int, a_in: str):
    """Backpropagation through time, step by step: Z_t = x_t·W_ih + H_{t−1}·W_hh + b, H_t = f(Z_t),
    from H_0 = 0; backward, dE/dH_t gathers what reaches H_t from the output and from Z_{t+1}."""
    P, sym, A_in, A, (n, T) = _unrolled_start(w, layer, path, l, a_in)
    relu = layer.activation == "relu"
    zs, hs = [], []
    for t in range(1, T + 1):
        Z, Hs = at_step(_sym("Z", l), t), at_step(_sym("H", l), t)
        x_t = at_step(A_in, t)
        recur = [" + ", hs[-1][1], "·", sym["weight_hh"]] if hs else []

        def z_fn(v, t=t, prev=(hs[-1][0] if hs else None)):
            z = v[a_in][:, t - 1] @ v[P["weight_ih"]] + v[P["bias"]]
            return z + v[prev] @ v[P["weight_hh"]] if prev is not None else z

        w.node(f"{l}.z{t}", Z, z_fn, [Expr(x_t, "·", sym["weight_ih"], *recur, " + ", sym["bias"])],
               note=f"{x_t.text} = step {t} of {A_in.text}" + ("; H₀ = 0" if t == 1 else ""))
        w.node(f"{l}.h{t}", Hs, (lambda v, t=t: np.maximum(v[f"{l}.z{t}"], 0)) if relu
               else (lambda v, t=t: np.tanh(v[f"{l}.z{t}"])),
               [Call("relu", r"\mathrm{relu}", Z) if relu else Call("tanh", r"\tanh", Z)])
        zs.append((f"{l}.z{t}", Z))
        hs.append((f"{l}.h{t}", Hs))
    _unrolled_output(w, layer, l, hs)
    W_hh = layer.params["weight_hh"].astype(np.float64)

    def back(G):
        dz_next, d_zs = None, [None] * T
        for t in range(T, 0, -1):
            (hk, Hs), (zk, Z) = hs[t - 1], zs[t - 1]
            from_out, forms = _from_output(G, layer, t, T, n, layer.n_hidden, A)
            if dz_next is not None:
                forms += ([" + "] if forms else []) + [deriv("E", zs[t][1]), "·", _t(sym["weight_hh"])]
            dh = from_out + (dz_next @ W_hh.T if dz_next is not None else 0)
            w.factor(hk, [Expr(*forms)], dh, note="through time" if dz_next is not None else "")
            h_val = w.graph.nodes[hk].value
            slope = (w.graph.nodes[zk].value > 0).astype(np.float64) if relu else 1 - h_val * h_val
            dz = w.factor(zk, [Expr(deriv("E", Hs), "∘", Lit(f"[{Z.text} > 0]") if relu
                                    else Expr("(1 - ", Hs, "∘", Hs, ")"))], dh * slope)
            d_zs[t - 1], dz_next = dz, dz
        h_vals = [w.graph.nodes[k].value for k, _ in hs]
        z_t = at_step(_sym("Z", l), "t")
        return _unrolled_weights(w, layer, P, l, a_in, h_vals, d_zs, d_zs, z_t, z_t)

    return f"{l}.A", back


def _sigmoid(z):
    return 0.5 * np.tanh(0.5 * z) + 0.5


def lstm(w: Writer, layer: LSTM, path: str, l: int, a_in: str):
    """The LSTM unrolled in time: Zₜ = xₜ·W_ih + Hₜ₋₁·W_hh + b split into the gates Iₜ, Fₜ, Gₜ, Oₜ
    (σ, σ, tanh, σ), Cₜ = Fₜ∘Cₜ₋₁ + Iₜ∘Gₜ, Hₜ = Oₜ∘tanh(Cₜ), from H₀ = C₀ = 0. Backward, dE/dCₜ
    gathers the path through Hₜ and the cell path dE/dCₜ₊₁∘Fₜ₊₁."""
    P, sym, A_in, A, (n, T) = _unrolled_start(w, layer, path, l, a_in)
    Hn = layer.n_hidden
    blocks = {"i": slice(0, Hn), "f": slice(Hn, 2 * Hn), "g": slice(2 * Hn, 3 * Hn), "o": slice(3 * Hn, 4 * Hn)}
    steps = []
    for t in range(1, T + 1):
        prev = steps[-1] if steps else None
        S = {k: at_step(_sym(k.upper(), l), t) for k in ("z", "i", "f", "g", "o", "c", "h")}
        key = {k: f"{l}.{k}{t}" for k in S}
        x_t = at_step(A_in, t)
        recur = [" + ", prev["sym"]["h"], "·", sym["weight_hh"]] if prev else []

        def z_fn(v, t=t, prev=prev):
            z = v[a_in][:, t - 1] @ v[P["weight_ih"]] + v[P["bias"]]
            return z + v[prev["key"]["h"]] @ v[P["weight_hh"]] if prev else z

        w.node(key["z"], S["z"], z_fn, [Expr(x_t, "·", sym["weight_ih"], *recur, " + ", sym["bias"])],
               note=f"four blocks of {Hn} columns: i, f, g, o" + ("; H₀ = C₀ = 0" if t == 1 else ""))
        for g in "ifgo":
            fn = (lambda v, zk=key["z"], b=blocks[g]: np.tanh(v[zk][:, b])) if g == "g" else \
                (lambda v, zk=key["z"], b=blocks[g]: _sigmoid(v[zk][:, b]))
            name = "tanh" if g == "g" else "σ"
            w.node(key[g], S[g], fn, [Call(name, r"\tanh" if g == "g" else r"\sigma",
                                           Expr(S["z"], Lit(f"[{g}]")))])
        cell = [Expr(S["f"], "∘", prev["sym"]["c"], " + ", S["i"], "∘", S["g"])] if prev else \
            [Expr(S["i"], "∘", S["g"])]
        w.node(key["c"], S["c"], lambda v, k=key, prev=prev: v[k["f"]] * (v[prev["key"]["c"]] if prev else 0)
               + v[k["i"]] * v[k["g"]], cell)
        w.node(key["h"], S["h"], lambda v, k=key: v[k["o"]] * np.tanh(v[k["c"]]),
               [Expr(S["o"], "∘", Call("tanh", r"\tanh", S["c"]))])
        steps.append({"key": key, "sym": S})
    _unrolled_output(w, layer, l, [(st["key"]["h"], st["sym"]["h"]) for st in steps])
    W_hh = layer.params["weight_hh"].astype(np.float64)

    def back(G):
        d_zs, dz_next, dc_next, f_next = [None] * T, None, None, None
        for t in range(T, 0, -1):
            k, S = steps[t - 1]["key"], steps[t - 1]["sym"]
            val = {g: w.graph.nodes[k[g]].value for g in ("i", "f", "g", "o", "c")}
            from_out, forms = _from_output(G, layer, t, T, n, Hn, A)
            if dz_next is not None:
                forms += ([" + "] if forms else []) + [deriv("E", steps[t]["sym"]["z"]), "·", _t(sym["weight_hh"])]
            dh = w.factor(k["h"], [Expr(*forms)], from_out + (dz_next @ W_hh.T if dz_next is not None else 0),
                          note="through time" if dz_next is not None else "")
            tc = np.tanh(val["c"])
            cell_forms = [deriv("E", S["h"]), "∘", S["o"], "∘(1 - tanh²(", S["c"], "))"]
            if dc_next is not None:
                cell_forms += [" + ", deriv("E", steps[t]["sym"]["c"]), "∘", steps[t]["sym"]["f"]]
            dc = w.factor(k["c"], [Expr(*cell_forms)], dh * val["o"] * (1 - tc * tc)
                          + (dc_next * f_next if dc_next is not None else 0),
                          note="and along the cell" if dc_next is not None else "")
            c_prev = w.graph.nodes[steps[t - 2]["key"]["c"]].value if t > 1 else np.zeros((n, Hn))
            d_gate = {
                "o": w.factor(k["o"], [Expr(deriv("E", S["h"]), "∘tanh(", S["c"], ")")], dh * tc),
                "i": w.factor(k["i"], [Expr(deriv("E", S["c"]), "∘", S["g"])], dc * val["g"]),
                "f": w.factor(k["f"], [Expr(deriv("E", S["c"]), "∘", steps[t - 2]["sym"]["c"]) if t > 1
                                       else Lit("0 (C₀ = 0)")], dc * c_prev),
                "g": w.factor(k["g"], [Expr(deriv("E", S["c"]), "∘", S["i"])], dc * val["i"]),
            }
            slope = {g: (1 - val[g] ** 2) if g == "g" else val[g] * (1 - val[g]) for g in "ifgo"}
            dz = w.factor(k["z"], [Expr(Lit("[dE/dI∘I(1 - I), dE/dF∘F(1 - F), dE/dG∘(1 - G²), dE/dO∘O(1 - O)]"))],
                          np.concatenate([d_gate[g] * slope[g] for g in "ifgo"], axis=1),
                          note="the four gates' derivatives side by side")
            d_zs[t - 1], dz_next, dc_next, f_next = dz, dz, dc, val["f"]
        h_vals = [w.graph.nodes[st["key"]["h"]].value for st in steps]
        z_t = at_step(_sym("Z", l), "t")
        return _unrolled_weights(w, layer, P, l, a_in, h_vals, d_zs, d_zs, z_t, z_t)

    return f"{l}.A", back


def gru(w: Writer, layer: GRU, path: str, l: int, a_in: str):
    """The GRU unrolled in time (PyTorch's gate order r, z, n): Pₜ = xₜ·W_ih + b_ih and
    Qₜ = Hₜ₋₁·W_hh + b_hh, Rₜ = σ(Pₜ[r] + Qₜ[r]), Zₜ = σ(Pₜ[z] + Qₜ[z]), Nₜ = tanh(Pₜ[n] + Rₜ∘Qₜ[n]),
    Hₜ = (1 − Zₜ)∘Nₜ + Zₜ∘Hₜ₋₁, from H₀ = 0. Backward, dE/dHₜ gathers the output's part, the direct
    path dE/dHₜ₊₁∘Zₜ₊₁ and dE/dQₜ₊₁·W_hhᵀ."""
    P, sym, A_in, A, (n, T) = _unrolled_start(w, layer, path, l, a_in)
    Hn = layer.n_hidden
    r_, z_, n_ = slice(0, Hn), slice(Hn, 2 * Hn), slice(2 * Hn, 3 * Hn)
    steps = []
    for t in range(1, T + 1):
        prev = steps[-1] if steps else None
        S = {k: at_step(_sym(k.upper(), l), t) for k in ("p", "q", "r", "z", "n", "h")}
        key = {k: f"{l}.gru_{k}{t}" for k in S}
        w.node(key["p"], S["p"], lambda v, t=t: v[a_in][:, t - 1] @ v[P["weight_ih"]] + v[P["bias_ih"]],
               [Expr(at_step(A_in, t), "·", sym["weight_ih"], " + ", sym["bias_ih"])],
               note=f"three blocks of {Hn} columns: r, z, n")
        if prev:
            w.node(key["q"], S["q"], lambda v, prev=prev: v[prev["key"]["h"]] @ v[P["weight_hh"]] + v[P["bias_hh"]],
                   [Expr(prev["sym"]["h"], "·", sym["weight_hh"], " + ", sym["bias_hh"])])
        else:
            w.node(key["q"], S["q"], lambda v: np.broadcast_to(v[P["bias_hh"]], (n, 3 * Hn)).copy(),
                   [Expr(sym["bias_hh"])], note="H₀ = 0")
        w.node(key["r"], S["r"], lambda v, k=key: _sigmoid(v[k["p"]][:, r_] + v[k["q"]][:, r_]),
               [Call("σ", r"\sigma", Expr(S["p"], Lit("[r] + "), S["q"], Lit("[r]")))])
        w.node(key["z"], S["z"], lambda v, k=key: _sigmoid(v[k["p"]][:, z_] + v[k["q"]][:, z_]),
               [Call("σ", r"\sigma", Expr(S["p"], Lit("[z] + "), S["q"], Lit("[z]")))])
        w.node(key["n"], S["n"], lambda v, k=key: np.tanh(v[k["p"]][:, n_] + v[k["r"]] * v[k["q"]][:, n_]),
               [Call("tanh", r"\tanh", Expr(S["p"], Lit("[n] + "), S["r"], "∘", S["q"], Lit("[n]")))])
        keep = [" + ", S["z"], "∘", prev["sym"]["h"]] if prev else []
        w.node(key["h"], S["h"], lambda v, k=key, prev=prev: (1 - v[k["z"]]) * v[k["n"]]
               + (v[k["z"]] * v[prev["key"]["h"]] if prev else 0),
               [Expr("(1 - ", S["z"], ")∘", S["n"], *keep)])
        steps.append({"key": key, "sym": S})
    _unrolled_output(w, layer, l, [(st["key"]["h"], st["sym"]["h"]) for st in steps])
    W_hh = layer.params["weight_hh"].astype(np.float64)

    def back(G):
        d_ps, d_qs, nxt = [None] * T, [None] * T, None
        for t in range(T, 0, -1):
            k, S = steps[t - 1]["key"], steps[t - 1]["sym"]
            val = {g: w.graph.nodes[k[g]].value for g in ("q", "r", "z", "n")}
            h_prev = w.graph.nodes[steps[t - 2]["key"]["h"]].value if t > 1 else np.zeros((n, Hn))
            from_out, forms = _from_output(G, layer, t, T, n, Hn, A)
            if nxt is not None:
                Sn = steps[t]["sym"]
                forms += ([" + "] if forms else []) + [deriv("E", Sn["h"]), "∘", Sn["z"], " + ",
                                                       deriv("E", Sn["q"]), "·", _t(sym["weight_hh"])]
            dh = w.factor(k["h"], [Expr(*forms)], from_out + (nxt[0] * nxt[1] + nxt[2] @ W_hh.T
                                                              if nxt is not None else 0),
                          note="through time" if nxt is not None else "")
            dn = w.factor(k["n"], [Expr(deriv("E", S["h"]), "∘(1 - ", S["z"], ")")], dh * (1 - val["z"]))
            dz = w.factor(k["z"], [Expr(deriv("E", S["h"]), "∘(", steps[t - 2]["sym"]["h"] if t > 1 else Lit("H₀"),
                                        " - ", S["n"], ")")], dh * (h_prev - val["n"]))
            d_in = dn * (1 - val["n"] ** 2)
            dr = w.factor(k["r"], [Expr(deriv("E", S["n"]), "∘(1 - ", S["n"], "²)∘", S["q"], Lit("[n]"))],
                          d_in * val["q"][:, n_])
            d_r, d_z = dr * val["r"] * (1 - val["r"]), dz * val["z"] * (1 - val["z"])
            dp = w.factor(k["p"], [Lit("[dE/dR∘R(1 - R), dE/dZ∘Z(1 - Z), dE/dN∘(1 - N²)]")],
                          np.concatenate([d_r, d_z, d_in], axis=1), note="the three blocks side by side")
            dq = w.factor(k["q"], [Lit("[dE/dR∘R(1 - R), dE/dZ∘Z(1 - Z), dE/dN∘(1 - N²)∘R]")],
                          np.concatenate([d_r, d_z, d_in * val["r"]], axis=1),
                          note="the reset gate scales the n block")
            d_ps[t - 1], d_qs[t - 1], nxt = dp, dq, (dh, val["z"], dq)
        h_vals = [w.graph.nodes[st["key"]["h"]].value for st in steps]
        return _unrolled_weights(w, layer, P, l, a_in, h_vals, d_ps, d_qs, at_step(_sym("P", l), "t"),
                                 at_step(_sym("Q", l), "t"))

    return f"{l}.A", back


def positional(w: Writer, layer: PositionalEmbedding, path: str, l: int, a_in: str):
    P = _params(w, layer, path, l)
    A_in, A, E = w.graph.nodes[a_in].sym, _sym("A", l), w.graph.nodes[P["weight"]].sym
    T = w.graph.nodes[a_in].value.shape[1]
    w.node(f"{l}.A", A, lambda v: v[a_in] + v[P["weight"]][:T], [Expr(A_in, " + ", E, Lit(f"[:{T}]"))],
           note=f"row t of {E.text} added to the token at position t")

    def back(G):
        d = np.zeros_like(w.graph.nodes[P["weight"]].value)
        d[:T] = G.sum(axis=0)
        w.factor(P["weight"], [Expr(SUM, deriv("E", A), Lit(" over the samples, in its first rows"))], d)
        if a_in == "x":
            return None
        return w.factor(a_in, [deriv("E", A)], G)

    return f"{l}.A", back


def residual(w: Writer, layer: Residual, path: str, a_in: str, write: Callable):
    """x + f(x): f's layers read a named copy Bˡ of the input, so that each path's factor is its own."""
    first = w.numbers + 1
    A_in, B = w.graph.nodes[a_in].sym, _sym("B", first)
    w.node(f"{first}.B", B, lambda v: v[a_in], [A_in], note="the input, as the residual branch reads it")
    inner, backs = write(layer.layers, f"{path}.layers", f"{first}.B")   # (numbers first, first + 1, ...)
    l = w.count()
    A, F = _sym("A", l), w.graph.nodes[inner].sym
    w.node(f"{l}.A", A, lambda v: v[a_in] + v[inner], [Expr(A_in, " + ", F)], note="the skip connection")

    def back(G):
        g = w.factor(inner, [deriv("E", A)], G, note="through the branch")
        for b in reversed(backs):
            g = b(g)
        if a_in == "x":
            return None
        return w.factor(a_in, [Expr(deriv("E", A), " + ", deriv("E", B))], G + g,
                        note="the skip connection adds its gradient to the branch's")

    return f"{l}.A", back


_WRITERS = [(Embedding, embedding), (Conv2D, conv2d), ((MaxPool2D, AvgPool2D), pool2d), (GlobalAvgPool2D, global_pool),
            (Flatten, flatten), (Dense, dense), (ELEMENTWISE, elementwise), (Softmax, softmax),
            (LayerNorm, layer_norm), (MultiHeadAttention, attention), (PositionalEmbedding, positional), (RNN, rnn),
            (LSTM, lstm), (GRU, gru),
            ((Dropout, Identity), passthrough)]


def writer_for(layer, path: str):
    for kinds, fn in _WRITERS:
        if isinstance(layer, kinds):
            return fn
    if isinstance(layer, Residual):
        for i, inner in enumerate(layer.layers):
            if isinstance(inner, Embedding):
                raise ConfigError(f"explain: {path}.layers[{i}] is an Embedding inside a Residual; an"
                                  " Embedding takes the network's integer ids, so it is its first layer")
            writer_for(inner, f"{path}.layers[{i}]")
        return residual
    names = ", ".join(c.__name__ for c in SUPPORTED)
    raise ConfigError(f"explain writes out {names}, Residual, Dropout and Identity; {path} is {layer!r}"
                      " (FixedPointRNN is not written out yet)")


def check_supported(net) -> None:
    for i, layer in enumerate(net.layers):
        if i and isinstance(layer, Embedding):
            raise ConfigError(f"explain: layers[{i}] is an Embedding after another layer; an Embedding takes"
                              " the network's integer ids, so it is its first layer")
        writer_for(layer, f"layers[{i}]")


# --- one pass ------------------------------------------------------------------------------------
@dataclass
class LayeredPass:
    error: float
    output: np.ndarray
    forward: list[Step]
    backward: list[Step]
    checks: list[Step]
    param_grads: dict[str, np.ndarray]   # 'layers[i].params["name"]' -> dE/dθ as written out
    own_difference: float                # largest |explain − the layers' own| over outputs and gradients
    params: list[Node]                   # the parameter leaves, in the order the layers run


def run(net, loss, X: np.ndarray, T: np.ndarray, iteration: int) -> LayeredPass:
    """Forward and backward of ``net`` (float64) in matrix form, every factor checked."""
    graph = Graph()
    w = Writer(graph, iteration)
    graph.leaf("x", _sym("A", 0), X)
    w.forward.append(Step("forward", _sym("A", 0), [Lit("x"), show(X)], X, iteration))
    def write(layers, prefix: str, key: str):
        backs, outputs = [], []
        for i, layer in enumerate(layers):
            path = f"{prefix}[{i}]"
            if isinstance(layer, Residual):
                key, back = residual(w, layer, path, key, write)
            else:
                key, back = writer_for(layer, path)(w, layer, path, w.count(), key)
            backs.append(back)
            outputs.append(key)
        write.outputs = outputs          # the last call's: the top-level layers'
        return key, backs

    key, backs = write(net.layers, "layers", "x")
    outputs = write.outputs
    out = graph.nodes[key].value
    error, grad = loss._value_and_grad(out.copy(), T)
    error = float(error)
    A_L = graph.nodes[key].sym
    lf = LossForm(loss, X.shape[0], int(np.prod(out.shape[1:])))
    said = lf.description().split(": ", 1)[1].removeprefix("E = ")
    w.forward.append(Step("error", total_error(), [Lit(said), Num(error)], error, iteration))
    t = Sym("t", "t", "t")
    form = [lf.grad(t, A_L)] if lf.kind in ("sse", "mse") else []
    G = w.factor(key, [*form], np.asarray(grad, dtype=np.float64),
                 note="from the loss" + ("" if form else "'s gradient"))
    for back in reversed(backs):
        G = back(G)
        if G is None:
            break

    # the layers' own forward and backward, for comparison
    a, own_out = X, []
    for layer in net.layers:
        a = layer.forward(a, training=False)
        own_out.append(np.asarray(a, dtype=np.float64).copy())
    g = np.asarray(loss._value_and_grad(a, T)[1], dtype=np.float64)
    for layer in reversed(net.layers):
        g = layer.backward(g)
    diff = max(float(np.max(np.abs(graph.nodes[k].value - o), initial=0.0)) for k, o in zip(outputs, own_out,
                                                                                                 strict=True))
    param_grads = {}
    for key_, value in w.param_grads.items():
        node = graph.nodes[key_]
        layer, name = node.owner
        diff = max(diff, float(np.max(np.abs(np.asarray(layer.grads[name], dtype=np.float64) - value),
                                      initial=0.0)))
        param_grads[node.where] = value

    def energy(output):
        return float(loss._value(output, T))

    checks = []
    rng = np.random.default_rng(0)
    for label, k, value in w.factors:
        node = graph.nodes[k]
        shown = squeezed(value)
        lead = (0,) * (value.ndim - shown.ndim)
        entries = list(np.ndindex(shown.shape))
        if len(entries) > CHECKED_ENTRIES:
            entries = [entries[j] for j in sorted(rng.choice(len(entries), CHECKED_ENTRIES, replace=False))]
        for idx in entries:
            analytic = float(value[lead + idx])
            numeric = float(graph.central_difference(k, lead + idx, energy))
            rel = float(relative_error(np.array(analytic), np.array(numeric)))
            name = f"{deriv('E', node.sym).text}[{', '.join(map(str, idx))}]"
            lhs = Sym(name, rf"{deriv('E', node.sym).tex}[{', '.join(map(str, idx))}]", name)
            where = f"{node.where}[{', '.join(map(str, lead + idx))}]" if node.where else ""
            checks.append(Step("check", lhs, [Num(analytic)], analytic, iteration, where=where, numeric=numeric,
                               rel_error=rel, label=label))
    params = [node for node in graph.nodes.values() if node.owner is not None]
    return LayeredPass(error, out, w.forward, w.backward, checks, param_grads, diff, params)


def sizes(net, X: np.ndarray) -> tuple[int, int]:
    """(number of parameters, largest number of entries per sample of any layer's output)."""
    n_params = sum(p.size for layer in net.layers for p in layer.params.values())
    a, widest = X, int(np.prod(X.shape[1:]))
    for layer in net.layers:
        a = layer.forward(a, training=False)
        widest = max(widest, int(np.prod(a.shape[1:])))
    return n_params, widest


def summary(net, loss, X, T, lr, iteration) -> list[Step]:
    """Per layer with parameters: shapes, norms, update ratio, a few entries checked (the big-network view)."""
    out = X
    outs = []
    for layer in net.layers:
        out = layer.forward(out, training=False)
        outs.append(out.shape)
    error, g = loss._value_and_grad(out, T)
    deltas = []
    for layer in reversed(net.layers):
        deltas.append(float(np.linalg.norm(g)))
        g = layer.backward(g)
    deltas.reverse()
    grads = {i: {k: v.copy() for k, v in layer.grads.items()} for i, layer in enumerate(net.layers)}

    def energy():
        a = X
        for layer in net.layers:
            a = layer.forward(a, training=False)
        return float(loss._value(a, T))

    rng = np.random.default_rng(0)
    steps = []
    for i, layer in enumerate(net.layers):
        if not layer.params:
            continue
        worst = 0.0
        for name, arr in layer.params.items():
            for k in rng.choice(arr.size, size=min(3, arr.size), replace=False):
                idx = np.unravel_index(int(k), arr.shape)
                orig, vals = arr[idx], []
                for s in (2, 1, -1, -2):
                    arr[idx] = orig + s * FD_STEP
                    vals.append(energy())
                arr[idx] = orig
                numeric = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * FD_STEP)
                worst = max(worst, float(relative_error(np.array(grads[i][name][idx]), np.array(numeric))))
        first = next(iter(layer.params))
        W, dW = layer.params[first], grads[i][first]
        rest = [k for k in layer.params if k != first]
        g_norm, w_norm = float(np.linalg.norm(dW)), float(np.linalg.norm(W))
        info = {"layer": f"{i}: {type(layer).__name__}", "W shape": "x".join(map(str, W.shape)),
                "output": "x".join(map(str, outs[i])), "‖W‖": w_norm, "‖δ‖": deltas[i], "‖dE/dW‖": g_norm,
                "‖dE/db‖": float(np.linalg.norm(grads[i][rest[0]])) if rest else None,
                "update ratio": (lr if lr is not None else 1.0) * g_norm / w_norm if w_norm else float("inf"),
                "check": worst}
        steps.append(Step("summary", _sym("W", i + 1), [], g_norm, iteration, info=info))
    return steps
