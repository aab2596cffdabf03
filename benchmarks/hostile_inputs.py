"""The worst hostile inputs, made and fed to chainrule: each must be refused with a ChainruleError,
quickly and in bounded memory. Run one case per process to read its time and peak memory:

    /usr/bin/time -v python benchmarks/hostile_inputs.py huge-sizes
    /usr/bin/time -v python benchmarks/hostile_inputs.py epoch-minus-a-million
    /usr/bin/time -v python benchmarks/hostile_inputs.py other-optimizer-settings
    python benchmarks/hostile_inputs.py all      # every case, with the time of each

Each case prints what came back and how long the refusal took (the peak memory is the process's,
from /usr/bin/time or resource.getrusage, so it includes the interpreter and NumPy).
"""

from __future__ import annotations

import copy
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import chainrule as cr
from chainrule import io as cr_io


def _model(tmp: Path) -> Path:
    path = tmp / "model.npz"
    cr.mlp([4, 8, 2], seed=0).save(path)
    return path


def huge_sizes(tmp: Path):
    """A model file whose header declares a Dense(10⁹, 10⁹) layer (8 EB of weights) over 58 stored numbers."""
    header, arrays = cr_io.read(_model(tmp))
    header = copy.deepcopy(header)
    header["layers"][0]["config"].update(n_in=10**9, n_out=10**9)
    bad = tmp / "huge.npz"
    cr_io.write(bad, header, arrays)
    return lambda: cr.load(bad)


def _checkpoint(tmp: Path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 4)), rng.integers(0, 2, 64)
    path = tmp / "run.ckpt"
    cr.mlp([4, 8, 2], seed=0).fit(X, y, loss="crossentropy", epochs=2, batch_size=16, seed=0, checkpoint=path,
                                 verbose=0)
    header, arrays = cr_io.read(path)
    return X, y, path, copy.deepcopy(header), arrays


def epoch_minus_a_million(tmp: Path):
    """A checkpoint whose position says epoch −1,000,000 (it used to train for over an hour)."""
    X, y, path, header, arrays = _checkpoint(tmp)
    header["training"]["position"]["epoch"] = -1_000_000
    cr_io.write(path, header, arrays)
    return lambda: cr.mlp([4, 8, 2], seed=0).fit(X, y, loss="crossentropy", epochs=2, batch_size=16, seed=0,
                                                 resume=path, verbose=0)


def other_optimizer_settings(tmp: Path):
    """A resume whose optimizer settings differ from the checkpoint's (momentum 0.5, saved 0)."""
    X, y, path, header, arrays = _checkpoint(tmp)
    return lambda: cr.mlp([4, 8, 2], seed=0).fit(X, y, loss="crossentropy", epochs=2, batch_size=16, seed=0,
                                                 optimizer=cr.SGD(momentum=0.5), resume=path, verbose=0)


CASES = {"huge-sizes": huge_sizes, "epoch-minus-a-million": epoch_minus_a_million,
         "other-optimizer-settings": other_optimizer_settings}


def run(name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        attempt = CASES[name](Path(tmp))
        start = time.perf_counter()
        try:
            attempt()
            outcome = "ACCEPTED (a defect)"
        except cr.ChainruleError as exc:
            outcome = f"{type(exc).__name__}: {str(exc)[:150]}"
        elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name}: refused in {elapsed * 1000:.0f} ms (process peak {peak:.0f} MiB)\n  {outcome}")


if __name__ == "__main__":
    names = list(CASES) if sys.argv[1:] == ["all"] else sys.argv[1:]
    for n in names or ["all"]:
        run(n)
