"""The layer summary: what explain shows instead of every unit when a network is too big.

Per Dense layer: its shapes, the norms ‖W‖, ‖δ‖ = ‖dE/dz‖, ‖dE/dW‖, ‖dE/db‖, and the update
ratio η·‖dE/dW‖/‖W‖ (the relative size of one SGD step; around 1e-3 is healthy, orders of
magnitude less in the first layers than in the last means vanishing gradients, more means
exploding ones). A few entries of each parameter are checked against central differences.
"""

from __future__ import annotations

import numpy as np

from .symbols import layer_sym
from .tape import Pass, check_entries
from .trace import Step

#: How many entries of each parameter array the summary checks against finite differences.
CHECKED_PER_ARRAY = 3


def summary_steps(levels, loss, p: Pass, lr: float | None, iteration: int) -> list[Step]:
    rng = np.random.default_rng(0)
    steps = []
    for li, (lvl, lp) in enumerate(zip(levels, p.levels, strict=True)):
        W = lvl.dense.params["weight"]
        entries = []
        for name, arr in lvl.dense.params.items():
            flat = rng.choice(arr.size, size=min(CHECKED_PER_ARRAY, arr.size), replace=False)
            entries += [(li, name, np.unravel_index(int(k), arr.shape)) for k in flat]
        checks = check_entries(levels, loss, p.x, p.target, p, entries)
        w_norm = float(np.linalg.norm(W))
        g_norm = float(np.linalg.norm(lp.dE_dW))
        act = "" if lvl.act is None else f" + {type(lvl.act).__name__}"
        info = {
            "layer": f"{lvl.dense_index}: Dense{act}",
            "W shape": "x".join(map(str, W.shape)),
            "output": "x".join(map(str, lp.z.shape)),
            "‖W‖": w_norm,
            "‖δ‖": float(np.linalg.norm(lp.delta)),
            "‖dE/dW‖": g_norm,
            "‖dE/db‖": float(np.linalg.norm(lp.dE_db)) if lp.dE_db is not None else None,
            "update ratio": (lr if lr is not None else 1.0) * g_norm / w_norm if w_norm else float("inf"),
            "check": max(c[2] for c in checks),
        }
        steps.append(Step("summary", layer_sym("W", lvl.number), [], g_norm, iteration, info=info))
    return steps
