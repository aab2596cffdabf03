"""Rich display in Jupyter: HTML tables and small inline SVG drawings, no external resources.

``Sequential``, ``History`` and ``GradcheckReport`` build their ``_repr_html_`` from these
pieces. Every piece of text goes through :func:`esc`; the markup is well-formed XML too, so
it can be embedded in any page.
"""

from __future__ import annotations

import html
import math

_FONT = 'font-family="sans-serif"'
_COLORS = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2")


def esc(value) -> str:
    """``value`` as text safe inside HTML (and XML) elements and attribute values."""
    return html.escape(str(value), quote=True)


def number(value: float, digits: int = 9) -> str:
    """A float with up to ``digits`` significant digits (nan and inf spelled out)."""
    return f"{float(value):.{digits}g}"


def html_table(head, rows, caption: str | None = None, footer: str | None = None, right=()) -> str:
    """A <table> of strings; the columns whose indices are in ``right`` (numbers) align right;
    ``footer`` is a line of text under it."""
    def cells(tag, values) -> str:
        return "".join(f'<{tag} style="text-align:{"right" if i in right else "left"}">{esc(v)}</{tag}>'
                       for i, v in enumerate(values))

    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    trs = "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
    foot = f'<div style="font-size:90%">{esc(footer)}</div>' if footer else ""
    return f"<table>{cap}<thead><tr>{cells('th', head)}</tr></thead><tbody>{trs}</tbody></table>{foot}"


def markdown_table(head, rows) -> str:
    """A Markdown pipe table (pipes in cells escaped)."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def svg_layers(boxes: list[tuple[str, list[str], bool]]) -> str:
    """The layers left to right as boxes joined by arrows.

    ``boxes``: (name, lines of detail, has_params) per layer; layers with parameters are shaded.
    """
    w, gap = 118, 26
    n_lines = max((len(lines) for _, lines, _ in boxes), default=0)
    h = 26 + 14 * n_lines
    width = max(len(boxes), 1) * (w + gap) - gap + 8
    height = h + 8
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
           f' viewBox="0 0 {width} {height}" role="img" aria-label="layers">']
    for i, (name, lines, has_params) in enumerate(boxes):
        x = 4 + i * (w + gap)
        fill = "#dbeafe" if has_params else "#f3f4f6"
        text = [f'<text x="{x + w / 2:g}" y="{38 + 14 * k}" font-size="10" text-anchor="middle" fill="#4b5563"'
                f' {_FONT}>{esc(_clip(line, 21))}</text>' for k, line in enumerate(lines)]
        out.append(f'<g><title>{esc(name)}: {esc(", ".join(lines))}</title>'
                   f'<rect x="{x}" y="4" width="{w}" height="{h}" rx="6" fill="{fill}" stroke="#374151"/>'
                   f'<text x="{x + w / 2:g}" y="22" font-size="12" text-anchor="middle" {_FONT}>'
                   f'{esc(_clip(name, 17))}</text>{"".join(text)}</g>')
        if i + 1 < len(boxes):
            x0, x1, y = x + w + 2, x + w + gap - 3, 4 + h / 2
            out.append(f'<path d="M{x0:g},{y:g} L{x1:g},{y:g} M{x1 - 5:g},{y - 4:g} L{x1:g},{y:g}'
                       f' L{x1 - 5:g},{y + 4:g}" stroke="#374151" fill="none"/>')
    out.append("</svg>")
    return "".join(out)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def svg_curves(title: str, series: dict[str, list[float]], width: int = 300, height: int = 180) -> str:
    """One small line chart: each series against its epoch (1, 2, ...), axes labelled with the
    first and last epoch and the smallest and largest finite value. Non-finite values leave a gap."""
    left, right, top, bottom = 62, 10, 22, 30
    pw, ph = width - left - right, height - top - bottom
    finite = [v for vals in series.values() for v in vals if math.isfinite(v)]
    n = max((len(v) for v in series.values()), default=0)
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (pw * i / (n - 1) if n > 1 else pw / 2)
        return x, top + ph * (hi - v) / (hi - lo)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
           f' viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)} per epoch">',
           f'<text x="{left}" y="14" font-size="12" {_FONT}>{esc(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#9ca3af"/>',
           f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end" {_FONT}>{esc(number(hi, 4))}</text>',
           f'<text x="{left - 4}" y="{top + ph}" font-size="10" text-anchor="end" {_FONT}>{esc(number(lo, 4))}</text>',
           f'<text x="{left}" y="{top + ph + 13}" font-size="10" {_FONT}>1</text>',
           f'<text x="{left + pw}" y="{top + ph + 13}" font-size="10" text-anchor="end" {_FONT}>{n}</text>',
           f'<text x="{left + pw / 2:g}" y="{top + ph + 26}" font-size="10" text-anchor="middle" {_FONT}>epoch</text>']
    for k, (name, vals) in enumerate(series.items()):
        color = _COLORS[k % len(_COLORS)]
        runs, run = [], []  # finite stretches, drawn as separate lines
        for i, v in enumerate(vals):
            if math.isfinite(v):
                run.append(xy(i, v))
            elif run:
                runs.append(run)
                run = []
        if run:
            runs.append(run)
        for run in runs:
            if len(run) == 1:
                out.append(f'<circle cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="2.5" fill="{color}"/>')
            else:
                pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        lx = width - right - 80 * (len(series) - 1 - k)  # the legend, right-aligned in the title row
        out.append(f'<text x="{lx}" y="14" font-size="10" text-anchor="end" fill="{color}" {_FONT}>'
                   f'{esc(name)}</text>')
    out.append("</svg>")
    return "".join(out)
