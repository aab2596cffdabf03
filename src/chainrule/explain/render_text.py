"""Plain text for a terminal: sections, one equation per step, lines broken to fit the width."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from .symbols import Expr, Lit, Part, format_number, render

if TYPE_CHECKING:  # (types only: trace.py imports the renderers)
    from .trace import Step, Trace

#: Section keys in the order a trace shows them, and their titles.
SECTIONS = {
    "network": "Network and names",
    "forward": "Forward pass",
    "error": "Error",
    "backward": "Backward pass",
    "gradient": "Gradient: the sum over the samples",
    "check": "Gradient check: analytic value and central difference",
    "update": "Update",
    "after": "After the update",
    "summary": "Layer summary",
    "note": "Note",
}


CHECK_HEAD = ("gradient", "analytic", "central diff.", "relative error", "where")
SUMMARY_KEYS = ("layer", "W shape", "output", "‖W‖", "‖δ‖", "‖dE/dW‖", "‖dE/db‖", "update ratio", "check")


def forms_text(step: Step, digits: int) -> list[str]:
    return [text for _, text in step.rendered("text", digits)]


def step_one_line(step: Step, digits: int) -> str:
    """``lhs = form = form = value`` on one line (the note, if any, in brackets after it)."""
    line = " = ".join([step.head("text"), *forms_text(step, digits)]) if step.lhs is not None else \
        " ".join(forms_text(step, digits))
    return line + (f"   [{step.note}]" if step.note else "")


def _wrap_form(part: Part, text: str, avail: int, digits: int) -> list[str]:
    """Break a long sum before its + and - signs, and a long matrix after its rows' ";"."""
    if len(text) <= avail:
        return [text]
    pieces = [text]
    if isinstance(part, Expr):
        pieces, cur = [], ""
        for sub in part.parts:
            s = sub.render("text", digits)
            breakable = isinstance(sub, Lit) and sub.text in (" + ", " - ") and cur
            if breakable and len(cur) + len(s) > avail - 10:
                pieces.append(cur.rstrip())
                cur = "    " + s.lstrip()
            else:
                cur += s
        pieces.append(cur)
    lines = []
    for piece in pieces:
        while len(piece) > avail and "; " in piece[: avail]:
            cut = piece.rfind("; ", 0, avail) + 1
            lines.append(piece[:cut])
            piece = "     " + piece[cut:].lstrip()
        lines.append(piece)
    return lines


def step_lines(step: Step, digits: int, width: int, indent: str = "") -> list[str]:
    """The step on one line when it fits, else one form per line with the = signs aligned."""
    one = indent + step_one_line(step, digits)
    if len(one) <= width or step.lhs is None:
        return [one]
    pad = indent + " " * len(step.head("text"))
    lines = []
    for k, (part, text) in enumerate(step.rendered("text", digits)):
        head = (indent + step.head("text")) if k == 0 else pad
        avail = width - len(head) - 3
        for m, piece in enumerate(_wrap_form(part, text, avail, digits)):
            lines.append(f"{head} = {piece}" if m == 0 else f"{pad}   {piece}")
    if step.note:
        lines[-1] += f"   [{step.note}]"
    return lines


def table(head: tuple, rows: list[tuple], right: set[int] = frozenset()) -> list[str]:
    widths = [max(len(str(r[c])) for r in [head, *rows]) for c in range(len(head))]

    def fmt(r):
        return "  ".join(str(v).rjust(w) if c in right else str(v).ljust(w)
                         for c, (v, w) in enumerate(zip(r, widths, strict=True))).rstrip()

    return [fmt(head), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)]


def check_rows(steps: list[Step], digits: int) -> list[tuple]:
    return [(s.head("text"), format_number(s.value, digits), format_number(s.numeric, digits), f"{s.rel_error:.1e}",
             s.where or "") for s in steps]


def network_rows(steps: list[Step], digits: int) -> list[tuple]:
    return [(s.name, s.note, format_number(s.value, digits), s.where or "") for s in steps]


def summary_rows(steps: list[Step], digits: int) -> list[tuple]:
    rows = []
    for s in steps:
        row = []
        for k in SUMMARY_KEYS:
            v = s.info.get(k)
            if v is None:
                row.append("-")
            elif isinstance(v, float):
                row.append(f"{v:.1e}" if k == "check" else f"{v:.3g}")
            else:
                row.append(str(v))
        rows.append(tuple(row))
    return rows


ERROR_HEAD = ("step", "E_total before", "E_total after")


def error_rows(trace: Trace, digits: int) -> list[tuple]:
    e = trace.errors
    return [(str(k + 1), format_number(e[k], digits), format_number(e[k + 1], digits)) for k in range(len(e) - 1)]


def sample_heading(trace: Trace, step: Step, digits: int) -> str:
    return f"sample {step.sample} of {trace.n_samples}"


def grouped(trace: Trace):
    """(iteration, section, steps) in reading order."""
    group: list[Step] = []
    for s in trace.steps:
        if group and (s.iteration != group[0].iteration or s.section != group[0].section):
            yield group[0].iteration, group[0].section, group
            group = []
        group.append(s)
    if group:
        yield group[0].iteration, group[0].section, group


def section_title(trace: Trace, section: str) -> str:
    title = SECTIONS[section]
    if section == "update" and trace.lr is not None:
        title += f" (η = {trace.lr:g})"
    return title


def render_text(trace: Trace, digits: int, width: int = 100) -> str:
    out = [trace.title, "=" * len(trace.title)]
    for line in trace.description:
        out += textwrap.wrap(line, width, subsequent_indent="  ", break_on_hyphens=False)
    current_iteration = 0
    for iteration, section, steps in grouped(trace):
        if trace.n_steps > 1 and iteration != current_iteration and section not in ("network", "note"):
            current_iteration = iteration
            head = f"Step {iteration} of {trace.n_steps}"
            out += ["", head, "=" * len(head)]
        title = section_title(trace, section)
        out += ["", title, "-" * len(title)]
        if section == "note":
            for s in steps:
                out += textwrap.wrap(render(s.rhs, "text", digits), width, break_on_hyphens=False)
        elif section == "network":
            out += table(("name", "connects", "value", "where"), network_rows(steps, digits), {2})
        elif section == "check":
            out += table(CHECK_HEAD, check_rows(steps, digits), {1, 2, 3})
            worst = max(s.rel_error for s in steps)
            out.append(f"largest relative error {worst:.1e}: " + ("every gradient agrees with its central"
                       " difference" if worst < 1e-7 else "CHECK FAILED (above 1e-7)"))
        elif section == "summary":
            out += table(SUMMARY_KEYS, summary_rows(steps, digits), set(range(3, len(SUMMARY_KEYS))))
            ratio = "η" if trace.lr is not None else "η = 1 (no lr given)"
            out += textwrap.wrap(f"update ratio = {ratio}·‖dE/dW‖/‖W‖; check = largest relative error of"
                                 " a few entries against central differences", width)
        else:
            sample = None
            for s in steps:
                if s.sample is not None and s.sample != sample:
                    sample = s.sample
                    out.append(f"-- {sample_heading(trace, s, digits)}")
                out += step_lines(s, digits, width)
    if trace.n_steps > 1 and len(trace.errors) > 1:
        out += ["", "Error per step", "--------------"]
        out += table(ERROR_HEAD, error_rows(trace, digits), {1, 2})
    return "\n".join(out) + "\n"
