"""One self-contained HTML page: the network drawn as SVG beside the steps of the trace.

Every weight is one SVG <line class="edge"> carrying its weight, its forward contribution
(weight · input, first sample) and its gradient dE/dw as data attributes and in its tooltip.
Colour is the sign (blue positive, red negative), thickness the magnitude; buttons switch the
drawing between the three. Nothing is fetched: styles and the small script are inline, and the
page opens without network access. In a notebook the trace shows itself as the same drawing
and steps, without the script.
"""

from __future__ import annotations

import html
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
from .symbols import format_number, render

if TYPE_CHECKING:  # (types only: trace.py imports the renderers)
    from .trace import Step, Trace

POSITIVE, NEGATIVE = "#2563eb", "#dc2626"

CSS = """
.cr-x{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2937;line-height:1.45}
.cr-x .cr-cols{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
.cr-x .cr-net{flex:0 0 auto;position:sticky;top:8px;background:#f9fafb;border:1px solid #e5e7eb;
 border-radius:8px;padding:8px}
.cr-x .cr-steps{flex:1 1 480px;min-width:320px;max-width:100%}
.cr-x h1{font-size:1.4em;margin:.2em 0}.cr-x h2{font-size:1.15em;margin:1.2em 0 .4em;
 border-bottom:1px solid #e5e7eb}.cr-x h3{font-size:1em;margin:.8em 0 .3em;color:#4b5563}
.cr-x .cr-desc{color:#4b5563;font-size:.9em;margin:0 0 1em;padding-left:1.2em}
.cr-x .cr-step{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em;
 padding:2px 6px;border-radius:4px;margin:1px 0}
.cr-x .cr-step:hover,.cr-x .cr-step.cr-hot{background:#fef3c7}
.cr-x .cr-note{color:#6b7280;margin-left:1em}
.cr-x table.cr-table{border-collapse:collapse;font-size:.85em;margin:.4em 0}
.cr-x table.cr-table td,.cr-x table.cr-table th{border:1px solid #e5e7eb;padding:2px 8px;text-align:right;
 white-space:nowrap}
.cr-x table.cr-table th{white-space:normal}
.cr-x table.cr-table td:last-child{white-space:normal;overflow-wrap:anywhere;text-align:left;min-width:10em}
.cr-x .cr-wide{max-width:100%;overflow-x:auto}
.cr-x .cr-num{white-space:nowrap}
.cr-x .cr-steps{overflow-wrap:anywhere}
.cr-x table.cr-table td:first-child,.cr-x table.cr-table th:first-child{text-align:left}
.cr-x table.mat{display:inline-table;border-left:1px solid #374151;border-right:1px solid #374151;
 border-collapse:separate;border-spacing:6px 0;vertical-align:middle;margin:0 2px}
.cr-x table.mat td{padding:0;text-align:right}
.cr-x svg text{font-family:ui-monospace,Menlo,Consolas,monospace}
.cr-x line.edge{stroke-linecap:round}
.cr-x line.edge:hover,.cr-x line.edge.cr-hot{stroke:#f59e0b !important}
.cr-x .cr-legend{font-size:.8em;color:#4b5563;max-width:420px}
.cr-x .cr-msg{background:#fef2f2;border:1px solid #fecaca;padding:8px;border-radius:6px}
"""

SCRIPT = """
(function(){
  var root=document.currentScript.parentNode;
  var edges=root.querySelectorAll('line.edge');
  function show(key){
    var max=0;edges.forEach(function(e){max=Math.max(max,Math.abs(+e.dataset[key]))});
    edges.forEach(function(e){var v=+e.dataset[key];
      e.setAttribute('stroke',v<0?'NEGATIVE':'POSITIVE');
      e.setAttribute('stroke-width',(1+6*(max?Math.abs(v)/max:0)).toFixed(2));});
  }
  root.querySelectorAll('input[name=cr-view]').forEach(function(r){
    r.addEventListener('change',function(){show(r.value)});});
  root.querySelectorAll('.cr-step[data-param]').forEach(function(s){
    var e=root.querySelector('line.edge[data-name="'+s.dataset.param+'"]');
    if(!e)return;
    s.addEventListener('mouseenter',function(){e.classList.add('cr-hot')});
    s.addEventListener('mouseleave',function(){e.classList.remove('cr-hot')});
    e.addEventListener('mouseenter',function(){s.classList.add('cr-hot')});
    e.addEventListener('mouseleave',function(){s.classList.remove('cr-hot')});
  });
})();
""".replace("NEGATIVE", NEGATIVE).replace("POSITIVE", POSITIVE)


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


