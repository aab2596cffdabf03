"""Element-wise activations (and Softmax) as layers.

Each caches what its derivative needs. With a = f(z) and grad = dL/da, backward returns
dL/dz = grad ∘ f'(z), shapes (n, ...) -> (n, ...). Every forward here is numerically stable:
inputs of ±1e4 give no overflow warning and no NaN.

With numba active (chainrule.kernels), the arithmetic of a pass runs as one compiled loop
(kernels/activations.py) instead of NumPy's two to nine passes; tanh, exp, expm1 and log1p stay
NumPy's, whose SIMD loops numba's per-element calls cannot match.
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from .._checks import check_number
from ..errors import ConfigError
from .base import Layer

# 0-d constants: NumPy combines an array with a 0-d array ~0.25 µs faster than with a Python
# float, which counts in per-sample training. 0.5 and 1 are exact in every float dtype and a
# 0-d float32 never raises a float64 result's precision, so the results are the same.
_HALF = np.array(0.5, dtype=np.float32)
_ONE = np.array(1.0, dtype=np.float32)


def _compiled(name: str, a: np.ndarray, b: np.ndarray, min_size: int = 0):
    """The kernel ``activations.name`` when the compiled kernels run for ``a`` and ``b`` (both
    float32 or both float64, the same shape: kernels.ready) and ``a`` has at least ``min_size``
    elements, else None (the NumPy code runs)."""
    if kernels.ready(a, b) and a.shape == b.shape and a.size >= min_size:
        return kernels.compiled("activations", name)
    return None


def _compiled_backward(name: str, a: np.ndarray, grad: np.ndarray, constant) -> np.ndarray | None:
    """dL/dz from the kernel ``name`` (grad, the layer's output a, one constant of a's dtype), or
    None when the NumPy code runs (see _compiled): the backward of Sigmoid, Tanh and ReLU."""
    kernel = _compiled(name, a, grad, kernels.ACTIVATION_MIN_SIZE)
    if kernel is None:
        return None
    delta = np.empty(a.shape, a.dtype)
    kernel(grad.ravel(), a.ravel(), a.dtype.type(constant), delta.reshape(-1))
    return delta


class Identity(Layer):
    """a = z;  dL/dz = dL/da."""

    names = ("identity", "linear")

    def forward(self, x, training=False):
        return x

    def backward(self, grad):
        return grad


class Sigmoid(Layer):
    """a = σ(z) = 1 / (1 + e^(−z)), computed as ½·tanh(z/2) + ½ (no overflow);
    dL/dz = dL/da ∘ a(1 − a)."""

    names = ("sigmoid", "logistic")
    output_range = (0.0, 1.0)

    def forward(self, x, training=False):
        out = np.tanh(x * _HALF)
        out *= _HALF
        out += _HALF
        self._output = out
        return out

    def backward(self, grad):
        a = self._output
        delta = _compiled_backward("sigmoid_backward", a, grad, 1)
        if delta is not None:
            return delta
        return grad * a * (_ONE - a)


class Tanh(Layer):
    """a = tanh(z);  dL/dz = dL/da ∘ (1 − a²)."""

    names = ("tanh",)
    output_range = (-1.0, 1.0)

    def forward(self, x, training=False):
        self._output = np.tanh(x)
        return self._output

    def backward(self, grad):
        a = self._output
        delta = _compiled_backward("tanh_backward", a, grad, 1)
        if delta is not None:
            return delta
        return grad * (_ONE - a * a)


class ReLU(Layer):
    """a = max(z, 0);  dL/dz = dL/da ∘ [z > 0]  (the derivative at 0 is taken as 0)."""

    names = ("relu",)
    default_init = "he_uniform"

    _zero = None  # a row of zeros, cached per feature count and dtype

    def forward(self, x, training=False):
        kernel = _compiled("relu_forward", x, x, kernels.ACTIVATION_MIN_SIZE)
        if kernel is not None:
            out = np.empty(x.shape, x.dtype)
            kernel(x.ravel(), x.dtype.type(0), out.reshape(-1))
            self._output = out
            return out
        zero = self._zero
        if zero is None or zero.shape != x.shape[-1:] or zero.dtype != x.dtype:
            zero = self._zero = np.zeros(x.shape[-1:], x.dtype)
        # max against a zero row, not the scalar 0: NumPy's array-array loop is ~2.5x faster
        self._output = np.maximum(x, zero)
        return self._output

    def backward(self, grad):
        a = self._output
        delta = _compiled_backward("relu_backward", a, grad, 0)
        if delta is not None:
            return delta
        return grad * (a > 0)


class LeakyReLU(Layer):
    """a = z if z > 0 else α·z;  dL/dz = dL/da ∘ (1 if z > 0 else α)."""

    names = ("leaky_relu",)
    default_init = "he_uniform"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        check_number(alpha, "LeakyReLU alpha", low=0)
        self.alpha = float(alpha)

    def forward(self, x, training=False):
        kernel = _compiled("leaky_relu_forward", x, x)
        if kernel is not None:
            out, self._positive = np.empty(x.shape, x.dtype), np.empty(x.shape, np.bool_)
            kernel(x.ravel(), x.dtype.type(self.alpha), self._positive.reshape(-1), out.reshape(-1))
            return out
        self._positive = x > 0
        return np.where(self._positive, x, x * self.alpha)

    def backward(self, grad):
        kernel = _compiled("leaky_relu_backward", grad, grad)
        if kernel is not None and grad.shape == self._positive.shape:
            delta = np.empty(grad.shape, grad.dtype)
            kernel(grad.ravel(), self._positive.ravel(), grad.dtype.type(self.alpha), delta.reshape(-1))
            return delta
        return np.where(self._positive, grad, grad * self.alpha)

    def get_config(self):
        return {"alpha": self.alpha}


class ELU(Layer):
    """a = z if z > 0 else α(e^z − 1);  dL/dz = dL/da ∘ (1 if z > 0 else a + α)."""

    names = ("elu",)
    default_init = "he_uniform"

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        check_number(alpha, "ELU alpha", low=0)
        self.alpha = float(alpha)

    def forward(self, x, training=False):
        self._positive = x > 0
        # expm1 of min(z, 0): the branch not taken never overflows.
        self._output = np.where(self._positive, x, self.alpha * np.expm1(np.minimum(x, 0)))
        return self._output

    def backward(self, grad):
        a = self._output
        kernel = _compiled("elu_backward", a, grad)
        if kernel is not None:
            delta = np.empty(a.shape, a.dtype)
            kernel(grad.ravel(), self._positive.ravel(), a.ravel(), a.dtype.type(self.alpha), delta.reshape(-1))
            return delta
        return np.where(self._positive, grad, grad * (self._output + self.alpha))

    def get_config(self):
        return {"alpha": self.alpha}


class Softplus(Layer):
    """a = log(1 + e^z) = max(z, 0) + log1p(e^(−|z|));  dL/dz = dL/da ∘ σ(z)."""

    names = ("softplus",)

    def forward(self, x, training=False):
        self._input = x
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    def backward(self, grad):
        sig = np.tanh(self._input * 0.5)
        sig *= 0.5
        sig += 0.5
        return grad * sig


class Softmax(Layer):
    """a_k = e^(z_k − m) / Σ_j e^(z_j − m) over the last axis, m = max_j z_j (no overflow).

    backward: dL/dz = a ∘ (dL/da − Σ_k a_k · dL/da_k), the Jacobian-vector product of
    diag(a) − a aᵀ. Pair it with MSE or SSE; for cross-entropy use the fused
    ``CrossEntropy`` loss on the logits instead (its delta is simply p − y).
    """

    names = ("softmax",)
    output_range = (0.0, 1.0)

    def forward(self, x, training=False):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        e /= e.sum(axis=-1, keepdims=True)
        self._output = e
        return e

    def backward(self, grad):
        a = self._output
        return a * (grad - (grad * a).sum(axis=-1, keepdims=True))


_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))
_GELU_CUBIC = 0.044715


class GELU(Layer):
    """Gaussian error linear unit, in its tanh form (Hendrycks & Gimpel, 2016):

        a = ½·z·(1 + t),   t = tanh(u),   u = √(2/π)·(z + 0.044715·z³)
        dL/dz = dL/da ∘ (½·(1 + t) + ½·z·(1 − t²)·√(2/π)·(1 + 3·0.044715·z²))

    torch.nn.GELU(approximate="tanh"). The exact form z·Φ(z) (``approximate="none"``) needs
    erf over an array, which NumPy lacks, so it is refused with a ConfigError rather than
    computed slowly: math.erf element by element took 78 ms per million float64 values, and a
    vectorized piecewise polynomial (24 intervals, degree 11, within 2e-15 of math.erf) no less
    (92 ms), against 3.7 ms for np.tanh (one thread).

    Parameters
    ----------
    approximate : {"tanh"}
        The form of the curve; only "tanh".
    """

    names = ("gelu",)
    default_init = "he_uniform"

    def __init__(self, approximate: str = "tanh") -> None:
        super().__init__()
        if approximate != "tanh":
            raise ConfigError(
                f"GELU approximate must be 'tanh', got {approximate!r}"
                + (" (the exact erf form needs a vectorized erf, which NumPy does not have)"
                   if approximate == "none" else ""))
        self.approximate = approximate

    def forward(self, x, training=False):
        inner = _compiled("gelu_inner", x, x)
        if inner is not None:  # two kernel passes around NumPy's tanh instead of eight passes
            dt, flat = x.dtype.type, x.ravel()
            # training: h (kept for backward) is the same array every step (Layer._scratch)
            h = self._work(training, "half", x.shape, x.dtype)
            out = np.empty(x.shape, x.dtype)
            inner(flat, dt(_GELU_CUBIC), dt(1), dt(_SQRT_2_OVER_PI), h.reshape(-1))
            np.tanh(h, out=h)
            kernels.compiled("activations", "gelu_outer")(flat, dt(0.5), h.reshape(-1), out.reshape(-1))
            self._input, self._half = x, h
            return out
        u = x * x
        u *= _GELU_CUBIC
        u += _ONE
        u *= x
        u *= _SQRT_2_OVER_PI
        h = np.tanh(u, out=u)
        h *= _HALF
        h += _HALF                                     # h = ½(1 + t), a = z·h
        self._input, self._half = x, h
        return x * h

    def backward(self, grad):
        x, h = self._input, self._half
        kernel = _compiled("gelu_backward", h, grad)
        if kernel is not None:
            dt, delta = h.dtype.type, np.empty(h.shape, h.dtype)
            kernel(grad.ravel(), x.ravel(), h.ravel(), dt(6 * _GELU_CUBIC * _SQRT_2_OVER_PI),
                   dt(2 * _SQRT_2_OVER_PI), dt(1), delta.reshape(-1))
            return delta
        # with 1 − t² = 4h(1 − h) the slope is h·(1 + 2√(2/π)·z(1 + 3·0.044715·z²)·(1 − h)):
        # 9 passes over the array instead of 13 (forward + backward of (32, 64, 512) float32,
        # one thread: 4.1 ms against 7.2 ms written from t, the best of 30)
        a = x * x
        a *= 6 * _GELU_CUBIC * _SQRT_2_OVER_PI
        a += 2 * _SQRT_2_OVER_PI
        a *= x
        a *= _ONE - h
        a += _ONE
        a *= h
        a *= grad
        return a

    def get_config(self):
        return {"approximate": self.approximate}
