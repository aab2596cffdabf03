"""Small data sets for examples and tests: XOR, 2-D toy shapes and handwritten digits.

The toy generators return ``X`` float32 of shape (n_samples, 2) and ``y`` int64 class
labels of shape (n_samples,), rows in random order; the same ``seed`` gives the same
arrays. ``load_digits`` reads a copy of the UCI handwritten digits test set that ships
inside the package (see ``_data/DIGITS_LICENSE.txt``); nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from chainrule._checks import as_rng, check_number
from chainrule.data import SeedLike
from chainrule.errors import ConfigError

__all__ = ["Dataset", "xor", "spirals", "moons", "circles", "load_digits"]


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four points of the XOR problem.

    Returns
    -------
    X : numpy.ndarray, float32, shape (4, 2)
        (0, 0), (0, 1), (1, 0), (1, 1), in this order.
    y : numpy.ndarray, float32, shape (4, 1)
        0, 1, 1, 0 as a float column, ready for a sigmoid output with
        ``BinaryCrossEntropy`` or ``MSE`` (unlike the other generators, which
        return int64 labels of shape (n,)).

    Examples
    --------
    >>> X, y = xor()
    >>> y.ravel().tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    return X, y


def _check_n(n_samples: Any, minimum: int, name: str) -> int:
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
            or n_samples < minimum:
        raise ConfigError(f"{name}: n_samples must be an int >= {minimum}, got {n_samples!r}")
    return int(n_samples)


def _check_noise(noise: Any, name: str) -> float:
    try:
        check_number(noise, f"{name}: noise", low=0)
    except ConfigError:  # one wording for a negative number and a NaN
        raise ConfigError(f"{name}: noise must be a finite number >= 0, got {noise!r}") from None
    return float(noise)


def _shuffled(
    points: list[np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-class point arrays, label them 0, 1, ... and shuffle the rows."""
    X = np.concatenate(points)
    y = np.concatenate([np.full(len(p), c, dtype=np.int64) for c, p in enumerate(points)])
    order = rng.permutation(len(y))
    return X[order].astype(np.float32), y[order]


