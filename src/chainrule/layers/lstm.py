"""Long short-term memory (Hochreiter & Schmidhuber, 1997) with BPTT written out."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .._checks import check_number
from .recurrent import Recurrent


class LSTM(Recurrent):
    """LSTM layer with torch.nn.LSTM's equations and gate order (i, f, g, o), batch first.

    forward, for t = 1..T, with (h_0, c_0) the initial state (zeros by default):
        [zi zf zg zo] = x_t · W_ih + h_{t-1} · W_hh + b     four blocks of H columns
        i = σ(zi)   f = σ(zf)   g = tanh(zg)   o = σ(zo)
        c_t = f ∘ c_{t-1} + i ∘ g
        h_t = o ∘ tanh(c_t)
        output: h_1..h_T as (n, T, H) when return_sequences, else h_T as (n, H)

    backward (BPTT), g_t = dL/dh_t from the layer above (0 for t < T when only h_T is returned),
    dc_{T+1}-term = 0:
        dh_t = g_t + δ_{t+1} · W_hhᵀ                       (the second term is 0 at t = T)
        dc_t = dh_t ∘ o ∘ (1 − tanh²(c_t)) + dc_{t+1} ∘ f_{t+1}
        δzi = dc_t ∘ g ∘ i(1 − i)          δzf = dc_t ∘ c_{t-1} ∘ f(1 − f)
        δzg = dc_t ∘ i ∘ (1 − g²)          δzo = dh_t ∘ tanh(c_t) ∘ o(1 − o)
        δ_t = [δzi δzf δzg δzo]            (n, 4H)
        dL/dW_ih = Σ_t x_tᵀ δ_t    dL/dW_hh = Σ_t h_{t-1}ᵀ δ_t    dL/db = Σ_t Σ_n δ_t
        dL/dx_t  = δ_t · W_ihᵀ     dL/dh_0 = δ_1 · W_hhᵀ         dL/dc_0 = dc_1 ∘ f_1

    Parameters
    ----------
    n_in, n_hidden : int
    return_sequences, stateful : bool
        As for :class:`RNN`; the state is the pair (h, c).
    forget_bias : float
        Initial bias of the forget gate (default 1, so the cell remembers at the start);
        the other biases start at 0. Ignored when ``bias`` is given.
    weight_ih, weight_hh, bias : array_like, optional
        Explicit initial values, shapes (n_in, 4H), (H, 4H), (4H,), gate blocks i, f, g, o.
        From torch: ``weight_ih = weight_ih_l0.T``, ``weight_hh = weight_hh_l0.T``,
        ``bias = bias_ih_l0 + bias_hh_l0``.
    init : str or Initializer, optional
        Initializer of both weights; by default U(−1/√H, 1/√H) like torch.
    seed : int or numpy.random.Generator, optional
    dtype : numpy dtype
    """

    _state_names = ("h", "c")
    _n_gates = 4

    def __init__(self, n_in: int, n_hidden: int, return_sequences: bool = False,
                 stateful: bool = False, forget_bias: float = 1.0, weight_ih=None, weight_hh=None,
                 bias=None, init=None, seed=None, dtype=np.float32) -> None:
        check_number(forget_bias, "LSTM forget_bias")
        self.forget_bias = float(forget_bias)
        super().__init__(n_in, n_hidden, return_sequences, stateful, weight_ih, weight_hh, bias,
                         init, seed, dtype)
        if bias is None:
            H = self.n_hidden
            self.params["bias"][:] = 0
            self.params["bias"][H:2 * H] = self.forget_bias

    def forward(self, x: np.ndarray, training: bool = False, initial_state=None) -> np.ndarray:
        x = self._time_major(x)
        T, n, _ = x.shape
        H = self.n_hidden
        h, c = self._start_state(n, training, initial_state)
        # σ(z) = ½·tanh(z/2) + ½: one tanh over all four blocks, the ½ inside folded into the
        # weights, the affine ½·t + ½ after it (t for the g block) as two whole-array operations
        half = np.full(4 * H, 0.5, self.dtype)
        half[2 * H:3 * H] = 1.0
        w_ih = self.params["weight_ih"] * half
        w_hh = self.params["weight_hh"] * half
        mul = np.broadcast_to(half, (n, 4 * H)).copy()
        add = mul.copy()
        add[:, 2 * H:3 * H] = 0.0
        # gates (T, n, 4H) first holds every step's input part x_t·W_ih + b (one matrix
        # product; b added below, or step by step inside the compiled loop), then step by step
        # the activated gates i, f, g, o in place
        gates = (x.reshape(T * n, self.n_in) @ w_ih).reshape(T, n, 4 * H)
        bias = self.params["bias"] * half
        cs = np.empty((T, n, H), self.dtype)
        tanh_cs = np.empty((T, n, H), self.dtype)
        hs = np.empty((T, n, H), self.dtype)
        recur = np.empty((n, 4 * H), self.dtype)
        h0, c0 = h, c
        # with numba: float32 runs every step in one compiled call (kernels/recurrent.py, with
        # kernels/tanh.py's tanh); float64 runs σ's ½·t + ½ and the cell update as one compiled pass
        loop = self._blas_loop("lstm_forward", gates) if gates.dtype == np.float32 else None
        if loop is not None:  # (the bias added inside, step by step)
            kernel, gemm = loop
            h0, c0 = np.ascontiguousarray(h0, self.dtype), np.ascontiguousarray(c0, self.dtype)
            kernel(gemm, gates, h0, c0, w_hh, recur, bias, mul[0], add[0], cs, tanh_cs, hs)
        else:
            gates += bias
            ig = np.empty((n, H), self.dtype)
            cell = kernels.compiled("recurrent", "lstm_cell") if kernels.ready(gates, gates) else None
            for t in range(T):
                z = gates[t]
                np.matmul(h, w_hh, out=recur)
                z += recur
                np.tanh(z, out=z)
                c_t = cs[t]
                if cell is not None:
                    cell(z, c, half[0], c_t)
                else:
                    z *= mul
                    z += add
                    np.multiply(z[:, H:2 * H], c, out=c_t)            # f ∘ c_{t-1}
                    np.multiply(z[:, :H], z[:, 2 * H:3 * H], out=ig)  # i ∘ g
                    c_t += ig
                tc = np.tanh(c_t, out=tanh_cs[t])
                h = np.multiply(z[:, 3 * H:], tc, out=hs[t])
                c = c_t
        self._input, self._h0, self._c0 = x, h0, c0
        self._gates, self._cs, self._tanh_cs, self._hs = gates, cs, tanh_cs, hs
        self._end_state((hs[-1].copy(), cs[-1].copy()), training)
        return self._output(hs)

    def _backward(self, grad, need_input_grad):
        gates, cs, tanh_cs, hs = self._gates, self._cs, self._tanh_cs, self._hs
        T, n, H = hs.shape
        dh = self._start_hidden_grads(grad, T, n)
        # delta (T, n, 4H) receives δ_t step by step: first the local derivatives of step t, then,
        # in place, their products with dc_t and dh_t. Step by step, not as whole-array passes
        # before the loop: step t's gates are then in cache (about 4 % of a training step).
        delta = np.empty_like(gates)
        # a C-ordered copy of W_hhᵀ: BLAS multiplies by it ~20 % sooner than by the transposed view
        w_hh_t = np.ascontiguousarray(self.params["weight_hh"].T)
        dc = np.empty((n, H), self.dtype)
        dc_next = np.zeros((n, H), self.dtype)
        dh_to_dc = np.empty((n, H), self.dtype)
        back = np.empty((n, H), self.dtype)
        one = self.dtype.type(1)
        # with numba, every step in one compiled call (kernels/recurrent.py): δ_t and dc_t ∘ f_t in one
        # pass, δ_t·W_hhᵀ by NumPy's gemm
        loop = self._blas_loop("lstm_backward_loop", gates)
        if loop is not None:
            kernel, gemm = loop
            kernel(gemm, gates, cs, np.ascontiguousarray(self._c0, self.dtype), tanh_cs, dh, dc_next, delta,
                   w_hh_t, back, self.return_sequences, one)
        else:
            step = kernels.compiled("recurrent", "lstm_backward") if kernels.ready(gates, dh) else None
            for t in range(T - 1, -1, -1):
                a, d, tc = gates[t], delta[t], tanh_cs[t]
                if step is not None:
                    step(a, cs[t - 1] if t else self._c0, tc, dh[t], dc_next, one, d)
                else:
                    self._step_back(a, d, tc, cs[t - 1] if t else self._c0, dh[t], dc, dc_next, dh_to_dc)
                if t and not self.return_sequences:                # dh_{t-1} = δ_t · W_hhᵀ
                    np.matmul(d, w_hh_t, out=dh[t - 1])
                    continue
                np.matmul(d, w_hh_t, out=back)                     # δ_t · W_hhᵀ
                if t:
                    dh[t - 1] += back
        self.initial_state_grad = (back.copy(), dc_next.copy())
        self._hidden_grads = dh
        return self._weight_grads(delta, self._h0, hs, need_input_grad)

    @staticmethod
    def _step_back(a, d, tc, c_prev, dh_t, dc, dc_next, dh_to_dc) -> None:
        """δ_t into d and dc_t ∘ f_t into dc_next, for one step (the NumPy path)."""
        n, H = tc.shape
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        d_i, d_f, d_g, d_o = d[:, :H], d[:, H:2 * H], d[:, 2 * H:3 * H], d[:, 3 * H:]
        np.multiply(a, a, out=d)
        np.subtract(a, d, out=d)                           # a(1 − a) for i, f, o
        np.multiply(g, g, out=d_g)
        np.subtract(1, d_g, out=d_g)                       # 1 − g²
        d_i *= g                                           # ∂c/∂zi = g ∘ i(1 − i)
        d_f *= c_prev                                      # ∂c/∂zf = c_{t-1} ∘ f(1 − f)
        d_g *= i                                           # ∂c/∂zg = i ∘ (1 − g²)
        d_o *= tc                                          # ∂h/∂zo = tanh(c) ∘ o(1 − o)
        np.multiply(tc, tc, out=dh_to_dc)
        np.subtract(1, dh_to_dc, out=dh_to_dc)
        dh_to_dc *= o                                      # ∂h/∂c = o ∘ (1 − tanh²(c))
        np.multiply(dh_t, dh_to_dc, out=dc)
        dc += dc_next                                      # dc_t
        d3 = d.reshape(n, 4, H)[:, :3]
        np.multiply(d3, dc[:, None, :], out=d3)            # δzi, δzf, δzg
        np.multiply(d_o, dh_t, out=d_o)                    # δzo
        np.multiply(dc, f, out=dc_next)                    # dc_t ∘ f_t, for step t − 1

    def get_config(self) -> dict:
        return {**super().get_config(), "forget_bias": self.forget_bias}
