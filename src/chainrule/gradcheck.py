"""Finite-difference gradient checking.

For every parameter entry θ, the analytic dL/dθ from ``backward`` is compared with the
fourth-order central difference

    (−L(θ + 2h) + 8·L(θ + h) − 8·L(θ − h) + L(θ − 2h)) / (12h)

whose error is O(h⁴) instead of the O(h²) of the two-point formula, so a step of h = 1e-3
keeps both truncation and rounding error near 1e-13 in float64. The relative error of an
entry is |a − n| / max(|a|, |n|, floor): entries smaller than ``floor`` (1e-5) are compared on
an absolute scale, since no finite difference resolves a relative error of a gradient that
is itself close to the rounding noise of the loss.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ._checks import check_number
from .errors import ConfigError
from .losses import get_loss


@dataclass
class ParamCheck:
    """The comparison for one parameter array (or the input)."""

    name: str
    shape: tuple
    max_relative_error: float
    max_abs_error: float
    worst_index: tuple
    analytic: np.ndarray = field(repr=False)
    numeric: np.ndarray = field(repr=False)


@dataclass
class GradcheckReport:
    """Per-parameter results; ``ok`` is True when every relative error is below ``tolerance``."""

    checks: list[ParamCheck]
    tolerance: float
    dtype: np.dtype
    floor: float = 1e-5

    @property
    def max_relative_error(self) -> float:
        return max((c.max_relative_error for c in self.checks), default=0.0)

    @property
    def ok(self) -> bool:
        return self.max_relative_error < self.tolerance

    def __getitem__(self, name: str) -> ParamCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        w = max([len(c.name) for c in self.checks] + [9])
        lines = [f"{'parameter':<{w}}  {'shape':<12}  {'max rel. error':>14}  {'max abs. error':>14}"]
        for c in self.checks:
            flag = "" if c.max_relative_error < self.tolerance else "  FAIL"
            lines.append(f"{c.name:<{w}}  {str(c.shape):<12}  {c.max_relative_error:>14.3e}"
                         f"  {c.max_abs_error:>14.3e}{flag}")
        verdict = "ok" if self.ok else "FAILED"
        lines.append(f"gradcheck {verdict}: max relative error {self.max_relative_error:.3e}"
                     f" (tolerance {self.tolerance:g}, {np.dtype(self.dtype).name})")
        return "\n".join(lines)

    _ENTRY_ROWS = 48  # up to this many entries in all, the tables show every entry; else each array's worst

    def _rows(self) -> tuple[list[tuple[str, str, str, str, str]], str]:
        """(parameter, analytic, numeric, relative error, pass/fail) rows, and what they show."""
        every = sum(int(np.size(c.analytic)) for c in self.checks) <= self._ENTRY_ROWS
        rows = []
        for c in self.checks:
            a, n = np.asarray(c.analytic), np.asarray(c.numeric)
            rel = relative_error(a, n, self.floor)
            indices = list(np.ndindex(a.shape)) if every else ([c.worst_index] if a.size else [])
            for idx in indices:
                where = f"{c.name}[{', '.join(map(str, idx))}]" if idx else c.name
                passed = "pass" if rel[idx] < self.tolerance else "FAIL"
                rows.append((where, f"{a[idx]:.9g}", f"{n[idx]:.9g}", f"{rel[idx]:.2e}", passed))
        shows = "every entry" if every else "the entry with the largest relative error of each parameter"
        return rows, shows

    def _verdict(self) -> str:
        return (f"gradcheck {'ok' if self.ok else 'FAILED'}: max relative error {self.max_relative_error:.3e}"
                f" (tolerance {self.tolerance:g}, {np.dtype(self.dtype).name})")

    _HEAD = ("parameter", "analytic", "numeric", "relative error", "pass/fail")

    def _repr_html_(self) -> str:
        from ._display import html_table

        rows, shows = self._rows()
        table = html_table(self._HEAD, rows, caption=self._verdict(), footer=f"rows: {shows}", right=(1, 2, 3))
        return f"<div>{table}</div>"

    def _repr_markdown_(self) -> str:
        from ._display import markdown_table

        rows, shows = self._rows()
        return f"**{self._verdict()}**\n\n{markdown_table(self._HEAD, rows)}\n\nrows: {shows}"


def relative_error(a: np.ndarray, n: np.ndarray, floor: float = 1e-5) -> np.ndarray:
    """|a − n| / max(|a|, |n|, floor), element-wise."""
    return np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)


def gradcheck(net, loss, X, y, step: float = 1e-3, tolerance: float = 1e-7,
              check_input: bool = False, training: bool = False, floor: float = 1e-5,
              dtype=np.float64) -> GradcheckReport:
    """Compare every analytic gradient of ``net`` with central finite differences.

    Parameters
    ----------
    net : Sequential
        Left untouched: the check runs on a copy in ``dtype``.
    loss : Loss or name
    X, y : arrays
        A small batch (each parameter entry costs four forward passes).
    step : float
        Finite-difference step h.
    tolerance : float
        ``ok`` when every relative error is below it.
    check_input : bool
        Also check dL/dX.
    training : bool
        Run layers in training mode; random layers (Dropout) reuse the same mask for every
        evaluation, so the function being differentiated stays fixed.
    dtype : float64 (default) or float32
        float32 differences are too coarse for a tight check; a warning says so.

    Returns
    -------
    GradcheckReport
        ``.ok``, ``.max_relative_error``, and one entry per parameter ("0.weight", ...).
    """
    check_number(step, "gradcheck step", low=0, low_open=True)
    check_number(tolerance, "gradcheck tolerance", low=0)
    check_number(floor, "gradcheck floor", low=0)
    dtype = np.dtype(dtype)
    if dtype != np.float64:
        warnings.warn(
            f"gradcheck in {dtype.name}: rounding error of about {np.finfo(dtype).eps:.1e} makes"
            " finite differences too coarse for a tight check; use float64 (the default)",
            stacklevel=2,
        )
    loss = get_loss(loss)
    net = net.astype(dtype)
    if check_input and net.layers and getattr(net.layers[0], "input_kind", None) == "index":
        raise ConfigError(f"gradcheck check_input=True: {net.layers[0]!r} takes integer ids, which"
                          " have no gradient; check the parameters only (check_input=False)")
    X = net._check_input(X, "gradcheck X")
    probe = net.forward(X[:1])
    y = loss.prepare_target(y, (len(X), *probe.shape[1:]), dtype)
    from .checkpoint import network_generators  # every Dropout's generator, nested ones included

    rngs = [(rng, rng.bit_generator.state) for rng in network_generators(net).values()]

    def run_forward(x):
        for rng, state in rngs:
            rng.bit_generator.state = state
        out = x
        for layer in net.layers:
            out = layer.forward(out, training)
        return out

    def loss_at() -> float:
        return loss._value(run_forward(X), y)

    # analytic gradients
    out = run_forward(X)
    _, delta = loss._value_and_grad(out, y)
    grad_x = delta
    for layer in reversed(net.layers):
        grad_x = layer.backward(grad_x)
    analytic = {f"{i}.{k}": g.copy() for i, layer in enumerate(net.layers)
                for k, g in layer.grads.items()}

    def numeric_grad(arr: np.ndarray, f) -> np.ndarray:
        num = np.zeros_like(arr)
        flat, nflat = arr.reshape(-1), num.reshape(-1)
        for j in range(flat.size):
            orig = flat[j]
            vals = []
            for k in (2, 1, -1, -2):
                flat[j] = orig + k * step
                vals.append(f())
            flat[j] = orig
            nflat[j] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * step)
        return num

    checks = []
    for i, layer in enumerate(net.layers):
        for k, p in layer.params.items():
            name = f"{i}.{k}"
            checks.append(_compare(name, analytic[name], numeric_grad(p, loss_at), floor))
    if check_input:
        Xc = X.copy()

        def loss_at_input() -> float:
            return loss._value(run_forward(Xc), y)

        checks.append(_compare("input", grad_x, numeric_grad(Xc, loss_at_input), floor))
    return GradcheckReport(checks, tolerance, dtype, floor)


def _compare(name: str, a: np.ndarray, n: np.ndarray, floor: float) -> ParamCheck:
    rel = relative_error(a, n, floor)
    worst = np.unravel_index(int(np.argmax(rel)), rel.shape) if rel.size else ()
    return ParamCheck(name, a.shape, float(rel.max(initial=0.0)),
                      float(np.abs(a - n).max(initial=0.0)), tuple(int(i) for i in worst), a, n)
