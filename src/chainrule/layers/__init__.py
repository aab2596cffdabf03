"""Layers: each one a forward pass and its backward pass, written out from the chain rule."""

from .activations import ELU, GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .attention import MultiHeadAttention
from .base import Layer, layer_from_config
from .conv import Conv1D, Conv2D
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding
from .fixedpoint import ConvergenceError, FixedPointRNN
from .gru import GRU
from .lstm import LSTM
from .norm import (
    BatchNorm,
    LayerNorm,
)
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .positional import PositionalEmbedding
from .recurrent import RNN, Recurrent, TimeDistributed
from .reshape import Flatten
from .residual import Residual

__all__ = [
    "Layer", "layer_from_config", "Dense", "Dropout",
    "Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "Softplus", "Softmax",
    "Recurrent", "RNN", "LSTM", "TimeDistributed", "FixedPointRNN", "ConvergenceError",
    "Embedding",
    "GRU",
    "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D",
    "Flatten",
    "BatchNorm",
    "LayerNorm",
    "Conv2D",
    "Conv1D",
    "MultiHeadAttention",
    "Residual",
    "GELU",
    "PositionalEmbedding",
]
