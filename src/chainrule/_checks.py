"""Checks made once at the public boundary (never on the hot path of a training step)."""

from __future__ import annotations

import numpy as np

from .errors import ConfigError, DataError, ShapeError


def as_float_array(x, name: str, dtype) -> np.ndarray:
    """Return ``x`` as an array of ``dtype``, casting once; reject non-numeric input."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ShapeError(f"{name} must be an array of numbers, got {type(x).__name__}: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{name} must hold numbers, got an array of dtype {arr.dtype}")
    return arr.astype(dtype, copy=False)


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise DataError naming the position of the first NaN or inf in ``arr``."""
    if arr.dtype.kind != "f" or np.isfinite(arr).all():
        return
    bad = np.argwhere(~np.isfinite(arr))[0]
    where = ", ".join(str(i) for i in bad)
    raise DataError(
        f"{name} must be finite, got {arr[tuple(bad)]} at index [{where}]"
        f" ({int((~np.isfinite(arr)).sum())} non-finite values in all)"
    )


def check_batch(arr: np.ndarray, name: str, min_ndim: int = 2) -> None:
    """Require a batch-first array: (n_samples, features...)."""
    if arr.ndim < min_ndim:
        raise ShapeError(
            f"{name} must be {min_ndim}-D with one sample per row, shape (n_samples, n_features),"
            f" got a {arr.ndim}-D array of shape {arr.shape}; use x.reshape(1, -1) for one"
            " sample or x.reshape(-1, 1) for one feature"
        )


def check_positive_int(value, name: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def check_number(value, name: str, low=None, high=None, low_open=False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        bound = ">" if low_open else ">="
        raise ConfigError(f"{name} must be {bound} {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{name} must be <= {high}, got {value!r}")


def as_rng(seed, name: str = "seed") -> np.random.Generator:
    """An int, None or Generator -> a Generator (a Generator is used as is, so it advances)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        if seed is not None and seed < 0:
            raise ConfigError(f"{name} must be a non-negative int, got {seed}")
        return np.random.default_rng(seed)
    raise ConfigError(f"{name} must be None, an int or a numpy.random.Generator, got {seed!r}")
