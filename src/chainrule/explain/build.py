"""explain(): run a network's forward and backward passes and write out every step."""

from __future__ import annotations

import numpy as np

from .._checks import (
    as_array,
    as_float_array,
    check_batch,
    check_finite,
    check_not_empty,
    check_number,
    check_positive_int,
)
from ..errors import ConfigError, ShapeError
from ..losses import get_loss
from ..optim import SGD
from . import layered
from .formulas import LossForm
from .matrix import matrix_steps
from .names import Names
from .scalar import scalar_steps
from .summary import summary_steps
from .symbols import Expr, Lit, Num, Sym, deriv, format_number, layer_sym, total_error
from .tape import Pass, check_entries, forward_only, levels_of, run_pass
from .trace import Step, Trace

#: The size bound beyond which explain gives the layer summary instead of every unit.
MAX_WEIGHTS = 100
MAX_UNITS = 16
MAX_SAMPLES = 8


def explain(net, loss, x, y, lr: float | None = None, notation: str | None = None, *, n_steps: int = 1,
            digits: int = 9, max_weights: int = MAX_WEIGHTS, max_units: int = MAX_UNITS,
            max_samples: int = MAX_SAMPLES, title: str | None = None) -> Trace:
    """Write out the chain rule of ``net`` on ``(x, y)``, number by number.

    Runs the network's own forward and backward passes in float64 (on a copy; ``net`` is not
    changed) and records every step: each unit's weighted sum and activation, the error, every
    weight's and bias's gradient as its chain of factors (with the sum over paths for hidden
    units), a central-difference check of each gradient and, when ``lr`` is given, the
    gradient-descent update and the error after it.

    Parameters
    ----------
    net : Sequential
        Dense layers, each followed by at most one activation (Sigmoid, Tanh, ReLU, LeakyReLU,
        ELU, Softplus, Softmax; Identity and Dropout are skipped, Dropout being the identity
        outside training), written unit by unit or in matrix form. In matrix form also Conv2D,
        MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten, LayerNorm, MultiHeadAttention, GELU and
        activations in any order: layer l maps Aˡ⁻¹ to Aˡ, its inner matrices (a convolution's
        patch matrix, attention's scores and weights) are written out, and every factor of the
        backward pass is numbered and checked against its central difference.
    loss : Loss or name
        SSE, MSE, BinaryCrossEntropy, CrossEntropy (softmax fused: the network gives logits) or
        any other Loss (its value and gradient are then shown without a breakdown).
    x : array (n_samples, n_features) or (n_features,)
        One sample as a 1-D vector, or a small batch (gradients are then sums over its samples).
        For a network of convolutions or attention, the batch with its sample axis first:
        (n, C, H, W) images, (n, T, dim) sequences.
        The bare network's input: a scaler attached to ``net`` is not applied.
    y : array
        Targets as the loss expects them (for one 1-D sample: the target row, or a class label).
    lr : float, optional
        Learning rate η of the plain gradient-descent update w⁺ = w - η·dE/dw (frozen
        parameters are not updated). Without it no update is shown.
    notation : {"scalar", "matrix"}, optional
        "scalar": every unit and weight (i1, h1, o1, w1…wN, numbered as in Mazur's example);
        "matrix": one line per layer (z², a², W¹, δ), with the names mapped onto matrix entries.
        By default "scalar" for Dense layers with their activations, "matrix" for any other network.
    n_steps : int
        Number of gradient-descent steps to write out (needs ``lr`` when above 1).
    digits : int
        Significant digits of the numbers shown (the trace keeps full precision).
    max_weights, max_units, max_samples : int
        The size bound: a network with more weights, more units in a layer, or a batch with more
        samples gets a message and the per-layer summary instead of every unit.
    title : str, optional
        Heading of the trace.

    Returns
    -------
    Trace
        ``str(trace)``, ``trace.to_markdown()``, ``.to_latex()``, ``.to_html()``, ``.steps``,
        ``trace.value("dE/dw5")``.

    Examples
    --------
    >>> import numpy as np, chainrule as cr
    >>> net = cr.Sequential(cr.Dense(2, 1, weight=[[0.15], [0.2]], bias=[0.35]), cr.Sigmoid(),
    ...                     dtype=np.float64)
    >>> trace = cr.explain(net, "sse", [0.05, 0.1], [0.01], lr=0.5)
    >>> print(f"{trace.value('out_o1'):.9f}")
    0.593269992
    >>> [line for line in str(trace).splitlines() if line.startswith("w1⁺")]
    ['w1⁺ = w1 - η·dE/dw1 = 0.15 - 0.5·0.007037173 = 0.146481413']
    """
    if notation not in (None, "scalar", "matrix"):
        raise ConfigError(f"explain notation must be 'scalar' or 'matrix', got {notation!r}")
    if lr is not None:
        check_number(lr, "explain lr", low=0)
    check_positive_int(n_steps, "explain n_steps")
    if n_steps > 1 and lr is None:
        raise ConfigError(f"explain n_steps={n_steps} needs a learning rate lr to take the steps")
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or not 1 <= digits <= 17:
        raise ConfigError(f"explain digits must be an integer from 1 to 17, got {digits!r}")
    for value, name in ((max_weights, "max_weights"), (max_units, "max_units"), (max_samples, "max_samples")):
        check_positive_int(value, f"explain {name}")
    if not hasattr(net, "layers") or not hasattr(net, "astype"):
        raise ConfigError(f"explain expects a chainrule Sequential, got {type(net).__name__}")
    loss = get_loss(loss)
    work = net.astype(np.float64)
    try:
        levels = levels_of(work)
    except ConfigError as exc:
        layered.check_supported(work)
        if notation == "scalar":
            raise ConfigError(f"{exc}; notation='matrix' writes this network out layer by layer") from None
        return _explain_layered(net, work, loss, x, y, lr, n_steps, digits, max_weights, max_units, max_samples,
                                title)
    notation = notation or "scalar"
    X, T = _prepare(work, levels, loss, x, y)
    n = X.shape[0]
    names = Names(levels)
    lf = LossForm(loss, n, levels[-1].n_out)

    n_weights = sum(lvl.dense.params["weight"].size for lvl in levels)
    widest = max([levels[0].n_in] + [lvl.n_out for lvl in levels])
    too_big = _beyond((n_weights, max_weights, "weights"), (widest, max_units, "units in a layer"),
                      (n, max_samples, "samples"))
    oversized = bool(too_big)
    message = None
    if oversized:
        message = (f"This network is too big to write out unit by unit: {', '.join(too_big)}. "
                   "Here is the per-layer summary instead: shapes, norms of δ and dE/dW, and the update "
                   "ratio η·‖dE/dW‖/‖W‖. (Raise max_weights, max_units or max_samples to see every unit.)")

    steps: list[Step] = []
    if oversized:
        steps.append(Step("note", None, [Lit(message)], None))
    else:
        steps += network_steps(names, levels)
    errors: list[float] = []
    graph = None
    for it in range(1, n_steps + 1):
        p = run_pass(levels, loss, X, T)
        errors.append(p.error)
        if oversized:
            steps.append(Step("error", total_error(), [Num(p.error)], p.error, it))
            steps += summary_steps(levels, loss, p, lr, it)
        else:
            if it == 1:
                graph = build_graph(names, levels, p)
            build = scalar_steps if notation == "scalar" else matrix_steps
            steps += build(names, levels, p, lf, it)
            steps += check_steps(names, levels, loss, X, T, p, it)
        if lr is None:
            continue
        before = [{k: v.copy() for k, v in lvl.dense.params.items()} for lvl in levels]
        SGD(lr=lr).step(work)
        if not oversized:
            steps += (update_steps_scalar if notation == "scalar" else update_steps_matrix)(
                names, levels, before, p, lr, it)
        after = float(loss._value(forward_only(levels, X), T))
        steps.append(Step("after", total_error(updated=True), [Num(after)], after, it))
        steps.append(Step("after", Lit("ΔE", r"\Delta E", "ΔE"),
                          [Expr(total_error(updated=True), " - ", total_error()),
                           Expr(Num(after), " - ", Num(p.error, True)), Num(after - p.error)], after - p.error, it))
        if it == n_steps:
            errors.append(after)

    description = _describe(work, levels, lf, n, lr, n_steps, digits, notation)
    if np.dtype(getattr(net, "dtype", np.float64)) != np.float64:
        description.append(f"the network's parameters are {np.dtype(net.dtype).name} (0.15 is stored as"
                           f" {format_number(float(np.float32(0.15)), digits)}); build it with dtype=np.float64"
                           " for a textbook example's exact numbers")
    return Trace(steps, title=title or f"explain: {_shape(levels)} network", description=description,
                 notation=notation, digits=int(digits), lr=lr, n_steps=n_steps, errors=errors, network=work,
                 oversized=oversized, message=message, graph=graph, n_samples=n)


