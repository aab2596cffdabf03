"""The playground: a local web page that trains a small network and shows every number.

``chainrule playground`` (or :func:`serve`) starts a web server from the standard library on
127.0.0.1; the page draws the network as SVG, the output and each unit as heat maps, and the
weights, gradients, activations and δ of the library's own forward and backward passes. A
backprop mode walks one sample through the chain rule with the factors ``cr.explain`` prints.
See docs/playground.md.
"""

from .config import DEFAULTS, check_config
from .server import Playground, serve
from .session import Session

__all__ = ["serve", "Playground", "Session", "DEFAULTS", "check_config"]
