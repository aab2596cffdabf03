"""Synthetic gradients across time: decoupled truncated BPTT (Jaderberg et al. 2017, RNN case).

Truncated BPTT (``fit(..., bptt_steps=k)``) cuts each batch of sequences into windows of k
steps and stops the gradient at every window boundary: nothing after a window reaches it.
``RecurrentDNI`` puts a synthetic gradient of the future there. For each recurrent layer, a
module M(h) ≈ s·dL_future/dh predicts, from the state h_b that window w ends with, the gradient
the later windows would send back into it; the window's backward pass starts from

    dL/dh_b  ←  dL/dh_b (from the window's own loss)  +  scale · M(h_b) / s       (scale 0.1 in the paper)

and the gradient that arrives at the start of window w+1 (``initial_state_grad``: its own loss
plus its own injected future, so the target is bootstrapped) is M's regression target for the
prediction made at h_b. After the batch the parameter gradients of all windows are added (as
plain truncated BPTT does) and each module takes one optimizer step on ½‖M(h_b) − target_b‖²
over all the batch's boundaries. The sequence's last window gets no synthetic gradient (there is
no future). s is the batch size for a mean loss (1 for "sum"), as in :mod:`chainrule.credit.dni`.

With a zero-initialised M (the default) the first step is exactly truncated BPTT; with scale=1
and an oracle M that returns the true future gradient it is full BPTT.

Use: ``net.fit(X, y, bptt_steps=5, rule=cr.credit.RecurrentDNI())``. Stateful layers are not
supported. For an LSTM the module models the future gradient of the hidden output h only: the
cell state's future gradient is cut at the boundary, as in plain truncated BPTT. The angle
logged per layer (``angle_<i>``) is the one between the step's gradient and the full-BPTT
gradient of the batch.
"""

from __future__ import annotations

import numpy as np

from .._checks import as_rng, check_number
from ..errors import ConfigError
from .base import CreditRule, fresh_optimizer
from .dni import SyntheticGradient


