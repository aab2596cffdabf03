"""The built-in examples of ``chainrule explain --example NAME``.

mazur          M. Mazur, "A Step by Step Backpropagation Example" (2015): 2-2-2 sigmoid network,
               inputs (0.05, 0.10), targets (0.01, 0.99), E = ½ Σ (target - out)², biases fixed.
xor            2-2-1 sigmoid network on the four XOR points at once (full batch, SSE summed over
               the samples), from fixed starting weights.
test-score     S. Shamdasani's Enlight tutorial: 2-3-1 sigmoid network without biases predicting a
               test score from hours studied and hours slept, inputs scaled by their column
               maxima, scores divided by 100, full-batch updates (SSE summed over the samples).
               The tutorial draws its weights at random; here they are fixed values.
single-neuron  One sigmoid unit with two inputs and a bias (Mazur's h1 with a target).
conv           One 1×4×4 image through a 2×2 convolution, ReLU, 2×2 max pooling (stride 1) and a
               Dense output: the convolution as one matrix product over the image's patches.
attention      Self-attention with one head over 2 tokens of dimension 2: queries, keys, values,
               the scores and their softmax, each backward factor written out.
rnn            A tanh RNN with 2 hidden units over a sequence of 3 steps and a Dense output:
               backpropagation through time, step by step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..layers import RNN, Conv2D, Dense, Flatten, MaxPool2D, MultiHeadAttention, ReLU, Sigmoid
from ..losses import MSE, SSE
from ..network import Sequential


@dataclass
class Example:
    """A network, its loss, one batch and a learning rate, ready for explain()."""

    name: str
    title: str
    about: str
    net: Sequential
    loss: object
    x: np.ndarray
    y: np.ndarray
    lr: float

    def explain(self, lr: float | None = None, **kwargs):
        """The trace of this example (``lr`` defaults to the example's own)."""
        from .build import explain

        trace = explain(self.net, self.loss, self.x, self.y, lr=self.lr if lr is None else lr,
                        title=kwargs.pop("title", self.title), **kwargs)
        trace.description.insert(0, f"example {self.name}: {self.about}")
        return trace


def mazur() -> Example:
    net = Sequential(
        Dense(2, 2, weight=[[0.15, 0.25], [0.20, 0.30]], bias=[0.35, 0.35]), Sigmoid(),
        Dense(2, 2, weight=[[0.40, 0.50], [0.45, 0.55]], bias=[0.60, 0.60]), Sigmoid(),
        dtype=np.float64)
    net.layers[0].freeze("bias")
    net.layers[2].freeze("bias")
    return Example("mazur", "Mazur's step-by-step backpropagation example (2-2-2)",
                   "M. Mazur, \"A Step by Step Backpropagation Example\" (2015); biases are not updated,"
                   " as in the blog text", net, SSE(), np.array([[0.05, 0.10]]), np.array([[0.01, 0.99]]), 0.5)


def xor() -> Example:
    net = Sequential(
        Dense(2, 2, weight=[[0.5, 0.9], [0.4, 1.0]], bias=[-0.8, 0.1]), Sigmoid(),
        Dense(2, 1, weight=[[-1.2], [1.1]], bias=[-0.3]), Sigmoid(),
        dtype=np.float64)
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    return Example("xor", "XOR with a 2-2-1 sigmoid network, all four points at once",
                   "full-batch gradient descent on E = ½ Σ_n (target - out)² (SSE summed over the samples)",
                   net, SSE(reduction="sum"), X, y, 0.5)


def test_score() -> Example:
    hours = np.array([[2.0, 9.0], [1.0, 5.0], [3.0, 6.0]])      # hours studied, hours slept
    score = np.array([[92.0], [86.0], [89.0]])
    net = Sequential(
        Dense(2, 3, weight=[[0.2, -0.4, 0.7], [0.5, 0.3, -0.6]], use_bias=False), Sigmoid(),
        Dense(3, 1, weight=[[0.8], [-0.3], [0.5]], use_bias=False), Sigmoid(),
        dtype=np.float64)
    return Example("test-score", "Test score from hours studied and slept (2-3-1, no biases)",
                   "S. Shamdasani, \"Build a flexible Neural Network with backpropagation in Python\""
                   " (Enlight): inputs divided by their column maxima (3 h studied, 9 h slept), scores by 100;"
                   " full-batch updates on ½ Σ (target - out)²; fixed starting weights (the tutorial's are"
                   " random)", net, SSE(reduction="sum"), hours / hours.max(axis=0), score / 100, 1.0)


def single_neuron() -> Example:
    net = Sequential(Dense(2, 1, weight=[[0.15], [0.20]], bias=[0.35]), Sigmoid(), dtype=np.float64)
    return Example("single-neuron", "One sigmoid neuron with two inputs and a bias",
                   "Mazur's unit h1 on its own, with a target of 0.01", net, SSE(),
                   np.array([[0.05, 0.10]]), np.array([[0.01]]), 0.5)


def conv() -> Example:
    net = Sequential(Conv2D(1, 1, 2), ReLU(), MaxPool2D(2, stride=1), Flatten(),
                     Dense(4, 1, weight=[[0.3], [-0.2], [0.5], [0.1]], bias=[0.0]), dtype=np.float64)
    net.layers[0].params["weight"][...] = [[[[0.5, -0.4], [0.3, 0.2]]]]
    net.layers[0].params["bias"][...] = [0.1]
    image = np.array([[[[0.1, 0.5, -0.3, 0.8], [0.7, -0.2, 0.4, 0.0], [-0.6, 0.3, 0.9, -0.1],
                        [0.2, -0.8, 0.05, 0.6]]]])
    return Example("conv", "A 2×2 convolution on one 4×4 image, layer by layer",
                   "Conv2D(1, 1, 2) → ReLU → MaxPool2D(2, stride=1) → Flatten → Dense(4, 1), fixed weights,"
                   " MSE to a target of 0.5", net, MSE(), image, np.array([[0.5]]), 0.1)


def attention() -> Example:
    net = Sequential(MultiHeadAttention(2, 1), dtype=np.float64)
    p = net.layers[0].params
    p["weight_q"][...] = [[0.5, -0.2], [0.1, 0.4]]
    p["weight_k"][...] = [[0.3, 0.6], [-0.5, 0.2]]
    p["weight_v"][...] = [[0.7, -0.1], [0.2, 0.9]]
    p["weight_o"][...] = [[1.0, 0.3], [-0.4, 0.8]]
    p["bias_q"][...] = [0.1, 0.0]
    tokens = np.array([[[1.0, 0.5], [-0.5, 2.0]]])
    return Example("attention", "Self-attention over two tokens, one head",
                   "MultiHeadAttention(2, 1): 2 tokens of dimension 2, fixed weights, MSE to a target sequence",
                   net, MSE(), tokens, np.array([[[0.5, -0.5], [1.0, 0.0]]]), 0.5)


def rnn() -> Example:
    net = Sequential(RNN(2, 2), Dense(2, 1, weight=[[0.7], [-0.5]], bias=[0.2]), dtype=np.float64)
    p = net.layers[0].params  # set in float64 (the values exact as written)
    p["weight_ih"][...] = [[0.5, -0.3], [0.2, 0.8]]
    p["weight_hh"][...] = [[0.4, 0.1], [-0.6, 0.3]]
    p["bias"][...] = [0.1, 0.0]
    sequence = np.array([[[1.0, 0.0], [0.5, -1.0], [0.0, 1.0]]])
    return Example("rnn", "Backpropagation through time in a tanh RNN, step by step",
                   "RNN(2, 2) over 3 steps → Dense(2, 1) on the last state, fixed weights, MSE to a target"
                   " of 1", net, MSE(), sequence, np.array([[1.0]]), 0.2)


EXAMPLES = {"mazur": mazur, "xor": xor, "test-score": test_score, "single-neuron": single_neuron, "conv": conv,
            "attention": attention, "rnn": rnn}


def example(name: str) -> Example:
    """A fresh copy of the built-in example ``name``."""
    if name not in EXAMPLES:
        raise ConfigError(f"unknown example {name!r}; choose one of {', '.join(EXAMPLES)}")
    return EXAMPLES[name]()
