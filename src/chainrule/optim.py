"""Optimizers and learning-rate schedules.

Optimizers update parameters in place from the gradients that ``backward`` stored:
``opt.step(net)``. The update rules, argument names and defaults are those of torch.optim, so
a trajectory can be compared with PyTorch step by step. With g the gradient, θ a parameter
and λ the weight decay (added to the gradient, g ← g + λθ, as torch.optim does):

SGD       b ← μ·b + (1 − τ)·g  (b = g at the first step);  g ← g + μ·b if nesterov else b;
          θ ← θ − lr·g
Adam      m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;
          θ ← θ − lr/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε)
AdamW     as Adam, with decoupled decay θ ← θ(1 − lr·λ) instead of g ← g + λθ
RMSProp   s ← αs + (1 − α)g²;  d = √s + ε  (centered: d = √(s − ḡ²) + ε, ḡ ← αḡ + (1 − α)g);
          θ ← θ − lr·g/d,  or with momentum b ← μb + g/d;  θ ← θ − lr·b
Adagrad   s ← s + g²;  θ ← θ − lr/(1 + (t − 1)·decay) · g/(√s + ε)

Every optimizer also takes ``clip_norm`` (scale all gradients together so their global 2-norm is
at most clip_norm, as torch.nn.utils.clip_grad_norm_ does) and ``clip_value`` (clip each entry
to [−clip_value, clip_value]), applied in that order after backward and before the update, and
``schedule``: a Schedule or any callable ``epoch -> lr``, applied at the start of each epoch.
None or ``math.inf`` as a clipping threshold clips nothing. Frozen parameters are left alone and
are not counted in the clipping norm.

Each ``_update`` below is the reference NumPy code. When numba is active (chainrule.kernels) it
hands the parameter to ``_update_compiled``, which runs the same equations as one compiled loop
(chainrule/kernels/optim.py). Subnormal state values are flushed to zero unless
``chainrule.kernels.flush_subnormals(False)``: per element by the kernels, and every
``kernels.FLUSH_EVERY`` steps here (the state arrays named in ``flushed``) (docs/speed.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from . import kernels
from ._checks import check_number, check_positive_int
from .errors import ConfigError


# --- learning-rate schedules ---------------------------------------------------------------
class Schedule:
    """A learning rate as a function of the epoch (0-based) and the initial rate."""

    def __call__(self, epoch: int, base_lr: float) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class StepLR(Schedule):
    """lr = base_lr · γ^⌊epoch / step_size⌋  (torch.optim.lr_scheduler.StepLR)."""

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        check_positive_int(step_size, "StepLR step_size")
        check_number(gamma, "StepLR gamma", low=0, low_open=True)
        self.step_size, self.gamma = step_size, gamma

    def __call__(self, epoch, base_lr):
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(Schedule):
    """lr = base_lr · γ^epoch."""

    def __init__(self, gamma: float) -> None:
        check_number(gamma, "ExponentialLR gamma", low=0, low_open=True)
        self.gamma = gamma

    def __call__(self, epoch, base_lr):
        return base_lr * self.gamma**epoch


class CosineLR(Schedule):
    """lr = η_min + ½(base_lr − η_min)(1 + cos(π · epoch / T_max)), held at η_min after T_max."""

    def __init__(self, t_max: int, eta_min: float = 0.0) -> None:
        check_positive_int(t_max, "CosineLR t_max")
        check_number(eta_min, "CosineLR eta_min", low=0)
        self.t_max, self.eta_min = t_max, eta_min

    def __call__(self, epoch, base_lr):
        e = min(epoch, self.t_max)
        return self.eta_min + 0.5 * (base_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.t_max))


def _as_schedule(schedule) -> Callable[[int, float], float] | None:
    if schedule is None or isinstance(schedule, Schedule):
        return schedule
    if callable(schedule):
        return lambda epoch, base_lr: schedule(epoch)
    raise ConfigError(f"schedule must be a Schedule or a callable epoch -> lr, got {schedule!r}")


# --- optimizers ------------------------------------------------------------------------------
def trainable(model) -> list:
    """(key, param, grad) for every parameter an optimizer should update in ``model``.

    ``model`` is a network (anything with ``.layers``) or a single layer. Keys are
    "layer_index.param_name", stable across save and load.
    """
    layers = model.layers if hasattr(model, "layers") else [model]
    keys = _KEYS
    return [
        (keys.get((i, name)) or keys.setdefault((i, name), f"{i}.{name}"), p, g)
        for i, layer in enumerate(layers)
        if layer.params  # skip activations: half the per-step calls of a small network
        for name, p, g in layer.trainable()
    ]


#: "layer_index.param_name" keys, formatted once: an f-string per parameter per step cost ~0.3 µs
#: each, a fifth of a 2-2-2 network's per-sample step outside the arithmetic
_KEYS: dict[tuple[int, str], str] = {}


class Optimizer:
    """Base class: clipping, schedules and per-parameter state; subclasses write ``_update``."""

    @property
    def flushed(self) -> tuple[str, ...]:
        """The state arrays whose subnormal values are flushed to 0 (see chainrule.kernels)."""
        return ()

    def __init__(self, lr: float, clip_norm: float | None = None, clip_value: float | None = None,
                 schedule=None) -> None:
        check_number(lr, f"{type(self).__name__} lr", low=0)
        # inf means "no clipping", the same as None
        check_number(clip_norm, "clip_norm", low=0, low_open=True, allow_none=True, no_limit=True)
        check_number(clip_value, "clip_value", low=0, low_open=True, allow_none=True, no_limit=True)
        self.lr = float(lr)
        self.base_lr = float(lr)
        self.clip_norm, self.clip_value = clip_norm, clip_value
        self.schedule = schedule
        self._schedule = _as_schedule(schedule)
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.iterations = 0
        self.last_grad_norm: float | None = None
        self._lr_arrays: dict = {}

    def set_epoch(self, epoch: int) -> None:
        """Apply the schedule for ``epoch`` (the training loop calls this)."""
        if self._schedule is not None:
            self.lr = float(self._schedule(epoch, self.base_lr))

    def step(self, model) -> None:
        """Update every trainable parameter of ``model`` in place from its stored gradient."""
        params = trainable(model)
        if self.clip_norm is not None:
            _clip_grad_norm([g for _, _, g in params], self.clip_norm)
        if self.clip_value is not None:
            for _, _, g in params:
                np.clip(g, -self.clip_value, self.clip_value, out=g)
        self.iterations += 1
        states, update = self.state, self._update
        for key, p, g in params:
            state = states.get(key)
            if state is None:
                state = states[key] = {}
            update(p, g, state)
        if self.iterations % kernels.FLUSH_EVERY == 0 and self.flushed:
            self._flush_subnormal_state()

    def _flush_subnormal_state(self) -> None:
        """The NumPy path's flush of subnormal state values to 0. It runs with numba active too:
        the arrays the kernels updated hold none (they flush per element), but parameters the
        NumPy code updated there (SGD's small ones, float16) may."""
        if kernels.flush_subnormals():
            kernels.flush_state(state[name] for state in self.state.values() for name in self.flushed
                                if name in state)

    def _lr_of(self, dtype) -> np.ndarray:
        """The learning rate as a 0-d array of ``dtype``, cached until ``lr`` changes.

        NumPy combines an array with a 0-d array about 0.25 µs faster than with a Python
        float (per parameter per step: it counts in per-sample training), and the result is
        the same: a Python float is rounded to the array's dtype either way.
        """
        cache = self._lr_arrays
        if cache.get(None) != self.lr:
            cache.clear()
            cache[None] = self.lr
        arr = cache.get(dtype)
        if arr is None:
            arr = cache[dtype] = np.array(self.lr, dtype=dtype)
        return arr

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict) -> None:
        raise NotImplementedError

    def _in_dtype(self, dtype, *values) -> tuple:
        """``values`` as scalars of ``dtype`` for a kernel (as NumPy rounds a Python float meeting a
        float32 array), cached: converting costs ~0.2 µs each, per parameter per step."""
        cache = self.__dict__.setdefault("_dtype_scalars", {})
        key = (dtype, values)
        scalars = cache.get(key)
        if scalars is None:
            if len(cache) > 64:  # Adam's bias corrections change every step
                cache.clear()
            scalars = cache[key] = tuple(dtype.type(v) for v in values)
        return scalars

    def reset(self) -> None:
        """Forget all state (momenta, moments, step count)."""
        self.state.clear()
        self.iterations = 0

    def get_config(self) -> dict:
        return {"lr": self.base_lr}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


