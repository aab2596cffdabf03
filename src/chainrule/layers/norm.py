"""Normalization layers: batch normalization and layer normalization."""

from __future__ import annotations

import numpy as np

from .._checks import check_number, check_positive_int
from ..errors import ShapeError
from .base import Layer


class BatchNorm(Layer):
    """Batch normalization (Ioffe & Szegedy, 2015), per feature or per channel.

    Input (n, F) is normalized per feature over the samples; input (n, C, H, W) per channel
    over the samples and pixels. With N the number of values per feature/channel (n or n·H·W)
    and every sum Σ over those N values:

    forward (training):    μ = Σx/N,  σ² = Σ(x − μ)²/N (biased),  x̂ = (x − μ)/√(σ² + ε),
                           y = γ·x̂ + β
                           running_mean ← (1 − m)·running_mean + m·μ
                           running_var  ← (1 − m)·running_var  + m·σ²·N/(N − 1) (unbiased)
    forward (evaluation):  the same with μ, σ² replaced by running_mean, running_var
    backward:              dL/dγ = Σ dL/dy·x̂,  dL/dβ = Σ dL/dy
                           training, with g = dL/dx̂ = γ·dL/dy (x̂ and 1/σ from the forward):
                               dL/dx = (1/σ)/N · (N·g − Σg − x̂·Σ(g·x̂))
                           evaluation (μ, σ fixed): dL/dx = γ/σ · dL/dy

    Since Σg = γ·dL/dβ and Σ(g·x̂) = γ·dL/dγ, the training backward reuses the two parameter
    gradients: dL/dx = (γ/σ)·(dL/dy − (dL/dβ + x̂·dL/dγ)/N), per-channel factors times full arrays.

    This is torch.nn.BatchNorm1d (on (n, F)) and BatchNorm2d (on (n, C, H, W)) with
    ``affine=True, track_running_stats=True``. Training needs N > 1 (one value per channel
    has no variance). The running statistics are buffers (``self.buffers``): saved with the
    model and in checkpoints, never touched by optimizers.

    Parameters
    ----------
    num_features : int
        F for (n, F) input, C for (n, C, H, W) input. ``weight`` γ (F,) starts at 1 and
        ``bias`` β (F,) at 0; ``running_mean`` starts at 0 and ``running_var`` at 1.
    momentum : float
        m in the running-statistics update, 0 <= m <= 1 (torch's default 0.1).
    eps : float
        ε > 0 added to the variance.
    """

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        check_positive_int(num_features, "BatchNorm num_features")
        check_number(momentum, "BatchNorm momentum", low=0, high=1)
        check_number(eps, "BatchNorm eps", low=0, low_open=True)
        self.num_features, self.momentum, self.eps = int(num_features), float(momentum), float(eps)
        self.dtype = np.dtype(np.float32)
        n = self.num_features
        self.params = {"weight": np.ones(n, self.dtype), "bias": np.zeros(n, self.dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.buffers = {"running_mean": np.zeros(n, self.dtype), "running_var": np.ones(n, self.dtype)}
        self._input: np.ndarray | None = None    # evaluation: the input (dL/dγ needs x̂)
        self._x_hat: np.ndarray | None = None    # training: x̂
        self._inv_std: np.ndarray | None = None  # 1/σ, shaped to broadcast against x
        self._training = False

    def _axes(self, x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The reduced axes and the shape that broadcasts a per-channel vector against x."""
        if x.ndim == 2:
            return (0,), (1, self.num_features)
        return (0, 2, 3), (1, self.num_features, 1, 1)

    def check_input(self, x: np.ndarray) -> None:
        """Raise ShapeError unless ``x`` is (n, num_features) or (n, num_features, H, W)."""
        if x.ndim not in (2, 4):
            raise ShapeError(
                f"{self!r} expects input of shape (n, {self.num_features}) or (n, {self.num_features}, H, W),"
                f" got a {x.ndim}-D array of shape {x.shape}"
                + ("; for sequences (n, time, features) use LayerNorm" if x.ndim == 3 else "")
            )
        if x.shape[1] != self.num_features:
            raise ShapeError(
                f"{self!r} expects {self.num_features} {'features' if x.ndim == 2 else 'channels'}"
                f" on axis 1, got array of shape {x.shape}"
            )

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            self.check_input(x)
        axes, shape = self._axes(x)
        gamma, beta = self.params["weight"].reshape(shape), self.params["bias"].reshape(shape)
        self._training = training
        if not training:
            inv_std = 1.0 / np.sqrt(self.buffers["running_var"] + self.eps)
            self._input, self._x_hat = x, None
            self._inv_std = inv_std.reshape(shape)
            # y = x·(γ/σ) + (β − μ·γ/σ): two passes over x instead of four
            scale = (self.params["weight"] * inv_std).reshape(shape)
            y = x * scale
            y += beta - self.buffers["running_mean"].reshape(shape) * scale
            return y
        count = x.size // self.num_features
        if count == 1:
            raise ShapeError(f"{self!r}: expected more than 1 value per channel when training, got input"
                             f" of shape {x.shape}; train with batches of 2 or more samples")
        mean = np.add.reduce(x, axis=axes, keepdims=True)
        mean *= 1.0 / count
        x_hat = x - mean
        var = np.add.reduce(x_hat * x_hat, axis=axes, keepdims=True)  # two-pass variance: no cancellation
        var *= 1.0 / count
        inv_std = 1.0 / np.sqrt(var + self.eps)
        x_hat *= inv_std
        self._x_hat, self._inv_std, self._input = x_hat, inv_std, None
        m = self.momentum
        running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
        running_mean *= 1.0 - m
        running_mean += m * mean.reshape(-1)
        running_var *= 1.0 - m
        running_var += (m * count / (count - 1)) * var.reshape(-1)
        y = x_hat * gamma
        y += beta
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        axes, shape = self._axes(grad)
        inv_std = self._inv_std
        x_hat = self._x_hat
        if x_hat is None:  # evaluation: x̂ from the cached input and the fixed statistics
            x_hat = (self._input - self.buffers["running_mean"].reshape(shape)) * inv_std
        grad_w, grad_b = self.grads["weight"], self.grads["bias"]
        np.add.reduce(grad, axis=axes, out=grad_b)
        np.add.reduce(grad * x_hat, axis=axes, out=grad_w)
        scale = self.params["weight"].reshape(shape) * inv_std  # γ/σ per channel
        if not self._training:
            return grad * scale
        count = grad.size // self.num_features
        # dL/dx = (γ/σ)·(dL/dy − (dL/dβ + x̂·dL/dγ)/N)  (the docstring's formula with g = γ·dL/dy)
        dx = x_hat * (grad_w.reshape(shape) * (1.0 / count))
        dx += grad_b.reshape(shape) * (1.0 / count)
        np.subtract(grad, dx, out=dx)
        dx *= scale
        return dx

    def get_config(self):
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}


class LayerNorm(Layer):
    """Layer normalization (Ba, Kiros & Hinton, 2016) over the last axis.

    For input (..., D), each vector x of D values along the last axis is normalized on its own
    (the same in training and evaluation); Σ runs over its D values:

    forward:   μ = Σx/D,  σ² = Σ(x − μ)²/D,  x̂ = (x − μ)/√(σ² + ε),  y = γ·x̂ + β     (..., D)
    backward:  dL/dγ = Σ_{leading axes} dL/dy·x̂,  dL/dβ = Σ_{leading axes} dL/dy      (D,)
               g = dL/dx̂ = γ·dL/dy,  dL/dx = (1/σ)/D · (D·g − Σg − x̂·Σ(g·x̂))          (..., D)

    This is torch.nn.functional.layer_norm(x, (D,), weight, bias, eps).

    Parameters
    ----------
    normalized_shape : int
        D, the size of the last axis. ``weight`` γ (D,) starts at 1 and ``bias`` β (D,) at 0.
    eps : float
        ε > 0 added to the variance.
    """

    def __init__(self, normalized_shape: int, eps: float = 1e-5) -> None:
        super().__init__()
        check_positive_int(normalized_shape, "LayerNorm normalized_shape")
        check_number(eps, "LayerNorm eps", low=0, low_open=True)
        self.normalized_shape, self.eps = int(normalized_shape), float(eps)
        self.dtype = np.dtype(np.float32)
        d = self.normalized_shape
        self.params = {"weight": np.ones(d, self.dtype), "bias": np.zeros(d, self.dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._x_hat: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None  # (..., 1)

    def check_input(self, x: np.ndarray) -> None:
        """Raise ShapeError unless ``x`` is (n, ..., normalized_shape)."""
        if x.ndim < 2:
            raise ShapeError(f"{self!r} expects input of shape (n, ..., {self.normalized_shape}) with at least"
                             f" 2 axes, got a {x.ndim}-D array of shape {x.shape}")
        if x.shape[-1] != self.normalized_shape:
            raise ShapeError(f"{self!r} expects {self.normalized_shape} features on the last axis,"
                             f" got array of shape {x.shape}")

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim < 2 or x.shape[-1] != self.normalized_shape:
            self.check_input(x)
        d = self.normalized_shape
        mean = np.add.reduce(x, axis=-1, keepdims=True)
        mean *= 1.0 / d
        x_hat = x - mean
        var = np.add.reduce(x_hat * x_hat, axis=-1, keepdims=True)
        var *= 1.0 / d
        var += self.eps
        inv_std = np.sqrt(var, out=var)
        np.divide(1.0, inv_std, out=inv_std)
        x_hat *= inv_std
        self._x_hat, self._inv_std = x_hat, inv_std
        y = x_hat * self.params["weight"]
        y += self.params["bias"]
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        x_hat, d = self._x_hat, self.normalized_shape
        lead = tuple(range(grad.ndim - 1))
        np.add.reduce(grad, axis=lead, out=self.grads["bias"])
        g = grad * self.params["weight"]  # dL/dx̂
        gx = grad * x_hat
        np.add.reduce(gx, axis=lead, out=self.grads["weight"])
        # dL/dx = (1/σ)·(g − Σg/D − x̂·Σ(g·x̂)/D); Σ(g·x̂) over D is γ-weighted, so reuse gx·γ
        np.multiply(gx, self.params["weight"], out=gx)
        sum_gx = np.add.reduce(gx, axis=-1, keepdims=True)
        sum_gx *= 1.0 / d
        sum_g = np.add.reduce(g, axis=-1, keepdims=True)
        sum_g *= 1.0 / d
        dx = np.multiply(x_hat, sum_gx, out=gx)
        dx += sum_g
        np.subtract(g, dx, out=dx)
        dx *= self._inv_std
        return dx

    def get_config(self):
        return {"normalized_shape": self.normalized_shape, "eps": self.eps}