def svg_network(graph: dict, digits: int) -> str:
    """The network as inline SVG: one <line class="edge"> per weight, one circle per unit."""
    layers, edges = graph["layers"], graph["edges"]
    col_gap, row_gap, r = 190, 92, 24
    height = max(len(c) for c in layers) * row_gap + 40
    width = (len(layers) - 1) * col_gap + 2 * 70
    pos = {}
    for li, col in enumerate(layers):
        top = (height - len(col) * row_gap) / 2 + row_gap / 2
        for ui in range(len(col)):
            pos[(li, ui)] = (70 + li * col_gap, top + ui * row_gap)
    biggest = max((abs(e["weight"]) for e in edges), default=0) or 1.0
    out = [f'<svg class="cr-svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img"'
           f' aria-label="network diagram">']
    for e in edges:
        (x1, y1), (x2, y2) = pos[tuple(e["from"])], pos[tuple(e["to"])]
        w = e["weight"]
        tip = (f'{e["name"]}: {e["source"]} → {e["target"]}; weight {format_number(w, digits)}; contribution '
               f'{e["name"]}·{e["source"]} = {format_number(e["contribution"], digits)}; dE/d{e["name"]} = '
               f'{format_number(e["gradient"], digits)}')
        out.append(
            f'<line class="edge" data-name="{_esc(e["name"])}" data-weight="{w!r}"'
            f' data-contribution="{e["contribution"]!r}" data-gradient="{e["gradient"]!r}"'
            f' x1="{x1 + r:.1f}" y1="{y1:.1f}" x2="{x2 - r:.1f}" y2="{y2:.1f}"'
            f' stroke="{NEGATIVE if w < 0 else POSITIVE}" stroke-width="{1 + 6 * abs(w) / biggest:.2f}"'
            f' stroke-opacity="0.8"><title>{_esc(tip)}</title></line>')
    for e in edges:  # labels on top of every line, a third of the way along
        (x1, y1), (x2, y2) = pos[tuple(e["from"])], pos[tuple(e["to"])]
        lx, ly = x1 + r + (x2 - x1 - 2 * r) * 0.28, y1 + (y2 - y1) * 0.28
        out.append(f'<text x="{lx:.1f}" y="{ly - 3:.1f}" font-size="10" fill="#374151"'
                   f' text-anchor="middle">{_esc(e["name"])}</text>')
    for li, col in enumerate(layers):
        for ui, node in enumerate(col):
            x, y = pos[(li, ui)]
            fill = "#e0e7ff" if li == 0 else ("#dcfce7" if li == len(layers) - 1 else "#fef9c3")
            tip = f'{node["name"]} = {format_number(node["value"], digits)}'
            if "net" in node:
                tip = (f'{node["name"]}: net = {format_number(node["net"], digits)}, out = '
                       f'{format_number(node["value"], digits)} ({node["activation"]})')
            out.append(f'<g class="unit" data-name="{_esc(node["name"])}"><title>{_esc(tip)}</title>'
                       f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{fill}" stroke="#374151"/>'
                       f'<text x="{x:.1f}" y="{y + 4:.1f}" font-size="12" text-anchor="middle">'
                       f'{_esc(node["name"])}</text>'
                       f'<text x="{x:.1f}" y="{y + r + 13:.1f}" font-size="10" text-anchor="middle"'
                       f' fill="#374151">{_esc(format_number(node["value"], min(digits, 4)))}</text>')
            if "bias" in node:
                name, b = node["bias"]
                out.append(f'<text x="{x:.1f}" y="{y - r - 5:.1f}" font-size="9" text-anchor="middle"'
                           f' fill="#6b7280">{_esc(name)} = {_esc(format_number(b, min(digits, 4)))}</text>')
            out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def _step_html(step: Step, digits: int) -> str:
    forms = [text for _, text in step.rendered("html", digits)]
    body = " = ".join([step.head("html"), *forms]) if step.lhs is not None else " ".join(forms)
    note = f'<span class="cr-note">[{_esc(step.note)}]</span>' if step.note else ""
    attr = f' data-param="{_esc(step.param)}"' if step.param else ""
    return f'<div class="cr-step"{attr}>{body}{note}</div>'


