"""Run the network's own forward and backward passes and keep every intermediate value.

explain reads a Sequential as a stack of *levels*: a Dense layer and the activation after it
(none, an element-wise one, or Softmax). Dropout is the identity outside training and is
skipped; an Identity layer counts as no activation. Every number a trace shows comes from the
layers' own ``forward``/``backward`` (or from the loss's ``value_and_grad``), run here level by
level in float64 so that each intermediate can be kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..gradcheck import relative_error
from ..layers import ELU, Dense, Dropout, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh

ELEMENTWISE = (Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Softplus)

#: Step of the central differences (the fourth-order formula of chainrule.gradcheck).
FD_STEP = 1e-3


@dataclass
class Level:
    """One Dense layer of the network and the activation that follows it."""

    number: int                  # 1-based, as in W¹, z¹
    dense_index: int             # position of the Dense in net.layers
    dense: Dense
    act_index: int | None
    act: object | None           # a Layer, or None when the Dense output is the level's output

    @property
    def kind(self) -> str:
        """"sigmoid", "tanh", ..., "softmax" or "none"."""
        return "none" if self.act is None else type(self.act).__name__.lower()

    @property
    def n_in(self) -> int:
        return self.dense.n_in

    @property
    def n_out(self) -> int:
        return self.dense.n_out


@dataclass
class LevelPass:
    """What one level computed for the batch (rows are samples)."""

    a_in: np.ndarray             # input of the Dense, a^{l-1}
    z: np.ndarray                # net input z^l
    a: np.ndarray                # output a^l (= z when there is no activation)
    dE_da: np.ndarray | None = None     # gradient arriving at the level's output
    dadz: np.ndarray | None = None      # element-wise f'(z), from the activation's backward
    jacobian: np.ndarray | None = None  # softmax: (n, K, K) da_k/dz_j
    delta: np.ndarray | None = None     # dE/dz
    dE_dW: np.ndarray | None = None
    dE_db: np.ndarray | None = None
    dE_dain: np.ndarray | None = None   # gradient sent to the previous level


@dataclass
class Pass:
    """One forward and backward pass of a batch."""

    x: np.ndarray
    target: np.ndarray           # as the loss prepared it
    output: np.ndarray
    error: float
    dE_dout: np.ndarray
    levels: list[LevelPass] = field(default_factory=list)


def levels_of(net) -> list[Level]:
    """The levels of ``net``; ConfigError for layers explain cannot write out."""
    levels: list[Level] = []
    for i, layer in enumerate(net.layers):
        if isinstance(layer, (Dropout, Identity)):
            continue
        if isinstance(layer, Dense):
            levels.append(Level(len(levels) + 1, i, layer, None, None))
        elif isinstance(layer, (*ELEMENTWISE, Softmax)):
            if not levels:
                raise ConfigError(
                    f"explain expects a Dense layer first; layer {i} ({layer!r}) comes before any Dense")
            if levels[-1].act is not None:
                raise ConfigError(
                    f"explain expects at most one activation after each Dense; layer {i} ({layer!r})"
                    f" follows {levels[-1].act!r}")
            levels[-1].act_index, levels[-1].act = i, layer
        else:
            raise ConfigError(
                f"explain writes out Dense layers and activations (Sigmoid, Tanh, ReLU, LeakyReLU, ELU,"
                f" Softplus, Softmax, Identity, Dropout); layer {i} is {layer!r}")
    if not levels:
        raise ConfigError("explain needs a network with at least one Dense layer")
    for prev, nxt in zip(levels, levels[1:], strict=False):
        if prev.n_out != nxt.n_in:
            raise ConfigError(f"layer {nxt.dense_index} expects {nxt.n_in} inputs, the layer before gives"
                              f" {prev.n_out}")
    return levels


def forward_only(levels: list[Level], x: np.ndarray) -> np.ndarray:
    a = x
    for lvl in levels:
        a = lvl.dense.forward(a)
        if lvl.act is not None:
            a = lvl.act.forward(a)
    return a


def run_pass(levels: list[Level], loss, x: np.ndarray, target: np.ndarray) -> Pass:
    """Forward and backward through the layers themselves, keeping copies of everything."""
    a = x
    lps: list[LevelPass] = []
    for lvl in levels:
        a_in = a
        z = lvl.dense.forward(a_in).copy()
        a = lvl.act.forward(z).copy() if lvl.act is not None else z
        lps.append(LevelPass(a_in=a_in, z=z, a=a))
    error, grad = loss._value_and_grad(a.copy(), target)
    p = Pass(x=x, target=target, output=a, error=float(error), dE_dout=np.array(grad, dtype=np.float64),
             levels=lps)
    g = p.dE_dout
    for lvl, lp in zip(reversed(levels), reversed(lps), strict=True):
        lp.dE_da = g.copy()
        if lvl.act is None:
            lp.delta = g.copy()
        else:
            if isinstance(lvl.act, Softmax):
                s = lp.a
                lp.jacobian = s[:, :, None] * (np.eye(s.shape[1])[None] - s[:, None, :])
            else:
                lp.dadz = lvl.act.backward(np.ones_like(lp.z)).copy()
            lp.delta = lvl.act.backward(g).copy()
        g = lvl.dense.backward(lp.delta).copy()
        lp.dE_dain = g
        lp.dE_dW = lvl.dense.grads["weight"].copy()
        if lvl.dense.use_bias:
            lp.dE_db = lvl.dense.grads["bias"].copy()
    return p


def central_difference(levels: list[Level], loss, x, target, param: np.ndarray, index: tuple,
                       step: float = FD_STEP) -> float:
    """(−E(θ+2h) + 8E(θ+h) − 8E(θ−h) + E(θ−2h)) / 12h for one entry θ of ``param``."""
    orig = param[index]
    vals = []
    for k in (2, 1, -1, -2):
        param[index] = orig + k * step
        vals.append(loss._value(forward_only(levels, x), target))
    param[index] = orig
    return (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * step)


def check_entries(levels, loss, x, target, pass_: Pass, entries) -> list[tuple[float, float, float]]:
    """(analytic, numeric, relative error) for each (level index, "weight"|"bias", index)."""
    out = []
    for li, name, idx in entries:
        lvl, lp = levels[li], pass_.levels[li]
        analytic = float((lp.dE_dW if name == "weight" else lp.dE_db)[idx])
        numeric = float(central_difference(levels, loss, x, target, lvl.dense.params[name], idx))
        rel = float(relative_error(np.array(analytic), np.array(numeric)))
        out.append((analytic, numeric, rel))
    return out
