"""Compiled kernels: the NumPy equations fused into one loop per array, compiled by numba.

The NumPy code in optim.py, losses.py and the layers is the reference: readable, documented, and
what runs without numba. A kernel is a plain Python function in this package (optim.py,
losses.py, activations.py, recurrent.py, attention.py, conv.py, pooling.py, norm.py) with the same equations
written as a loop over elements, in numba's nopython subset, so it runs one pass over memory where
NumPy runs one pass per operation. epoch.py runs a Dense network's whole training step for many
batches (chainrule.step.DenseRuns), calling the others and NumPy's own BLAS (blas.py). A kernel
is compiled the first time it is called (``numba.njit(cache=True)``: later
processes load the machine code from disk) and chosen at run time:

- ``CHAINRULE_KERNELS=auto`` (the default): numba when it is installed (``pip install
  chainrule[fast]``), else NumPy;  ``numpy``: always NumPy;  ``numba``: numba or an error.
- ``chainrule.kernels.use(name)`` does the same from Python; ``active()`` says which runs.

``import chainrule`` does not import numba: the first kernel call does.

Subnormal numbers. An optimizer's state (a momentum buffer, Adam's moments, RMSProp's and
Adagrad's sums of squares) that decays geometrically ends in the subnormal range (below
``np.finfo(dtype).tiny``, ≈1.2e-38 in float32), where many CPUs compute far slower. By default
such state values are set to zero: by the kernels per element where the value is computed, and
on the NumPy path by a flush of the state arrays every ``FLUSH_EVERY`` steps.
``CHAINRULE_FLUSH_SUBNORMALS=0`` or ``flush_subnormals(False)`` keeps plain IEEE arithmetic.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import numpy as np

from ..errors import ConfigError

KERNELS_ENV = "CHAINRULE_KERNELS"
FLUSH_ENV = "CHAINRULE_FLUSH_SUBNORMALS"
CHOICES = ("auto", "numpy", "numba")

#: the NumPy path flushes subnormal optimizer state every this many optimizer steps: a flush costs
#: about three passes over the state, under 1% of the updates when spread over 64 steps
FLUSH_EVERY = 64

#: SGD updates parameters smaller than this in NumPy: its two to four ufunc calls there cost less
#: than a kernel call (~1.5 µs of argument handling); the other kernels win at any size
SGD_MIN_SIZE = 4096

#: ReLU, Sigmoid and Tanh leave arrays smaller than this to NumPy: their one to three ufunc calls
#: cost ~1 µs less than a kernel call below it (ReLU forward + backward, float32, 1×64: 3.5 µs in
#: NumPy, 4.1 µs as kernels; 32×64: 5.3 and 5.1; 32×256: 7.9 and 5.9); the other activation
#: kernels are as fast as NumPy at any size
ACTIVATION_MIN_SIZE = 4096

#: the dtypes the kernels are compiled for; other dtypes take the NumPy path
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

_settings: dict = {"backend": None, "flush": None}  # resolved on first use
_compiled: dict = {}


# --- the switch -------------------------------------------------------------------------------
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def _resolve(choice: str, source: str) -> str:
    choice = choice.strip().lower()
    if choice not in CHOICES:
        raise ConfigError(f"{source} must be one of {list(CHOICES)}, got {choice!r}")
    if choice == "numpy":
        return "numpy"
    if _numba_installed():
        return "numba"
    if choice == "numba":
        raise ConfigError(f"{source} is 'numba', but numba is not installed: pip install 'chainrule[fast]'"
                          f" (or numba>=0.60), or choose 'auto' or 'numpy'")
    return "numpy"


def use(name: str) -> str:
    """Choose the kernels: "auto" (numba when installed), "numpy" or "numba"; return the one active.

    ``use("numba")`` raises ConfigError when numba is not installed. This overrides the
    ``CHAINRULE_KERNELS`` environment variable for the rest of the process.
    """
    if not isinstance(name, str):
        raise ConfigError(f"chainrule.kernels.use name must be one of {list(CHOICES)}, got {name!r}")
    _settings["backend"] = _resolve(name, "chainrule.kernels.use name")
    return _settings["backend"]


def active() -> str:
    """"numba" when the compiled kernels run, "numpy" when the NumPy code does."""
    backend = _settings["backend"]
    if backend is None:
        backend = _settings["backend"] = _resolve(os.environ.get(KERNELS_ENV, "auto"), KERNELS_ENV)
    return backend


def flush_subnormals(enabled: bool | None = None) -> bool:
    """Set (when ``enabled`` is given) and return whether subnormal optimizer state is flushed to 0.

    On by default; ``CHAINRULE_FLUSH_SUBNORMALS=0`` turns it off for a process. Off, every
    result is plain IEEE arithmetic; on, optimizer state values below ``np.finfo(dtype).tiny``
    become 0 (docs/speed.md).
    """
    if enabled is not None:
        if not isinstance(enabled, (bool, np.bool_)):
            raise ConfigError(f"flush_subnormals enabled must be True or False, got {enabled!r}")
        _settings["flush"] = bool(enabled)
    elif _settings["flush"] is None:
        value = os.environ.get(FLUSH_ENV, "1").strip().lower()
        if value not in ("0", "1", "false", "true", "no", "yes", "off", "on", ""):
            raise ConfigError(f"{FLUSH_ENV} must be 1 or 0, got {value!r}")
        _settings["flush"] = value not in ("0", "false", "no", "off")
    return _settings["flush"]


# --- for the code that calls kernels ----------------------------------------------------------
def ready(param: np.ndarray, grad: np.ndarray) -> bool:
    """True when compiled kernels run and are compiled for these arrays: both float32 or both
    float64 (anything else takes the NumPy path)."""
    backend = _settings["backend"] or active()
    return backend == "numba" and param.dtype in FLOATS and grad.dtype == param.dtype


def compiled(module: str, name: str):
    """The kernel ``name`` of ``chainrule.kernels.<module>``, compiled by numba (once per process).

    The first call imports numba and compiles the function, or loads it from numba's disk cache;
    each dtype gets its own machine code the first time it is used.
    """
    key = (module, name)
    kernel = _compiled.get(key)
    if kernel is None:
        import numba  # here, not at import: `import chainrule` stays fast without it

        source = importlib.import_module(f"{__name__}.{module}")
        kernel = _compiled[key] = numba.njit(cache=True, nogil=True, error_model="numpy")(getattr(source, name))
    return kernel


def tiny(dtype, flushed: bool = True) -> np.generic:
    """The threshold below which a kernel flushes state to 0: the dtype's smallest normal number,
    or 0 (nothing is below it) when flushing is off or ``flushed`` is False. A scalar of
    ``dtype``, so the kernel's arithmetic stays in that precision."""
    key = (dtype, flushed and flush_subnormals())
    value = _tiny.get(key)
    if value is None:
        dtype = np.dtype(dtype)
        value = _tiny[key] = dtype.type(np.finfo(dtype).tiny if key[1] else 0)
    return value


_tiny: dict = {}


def copy_back(*pairs) -> None:
    """After a kernel updated ``flat`` in place, make ``array`` hold the result, for each
    ``(array, flat)`` pair (``flat`` = ``array.ravel()``): nothing to do when it was a view (a
    contiguous array: parameters and optimizer state almost always are), a copy otherwise."""
    for array, flat_array in pairs:
        if array is not None and not array.flags.c_contiguous:
            array[...] = flat_array.reshape(array.shape)


def flush_state(arrays) -> None:
    """Set every entry of ``arrays`` whose magnitude is below its dtype's smallest normal number
    to +0 (the NumPy path's flush). NaN and ±inf are kept."""
    for a in arrays:
        # three passes (abs, compare, masked write); np.copyto with where= is ~6x faster than putmask
        np.copyto(a, 0, where=np.abs(a) < np.finfo(a.dtype).tiny)
