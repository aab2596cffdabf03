"""The written-out formulas of each activation and loss, as equation parts.

Each function takes the parts to put in (symbols for the symbolic form, numbers for the
numeric form), so one formula serves both lines of a step. The values themselves come from the
layers and losses (see tape.py); these only say how they are computed.
"""

from __future__ import annotations

import numpy as np

from ..losses import MSE, SSE, BinaryCrossEntropy, CrossEntropy
from .symbols import Call, Exp, Expr, Frac, Lit, Num

ONE = Lit("1")


def sigma(arg) -> Call:
    return Call("σ", r"\sigma", arg)


def log(arg) -> Call:
    return Call("log", r"\log", arg)


# --- activations -------------------------------------------------------------------------------
def activation_forms(level, net, z: float) -> tuple[list, str]:
    """Forms of out = f(net) before its value (symbolic, then numeric), and a note."""
    kind, act, zn = level.kind, level.act, Num(z, paren=True)
    if kind == "sigmoid":
        return [sigma(net), Frac(ONE, Expr("1 + ", Exp(Expr("-", net)))),
                Frac(ONE, Expr("1 + ", Exp(Expr("-", zn))))], ""
    if kind == "tanh":
        return [Call("tanh", r"\tanh", net), Call("tanh", r"\tanh", Num(z))], ""
    if kind == "relu":
        return [Call("max", r"\max", Expr(net, ", 0")), Call("max", r"\max", Expr(Num(z), ", 0"))], ""
    if kind == "leakyrelu":
        if z > 0:
            return [net], "net > 0"
        return [Expr("α", "·", net), Expr(Num(act.alpha), "·", zn)], f"net ≤ 0, α = {act.alpha:g}"
    if kind == "elu":
        if z > 0:
            return [net], "net > 0"
        return [Expr("α", "·(", Exp(net), " - 1)"), Expr(Num(act.alpha), "·(", Exp(Num(z)), " - 1)")], \
            f"net ≤ 0, α = {act.alpha:g}"
    if kind == "softplus":
        return [log(Expr("1 + ", Exp(net))), log(Expr("1 + ", Exp(Num(z))))], ""
    raise ValueError(kind)


def derivative_forms(level, net, out, z: float, a: float) -> tuple[list, str]:
    """Forms of dout/dnet = f'(net) before its value, and a note."""
    kind, act = level.kind, level.act
    an = Num(a, paren=True)
    if kind == "sigmoid":
        return [Expr(out, "(1 - ", out, ")"), Expr(Num(a), "(1 - ", an, ")")], ""
    if kind == "tanh":
        return [Expr("1 - ", out, "²"), Expr("1 - ", an, "²")], ""
    if kind == "relu":
        return [Expr("[", net, " > 0]"), Expr("[", Num(z), " > 0]")], ""
    if kind == "leakyrelu":
        return ([ONE], "net > 0") if z > 0 else ([Lit("α", r"\alpha", "α")], f"net ≤ 0, α = {act.alpha:g}")
    if kind == "elu":
        if z > 0:
            return [ONE], "net > 0"
        return [Expr(out, " + α"), Expr(Num(a), " + ", Num(act.alpha))], f"net ≤ 0, α = {act.alpha:g}"
    if kind == "softplus":
        return [sigma(net), sigma(Num(z))], ""
    raise ValueError(kind)


def derivative_name(level) -> str:
    """f' in matrix notation: σ', tanh', ..."""
    return {"sigmoid": "σ", "tanh": "tanh", "relu": "relu", "leakyrelu": "lrelu", "elu": "elu",
            "softplus": "softplus", "softmax": "softmax"}.get(level.kind, "f")


