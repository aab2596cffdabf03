"""Reshaping layers: no parameters, the numbers unchanged, only the shape."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from .base import Layer


class Flatten(Layer):
    """Each sample's axes joined into one, in C (row-major) order; no parameters.

    forward:  x (n, d1, ..., dk) -> y (n, d1·…·dk),  y[n, ((i1·d2 + i2)·d3 + …)] = x[n, i1, ..., ik]
    backward: dL/dx = dL/dy reshaped to (n, d1, ..., dk), the shape of the last forward's input
    """

    def __init__(self) -> None:
        super().__init__()
        self._input_shape: tuple | None = None

    def check_input(self, x: np.ndarray) -> None:
        """Raise ShapeError unless ``x`` has a sample axis and at least one more."""
        if x.ndim < 2:
            raise ShapeError(f"{self!r} expects input of shape (n, ...) with at least 2 axes,"
                             f" got an array of shape {x.shape}")

    def output_shape(self, input_shape: tuple) -> tuple:
        return (math.prod(input_shape),)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._input_shape = x.shape
        return x.reshape(x.shape[0], -1)  # a view when x is contiguous

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad.reshape(self._input_shape)

    def backward_params(self, delta: np.ndarray) -> None:
        """No parameters: nothing to fill when this is the first layer of a network."""