def clip_grad_norm(grads: list[np.ndarray], max_norm: float) -> float:
    """Scale ``grads`` in place so their global 2-norm is at most ``max_norm``; return the norm.

    Like torch.nn.utils.clip_grad_norm_: the factor is max_norm / (norm + 1e-6), applied only
    when it is below 1. ``max_norm=inf`` leaves the gradients as they are.
    """
    check_number(max_norm, "clip_grad_norm max_norm", low=0, low_open=True, no_limit=True)
    return _clip_grad_norm(grads, max_norm)


def _clip_grad_norm(grads: list[np.ndarray], max_norm: float) -> float:
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, **kwargs) -> None:
        super().__init__(lr, **kwargs)
        name = type(self).__name__
        check_number(momentum, f"{name} momentum", low=0)
        check_number(dampening, f"{name} dampening", low=0, high=1)
        check_number(weight_decay, f"{name} weight_decay", low=0)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ConfigError("SGD nesterov=True needs momentum > 0 and dampening = 0")
        self.momentum, self.dampening = momentum, dampening
        self.nesterov, self.weight_decay = nesterov, weight_decay

    @property
    def flushed(self):
        return ("momentum",)

    def _update(self, p, g, state):
        if p.size >= kernels.SGD_MIN_SIZE and kernels.ready(p, g):  # (the size first: tiny nets skip the call)
            return self._update_compiled(p, g, state)
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = state.get("momentum")
            if buf is None:
                buf = state["momentum"] = g.copy()
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g if self.dampening else g
            g = g + self.momentum * buf if self.nesterov else buf
        step = state.get("step")
        if step is None:
            step = state["step"] = np.empty_like(p)
        np.multiply(g, self._lr_of(p.dtype), out=step)
        p -= step

    def _compiled_state(self, p, state) -> bool:
        """Make the state the compiled update keeps for ``p`` (the momentum buffer, filled by the
        first update; "step", unused there but kept finite so a checkpoint holds the same arrays
        either way); True when the buffer is new: the next update starts it as the gradient."""
        first = "momentum" not in state
        if self.momentum and first:
            state["momentum"] = np.empty(p.shape, p.dtype)
        if "step" not in state:
            state["step"] = np.zeros_like(p)
        return first

    def _update_compiled(self, p, g, state):
        first = self._compiled_state(p, state)
        buf = state.get("momentum")
        param, grad = p.ravel(), g.ravel()  # views when contiguous, else copies (written back below)
        momentum = buf.ravel() if self.momentum else grad  # no buffer without momentum
        kernels.compiled("optim", "sgd")(
            param, grad, momentum,
            *self._in_dtype(p.dtype, self.lr, self.momentum, 1 - self.dampening, self.weight_decay),
            bool(self.nesterov), first, kernels.tiny(p.dtype))
        kernels.copy_back((p, param), (buf, momentum))

    def get_config(self):
        return {"lr": self.base_lr, "momentum": self.momentum, "dampening": self.dampening,
                "nesterov": self.nesterov, "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), bias-corrected, as torch.optim.Adam."""

    decoupled = False

    def __init__(self, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, **kwargs) -> None:
        super().__init__(lr, **kwargs)
        name = type(self).__name__
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ConfigError(f"{name} betas must be a pair (beta1, beta2), got {betas!r}") from None
        check_number(b1, f"{name} beta1", low=0, high=1, high_open=True)
        check_number(b2, f"{name} beta2", low=0, high=1, high_open=True)
        check_number(eps, f"{name} eps", low=0)
        check_number(weight_decay, f"{name} weight_decay", low=0)
        self.betas, self.eps, self.weight_decay = (float(b1), float(b2)), eps, weight_decay

    @property
    def flushed(self):
        # with eps = 0 a flushed v could put 0 in the denominator where √v was positive
        return ("m", "v") if self.eps > 0 else ("m",)

    def _update(self, p, g, state):
        if kernels.ready(p, g):
            return self._update_compiled(p, g, state)
        b1, b2 = self.betas
        if self.weight_decay:
            if self.decoupled:
                p *= 1 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        self._start_state(p, state)
        m, v = state["m"], state["v"]
        state["t"] += 1
        t = state["t"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        step_size = self.lr / (1 - b1**t)
        denom = np.sqrt(v)
        denom *= 1 / math.sqrt(1 - b2**t)
        denom += self.eps
        np.divide(m, denom, out=denom)
        denom *= step_size
        p -= denom

    @staticmethod
    def _start_state(p, state) -> None:
        """The first moments m, v (zeros) and the step count t of a parameter not updated yet."""
        if "m" not in state:
            state["m"], state["v"], state["t"] = np.zeros_like(p), np.zeros_like(p), 0

    def _weight_decay_terms(self) -> tuple[float, float]:
        """(λ added to the gradient, the factor θ is multiplied by first): (λ, 1) coupled, as Adam;
        (0, 1 − lr·λ) decoupled, as AdamW."""
        return (0, 1 - self.lr * self.weight_decay) if self.decoupled else (self.weight_decay, 1)

    def _update_compiled(self, p, g, state):
        b1, b2 = self.betas
        self._start_state(p, state)
        state["t"] += 1
        t = state["t"]
        coupled, decay = self._weight_decay_terms()
        param, m, v = p.ravel(), state["m"].ravel(), state["v"].ravel()
        kernels.compiled("optim", "adam")(
            param, g.ravel(), m, v,
            *self._in_dtype(p.dtype, self.lr / (1 - b1**t), b1, 1 - b1, b2, 1 - b2,
                            1 / math.sqrt(1 - b2**t), self.eps, coupled, decay),
            kernels.tiny(p.dtype), kernels.tiny(p.dtype, "v" in self.flushed))
        kernels.copy_back((p, param), (state["m"], m), (state["v"], v))

    def get_config(self):
        return {"lr": self.base_lr, "betas": self.betas, "eps": self.eps,
                "weight_decay": self.weight_decay}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW."""

    decoupled = True

    def __init__(self, lr: float = 0.001, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, **kwargs) -> None:
        super().__init__(lr, betas, eps, weight_decay, **kwargs)


class RMSProp(Optimizer):
    """RMSProp as torch.optim.RMSprop (ε added after the square root)."""

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 **kwargs) -> None:
        super().__init__(lr, **kwargs)
        name = type(self).__name__
        check_number(alpha, f"{name} alpha", low=0, high=1)
        for value, arg in ((eps, "eps"), (weight_decay, "weight_decay"), (momentum, "momentum")):
            check_number(value, f"{name} {arg}", low=0)
        self.alpha, self.eps, self.weight_decay = alpha, eps, weight_decay
        self.momentum, self.centered = momentum, centered

    @property
    def flushed(self):
        # square_avg stays as it is with eps = 0 (a zero denominator) and when centered, where
        # s − ḡ² would turn negative (√ of it NaN) if s were flushed and ḡ² were not
        return ("grad_avg", "momentum") + (("square_avg",) if self.eps > 0 and not self.centered else ())

    def _update(self, p, g, state):
        if kernels.ready(p, g):
            return self._update_compiled(p, g, state)
        if self.weight_decay:
            g = g + self.weight_decay * p
        if "square_avg" not in state:
            state["square_avg"] = np.zeros_like(p)
        sq = state["square_avg"]
        sq *= self.alpha
        sq += (1 - self.alpha) * (g * g)
        if self.centered:
            ga = state.setdefault("grad_avg", np.zeros_like(p))
            ga *= self.alpha
            ga += (1 - self.alpha) * g
            avg = np.sqrt(sq - ga * ga)
        else:
            avg = np.sqrt(sq)
        avg += self.eps
        if self.momentum:
            buf = state.setdefault("momentum", np.zeros_like(p))
            buf *= self.momentum
            buf += g / avg
            p -= self.lr * buf
        else:
            p -= self.lr * (g / avg)

    def _update_compiled(self, p, g, state):
        if "square_avg" not in state:
            state["square_avg"] = np.zeros_like(p)
        if self.centered and "grad_avg" not in state:
            state["grad_avg"] = np.zeros_like(p)
        if self.momentum and "momentum" not in state:
            state["momentum"] = np.zeros_like(p)
        param, square_avg = p.ravel(), state["square_avg"].ravel()
        grad_avg = state["grad_avg"].ravel() if self.centered else square_avg  # unused when not centered
        buf = state["momentum"].ravel() if self.momentum else square_avg  # unused without momentum
        kernels.compiled("optim", "rmsprop")(
            param, g.ravel(), square_avg, grad_avg, buf,
            *self._in_dtype(p.dtype, self.lr, self.alpha, 1 - self.alpha, self.eps, self.weight_decay,
                            self.momentum),
            bool(self.centered), kernels.tiny(p.dtype), kernels.tiny(p.dtype, "square_avg" in self.flushed))
        kernels.copy_back((p, param), (state["square_avg"], square_avg),
                          (state["grad_avg"] if self.centered else None, grad_avg),
                          (state["momentum"] if self.momentum else None, buf))

    def get_config(self):
        return {"lr": self.base_lr, "alpha": self.alpha, "eps": self.eps,
                "weight_decay": self.weight_decay, "momentum": self.momentum,
                "centered": self.centered}


class Adagrad(Optimizer):
    """Adagrad as torch.optim.Adagrad."""

    def __init__(self, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, **kwargs) -> None:
        super().__init__(lr, **kwargs)
        for value, arg in ((lr_decay, "lr_decay"), (weight_decay, "weight_decay"),
                           (initial_accumulator_value, "initial_accumulator_value"), (eps, "eps")):
            check_number(value, f"{type(self).__name__} {arg}", low=0)
        self.lr_decay, self.weight_decay = lr_decay, weight_decay
        self.initial_accumulator_value, self.eps = initial_accumulator_value, eps

    @property
    def flushed(self):
        return ("sum",) if self.eps > 0 else ()  # with eps = 0 a flushed sum is a zero denominator

    def _update(self, p, g, state):
        if kernels.ready(p, g):
            return self._update_compiled(p, g, state)
        if self.weight_decay:
            g = g + self.weight_decay * p
        if "sum" not in state:
            state["sum"] = np.full_like(p, self.initial_accumulator_value)
            state["t"] = 0
        state["t"] += 1
        clr = self.lr / (1 + (state["t"] - 1) * self.lr_decay)
        s = state["sum"]
        s += g * g
        p -= clr * g / (np.sqrt(s) + self.eps)

    def _update_compiled(self, p, g, state):
        if "sum" not in state:
            state["sum"] = np.full_like(p, self.initial_accumulator_value)
            state["t"] = 0
        state["t"] += 1
        clr = self.lr / (1 + (state["t"] - 1) * self.lr_decay)
        param, total = p.ravel(), state["sum"].ravel()
        kernels.compiled("optim", "adagrad")(
            param, g.ravel(), total, *self._in_dtype(p.dtype, clr, self.eps, self.weight_decay),
            kernels.tiny(p.dtype, "sum" in self.flushed))
        kernels.copy_back((p, param), (state["sum"], total))

    def get_config(self):
        return {"lr": self.base_lr, "lr_decay": self.lr_decay, "weight_decay": self.weight_decay,
                "initial_accumulator_value": self.initial_accumulator_value, "eps": self.eps}


_NAMES = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSProp, "adagrad": Adagrad}


def get_optimizer(optimizer, lr: float | None = None) -> Optimizer:
    """An Optimizer from an instance or a name ("sgd", "adam", "adamw", "rmsprop", "adagrad")."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in _NAMES:
        cls = _NAMES[optimizer.lower()]
        return cls() if lr is None else cls(lr=lr)
    raise ConfigError(f"optimizer must be an Optimizer or one of {sorted(_NAMES)}, got {optimizer!r}")
