"""One training step, in one place: forward, loss, backward, update.

Every door into training (``fit``, the scikit-learn estimators, the playground, data-parallel
MPI training, the credit-assignment rules, truncated BPTT, checkpoint and resume) takes its
updates through a step built here::

    step = make_step(net, loss, optimizer)          # backpropagation, the default
    output, loss, target = step(xb, yb)             # one update on the batch (xb, yb): what the
                                                    # loop needs for metrics and logs

A step is four moves, each a method a variant may replace::

    output, value, delta = step.forward(xb, yb)     # the forward pass and the loss, dL/doutput
    (a non-finite loss stops here: NonFiniteLoss, and nothing is updated)
    step.backward(yb, delta)                        # fills every layer.grads (+ the regularizer)
    step.update()                                   # the optimizer (or the rule) changes the parameters

- :class:`Step` is backpropagation; :class:`TruncatedBPTT` runs the forward and backward
  window by window (chainrule.sequence); :class:`RuleStep` hands backward and update to a
  credit-assignment rule (chainrule.credit).
- Data-parallel training wraps a step (chainrule.distributed.DataParallel.wrap): its rank's
  rows of the batch, an Allreduce of the gradients between ``backward`` and ``update``.
- A regularizer (chainrule.regularizers: ``L1``, ``L2``) adds its penalty to the loss and its
  gradient to the weights' after backward, whichever step it rides on.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ConfigError


class NonFiniteLoss(Exception):
    """The loss of a step was NaN or inf; the parameters were not updated."""

    def __init__(self, value: float, where: str = "") -> None:
        super().__init__(f"the loss became {value}{where}")
        self.value, self.where = value, where


class Step:
    """Backpropagation: the plain step.

    forward:  output = net(xb) (layers cache what backward needs);  L, delta = loss(output, yb)
    backward: every layer.grads ← dL/dθ from delta (the first layer skips dL/dx)
    update:   optimizer.step(net)

    Parameters
    ----------
    net : Sequential
    loss : Loss
    optimizer : Optimizer
    regularizer : Regularizer, optional
        Its penalty is added to the loss value and its gradient to the weights' gradients
        after each backward pass.
    """

    def __init__(self, net, loss, optimizer, regularizer=None) -> None:
        self.net, self.loss, self.optimizer, self.regularizer = net, loss, optimizer, regularizer

    def __call__(self, xb: np.ndarray, yb: np.ndarray, weight: np.ndarray | None = None):
        """One update on (xb, yb): (output, loss, the targets it was scored on). With ``weight`` (n,)
        the loss is the weighted mean over samples and the regularizer's batch size is Σ weight (a
        batch whose weights are all 0 changes nothing). (A plain tuple: the loop runs it per batch.)"""
        if weight is None:
            output, value, delta = self.forward(xb, yb)
        else:
            output = self.net._forward_train(xb)
            value, delta = self.loss._weighted_value_and_grad(output, yb, weight)
            if delta is None:
                return output, value, yb
        if not math.isfinite(value):
            raise NonFiniteLoss(value)
        self.backward(yb, delta)
        if self.regularizer is not None:
            value += self.regularize(len(xb) if weight is None else float(weight.sum()))
        self.update()
        return output, value, yb

    def regularize(self, n: int) -> float:
        """Add the regularizer's gradient for a batch of ``n`` samples; return its penalty (0 without)."""
        if self.regularizer is None:
            return 0.0
        return self.regularizer.add_gradient(self.net, n)

    def forward(self, xb, yb):
        output = self.net._forward_train(xb)
        value, delta = self.loss._value_and_grad(output, yb)
        return output, value, delta

    def backward(self, yb, delta) -> None:
        self.net._backward_train(delta)

    def update(self) -> None:
        self.optimizer.step(self.net)

    def epoch_logs(self) -> dict[str, float]:
        """What the step adds to an epoch's logs (a rule's alignment angles, say)."""
        return {}


class TruncatedBPTT(Step):
    """Truncated backpropagation through time: forward and backward in windows of ``bptt_steps``,
    the windows' gradients summed into one update (see chainrule.sequence)."""

    def __init__(self, net, loss, optimizer, bptt_steps: int, regularizer=None) -> None:
        super().__init__(net, loss, optimizer, regularizer)
        self.bptt_steps = bptt_steps

    def forward(self, xb, yb):
        from .sequence import truncated_bptt_step

        output, value = truncated_bptt_step(self.net, self.loss, xb, yb, self.bptt_steps)
        return output, value, None

    def backward(self, yb, delta) -> None:  # done window by window in forward
        pass


class RuleStep(Step):
    """A credit-assignment rule's step: the rule's forward pass, its estimate of dL/dθ in place of
    backprop's, and its update (per-block optimizers, synthetic-gradient modules, ...)."""

    def __init__(self, net, loss, optimizer, rule, bptt_steps: int | None = None, regularizer=None) -> None:
        super().__init__(net, loss, optimizer, regularizer)
        self.rule, self.bptt_steps = rule, bptt_steps
        rule.begin(net, loss, optimizer)

    def forward(self, xb, yb):
        if self.bptt_steps is not None:  # the rule's own windows (credit.RecurrentDNI)
            output, value = self.rule.bptt_step(self.net, xb, yb, self.bptt_steps)
            return output, value, None
        output = self.rule.forward(self.net, xb)
        value, delta = self.loss._value_and_grad(output, yb)
        return output, value, delta

    def backward(self, yb, delta) -> None:
        self.rule.assign(self.net, yb, delta)

    def update(self) -> None:
        self.rule.apply(self.net)

    def epoch_logs(self) -> dict[str, float]:
        return self.rule.epoch_logs()


def make_step(net, loss, optimizer, *, rule=None, bptt_steps: int | None = None, regularizer=None) -> Step:
    """The step fit takes: backprop, truncated BPTT, or a rule's (checked: a rule must be one)."""
    if rule is not None:
        if not callable(getattr(rule, "assign", None)) or not callable(getattr(rule, "apply", None)):
            raise ConfigError(f"rule must be a credit-assignment rule (chainrule.credit), got {rule!r}")
        return RuleStep(net, loss, optimizer, rule, bptt_steps, regularizer)
    if bptt_steps is not None:
        return TruncatedBPTT(net, loss, optimizer, bptt_steps, regularizer)
    return Step(net, loss, optimizer, regularizer)
