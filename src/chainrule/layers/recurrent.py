"""Sequence layers: the state handling they share, the Elman RNN, and TimeDistributed.

Input is batch-first, (n_samples, time, features). A recurrent layer returns every hidden state,
(n, time, n_hidden), when ``return_sequences=True``, and only the last one, (n, n_hidden),
otherwise. Backward is backpropagation through time (BPTT), written out step by step.

State
-----
``initial_state``   the state each forward starts from (zeros when None); one array (n, H) for
                    RNN, a pair (h0, c0) for LSTM; arrays broadcastable to (n, H) are accepted.
                    ``forward(x, initial_state=...)`` overrides it for one call.
``state``           the final state of the last forward (copies; a constant for what follows).
``stateful=True``   each forward starts from the final state of the previous forward of the same
                    mode (training or not) and batch size, so successive batches continue the
                    same sequences; the gradient stops at the batch boundary. Any other forward
                    starts afresh. ``reset_state()`` forgets the carried state.
``initial_state_grad``  dL/d(initial state) after backward, same layout as ``state``.
``hidden_grad_norms``   after backward: (time,) array, ‖dL/dh_t‖ over the batch for each step,
                    where dL/dh_t is the total derivative (through step t's output and every later
                    step). Watch it shrink towards t = 0 to see gradients vanish.
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from .._checks import as_rng, check_positive_int
from ..errors import ConfigError, ShapeError
from ..init import Uniform, get_initializer
from .base import Layer, layer_from_config


class Recurrent(Layer):
    """Base class of the sequence layers: state handling, checks and the BPTT weight gradients.

    A subclass sets ``_state_names`` and ``_n_gates`` (columns of ``weight_ih`` per hidden unit)
    and writes ``forward`` and ``_backward``.
    """

    _state_names: tuple[str, ...] = ("h",)
    _n_gates = 1
    # (weight_hh is n_hidden x gates·n_hidden: n_hidden counts twice in the load-time size guard)
    size_args = ("n_in", "n_hidden", "n_hidden")

    def __init__(self, n_in: int, n_hidden: int, return_sequences: bool, stateful: bool,
                 weight_ih, weight_hh, bias, init, seed, dtype) -> None:
        super().__init__()
        name = type(self).__name__
        check_positive_int(n_in, f"{name} n_in")
        check_positive_int(n_hidden, f"{name} n_hidden")
        self.n_in, self.n_hidden = int(n_in), int(n_hidden)
        self.return_sequences, self.stateful = bool(return_sequences), bool(stateful)
        self.dtype = np.dtype(dtype)
        rng = as_rng(seed)
        width = self._n_gates * self.n_hidden
        # torch.nn.RNN/LSTM's default: every weight and bias ~ U(-1/√H, 1/√H)
        k = 1.0 / np.sqrt(self.n_hidden)
        default = Uniform(-k, k) if init is None else get_initializer(init)
        w_ih = default if weight_ih is None else get_initializer(weight_ih)
        w_hh = default if weight_hh is None else get_initializer(weight_hh)
        self.params["weight_ih"] = w_ih((self.n_in, width), self.dtype, rng=rng)
        self.params["weight_hh"] = w_hh((self.n_hidden, width), self.dtype, rng=rng)
        b_init = Uniform(-k, k) if bias is None and init is None else get_initializer(
            "zeros" if bias is None else bias)
        self.params["bias"] = b_init((width,), self.dtype, rng=rng)
        self.grads = {key: np.zeros_like(p) for key, p in self.params.items()}
        self.initial_state = None
        self.state: tuple[np.ndarray, ...] | None = None
        self.initial_state_grad: tuple[np.ndarray, ...] | None = None
        self._carried: dict[bool, tuple[np.ndarray, ...]] = {}  # stateful: last state per mode
        self._continue = False  # set by truncated BPTT between the windows of one batch
        self._hidden_grads: np.ndarray | None = None

    # --- state -------------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget the carried state: the next forward starts from ``initial_state`` (or zeros)."""
        self.state = None
        self._carried = {}

    def _as_state(self, given, n: int) -> tuple[np.ndarray, ...]:
        names = self._state_names
        parts = (given,) if isinstance(given, np.ndarray) and len(names) == 1 else given
        if not isinstance(parts, (tuple, list)) or len(parts) != len(names):
            raise ShapeError(f"{self!r} initial_state must be {len(names)} array(s) ({', '.join(names)}),"
                             f" got {type(given).__name__}")
        out = []
        for name, part in zip(names, parts, strict=True):
            arr = np.asarray(part, dtype=self.dtype)
            try:
                arr = np.broadcast_to(arr, (n, self.n_hidden))
            except ValueError:
                raise ShapeError(f"{self!r} initial state {name} must have shape ({n}, {self.n_hidden})"
                                 f" for a batch of {n}, got {arr.shape}") from None
            out.append(arr)
        return tuple(out)

    def _start_state(self, n: int, training: bool, initial_state) -> tuple[np.ndarray, ...]:
        if initial_state is None:
            carried = self.state if self._continue else self._carried.get(training) if self.stateful else None
            if carried is not None and carried[0].shape[0] == n:
                return carried
        given = self.initial_state if initial_state is None else initial_state
        if given is None:
            return tuple(np.zeros((n, self.n_hidden), self.dtype) for _ in self._state_names)
        return self._as_state(given, n)

    def check_input(self, x: np.ndarray) -> None:
        """Raise ShapeError unless ``x`` has shape (n_samples, time >= 1, n_in)."""
        if x.ndim != 3 or x.shape[2] != self.n_in:
            raise ShapeError(f"{self!r} expects input of shape (n_samples, time, {self.n_in}),"
                             f" got array of shape {x.shape}")
        if x.shape[1] == 0:
            raise ShapeError(f"{self!r} expects at least one time step, got array of shape {x.shape}")

    def _end_state(self, state: tuple[np.ndarray, ...], training: bool) -> None:
        self.state = state
        if self.stateful:
            self._carried[training] = state

    def _time_major(self, x: np.ndarray) -> np.ndarray:
        """The input as a C-contiguous (time, n, n_in) array: every step's rows side by side.

        Layers work time-major inside, so that each step is one contiguous block; a time-major
        array seen batch-first (what these layers return) comes back without a copy.
        """
        if x.ndim != 3 or x.shape[2] != self.n_in or x.shape[1] == 0:
            self.check_input(x)
        return np.ascontiguousarray(x.transpose(1, 0, 2), dtype=self.dtype)

    # --- diagnostics ---------------------------------------------------------------------------
    @property
    def hidden_grad_norms(self) -> np.ndarray | None:
        """‖dL/dh_t‖ (Frobenius norm over the batch) for t = 1..T, after backward."""
        dh = self._hidden_grads
        if dh is None:
            return None
        return np.sqrt(np.einsum("tnk,tnk->t", dh, dh, dtype=np.float64))

    # --- backward ------------------------------------------------------------------------------
    def backward(self, grad: np.ndarray) -> np.ndarray:
        return self._backward(grad, need_input_grad=True)

    def backward_params(self, grad: np.ndarray) -> None:
        """Fill ``grads`` only (the first layer of a network needs no dL/dx)."""
        self._backward(grad, need_input_grad=False)

    def _backward(self, grad: np.ndarray, need_input_grad: bool):
        raise NotImplementedError

    @staticmethod
    def _blas_loop(name: str, a: np.ndarray):
        """The compiled loop ``kernels.recurrent.<name>`` and NumPy's gemm for ``a``'s dtype, when the
        kernels run for ``a`` (kernels.ready) and NumPy's BLAS is found (kernels/blas.py); else None."""
        if not kernels.ready(a, a):
            return None
        from ..kernels import blas

        gemm = blas.gemm(a.dtype)
        return None if gemm is None else (kernels.compiled("recurrent", name), gemm)

    def _start_hidden_grads(self, grad: np.ndarray, T: int, n: int) -> np.ndarray:
        """dL/dh_t from the layer above, time-major (T, n, H): every step, or only the last."""
        if self.return_sequences:
            return np.array(np.transpose(grad, (1, 0, 2)), dtype=self.dtype, order="C", copy=True)
        # no zeros: the layers' loops write every dh_{t-1} (= δ_t·W_hhᵀ, and more) before reading it
        dh = np.empty((T, n, self.n_hidden), self.dtype)
        dh[-1] = grad
        return dh

    def _output(self, hs: np.ndarray) -> np.ndarray:
        """h_1..h_T batch-first (a view of the time-major states), or h_T."""
        return hs.transpose(1, 0, 2) if self.return_sequences else hs[-1]

    def _weight_grads(self, delta: np.ndarray, h0: np.ndarray, hs: np.ndarray,
                      need_input_grad: bool) -> np.ndarray | None:
        """Sum the per-step gradients with one matrix product each.

        delta (T, n, G) = dL/dz_t at every step, hs (T, n, H) the hidden states h_1..h_T:
        dL/dW_ih = Σ_t x_tᵀ δ_t,  dL/dW_hh = Σ_t h_{t-1}ᵀ δ_t,  dL/db = Σ_t Σ_n δ_t,
        dL/dx_t = δ_t · W_ihᵀ.
        """
        x = self._input
        T, n, _ = x.shape
        width = delta.shape[2]
        delta2 = delta.reshape(T * n, width)
        np.matmul(x.reshape(T * n, self.n_in).T, delta2, out=self.grads["weight_ih"])
        np.add.reduce(delta2, axis=0, out=self.grads["bias"])
        grad_hh = self.grads["weight_hh"]
        np.matmul(h0.T, delta[0], out=grad_hh)
        if T > 1:  # h_1..h_{T-1} are the first T − 1 blocks of hs: no copy
            grad_hh += hs[:-1].reshape((T - 1) * n, self.n_hidden).T @ delta[1:].reshape((T - 1) * n, width)
        if not need_input_grad:
            return None
        return (delta2 @ self.params["weight_ih"].T).reshape(T, n, self.n_in).transpose(1, 0, 2)

    # --- shapes and saving -----------------------------------------------------------------
    def output_shape(self, input_shape: tuple) -> tuple:
        time = input_shape[0] if len(input_shape) == 2 else None
        return (time, self.n_hidden) if self.return_sequences else (self.n_hidden,)

    def get_config(self) -> dict:
        return {"n_in": self.n_in, "n_hidden": self.n_hidden,
                "return_sequences": self.return_sequences, "stateful": self.stateful}


