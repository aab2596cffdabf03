"""Trace: the steps of one explained backpropagation, and its renderings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .symbols import Part, Sym, render


@dataclass
class Step:
    """One line of the derivation: ``lhs = rhs[0] = rhs[1] = ... = value``.

    Attributes
    ----------
    section : str
        One of render_text.SECTIONS ("forward", "backward", "check", ...).
    lhs : Sym or None
        The quantity this step defines (``step.name`` is its plain-text name, e.g. "dE/dw5").
    rhs : list of Part
        The successive right-hand sides: symbolic, with numbers, ..., the value.
    value : float or ndarray
        The value the step arrives at (a matrix in matrix notation).
    iteration : int
        Which gradient-descent step (1-based) this belongs to.
    sample : int or None
        The sample (1-based) when the trace covers several.
    param : str or None
        The parameter (scalar name, "w5") the step is about, if any.
    where : str or None
        Where that number lives: 'W²[0, 0] = layers[2].params["weight"][0, 0]' (the part after
        "= " evaluates as ``net.`` + it on the explained network).
    numeric, rel_error : float or None
        Check steps: the central-difference value and |a − n| / max(|a|, |n|, 1e-5).
    key : tuple or None
        Check steps: (layer index in net.layers, "weight" or "bias", index into the array).
    note : str
        A remark shown beside the step ("δ_o1", "frozen: not updated").
    info : dict or None
        Summary steps: the columns of the layer summary.
    label : str
        The number of a factor of the chain ("(3)"), shown before the step and on its checks.
    """

    section: str
    lhs: Sym | None
    rhs: list
    value: float | np.ndarray | None = None
    iteration: int = 1
    sample: int | None = None
    param: str | None = None
    where: str | None = None
    numeric: float | None = None
    rel_error: float | None = None
    key: tuple | None = None
    note: str = ""
    info: dict | None = None
    label: str = ""

    @property
    def name(self) -> str:
        return self.lhs.text if self.lhs is not None else ""

    def head(self, fmt: str) -> str:
        """The left-hand side as written: its label, if any, then the quantity."""
        lhs = "" if self.lhs is None else self.lhs.render(fmt, 0)
        if not self.label:
            return lhs
        return (rf"\text{{{self.label}}}\; " if fmt == "tex" else f"{self.label} ") + lhs

    def rendered(self, fmt: str, digits: int) -> list[tuple[Part, str]]:
        """(part, its rendering in ``fmt``) for each right-hand side, repeats left out
        ("E_total = E_o1 = 0.17 = 0.17" is written "E_total = E_o1 = 0.17")."""
        out: list[tuple[Part, str]] = []
        for part in self.rhs:
            text = render(part, fmt, digits)
            if not out or out[-1][1] != text:
                out.append((part, text))
        return out

    def __repr__(self) -> str:
        val = self.value if not isinstance(self.value, np.ndarray) else f"array{self.value.shape}"
        return f"Step({self.section!r}, {self.name!r}, value={val!r})"


class Trace:
    """The chain rule of one network on one batch, number by number.

    Built by :func:`chainrule.explain`. ``str(trace)`` is the plain-text rendering;
    ``to_markdown()``, ``to_latex()`` and ``to_html()`` give the others, ``save(path)`` writes
    one chosen by the file's extension, and a notebook shows the trace as HTML.

    Attributes
    ----------
    steps : list of Step
        Every step, in reading order.
    errors : list of float
        E_total before each update and after the last one (one entry when no lr was given).
    network : Sequential
        The float64 copy the trace ran on, after its updates (the caller's network is untouched).
    oversized : bool
        True when the network is beyond the size bound and the trace is the layer summary.
    message : str or None
        Why the trace is a summary.
    """

    def __init__(self, steps: list[Step], *, title: str, description: list[str], notation: str,
                 digits: int, lr: float | None, n_steps: int, errors: list[float], network,
                 oversized: bool = False, message: str | None = None, graph: dict | None = None,
                 n_samples: int = 1) -> None:
        self.steps = steps
        self.title = title
        self.description = description
        self.notation = notation
        self.digits = digits
        self.lr = lr
        self.n_steps = n_steps
        self.errors = errors
        self.network = network
        self.oversized = oversized
        self.message = message
        self.graph = graph
        self.n_samples = n_samples

    # --- looking things up --------------------------------------------------------------
    def find(self, name: str, iteration: int = 1, section: str | None = None) -> Step:
        """The first step of ``iteration`` whose quantity is ``name`` ("out_h1", "dE/dw5")."""
        for s in self.steps:
            if s.name == name and s.iteration == iteration and (section is None or s.section == section):
                return s
        raise KeyError(f"no step {name!r} in iteration {iteration}" + (f", section {section!r}" if section else ""))

    def value(self, name: str, iteration: int = 1, section: str | None = None):
        """The value of the step ``name``, e.g. ``trace.value("dE/dw5")``."""
        return self.find(name, iteration, section).value

    @property
    def checks(self) -> list[Step]:
        """The gradient-check steps (analytic value, central difference, relative error)."""
        return [s for s in self.steps if s.numeric is not None]

    @property
    def max_relative_error(self) -> float:
        return max((s.rel_error for s in self.checks), default=0.0)

    # --- renderings ---------------------------------------------------------------------
    def to_text(self, digits: int | None = None, width: int = 100) -> str:
        """Plain text for a terminal, lines broken to fit ``width`` columns."""
        from .render_text import render_text

        return render_text(self, self.digits if digits is None else digits, width)

    def to_markdown(self, digits: int | None = None) -> str:
        """Markdown: headings, the equations as code, the tables as Markdown tables."""
        from .render_markdown import render_markdown

        return render_markdown(self, self.digits if digits is None else digits)

    def to_latex(self, digits: int | None = None, standalone: bool = True) -> str:
        """LaTeX equations (amsmath); a whole document unless ``standalone=False``."""
        from .render_latex import render_latex

        return render_latex(self, self.digits if digits is None else digits, standalone)

    def to_html(self, digits: int | None = None) -> str:
        """One self-contained HTML page: the network as SVG beside the steps, nothing fetched."""
        from .render_html import render_html

        return render_html(self, self.digits if digits is None else digits, full=True)

    def _repr_html_(self) -> str:
        from .render_html import render_html

        return render_html(self, self.digits, full=False)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return (f"<Trace {self.title!r}: {len(self.steps)} steps, {self.notation} notation,"
                f" E_total = {self.errors[0]:.9g}>")

    def save(self, path, format: str | None = None) -> Path:
        """Write the trace to ``path``; the format comes from ``format`` or the extension
        (.txt, .md, .tex, .html/.htm)."""
        path = Path(path)
        fmt = format or {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".tex": "latex",
                         ".html": "html", ".htm": "html"}.get(path.suffix.lower())
        writers = {"text": self.to_text, "markdown": self.to_markdown, "latex": self.to_latex,
                   "html": self.to_html}
        if fmt not in writers:
            raise ConfigError(f"Trace.save: format must be one of {sorted(writers)} or given by the extension"
                              f" .txt, .md, .tex, .html; got {format or path.suffix or 'no extension'!r}")
        text = writers[fmt]()
        from ..io import atomic_write_text

        atomic_write_text(path, text if text.endswith("\n") else text + "\n")
        return path
