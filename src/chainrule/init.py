"""Weight initializers.

An initializer is called as ``init(shape, dtype=np.float32, rng=None) -> array``. For a weight of
shape (n_in, n_out), fan_in = n_in and fan_out = n_out. Each initializer takes ``seed`` (an int or
a ``numpy.random.Generator``); when it has none, the caller's ``rng`` is used, and when neither
is given the draw is unseeded.

=================  ===========================================  ==========================
name               distribution                                 scale
=================  ===========================================  ==========================
XavierUniform      U(-a, a)                                     a = gain·√(6/(fan_in+fan_out))
XavierNormal       N(0, σ²)                                     σ = gain·√(2/(fan_in+fan_out))
HeUniform          U(-a, a)                                     a = √(6/fan_in)
HeNormal           N(0, σ²)                                     σ = √(2/fan_in)
Normal(std, mean)  N(mean, std²)
Uniform(low, high) U(low, high)
Zeros, Constant    every entry the same value
=================  ===========================================  ==========================
"""

from __future__ import annotations

import numpy as np

from ._checks import as_rng, check_number
from .errors import ConfigError, ShapeError


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[0] * receptive, shape[1] * receptive


class Initializer:
    """Base class: holds the seed and turns it into a Generator."""

    def __init__(self, seed=None) -> None:
        self.seed = seed

    def _rng(self, rng) -> np.random.Generator:
        if self.seed is not None:
            return as_rng(self.seed)
        return as_rng(rng)

    def __call__(self, shape, dtype=np.float32, rng=None) -> np.ndarray:
        return self.sample(tuple(shape), self._rng(rng)).astype(dtype, copy=False)

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if v is not None)
        return f"{type(self).__name__}({args})"


class XavierUniform(Initializer):
    """Glorot & Bengio (2010), uniform: U(-a, a), a = gain·√(6/(fan_in+fan_out))."""

    def __init__(self, gain: float = 1.0, seed=None) -> None:
        super().__init__(seed)
        check_number(gain, f"{type(self).__name__} gain", low=0)
        self.gain = gain

    def sample(self, shape, rng):
        fan_in, fan_out = _fans(shape)
        bound = self.gain * np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, size=shape)


class XavierNormal(Initializer):
    """Glorot & Bengio (2010), normal: N(0, σ²), σ = gain·√(2/(fan_in+fan_out))."""

    def __init__(self, gain: float = 1.0, seed=None) -> None:
        super().__init__(seed)
        check_number(gain, f"{type(self).__name__} gain", low=0)
        self.gain = gain

    def sample(self, shape, rng):
        fan_in, fan_out = _fans(shape)
        return rng.normal(0.0, self.gain * np.sqrt(2.0 / (fan_in + fan_out)), size=shape)


class HeUniform(Initializer):
    """He et al. (2015), uniform: U(-a, a), a = √(6/fan_in); suits ReLU layers."""

    def sample(self, shape, rng):
        fan_in, _ = _fans(shape)
        bound = np.sqrt(6.0 / fan_in)
        return rng.uniform(-bound, bound, size=shape)


class HeNormal(Initializer):
    """He et al. (2015), normal: N(0, σ²), σ = √(2/fan_in); suits ReLU layers."""

    def sample(self, shape, rng):
        fan_in, _ = _fans(shape)
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


class Normal(Initializer):
    """N(mean, std²)."""

    def __init__(self, std: float = 0.01, mean: float = 0.0, seed=None) -> None:
        super().__init__(seed)
        check_number(std, "Normal std", low=0)
        check_number(mean, "Normal mean")
        self.std, self.mean = std, mean

    def sample(self, shape, rng):
        return rng.normal(self.mean, self.std, size=shape)


class Uniform(Initializer):
    """U(low, high)."""

    def __init__(self, low: float = -0.05, high: float = 0.05, seed=None) -> None:
        super().__init__(seed)
        check_number(low, "Uniform low")
        check_number(high, "Uniform high")
        if not low <= high:
            raise ConfigError(f"Uniform needs low <= high, got low={low!r}, high={high!r}")
        self.low, self.high = low, high

    def sample(self, shape, rng):
        return rng.uniform(self.low, self.high, size=shape)


class Constant(Initializer):
    """Every entry equal to ``value``."""

    def __init__(self, value: float = 0.0, seed=None) -> None:
        super().__init__(seed)
        check_number(value, "Constant value")
        self.value = value

    def sample(self, shape, rng):
        return np.full(shape, self.value, dtype=np.float64)


class Zeros(Constant):
    """Every entry 0."""

    def __init__(self, seed=None) -> None:
        super().__init__(0.0, seed)


class Array(Initializer):
    """An explicit array, checked against the shape asked for."""

    def __init__(self, values) -> None:
        super().__init__(None)
        self.values = np.asarray(values)

    def sample(self, shape, rng):
        if self.values.shape != shape:
            raise ShapeError(f"explicit initial values must have shape {shape}, got {self.values.shape}")
        return self.values.copy()


_NAMES = {
    "xavier": XavierUniform, "glorot": XavierUniform,
    "xavier_uniform": XavierUniform, "glorot_uniform": XavierUniform,
    "xavier_normal": XavierNormal, "glorot_normal": XavierNormal,
    "he": HeUniform, "he_uniform": HeUniform, "kaiming_uniform": HeUniform,
    "he_normal": HeNormal, "kaiming_normal": HeNormal,
    "normal": Normal, "uniform": Uniform, "zeros": Zeros, "constant": Constant,
}


def get_initializer(init) -> Initializer:
    """An Initializer from a name, an Initializer, a callable or an explicit array."""
    if isinstance(init, Initializer):
        return init
    if isinstance(init, str):
        key = init.lower()
        if key not in _NAMES:
            raise ConfigError(f"unknown initializer {init!r}; choose one of {sorted(_NAMES)}")
        return _NAMES[key]()
    if isinstance(init, (np.ndarray, list, tuple)):
        return Array(init)
    if callable(init):
        return _Callable(init)
    raise ConfigError(f"init must be a name, an Initializer, a callable or an array, got {init!r}")


class _Callable(Initializer):
    def __init__(self, fn) -> None:
        super().__init__(None)
        self.fn = fn

    def sample(self, shape, rng):
        return np.asarray(self.fn(shape, rng=rng))