def _explain_layered(net, work, loss, x, y, lr, n_steps, digits, max_weights, max_units, max_samples,
                     title) -> Trace:
    """explain in matrix form, one layer at a time (see layered.py)."""
    X = as_float_array(x, "explain x", np.float64)
    one = X.ndim == 1
    if X.ndim == 0:
        raise ShapeError(f"explain x: expected a batch of samples, sample axis first, got {x!r}")
    X = X.reshape(1, -1) if one else X
    check_not_empty(X, "explain x")
    check_finite(X, "explain x")
    try:
        n_params, widest = layered.sizes(work, X)
    except ShapeError as exc:
        if not one:
            raise
        raise ShapeError(f"{exc} (explain read the 1-D x as one sample; give the batch with its sample axis"
                         " first, x[None] for one sample)") from None
    out = layered_forward(work, X)
    Y = as_array(y, "explain y")
    T = loss.prepare_target(Y, out.shape, np.float64)
    if T.dtype.kind == "f":
        check_finite(T, "explain y")
    n = X.shape[0]
    too_big = _beyond((n_params, max_weights, "parameters"), (widest, max_units, "values per sample in a layer"),
                      (n, max_samples, "samples"))
    message = None
    steps: list[Step] = []
    if too_big:
        message = (f"This network is too big to write out entry by entry: {', '.join(too_big)}. Here is the"
                   " per-layer summary instead: shapes, norms of the output gradient δ and of dE/dW, and the"
                   " update ratio η·‖dE/dW‖/‖W‖. (Raise max_weights, max_units or max_samples to see it all.)")
        steps.append(Step("note", None, [Lit(message)], None))
    errors: list[float] = []
    differences = []
    params = None
    for it in range(1, n_steps + 1):
        if too_big:
            error = float(loss._value(layered_forward(work, X), T))
            steps.append(Step("error", total_error(), [Num(error)], error, it))
            steps += layered.summary(work, loss, X, T, lr, it)
        else:
            p = layered.run(work, loss, X, T, it)
            error, params = p.error, p.params
            differences.append(p.own_difference)
            steps += p.forward + p.backward + p.checks
        errors.append(error)
        if lr is None:
            continue
        before = {id(node): node.owner[0].params[node.owner[1]].copy() for node in params or []}
        SGD(lr=lr).step(work)
        if not too_big:
            steps += _update_layers(params, before, lr, it)
        after = float(loss._value(layered_forward(work, X), T))
        steps.append(Step("after", total_error(updated=True), [Num(after)], after, it))
        steps.append(Step("after", Lit("ΔE", r"\Delta E", "ΔE"),
                          [Expr(total_error(updated=True), " - ", total_error()),
                           Expr(Num(after), " - ", Num(error, True)), Num(after - error)], after - error, it))
        if it == n_steps:
            errors.append(after)
    lf = LossForm(loss, n, int(np.prod(out.shape[1:])))
    arrows = " → ".join(repr(layer) for layer in work.layers)
    description = [f"network: {arrows} ({n_params} parameters)", f"loss: {lf.description()}",
                   f"input: x of shape {X.shape}"
                   + (f"; learning rate η = {lr:g}" if lr is not None else "; no update (give lr to see one)")
                   + (f"; {n_steps} steps" if n_steps > 1 else ""),
                   "matrix notation, one layer at a time: layer l maps Aˡ⁻¹ to Aˡ (A⁰ = x); rows are samples"
                   " (tokens, for sequences; output positions, for a convolution's patch matrix X̂); a leading"
                   " axis of length 1 (one sample, one channel, one head) is not shown"]
    if params:
        description.append("parameters: " + "; ".join(f"{node.sym.text} = {node.where} {tuple(node.value.shape)}"
                                                      for node in params))
    if differences:
        description.append(f"computed in float64; every numbered factor is checked entry by entry against the"
                           f" central difference of E through the same equations, and the layers' own forward"
                           f" and backward give the same outputs and parameter gradients (largest difference"
                           f" {max(differences):.1e}); numbers rounded to {digits} significant digits")
    if np.dtype(getattr(net, "dtype", np.float64)) != np.float64:
        description.append(f"the network's parameters are {np.dtype(net.dtype).name}; the trace runs on a float64"
                           " copy of them")
    return Trace(steps, title=title or f"explain: {type(work.layers[0]).__name__} network, layer by layer",
                 description=description, notation="matrix", digits=int(digits), lr=lr, n_steps=n_steps,
                 errors=errors, network=work, oversized=bool(too_big), message=message, graph=None, n_samples=n)


