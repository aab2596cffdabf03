"""Multi-head self-attention (Vaswani et al., 2017) with its backward pass written out."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .._checks import as_rng, check_positive_int
from ..errors import ConfigError, ShapeError
from ..init import get_initializer
from .base import Layer

_PROJECTIONS = ("q", "k", "v", "o")


def _row_kernels(a: np.ndarray) -> np.ndarray | None:
    """``a`` (n, H, T, T) as the (n·H·T, T) rows the compiled softmax kernels take (a view), when
    they run for it (numba active, float32 or float64, C-contiguous), else None (NumPy runs)."""
    if kernels.ready(a, a) and a.flags.c_contiguous:
        return a.reshape(-1, a.shape[-1])
    return None


class MultiHeadAttention(Layer):
    """Multi-head self-attention over a sequence: (n, T, dim) -> (n, T, dim).

    forward, with H heads of width d = dim / H and x of shape (n, T, dim):
        Q = x·W_q + b_q    K = x·W_k + b_k    V = x·W_v + b_v          (n, T, dim) each
        Q_h, K_h, V_h: the h-th block of d columns                   (n, H, T, d)
        S_h = Q_h·K_hᵀ / √d   (+ M, M_ts = −inf for s > t when causal)  (n, H, T, T)
        P_h = softmax(S_h) over the last axis (max subtracted first)
        O_h = P_h·V_h, the heads concatenated back to O              (n, T, dim)
        y = O·W_o + b_o

    backward, dY = dL/dy (n, T, dim), from the cached x, Q, K, V, P and O (nothing recomputed):
        dW_o = Oᵀ·dY    db_o = Σ dY    dO = dY·W_oᵀ, split into heads dO_h
        dV_h = P_hᵀ·dO_h
        dP_h = dO_h·V_hᵀ
        dS_h = P_h ∘ (dP_h − rowsum(dP_h ∘ P_h))       (softmax's Jacobian; 0 where masked)
        dQ_h = dS_h·K_h / √d    dK_h = dS_hᵀ·Q_h / √d
        dW_q = xᵀ·dQ    db_q = Σ dQ    (likewise for k and v)
        dx = dQ·W_qᵀ + dK·W_kᵀ + dV·W_vᵀ
    (sums Σ over every sample and time step). The products over heads are batched matmuls over
    the (n, H) axes, never a Python loop over heads or tokens.

    There are no positional parameters, so any sequence length T works (no maximum); the layer
    is equivariant to permuting the time steps unless causal. Add positions in the input.

    With torch.nn.MultiheadAttention(dim, H, batch_first=True) the parameters correspond as
    ``in_proj_weight = [W_qᵀ; W_kᵀ; W_vᵀ]``, ``in_proj_bias = [b_q; b_k; b_v]``,
    ``out_proj.weight = W_oᵀ``, ``out_proj.bias = b_o``; ``causal=True`` is its ``is_causal``
    mask.

    Parameters
    ----------
    dim : int
        Width of a token (input and output features); ``weight_q``, ``weight_k``, ``weight_v``,
        ``weight_o`` have shape (dim, dim) in the x·W layout, the biases (dim,).
    num_heads : int
        Number of heads; must divide ``dim``.
    causal : bool
        Whether step t attends only to steps s <= t (a language model's mask).
    init : str, Initializer or callable
        Initializer of the four weights ("xavier" by default, as torch's in_proj); biases start at 0.
    seed : int or numpy.random.Generator, optional
        Seed of the weight draw.
    dtype : numpy dtype
        Parameter dtype (a Sequential casts its layers to its own dtype).
    """

    # the weights are dim x dim: the load-time size guard counts dim twice
    size_args = ("dim", "dim")

    # Speed. One training step (forward, MSE, backward, Adam) of the pre-norm block
    # Residual(LayerNorm, MultiHeadAttention), Residual(LayerNorm, Dense, GELU, Dense) at T = 64,
    # dim = 128, 4 heads, batch 32, float32, one thread each (OPENBLAS_NUM_THREADS=1,
    # torch.set_num_threads(1)), against the same block in torch 2.13 eager on the CPU
    # (nn.LayerNorm, nn.MultiheadAttention, nn.Linear, nn.GELU("tanh"), torch.optim.Adam), the
    # two alternating step by step for 40 steps after 3 warm-up steps: chainrule takes 0.86-0.91
    # of torch's time (median of the per-step ratios, four runs; about 50 ms against 58 ms on
    # a shared 2-core machine). The attention layer alone: 0.79-0.88. The LayerNorm in that
    # block was a plain NumPy one. Computing Q, K and V as one product with the three weights
    # side by side measured no faster than three products (one thread; and with OpenBLAS's two
    # threads, in the whole block's step: 0.99 of the time), so the forward makes three and the
    # parameters stay three separate arrays. The backward's dW and dx products with dQ, dK and dV
    # side by side (two products instead of six, and no adds) took the block's step from
    # 33.3 to 31.7 ms (OpenBLAS's two threads, the two taking turns in one process, median of
    # 9 epochs of 20 steps, ×1.02-1.07 epoch by epoch). With numba (chainrule.kernels) the softmax's row
    # maxima and sums, and its backward, run as compiled loops over the rows (kernels/attention.py;
    # NumPy's exp stays): forward + backward of this layer alone, (32, 64, 128), 2 cores, the two
    # paths taking turns in one process, 12 rounds of 10: 11.9 ms against 12.9 ms (best), 12.5
    # against 13.3 (median).

    def __init__(self, dim: int, num_heads: int, causal: bool = False, init="xavier", seed=None,
                 dtype=np.float32) -> None:
        super().__init__()
        check_positive_int(dim, "MultiHeadAttention dim")
        check_positive_int(num_heads, "MultiHeadAttention num_heads")
        if dim % num_heads:
            raise ConfigError(f"MultiHeadAttention dim must be divisible by num_heads, got dim={dim}"
                              f" and num_heads={num_heads} ({dim} / {num_heads} is not whole)")
        if not isinstance(causal, (bool, np.bool_)):
            raise ConfigError(f"MultiHeadAttention causal must be True or False, got {causal!r}")
        self.dim, self.num_heads, self.causal = int(dim), int(num_heads), bool(causal)
        self.head_dim = self.dim // self.num_heads
        self.dtype = np.dtype(dtype)
        rng = as_rng(seed)
        w_init = get_initializer(init)
        # drawn in float64 and kept until the layer joins a network (see Dense)
        self._initial = {}
        for p in _PROJECTIONS:
            self._initial[f"weight_{p}"] = w_init((self.dim, self.dim), np.float64, rng=rng)
        for p in _PROJECTIONS:
            self._initial[f"bias_{p}"] = np.zeros(self.dim)
        self.params = {k: v.astype(self.dtype) for k, v in self._initial.items()}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._mask: np.ndarray | None = None  # (T, T): 0 on and below the diagonal, −inf above

    # --- checks -------------------------------------------------------------------------
    def check_input(self, x: np.ndarray) -> None:
        """Raise ShapeError, naming this layer, unless ``x`` is (n, T, dim)."""
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ShapeError(f"{self!r} expects input of shape (n_samples, time, {self.dim}),"
                             f" got array of shape {x.shape}")

    # --- forward ------------------------------------------------------------------------
    def _heads(self, z: np.ndarray, n: int, T: int) -> np.ndarray:
        """(n·T, dim) -> (n, H, T, d), a view."""
        return z.reshape(n, T, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

    def _causal_mask(self, T: int, dtype) -> np.ndarray:
        mask = self._mask
        if mask is None or mask.shape[0] != T or mask.dtype != dtype:
            mask = np.triu(np.full((T, T), -np.inf, dtype=dtype), k=1)
            self._mask = mask
        return mask

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != 3 or x.shape[-1] != self.dim:
            self.check_input(x)
        n, T, D = x.shape
        p = self.params
        x2 = x.reshape(n * T, D)
        # three 2-d matrix products (one BLAS gemm each) on the flattened tokens; a 3-d x @ W
        # would run one small gemm per sample
        q = np.dot(x2, p["weight_q"])
        q += p["bias_q"]
        q *= np.asarray(1.0 / np.sqrt(self.head_dim), dtype=q.dtype)  # Q/√d, folded in once
        k = np.dot(x2, p["weight_k"])
        k += p["bias_k"]
        v = np.dot(x2, p["weight_v"])
        v += p["bias_v"]
        qh, kh, vh = self._heads(q, n, T), self._heads(k, n, T), self._heads(v, n, T)
        # training: the scores (P after the softmax, kept for backward) are the same array every
        # step (Layer._scratch: 2 MiB at n 32, T 64, 4 heads, whose pages a fresh array faults in)
        shape = (n, self.num_heads, T, T)
        scores = np.matmul(qh, kh.swapaxes(-1, -2), out=self._work(training, "probs", shape, q.dtype))
        if self.causal:
            scores += self._causal_mask(T, scores.dtype)
        rows = _row_kernels(scores)
        if rows is not None:  # the max and the sum in one compiled pass each, NumPy's exp between
            kernels.compiled("attention", "softmax_shift")(rows)
            np.exp(scores, out=scores)
            kernels.compiled("attention", "softmax_normalize")(rows)
            probs = scores
        else:
            scores -= scores.max(axis=-1, keepdims=True)             # finite: the diagonal is never masked
            probs = np.exp(scores, out=scores)
            probs /= probs.sum(axis=-1, keepdims=True)
        # O_h written straight into the concatenated layout (n·T, dim): each head's (T, d) block is a
        # strided view there that BLAS writes into, so no copy of the heads follows
        out = np.empty((n * T, D), q.dtype)
        np.matmul(probs, vh, out=self._heads(out, n, T))             # (n, H, T, d) view of O
        y = np.dot(out, p["weight_o"])
        y += p["bias_o"]
        self._input, self._q, self._k, self._v = x2, qh, kh, vh
        self._probs, self._concat = probs, out
        return y.reshape(n, T, D)

    # --- backward -----------------------------------------------------------------------
    def backward(self, grad: np.ndarray) -> np.ndarray:
        n, T, D = grad.shape
        p, g = self.params, self.grads
        x2, qh, kh, vh, probs = self._input, self._q, self._k, self._v, self._probs
        dy = grad.reshape(n * T, D)
        np.matmul(self._concat.T, dy, out=g["weight_o"])
        np.sum(dy, axis=0, out=g["bias_o"])
        d_heads = self._heads(np.dot(dy, p["weight_o"].T), n, T)     # dO_h (n, H, T, d)
        dp = np.matmul(d_heads, vh.swapaxes(-1, -2),                 # dP_h = dO_h·V_hᵀ
                       out=self._scratch("dp", probs.shape, probs.dtype))
        rows = _row_kernels(dp)
        if rows is not None and probs.flags.c_contiguous:
            kernels.compiled("attention", "softmax_backward")(rows, probs.reshape(rows.shape))
        else:
            dp -= (dp * probs).sum(axis=-1, keepdims=True)
            dp *= probs                                              # dS_h
        scale = np.asarray(1.0 / np.sqrt(self.head_dim), dtype=dp.dtype)
        # dQ, dK, dV side by side, each with its heads concatenated: (n·T, 3·dim), so that
        # [dW_q dW_k dW_v] = xᵀ·[dQ dK dV] and dx = [dQ dK dV]·[W_q W_k W_v]ᵀ are one product each;
        # the head products write straight into their strided (n, H, T, d) views of it
        d_qkv = self._scratch("d_qkv", (n * T, 3 * D), dp.dtype)
        side = d_qkv.reshape(n, T, 3, self.num_heads, self.head_dim).transpose(2, 0, 3, 1, 4)
        np.matmul(probs.swapaxes(-1, -2), d_heads, out=side[2])      # dV_h = Pᵀ·dO_h
        dq = np.matmul(dp, kh, out=side[0])                          # dS_h·K_h (√d below)
        dq *= scale
        np.matmul(dp.swapaxes(-1, -2), qh, out=side[1])              # dK_h = dS_hᵀ·(Q_h/√d)
        d_weights, d_biases = np.dot(x2.T, d_qkv), np.add.reduce(d_qkv, axis=0)
        for i, name in enumerate("qkv"):
            g[f"weight_{name}"][...] = d_weights[:, i * D:(i + 1) * D]
            g[f"bias_{name}"][...] = d_biases[i * D:(i + 1) * D]
        weights_t = np.concatenate([p["weight_q"].T, p["weight_k"].T, p["weight_v"].T])  # (3·dim, dim)
        return np.dot(d_qkv, weights_t).reshape(n, T, D)

    # --- the rest of the protocol -------------------------------------------------------

    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {"dim": self.dim, "num_heads": self.num_heads, "causal": self.causal}
