"""Backprop mode: one sample's forward and backward pass, step by step, from ``cr.explain``.

The page's names are explain's scalar notation (docs/explain.md): inputs i1, i2, ...;
hidden units h1, h2, ... (h1_1, h2_1, ... with several hidden layers); outputs o1, ...;
weights w1, w2, ... numbered layer by layer, each unit's incoming weights in the order of
its inputs (weight[i, j] of a layer gets number offset + j·n_in + i + 1); biases b1_h1, ...

:func:`walk` runs :func:`chainrule.explain` on the network and one sample and turns the
trace into what the page steps through: each step's text as explain prints it, the unit or
edge it belongs to, and, for every weight, the factors of its chain
dE/dw = dE/dout · dout/dnet · dnet/dw with their values.
"""

from __future__ import annotations

import re

from ..explain import explain
from ..explain.symbols import Sym
from ..layers import Dense

DIGITS = 9
_UNIT = re.compile(r"_([iho]\d+(?:_\d+)?)$")


def unit_names(n_inputs: int, sizes: list[int]) -> list[list[str]]:
    """Names of the units, column by column: inputs, each hidden layer, outputs (``sizes``
    lists the sizes of the hidden layers and then of the output layer)."""
    cols = [[f"i{k + 1}" for k in range(n_inputs)]]
    n_levels = len(sizes)
    for level, n in enumerate(sizes, 1):
        if level == n_levels:
            cols.append([f"o{j + 1}" for j in range(n)])
        elif n_levels == 2:
            cols.append([f"h{j + 1}" for j in range(n)])
        else:
            cols.append([f"h{level}_{j + 1}" for j in range(n)])
    return cols


def weight_names(n_inputs: int, sizes: list[int]) -> list[list[list[str]]]:
    """``names[level][i][j]``: the name of weight[i, j] of Dense layer ``level`` (0-based)."""
    names, offset, n_in = [], 0, n_inputs
    for n_out in sizes:
        names.append([[f"w{offset + j * n_in + i + 1}" for j in range(n_out)] for i in range(n_in)])
        offset += n_in * n_out
        n_in = n_out
    return names


def bias_names(n_inputs: int, sizes: list[int]) -> list[list[str]]:
    units = unit_names(n_inputs, sizes)
    return [[f"b{level}_{u}" for u in units[level]] for level in range(1, len(units))]


def _line(step) -> str:
    parts = [text for _, text in step.rendered("text", DIGITS)]
    return f"{step.name} = " + " = ".join(parts) if step.name else " = ".join(parts)


def _factors(step) -> list[dict]:
    """The factors of a gradient's chain: [{"symbol": "dE/dout_o1", "value": 0.741...}, ...]."""
    if len(step.rhs) < 2 or not hasattr(step.rhs[0], "parts"):
        return []
    symbols = [p.text for p in step.rhs[0].parts if isinstance(p, Sym)]
    values = step.rhs[1].numbers()
    if len(symbols) != len(values):
        return []
    return [{"symbol": s, "value": float(v)} for s, v in zip(symbols, values, strict=True)]


def walk(net, loss, x, y, lr: float | None = None) -> tuple[dict, object]:
    """The page's backprop walk of sample ``(x, y)``, and the explain Trace it comes from."""
    trace = explain(net, loss, x, y, lr=lr, max_weights=10**6, max_units=10**6)
    dense = [k for k, layer in enumerate(trace.network.layers) if isinstance(layer, Dense)]
    unit_at = {node["name"]: [col, j] for col, nodes in enumerate(trace.graph["layers"])
               for j, node in enumerate(nodes)}
    edge_at, bias_at = {}, {}
    for s in trace.checks:
        layer_index, kind, index = s.key
        level = dense.index(layer_index)
        if kind == "weight":
            edge_at[s.param] = [level, int(index[0]), int(index[1])]
        else:
            bias_at[s.param] = [level + 1, int(index[0])]
    steps, edges, units = [], {}, {}
    for s in trace.steps:
        if s.section in ("network", "summary", "note", "gradient"):
            continue
        entry = {"phase": s.section, "text": _line(s), "value": _plain(s.value), "unit": None, "edge": None}
        if s.param in edge_at:
            entry["edge"] = edge_at[s.param]
        elif s.param in bias_at:
            entry["unit"] = bias_at[s.param]
        else:
            m = _UNIT.search(s.name)
            if m and m.group(1) in unit_at:
                entry["unit"] = unit_at[m.group(1)]
        if s.section == "check":
            key = s.param
            target = edges.get(",".join(map(str, edge_at[key]))) if key in edge_at else None
            if target is not None:
                target.update(numeric=s.numeric, rel_error=s.rel_error)
            continue
        steps.append(entry)
        if s.section == "backward" and s.param in edge_at:
            edges[",".join(map(str, edge_at[s.param]))] = {
                "name": s.param, "value": float(s.value), "factors": _factors(s), "text": entry["text"]}
        if entry["unit"] is not None and s.section in ("forward", "backward") and s.param is None:
            u = units.setdefault(",".join(map(str, entry["unit"])), {"name": s.name.split("_", 1)[-1]})
            for prefix, key in (("net_", "net"), ("out_", "out"), ("dE/dnet_", "delta"), ("dE/dout_", "dE_dout")):
                if s.name.startswith(prefix):
                    u[key] = float(s.value)
                    u["name"] = s.name[len(prefix):]
    for node_name, (col, j) in unit_at.items():  # inputs and units without an activation
        u = units.setdefault(f"{col},{j}", {"name": node_name})
        u.setdefault("out", u.get("net", trace.graph["layers"][col][j]["value"]))
    names = [[node["name"] for node in col] for col in trace.graph["layers"]]
    return {"steps": steps, "edges": edges, "units": units, "error": float(trace.errors[0]),
            "description": trace.description, "names": names}, trace


def _plain(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
