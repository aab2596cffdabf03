"""Inverted dropout."""

from __future__ import annotations

import numpy as np

from .._checks import as_rng, check_number
from .base import Layer


class Dropout(Layer):
    """Inverted dropout, active only when ``training=True``.

    forward (training):  m_i ~ Bernoulli(1 − p),  a = z ∘ m / (1 − p)
    forward (inference): a = z
    backward:            dL/dz = dL/da ∘ m / (1 − p)   (the mask of the last forward)

    Parameters
    ----------
    p : float
        Probability of dropping a unit, 0 <= p < 1.
    seed : int or numpy.random.Generator, optional
        Seed of the masks; the same seed gives the same masks.
    """

    def __init__(self, p: float = 0.5, seed=None) -> None:
        super().__init__()
        check_number(p, "Dropout p", low=0, high=1, high_open=True)
        self.p = float(p)
        self.seed = seed if not isinstance(seed, np.random.Generator) else None
        self.rng = as_rng(seed)
        self._mask: np.ndarray | None = None

    def forward(self, x, training=False):
        if not training or self.p == 0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64)
        mask = (keep >= self.p).astype(x.dtype)
        mask *= 1.0 / (1.0 - self.p)
        self._mask = mask
        return x * mask

    def backward(self, grad):
        return grad if self._mask is None else grad * self._mask

    def get_config(self):
        return {"p": self.p, "seed": self.seed}
