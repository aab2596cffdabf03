"""Weight penalties: L1 and L2, added to the loss by whichever training step carries them.

    L2(rate):  penalty = ½·rate·Σ_W ‖W‖²,   dpenalty/dW = rate·W
    L1(rate):  penalty = rate·Σ_W Σ|w|,      dpenalty/dW = rate·sign(W)

Σ_W runs over every parameter a layer lists in ``Layer.penalized()``: the weights of Dense,
Conv, recurrent and attention layers, inside Residual blocks too (no biases, no normalization
scales); frozen ones are included in the value but not moved by the optimizer. With
``per_sample=True`` the rate is divided by the
batch's sample count first (scikit-learn's ``alpha``: penalty = α/(2n)·Σ‖W‖² for a batch of n).

``net.fit(..., regularizer=cr.L2(1e-4))``; the step adds the penalty to the loss it reports and
the gradient to each weight's ``grads`` after the backward pass, before the update.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_number
from .errors import ConfigError


class Regularizer:
    """Base class: ``add_gradient(net, n)`` adds dpenalty/dW to the weights' grads and returns the penalty."""

    def __init__(self, rate: float, per_sample: bool = False) -> None:
        check_number(rate, f"{type(self).__name__} rate", low=0)
        self.rate, self.per_sample = float(rate), bool(per_sample)

    def weights(self, net) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight, its gradient buffer) for every parameter a layer lists in ``penalized()``:
        Dense, Conv, recurrent and attention weights (inside Residual blocks too), no biases
        and no normalization scales."""
        return [(layer.params[k], layer.grads[k]) for layer in net.layers for k in layer.penalized()]

    def add_gradient(self, net, n: float) -> float:
        rate = self.rate / n if self.per_sample else self.rate
        if rate == 0:
            return 0.0
        return self._add(self.weights(net), rate)

    def _add(self, pairs, rate: float) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"rate": self.rate, "per_sample": self.per_sample}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rate={self.rate!r}, per_sample={self.per_sample!r})"


class L2(Regularizer):
    """½·rate·Σ‖W‖² (weight decay added to the loss); gradient rate·W."""

    def _add(self, pairs, rate):
        total = 0.0
        for w, g in pairs:
            total += float(np.vdot(w, w))
            g += rate * w
        return 0.5 * rate * total


class L1(Regularizer):
    """rate·Σ|w| (sparsity); gradient rate·sign(W) (0 at w = 0)."""

    def _add(self, pairs, rate):
        total = 0.0
        for w, g in pairs:
            total += float(np.abs(w).sum())
            g += rate * np.sign(w)
        return rate * total


def get_regularizer(regularizer) -> Regularizer | None:
    """None, a Regularizer, or refuse with what fit takes."""
    if regularizer is None or isinstance(regularizer, Regularizer):
        return regularizer
    raise ConfigError(f"regularizer must be None, cr.L1(rate) or cr.L2(rate), got {regularizer!r}")
