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
- :class:`DenseRuns` is the plain step of a Dense network with SGD or Adam, compiled for a whole
  run of batches (chainrule.kernels.epoch): fit takes it, when the compiled kernels run and nothing
  needs the loop between batches, instead of calling the step batch by batch.
"""

from __future__ import annotations

import math

import numpy as np

from . import kernels
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


class DenseRuns:
    """The plain :class:`Step` of a network of Dense layers (each followed by at most one Identity,
    ReLU, Sigmoid or Tanh), with CrossEntropy on class labels, MSE or SSE, and SGD (momentum,
    dampening, Nesterov and weight decay included), Adam or AdamW, without clipping, run for many
    batches in one compiled call: ``kernels.epoch.dense_runs`` has the equations.

    The same forward, loss, backward and update as the step, batch by batch, into the same arrays
    (parameters, ``layer.grads``, the optimizer's state), without Python between the batches.
    What it leaves out is what fit's loop does between batches, so fit takes it only when that is
    nothing: no metrics, no callback's ``on_batch_end`` (training.py decides).

    Speed (on/off in one process, benchmarks/compiled_runs.py, docs/speed.md): at batch 1 a step
    of the 2-2-2 and 64-32-16-10 sigmoid networks is 1-3 µs of arithmetic under 20-35 µs of Python
    calls: 23x and 12.3x the samples per second; ``fit(epochs=1000)`` on one sample 1.7x (one
    batch per call: fit's own work per epoch stays); the 784-256-128-10 MLP at batch 32 1.2x,
    at 128 and 512 1.06-1.07x.
    """

    #: samples per compiled call: between calls fit's loop checks for a stop request (SIGINT)
    #: and writes a checkpoint that is due; 4,096 samples are a few ms to a few tens of ms
    RUN_SAMPLES = 4096

    #: False: fit takes the step batch by batch, with the other kernels still on (to compare the
    #: two: benchmarks/compiled_runs.py); CHAINRULE_KERNELS=numpy turns every kernel off
    enabled = True

    @classmethod
    def of(cls, step, X, y, bs: int):
        """The compiled runs for this step and data, or None where the step must run batch by batch."""
        from .layers.activations import Identity, ReLU, Sigmoid, Tanh
        from .layers.dense import Dense
        from .losses import MSE, SSE, CrossEntropy
        from .optim import SGD, Adam, AdamW

        if not cls.enabled or type(step) is not Step or step.regularizer is not None or kernels.active() != "numba":
            return None
        net, loss, opt = step.net, step.loss, step.optimizer
        if type(opt) not in (SGD, Adam, AdamW) or opt.clip_norm is not None or opt.clip_value is not None:
            return None
        from .kernels import epoch  # (numba is active: the codes below are the kernel's)

        kind = {CrossEntropy: epoch.CROSS_ENTROPY, MSE: epoch.MSE, SSE: epoch.SSE}.get(type(loss))
        labels = kind == epoch.CROSS_ENTROPY
        if kind is None or labels != (y.dtype.kind in "iu") or y.ndim != (1 if labels else 2):
            return None
        activations = {ReLU: epoch.RELU, Sigmoid: epoch.SIGMOID, Tanh: epoch.TANH}
        dense, codes = [], []
        for layer in net.layers:
            if type(layer) is Dense and not layer.frozen:
                dense.append(layer)
                codes.append(epoch.IDENTITY)
            elif type(layer) in activations and dense and codes[-1] == epoch.IDENTITY:
                codes[-1] = activations[type(layer)]
            elif type(layer) is not Identity:
                return None
        dtype = X.dtype if isinstance(X, np.ndarray) else None
        arrays = [a for layer in dense for d in (layer.params, layer.grads) for a in d.values()]
        if (not dense or dtype not in kernels.FLOATS or X.ndim != 2 or not X.flags.c_contiguous
                or (kind and (y.dtype != dtype or not y.flags.c_contiguous))
                or any(a.dtype != dtype or not a.flags.c_contiguous for a in arrays)):
            return None
        from .kernels import blas

        if blas.gemm(dtype) is None:  # the products go to NumPy's own BLAS, or the step runs
            return None
        return cls(step, dense, codes, kind, X, y, bs)

    def __init__(self, step, dense, codes, kind, X, y, bs) -> None:
        self.step, self.dense, self.kind, self.X, self.y, self.bs = step, dense, kind, X, y, bs
        self.codes = np.array(codes, np.intp)
        n, dtype = len(X), X.dtype
        sizes = [dense[0].n_in] + [layer.n_out for layer in dense]
        self.acts = tuple(np.empty((bs, k), dtype) for k in sizes)
        self.deltas = tuple(np.empty((bs, k), dtype) for k in sizes)
        self.labels = np.empty(bs if kind == 0 else 0, np.intp)
        self.targets = np.empty((bs, sizes[-1]) if kind else (0, 0), dtype)
        self.empty = np.empty(0, dtype)  # the bias of a layer without one
        # the gradient's factor and the value's, for a full batch and for a last, shorter one
        m_last = n - (math.ceil(n / bs) - 1) * bs
        loss, outputs = step.loss, sizes[-1]
        grad, value = [], []
        for m in (bs, m_last):
            if kind == 1:  # MSE: over the batch's elements
                scale = loss._scale(m * outputs)
                grad.append(2 * scale)
                value.append(scale)
            else:
                grad.append(loss._scale(m))
                value.append(loss._scale(m))
        self.scales = np.array(grad, dtype)
        self.value_scales = np.array(value, np.float64)
        self.values = np.empty(math.ceil(n / bs), np.float64)
        self.order = np.arange(n)
        self.constants = (dtype.type(0), dtype.type(1), dtype.type(0.5))  # zero, one, half
        index = {id(layer): i for i, layer in enumerate(step.net.layers)}
        # every parameter in the kernel's order (each layer's weight, then each layer's bias):
        # (layer, name, the optimizer's state key "layer_index.name" as optim.trainable makes it),
        # the key None for a layer without a bias
        self.slots = [(layer, name, f"{index[id(layer)]}.{name}" if name in layer.params else None)
                      for name in ("weight", "bias") for layer in dense]
        self.keys = [key for _, _, key in self.slots if key is not None]
        from .optim import SGD

        self.adam = type(step.optimizer) is not SGD
        self.step_scalars = np.empty(2, dtype)
        self.steps = np.zeros(len(self.slots), np.int64)  # Adam's step counts (SGD: unused)
        self._cache = self._settings = None
        from .kernels import blas

        self.gemm = blas.gemm(dtype)

    def __call__(self, order, start: int, stop: int) -> int:
        """Run batches ``start`` to ``stop`` − 1 of ``order`` (None: the data's own order); their
        losses go to ``self.values``. Returns the first batch not run: ``stop``, or the batch whose
        loss was not finite (nothing of it was updated)."""
        opt, dtype, adam = self.step.optimizer, self.X.dtype, self.adam
        arrays, first = self._arrays(opt)
        if adam:
            b1, b2 = opt.betas
            coupled, decay = opt._weight_decay_terms()
            hyper = (opt.lr, 0, 0, coupled, b1, 1 - b1, b2, 1 - b2, opt.eps, decay)
            flush_v = "v" in opt.flushed
            for i, (_, _, key) in enumerate(self.slots):
                self.steps[i] = opt.state[key]["t"] if key is not None else 0
        else:
            hyper = (opt.lr, opt.momentum, 1 - opt.dampening, opt.weight_decay, 0, 0, 0, 0, 0, 1)
            flush_v = False
        settings = (hyper, flush_v, kernels.flush_subnormals())
        if settings != self._settings:  # (made again when the learning rate or the flush changes)
            self._settings, self._hyper = settings, (
                np.array([*opt._in_dtype(dtype, *hyper), kernels.tiny(dtype), kernels.tiny(dtype, flush_v)], dtype),
                np.array([opt.lr, *(opt.betas if adam else (0.0, 0.0))], np.float64))
        hyper, hyper64 = self._hyper
        done = kernels.compiled("epoch", "dense_runs")(
            self.gemm, self.X, self.y if self.kind == 0 else self.labels, self.y if self.kind else self.targets,
            self.order if order is None else order, start, stop, self.bs, *arrays, self.steps, self.codes,
            self.acts, self.deltas, self.labels, self.targets, self.kind, self.scales, self.value_scales,
            int(adam), hyper, hyper64, self.step_scalars, bool(not adam and opt.nesterov), first,
            *self.constants, self.values)
        opt.iterations += done - start
        if adam:  # each parameter's step count, as optim.Adam keeps it
            for (_, _, key), t in zip(self.slots, self.steps.tolist(), strict=True):
                if key is not None:
                    opt.state[key]["t"] = t
        if first and done == start:  # nothing ran: no buffers made of garbage
            for key in self.keys:
                opt.state[key].pop("momentum", None)
        return done

    def _arrays(self, opt) -> tuple[tuple, bool]:
        """The kernel's arrays, each a tuple over the Dense layers: weights, biases, their
        gradients, and the update's state (SGD: the momentum buffers, or the gradients without
        momentum; Adam: m, and v in the last two), a bias of size 0 for a layer without one; and
        whether SGD's momentum buffers are new (they start as the first gradient). The state is
        made as the optimizer's compiled update makes it; the tuples are made again only when a
        parameter or a state array was replaced (set_weights copies into the arrays)."""
        first, used = False, []
        for layer, name, key in self.slots:
            if key is None:
                continue
            p, state = layer.params[name], opt.state.setdefault(key, {})
            if self.adam:
                opt._start_state(p, state)
                used += [p, state["m"], state["v"]]
            else:
                first = (opt._compiled_state(p, state) and bool(opt.momentum)) or first
                used += [p, state.get("momentum")]
        if self._cache is None or not all(a is b for a, b in zip(self._cache[0], used, strict=True)):
            def per_layer(name, source):
                return tuple(source(layer, name, key) if key is not None else self.empty
                             for layer, slot_name, key in self.slots if slot_name == name)

            def param(layer, name, key):
                return layer.params[name]

            def grad(layer, name, key):
                return layer.grads[name]

            def buf(layer, name, key):
                if self.adam:
                    return opt.state[key]["m"]
                return opt.state[key]["momentum"] if opt.momentum else layer.grads[name]

            def aux(layer, name, key):
                return opt.state[key]["v"] if self.adam else layer.grads[name]

            self._cache = (used, tuple(per_layer(name, source) for source in (param, grad, buf, aux)
                                       for name in ("weight", "bias")))
        return self._cache[1], first
