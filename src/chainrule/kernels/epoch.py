"""The plain training step of a Dense network, run for many batches in one compiled call (numba;
see __init__ and chainrule.step.DenseRuns, which decides when it runs).

Per batch b of the epoch's order, with the rows ``order[b·bs : (b+1)·bs]`` (m of them):

    A⁰ = X[rows]                                  (m, n₀)   gathered into a work array
    Zˡ = Aˡ⁻¹·Wˡ + bˡ,  Aˡ = fˡ(Zˡ)                (m, nˡ)   fˡ: identity, ReLU, sigmoid or tanh
    L, dL/dA^L = the loss of (A^L, targets)                 cross-entropy from logits and labels,
                                                            MSE or SSE (the loss's own kernel or NumPy
                                                            code, written the same way below)
    dL/dZˡ = dL/dAˡ ∘ fˡ′                         (m, nˡ)   from Aˡ, as the activation layers do
    dL/dWˡ = Aˡ⁻¹ᵀ·dL/dZˡ,  dL/dbˡ = Σ_rows dL/dZˡ          into the layers' own grads arrays
    dL/dAˡ⁻¹ = dL/dZˡ·Wˡᵀ                                   (not for the first layer)
    θ ← the update of every parameter                       kernels.optim.sgd or .adam, the same functions

A batch whose loss is not finite stops the call before its backward pass: nothing of that batch is
updated, and the call returns its index (else ``stop``). Each element-wise line is the arithmetic
of the NumPy layer, loss or optimizer it stands for, in the same order and in the array's dtype;
the products are the gemm calls np.dot makes, into NumPy's own BLAS (kernels/blas.py); the sums
over rows run in order as NumPy's add.reduce does over axis 0. What can differ from the
layer-by-layer path: the last bits of sigmoid and tanh (the C library's tanh against NumPy's),
of a one-row product (NumPy may take gemv there), and a float32 loss value, summed in float64 here
as the loss kernels do.

This module is imported by ``kernels.compiled`` only, after numba: the functions it calls are
the other kernels, compiled. numba's disk cache knows a compiled function by its own file: after
an edit of kernels/optim.py or kernels/losses.py, touch this file (or empty ``__pycache__``), or
the cached loop keeps the old update and loss (tests/test_kernels_epoch.py would show it: it
compares the two paths).
"""

from __future__ import annotations

import math

import numba

from . import compiled
from .blas import NO_TRANS, ROW_MAJOR, TRANS

_helper = numba.njit(cache=True, nogil=True, error_model="numpy")
_sgd = compiled("optim", "sgd")
_adam = compiled("optim", "adam")
_cross_entropy = compiled("losses", "cross_entropy_labels")

# activation codes (chainrule.step.DenseRuns): what follows each Dense layer
IDENTITY, RELU, SIGMOID, TANH = 0, 1, 2, 3
# loss codes
CROSS_ENTROPY, MSE, SSE = 0, 1, 2
# update rules: SGD (kernels.optim.sgd) and Adam/AdamW (kernels.optim.adam)
SGD, ADAM = 0, 1
# the rules' settings in ``hyper`` (in the parameters' dtype) and ``hyper64`` (float64)
LR, MOMENTUM, KEEP, WEIGHT_DECAY, BETA1, ONE_MINUS_BETA1, BETA2, ONE_MINUS_BETA2, EPS, DECAY, TINY, TINY_V = range(12)


@_helper
def _product(gemm, a, b, out, transpose_a, transpose_b):
    """out = op(a)·op(b) by NumPy's BLAS gemm (kernels.blas): op transposes where asked; a, b and
    out C-contiguous. The call np.dot makes for a, a.T, b or b.T, so the same bits."""
    m, n = out.shape
    k = a.shape[0] if transpose_a else a.shape[1]
    gemm(ROW_MAJOR, TRANS if transpose_a else NO_TRANS, TRANS if transpose_b else NO_TRANS, m, n, k, 1.0,
         a.ctypes, a.shape[1], b.ctypes, b.shape[1], 0.0, out.ctypes, n)


