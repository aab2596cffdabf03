"""chainrule: neural networks trained by backpropagation on NumPy.

Every layer's backward pass is written out from the chain rule and every gradient can be
checked against finite differences (:func:`gradcheck`).
"""

from . import credit, datasets, distributed, init, kernels, metrics, plot, sequence
from ._threads import get_num_threads, set_num_threads
from .callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    GradientNormLogger,
    History,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgressBar,
    ReduceLROnPlateau,
)
from .credit import (
    DNI,
    Backprop,
    CreditRule,
    DirectFeedbackAlignment,
    FeedbackAlignment,
    LastLayerOnly,
    RecurrentDNI,
    SyntheticGradient,
)
from .data import MaxScaler, MinMaxScaler, Standardizer, batches, one_hot, train_test_split
from .distributed import DataParallel
from .errors import (
    ChainruleError,
    ConfigError,
    DataError,
    FileFormatError,
    InputTypeError,
    SaveError,
    ShapeError,
    TrainingError,
)
from .explain import Trace, explain
from .gradcheck import GradcheckReport, gradcheck
from .io import save
from .layers import (
    ELU,
    GELU,
    GRU,
    LSTM,
    RNN,
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    ConvergenceError,
    Dense,
    Dropout,
    Embedding,
    FixedPointRNN,
    Flatten,
    GlobalAvgPool2D,
    Identity,
    Layer,
    LayerNorm,
    LeakyReLU,
    MaxPool2D,
    MultiHeadAttention,
    PositionalEmbedding,
    ReLU,
    Residual,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
    TimeDistributed,
)
from .losses import MSE, SSE, BinaryCrossEntropy, CrossEntropy, Loss, Poisson
from .network import Sequential, load, mlp
from .optim import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    CosineLR,
    ExponentialLR,
    Optimizer,
    RMSProp,
    Schedule,
    StepLR,
    clip_grad_norm,
)
from .regularizers import L1, L2, Regularizer
from .step import Step, make_step

__version__ = "0.1.0"

__all__ = [
    "datasets", "init", "kernels", "metrics",
    "credit", "DNI", "Backprop", "CreditRule", "DirectFeedbackAlignment", "FeedbackAlignment",
    "LastLayerOnly", "SyntheticGradient", "RecurrentDNI",
    "Callback", "EarlyStopping", "History", "LambdaCallback", "LearningRateScheduler",
    "ProgressBar", "ModelCheckpoint", "CSVLogger", "ReduceLROnPlateau", "GradientNormLogger", "plot",
    "MaxScaler", "MinMaxScaler", "Standardizer", "batches", "one_hot", "train_test_split",
    "ChainruleError", "ConfigError", "DataError", "FileFormatError", "InputTypeError", "ShapeError",
    "TrainingError", "SaveError",
    "GradcheckReport", "gradcheck", "load", "save", "explain", "Trace",
    "ELU", "Dense", "Dropout", "Identity", "Layer", "LeakyReLU", "ReLU", "Sigmoid", "Softmax",
    "Softplus", "Tanh",
    "BatchNorm",
    "LayerNorm",
    "distributed", "DataParallel",
    "sequence", "RNN", "LSTM", "TimeDistributed", "FixedPointRNN", "ConvergenceError",
    "Embedding",
    "GRU",
    "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D",
    "Flatten",
    "MSE", "SSE", "BinaryCrossEntropy", "CrossEntropy", "Loss", "Poisson",
    "Conv2D",
    "Conv1D",
    "MultiHeadAttention",
    "Residual",
    "GELU",
    "PositionalEmbedding",
    "Sequential", "mlp", "L1", "L2", "Regularizer", "Step", "make_step",
    "SGD", "Adagrad", "Adam", "AdamW", "CosineLR", "ExponentialLR", "Optimizer", "RMSProp",
    "Schedule", "StepLR", "clip_grad_norm",
    "set_num_threads", "get_num_threads",
]
