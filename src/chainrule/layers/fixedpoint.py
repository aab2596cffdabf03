"""Fixed-point recurrent networks trained by recurrent backpropagation (Almeida 1987, Pineda 1987).

The layer's output is the equilibrium of a recurrent network driven by a constant input, and its
gradient comes from a second, linear "error network" run to its own equilibrium, with no need to
store the trajectory that led to the fixed point. Liao et al. (ICML 2018) compare this with a
truncated Neumann series and with unrolled backpropagation through time; all three are here.
"""

from __future__ import annotations

import numpy as np

from .._checks import as_rng, check_number, check_positive_int
from ..errors import ChainruleError, ConfigError, ShapeError
from ..init import Uniform, get_initializer
from .base import Layer


class ConvergenceError(ChainruleError, RuntimeError):
    """A relaxation (a fixed point or its adjoint) did not converge within its iteration limit."""


_METHODS = ("rbp", "neumann", "bptt")


class FixedPointRNN(Layer):
    """A recurrent network relaxed to its fixed point, x* = tanh(x*·W + u·U + b).

    forward:  x_0 = 0,  x_k = tanh(a_k),  a_k = x_{k-1}·W + u·U + b,  for k = 1, 2, ... until
              max|x_k − x_{k-1}| <= tol (ConvergenceError after max_iter iterations).
              u (n, n_in) -> x* (n, H), or its first n_out columns (the visible units).

    The Jacobian of one step at the fixed point is J = ∂x_k/∂x_{k-1} = diag(f') Wᵀ per sample,
    f' = 1 − x*², and with g = dL/dx* (zero on the hidden units) the gradient of the loss through
    the equilibrium is dL/dθ = zᵀ ∂F/∂θ with the adjoint z = (I − Jᵀ)⁻¹ g. In rows (batch first):

    method="rbp" (Almeida–Pineda):  relax the error network  z ← g + (z ∘ f')·Wᵀ  from z = g until
              max|Δz| <= backward_tol · max|z|; raise ConvergenceError (with the iteration count)
              when it does not converge, which happens when the spectral radius of J is >= 1.
    method="neumann":  z = Σ_{k=0}^{K-1} (Jᵀ)^k g with K = neumann_steps terms (truncated Neumann
              series, constant memory; equal to BPTT over the last K steps of a converged
              trajectory).
    method="bptt":  store the trajectory x_0..x_K and backpropagate through all K steps:
              δ_k = dL/dx_k ∘ (1 − x_k²),  dL/dx_{k-1} = δ_k·Wᵀ,  dL/dW = Σ_k x_{k-1}ᵀ δ_k,
              dL/da = Σ_k δ_k. With unroll_steps=K the forward runs exactly K steps.

    Then (rbp, neumann) δ = z ∘ f' and
              dL/dW = x*ᵀ δ    dL/dU = uᵀ δ    dL/db = Σ_n δ    dL/du = δ·Uᵀ
    (bptt: the same with Σ_k δ_k in place of δ, and Σ_k x_{k-1}ᵀ δ_k for W).

    Parameters
    ----------
    n_in, n_hidden : int
        Input features and units of the recurrent network.
    n_out : int, optional
        Return only the first n_out units (the visible units); all by default.
    method : {"rbp", "neumann", "bptt"}
    tol, max_iter : float, int
        Forward relaxation tolerance (max-norm of the change) and iteration limit. By default
        1e-5 in float32 and 1e-10 in float64.
    backward_tol, backward_max_iter : float, int
        The adjoint relaxation's (rbp) tolerance, relative to max|z|, and iteration limit.
        By default 1e-5 in float32 and 1e-10 in float64.
    neumann_steps : int
        Terms of the Neumann series (method="neumann").
    unroll_steps : int, optional
        method="bptt": run exactly this many forward steps (no tolerance) and unroll them all.
    weight, weight_in, bias : array_like, optional
        Explicit initial values: W (H, H), U (n_in, H), b (H,); W[i, j] connects unit i to j.
    init : str or Initializer, optional
        Initializer of W and U; by default every parameter ~ U(−1/√H, 1/√H).
    seed : int or numpy.random.Generator, optional
    dtype : numpy dtype

    Attributes
    ----------
    forward_iterations, backward_iterations : int
        Iterations of the last forward relaxation and the last backward pass.
    adjoint : array (n, H)
        z = dL/dx* after backward (rbp and neumann).
    backward_trace : array
        rbp: max|Δz| per iteration; neumann: ‖(Jᵀ)^k g‖ per term; bptt: ‖dL/dx_k‖ for
        k = K..1 (also ``hidden_grad_norms``, in time order).
    """

    # (max_iter, backward_max_iter, neumann_steps and unroll_steps count iterations, not
    # parameters; n_hidden twice: the weight is n_hidden x n_hidden)
    size_args = ("n_in", "n_hidden", "n_hidden", "n_out")

    def __init__(self, n_in: int, n_hidden: int, n_out: int | None = None, method: str = "rbp",
                 tol: float | None = None, max_iter: int = 1000, backward_tol: float | None = None,
                 backward_max_iter: int = 1000, neumann_steps: int = 20,
                 unroll_steps: int | None = None, weight=None, weight_in=None, bias=None,
                 init=None, seed=None, dtype=np.float32) -> None:
        super().__init__()
        check_positive_int(n_in, "FixedPointRNN n_in")
        check_positive_int(n_hidden, "FixedPointRNN n_hidden")
        check_positive_int(n_out, "FixedPointRNN n_out", allow_none=True)
        if n_out is not None and n_out > n_hidden:
            raise ConfigError(f"FixedPointRNN n_out must be <= n_hidden ({n_hidden}), got {n_out}")
        if method not in _METHODS:
            raise ConfigError(f"FixedPointRNN method must be one of {_METHODS}, got {method!r}")
        for value, name in ((tol, "tol"), (backward_tol, "backward_tol")):
            if value is not None:
                check_number(value, f"FixedPointRNN {name}", low=0)
        check_positive_int(max_iter, "FixedPointRNN max_iter")
        check_positive_int(backward_max_iter, "FixedPointRNN backward_max_iter")
        check_positive_int(neumann_steps, "FixedPointRNN neumann_steps")
        check_positive_int(unroll_steps, "FixedPointRNN unroll_steps", allow_none=True)
        self.n_in, self.n_hidden, self.n_out = int(n_in), int(n_hidden), n_out
        self.method, self.max_iter = method, int(max_iter)
        self.tol = None if tol is None else float(tol)
        self.backward_tol = None if backward_tol is None else float(backward_tol)
        self.backward_max_iter = int(backward_max_iter)
        self.neumann_steps, self.unroll_steps = int(neumann_steps), unroll_steps
        self.dtype = np.dtype(dtype)
        rng = as_rng(seed)
        k = 1.0 / np.sqrt(self.n_hidden)
        default = Uniform(-k, k) if init is None else get_initializer(init)
        H = self.n_hidden
        self.params["weight"] = (default if weight is None else get_initializer(weight))((H, H), self.dtype, rng=rng)
        self.params["weight_in"] = (default if weight_in is None else get_initializer(weight_in))(
            (self.n_in, H), self.dtype, rng=rng)
        b_init = Uniform(-k, k) if bias is None and init is None else get_initializer(
            "zeros" if bias is None else bias)
        self.params["bias"] = b_init((H,), self.dtype, rng=rng)
        self.grads = {key: np.zeros_like(p) for key, p in self.params.items()}
        self.forward_iterations = 0
        self.backward_iterations = 0
        self.adjoint: np.ndarray | None = None
        self.backward_trace: np.ndarray | None = None

    # --- forward: relax to the fixed point ------------------------------------------------------
    def check_input(self, u: np.ndarray) -> None:
        """Raise ShapeError unless ``u`` has shape (n_samples, n_in)."""
        if u.ndim != 2 or u.shape[1] != self.n_in:
            raise ShapeError(f"{self!r} expects input of shape (n_samples, {self.n_in}),"
                             f" got array of shape {u.shape}")

    def forward(self, u: np.ndarray, training: bool = False) -> np.ndarray:
        self.check_input(u)
        u = np.ascontiguousarray(u, dtype=self.dtype)
        n, H = len(u), self.n_hidden
        w = self.params["weight"]
        drive = u @ self.params["weight_in"]
        drive += self.params["bias"]                       # u·U + b, constant over the relaxation
        x = np.zeros((n, H), self.dtype)
        nxt = np.empty_like(x)
        fixed_steps = self.method == "bptt" and self.unroll_steps is not None
        steps = self.unroll_steps if fixed_steps else self.max_iter
        trajectory = [x.copy()] if self.method == "bptt" else None
        tol = self._tolerance(self.tol)
        change = np.inf
        k = 0
        while k < steps:
            k += 1
            np.matmul(x, w, out=nxt)
            nxt += drive
            np.tanh(nxt, out=nxt)
            if trajectory is not None:
                trajectory.append(nxt.copy())
            np.subtract(nxt, x, out=x)
            change = float(np.abs(x).max(initial=0.0))
            x, nxt = nxt, x
            if not fixed_steps and change <= tol:
                break
        if not fixed_steps and change > tol:
            raise ConvergenceError(
                f"{self!r} forward did not reach a fixed point in {k} iterations: the last change"
                f" max|x_k − x_(k-1)| was {change:.3g}, tolerance {tol:g}. The recurrent weights"
                " are probably too large (spectral radius of the Jacobian >= 1); raise max_iter or"
                " tol only if the change is still shrinking"
            )
        self.forward_iterations = k
        self._input, self._fixed_point, self._trajectory = u, x, trajectory
        return x if self.n_out is None else x[:, :self.n_out]

    def _tolerance(self, value: float | None) -> float:
        if value is not None:
            return value
        return 1e-5 if self.dtype == np.float32 else 1e-10

    # --- backward: the adjoint ------------------------------------------------------------------
    def _full_grad(self, grad: np.ndarray) -> np.ndarray:
        if self.n_out is None:
            return np.array(grad, dtype=self.dtype, copy=True)
        g = np.zeros((len(grad), self.n_hidden), self.dtype)
        g[:, :self.n_out] = grad
        return g

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return self._backward(grad, need_input_grad=True)

    def backward_params(self, grad: np.ndarray) -> None:
        self._backward(grad, need_input_grad=False)

    def _backward(self, grad, need_input_grad):
        g = self._full_grad(grad)
        if self.method == "bptt":
            delta_sum = self._backward_bptt(g)
        else:
            x = self._fixed_point
            slope = np.multiply(x, x)
            np.subtract(1, slope, out=slope)               # f' = 1 − x*²
            z = self._adjoint_rbp(g, slope) if self.method == "rbp" else self._adjoint_neumann(g, slope)
            self.adjoint = z
            delta_sum = np.multiply(z, slope)              # δ = z ∘ f'
            np.matmul(x.T, delta_sum, out=self.grads["weight"])
        np.matmul(self._input.T, delta_sum, out=self.grads["weight_in"])
        np.sum(delta_sum, axis=0, out=self.grads["bias"])
        return delta_sum @ self.params["weight_in"].T if need_input_grad else None

    def _adjoint_rbp(self, g: np.ndarray, slope: np.ndarray) -> np.ndarray:
        """Relax z ← g + (z ∘ f')·Wᵀ (the error network) to its fixed point z = (I − Jᵀ)⁻¹ g."""
        w_t = self.params["weight"].T
        scale = float(np.abs(g).max(initial=0.0))
        if scale == 0.0:
            self.backward_iterations, self.backward_trace = 0, np.zeros(0)
            return g
        tol = self._tolerance(self.backward_tol)
        z, nxt, scaled = g.copy(), np.empty_like(g), np.empty_like(g)
        trace = []
        for k in range(1, self.backward_max_iter + 1):
            np.multiply(z, slope, out=scaled)
            np.matmul(scaled, w_t, out=nxt)
            nxt += g
            np.subtract(nxt, z, out=z)
            change = float(np.abs(z).max())
            trace.append(change)
            z, nxt = nxt, z
            limit = tol * float(np.abs(z).max())
            if change <= limit:
                self.backward_iterations, self.backward_trace = k, np.array(trace)
                return z
            if not np.isfinite(change) or change > 1e8 * scale:
                break
        self.backward_iterations, self.backward_trace = k, np.array(trace)
        rate = trace[-1] / trace[-2] if len(trace) > 1 and trace[-2] > 0 else float("nan")
        if rate < 0.999:
            why = (f"the change still shrinks, by a factor of about {rate:.4g} per iteration: the"
                   " fixed point is close to unstable; raise backward_max_iter or backward_tol")
        else:
            why = (f"the change shrinks by a factor of about {rate:.4g} per iteration, so the"
                   " spectral radius of the Jacobian J at the fixed point is >= 1 (or the"
                   " tolerance is below rounding error). Use smaller recurrent weights, or"
                   " method='neumann'")
        raise ConvergenceError(
            f"{self!r} backward (the Almeida–Pineda adjoint z = g + Jᵀz) did not converge:"
            f" after {k} iterations the change max|Δz| was {trace[-1]:.3g}, tolerance {limit:.3g}"
            f" (backward_tol {tol:g} × max|z|); {why}"
        )

    def _adjoint_neumann(self, g: np.ndarray, slope: np.ndarray) -> np.ndarray:
        """z = Σ_{k=0}^{K-1} (Jᵀ)^k g, term by term: v_0 = g, v_k = (v_{k-1} ∘ f')·Wᵀ."""
        w_t = self.params["weight"].T
        z, v = g.copy(), g.copy()
        trace = [float(np.linalg.norm(g))]
        for _ in range(1, self.neumann_steps):
            v *= slope
            v = v @ w_t
            z += v
            trace.append(float(np.linalg.norm(v)))
        self.backward_iterations, self.backward_trace = self.neumann_steps, np.array(trace)
        return z

    def _backward_bptt(self, g: np.ndarray) -> np.ndarray:
        """Backpropagate through the stored trajectory x_0..x_K; fill dL/dW; return Σ_k δ_k."""
        traj = self._trajectory
        w_t = self.params["weight"].T
        grad_w = self.grads["weight"]
        grad_w[...] = 0
        delta_sum = np.zeros_like(g)
        dx, norms = g, []
        for k in range(len(traj) - 1, 0, -1):
            norms.append(float(np.linalg.norm(dx)))
            x_k = traj[k]
            delta = dx * (1 - x_k * x_k)                   # δ_k = dL/dx_k ∘ (1 − x_k²)
            grad_w += traj[k - 1].T @ delta
            delta_sum += delta
            dx = delta @ w_t
        self.backward_iterations = len(traj) - 1
        self.backward_trace = np.array(norms)
        self.adjoint = None
        return delta_sum

    @property
    def hidden_grad_norms(self) -> np.ndarray | None:
        """method="bptt": ‖dL/dx_k‖ for k = 1..K after backward (None for the other methods)."""
        if self.method != "bptt" or self.backward_trace is None:
            return None
        return self.backward_trace[::-1].copy()

    # --- shapes and saving ----------------------------------------------------------------------
    def output_shape(self, input_shape: tuple) -> tuple:
        return (self.n_hidden if self.n_out is None else self.n_out,)

    def get_config(self) -> dict:
        return {"n_in": self.n_in, "n_hidden": self.n_hidden, "n_out": self.n_out,
                "method": self.method, "tol": self.tol, "max_iter": self.max_iter,
                "backward_tol": self.backward_tol, "backward_max_iter": self.backward_max_iter,
                "neumann_steps": self.neumann_steps, "unroll_steps": self.unroll_steps}
