"""The pieces a trace's equations are made of, and how each format writes them.

An equation of the trace is a list of parts: symbols (w5, out_h1, dE/dw5), numbers (kept as
floats, formatted only when rendered, so the number of digits is a rendering choice),
matrices, operators and a few structures (fractions, e^x, function calls). Every part knows
how to write itself as plain text, LaTeX and HTML; Markdown uses the plain text.
"""

from __future__ import annotations

import html as _html

import numpy as np

FORMATS = ("text", "tex", "html")


def format_number(x: float, digits: int = 9) -> str:
    """``x`` rounded as the worked examples print it, readable by ``float()``.

    ``digits`` digits after the decimal point, and never more than ``digits`` significant
    digits; trailing zeros dropped. So with the default 9: 0.593269992, 0.75136507 (the last
    digit, 0, dropped), 0.082167041, 0.000438568, 1.10590597. Magnitudes below 1e-4 (and from
    10**digits up) are written in scientific notation with ``digits`` significant digits.
    """
    x = float(x)
    if x == 0:
        return "0"
    if not np.isfinite(x):
        return str(x)
    a = abs(x)
    if 1e-4 <= a < 10.0**digits:
        int_digits = int(np.floor(np.log10(a))) + 1 if a >= 1 else 0
        s = f"{x:.{max(digits - int_digits, 0)}f}"
        if "." in s:
            s = s.rstrip("0").rstrip(".")
    else:
        s = np.format_float_scientific(x, precision=max(digits - 1, 0), unique=False, trim="-")
    return "0" if s in ("-0", "0") else s


def _tex_number(x: float, digits: int) -> str:
    s = format_number(x, digits)
    if "e" in s:
        mant, exp = s.split("e")
        return rf"{mant}\times 10^{{{int(exp)}}}"
    return s


class Part:
    """Something an equation is made of."""

    def render(self, fmt: str, digits: int) -> str:
        raise NotImplementedError

    def numbers(self) -> list[float]:
        """The numbers this part shows, in reading order."""
        return []


_TEX = {"·": r" \cdot ", "½": r"\tfrac{1}{2}", "σ": r"\sigma ", "α": r"\alpha ", "²": "^{2}",
        "≤": r" \le ", "∘": r" \circ ", "Σ": r"\sum ", "η": r"\eta ", "δ": r"\delta ", "ᵀ": r"^{\mathsf{T}}",
        "⁺": "^{+}", "→": r" \to ", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "√": r"\sqrt ",
        "³": "^{3}", "×": r"\times ", "μ": r"\mu ", "γ": r"\gamma ", "β": r"\beta ", "ε": r"\epsilon ",
        "π": r"\pi ", "−": "-", "'": "'"}


def tex_escape(text: str) -> str:
    """Plain text with its few special characters written for LaTeX."""
    return "".join(_TEX.get(c, c) for c in text)


class Lit(Part):
    """Literal text: an operator, a bracket, a word. ``tex`` defaults to ``text`` with its
    special characters translated, ``html`` to ``text`` escaped."""

    def __init__(self, text: str, tex: str | None = None, html: str | None = None) -> None:
        self.text = text
        self.tex = tex_escape(text) if tex is None else tex
        self.html = _html.escape(text) if html is None else html

    def render(self, fmt, digits):
        return {"text": self.text, "tex": self.tex, "html": self.html}[fmt]

    def __repr__(self) -> str:
        return f"Lit({self.text!r})"


class Sym(Lit):
    """A named quantity (w5, out_h1, dE/dw5). ``str(sym)`` is its plain-text name."""

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Sym({self.text!r})"


class Num(Part):
    """A number; negative ones get brackets when ``paren`` is set (as factors and terms)."""

    def __init__(self, value: float, paren: bool = False) -> None:
        self.value = float(value)
        self.paren = paren

    def render(self, fmt, digits):
        s = _tex_number(self.value, digits) if fmt == "tex" else format_number(self.value, digits)
        if fmt == "html" and s.startswith("-"):
            s = "&minus;" + s[1:]
        if fmt == "html" and "e" in s:  # (a browser may break a line after the exponent's minus sign)
            s = f'<span class="cr-num">{s}</span>'
        if self.paren and self.value < 0:
            return f"({s})" if fmt != "tex" else rf"\left({s}\right)"
        return s

    def numbers(self):
        return [self.value]


