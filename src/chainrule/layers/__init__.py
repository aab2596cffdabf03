"""Layers: each one a forward pass and its backward pass, written out from the chain rule."""

from .activations import ELU, GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .attention import MultiHeadAttention
from .base import Layer, layer_from_config
from .dense import Dense
from .dropout import Dropout
from .fixedpoint import ConvergenceError, FixedPointRNN
from .lstm import LSTM
from .recurrent import RNN, Recurrent, TimeDistributed
from .residual import Residual

__all__ = [
    "Layer", "layer_from_config", "Dense", "Dropout",
    "Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "Softplus", "Softmax",
    "Recurrent", "RNN", "LSTM", "TimeDistributed", "FixedPointRNN", "ConvergenceError",
    "MultiHeadAttention",
    "Residual",
    "GELU",
]
