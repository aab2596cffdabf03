"""The playground's data: six seeded 2-D data sets, the input features and the heat-map grid.

Points lie in the square [-6, 6]², as in TensorFlow Playground. Classification sets give
integer labels 0, 1 (and 2), regression sets a value in about [-1, 1]. ``noise`` is a
fraction from 0 to 0.5.

- circle:     class 1 inside radius 2.5, class 0 on a ring of radius 3.5-5 (three classes:
              three rings);
- xor:        class 1 where x·y > 0 (points kept 0.3 away from the axes);
- gaussian:   one Gaussian blob per class (std grows with the noise);
- spiral:     one spiral arm per class;
- plane:      value (x + y)/10;
- multigauss: a sum of six signed Gaussian bumps.

Input features (the network's inputs, in this order when chosen): x, y, x², y², xy, sin x,
sin y, computed from the point's coordinates by :func:`features`.
"""

from __future__ import annotations

import numpy as np

EXTENT = (-6.0, 6.0, -6.0, 6.0)   # xmin, xmax, ymin, ymax of the heat maps
LABELS = {"x": "x", "y": "y", "x2": "x²", "y2": "y²", "xy": "xy", "sinx": "sin x", "siny": "sin y"}
_FEATURES = {
    "x": lambda x, y: x,
    "y": lambda x, y: y,
    "x2": lambda x, y: x * x,
    "y2": lambda x, y: y * y,
    "xy": lambda x, y: x * y,
    "sinx": lambda x, y: np.sin(x),
    "siny": lambda x, y: np.sin(y),
}


def features(points: np.ndarray, names) -> np.ndarray:
    """The inputs (n, len(names)) float64 of points (n, 2): one column per feature name."""
    points = np.asarray(points, dtype=np.float64)
    x, y = points[:, 0], points[:, 1]
    return np.column_stack([_FEATURES[name](x, y) for name in names]).astype(np.float64)


def grid(size: int, extent=EXTENT) -> np.ndarray:
    """size² points (size·size, 2), row by row from the top (largest y) to the bottom, each
    row from left to right: pixel (r, c) of a heat map is point r·size + c."""
    xmin, xmax, ymin, ymax = extent
    xs = np.linspace(xmin, xmax, size)
    ys = np.linspace(ymax, ymin, size)
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel()])


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if k < n % parts else 0) for k in range(parts)]


def circle(n: int, noise: float, classes: int, rng: np.random.Generator):
    radius = 5.0
    bands = [(0.0, 0.5), (0.7, 1.0)] if classes == 2 else [(0.0, 0.3), (0.45, 0.65), (0.8, 1.0)]
    labels = [1, 0] if classes == 2 else [0, 1, 2]
    pts, ys = [], []
    for (lo, hi), label, m in zip(bands, labels, _split(n, classes), strict=True):
        r = rng.uniform(lo * radius, hi * radius, m)
        angle = rng.uniform(0, 2 * np.pi, m)
        pts.append(np.column_stack([r * np.sin(angle), r * np.cos(angle)]))
        ys.append(np.full(m, label))
    X = np.concatenate(pts) + rng.uniform(-radius, radius, (n, 2)) * noise
    return X, np.concatenate(ys)


def xor(n: int, noise: float, classes: int, rng: np.random.Generator):
    X = rng.uniform(-5, 5, (n, 2))
    X += np.where(X > 0, 0.3, -0.3)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    return X + rng.uniform(-5, 5, (n, 2)) * noise, y


def gaussian(n: int, noise: float, classes: int, rng: np.random.Generator):
    if classes == 2:
        centres = [(2.0, 2.0), (-2.0, -2.0)]
    else:
        angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
        centres = [(2.8 * np.cos(a), 2.8 * np.sin(a)) for a in angles]
    std = np.sqrt(0.5 + 7.0 * noise)
    pts, ys = [], []
    for label, (centre, m) in enumerate(zip(centres, _split(n, classes), strict=True)):
        pts.append(rng.normal(centre, std, (m, 2)))
        ys.append(np.full(m, label))
    return np.concatenate(pts), np.concatenate(ys)


def spiral(n: int, noise: float, classes: int, rng: np.random.Generator):
    pts, ys = [], []
    for label, m in enumerate(_split(n, classes)):
        i = np.arange(m)
        r = i / m * 5.0
        t = 1.75 * i / m * 2 * np.pi + 2 * np.pi * label / classes
        p = np.column_stack([r * np.sin(t), r * np.cos(t)]) + rng.uniform(-1, 1, (m, 2)) * noise
        pts.append(p)
        ys.append(np.full(m, label))
    return np.concatenate(pts), np.concatenate(ys)


def plane(n: int, noise: float, classes: int, rng: np.random.Generator):
    X = rng.uniform(-6, 6, (n, 2))
    noisy = X + rng.uniform(-6, 6, (n, 2)) * noise
    return X, (noisy[:, 0] + noisy[:, 1]) / 10.0


_BUMPS = [(-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1)]


def multigauss(n: int, noise: float, classes: int, rng: np.random.Generator):
    X = rng.uniform(-6, 6, (n, 2))
    noisy = X + rng.uniform(-6, 6, (n, 2)) * noise
    value = np.zeros(n)
    for cx, cy, sign in _BUMPS:
        value += sign * np.exp(-((noisy[:, 0] - cx) ** 2 + (noisy[:, 1] - cy) ** 2) / (2 * 1.3**2))
    return X, value


GENERATORS = {"circle": circle, "xor": xor, "gaussian": gaussian, "spiral": spiral, "plane": plane,
              "multigauss": multigauss}


def generate(name: str, n: int, noise: float, classes: int, rng: np.random.Generator):
    """``(points (n, 2) float64, targets (n,))`` of data set ``name``, rows in random order."""
    points, target = GENERATORS[name](n, noise, classes, rng)
    order = rng.permutation(n)
    return points[order].astype(np.float64), target[order]
