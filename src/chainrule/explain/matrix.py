"""Matrix notation: one line per layer, the form in which backpropagation is a few matrix
products per level (Wikipedia's "Backpropagation", Kostadinov's z², a², W¹).

Rows are samples, as in chainrule (x @ W):

    forward:  a⁰ = x,  zˡ = aˡ⁻¹·Wˡ + bˡ,  aˡ = f(zˡ)
    backward: δᴸ = dE/daᴸ ∘ f'(zᴸ),  dE/dWˡ = (aˡ⁻¹)ᵀ·δˡ,  dE/dbˡ = Σ_n δˡ,
              dE/daˡ⁻¹ = δˡ·(Wˡ)ᵀ,  δˡ⁻¹ = dE/daˡ⁻¹ ∘ f'(zˡ⁻¹)

The scalar names map onto these: zˡ[k] is net of unit k of layer l, aˡ[k] its out,
δˡ[k] = dE/dnet, and the weight w5 (h1 → o1) is W²[0, 0].
"""

from __future__ import annotations

from .formulas import LossForm, derivative_name
from .scalar import dense_targets, probabilities
from .symbols import Call, Expr, Lit, Mat, Num, Sym, deriv, layer_sym, total_error
from .tape import Pass
from .trace import Step


def _derivative_formula(lvl, z: Sym, a: Sym):
    kind = lvl.kind
    if kind == "sigmoid":
        return Expr(a, "∘(1 - ", a, ")")
    if kind == "tanh":
        return Expr("1 - ", a, "∘", a)
    if kind == "relu":
        return Expr("[", z, " > 0]")
    if kind == "leakyrelu":
        return Expr("[", z, " > 0] + α·[", z, " ≤ 0]")
    if kind == "elu":
        return Expr("[", z, " > 0] + (", a, " + α)∘[", z, " ≤ 0]")
    if kind == "softplus":
        return Call("σ", r"\sigma", z)
    return None


