"""Markdown: headings per section, the equations as the plain text in code blocks (so every
number reads exactly as in the terminal), the name, check and summary tables as tables."""

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
    step_lines,
    summary_rows,
)
from .symbols import render

if TYPE_CHECKING:  # (types only: trace.py imports the renderers)
    from .trace import Trace


def _cell(v) -> str:
    return str(v).replace("|", "\\|")


def md_table(head, rows, code_cols=()) -> list[str]:
    def fmt(r, header=False):
        cells = [f"`{_cell(v)}`" if (c in code_cols and not header and v) else _cell(v) for c, v in enumerate(r)]
        return "| " + " | ".join(cells) + " |"

    return [fmt(head, True), "|" + "|".join("---" for _ in head) + "|", *(fmt(r) for r in rows)]


def render_markdown(trace: Trace, digits: int) -> str:
    out = [f"# {trace.title}", ""]
    out += [f"- {line}" for line in trace.description]
    level = "##" if trace.n_steps == 1 else "###"
    current_iteration = 0
    for iteration, section, steps in grouped(trace):
        if trace.n_steps > 1 and iteration != current_iteration and section not in ("network", "note"):
            current_iteration = iteration
            out += ["", f"## Step {iteration} of {trace.n_steps}"]
        head = "##" if section in ("network", "note") else level
        out += ["", f"{head} {section_title(trace, section)}", ""]
        if section == "note":
            out += [render(s.rhs, "text", digits) for s in steps]
        elif section == "network":
            out += md_table(("name", "connects", "value", "where"), network_rows(steps, digits), {0, 3})
        elif section == "check":
            out += md_table(CHECK_HEAD, check_rows(steps, digits), {0, 4})
            out += ["", f"Largest relative error: {max(s.rel_error for s in steps):.1e}."]
        elif section == "summary":
            out += md_table(SUMMARY_KEYS, summary_rows(steps, digits))
        else:
            sample, block = None, []
            for s in steps:
                if s.sample is not None and s.sample != sample:
                    if block:
                        out += ["```text", *block, "```", ""]
                        block = []
                    sample = s.sample
                    out += [f"Sample {sample} of {trace.n_samples}:", ""]
                block += step_lines(s, digits, 10_000)
            out += ["```text", *block, "```"]
    if trace.n_steps > 1 and len(trace.errors) > 1:
        out += ["", "## Error per step", ""]
        out += md_table(ERROR_HEAD, error_rows(trace, digits))
    return "\n".join(out) + "\n"
