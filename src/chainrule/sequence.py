"""Sequences in training: truncated backpropagation through time, and sequence losses over time.

Sequence losses
---------------
A network whose output has a time axis, (n, T, ...), is trained with the ordinary losses, which
treat time as more samples: ``MSE`` and ``BinaryCrossEntropy`` average over every element,
``CrossEntropy`` over every (sample, step) row (integer labels of shape (n, T)), so their value
is the average over time of the per-step losses. ``SSE`` averages over samples and sums over time.

Truncated BPTT
--------------
``fit(..., bptt_steps=k)`` cuts each batch (n, T, features) along time into windows of k steps
(the last may be shorter). Each window is run forward starting from the state the previous window
ended with (a constant: the gradient stops at the boundary), backpropagated on its own part of the
loss, and the parameter gradients of all windows are added before the optimizer's single step for
the batch. The result is the exact gradient of the batch loss with the recurrent state detached at
the window boundaries; with k >= T it is full BPTT. Losses that average over time weight a window
of m steps by m / T, so the windows' values add up to the loss of the whole sequence. When the
output has no time axis (only the last step is returned), the windows before the last only carry
the state forward.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_positive_int
from .errors import ConfigError
from .layers.recurrent import Recurrent
from .losses import SSE, Loss


def recurrent_layers(net) -> list[Recurrent]:
    """The sequence layers of ``net`` (RNN, LSTM, ...)."""
    return [layer for layer in net.layers if isinstance(layer, Recurrent)]


def reset_states(net) -> None:
    """Forget the carried state of every sequence layer in ``net`` (for ``stateful`` layers)."""
    for layer in recurrent_layers(net):
        layer.reset_state()


def time_weight(loss: Loss, steps: int, total: int) -> float:
    """The share of a sequence loss that a window of ``steps`` of ``total`` steps carries."""
    if loss.reduction == "sum" or isinstance(loss, SSE):
        return 1.0
    return steps / total


def check_bptt_steps(net, X: np.ndarray, bptt_steps, rule=None) -> None:
    """Checked once by ``fit``: a positive int, sequence input, and a sequence layer to cut."""
    check_positive_int(bptt_steps, "bptt_steps")
    if rule is not None and not callable(getattr(rule, "bptt_step", None)):
        raise ConfigError(f"bptt_steps works with backpropagation or a rule with bptt_step"
                          f" (credit.RecurrentDNI), not with rule={rule!r}")
    ids = X.ndim == 2 and getattr(net.layers[0], "input_kind", None) == "index"  # (n, time) for an Embedding
    if X.ndim != 3 and not ids:
        raise ConfigError(f"bptt_steps needs sequence input of shape (n_samples, time, features),"
                          f" got X of shape {X.shape}")
    if not recurrent_layers(net):
        raise ConfigError(f"bptt_steps={bptt_steps} needs a recurrent layer (RNN, LSTM, GRU) in the"
                          " network, found none")


def truncated_bptt_step(net, loss: Loss, xb: np.ndarray, yb: np.ndarray,
                        bptt_steps: int) -> tuple[np.ndarray, float]:
    """Forward and backward over one batch in windows of ``bptt_steps``; fill every ``grads``.

    Returns the network's output for the whole batch (per-step outputs joined along time, or
    the last window's output) and the batch loss, as the plain step's forward and loss would.
    """
    T = xb.shape[1]
    if bptt_steps >= T:
        output = net._forward_train(xb)
        value, delta = loss._value_and_grad(output, yb)
        net._backward_train(delta)
        return output, value
    layers = recurrent_layers(net)
    outputs: list[np.ndarray] = []
    value = 0.0
    grads = GradientSum(net.layers)
    try:
        for start in range(0, T, bptt_steps):
            stop = min(start + bptt_steps, T)
            for layer in layers:
                layer._continue = start > 0               # start from the last window's state
            out = net._forward_train(xb[:, start:stop])
            share = window_loss(loss, out, yb, start, stop, T)
            if share is None:
                continue                                  # this window only carries the state
            part, delta = share
            value += part
            outputs.append(out)
            net._backward_train(delta)
            grads.add()
    finally:
        for layer in layers:
            layer._continue = False
    grads.write_back()
    output = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=1)
    return output, value


def window_loss(loss, out: np.ndarray, yb: np.ndarray, start: int, stop: int, T: int):
    """(value, delta) of one window's share of the batch loss, or None when it has none.

    An output per step counts with the window's time weight (see ``time_weight``); a single
    output counts only in the last window.
    """
    if out.ndim >= 3:
        weight = time_weight(loss, stop - start, T)
        part, delta = loss._value_and_grad(out, yb[:, start:stop])
        if weight != 1.0:
            delta *= weight
        return weight * part, delta
    if stop == T:
        return loss._value_and_grad(out, yb)
    return None


class GradientSum:
    """Sums the layers' gradients over several backward passes (the windows of one batch).

    ``add()`` after each backward; ``write_back()`` puts the totals into the layers' own
    gradient buffers, where the optimizer reads them.
    """

    def __init__(self, layers) -> None:
        self._layers = layers
        self._sums: list[tuple[np.ndarray, np.ndarray]] | None = None

    def add(self) -> None:
        if self._sums is None:
            self._sums = [(g, g.copy()) for layer in self._layers for g in layer.grads.values()]
        else:
            for g, total in self._sums:
                total += g

    def write_back(self) -> None:
        for g, total in self._sums or ():
            g[...] = total
