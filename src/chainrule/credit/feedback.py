"""Feedback alignment (Lillicrap et al. 2016) and direct feedback alignment (Nøkland 2016).

Backprop sends the error down through the transposed forward weights:

    BP:   g_{l-1} = δ_l · W_lᵀ                  δ_l = dL/dz_l,  g = dL/dh (the layer's input)

Feedback alignment replaces each Wᵀ by a fixed random matrix B_l of the same shape
(n_out, n_in); the forward weights then come to align with Bᵀ, so the error signals B
carries point, on average, less than 90° from the true gradient:

    FA:   g_{l-1} = δ_l · B_l

Direct feedback alignment sends the output error e = dL/dz_top (the delta of the last Dense)
straight to every hidden block l through its own fixed random matrix B_l (n_out_net, n_l):

    DFA:  g_l = e · B_l                          (then through block l's activation: δ_l = g_l ∘ f'(z_l))

In both, each layer's own gradient is the usual dL/dW = xᵀ·δ, dL/db = Σ δ: only the signal
that reaches it changes. The top layer sees the true gradient. With B_l := W_lᵀ (FA) or, for one
hidden layer, B_1 := W_2ᵀ (DFA), both are backprop.

The parameters are updated by the optimizer given to ``fit``, as in plain training.
"""

from __future__ import annotations

import numpy as np

from .._checks import as_rng, check_number
from .base import CreditRule, check_dense, split_blocks


def _feedback_matrix(rng, shape, std, dtype) -> np.ndarray:
    return (rng.standard_normal(shape) * std).astype(dtype)


class FeedbackAlignment(CreditRule):
    """Feedback alignment: a fixed random B_l (n_out, n_in) in place of each Dense W_lᵀ.

    Parameters
    ----------
    seed : int or numpy.random.Generator, optional
        Seed of the feedback matrices.
    scale : float, optional
        Standard deviation of B's normal entries. Default: that of the layer's weights when
        the rule is first bound (so B carries the error at backprop's magnitude).
    track_every : int or None
        See :class:`CreditRule`.

    Attributes
    ----------
    feedback : dict[int, numpy.ndarray]
        Layer index -> B (n_out, n_in), for every Dense layer but the first (whose input
        gradient nobody uses). Set entries in place to study other feedback (B := Wᵀ is BP).
    """

    name = "FA"

    def __init__(self, seed=None, scale: float | None = None, track_every: int | None = 20) -> None:
        super().__init__(track_every)
        if scale is not None:
            check_number(scale, "FeedbackAlignment scale", low=0, low_open=True)
        self.seed, self.scale = seed, scale
        self.feedback: dict[int, np.ndarray] = {}

    def _build(self, net):
        check_dense(net, "FeedbackAlignment")
        rng = as_rng(self.seed)
        self._first = self._param_layers[0]
        self.feedback = {}
        for i in self._param_layers[1:]:
            w = net.layers[i].params["weight"]
            std = self.scale if self.scale is not None else float(w.std()) or 1.0 / np.sqrt(w.shape[0])
            self.feedback[i] = _feedback_matrix(rng, w.T.shape, std, net.dtype)

    def _credit(self, net, y, delta):
        layers, feedback, first = net.layers, self.feedback, self._first
        grad = delta
        for i in range(len(layers) - 1, first, -1):
            layer = layers[i]
            if i in feedback:
                layer.backward_params(grad)
                grad = grad @ feedback[i]
            else:
                grad = layer.backward(grad)
        layer = layers[first]
        if hasattr(layer, "backward_params"):
            layer.backward_params(grad)
        else:
            layer.backward(grad)

    def _arrays(self):
        return {f"feedback.{i}": b for i, b in self.feedback.items()}

    def __repr__(self) -> str:
        return f"FeedbackAlignment(seed={self.seed!r}, scale={self.scale!r})"


class DirectFeedbackAlignment(CreditRule):
    """Direct feedback alignment: the output error e reaches hidden block l as e · B_l.

    Parameters
    ----------
    seed : int or numpy.random.Generator, optional
        Seed of the feedback matrices.
    scale : float, optional
        Standard deviation of B's normal entries. Default: 1/√(n_out of the network), so
        e · B has about the size of e.
    track_every : int or None
        See :class:`CreditRule`.

    Attributes
    ----------
    feedback : list[numpy.ndarray]
        One B_l (n_e, n_l) per hidden block, bottom first; n_e is the width of the last
        Dense's output and n_l that of block l's output.
    blocks : list[Block]
        The blocks (see :func:`chainrule.credit.split_blocks`); the last is the output block.
    """

    name = "DFA"

    def __init__(self, seed=None, scale: float | None = None, track_every: int | None = 20) -> None:
        super().__init__(track_every)
        if scale is not None:
            check_number(scale, "DirectFeedbackAlignment scale", low=0, low_open=True)
        self.seed, self.scale = seed, scale
        self.feedback: list[np.ndarray] = []

    def _build(self, net):
        check_dense(net, "DirectFeedbackAlignment")
        self.blocks = split_blocks(net)
        rng = as_rng(self.seed)
        n_e = self.blocks[-1].layers[0].params["weight"].shape[1]
        std = self.scale if self.scale is not None else 1.0 / np.sqrt(n_e)
        self.feedback = []
        for nxt in self.blocks[1:]:
            n_l = nxt.layers[0].params["weight"].shape[0]
            self.feedback.append(_feedback_matrix(rng, (n_e, n_l), std, net.dtype))

    def _credit(self, net, y, delta):
        top = self.blocks[-1]
        e = delta
        for layer in top.layers[:0:-1]:  # through the output activation, if any: e = dL/dz_top
            e = layer.backward(e)
        top.layers[0].backward_params(e)
        for i, block in enumerate(self.blocks[:-1]):
            block.backward(e @ self.feedback[i], need_input_grad=False)

    def _arrays(self):
        return {f"feedback.{i}": b for i, b in enumerate(self.feedback)}

    def __repr__(self) -> str:
        return f"DirectFeedbackAlignment(seed={self.seed!r}, scale={self.scale!r})"
