"""Scalar notation: every unit and every weight on its own line, as in Mazur's worked example.

Forward: net_h1 = w1·i1 + w2·i2 + b1_h1 = 0.15·0.05 + 0.2·0.1 + 0.35 = 0.3775, then
out_h1 = σ(net_h1). Error: E_o1 = ½(target_o1 - out_o1)², E_total = E_o1 + E_o2.
Backward, for every weight, the chain of factors
    dE/dw5 = dE/dout_o1 · dout_o1/dnet_o1 · dnet_o1/dw5,
and for every hidden unit the sum over the paths through the next layer,
    dE/dout_h1 = dE_o1/dout_h1 + dE_o2/dout_h1.
With several samples every quantity carries its sample, out_h1[2], and each parameter's
gradient is the sum of the samples' contributions, dE/dw5 = dE/dw5[1] + dE/dw5[2] + ...
"""

from __future__ import annotations

import numpy as np

from .formulas import ONE, LossForm, activation_forms, derivative_forms, sigma
from .names import Names
from .symbols import Exp, Expr, Frac, Num, Sym, deriv, quantity, total_error
from .tape import Pass
from .trace import Step


def with_sample(sym: Sym, sample: int | None) -> Sym:
    """dE/dw5 -> dE/dw5[2]: the contribution of one sample."""
    if sample is None:
        return sym
    return Sym(f"{sym.text}[{sample}]", f"{{{sym.tex}}}^{{({sample})}}", f"{sym.html}<sup>({sample})</sup>")


def joined(terms: list, op: str = " + ") -> Expr:
    parts: list = []
    for k, t in enumerate(terms):
        if k:
            parts.append(op)
        parts.append(t)
    return Expr(*parts)


def dense_targets(lf: LossForm, target: np.ndarray, n_outputs: int) -> np.ndarray:
    """Targets as one row of numbers per sample (class labels become one-hot rows)."""
    t = np.asarray(target)
    if t.dtype.kind in "iu":
        return np.eye(n_outputs)[t.reshape(-1)]
    return t.reshape(len(t), -1).astype(np.float64)


