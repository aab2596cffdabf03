"""Decoupled neural interfaces: synthetic gradients (Jaderberg et al., ICML 2017).

The network is cut into blocks f_0, …, f_K (see :func:`split_blocks`), with h_i = f_i(h_{i−1})
the output of block i. Between block i and i+1 sits a synthetic gradient module M_i, a small
model of the gradient of the loss with respect to h_i:

    δ̂_i = M_i(h_i)            or, conditioned on the target (cDNI),  δ̂_i = M_i([h_i, y])

One step on a batch, all from the same forward pass (every weight as it was before the step):

    top block K:   backprop of the true dL/doutput;      its input gradient is dL/dh_{K−1}
    block i < K:   backprop of δ̂_i (update unlocking: no wait for the layers above);
                   its input gradient is J_iᵀ δ̂_i  (J_i = ∂h_i/∂h_{i−1})
    targets:       t_{K−1} = dL/dh_{K−1} (true);   t_{i−1} = J_iᵀ δ̂_i   (bootstrapped)
    M_i:           one optimizer step on ½‖M_i(h_i) − t_i‖² (mean over samples)
    blocks:        one optimizer step each, from the gradients above

Only the top interface sees the true gradient; the others learn from their neighbour's
prediction. M's last layer starts at zero, so at first δ̂ = 0 and the lower blocks stand still.
Every block and every module has its own optimizer state (a fresh copy of the optimizer given
to ``fit``, or of ``sg_optimizer`` for the modules).

Units: M predicts the gradient of the *summed* per-sample losses, s · dL/dh with s the batch
size when the loss is a mean (1 for reduction="sum"), so its targets do not shrink with the
batch; the block is driven by δ̂ / s.

``mix = λ`` drives block i with (1 − λ)·δ̂_i + λ·dL/dh_i (BP(λ)-style, for study; it costs a
full backprop pass per step); λ = 1 is backprop, and the targets become the true gradients.
"""

from __future__ import annotations

import numpy as np

from .._checks import as_rng, check_number, check_positive_int
from ..errors import ConfigError
from ..losses import SSE
from .base import CreditRule, as_condition, fresh_optimizer, split_blocks


class SyntheticGradient:
    """A synthetic gradient module M(h) ≈ s·dL/dh: a small MLP whose last Dense starts at zero.

    Parameters
    ----------
    n_features : int
        Width of h (M's output has the same width).
    n_condition : int
        Width of the conditioning input (the one-hot label for cDNI); 0 for none.
    hidden : sequence of int
        Hidden layer widths; () gives a linear model M(h) = h·W + b.
    activation : str
        Hidden activation (see :func:`chainrule.mlp`).
    seed : int or numpy.random.Generator, optional
    dtype : numpy dtype

    Notes
    -----
    The protocol a DNI rule uses (a custom module, such as an oracle, needs only these):
    ``predict(h, condition) -> δ̂`` (remembers what ``update`` needs) and
    ``update(target) -> float`` (one optimizer step on ½‖δ̂ − target‖², the loss before it),
    plus ``bind(optimizer)`` to receive its optimizer; ``regress(h, target)`` is both at once.
    """

    def __init__(self, n_features: int, n_condition: int = 0, hidden=(), activation: str = "relu",
                 seed=None, dtype=np.float32) -> None:
        from ..network import mlp

        check_positive_int(n_features, "SyntheticGradient n_features")
        check_number(n_condition, "SyntheticGradient n_condition", low=0, integer=True)
        self.n_features, self.n_condition = int(n_features), int(n_condition)
        self.net = mlp([self.n_features + self.n_condition, *hidden, self.n_features],
                       activation=activation, seed=seed, dtype=dtype)
        last = self.net.layers[-1]
        for p in last.params.values():
            p[...] = 0
        self.loss = SSE()
        self.optimizer = None
        self._prediction: np.ndarray | None = None

    def bind(self, optimizer) -> None:
        self.optimizer = optimizer

    def predict(self, h: np.ndarray, condition: np.ndarray | None = None) -> np.ndarray:
        x = h if condition is None else np.concatenate([h, condition], axis=-1)
        self._prediction = self.net._forward_train(x)
        return self._prediction

    def update(self, target: np.ndarray) -> float:
        value, grad = self.loss._value_and_grad(self._prediction, target)
        self.net._backward_train(grad)
        self.optimizer.step(self.net)
        return value

    def regress(self, h: np.ndarray, target: np.ndarray, condition: np.ndarray | None = None) -> float:
        """``predict`` then ``update``: one step on ½‖M(h) − target‖²; the loss before it."""
        self.predict(h, condition)
        return self.update(target)

    def __repr__(self) -> str:
        return f"SyntheticGradient({self.net!r})"