def _table(head, rows) -> str:
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in r) + "</tr>" for r in rows)
    # (in a box that scrolls by itself on a narrow screen, so that the page never scrolls sideways)
    return (f'<div class="cr-wide"><table class="cr-table"><thead><tr>{th}</tr></thead>'
            f'<tbody>{trs}</tbody></table></div>')


def steps_html(trace: Trace, digits: int) -> str:
    out = []
    current_iteration = 0
    for iteration, section, steps in grouped(trace):
        if trace.n_steps > 1 and iteration != current_iteration and section not in ("network", "note"):
            current_iteration = iteration
            out.append(f"<h2>Step {iteration} of {trace.n_steps}</h2>")
        tag = "h2" if trace.n_steps == 1 else "h3"
        out.append(f"<{tag}>{_esc(section_title(trace, section))}</{tag}>")
        if section == "note":
            out += [f'<p class="cr-msg">{_esc(render(s.rhs, "text", digits))}</p>' for s in steps]
        elif section == "network":
            out.append(_table(("name", "connects", "value", "where"), network_rows(steps, digits)))
        elif section == "check":
            out.append(_table(CHECK_HEAD, check_rows(steps, digits)))
        elif section == "summary":
            out.append(_table(SUMMARY_KEYS, summary_rows(steps, digits)))
        else:
            sample = None
            for s in steps:
                if s.sample is not None and s.sample != sample:
                    sample = s.sample
                    out.append(f"<h3>Sample {sample} of {trace.n_samples}</h3>")
                out.append(_step_html(s, digits))
    if trace.n_steps > 1 and len(trace.errors) > 1:
        out.append("<h2>Error per step</h2>")
        out.append(_table(ERROR_HEAD, error_rows(trace, digits)))
    return "\n".join(out)


def body_html(trace: Trace, digits: int, script: bool) -> str:
    desc = "".join(f"<li>{_esc(line)}</li>" for line in trace.description)
    parts = ['<div class="cr-x">', f"<h1>{_esc(trace.title)}</h1>", f'<ul class="cr-desc">{desc}</ul>',
             '<div class="cr-cols">']
    if trace.graph is not None:
        sample = " (edge contributions for sample 1)" if trace.graph["samples"] > 1 else ""
        switch = ""
        if script:
            switch = ('<div class="cr-legend">show: '
                      '<label><input type="radio" name="cr-view" value="weight" checked> weight</label> '
                      '<label><input type="radio" name="cr-view" value="contribution"> contribution w·input</label> '
                      '<label><input type="radio" name="cr-view" value="gradient"> gradient dE/dw</label></div>')
        parts.append(f'<figure class="cr-net">{svg_network(trace.graph, digits)}<figcaption class="cr-legend">'
                     f'One line per weight: blue positive, red negative, thickness the magnitude{sample}. '
                     f'Hover a line for its weight, contribution and gradient.</figcaption>{switch}</figure>')
    parts += [f'<div class="cr-steps">{steps_html(trace, digits)}</div>', "</div>"]
    if script:
        parts.append(f"<script>{SCRIPT}</script>")
    parts.append("</div>")
    return "\n".join(parts)


def render_html(trace: Trace, digits: int, full: bool = True) -> str:
    if not full:
        return f"<style>{CSS}</style>\n{body_html(trace, digits, script=False)}"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_esc(trace.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"{body_html(trace, digits, script=True)}\n</body>\n</html>\n")
