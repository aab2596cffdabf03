"""Layers: each one a forward pass and its backward pass, written out from the chain rule."""

from .activations import ELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .base import Layer, layer_from_config
from .conv import Conv1D, Conv2D
from .dense import Dense
from .dropout import Dropout
from .fixedpoint import ConvergenceError, FixedPointRNN
from .lstm import LSTM
from .recurrent import RNN, Recurrent, TimeDistributed

__all__ = [
    "Layer", "layer_from_config", "Dense", "Dropout",
    "Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "Softplus", "Softmax",
    "Recurrent", "RNN", "LSTM", "TimeDistributed", "FixedPointRNN", "ConvergenceError",
    "Conv2D",
    "Conv1D",
]
