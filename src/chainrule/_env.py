"""Where the library runs: the few behaviours that differ in a Jupyter notebook."""

from __future__ import annotations

import sys


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython's ZMQ shell), where output cells replace a terminal.

    There ``fit`` shows one progress bar for the whole run instead of a line per epoch, and the
    plots return a figure that the notebook shows once (not also through pyplot).
    """
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