def _beyond(*sizes) -> list[str]:
    """What exceeds the size bound: "2720 weights (bound 100)" for each (size, bound, what) over it."""
    return [f"{size} {what} (bound {bound})" for size, bound, what in sizes if size > bound]


def layered_forward(net, X: np.ndarray) -> np.ndarray:
    a = X
    for layer in net.layers:
        a = layer.forward(a, training=False)
    return a


def _update_layers(params, before: dict, lr: float, iteration: int) -> list[Step]:
    steps = []
    for node in params:
        layer, name = node.owner
        sym, new, old = node.sym, layer.params[name], before[id(node)]
        upd = Sym(f"{sym.text}⁺", f"{sym.tex}^{{+}}", f"{sym.html}<sup>+</sup>")
        if name in layer.frozen:
            steps.append(Step("update", upd, [sym, layered.show(old)], new.copy(), iteration,
                              note="frozen: not updated"))
            continue
        steps.append(Step("update", upd, [Expr(sym, " - ", "η", "·", deriv("E", sym)),
                                          Expr(layered.show(old), " - ", Num(lr), "·",
                                               layered.show(layer.grads[name])), layered.show(new)],
                          new.copy(), iteration))
    return steps


# --- pieces ----------------------------------------------------------------------------------------
def _prepare(work, levels, loss, x, y) -> tuple[np.ndarray, np.ndarray]:
    X = as_float_array(x, "explain x", np.float64)
    one = X.ndim == 1
    if one:
        X = X.reshape(1, -1)
    check_batch(X, "explain x")
    check_not_empty(X, "explain x")
    check_finite(X, "explain x")
    if X.shape[1] != levels[0].n_in:
        raise ShapeError(f"explain x: the network takes {levels[0].n_in} features per sample, got x of shape"
                         f" {np.shape(x)}")
    Y = as_array(y, "explain y")
    if one:
        from ..losses import CrossEntropy

        Y = Y.reshape(1) if isinstance(loss, CrossEntropy) and Y.ndim == 0 else Y.reshape(1, -1)
    out_shape = forward_only(levels, X).shape
    T = loss.prepare_target(Y, out_shape, np.float64)
    if T.dtype.kind == "f":
        check_finite(T, "explain y")
    return X, T


