"""PositionalEmbedding: a learned vector per position, added to a sequence of tokens."""

from __future__ import annotations

import numpy as np

from .._checks import as_rng, check_positive_int
from ..errors import ShapeError
from ..init import Normal, get_initializer
from .base import Layer


def _sinusoidal_table(max_len: int, dim: int) -> np.ndarray:
    """(max_len, dim) float64: sin(t·ω_i) in the even columns, cos(t·ω_i) in the odd ones, ω_i = 10000^(−2i/dim)."""
    angle = np.arange(max_len)[:, None] * 10000.0 ** (-np.arange(0, dim, 2) / dim)
    table = np.empty((max_len, dim))
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle[:, :dim // 2])
    return table


class PositionalEmbedding(Layer):
    """Learned absolute positions: y[:, t] = x[:, t] + P[t] (GPT-2's position embedding).

    forward:  x (n, T, dim) -> y (n, T, dim),  y = x + P[:T]    (P broadcast over the samples)
    backward: delta = dL/dy (n, T, dim)
              dL/dP[:T] = Σ_n delta         (T, dim)
              dL/dP[T:] = 0                 (rows of positions the batch did not reach)
              dL/dx = delta                 (n, T, dim)

    MultiHeadAttention has no notion of order: without this layer (or another way of putting
    positions into the tokens) a transformer sees a sequence as a bag of tokens. The table
    has ``max_len`` rows, so sequences longer than ``max_len`` are refused (ShapeError);
    shorter ones use its first T rows.

    In PyTorch this is ``x + pos(torch.arange(T))`` with ``pos = nn.Embedding(max_len, dim)``
    and ``pos.weight = weight`` (same layout), or a ``nn.Parameter`` of shape (max_len, dim).

    Parameters
    ----------
    max_len : int
        Longest sequence the layer takes: the number of rows of ``weight``.
    dim : int
        Width of a token (the input's last axis).
    weight : array_like, optional
        Explicit initial table (max_len, dim), copied; overrides ``init``.
    init : str, Initializer or callable, optional
        Initializer of the table; by default N(0, 0.02²), GPT-2's. ``"sinusoidal"`` starts
        from the fixed table of Vaswani et al. (2017), still trained afterwards (``freeze()``
        keeps it fixed): P[t, 2i] = sin(t / 10000^(2i/dim)), P[t, 2i+1] = cos(t / 10000^(2i/dim)).
    seed : int or numpy.random.Generator, optional
        Seed of the draw.
    dtype : numpy dtype
        Parameter dtype (a Sequential casts its layers to its own dtype).
    """

    def __init__(self, max_len: int, dim: int, weight=None, init=None, seed=None,
                 dtype=np.float32) -> None:
        super().__init__()
        check_positive_int(max_len, "PositionalEmbedding max_len")
        check_positive_int(dim, "PositionalEmbedding dim")
        self.max_len, self.dim = int(max_len), int(dim)
        self.dtype = np.dtype(dtype)
        if init is None:
            init = Normal(std=0.02)
        if weight is None and isinstance(init, str) and init == "sinusoidal":
            table = _sinusoidal_table(self.max_len, self.dim)
        else:
            w_init = get_initializer(init if weight is None else weight)
            table = w_init((self.max_len, self.dim), np.float64, rng=as_rng(seed))
        # drawn in float64, kept until the layer joins a network (see Dense)
        self._initial = {"weight": table}
        self.params["weight"] = self._initial["weight"].astype(self.dtype)
        self.grads["weight"] = np.zeros_like(self.params["weight"])
        self._length = 0  # T of the last forward: the rows that got a gradient

    def check_input(self, x: np.ndarray) -> None:
        """Raise ShapeError, naming this layer, unless ``x`` is (n, T, dim) with T <= max_len."""
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ShapeError(f"{self!r} expects input of shape (n_samples, time, {self.dim}),"
                             f" got array of shape {x.shape}")
        if x.shape[1] > self.max_len:
            raise ShapeError(f"{self!r} takes sequences of at most max_len={self.max_len} steps,"
                             f" got {x.shape[1]} steps (input of shape {x.shape})")

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != 3 or x.shape[-1] != self.dim or x.shape[1] > self.max_len:
            self.check_input(x)
        self._length = x.shape[1]
        return x + self.params["weight"][:self._length]

    def backward(self, delta: np.ndarray) -> np.ndarray:
        grad_w, T = self.grads["weight"], self._length
        np.add.reduce(delta, axis=0, out=grad_w[:T])
        grad_w[T:] = 0
        return delta

    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {"max_len": self.max_len, "dim": self.dim}
