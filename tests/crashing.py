"""The test suite's stand-in for a process dying mid-training (imported by the resume tests)."""

from __future__ import annotations

import chainrule as cr


class Crash(cr.Callback):
    """Raise RuntimeError("simulated crash") at the ``at``-th batch of the run (1-based), as if the
    process died there: the last checkpoint written before it is what a resume finds."""

    def __init__(self, at: int) -> None:
        self.at, self.seen = at, 0

    def on_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at:
            raise RuntimeError("simulated crash")
