"""LaTeX (amsmath): each step an align* block, one right-hand side per line; tables as tabular.

The output is plain ASCII: every special character of the plain text is written as a LaTeX
command, so it compiles with pdflatex as well as with LuaLaTeX or XeLaTeX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .render_text import (
    CHECK_HEAD,
    ERROR_HEAD,
    SUMMARY_KEYS,
    check_rows,
    error_rows,
    grouped,
    network_rows,
    section_title,
    summary_rows,
)
from .symbols import render

if TYPE_CHECKING:  # (types only: trace.py imports the renderers)
    from .trace import Step, Trace

_SUPER = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789", strict=True))
_TEXT = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#",
    "$": r"\$", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "δ": r"\ensuremath{\delta}", "σ": r"\ensuremath{\sigma}", "η": r"\ensuremath{\eta}", "α": r"\ensuremath{\alpha}",
    "Σ": r"\ensuremath{\Sigma}", "Δ": r"\ensuremath{\Delta}", "→": r"\ensuremath{\to}", "½": r"\ensuremath{\tfrac12}",
    "·": r"\ensuremath{\cdot}", "≤": r"\ensuremath{\le}", "∘": r"\ensuremath{\circ}", "‖": r"\ensuremath{\|}",
    "ᵀ": r"\ensuremath{^{\mathsf{T}}}", "⁺": r"\ensuremath{^{+}}", "⁻": r"\ensuremath{^{-}}", "ˡ": r"\ensuremath{^{l}}",
    "ᴸ": r"\ensuremath{^{L}}", "'": "'", "—": "---", "–": "--",
}


def tex_text(s: str) -> str:
    """Plain text for LaTeX text mode, every non-ASCII character written as a command."""
    out = []
    for c in str(s):
        if c in _SUPER:
            out.append(rf"\textsuperscript{{{_SUPER[c]}}}")
        elif c in _TEXT:
            out.append(_TEXT[c])
        elif ord(c) < 128:
            out.append(c)
        else:
            out.append("?")
    return "".join(out)


def step_tex(step: Step, digits: int) -> list[str]:
    forms = [text for _, text in step.rendered("tex", digits)]
    if step.lhs is None:
        return [tex_text(render(step.rhs, "text", digits)), ""]
    lines = [r"\begin{align*}"]
    for k, f in enumerate(forms):
        head = step.head("tex") if k == 0 else ""
        end = r" \\" if k < len(forms) - 1 else ""
        note = rf" \qquad \text{{[{tex_text(step.note)}]}}" if step.note and k == len(forms) - 1 else ""
        lines.append(f"  {head} &= {f}{note}{end}")
    lines.append(r"\end{align*}")
    return lines


def tex_table(head, rows, align: str) -> list[str]:
    lines = [r"\begin{center}\small", rf"\begin{{tabular}}{{{align}}}", r"\hline",
             " & ".join(rf"\textbf{{{tex_text(h)}}}" for h in head) + r" \\ \hline"]
    lines += [" & ".join(tex_text(v) for v in r) + r" \\" for r in rows]
    lines += [r"\hline", r"\end{tabular}", r"\end{center}"]
    return lines


def render_latex(trace: Trace, digits: int, standalone: bool = True) -> str:
    out: list[str] = []
    if standalone:
        out += [r"\documentclass[a4paper,10pt]{article}", r"\usepackage{amsmath,amssymb}",
                r"\usepackage[margin=2cm]{geometry}", r"\allowdisplaybreaks", r"\begin{document}", ""]
    out += [rf"\section*{{{tex_text(trace.title)}}}", r"\begin{itemize}"]
    out += [rf"  \item {tex_text(line)}" for line in trace.description]
    out += [r"\end{itemize}"]
    current_iteration = 0
    for iteration, section, steps in grouped(trace):
        if trace.n_steps > 1 and iteration != current_iteration and section not in ("network", "note"):
            current_iteration = iteration
            out += ["", rf"\section*{{Step {iteration} of {trace.n_steps}}}"]
        out += ["", rf"\subsection*{{{tex_text(section_title(trace, section))}}}"]
        if section == "network":
            out += tex_table(("name", "connects", "value", "where"), network_rows(steps, digits), "llrl")
        elif section == "check":
            out += tex_table(CHECK_HEAD, check_rows(steps, digits), "lrrrl")
        elif section == "summary":
            out += tex_table(SUMMARY_KEYS, summary_rows(steps, digits), "lll" + "r" * (len(SUMMARY_KEYS) - 3))
        else:
            sample = None
            for s in steps:
                if s.sample is not None and s.sample != sample:
                    sample = s.sample
                    out.append(rf"\paragraph{{Sample {sample} of {trace.n_samples}}}")
                out += step_tex(s, digits)
    if trace.n_steps > 1 and len(trace.errors) > 1:
        out += ["", r"\subsection*{Error per step}"]
        out += tex_table(ERROR_HEAD, error_rows(trace, digits), "rrr")
    if standalone:
        out += ["", r"\end{document}"]
    return "\n".join(out) + "\n"
