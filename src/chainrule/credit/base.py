"""Credit-assignment rules: what a training step does instead of backward + ``optimizer.step``.

A rule is handed to ``fit`` (``net.fit(X, y, rule=cr.FeedbackAlignment(seed=0))``). The training
loop then calls, and only then (the plain backprop path is untouched when ``rule`` is None):

    rule.begin(net, loss, optimizer)       once per fit, before the first step
    output = rule.forward(net, xb)         each step, instead of net._forward_train(xb)
    rule.assign(net, yb, delta)            each step, instead of net._backward_train
    rule.apply(net)                        each step, instead of optimizer.step
    logs.update(rule.epoch_logs())         at the end of each epoch (alignment angles, SG losses)

(chainrule.step.RuleStep makes these the moves of a training step.) ``assign`` runs
``_credit`` (fill every ``layer.grads`` with the rule's estimate of dL/dθ) and ``apply`` runs
``_apply`` (the parameter updates). Every ``track_every`` steps, and at
each epoch's first step, the true backprop gradient is computed first, and the angle between it
and the rule's estimate is recorded per parametric layer; the epoch's mean angle is logged as
``angle_<layer index>``.

Blocks: the layers of a Sequential are cut before each parametric layer (but the first), so
[Dense, ReLU, Dense, ReLU, Dense] gives the blocks [Dense, ReLU], [Dense, ReLU], [Dense].
The output of block i is the hidden representation h_i that feedback rules and synthetic
gradients talk about.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from .._checks import check_number, check_positive_int
from ..errors import ConfigError


class Block:
    """A run of consecutive layers of a network, with their index in ``net.layers``.

    It has ``.layers``, so an optimizer steps it like a network (``opt.step(block)``).
    """

    def __init__(self, layers: list, start: int) -> None:
        check_number(start, "Block start", low=0, integer=True)
        self.layers = list(layers)
        self.start = start

    @property
    def stop(self) -> int:
        return self.start + len(self.layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, True)
        return x

    def backward(self, grad: np.ndarray, need_input_grad: bool = True):
        """Backprop ``grad`` (dL/d(block output)) through the block; fill ``grads``.

        Returns dL/d(block input), or None when ``need_input_grad`` is False (the first block
        then skips the first layer's input-gradient product, as the plain loop does).
        """
        layers = self.layers
        for layer in layers[:0:-1]:
            grad = layer.backward(grad)
        first = layers[0]
        if need_input_grad:
            return first.backward(grad)
        if hasattr(first, "backward_params"):
            first.backward_params(grad)
        else:
            first.backward(grad)
        return None

    def __repr__(self) -> str:
        return f"Block(layers {self.start}..{self.stop - 1})"


def parametric_indices(net) -> list[int]:
    """Indices of the layers that have parameters."""
    return [i for i, layer in enumerate(net.layers) if layer.params]


def split_blocks(net, cuts=None) -> list[Block]:
    """Cut ``net.layers`` into blocks.

    ``cuts``: the layer indices where a new block starts. Default: before every parametric
    layer but the first. A network needs at least one cut (two blocks) for a rule that
    treats hidden layers differently from the output.
    """
    n = len(net.layers)
    if cuts is None:
        cuts = parametric_indices(net)[1:]
    cuts = sorted({int(c) for c in cuts})
    if any(c <= 0 or c >= n for c in cuts):
        raise ConfigError(f"block cuts must be layer indices in [1, {n - 1}], got {cuts}")
    edges = [0, *cuts, n]
    blocks = [Block(net.layers[a:b], a) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    for b in blocks[1:]:
        if not any(layer.params for layer in b.layers):
            raise ConfigError(f"{b} has no parameters; cut before a parametric layer")
    return blocks


def fresh_optimizer(optimizer):
    """An optimizer with ``optimizer``'s configuration (lr, betas, clipping, schedule) and no state."""
    opt = copy.deepcopy(optimizer)
    opt.reset()
    return opt


def cosine(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """cos ∠(a, b) of two lists of arrays read as one vector each (0 when either is zero)."""
    dot = sum(float(np.vdot(x, y)) for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(float(np.vdot(x, x)) for x in a))
    nb = math.sqrt(sum(float(np.vdot(y, y)) for y in b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return max(-1.0, min(1.0, dot / (na * nb)))


def angle_degrees(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The angle between a and b in degrees (90 when either is zero: no information).

    Computed as 2·atan2(‖â − b̂‖, ‖â + b̂‖) with â = a/‖a‖, which is exact near 0° and 180°
    (arccos of the cosine loses half the digits there): equal vectors give exactly 0.
    """
    na = math.sqrt(sum(float(np.vdot(x, x)) for x in a))
    nb = math.sqrt(sum(float(np.vdot(y, y)) for y in b))
    if na == 0.0 or nb == 0.0:
        return 90.0
    diff = plus = 0.0
    for x, y in zip(a, b, strict=True):
        u, v = x.astype(np.float64) / na, y.astype(np.float64) / nb
        diff += float(np.vdot(u - v, u - v))
        plus += float(np.vdot(u + v, u + v))
    return math.degrees(2.0 * math.atan2(math.sqrt(diff), math.sqrt(plus)))


def as_condition(y: np.ndarray, n_out: int, dtype) -> np.ndarray:
    """The target as rows of numbers: one-hot rows for class labels, the values otherwise."""
    y = np.asarray(y)
    if y.dtype.kind in "iu":
        out = np.zeros((y.size, n_out), dtype=dtype)
        out[np.arange(y.size), y.reshape(-1)] = 1
        return out.reshape(*y.shape, n_out)
    return y.astype(dtype, copy=False).reshape(len(y), -1) if y.ndim == 1 else y.astype(dtype, copy=False)


class CreditRule:
    """Base class of the credit-assignment rules.

    Parameters
    ----------
    track_every : int or None
        Measure the angle between the rule's gradient and the true gradient every this many
        steps and at each epoch's first step (one extra backprop pass each time), and log its
        epoch mean as
        ``angle_<layer index>``; None turns the measurement off.
    """

    #: a short name for tables and plots
    name = "rule"
    #: Whether ``get_state`` holds all the rule carries from step to step (checkpoints need it);
    #: a rule with its own learned modules or optimizers says False, and fit refuses to checkpoint it.
    checkpointable = True
    #: Whether it can train data-parallel: its update uses only the (summed) gradients.
    data_parallel = True

    def __init__(self, track_every: int | None = 20) -> None:
        check_positive_int(track_every, f"{type(self).__name__} track_every", allow_none=True)
        self.track_every = track_every
        self.net = None
        self.loss = None
        self.optimizer = None
        self.steps = 0
        self._angle_sums: dict[int, float] = {}
        self._angle_counts: dict[int, int] = {}

    # --- the protocol the training loop uses ----------------------------------------------
    def begin(self, net, loss, optimizer) -> None:
        """Bind to ``net`` for a fit. Structures (feedback matrices, modules, per-block
        optimizers) are built on the first fit and kept by later fits on the same network."""
        self.loss = loss
        rebuilt = self.net is not net
        if rebuilt:
            self.net = net
            self.steps = 0
            self._param_layers = parametric_indices(net)
            if not self._param_layers:
                raise ConfigError(f"{type(self).__name__} needs a network with parameters")
            self._build(net)
        if rebuilt or optimizer is not self.optimizer:
            self.optimizer = optimizer
            self._bind_optimizer(optimizer)
        self._reset_epoch()

    def forward(self, net, x: np.ndarray) -> np.ndarray:
        """The training forward pass (layers cache what the backward pass needs)."""
        return net._forward_train(x)

    def assign(self, net, y: np.ndarray, delta: np.ndarray) -> None:
        """Fill every ``layer.grads`` with the rule's estimate of dL/dθ from dL/doutput ``delta``
        (measuring the angle to backprop's gradient when due). The step's backward move."""
        measure = self._measure_due()
        true = self._true_gradients(net, delta) if measure else None
        self._credit(net, y, delta)
        if true is not None:
            self._record_angles(net, true)

    def apply(self, net) -> None:
        """Update the parameters from the assigned gradients. The step's update move."""
        self._apply(net)
        self.steps += 1

    def backward_step(self, net, y: np.ndarray, delta: np.ndarray) -> None:
        """``assign`` then ``apply``: credit and update in one call."""
        self.assign(net, y, delta)
        self.apply(net)

    def epoch_logs(self) -> dict[str, float]:
        """The epoch's mean angles (and whatever else the rule logs); resets the sums."""
        logs = {f"angle_{i}": self._angle_sums[i] / self._angle_counts[i]
                for i in self._angle_sums if self._angle_counts[i]}
        logs.update(self._extra_logs())
        self._reset_epoch()
        return logs

    # --- checkpoints ---------------------------------------------------------------------------
    def get_state(self) -> dict:
        """What a checkpoint keeps: the step count, this epoch's angle sums, and ``_arrays()``
        (a feedback rule's fixed matrices), JSON-able numbers and arrays."""
        return {"steps": self.steps, "first_of_epoch": self._first_of_epoch,
                "angle_sums": {str(i): v for i, v in self._angle_sums.items()},
                "angle_counts": {str(i): v for i, v in self._angle_counts.items()},
                "arrays": self._arrays()}

    def set_state(self, state: dict) -> None:
        """Put back what ``get_state`` gave (after ``begin``; the checkpoint reader checked it)."""
        self.steps, self._first_of_epoch = int(state["steps"]), bool(state["first_of_epoch"])
        self._angle_sums = {int(i): float(v) for i, v in state["angle_sums"].items()}
        self._angle_counts = {int(i): int(v) for i, v in state["angle_counts"].items()}
        for key, value in state["arrays"].items():
            self._arrays()[key][...] = value

    def _arrays(self) -> dict:
        """The rule's own arrays by name (views: set_state writes into them)."""
        return {}

    # --- helpers for tests and scripts -------------------------------------------------------
    def train_step(self, net, x, y) -> float:
        """One step outside ``fit`` (after ``begin``): forward, loss, credit, update; the loss."""
        if self.net is not net:
            raise ConfigError(f"{type(self).__name__}.train_step: call begin(net, loss, optimizer) first")
        x = net._check_input(x, "train_step x")
        output = self.forward(net, x)
        y = self.loss.prepare_target(y, output.shape, output.dtype)
        value, delta = self.loss._value_and_grad(output, y)
        self.backward_step(net, y, delta)
        return value

    def alignment(self, net, x, y) -> dict[int, float]:
        """Angles (degrees) per parametric layer between the rule's gradient and backprop's on
        the batch (x, y), without updating anything. Needs ``begin`` (or a fit) first."""
        if self.net is not net:
            raise ConfigError(f"{type(self).__name__}.alignment: fit with this rule first")
        x = net._check_input(x, "alignment x")
        output = self.forward(net, x)
        y = self.loss.prepare_target(y, output.shape, output.dtype)
        delta = self.loss._value_and_grad(output, y)[1]
        true = self._true_gradients(net, delta)
        self._credit(net, y, delta)
        return {i: angle_degrees(list(net.layers[i].grads.values()), true[i]) for i in true}

    # --- for subclasses ------------------------------------------------------------------
    def _build(self, net) -> None:
        """Build what the rule needs for ``net`` (called by begin, once per network)."""

    def _bind_optimizer(self, optimizer) -> None:
        """Make the per-block optimizers (fresh copies of ``optimizer``), where the rule has any."""

    def _credit(self, net, y: np.ndarray, delta: np.ndarray) -> None:
        raise NotImplementedError

    def _apply(self, net) -> None:
        self.optimizer.step(net)

    def _extra_logs(self) -> dict[str, float]:
        return {}

    def _reset_extra(self) -> None:
        """Reset the per-epoch sums of ``_extra_logs``."""

    def _true_gradients(self, net, delta: np.ndarray) -> dict[int, list[np.ndarray]]:
        """Backprop's dL/dθ for every parametric layer (copies), from the cached forward."""
        net._backward_train(delta)
        return {i: [g.copy() for g in net.layers[i].grads.values()] for i in self._param_layers}

    def _record_angles(self, net, true: dict[int, list[np.ndarray]]) -> None:
        for i, grads in true.items():
            a = angle_degrees(list(net.layers[i].grads.values()), grads)
            self._angle_sums[i] = self._angle_sums.get(i, 0.0) + a
            self._angle_counts[i] = self._angle_counts.get(i, 0) + 1

    def _measure_due(self) -> bool:
        """Every ``track_every`` steps, and at the first step of every epoch (so that every
        epoch logs its angles)."""
        if self.track_every is None:
            return False
        if self._first_of_epoch or self.steps % self.track_every == 0:
            self._first_of_epoch = False
            return True
        return False

    def _reset_epoch(self) -> None:
        self._angle_sums, self._angle_counts = {}, {}
        self._first_of_epoch = True
        self._reset_extra()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Backprop(CreditRule):
    """Plain backpropagation as a rule: the reference the others are compared with.

    Training with ``rule=Backprop()`` gives the same parameters as training without a rule.
    """

    name = "BP"

    def _credit(self, net, y, delta):
        net._backward_train(delta)


class LastLayerOnly(CreditRule):
    """Only the top block (the output layer) learns; the hidden layers keep their initial
    weights. The baseline every rule for the hidden layers has to beat.

    The top block has its own optimizer, a fresh copy of the one given to ``fit``.
    """

    name = "last layer"
    checkpointable = False  # (its own optimizer for the top block)

    def _build(self, net):
        self.blocks = split_blocks(net)
        if len(self.blocks) < 2:
            raise ConfigError("LastLayerOnly needs a network with a hidden layer")

    def _bind_optimizer(self, optimizer):
        self._top_optimizer = fresh_optimizer(optimizer)

    def _credit(self, net, y, delta):
        self.blocks[-1].backward(delta, need_input_grad=False)
        for block in self.blocks[:-1]:
            for layer in block.layers:
                for g in layer.grads.values():
                    g[...] = 0

    def _apply(self, net):
        self._top_optimizer.lr = self.optimizer.lr
        self._top_optimizer.step(self.blocks[-1])


def check_dense(net, rule_name: str) -> None:
    """Feedback rules replace Wᵀ of Dense layers; they accept no other parametric layer."""
    from ..layers.dense import Dense

    for i in parametric_indices(net):
        layer = net.layers[i]
        if not isinstance(layer, Dense):
            raise ConfigError(
                f"{rule_name} replaces the transposed weights of Dense layers; layer {i}"
                f" ({layer!r}) has parameters but is not Dense"
            )

