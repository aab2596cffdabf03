"""Normalization layers: batch normalization and layer normalization."""

from __future__ import annotations

import numpy as np

from .. import kernels
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

    def penalized(self) -> list[str]:
        return []  # (the weight is a scale: a weight penalty does not apply)

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

    def _shape(self, x: np.ndarray) -> tuple[int, ...]:
        """The shape that broadcasts a per-channel vector against x."""
        return (1, self.num_features) if x.ndim == 2 else (1, self.num_features, 1, 1)

    def _channel_sum(self, a: np.ndarray, b: np.ndarray | None = None, out=None) -> np.ndarray:
        """Σ a (or Σ a·b) over every axis but the channel axis: shape (num_features,).

        Measured (float32, one core): on (64, 16, 10, 10), einsum over an (n, C, H·W) view takes
        10 µs for Σa and 16 µs for Σa·b, against 37 and 46 µs for np.add.reduce over axes
        (0, 2, 3) (with the a·b temporary); on (n, F), a matrix-vector product with ones wins
        Σa (1.7 vs 3.6 µs at (64, 256), 16 vs 26 µs at (256, 1024)) and einsum Σa·b (44 vs 58 µs).
        """
        if a.ndim == 2:
            total = np.dot(np.ones(len(a), a.dtype), a) if b is None else np.einsum("nf,nf->f", a, b)
        else:
            a3 = a.reshape(len(a), self.num_features, -1)
            total = np.einsum("nch->c", a3) if b is None else np.einsum("nch,nch->c", a3, b.reshape(a3.shape))
        if out is None:
            return total
        out[...] = total  # (C values: a copy costs nothing, and out may differ in dtype)
        return out

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

    # Forward + backward in training on (64, 16, 10, 10) float32, one core: ~235 µs with the
    # sums of _channel_sum (~355 µs with np.add.reduce); torch 2.13 CPU BatchNorm2d: ~300 µs.
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            self.check_input(x)
        shape = self._shape(x)
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
        mean = self._channel_sum(x)
        mean *= 1.0 / count
        x_hat = x - mean.reshape(shape)
        var = self._channel_sum(x_hat, x_hat)  # two-pass variance: no cancellation
        var *= 1.0 / count
        inv_std = 1.0 / np.sqrt(var + self.eps)
        x_hat *= inv_std.reshape(shape)
        self._x_hat, self._inv_std, self._input = x_hat, inv_std.reshape(shape), None
        m = self.momentum
        running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
        running_mean *= 1.0 - m
        running_mean += m * mean
        running_var *= 1.0 - m
        running_var += (m * count / (count - 1)) * var
        y = x_hat * gamma
        y += beta
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        shape = self._shape(grad)
        inv_std = self._inv_std
        x_hat = self._x_hat
        if x_hat is None:  # evaluation: x̂ from the cached input and the fixed statistics
            x_hat = (self._input - self.buffers["running_mean"].reshape(shape)) * inv_std
        grad_w, grad_b = self.grads["weight"], self.grads["bias"]
        self._channel_sum(grad, out=grad_b)
        self._channel_sum(grad, x_hat, out=grad_w)
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

    def penalized(self) -> list[str]:
        return []  # (the weight is a scale: a weight penalty does not apply)

    def __init__(self, normalized_shape: int, eps: float = 1e-5) -> None:
        super().__init__()
        check_positive_int(normalized_shape, "LayerNorm normalized_shape")
        check_number(eps, "LayerNorm eps", low=0, low_open=True)
        self.normalized_shape, self.eps = int(normalized_shape), float(eps)
        self.dtype = np.dtype(np.float32)
        d = self.normalized_shape
        self.params = {"weight": np.ones(d, self.dtype), "bias": np.zeros(d, self.dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._centered: np.ndarray | None = None  # x − μ, (rows, D) with rows = every leading index
        self._inv_std: np.ndarray | None = None   # 1/σ, (rows,)
        self._scale: np.ndarray | None = None     # γ/σ, (rows, D)

    def check_input(self, x: np.ndarray) -> None:
        """Raise ShapeError unless ``x`` is (n, ..., normalized_shape)."""
        if x.ndim < 2:
            raise ShapeError(f"{self!r} expects input of shape (n, ..., {self.normalized_shape}) with at least"
                             f" 2 axes, got a {x.ndim}-D array of shape {x.shape}")
        if x.shape[-1] != self.normalized_shape:
            raise ShapeError(f"{self!r} expects {self.normalized_shape} features on the last axis,"
                             f" got array of shape {x.shape}")

    # Speed (float32, (32, 64, 128), one core): an element-wise op between a full array and a
    # per-row or per-column vector costs ~60 µs here, twice a full-by-full op (~27 µs: NumPy's
    # inner loop runs once per row of 128), and np.add.reduce over the last axis ~95 µs, six
    # times a BLAS matrix-vector product (~16 µs). So every sum is a product with a vector
    # (ones, γ or 1/σ), the cache holds x − μ and the full array γ/σ (one outer product) in
    # place of x̂, and only two ops per pass broadcast. Forward + backward went from ~2.5 ms
    # (sums by add.reduce, x̂ cached) to ~0.55 ms; torch 2.13's fused kernel takes ~0.30 ms.
    # With numba (chainrule.kernels) each row's sums and outputs run in one compiled pass, forward
    # and backward (kernels/norm.py), the row sums in vector lanes (kernels/sums.py): forward +
    # backward of (32, 64, 128) float32, 2 cores, the two paths taking turns in one process,
    # 12 rounds of 50: 0.22 against 0.62 ms (median; with one running sum per row the kernels
    # had taken 0.70 ms, slower than NumPy).
    # Not split over threads (chainrule.set_num_threads): two threads each taking half of the
    # rows took 0.62-0.77 ms for forward + backward against 0.55-0.67 ms on one (2 cores, taking
    # turns in one process, best of 100 × 10, with and without OPENBLAS_NUM_THREADS=1).
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim < 2 or x.shape[-1] != self.normalized_shape:
            self.check_input(x)
        d = self.normalized_shape
        x2 = x.reshape(-1, d)  # (rows, D); a copy only for a non-contiguous x
        if kernels.ready(x2, self.params["weight"]) and x2.flags.c_contiguous:
            # with numba: each row's sums and outputs in one compiled pass (kernels/norm.py)
            # training: x − μ (kept for backward) is the same array every step (Layer._scratch)
            centered = self._work(training, "centered", x2.shape, x2.dtype)
            y = np.empty_like(x2)
            inv_std = np.empty(len(x2), x2.dtype)
            dt = x2.dtype.type
            kernels.compiled("norm", "layer_norm_forward")(
                x2, self.params["weight"], self.params["bias"], dt(self.eps), dt(1.0 / d), dt(1), centered, inv_std, y)
            self._centered, self._inv_std, self._scale = centered, inv_std, None
            return y.reshape(x.shape)
        ones = np.ones(d, x.dtype)
        mean = np.dot(x2, ones)
        mean *= 1.0 / d
        centered = x2 - mean[:, None]
        var = np.einsum("nd,nd->n", centered, centered)  # Σ(x − μ)² without a temporary (39 vs 43 µs)
        var *= 1.0 / d
        var += self.eps
        inv_std = np.sqrt(var, out=var)
        np.divide(1.0, inv_std, out=inv_std)
        # γ/σ (rows, D) as a rank-1 matrix product: 41 µs against 76 for np.multiply.outer
        scale = np.dot(inv_std[:, None], self.params["weight"][None, :])
        y = centered * scale  # = γ·x̂
        y += self.params["bias"]
        self._centered, self._inv_std, self._scale = centered, inv_std, scale
        return y.reshape(x.shape)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        d, gamma = self.normalized_shape, self.params["weight"]
        centered, inv_std = self._centered, self._inv_std  # x − μ (rows, D), 1/σ (rows,)
        grad2 = grad.reshape(-1, d)
        self.grads["bias"][...] = np.dot(np.ones(len(grad2), grad.dtype), grad2)  # Σ dL/dy
        if self._scale is None:  # the compiled forward ran: dL/dx and dL/dy·(x − μ) in one pass
            grad2 = np.ascontiguousarray(grad2, dtype=centered.dtype)
            grad_centered, dx = self._scratch("grad_centered", grad2.shape, grad2.dtype), np.empty_like(grad2)
            kernels.compiled("norm", "layer_norm_backward")(grad2, centered, inv_std, gamma,
                                                             grad2.dtype.type(1.0 / d), grad_centered, dx)
            self.grads["weight"][...] = np.dot(inv_std, grad_centered)
            return dx.reshape(grad.shape)
        grad_centered = grad2 * centered
        self.grads["weight"][...] = np.dot(inv_std, grad_centered)  # Σ dL/dy·x̂ = Σ_rows (1/σ)·dL/dy·(x − μ)
        # Per row, with g = γ·dL/dy:  Σg = dL/dy·γ,  Σ(g·x̂) = (1/σ)·(dL/dy·(x − μ))·γ, and
        # dL/dx = (1/σ)·(g − Σg/D − x̂·Σ(g·x̂)/D) = (γ/σ)·dL/dy − (x − μ)·k − c
        # with k = Σ(g·x̂)/(D·σ²) and c = Σg/(D·σ).
        sum_g = np.dot(grad2, gamma)
        sum_g_xhat = np.dot(grad_centered, gamma)
        sum_g_xhat *= inv_std
        k = sum_g_xhat * (inv_std * inv_std)
        k *= 1.0 / d
        c = sum_g * inv_std
        c *= 1.0 / d
        dx = np.multiply(grad2, self._scale, out=grad_centered)  # (reuses the buffer)
        correction = centered * k[:, None]
        correction += c[:, None]
        dx -= correction
        return dx.reshape(grad.shape)

    def get_config(self):
        return {"normalized_shape": self.normalized_shape, "eps": self.eps}