class DNI(CreditRule):
    """Decoupled training with synthetic gradients (DNI), or conditioned on the target (cDNI).

    Parameters
    ----------
    conditioned : bool
        cDNI: each module also sees the target (one-hot rows for class labels).
    hidden : sequence of int
        Hidden widths of every module; () (default) gives linear modules.
    activation : str
        Hidden activation of the modules.
    cuts : list of int, optional
        Layer indices where blocks start (an interface sits before each); default: before
        every parametric layer but the first, i.e. a module after every hidden layer.
    sg_optimizer : Optimizer, optional
        Configuration of the modules' optimizers; default: that of the optimizer given to fit.
        Their learning rate follows fit's optimizer when this is None.
    mix : float
        λ in [0, 1]: drive blocks with (1 − λ)·δ̂ + λ·(true gradient).
    modules : list, optional
        Ready-made modules, one per interface, bottom first (anything with ``predict`` /
        ``update`` / ``bind``, e.g. an oracle); default: built on the first step.
    seed : int or numpy.random.Generator, optional
        Seed of the modules' hidden weights (the last layer starts at zero regardless).
    track_every : int or None
        See :class:`CreditRule`.

    Attributes
    ----------
    blocks, modules : lists
        The blocks (bottom first) and the module after each but the last.
    targets : list of arrays
        The regression targets of the last step, t_i for module i (in module units, s · dL/dh).
    """

    name = "DNI"
    checkpointable = False  # (its synthetic-gradient modules and their optimizers learn as it trains)
    data_parallel = False  # (each rank's modules would learn from its own rows only)

    def __init__(self, conditioned: bool = False, hidden=(), activation: str = "relu", cuts=None,
                 sg_optimizer=None, mix: float = 0.0, modules=None, seed=None,
                 track_every: int | None = 20) -> None:
        super().__init__(track_every)
        check_number(mix, "DNI mix", low=0, high=1)
        self.conditioned, self.hidden, self.activation = bool(conditioned), tuple(hidden), activation
        self.cuts, self.sg_optimizer, self.mix, self.seed = cuts, sg_optimizer, float(mix), seed
        self.modules = list(modules) if modules is not None else None
        self._given_modules = modules is not None
        self.name = "cDNI" if self.conditioned else "DNI"
        self.targets: list[np.ndarray] = []

    # --- building -----------------------------------------------------------------------
    def _build(self, net):
        self.blocks = split_blocks(net, self.cuts)
        if len(self.blocks) < 2:
            raise ConfigError("DNI needs a network with a hidden layer (at least two blocks)")
        if self._given_modules:
            if len(self.modules) != len(self.blocks) - 1:
                raise ConfigError(f"DNI got {len(self.modules)} modules for {len(self.blocks) - 1} interfaces")
        else:
            self.modules = None  # built on the first step, when the widths are known
        self._hidden_out: list[np.ndarray] = []

    def _bind_optimizer(self, optimizer):
        self._block_optimizers = [fresh_optimizer(optimizer) for _ in self.blocks]
        if self.modules is not None:
            self._bind_modules()

    def _bind_modules(self):
        base = self.sg_optimizer if self.sg_optimizer is not None else self.optimizer
        self._module_optimizers = [fresh_optimizer(base) for _ in self.modules]
        for m, opt in zip(self.modules, self._module_optimizers, strict=True):
            m.bind(opt)

    def _make_modules(self, n_condition: int):
        rng = as_rng(self.seed)
        self.modules = [
            SyntheticGradient(h.shape[-1], n_condition if self.conditioned else 0, self.hidden,
                              self.activation, seed=int(rng.integers(2**31)), dtype=self.net.dtype)
            for h in self._hidden_out
        ]
        self._bind_modules()

    # --- the step -------------------------------------------------------------------------
    def forward(self, net, x):
        hidden = self._hidden_out = []
        for block in self.blocks[:-1]:
            x = block.forward(x)
            hidden.append(x)
        return self.blocks[-1].forward(x)

    def assign(self, net, y, delta):
        measure = self._measure_due()
        true = self._true_gradients(net, delta) if (measure or self.mix) else None
        self._credit(net, y, delta)
        if measure:
            self._record_angles(net, true)

    def _true_gradients(self, net, delta):
        """Backprop's parameter gradients (copies) and dL/dh_i at every interface."""
        grad, at_interface = delta, []
        for block in self.blocks[:0:-1]:
            grad = block.backward(grad)
            at_interface.append(grad)
        self.blocks[0].backward(grad, need_input_grad=False)
        self._true_interface = at_interface[::-1]
        return {i: [g.copy() for g in net.layers[i].grads.values()] for i in self._param_layers}

    def _credit(self, net, y, delta):
        scale = len(delta) if self.loss.reduction == "mean" else 1
        if self.modules is None:
            self._make_modules(delta.shape[-1])
        condition = as_condition(y, delta.shape[-1], delta.dtype) if self.conditioned else None
        predictions = [m.predict(h, condition) for m, h in zip(self.modules, self._hidden_out, strict=True)]
        K = len(self.blocks) - 1
        targets = [None] * K
        grad = self.blocks[K].backward(delta)
        targets[K - 1] = grad * scale
        for i in range(K - 1, -1, -1):
            drive = predictions[i] * (1.0 / scale) if scale != 1 else predictions[i]
            if self.mix:
                drive = (1.0 - self.mix) * drive + self.mix * self._true_interface[i]
            grad = self.blocks[i].backward(drive, need_input_grad=i > 0)
            if i > 0:
                targets[i - 1] = grad * scale
        self.targets = targets

    def _apply(self, net):
        lr = self.optimizer.lr
        for block, opt in zip(self.blocks, self._block_optimizers, strict=True):
            opt.lr = lr
            opt.step(block)
        follow = self.sg_optimizer is None
        for i, (m, target) in enumerate(zip(self.modules, self.targets, strict=True)):
            if follow:
                self._module_optimizers[i].lr = lr
            value = m.update(target)
            self._sg_sums[i] = self._sg_sums.get(i, 0.0) + value
        self._sg_count += 1

    def _extra_logs(self):
        if not self._sg_count:
            return {}
        return {f"sg_loss_{i}": s / self._sg_count for i, s in self._sg_sums.items()}

    def _reset_extra(self):
        self._sg_sums, self._sg_count = {}, 0

    def __repr__(self) -> str:
        return (f"DNI(conditioned={self.conditioned}, hidden={self.hidden}, mix={self.mix},"
                f" cuts={self.cuts!r})")