class Mat(Part):
    """A matrix or vector: text [a b; c d], LaTeX bmatrix, HTML a small inline table."""

    def __init__(self, array) -> None:
        self.array = np.atleast_2d(np.array(array, dtype=np.float64, copy=True))

    def render(self, fmt, digits):
        rows = [[Num(v).render(fmt, digits) for v in row] for row in self.array]
        if fmt == "tex":
            body = r" \\ ".join(" & ".join(r) for r in rows)
            return rf"\begin{{bmatrix}} {body} \end{{bmatrix}}"
        if fmt == "html":
            trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
            return f'<table class="mat">{trs}</table>'
        return "[" + "; ".join(" ".join(r) for r in rows) + "]"

    def numbers(self):
        return [float(v) for v in self.array.ravel()]


class Expr(Part):
    """A sequence of parts written one after the other."""

    def __init__(self, *parts) -> None:
        self.parts = [as_part(p) for p in parts]

    def render(self, fmt, digits):
        return "".join(p.render(fmt, digits) for p in self.parts)

    def numbers(self):
        return [v for p in self.parts for v in p.numbers()]


class Frac(Part):
    """num / den: text ``num/(den)``, LaTeX ``\\frac``."""

    def __init__(self, num, den) -> None:
        self.num, self.den = as_part(num), as_part(den)

    def render(self, fmt, digits):
        n, d = self.num.render(fmt, digits), self.den.render(fmt, digits)
        if fmt == "tex":
            return rf"\frac{{{n}}}{{{d}}}"
        simple = isinstance(self.den, (Lit, Num)) and not (isinstance(self.den, Num) and self.den.value < 0) \
            and " " not in d
        return f"{n}/{d}" if simple else f"{n}/({d})"

    def numbers(self):
        return self.num.numbers() + self.den.numbers()


class Exp(Part):
    """e to the power ``arg``: text ``e^(arg)``, LaTeX ``e^{arg}``."""

    def __init__(self, arg) -> None:
        self.arg = as_part(arg)

    def render(self, fmt, digits):
        a = self.arg.render(fmt, digits)
        if fmt == "tex":
            return f"e^{{{a}}}"
        if fmt == "html":
            return f"e<sup>{a}</sup>"
        return f"e^({a})"

    def numbers(self):
        return self.arg.numbers()


class Call(Part):
    """A function applied to an argument: σ(net_h1), tanh(0.3), log(p_o1)."""

    def __init__(self, name: str, tex: str, arg) -> None:
        self.name, self.tex, self.arg = name, tex, as_part(arg)

    def render(self, fmt, digits):
        a = self.arg.render(fmt, digits)
        if fmt == "tex":
            return rf"{self.tex}\left({a}\right)"
        return f"{_html.escape(self.name) if fmt == 'html' else self.name}({a})"

    def numbers(self):
        return self.arg.numbers()


def as_part(p) -> Part:
    if isinstance(p, Part):
        return p
    if isinstance(p, str):
        return OPS.get(p) or Lit(p)
    if isinstance(p, (int, float, np.floating, np.integer)):
        return Num(p)
    if isinstance(p, (list, tuple)):
        return Expr(*p)
    if isinstance(p, np.ndarray):
        return Mat(p)
    raise TypeError(f"cannot make an equation part of {p!r}")


OPS = {
    " + ": Lit(" + "),
    " - ": Lit(" - ", " - ", " &minus; "),
    "-": Lit("-", "-", "&minus;"),
    "·": Lit("·", r" \cdot ", "·"),
    " · ": Lit(" · ", r" \cdot ", " · "),
    "∘": Lit(" ∘ ", r" \circ ", " ∘ "),
    "½": Lit("½", r"\tfrac{1}{2}", "½"),
    "Σ": Lit("Σ", r"\sum", "Σ"),
    "η": Lit("η", r"\eta", "η"),
    "σ": Lit("σ", r"\sigma", "σ"),
    "²": Lit("²", "^{2}", "<sup>2</sup>"),
    "α": Lit("α", r"\alpha", "α"),
    "ᵀ": Lit("ᵀ", r"^{\mathsf{T}}", "<sup>T</sup>"),
    "1 - ": Lit("1 - ", "1 - ", "1 &minus; "),
}


def render(parts, fmt: str, digits: int) -> str:
    return as_part(parts).render(fmt, digits)