def _split_evenly(n: int, parts: int) -> list[int]:
    """n items over ``parts`` groups; the first n % parts groups get one more."""
    return [n // parts + (1 if c < n % parts else 0) for c in range(parts)]


def spirals(
    n_samples: int = 200, n_classes: int = 2, noise: float = 0.2, seed: SeedLike = None
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class, winding out from the origin.

    Arm c holds points at radius r evenly spaced in [0.05, 1] and angle
    θ = 2π c / n_classes + 3π r + ε,  ε ~ N(0, noise²), so the point is (r cos θ, r sin θ).
    Each arm winds almost one and a half turns; ``noise`` jitters the angle (radians).

    Parameters
    ----------
    n_samples : int, default 200
        Total points, shared as evenly as possible among the classes.
    n_classes : int, default 2
        Number of arms (>= 2).
    noise : float, default 0.2
        Standard deviation of the angle jitter in radians.
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    X : numpy.ndarray, float32, shape (n_samples, 2)
        Inside the unit disc (up to the jitter, which keeps the radius).
    y : numpy.ndarray, int64, shape (n_samples,)
        Arm index 0..n_classes-1.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) \
            or n_classes < 2:
        raise ConfigError(f"spirals: n_classes must be an int >= 2, got {n_classes!r}")
    n_samples = _check_n(n_samples, int(n_classes), "spirals")
    noise = _check_noise(noise, "spirals")
    rng = as_rng(seed)
    arms = []
    for c, m in enumerate(_split_evenly(n_samples, int(n_classes))):
        radius = np.linspace(0.05, 1.0, m)
        angle = 2 * np.pi * c / n_classes + 3 * np.pi * radius + rng.normal(0.0, noise, m)
        arms.append(np.column_stack([radius * np.cos(angle), radius * np.sin(angle)]))
    return _shuffled(arms, rng)


def moons(
    n_samples: int = 200, noise: float = 0.1, seed: SeedLike = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two interlocking half circles of radius 1.

    Class 0: (cos t, sin t) for t in [0, π] (the upper arc centred at the origin).
    Class 1: (1 - cos t, 0.5 - sin t) (the lower arc centred at (1, 0.5)).
    Gaussian noise of standard deviation ``noise`` is added to both coordinates.

    Parameters
    ----------
    n_samples : int, default 200
        Total points; class 0 gets the extra one when odd.
    noise : float, default 0.1
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    X : numpy.ndarray, float32, shape (n_samples, 2)
    y : numpy.ndarray, int64, shape (n_samples,)
    """
    n_samples = _check_n(n_samples, 2, "moons")
    noise = _check_noise(noise, "moons")
    rng = as_rng(seed)
    n_upper, n_lower = _split_evenly(n_samples, 2)
    t_upper = np.linspace(0.0, np.pi, n_upper)
    t_lower = np.linspace(0.0, np.pi, n_lower)
    upper = np.column_stack([np.cos(t_upper), np.sin(t_upper)])
    lower = np.column_stack([1.0 - np.cos(t_lower), 0.5 - np.sin(t_lower)])
    upper += rng.normal(0.0, noise, upper.shape)
    lower += rng.normal(0.0, noise, lower.shape)
    return _shuffled([upper, lower], rng)


def circles(
    n_samples: int = 200, noise: float = 0.05, factor: float = 0.5, seed: SeedLike = None
) -> tuple[np.ndarray, np.ndarray]:
    """A circle of radius ``factor`` (class 1) inside a circle of radius 1 (class 0).

    Points are evenly spaced in angle on each circle, then Gaussian noise of standard
    deviation ``noise`` is added to both coordinates.

    Parameters
    ----------
    n_samples : int, default 200
        Total points; the outer circle gets the extra one when odd.
    noise : float, default 0.05
    factor : float, default 0.5
        Inner radius over outer radius, in (0, 1).
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    X : numpy.ndarray, float32, shape (n_samples, 2)
    y : numpy.ndarray, int64, shape (n_samples,)
        0 for the outer circle, 1 for the inner one.
    """
    n_samples = _check_n(n_samples, 2, "circles")
    noise = _check_noise(noise, "circles")
    if isinstance(factor, bool) or not isinstance(factor, (int, float, np.number)) \
            or not 0 < factor < 1:
        raise ConfigError(f"circles: factor must be a number in (0, 1), got {factor!r}")
    rng = as_rng(seed)
    rings = []
    for radius, m in zip((1.0, float(factor)), _split_evenly(n_samples, 2), strict=True):
        angle = np.linspace(0.0, 2 * np.pi, m, endpoint=False)
        ring = radius * np.column_stack([np.cos(angle), np.sin(angle)])
        rings.append(ring + rng.normal(0.0, noise, ring.shape))
    return _shuffled(rings, rng)


@dataclass(frozen=True)
class Dataset:
    """A data set with its description, as returned by ``load_digits(return_X_y=False)``.

    Attributes
    ----------
    data : numpy.ndarray, shape (n_samples, n_features)
    target : numpy.ndarray, shape (n_samples,)
    feature_names : list of str
    target_names : numpy.ndarray
    description : str
    """

    data: np.ndarray
    target: np.ndarray
    feature_names: list[str]
    target_names: np.ndarray
    description: str


_DIGITS_DESCRIPTION = """\
Optical Recognition of Handwritten Digits, test set (E. Alpaydin, C. Kaynak, 1998).

1797 handwritten digits 0-9 by 13 writers. Each sample is an 8x8 image flattened row by
row into 64 features; a pixel counts the ink pixels in a 4x4 block of a 32x32 bitmap,
so values are integers 0..16. Class sizes: 178, 182, 177, 183, 181, 182, 181, 179,
174, 180.

Source: UCI Machine Learning Repository, https://doi.org/10.24432/C50P49
License: CC BY 4.0. See chainrule/_data/DIGITS_LICENSE.txt.
"""


def load_digits(return_X_y: bool = True) -> tuple[np.ndarray, np.ndarray] | Dataset:
    """Load the 8x8 handwritten digits (1797 samples, 10 classes).

    The data ship with chainrule (``chainrule/_data/digits.npz``); no download and no
    scikit-learn needed. Each call returns fresh arrays.

    Parameters
    ----------
    return_X_y : bool, default True
        If True return ``(X, y)``, else a ``Dataset`` with names and a description.

    Returns
    -------
    X : numpy.ndarray, float32, shape (1797, 64)
        Pixel counts 0..16; reshape a row to (8, 8) to see the image.
    y : numpy.ndarray, int64, shape (1797,)
        Digit 0..9.

    Examples
    --------
    >>> X, y = load_digits()
    >>> X.shape, int(X.max()), int(y.max())
    ((1797, 64), 16, 9)
    """
    resource = resources.files("chainrule") / "_data" / "digits.npz"
    with resource.open("rb") as fh, np.load(fh, allow_pickle=False) as archive:
        X = archive["X"].astype(np.float32)
        y = archive["y"].astype(np.int64)
    if return_X_y:
        return X, y
    return Dataset(
        data=X,
        target=y,
        feature_names=[f"pixel_{row}_{col}" for row in range(8) for col in range(8)],
        target_names=np.arange(10),
        description=_DIGITS_DESCRIPTION,
    )