class RNN(Recurrent):
    """Elman recurrent layer with tanh or ReLU, torch.nn.RNN's equations (batch first).

    forward, for t = 1..T, with h_0 the initial state (zeros by default):
        z_t = x_t · W_ih + h_{t-1} · W_hh + b        x_t (n, n_in), h_t (n, H)
        h_t = f(z_t)                                 f = tanh or relu
        output: h_1..h_T as (n, T, H) when return_sequences, else h_T as (n, H)

    backward (BPTT), g_t = dL/dh_t from the layer above (0 for t < T when only h_T is returned):
        dh_T     = g_T
        δ_t      = dh_t ∘ f'(z_t)              f' = 1 − h_t² (tanh), [h_t > 0] (relu)
        dh_{t-1} = g_{t-1} + δ_t · W_hhᵀ
        dL/dW_ih = Σ_t x_tᵀ δ_t    dL/dW_hh = Σ_t h_{t-1}ᵀ δ_t    dL/db = Σ_t Σ_n δ_t
        dL/dx_t  = δ_t · W_ihᵀ     dL/dh_0  = δ_1 · W_hhᵀ

    Parameters
    ----------
    n_in, n_hidden : int
    activation : {"tanh", "relu"}
    return_sequences : bool
        Return every hidden state (n, T, H) or only the last (n, H).
    stateful : bool
        Carry the final state into the next batch (see the module docstring).
    weight_ih, weight_hh, bias : array_like, optional
        Explicit initial values, shapes (n_in, H), (H, H), (H,). From torch:
        ``weight_ih = weight_ih_l0.T``, ``weight_hh = weight_hh_l0.T``,
        ``bias = bias_ih_l0 + bias_hh_l0``.
    init : str or Initializer, optional
        Initializer of both weights; by default every parameter ~ U(−1/√H, 1/√H) like torch
        (with ``init`` given, the bias starts at zero).
    seed : int or numpy.random.Generator, optional
    dtype : numpy dtype
    """

    def __init__(self, n_in: int, n_hidden: int, activation: str = "tanh",
                 return_sequences: bool = False, stateful: bool = False, weight_ih=None,
                 weight_hh=None, bias=None, init=None, seed=None, dtype=np.float32) -> None:
        if activation not in ("tanh", "relu"):
            raise ConfigError(f"RNN activation must be 'tanh' or 'relu', got {activation!r}")
        self.activation = activation
        super().__init__(n_in, n_hidden, return_sequences, stateful, weight_ih, weight_hh, bias,
                         init, seed, dtype)

    def forward(self, x: np.ndarray, training: bool = False, initial_state=None) -> np.ndarray:
        x = self._time_major(x)
        T, n, _ = x.shape
        (h,) = self._start_state(n, training, initial_state)
        w_hh = self.params["weight_hh"]
        # hs (T, n, H) first holds every pre-activation x_t·W_ih + b (one matrix product; b added
        # below, or step by step inside the compiled loop), then h_t in place
        hs = (x.reshape(T * n, self.n_in) @ self.params["weight_ih"]).reshape(T, n, self.n_hidden)
        recur = np.empty((n, self.n_hidden), self.dtype)
        relu = self.activation == "relu"
        h0 = h
        # with numba, every step in one compiled call (kernels/recurrent.py), the bias added there;
        # its tanh is float32 only
        loop = self._blas_loop("rnn_forward", hs) if relu or hs.dtype == np.float32 else None
        if loop is not None:
            kernel, gemm = loop
            h0 = np.ascontiguousarray(h0, self.dtype)
            kernel(gemm, hs, h0, np.ascontiguousarray(w_hh), recur, np.ascontiguousarray(self.params["bias"]),
                   relu, self.dtype.type(0))
        else:
            hs += self.params["bias"]
            for t in range(T):
                z = hs[t]
                np.matmul(h, w_hh, out=recur)
                z += recur
                if relu:
                    np.maximum(z, 0, out=z)
                else:
                    np.tanh(z, out=z)
                h = z
        self._input, self._h0, self._hs = x, h0, hs
        self._end_state((hs[-1].copy(),), training)
        return self._output(hs)

    def _backward(self, grad, need_input_grad):
        hs = self._hs
        T, n, _ = hs.shape
        dh = self._start_hidden_grads(grad, T, n)
        w_hh_t = np.ascontiguousarray(self.params["weight_hh"].T)  # BLAS is quicker with a C-ordered Wᵀ
        back = np.empty((n, self.n_hidden), self.dtype)
        loop = self._blas_loop("rnn_backward", hs)  # with numba: these steps in one compiled call
        if loop is not None:  # f'(z_t) taken from h_t inside, step by step
            kernel, gemm = loop
            delta = np.empty_like(hs)
            kernel(gemm, dh, hs, delta, w_hh_t, back, self.return_sequences, self.activation == "relu",
                   self.dtype.type(1), self.dtype.type(0))
        else:
            if self.activation == "tanh":
                delta = np.multiply(hs, hs)
                np.subtract(1, delta, out=delta)          # f'(z_t) = 1 − h_t²
            else:
                delta = (hs > 0).astype(self.dtype)
            for t in range(T - 1, -1, -1):
                d = np.multiply(dh[t], delta[t], out=delta[t])              # δ_t = dh_t ∘ f'(z_t)
                if t and not self.return_sequences:                         # dh_{t-1} = δ_t · W_hhᵀ
                    np.matmul(d, w_hh_t, out=dh[t - 1])
                    continue
                np.matmul(d, w_hh_t, out=back)                               # δ_t · W_hhᵀ
                if t:
                    dh[t - 1] += back
        self.initial_state_grad = (back.copy(),)
        self._hidden_grads = dh
        return self._weight_grads(delta, self._h0, hs, need_input_grad)

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": self.activation}