def _shape(levels) -> str:
    return "-".join(str(s) for s in [levels[0].n_in] + [lvl.n_out for lvl in levels])


def _describe(work, levels, lf, n, lr, n_steps, digits, notation) -> list[str]:
    def short(layer) -> str:
        if hasattr(layer, "n_in"):
            return f"Dense({layer.n_in}, {layer.n_out}{'' if layer.use_bias else ', no bias'})"
        return type(layer).__name__

    layers = " → ".join(short(layer) for layer in work.layers)
    frozen = [f"layers[{i}].{k}" for i, layer in enumerate(work.layers) for k in sorted(layer.frozen)]
    n_w = sum(lvl.dense.params["weight"].size for lvl in levels)
    n_b = sum(lvl.n_out for lvl in levels if lvl.dense.use_bias)
    lines = [f"network: {layers} ({_shape(levels)}; {n_w} weight{'s' * (n_w != 1)},"
             f" {n_b} bias{'es' * (n_b != 1)})",
             f"loss: {lf.description()}",
             f"input: {n} sample{'s' if n > 1 else ''}"
             + (f"; learning rate η = {lr:g}" if lr is not None else "; no update (give lr to see one)")
             + (f"; {n_steps} steps" if n_steps > 1 else "")]
    if frozen:
        lines.append("frozen (not updated): " + ", ".join(frozen))
    lines.append(f"computed in float64 by the layers' own forward and backward; numbers rounded to {digits}"
                 f" decimals (at most {digits} significant digits)")
    if notation == "matrix":
        lines.append("matrix notation: rows are samples; zˡ = aˡ⁻¹·Wˡ + bˡ, aˡ = f(zˡ), δˡ = dE/dzˡ;"
                     " zˡ[k] is net of unit k, aˡ[k] its out, δˡ[k] = dE/dnet")
    if any(type(layer).__name__ == "Dropout" for layer in work.layers):
        lines.append("Dropout layers are the identity outside training and are left out")
    return lines