@_helper
def _bias_activate(z, bias, code, zero, half):
    """Aˡ = fˡ(Zˡ + bˡ) in place (no bias when it has size 0). Row by row, each row a 1-D slice
    and the activation chosen outside the inner loop: LLVM vectorizes those loops (not one that
    indexes z[i, j] or branches on the code per element)."""
    for i in range(z.shape[0]):
        row = z[i]
        if bias.size:
            for j in range(row.size):
                row[j] += bias[j]
        if code == RELU:
            for j in range(row.size):
                v = row[j]
                row[j] = zero if v <= zero else v
        elif code == SIGMOID:  # ½·tanh(z/2) + ½, as the Sigmoid layer
            for j in range(row.size):
                row[j] = math.tanh(row[j] * half) * half + half
        elif code == TANH:
            for j in range(row.size):
                row[j] = math.tanh(row[j])


@_helper
def _derivative(grad, a, code, zero, one):
    """dL/dZ = dL/dA ∘ f′ in place, from A = f(Z): the activation layers' backward."""
    if code == IDENTITY:
        return
    for i in range(grad.shape[0]):
        g, out = grad[i], a[i]
        if code == RELU:
            for j in range(g.size):
                g[j] = g[j] if out[j] > zero else g[j] * zero
        elif code == SIGMOID:
            for j in range(g.size):
                g[j] = g[j] * out[j] * (one - out[j])
        else:
            for j in range(g.size):
                g[j] = g[j] * (one - out[j] * out[j])


@_helper
def _row_sum(delta, out):
    """out = Σ_rows delta, row after row in the dtype (NumPy's add.reduce over axis 0)."""
    first = delta[0]
    for j in range(out.size):
        out[j] = first[j]
    for i in range(1, delta.shape[0]):
        row = delta[i]
        for j in range(out.size):
            out[j] += row[j]


@_helper
def _sgd_step(param, grad, buf, hyper, nesterov, first):
    """kernels.optim.sgd with the settings of ``hyper``."""
    _sgd(param, grad, buf, hyper[LR], hyper[MOMENTUM], hyper[KEEP], hyper[WEIGHT_DECAY], nesterov, first,
         hyper[TINY])


@_helper
def _adam_step(param, grad, m, v, steps, index, hyper, hyper64, step_scalars):
    """kernels.optim.adam at step t = ++steps[index]: lr/(1 − β₁ᵗ) and 1/√(1 − β₂ᵗ) in float64, as
    optim.Adam computes them in Python, then rounded to the dtype."""
    steps[index] += 1
    t = float(steps[index])
    step_scalars[0] = hyper64[0] / (1 - hyper64[1] ** t)
    step_scalars[1] = 1 / math.sqrt(1 - hyper64[2] ** t)
    _adam(param, grad, m, v, step_scalars[0], hyper[BETA1], hyper[ONE_MINUS_BETA1], hyper[BETA2],
          hyper[ONE_MINUS_BETA2], step_scalars[1], hyper[EPS], hyper[WEIGHT_DECAY], hyper[DECAY], hyper[TINY],
          hyper[TINY_V])


@_helper
def _squared(out, targets, m, grad, factor):
    """Σ (o − t)² over the batch (float64), and grad = (o − t)·factor (factor 1: o − t as is)."""
    total = 0.0
    for i in range(m):
        o, t, g = out[i], targets[i], grad[i]
        for k in range(o.size):
            d = o[k] - t[k]
            total += float(d) * float(d)
            g[k] = d * factor
    return total