def probabilities(lf: LossForm, output: np.ndarray) -> np.ndarray:
    if lf.kind == "bce_logits":
        return 0.5 * np.tanh(0.5 * output) + 0.5
    e = np.exp(output - output.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def scalar_steps(names: Names, levels, p: Pass, lf: LossForm, iteration: int) -> list[Step]:
    steps: list[Step] = []
    n = p.x.shape[0]
    last = len(levels) - 1

    def add(section, lhs, rhs, value, sample=None, **kw):
        steps.append(Step(section, lhs, list(rhs), value, iteration, sample, **kw))

    def sid(s: int) -> int | None:
        return None if n == 1 else s + 1

    # --- forward -----------------------------------------------------------------------------
    for s in range(n):
        sm = sid(s)
        for li, (lvl, lp) in enumerate(zip(levels, p.levels, strict=True)):
            W = lvl.dense.params["weight"]
            for j, unit in enumerate(names.units[li]):
                net = quantity("net", unit, sm)
                sym_terms, num_terms = [], []
                for i in range(lvl.n_in):
                    sym_terms.append(Expr(names.weight(li, i, j), "·", names.source_value_sym(li, i, sm)))
                    num_terms.append(Expr(Num(W[i, j], True), "·", Num(lp.a_in[s, i], True)))
                if lvl.dense.use_bias:
                    sym_terms.append(names.bias(li, j))
                    num_terms.append(Num(lvl.dense.params["bias"][j], True))
                z = float(lp.z[s, j])
                add("forward", net, [joined(sym_terms), joined(num_terms), Num(z)], z, sm)
                if lvl.act is not None and lvl.kind != "softmax":
                    forms, note = activation_forms(lvl, net, z)
                    a = float(lp.a[s, j])
                    add("forward", quantity("out", unit, sm), [*forms, Num(a)], a, sm, note=note)
            if lvl.kind == "softmax":
                nets = [quantity("net", u, sm) for u in names.units[li]]
                den_sym = joined([Exp(q) for q in nets])
                den_num = joined([Exp(Num(v)) for v in lp.z[s]])
                for j, unit in enumerate(names.units[li]):
                    a = float(lp.a[s, j])
                    add("forward", quantity("out", unit, sm),
                        [Frac(Exp(nets[j]), den_sym), Frac(Exp(Num(lp.z[s, j])), den_num), Num(a)], a, sm)

    # --- error -------------------------------------------------------------------------------
    out_units = names.units[last]
    K = len(out_units)
    targets = dense_targets(lf, p.target, K)
    if lf.uses_probabilities:
        probs = probabilities(lf, p.output)
    per_sample_totals = []
    for s in range(n):
        sm = sid(s)
        if lf.kind == "other":
            break
        if lf.uses_probabilities:
            tops = [names.top(last, k, sm) for k in range(K)]
            for k, unit in enumerate(out_units):
                if lf.kind == "bce_logits":
                    rhs = [sigma(tops[k]), sigma(Num(p.output[s, k]))]
                else:
                    rhs = [Frac(Exp(tops[k]), joined([Exp(q) for q in tops])),
                           Frac(Exp(Num(p.output[s, k])), joined([Exp(Num(v)) for v in p.output[s]]))]
                add("error", quantity("p", unit, sm), [*rhs, Num(probs[s, k])], float(probs[s, k]), sm)
        terms, term_syms = [], []
        for k, unit in enumerate(out_units):
            o_sym = quantity("p", unit, sm) if lf.uses_probabilities else names.top(last, k, sm)
            o_val = float(probs[s, k] if lf.uses_probabilities else p.output[s, k])
            t_sym, t_val = quantity("target", unit, sm), float(targets[s, k])
            e_val = float(lf.term_value(t_val, o_val))
            e_sym = quantity("E", unit, sm)
            add("error", e_sym, [lf.term(t_sym, o_sym), lf.term(Num(t_val, True), Num(o_val, True)), Num(e_val)],
                e_val, sm)
            terms.append(e_val)
            term_syms.append(e_sym)
        if n == 1:
            per_sample_totals = list(zip(term_syms, terms, strict=True))
        else:
            tot = float(sum(terms))
            add("error", total_error(sm), [joined(term_syms), joined([Num(v, True) for v in terms]), Num(tot)],
                tot, sm)
            per_sample_totals.append((total_error(sm), tot))
    if lf.kind == "other":
        add("error", total_error(), [Num(p.error)], p.error, note="from the loss's value()")
    else:
        syms = [q for q, _ in per_sample_totals]
        vals = [Num(v, True) for _, v in per_sample_totals]
        scale = lf.scale_parts()
        wrap = (lambda e: Expr("(", e, ")")) if scale else (lambda e: e)
        add("error", total_error(), [Expr(*scale, wrap(joined(syms))), Expr(*scale, wrap(joined(vals))),
                                     Num(p.error)], p.error)

    # --- backward ----------------------------------------------------------------------------
    E = "E"
    for s in range(n):
        sm = sid(s)
        for li in range(last, -1, -1):
            lvl, lp = levels[li], p.levels[li]
            W = lvl.dense.params["weight"]
            elementwise = lvl.act is not None and lvl.kind != "softmax"
            first_factors = []
            if li == last:
                for j, unit in enumerate(names.units[li]):
                    top = names.top(li, j, sm)
                    t_sym, t_val = quantity("target", unit, sm), float(targets[s, j])
                    g = float(p.dE_dout[s, j])
                    if lf.kind == "other":
                        first_factors.append(Step("backward", deriv(E, top), [Num(g)], g, iteration, sm,
                                                  note="from the loss's grad()"))
                        continue
                    o_sym = quantity("p", unit, sm) if lf.uses_probabilities else top
                    o_val = float(probs[s, j] if lf.uses_probabilities else p.output[s, j])
                    first_factors.append(Step("backward", deriv(E, top), [
                        lf.grad(t_sym, o_sym), lf.grad(Num(t_val, True), Num(o_val, True)), Num(g)], g, iteration, sm))
                if lvl.kind == "softmax":  # every unit's δ needs every dE/dout
                    steps.extend(first_factors)
                    first_factors = []
            for j, unit in enumerate(names.units[li]):
                net = quantity("net", unit, sm)
                top = names.top(li, j, sm)
                if first_factors:
                    steps.append(first_factors[j])
                delta = float(lp.delta[s, j])
                if elementwise:
                    z, a, d = float(lp.z[s, j]), float(lp.a[s, j]), float(lp.dadz[s, j])
                    forms, note = derivative_forms(lvl, net, top, z, a)
                    add("backward", deriv(top, net), [*forms, Num(d)], d, sm, note=note)
                    add("backward", deriv(E, net),
                        [Expr(deriv(E, top), " · ", deriv(top, net)),
                         Expr(Num(lp.dE_da[s, j], True), " · ", Num(d, True)), Num(delta)],
                        delta, sm, note=f"δ_{unit.text}")
                elif lvl.kind == "softmax":
                    outs = [quantity("out", u, sm) for u in names.units[li]]
                    sym_terms = [Expr(deriv(E, o), " · ", deriv(o, net)) for o in outs]
                    num_terms = [Expr(Num(lp.dE_da[s, k], True), " · ", Num(lp.jacobian[s, k, j], True))
                                 for k in range(len(outs))]
                    add("backward", deriv(E, net), [joined(sym_terms), joined(num_terms), Num(delta)], delta, sm,
                        note=f"δ_{unit.text}; dout_k/dnet_j = out_k·([k = j] - out_j)")
                for i in range(lvl.n_in):
                    w = names.weight(li, i, j)
                    x_in = float(lp.a_in[s, i])
                    if elementwise:
                        chain = Expr(deriv(E, top), " · ", deriv(top, net), " · ", deriv(net, w))
                        nums = Expr(Num(lp.dE_da[s, j], True), " · ", Num(lp.dadz[s, j], True), " · ", Num(x_in, True))
                    else:
                        chain = Expr(deriv(E, net), " · ", deriv(net, w))
                        nums = Expr(Num(delta, True), " · ", Num(x_in, True))
                    value = float(lp.dE_dW[i, j]) if n == 1 else delta * x_in
                    add("backward", with_sample(deriv(E, w), sm), [chain, nums, Num(value)], value, sm,
                        param=w.text)
                if lvl.dense.use_bias:
                    b = names.bias(li, j)
                    if elementwise:
                        chain = Expr(deriv(E, top), " · ", deriv(top, net), " · ", deriv(net, b))
                        nums = Expr(Num(lp.dE_da[s, j], True), " · ", Num(lp.dadz[s, j], True), " · ", ONE)
                    else:
                        chain = Expr(deriv(E, net), " · ", deriv(net, b))
                        nums = Expr(Num(delta, True), " · ", ONE)
                    value = float(lp.dE_db[j]) if n == 1 else delta
                    add("backward", with_sample(deriv(E, b), sm), [chain, nums, Num(value)], value, sm,
                        param=b.text)
            if li == 0:
                continue
            # the sum over paths into each unit of the level below
            for i, _unit in enumerate(names.units[li - 1]):
                prev = names.top(li - 1, i, sm)
                paths = [deriv(quantity("E", u), prev) for u in names.units[li]]
                chains = [Expr(deriv(E, quantity("net", u, sm)), " · ", deriv(quantity("net", u, sm), prev))
                          for u in names.units[li]]
                factors = [Expr(Num(lp.delta[s, j], True), " · ", Num(W[i, j], True)) for j in range(lvl.n_out)]
                products = [Num(lp.delta[s, j] * W[i, j], True) for j in range(lvl.n_out)]
                value = float(lp.dE_dain[s, i])
                rhs = [joined(paths), joined(chains), joined(factors)]
                if lvl.n_out > 1:
                    rhs.append(joined(products))
                add("backward", deriv(E, prev), [*rhs, Num(value)], value, sm,
                    note="sum over the paths through " + ", ".join(u.text for u in names.units[li]))

    # --- several samples: each gradient is the sum of the samples' contributions ------------
    if n > 1:
        for prm in names.params:
            lp = p.levels[prm.level]
            if prm.kind == "weight":
                i, j = prm.index
                contrib = lp.delta[:, j] * lp.a_in[:, i]
                value = float(lp.dE_dW[i, j])
            else:
                (j,) = prm.index
                contrib = lp.delta[:, j]
                value = float(lp.dE_db[j])
            d = deriv(E, prm.sym)
            add("gradient", d, [joined([with_sample(d, s + 1) for s in range(n)]),
                                joined([Num(c, True) for c in contrib]), Num(value)], value, param=prm.name)
    return steps