# --- the names of the scalar notation ----------------------------------------------------------
class Unit:
    """A unit of the network: i1 (input), h1 or h2_1 (hidden), o1 (output)."""

    def __init__(self, letter: str, index: int, layer: int | None = None) -> None:
        self.letter, self.index, self.layer = letter, index, layer
        if layer is None:
            self.text = f"{letter}{index}"
            self.tex = f"{letter}_{{{index}}}"
        else:
            self.text = f"{letter}{layer}_{index}"
            self.tex = f"{letter}_{{{layer},{index}}}"
        self.html = f"{letter}{index}" if layer is None else f"{letter}{layer},{index}"

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Unit({self.text!r})"


def _sample_suffix(sample: int | None) -> tuple[str, str, str]:
    if sample is None:
        return "", "", ""
    return f"[{sample}]", f"^{{({sample})}}", f"<sup>({sample})</sup>"


def quantity(kind: str, unit: Unit, sample: int | None = None) -> Sym:
    """net_h1, out_o1, target_o1, E_o1, p_o1 (of one sample when ``sample`` is given)."""
    st, sx, sh = _sample_suffix(sample)
    tex_kind = {"E": "E", "p": "p"}.get(kind, rf"\mathrm{{{kind}}}")
    return Sym(f"{kind}_{unit.text}{st}", f"{tex_kind}_{{{unit.tex}}}{sx}",
               f"{kind}<sub>{unit.html}</sub>{sh}")


def input_sym(unit: Unit, sample: int | None = None) -> Sym:
    st, sx, sh = _sample_suffix(sample)
    return Sym(f"{unit.text}{st}", f"{unit.tex}{sx}", f"{unit.letter}<sub>{unit.index}</sub>{sh}")


def weight_sym(number: int, updated: bool = False) -> Sym:
    plus = ("⁺", "^{+}", "<sup>+</sup>") if updated else ("", "", "")
    return Sym(f"w{number}{plus[0]}", f"w_{{{number}}}{plus[1]}", f"w<sub>{number}</sub>{plus[2]}")


def bias_sym(layer: int, unit: Unit, updated: bool = False) -> Sym:
    plus = ("⁺", "^{+}", "<sup>+</sup>") if updated else ("", "", "")
    return Sym(f"b{layer}_{unit.text}{plus[0]}", f"b_{{{layer},{unit.tex}}}{plus[1]}",
               f"b<sub>{layer},{unit.html}</sub>{plus[2]}")


def total_error(sample: int | None = None, updated: bool = False) -> Sym:
    st, sx, sh = _sample_suffix(sample)
    plus = ("⁺", "^{+}", "<sup>+</sup>") if updated else ("", "", "")
    return Sym(f"E_total{st}{plus[0]}", rf"E_{{\mathrm{{total}}}}{sx}{plus[1]}",
               f"E<sub>total</sub>{sh}{plus[2]}")


def deriv(num: Sym | str, den: Sym) -> Sym:
    """∂num/∂den, written dE/dw5 in text (``num`` "E" is the total error)."""
    if isinstance(num, str):
        num = Sym(num, num, num)
    return Sym(f"d{num.text}/d{den.text}", rf"\frac{{\partial {num.tex}}}{{\partial {den.tex}}}",
               f"∂{num.html}/∂{den.html}")


# --- the names of the matrix notation ----------------------------------------------------------
_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
_SUBSCRIPTS = str.maketrans("0123456789t-", "₀₁₂₃₄₅₆₇₈₉ₜ₋")


def layer_sym(base: str, layer: int, transpose: bool = False, updated: bool = False,
              tex_base: str | None = None) -> Sym:
    """z², a¹, W², b¹, δ² (text with superscript digits; LaTeX z^{(2)})."""
    tb = base if tex_base is None else tex_base
    t = "ᵀ" if transpose else ""
    plus = ("⁺", "^{+}", "<sup>+</sup>") if updated else ("", "", "")
    tex = f"{tb}^{{({layer})}}"
    if transpose:
        tex = rf"\left({tex}\right)^{{\mathsf{{T}}}}"
    text = f"{base}{str(layer).translate(_SUPERSCRIPTS)}{t}{plus[0]}"
    html = f"{_html.escape(base)}<sup>{layer}</sup>{'<sup>T</sup>' if transpose else ''}{plus[2]}"
    return Sym(text, tex + plus[1], html)


def at_step(sym: Sym, t) -> Sym:
    """Z¹₂, A⁰ₜ, H¹ₜ₋₁: ``sym`` at time step ``t`` (a number, "t" or "t-1") of a layer unrolled in time."""
    return Sym(f"{sym.text}{str(t).translate(_SUBSCRIPTS)}", rf"{{{sym.tex}}}_{{{t}}}", f"{sym.html}<sub>{t}</sub>")