def dense_runs(gemm, X, y_labels, y_rows, order, start, stop, bs, weights, biases, grad_w, grad_b, buf_w, buf_b,
               aux_w, aux_b, steps, codes, acts, deltas, labels, targets, loss, scales, value_scales, rule, hyper,
               hyper64, step_scalars, nesterov, first, zero, one, half, values):
    """Batches ``start`` to ``stop`` − 1 of the epoch's ``order``; each batch's loss into ``values``.

    ``gemm``: NumPy's BLAS gemm for the dtype (kernels.blas.gemm), a ctypes function.
    The targets: class labels ``y_labels`` (n,) for cross-entropy, else rows ``y_rows`` (n, k) (the
    other one empty: numba types both branches).

    weights, biases, grad_w, grad_b: one array per Dense layer (a bias of size 0 when the layer has
    none). The update's state, per parameter: SGD's momentum buffers in buf_* (the gradients
    without momentum); Adam's m in buf_* and v in aux_*, and its step count t in ``steps`` (the
    weights' then the biases', counted up here). acts[l] (bs, nˡ) and deltas[l] hold Aˡ and dL/dAˡ.
    scales[0]/[1]: the gradient's factor for a full and for the last batch, in the dtype;
    value_scales likewise for the loss value (float64). ``hyper``: the rule's settings in the dtype
    (the indices above), ``hyper64``: lr, β₁, β₂ as Python floats, from which Adam's bias
    corrections lr/(1 − β₁ᵗ) and 1/√(1 − β₂ᵗ) are computed in float64 as optim.Adam does, then
    rounded to the dtype through ``step_scalars`` (a 2-array of it). ``first``: SGD's momentum
    buffers start as the first gradient. Returns the first batch not run.
    """
    n = order.size
    depth = len(weights)
    for b in range(start, stop):
        lo = b * bs
        m = min(n, lo + bs) - lo
        last = 1 if m < bs else 0
        x = acts[0][:m]
        for i in range(m):
            x[i] = X[order[lo + i]]
        if loss == CROSS_ENTROPY:
            for i in range(m):
                labels[i] = y_labels[order[lo + i]]
        else:
            for i in range(m):
                targets[i] = y_rows[order[lo + i]]
        # forward
        for layer in range(depth):
            z = acts[layer + 1][:m]
            _product(gemm, acts[layer][:m], weights[layer], z, False, False)
            _bias_activate(z, biases[layer], codes[layer], zero, half)
        # the loss and dL/dA^L
        out, grad = acts[depth][:m], deltas[depth][:m]
        if loss == CROSS_ENTROPY:
            value = _cross_entropy(out, labels[:m], scales[last], grad)
        elif loss == MSE:
            value = _squared(out, targets, m, grad, scales[last])
        else:
            value = 0.5 * _squared(out, targets, m, grad, scales[last])
        value *= value_scales[last]
        values[b] = value
        if not math.isfinite(value):
            return b
        # backward
        for layer in range(depth - 1, -1, -1):
            dz = deltas[layer + 1][:m]
            _derivative(dz, acts[layer + 1][:m], codes[layer], zero, one)
            _product(gemm, acts[layer][:m], dz, grad_w[layer], True, False)
            if grad_b[layer].size:
                _row_sum(dz, grad_b[layer])
            if layer > 0:
                _product(gemm, dz, weights[layer], deltas[layer][:m], False, True)
        # update
        for layer in range(depth):
            if rule == SGD:
                _sgd_step(weights[layer].ravel(), grad_w[layer].ravel(), buf_w[layer].ravel(), hyper, nesterov, first)
                if biases[layer].size:
                    _sgd_step(biases[layer], grad_b[layer], buf_b[layer], hyper, nesterov, first)
            else:
                _adam_step(weights[layer].ravel(), grad_w[layer].ravel(), buf_w[layer].ravel(), aux_w[layer].ravel(),
                           steps, layer, hyper, hyper64, step_scalars)
                if biases[layer].size:
                    _adam_step(biases[layer], grad_b[layer], buf_b[layer], aux_b[layer], steps, depth + layer, hyper,
                               hyper64, step_scalars)
        first = False
    return stop
