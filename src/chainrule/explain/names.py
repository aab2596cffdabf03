"""The names of units and parameters in a trace.

Units: inputs i1, i2, ...; outputs o1, o2, ...; with one hidden layer its units are h1, h2, ...
(Mazur's example); with several hidden layers, unit j of hidden layer l is h{l}_{j}
(h1_1, h1_2, h2_1, ...).

Weights are numbered w1, w2, ... as in Mazur's example: layer by layer from the input, and
within a layer unit by unit, each unit's incoming weights in the order of its inputs. So in
a 2-2-2 network w1 = i1→h1, w2 = i2→h1, w3 = i1→h2, w4 = i2→h2, w5 = h1→o1, ..., w8 = h2→o2.
With chainrule's (n_in, n_out) weight layout, the weight from input i to unit j of a layer is
``weight[i, j]`` and gets number offset + j·n_in + i + 1.

Each unit has its own bias (a Dense bias is one number per unit); the bias of unit u in
layer l is b{l}_{u}: Mazur's b1 (shared by h1 and h2) becomes b1_h1 and b1_h2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .symbols import Sym, Unit, bias_sym, input_sym, layer_sym, quantity, weight_sym


@dataclass
class Param:
    """One scalar parameter: its name and where it lives."""

    sym: Sym
    level: int            # 0-based index into the levels
    kind: str             # "weight" or "bias"
    index: tuple          # index into the array
    source: Unit | None   # the unit the weight comes from (None for a bias)
    target: Unit          # the unit it feeds
    where: str            # 'W²[0, 0] = layers[2].params["weight"][0, 0]' (evaluates as net.<path>)

    @property
    def name(self) -> str:
        return self.sym.text


class Names:
    """Unit and parameter names of a stack of levels."""

    def __init__(self, levels) -> None:
        self.levels = levels
        n_levels = len(levels)
        self.inputs = [Unit("i", j + 1) for j in range(levels[0].n_in)]
        self.units: list[list[Unit]] = []
        for lvl in levels:
            if lvl.number == n_levels:
                self.units.append([Unit("o", j + 1) for j in range(lvl.n_out)])
            elif n_levels == 2:
                self.units.append([Unit("h", j + 1) for j in range(lvl.n_out)])
            else:
                self.units.append([Unit("h", j + 1, layer=lvl.number) for j in range(lvl.n_out)])
        self.weight_numbers: list[np.ndarray] = []
        offset = 0
        for lvl in levels:
            n_in, n_out = lvl.n_in, lvl.n_out
            nums = offset + np.arange(n_out)[None, :] * n_in + np.arange(n_in)[:, None] + 1
            self.weight_numbers.append(nums)
            offset += n_in * n_out
        self.params: list[Param] = []
        for li, lvl in enumerate(levels):
            for i in range(lvl.n_in):
                for j in range(lvl.n_out):
                    self.params.append(Param(self.weight(li, i, j), li, "weight", (i, j), self.sources(li)[i],
                                             self.units[li][j], self._where(li, "weight", (i, j))))
        for li, lvl in enumerate(levels):
            if lvl.dense.use_bias:
                for j in range(lvl.n_out):
                    self.params.append(Param(self.bias(li, j), li, "bias", (j,), None, self.units[li][j],
                                             self._where(li, "bias", (j,))))
        self.params.sort(key=lambda p: (p.kind != "weight", int(p.name[1:]) if p.kind == "weight" else 0))

    def _where(self, li: int, kind: str, index: tuple) -> str:
        lvl = self.levels[li]
        sym = layer_sym("W" if kind == "weight" else "b", lvl.number)
        idx = ", ".join(str(i) for i in index)
        # a Python expression that evaluates on the network: net.layers[i].params["weight"][j, k]
        return f'{sym.text}[{idx}] = layers[{lvl.dense_index}].params["{kind}"][{idx}]'

    def sources(self, li: int) -> list[Unit]:
        """The units feeding level ``li`` (0-based)."""
        return self.inputs if li == 0 else self.units[li - 1]

    def weight(self, li: int, i: int, j: int, updated: bool = False) -> Sym:
        return weight_sym(int(self.weight_numbers[li][i, j]), updated)

    def bias(self, li: int, j: int, updated: bool = False) -> Sym:
        return bias_sym(self.levels[li].number, self.units[li][j], updated)

    def top(self, li: int, j: int, sample: int | None = None) -> Sym:
        """The output of unit j of level li: out_u, or net_u when the level has no activation."""
        kind = "net" if self.levels[li].act is None else "out"
        return quantity(kind, self.units[li][j], sample)

    def source_value_sym(self, li: int, i: int, sample: int | None = None) -> Sym:
        """What input i of level li is: i1, or the previous level's out_h1."""
        if li == 0:
            return input_sym(self.inputs[i], sample)
        return self.top(li - 1, i, sample)
