"""explain: the chain rule of a small network, number by number.

``chainrule.explain(net, loss, x, y, lr=0.5)`` runs the network's own forward and backward
passes in float64 and returns a :class:`Trace` of every step: each unit's weighted sum and
activation, the error, each weight's gradient as its chain of factors (with the sum over
paths for hidden units), a central-difference check of every gradient, and the update.
It renders as text, Markdown, LaTeX and one self-contained HTML page with the network drawn
as SVG. ``chainrule explain --example mazur`` prints the classic worked example.
"""

from .build import MAX_SAMPLES, MAX_UNITS, MAX_WEIGHTS, explain
from .trace import Step, Trace

__all__ = ["explain", "Trace", "Step", "MAX_WEIGHTS", "MAX_UNITS", "MAX_SAMPLES"]