def network_steps(names: Names, levels) -> list[Step]:
    """The names table: every parameter, what it connects, its value, and where it lives."""
    steps = []
    for prm in names.params:
        lvl = levels[prm.level]
        value = float(lvl.dense.params[prm.kind][prm.index])
        link = f"{prm.source.text} → {prm.target.text}" if prm.kind == "weight" else f"bias of {prm.target.text}"
        frozen = prm.kind in lvl.dense.frozen
        steps.append(Step("network", prm.sym, [Num(value)], value, param=prm.name, where=prm.where,
                          note=link + (" (frozen)" if frozen else "")))
    return steps


def check_steps(names: Names, levels, loss, X, T, p: Pass, iteration: int) -> list[Step]:
    entries = [(prm.level, prm.kind, prm.index) for prm in names.params]
    results = check_entries(levels, loss, X, T, p, entries)
    steps = []
    for prm, (analytic, numeric, rel) in zip(names.params, results, strict=True):
        steps.append(Step("check", deriv("E", prm.sym), [Num(analytic)], analytic, iteration, param=prm.name,
                          where=prm.where, numeric=numeric, rel_error=rel,
                          key=(levels[prm.level].dense_index, prm.kind, prm.index)))
    return steps


def update_steps_scalar(names: Names, levels, before, p: Pass, lr: float, iteration: int) -> list[Step]:
    steps = []
    for prm in names.params:
        lvl = levels[prm.level]
        old = float(before[prm.level][prm.kind][prm.index])
        new = float(lvl.dense.params[prm.kind][prm.index])
        lp = p.levels[prm.level]
        g = float((lp.dE_dW if prm.kind == "weight" else lp.dE_db)[prm.index])
        li = prm.level
        upd = names.weight(li, *prm.index, updated=True) if prm.kind == "weight" else \
            names.bias(li, prm.index[0], updated=True)
        if prm.kind in lvl.dense.frozen:
            steps.append(Step("update", upd, [prm.sym, Num(old)], new, iteration, param=prm.name,
                              note="frozen: not updated"))
            continue
        steps.append(Step("update", upd, [Expr(prm.sym, " - ", "η", "·", deriv("E", prm.sym)),
                                          Expr(Num(old), " - ", Num(lr), "·", Num(g, True)), Num(new)],
                          new, iteration, param=prm.name))
    return steps


def update_steps_matrix(names: Names, levels, before, p: Pass, lr: float, iteration: int) -> list[Step]:
    from .symbols import Mat

    steps = []
    for li, lvl in enumerate(levels):
        for kind in lvl.dense.params:
            base = "W" if kind == "weight" else "b"
            sym = layer_sym(base, lvl.number)
            new = lvl.dense.params[kind].copy()
            if kind in lvl.dense.frozen:
                steps.append(Step("update", layer_sym(base, lvl.number, updated=True),
                                  [sym, Mat(before[li][kind])], new, iteration, note="frozen: not updated"))
                continue
            g = p.levels[li].dE_dW if kind == "weight" else p.levels[li].dE_db
            steps.append(Step("update", layer_sym(base, lvl.number, updated=True),
                              [Expr(sym, " - ", "η", "·", deriv("E", sym)),
                               Expr(Mat(before[li][kind]), " - ", Num(lr), "·", Mat(g)), Mat(new)], new, iteration))
    return steps


def build_graph(names: Names, levels, p: Pass) -> dict:
    """Nodes and weight edges for the SVG drawing (values of the first sample)."""
    layers = [[{"name": u.text, "value": float(p.x[0, i])} for i, u in enumerate(names.inputs)]]
    for li, (lvl, lp) in enumerate(zip(levels, p.levels, strict=True)):
        col = []
        for j, u in enumerate(names.units[li]):
            node = {"name": u.text, "value": float(lp.a[0, j]), "net": float(lp.z[0, j]),
                    "activation": lvl.kind}
            if lvl.dense.use_bias:
                node["bias"] = (names.bias(li, j).text, float(lvl.dense.params["bias"][j]))
            col.append(node)
        layers.append(col)
    edges = []
    for prm in names.params:
        if prm.kind != "weight":
            continue
        lp = p.levels[prm.level]
        i, j = prm.index
        w = float(levels[prm.level].dense.params["weight"][i, j])
        edges.append({"name": prm.name, "from": (prm.level, i), "to": (prm.level + 1, j), "weight": w,
                      "contribution": w * float(lp.a_in[0, i]), "gradient": float(lp.dE_dW[i, j]),
                      "source": prm.source.text, "target": prm.target.text})
    return {"layers": layers, "edges": edges, "samples": int(p.x.shape[0])}