class RecurrentDNI(CreditRule):
    """Truncated BPTT with a synthetic gradient of the future at every window boundary.

    Parameters
    ----------
    scale : float
        Factor on the synthetic gradient where it is injected (0.1 in the paper).
    hidden : sequence of int
        Hidden widths of the modules; () (default) gives linear modules.
    activation : str
        Hidden activation of the modules.
    sg_optimizer : Optimizer, optional
        Configuration of the modules' optimizers; default: that of fit's optimizer (whose
        learning rate they then follow).
    modules : list, optional
        One module per recurrent layer, bottom first: anything with ``predict(h) -> δ̂``,
        ``regress(h, target) -> float`` and ``bind(optimizer)``; default: linear
        :class:`SyntheticGradient` modules with a zero last layer.
    seed : int or numpy.random.Generator, optional
    track_every : int or None
        Measure the angle to the full-BPTT gradient every this many steps (a full forward and
        backward pass each time); None (default) turns it off.

    Attributes
    ----------
    modules : list
    recurrent : list[int]
        Indices of the recurrent layers in ``net.layers``.
    """

    name = "RNN-DNI"
    checkpointable = False  # (its synthetic-gradient modules and their optimizers learn as it trains)
    data_parallel = False  # (each rank's modules would learn from its own rows only)

    def __init__(self, scale: float = 0.1, hidden=(), activation: str = "relu", sg_optimizer=None,
                 modules=None, seed=None, track_every: int | None = None) -> None:
        super().__init__(track_every)
        check_number(scale, "RecurrentDNI scale", low=0)
        self.scale, self.hidden, self.activation = float(scale), tuple(hidden), activation
        self.sg_optimizer, self.seed = sg_optimizer, seed
        self.modules = list(modules) if modules is not None else None
        self._given_modules = modules is not None

    # --- building -----------------------------------------------------------------------------
    def _build(self, net):
        from ..layers.recurrent import Recurrent

        self.recurrent = [i for i, layer in enumerate(net.layers) if isinstance(layer, Recurrent)]
        if not self.recurrent:
            raise ConfigError("RecurrentDNI needs a recurrent layer (RNN, LSTM) in the network")
        for i in self.recurrent:
            if net.layers[i].stateful:
                raise ConfigError(f"RecurrentDNI does not support stateful layers (layer {i})")
        if self._given_modules:
            if len(self.modules) != len(self.recurrent):
                raise ConfigError(f"RecurrentDNI got {len(self.modules)} modules for"
                                  f" {len(self.recurrent)} recurrent layers")
        else:
            rng = as_rng(self.seed)
            self.modules = [SyntheticGradient(net.layers[i].n_hidden, 0, self.hidden, self.activation,
                                              seed=int(rng.integers(2**31)), dtype=net.dtype)
                            for i in self.recurrent]

    def _bind_optimizer(self, optimizer):
        base = self.sg_optimizer if self.sg_optimizer is not None else optimizer
        self._module_optimizers = [fresh_optimizer(base) for _ in self.modules]
        for m, opt in zip(self.modules, self._module_optimizers, strict=True):
            m.bind(opt)

    # --- the step (called by fit when bptt_steps is set) ----------------------------------------
    def forward(self, net, x):
        raise ConfigError("RecurrentDNI works window by window: fit it with bptt_steps=k")

    def bptt_step(self, net, xb: np.ndarray, yb: np.ndarray, bptt_steps: int):
        """Forward and backward over one batch in windows, the synthetic gradients injected;
        fill every ``grads`` (summed over the windows). Returns (output, loss value)."""
        from ..sequence import GradientSum, window_loss

        loss, layers, T = self.loss, net.layers, xb.shape[1]
        rec = [layers[i] for i in self.recurrent]
        s = len(xb) if loss.reduction == "mean" else 1
        true = self._full_bptt(net, xb, yb) if self._measure_due() else None
        outputs, value, grads = [], 0.0, GradientSum(layers)
        boundary_states: list[list[np.ndarray]] = [[] for _ in rec]
        boundary_targets: list[list[np.ndarray]] = [[] for _ in rec]
        try:
            for start in range(0, T, bptt_steps):
                stop = min(start + bptt_steps, T)
                for layer in rec:
                    layer._continue = start > 0
                out = net._forward_train(xb[:, start:stop])
                share = window_loss(loss, out, yb, start, stop, T)
                if share is None:
                    delta = np.zeros_like(out)  # no loss in this window; the future still counts
                else:
                    part, delta = share
                    value += part
                    outputs.append(out)
                future = None
                if stop < T:
                    future = {i: self.scale / s * m.predict(layers[i].state[0])
                              for i, m in zip(self.recurrent, self.modules, strict=True)}
                self._backward_window(net, delta, future)
                for k, layer in enumerate(rec):
                    if start > 0:  # what reached this window's start: the target for the last prediction
                        boundary_targets[k].append(layer.initial_state_grad[0] * s)
                    if stop < T:
                        boundary_states[k].append(layer.state[0])
                grads.add()
        finally:
            for layer in rec:
                layer._continue = False
        grads.write_back()
        self._boundaries = (boundary_states, boundary_targets)
        if true is not None:
            self._record_angles(net, true)
        output = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=1)
        return output, value

    def _backward_window(self, net, delta, future):
        grad = delta
        layers = net.layers
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            if future is not None and i in future:
                grad = np.array(grad, copy=True)
                if layer.return_sequences:
                    grad[:, -1] += future[i]
                else:
                    grad += future[i]
            if i > 0:
                grad = layer.backward(grad)
            elif hasattr(layer, "backward_params"):
                layer.backward_params(grad)
            else:
                layer.backward(grad)

    def _full_bptt(self, net, xb, yb):
        out = net._forward_train(xb)
        net._backward_train(self.loss._value_and_grad(out, yb)[1])
        return {i: [g.copy() for g in net.layers[i].grads.values()] for i in self._param_layers}

    def assign(self, net, y, delta):
        """Nothing: ``bptt_step`` filled the gradients window by window."""

    def apply(self, net):
        """The updates: the network's (fit's optimizer) and one regression step per module."""
        self.optimizer.step(net)
        states, targets = self._boundaries
        follow = self.sg_optimizer is None
        for k, m in enumerate(self.modules):
            if follow:
                self._module_optimizers[k].lr = self.optimizer.lr
            if targets[k]:
                value = m.regress(np.concatenate(states[k]), np.concatenate(targets[k]))
                self._sg_sums[k] = self._sg_sums.get(k, 0.0) + value
        self._sg_count += 1
        self.steps += 1

    def _extra_logs(self):
        if not self._sg_count:
            return {}
        return {f"sg_loss_{self.recurrent[k]}": v / self._sg_count for k, v in self._sg_sums.items()}

    def _reset_extra(self):
        self._sg_sums, self._sg_count = {}, 0

    def __repr__(self) -> str:
        return f"RecurrentDNI(scale={self.scale}, hidden={self.hidden})"