# --- losses ------------------------------------------------------------------------------------
class LossForm:
    """How a loss is written: its per-output term, the scale in front of the sum, dE/doutput.

    kind: "sse", "mse", "bce", "bce_logits" (the output is a logit, p = σ(net)),
    "ce" (fused softmax: the output is a logit, p = softmax(net)) or "other".
    """

    def __init__(self, loss, n_samples: int, n_outputs: int) -> None:
        self.loss = loss
        self.n = n_samples
        mean = getattr(loss, "reduction", "mean") == "mean"
        if isinstance(loss, SSE):
            self.kind, self.N = "sse", n_samples if mean else 1
        elif isinstance(loss, MSE):
            self.kind, self.N = "mse", n_samples * n_outputs if mean else 1
        elif isinstance(loss, BinaryCrossEntropy):
            self.kind = "bce_logits" if loss.from_logits else "bce"
            self.N = n_samples * n_outputs if mean else 1
        elif isinstance(loss, CrossEntropy):
            self.kind, self.N = "ce", n_samples if mean else 1
        else:
            self.kind, self.N = "other", 1

    @property
    def uses_probabilities(self) -> bool:
        """The loss turns the output (logits) into probabilities p first."""
        return self.kind in ("bce_logits", "ce")

    def description(self) -> str:
        per = {"sse": "E = ½ Σ_k (target_k - out_k)² per sample",
               "mse": "E = (1/N) Σ (out - target)² over all N output values",
               "bce": "E = -(1/N) Σ [target·log(out) + (1 - target)·log(1 - out)] over all N output values",
               "bce_logits": "p = σ(net), E = -(1/N) Σ [target·log(p) + (1 - target)·log(1 - p)]",
               "ce": "p = softmax(net), E = -Σ_k target_k·log(p_k) per sample",
               "other": "E from the loss's own value()"}[self.kind]
        red = getattr(self.loss, "reduction", "mean")
        if self.kind in ("sse", "ce"):
            per += ", averaged over the samples" if red == "mean" else ", summed over the samples"
        elif self.kind != "other" and red == "sum":
            per = per.replace("(1/N) ", "")
        return f"{self.loss!r}: {per}"

    def term(self, t, o):
        """The error of one output: E_o1 in terms of target t and output (or probability) o."""
        if self.kind == "sse":
            return Expr("½", "(", t, " - ", o, ")", "²")
        if self.kind == "mse":
            return Expr("(", o, " - ", t, ")", "²")
        if self.kind in ("bce", "bce_logits"):
            return Expr("-(", t, "·", log(o), " + (1 - ", t, ")·", log(Expr("1 - ", o)), ")")
        if self.kind == "ce":
            return Expr("-", t, "·", log(o))
        raise ValueError(self.kind)

    def term_value(self, t: float, o: float) -> float:
        if self.kind == "sse":
            return 0.5 * (t - o) ** 2
        if self.kind == "mse":
            return (o - t) ** 2
        eps = np.finfo(np.float64).eps
        if self.kind in ("bce", "bce_logits"):
            p = min(max(o, eps), 1 - eps) if self.kind == "bce" else o
            return -(t * np.log(p) + (1 - t) * np.log1p(-p))
        return -t * np.log(o) if t != 0 else 0.0

    def grad(self, t, o):
        """dE/doutput (dE/dnet for logits) of one output, scale included."""
        N = self.N
        if self.kind == "sse":
            base = Expr("-(", t, " - ", o, ")")
            return Frac(base, Lit(str(N))) if N != 1 else base
        if self.kind == "mse":
            base = Expr("2(", o, " - ", t, ")")
            return Frac(base, Lit(str(N))) if N != 1 else base
        if self.kind == "bce":
            den = Expr(o, "(1 - ", o, ")") if N == 1 else Expr(o, "(1 - ", o, ")·", Lit(str(N)))
            return Frac(Expr(o, " - ", t), den)
        if self.kind in ("bce_logits", "ce"):
            base = Expr(o, " - ", t)
            return Frac(Expr("(", base, ")"), Lit(str(N))) if N != 1 else base
        raise ValueError(self.kind)

    def scale_parts(self) -> list:
        """What multiplies the sum of the terms: [] or ["(1/N)", "·"]."""
        return [] if self.N == 1 else [Expr("(", Frac(ONE, Lit(str(self.N))), ")"), "·"]
