"""The OpenBLAS overrides this machine exports, and how the benchmark scripts drop them.

``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` pin OpenBLAS to an older, slower kernel here
(benchmarks/README.md, "How a run works"). OpenBLAS reads them when it loads, so a script drops
them by re-executing itself before it imports NumPy, and starts its workers with a clean
environment. Standard library only: this module is imported before any numerical library
(``compiled_chainrule`` imports chainrule after the re-execution).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FORCED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def clean_env() -> dict[str, str]:
    """This process's environment without the OpenBLAS overrides."""
    return {k: v for k, v in os.environ.items() if k not in FORCED_ENV}


def reexec_without_forced_env(script: str, extra_env: dict[str, str] | None = None) -> None:
    """Replace this process by ``script`` with the same arguments, minus the overrides.

    Does nothing when neither is set. ``extra_env`` goes into the new process's environment.
    """
    if not any(k in os.environ for k in FORCED_ENV):
        return
    env = clean_env() | (extra_env or {})
    os.execve(sys.executable, [sys.executable, str(Path(script).resolve()), *sys.argv[1:]], env)


def compiled_chainrule(script: str, what: str):
    """The start of a script that times chainrule's compiled paths on and off in one process
    (compiled_runs.py, conv_paths.py): ``script`` re-executed without the overrides, this folder
    and the repository's src/ first on sys.path, numba's kernels chosen. Returns the chainrule
    module, or None after saying that numba is missing and so there are no ``what`` to compare."""
    reexec_without_forced_env(script)
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    sys.path.insert(0, str(here.parent / "src"))
    import chainrule

    if chainrule.kernels.use("auto") != "numba":
        print(f"numba is not installed: there are no {what} to compare")
        return None
    return chainrule