class TimeDistributed(Layer):
    """Apply a layer to every time step: (n, T, ...) -> (n·T, ...) -> layer -> (n, T, ...).

    forward:  y_t = layer(x_t) for every t, as one batch of n·T rows
    backward: the wrapped layer's backward on the n·T rows (its parameter gradients are summed
              over samples and steps), reshaped back to (n, T, ...)

    The parameters and buffers are the wrapped layer's (the same arrays, the same dicts).

    Parameters
    ----------
    layer : Layer or dict
        The layer to apply, or ``{"class": name, "config": {...}}`` (how a file stores it).
    """

    def __init__(self, layer) -> None:
        super().__init__()
        if isinstance(layer, dict):
            layer = layer_from_config(layer["class"], layer.get("config", {}))
        if not isinstance(layer, Layer):
            raise ConfigError(f"TimeDistributed needs a Layer, got {layer!r}")
        self.layer = layer
        self.params, self.grads = layer.params, layer.grads
        self.buffers = getattr(layer, "buffers", {})  # (BatchNorm's running statistics: saved with the model)
        self._lead: tuple | None = None

    def forward(self, x, training=False):
        if x.ndim < 3:
            raise ShapeError(f"{self!r} expects input of shape (n_samples, time, ...),"
                             f" got array of shape {x.shape}")
        self._lead = x.shape[:2]
        out = self.layer.forward(x.reshape(-1, *x.shape[2:]), training)
        return out.reshape(*self._lead, *out.shape[1:])

    def backward(self, grad):
        grad_in = self.layer.backward(grad.reshape(-1, *grad.shape[2:]))
        return grad_in.reshape(*self._lead, *grad_in.shape[1:])

    def backward_params(self, grad):
        flat = grad.reshape(-1, *grad.shape[2:])
        if hasattr(self.layer, "backward_params"):
            self.layer.backward_params(flat)
        else:
            self.layer.backward(flat)

    def astype(self, dtype):
        self.layer.astype(dtype)
        self.params, self.grads = self.layer.params, self.layer.grads
        self.dtype = np.dtype(dtype)
        return self

    def output_shape(self, input_shape):
        return (input_shape[0], *self.layer.output_shape(tuple(input_shape[1:])))

    def get_config(self):
        return {"layer": {"class": type(self.layer).__name__, "config": self.layer.get_config()}}

    def __repr__(self):
        return f"TimeDistributed({self.layer!r})"