def matrix_steps(names, levels, p: Pass, lf: LossForm, iteration: int) -> list[Step]:
    steps: list[Step] = []
    n = p.x.shape[0]
    L = len(levels)

    def add(section, lhs, rhs, value, **kw):
        steps.append(Step(section, lhs, list(rhs), value, iteration, **kw))

    def top(l: int) -> Sym:
        return layer_sym("a" if levels[l - 1].act is not None else "z", l)

    # --- forward -----------------------------------------------------------------------------
    add("forward", layer_sym("a", 0), [Lit("x"), Mat(p.x)], p.x)
    for lvl, lp in zip(levels, p.levels, strict=True):
        l = lvl.number
        a_prev = top(l - 1) if l > 1 else layer_sym("a", 0)
        W, b, z = layer_sym("W", l), layer_sym("b", l), layer_sym("z", l)
        sym = [a_prev, "·", W]
        num = [Mat(lp.a_in), "·", Mat(lvl.dense.params["weight"])]
        if lvl.dense.use_bias:
            sym += [" + ", b]
            num += [" + ", Mat(lvl.dense.params["bias"])]
        add("forward", z, [Expr(*sym), Expr(*num), Mat(lp.z)], lp.z)
        if lvl.act is not None:
            f = derivative_name(lvl)
            add("forward", layer_sym("a", l), [Call(f, r"\sigma" if f == "σ" else rf"\mathrm{{{f}}}", z),
                                               Mat(lp.a)], lp.a)

    # --- error -------------------------------------------------------------------------------
    aL = top(L)
    K = levels[-1].n_out
    targets = dense_targets(lf, p.target, K)
    t = Sym("t", "t", "t")
    add("error", t, [Mat(targets)], targets, note="the target, one row per sample")
    o = aL
    if lf.uses_probabilities:
        o = Sym("p", "p", "p")
        fname = "σ" if lf.kind == "bce_logits" else "softmax"
        add("error", o, [Call(fname, r"\sigma" if fname == "σ" else r"\mathrm{softmax}", aL),
                         Mat(probabilities(lf, p.output))], probabilities(lf, p.output))
    scale = lf.scale_parts()
    formula = {
        "sse": lambda: Expr(*scale, "Σ ½(", t, " - ", o, ")²"),
        "mse": lambda: Expr(*scale, "Σ (", o, " - ", t, ")²"),
        "bce": lambda: Expr("-", *scale, "Σ [", t, "∘log(", o, ") + (1 - ", t, ")∘log(1 - ", o, ")]"),
        "bce_logits": lambda: Expr("-", *scale, "Σ [", t, "∘log(", o, ") + (1 - ", t, ")∘log(1 - ", o, ")]"),
        "ce": lambda: Expr("-", *scale, "Σ ", t, "∘log(", o, ")"),
    }.get(lf.kind)
    rhs = [formula()] if formula else []
    add("error", total_error(), [*rhs, Num(p.error)], p.error)

    # --- backward ----------------------------------------------------------------------------
    if lf.kind == "other":
        add("backward", deriv("E", aL), [Mat(p.dE_dout)], p.dE_dout, note="from the loss's grad()")
    else:
        add("backward", deriv("E", aL), [lf.grad(t, o), Mat(p.dE_dout)], p.dE_dout)
    for lvl, lp in zip(reversed(levels), reversed(p.levels), strict=True):
        l = lvl.number
        z, a, W = layer_sym("z", l), layer_sym("a", l), layer_sym("W", l)
        delta = layer_sym("δ", l, tex_base=r"\delta")
        if lvl.act is None:
            add("backward", delta, [deriv("E", z), Mat(lp.delta)], lp.delta)
        elif lvl.kind == "softmax":
            add("backward", delta, [Expr(a, "∘(", deriv("E", a), Lit(" - Σ_k ", r" - \sum_k "), a, Lit("_k", "_k"), "·",
                                           deriv("E", a), Lit("_k)", "_k)")),
                                    Mat(lp.delta)], lp.delta, note="the softmax Jacobian diag(a) - a·aᵀ applied")
        else:
            f = derivative_name(lvl)
            fprime = _fprime(f, z)
            add("backward", fprime, [_derivative_formula(lvl, z, a), Mat(lp.dadz)], lp.dadz)
            add("backward", delta, [Expr(deriv("E", a), "∘", fprime), Expr(Mat(lp.dE_da), "∘", Mat(lp.dadz)),
                                    Mat(lp.delta)], lp.delta)
        a_prev = top(l - 1) if l > 1 else layer_sym("a", 0)
        a_prev_t = layer_sym(a_prev.text[0], l - 1, transpose=True)
        add("backward", deriv("E", W), [Expr(a_prev_t, "·", delta), Expr(Mat(lp.a_in.T), "·", Mat(lp.delta)),
                                         Mat(lp.dE_dW)], lp.dE_dW)
        if lvl.dense.use_bias:
            b = layer_sym("b", l)
            rhs = [Expr(Lit("Σ_n ", r"\sum_n "), delta), Mat(lp.dE_db)] if n > 1 else [delta, Mat(lp.dE_db)]
            add("backward", deriv("E", b), rhs, lp.dE_db)
        if l > 1:
            add("backward", deriv("E", top(l - 1)),
                [Expr(delta, "·", layer_sym("W", l, transpose=True)),
                 Expr(Mat(lp.delta), "·", Mat(lvl.dense.params["weight"].T)), Mat(lp.dE_dain)], lp.dE_dain)
    return steps


def _fprime(f: str, z: Sym) -> Sym:
    """σ'(z²) and the like."""
    tex = r"\sigma" if f == "σ" else rf"\mathrm{{{f}}}"
    return Sym(f"{f}'({z.text})", rf"{tex}'\left({z.tex}\right)", f"{f}'({z.html})")
