"""Gated recurrent unit (Cho et al., 2014) with BPTT written out, torch.nn.GRU's variant."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .._checks import as_rng
from ..init import Uniform, get_initializer
from .recurrent import Recurrent


class GRU(Recurrent):
    """GRU layer with torch.nn.GRU's equations and gate order (r, z, n), batch first.

    forward, for t = 1..T, with h_0 the initial state (zeros by default), h = h_{t-1}:
        [ir iz in] = x_t · W_ih + b_ih         [hr hz hn] = h · W_hh + b_hh     blocks of H columns
        r = σ(ir + hr)       z = σ(iz + hz)
        n = tanh(in + r ∘ hn)
        h_t = (1 − z) ∘ n + z ∘ h
        output: h_1..h_T as (n, T, H) when return_sequences, else h_T as (n, H)

    backward (BPTT), g_t = dL/dh_t from the layer above (0 for t < T when only h_T is returned):
        dh_t  = g_t + dh_{t+1} ∘ z_{t+1} + δh_{t+1} · W_hhᵀ      (the last two terms are 0 at t = T)
        dn    = dh_t ∘ (1 − z)                 δin = dn ∘ (1 − n²)      (dL/d(in), pre-tanh)
        dz    = dh_t ∘ (h_{t-1} − n)           δz  = dz ∘ z(1 − z)
        dr    = δin ∘ hn                       δr  = dr ∘ r(1 − r)
        δhn   = δin ∘ r                        (dL/d(hn): hn enters n through r)
        δi_t  = [δr δz δin]  (dL/d[ir iz in])   δh_t = [δr δz δhn]  (dL/d[hr hz hn])    (n, 3H)
        dL/dW_ih = Σ_t x_tᵀ δi_t      dL/db_ih = Σ_t Σ_n δi_t      dL/dx_t = δi_t · W_ihᵀ
        dL/dW_hh = Σ_t h_{t-1}ᵀ δh_t  dL/db_hh = Σ_t Σ_n δh_t
        dL/dh_0  = dh_1 ∘ z_1 + δh_1 · W_hhᵀ

    The two biases are separate parameters (unlike RNN and LSTM's single ``bias``): b_hn sits
    inside r ∘ (h · W_hn + b_hn), so it is not interchangeable with b_in.

    Parameters
    ----------
    n_in, n_hidden : int
    return_sequences, stateful : bool
        As for :class:`RNN`; the state is h.
    weight_ih, weight_hh, bias_ih, bias_hh : array_like, optional
        Explicit initial values, shapes (n_in, 3H), (H, 3H), (3H,), (3H,), gate blocks r, z, n.
        From torch: ``weight_ih = weight_ih_l0.T``, ``weight_hh = weight_hh_l0.T``,
        ``bias_ih = bias_ih_l0``, ``bias_hh = bias_hh_l0``.
    init : str or Initializer, optional
        Initializer of both weights; by default every parameter ~ U(−1/√H, 1/√H) like torch
        (with ``init`` given, the biases start at zero).
    seed : int or numpy.random.Generator, optional
    dtype : numpy dtype
    """

    _n_gates = 3

    # Speed: a float32 training step (forward(training=True) + backward_params) at batch 64,
    # T = 50, n_in = 32, H = 128 takes about 0.75 of torch.nn.GRU's CPU forward + backward
    # (torch 2.13, OpenBLAS numpy 2.4, one thread each, interleaved runs, best of 7 x 5 steps:
    # 28 ms vs 36 ms with only h_T returned, 54 ms vs 75 ms with every h_t).

    def __init__(self, n_in: int, n_hidden: int, return_sequences: bool = False,
                 stateful: bool = False, weight_ih=None, weight_hh=None, bias_ih=None,
                 bias_hh=None, init=None, seed=None, dtype=np.float32) -> None:
        rng = as_rng(seed, "GRU seed")  # one stream: the base draws the weights and b_ih, then b_hh
        super().__init__(n_in, n_hidden, return_sequences, stateful, weight_ih, weight_hh, bias_ih,
                         init, rng, dtype)
        k = 1.0 / np.sqrt(self.n_hidden)
        b_init = Uniform(-k, k) if bias_hh is None and init is None else get_initializer(
            "zeros" if bias_hh is None else bias_hh)
        self.params["bias_ih"] = self.params.pop("bias")
        self.params["bias_hh"] = b_init((3 * self.n_hidden,), self.dtype, rng=rng)
        self.grads = {key: np.zeros_like(p) for key, p in self.params.items()}

    def forward(self, x: np.ndarray, training: bool = False, initial_state=None) -> np.ndarray:
        x = self._time_major(x)
        T, n, _ = x.shape
        H = self.n_hidden
        (h,) = self._start_state(n, training, initial_state)
        # σ(a) = ½·tanh(a/2) + ½: the ½ inside folded into the r and z columns of the weights and
        # biases (exact: a power of two), so r and z come from one tanh over 2H columns
        half = np.full(3 * H, 0.5, self.dtype)
        half[2 * H:] = 1.0
        w_hh = self.params["weight_hh"] * half
        b_hh = self.params["bias_hh"] * half
        # gates (T, n, 3H) first holds every step's input part x_t·W_ih + b_ih (one matrix
        # product; b_ih added below, or step by step inside the compiled loop), then step by step
        # the activated gates r, z, n in place
        gates = (x.reshape(T * n, self.n_in) @ (self.params["weight_ih"] * half)).reshape(T, n, 3 * H)
        b_ih = self.params["bias_ih"] * half
        hns = np.empty((T, n, H), self.dtype)      # hn_t = h_{t-1}·W_hn + b_hn, for backward
        hs = np.empty((T, n, H), self.dtype)
        recur = np.empty((n, 3 * H), self.dtype)
        h0 = h
        # with numba: float32 runs every step in one compiled call (kernels/recurrent.py, with
        # kernels/tanh.py's tanh); float64 runs the arithmetic around NumPy's two tanh compiled
        loop = self._blas_loop("gru_forward", gates) if gates.dtype == np.float32 else None
        if loop is not None:  # (b_ih added inside, step by step)
            kernel, gemm = loop
            h0 = np.ascontiguousarray(h0, self.dtype)
            kernel(gemm, gates, h0, w_hh, b_ih, b_hh, recur, self.dtype.type(0.5), hns, hs)
        else:
            gates += b_ih
            fast = kernels.ready(gates, gates)  # numba: the arithmetic around the two tanh, compiled
            for t in range(T):
                a = gates[t]
                np.matmul(h, w_hh, out=recur)
                if fast:
                    h = self._step_compiled(a, recur, b_hh, h, hns[t], hs[t])
                    continue
                recur += b_hh
                rz = a[:, :2 * H]
                rz += recur[:, :2 * H]
                np.tanh(rz, out=rz)
                rz *= 0.5
                rz += 0.5                                        # r, z
                hn = hns[t]
                hn[...] = recur[:, 2 * H:]
                new = a[:, 2 * H:]
                np.multiply(a[:, :H], hn, out=recur[:, :H])      # r ∘ hn
                new += recur[:, :H]
                np.tanh(new, out=new)                            # n
                h_t = np.subtract(h, new, out=hs[t])
                h_t *= a[:, H:2 * H]
                h_t += new                                       # h_t = n + z ∘ (h_{t-1} − n)
                h = h_t
        self._input, self._h0, self._gates, self._hns, self._hs = x, h0, gates, hns, hs
        self._end_state((hs[-1].copy(),), training)
        return self._output(hs)

    def _backward(self, grad, need_input_grad):
        gates, hns, hs = self._gates, self._hns, self._hs
        T, n, H = hs.shape
        dh = self._start_hidden_grads(grad, T, n)
        delta_h = np.empty_like(gates)              # δh_t = [δr δz δhn], step by step
        delta_in = np.empty_like(hs)                # δin_t (the n block of δi_t)
        # a C-ordered copy of W_hhᵀ: BLAS multiplies by it sooner than by the transposed view
        w_hh_t = np.ascontiguousarray(self.params["weight_hh"].T)
        one_minus = np.empty((n, H), self.dtype)
        tmp = np.empty((n, H), self.dtype)
        back = np.empty((n, H), self.dtype)
        # with numba, every step in one compiled call (kernels/recurrent.py): gru_backward's pass,
        # then δh_t·W_hhᵀ by NumPy's gemm
        loop = self._blas_loop("gru_backward_loop", gates)
        if loop is not None:
            kernel, gemm = loop
            kernel(gemm, gates, hns, hs, np.ascontiguousarray(self._h0, self.dtype), dh, delta_h, delta_in,
                   w_hh_t, tmp, back, self.return_sequences, self.dtype.type(1))
        else:
            step = kernels.compiled("recurrent", "gru_backward") if kernels.ready(gates, dh) else None
            for t in range(T - 1, -1, -1):
                a, d, dh_t, d_in = gates[t], delta_h[t], dh[t], delta_in[t]
                r, z, new = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
                d_r, d_z, d_hn = d[:, :H], d[:, H:2 * H], d[:, 2 * H:]
                h_prev = hs[t - 1] if t else self._h0
                if step is not None:  # numba: δh_t, δin_t and dh_t ∘ z (into tmp) in one compiled pass
                    step(a, hns[t], h_prev, dh_t, self.dtype.type(1), d, d_in, tmp)
                else:
                    np.subtract(1, z, out=one_minus)
                    np.multiply(new, new, out=d_in)
                    np.subtract(1, d_in, out=d_in)
                    d_in *= one_minus
                    d_in *= dh_t                                   # δin = dh ∘ (1 − z) ∘ (1 − n²)
                    np.subtract(h_prev, new, out=d_z)
                    d_z *= dh_t
                    one_minus *= z
                    d_z *= one_minus                               # δz = dh ∘ (h_{t-1} − n) ∘ z(1 − z)
                    np.subtract(1, r, out=tmp)
                    tmp *= r
                    np.multiply(d_in, hns[t], out=d_r)
                    d_r *= tmp                                     # δr = δin ∘ hn ∘ r(1 − r)
                    np.multiply(d_in, r, out=d_hn)                 # δhn = δin ∘ r
                    np.multiply(dh_t, z, out=tmp)                  # dh_t ∘ z: the direct path to h_{t-1}
                if t and not self.return_sequences:                # dh_{t-1} = dh_t ∘ z + δh_t · W_hhᵀ
                    np.matmul(d, w_hh_t, out=dh[t - 1])
                    dh[t - 1] += tmp
                    continue
                np.matmul(d, w_hh_t, out=back)
                back += tmp
                if t:
                    dh[t - 1] += back
        self.initial_state_grad = (back.copy(),)
        self._hidden_grads = dh
        return self._gru_weight_grads(delta_h, delta_in, need_input_grad)

    def _step_compiled(self, a, recur, b_hh, h, hn, h_t):
        """One forward step's element-wise work with numba active: the loop body above, its
        arithmetic in three compiled passes (kernels/recurrent.py) around NumPy's two tanh."""
        H = self.n_hidden
        kernels.compiled("recurrent", "gru_preactivations")(a, recur, b_hh, hn)
        np.tanh(a[:, :2 * H], out=a[:, :2 * H])
        kernels.compiled("recurrent", "gru_candidate")(a, hn, self.dtype.type(0.5))
        np.tanh(a[:, 2 * H:], out=a[:, 2 * H:])
        kernels.compiled("recurrent", "gru_state")(a, h, h_t)
        return h_t

    def _gru_weight_grads(self, delta_h, delta_in, need_input_grad):
        """One matrix product per block: the r, z columns share δ between the two sides."""
        x, h0, hs = self._input, self._h0, self._hs
        T, n, _ = x.shape
        H, G = self.n_hidden, 3 * self.n_hidden
        x2 = x.reshape(T * n, self.n_in)
        dh2 = delta_h.reshape(T * n, G)
        din2 = delta_in.reshape(T * n, H)
        grad_ih = self.grads["weight_ih"]
        grad_ih[:, :2 * H] = x2.T @ dh2[:, :2 * H]
        grad_ih[:, 2 * H:] = x2.T @ din2
        np.add.reduce(dh2, axis=0, out=self.grads["bias_hh"])
        grad_b_ih = self.grads["bias_ih"]
        grad_b_ih[:2 * H] = self.grads["bias_hh"][:2 * H]
        np.add.reduce(din2, axis=0, out=grad_b_ih[2 * H:])
        grad_hh = self.grads["weight_hh"]
        np.matmul(h0.T, delta_h[0], out=grad_hh)
        if T > 1:  # h_1..h_{T-1} are the first T − 1 blocks of hs: no copy
            grad_hh += hs[:-1].reshape((T - 1) * n, H).T @ delta_h[1:].reshape((T - 1) * n, G)
        if not need_input_grad:
            return None
        w_ih = self.params["weight_ih"]
        dx = dh2[:, :2 * H] @ w_ih[:, :2 * H].T
        dx += din2 @ w_ih[:, 2 * H:].T
        return dx.reshape(T, n, self.n_in).transpose(1, 0, 2)
