"""Graceful stop: SIGINT (Ctrl-C) and SIGTERM ask ``fit`` to stop after the current batch.

While ``fit`` runs in the main thread, :class:`GracefulStop` replaces the handlers of SIGINT
and SIGTERM with one that only records the request; the training loop looks at it after each
batch (or each compiled run of batches, step.DenseRuns), writes its checkpoint (when one is
configured) and returns the History marked ``interrupted``. A second Ctrl-C while the batch
finishes raises KeyboardInterrupt at once, as if no handler were installed. The previous
handlers come back when ``fit`` returns or raises. Outside the main thread (where Python cannot
install handlers) nothing is changed.
"""

from __future__ import annotations

import signal
import threading

_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)


class GracefulStop:
    """Context manager: ``requested`` names the signal that asked to stop, or is None."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.requested: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> GracefulStop:
        self.requested = None
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                try:
                    self._previous[sig] = signal.signal(sig, self._handle)
                except (ValueError, OSError):  # not allowed here (an embedded interpreter)
                    pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}
