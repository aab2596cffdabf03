"""Layers: each one a forward pass and its backward pass, written out from the chain rule."""

from .activations import ELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .base import Layer, layer_from_config
from .dense import Dense
from .dropout import Dropout

__all__ = [
    "Layer", "layer_from_config", "Dense", "Dropout",
    "Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "Softplus", "Softmax",
]
