"""The benchmark cases, one implementation per framework, run inside a worker process.

``run.py`` starts one long-lived worker per framework (``python cases.py --worker NAME``) and
sends it one JSON command per line on stdin; the worker answers one JSON line on its own
copy of stdout (anything else it prints goes to stderr). Each command is one timed run, so
the driver can alternate frameworks run by run. ``python cases.py --memory NAME --kind KIND
--params JSON`` is the fresh process whose peak resident memory is measured for one run of a
case (the batch-512 MLP epoch by default).

A worker imports only its own framework: chainrule (NumPy), torch, scikit-learn, or one of the
compiled peers of ``peers.py`` (``torch_compile``, ``jax``); a worker whose framework cannot be
imported answers ``{"missing": reason}`` and exits. The one exception is the estimator case,
whose chainrule side (``chainrule.sklearn``) is built on scikit-learn, imported when that case
first runs (run.py runs it last). The clock
(``time.perf_counter``) runs around the public call only: ``fit`` / ``predict`` for chainrule
and scikit-learn, the whole epoch loop (shuffle included) for PyTorch. Models, optimizers and
data are built before the clock starts.

The recurrent and estimator cases are those of ``bench_rnn.py`` and ``bench_sklearn.py``
beside this file, imported from there (both import only the standard library at the top), so
the suite's rows and those scripts time the same thing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
import time
import warnings

import bench_rnn
import bench_sklearn
import numpy as np
from forced_env import reexec_without_forced_env

#: Layer sizes of the MLP cases.
MLP_SIZES = (784, 256, 128, 10)
#: The transformer-block case: sequence length, token width, heads, batch.
BLOCK_T, BLOCK_DIM, BLOCK_HEADS, BLOCK_BATCH = 64, 128, 4, 32


# --- data (NumPy only, the same arrays in every worker) ------------------------------------
def mnist_like(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic MNIST-shaped data: (n, 784) float32 in [0, 1] and int64 labels 0..9.

    Each class is a fixed sparse "stroke" pattern plus uniform noise, so SGD at lr 0.1
    learns it and the loss stays finite. Built in chunks to keep the peak memory at X.
    """
    rng = np.random.default_rng(seed)
    protos = rng.random((10, 784), dtype=np.float32) * (rng.random((10, 784)) < 0.2)
    y = rng.integers(0, 10, n)
    X = np.empty((n, 784), dtype=np.float32)
    for start in range(0, n, 4096):
        stop = min(start + 4096, n)
        noise = rng.random((stop - start, 784), dtype=np.float32)
        noise *= 0.3
        noise += protos[y[start:stop]]
        np.minimum(noise, 1.0, out=noise)
        X[start:stop] = noise
    return X, y


def images_like(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """mnist_like's samples as (n, 1, 28, 28) one-channel images (a view, no copy)."""
    X, y = mnist_like(n, seed)
    return X.reshape(n, 1, 28, 28), y


def token_sequences(steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` batches of BLOCK_T tokens of BLOCK_DIM normal features and a target to regress.

    The target of token t is half of token t − 1 (the first token's is zero), so attention to
    the previous step learns it. float32, (steps·BLOCK_BATCH, BLOCK_T, BLOCK_DIM) both.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((steps * BLOCK_BATCH, BLOCK_T, BLOCK_DIM), dtype=np.float32)
    Y = np.zeros_like(X)
    np.multiply(X[:, :-1], np.float32(0.5), out=Y[:, 1:])
    return X, Y


def mazur_sample() -> tuple[np.ndarray, np.ndarray, list, list]:
    """Mazur's 2-2-2 worked example: input, target, and (weight, bias) of both layers."""
    x = np.array([[0.05, 0.10]], dtype=np.float32)
    t = np.array([[0.01, 0.99]], dtype=np.float32)
    # weight[i, j] connects input i to unit j: w1 = 0.15, w2 = 0.20 feed h1; w3, w4 feed h2.
    hidden = ([[0.15, 0.25], [0.20, 0.30]], [0.35, 0.35])
    output = ([[0.40, 0.50], [0.45, 0.55]], [0.60, 0.60])
    return x, t, hidden, output


def digits_onehot() -> tuple[np.ndarray, np.ndarray]:
    """The bundled 8x8 digits, pixels scaled to [0, 1], one-hot float32 targets."""
    from chainrule.datasets import load_digits

    X, y = load_digits()
    X = X / np.float32(16.0)
    return X.astype(np.float32), np.eye(10, dtype=np.float32)[y]


_DATA: dict = {}


def data(kind: str, n: int = 0):
    key = (kind, n)
    if key not in _DATA:
        if kind == "mnist":
            _DATA[key] = mnist_like(n)
        elif kind == "mazur":
            x, t, _, _ = mazur_sample()
            _DATA[key] = (np.repeat(x, n, axis=0), np.repeat(t, n, axis=0))
        elif kind == "digits":
            _DATA[key] = digits_onehot()
        elif kind == "images":
            _DATA[key] = images_like(n)
        elif kind == "tokens":
            _DATA[key] = token_sequences(n)
    return _DATA[key]


@functools.lru_cache(maxsize=1)
def _estimator_data(name: str, samples: int):
    """bench_sklearn.py's standardized float64 splits: X_train, X_test, y_train, y_test."""
    return bench_sklearn.case_data({"data": name, "samples": samples})


_RECURRENT: dict = {}  # layer -> [bench_rnn.py's epoch function, runs so far]


def _recurrent_epoch(layer: str, build) -> float:
    """Seconds of one epoch of bench_rnn.py's case (``layer``: "rnn", "lstm" or "gru").

    The model and data are built on the first call (outside the clock) and trained on from
    run to run, each run shuffled with the next seed: the warm-up runs, then the timed ones,
    as in bench_rnn.py's own workers. Building them once saves 25–60 ms of set-up per run
    (data and model).
    """
    _prepare_recurrent(layer, build)
    epoch, seed = _RECURRENT[layer]
    _RECURRENT[layer][1] += 1
    start = time.perf_counter()
    epoch(seed)
    return time.perf_counter() - start


def _prepare_recurrent(layer: str, build) -> None:
    """Build bench_rnn.py's model and data for ``layer`` once (outside any clock)."""
    if layer not in _RECURRENT:
        _RECURRENT[layer] = [build(), 0]


@functools.lru_cache(maxsize=2)
def _matmul_operands(n: int):
    rng = np.random.default_rng(1)
    return rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)


@functools.lru_cache(maxsize=1)
def _gather_operands():
    rng = np.random.default_rng(2)
    return rng.random((20_000, 784), dtype=np.float32), rng.permutation(20_000)[:4096]


def _numpy_step_rate() -> float:
    """Steps per second of the best of 3 plain-NumPy forward + backward + SGD passes of the
    784-256-128-10 MLP on a fixed batch of 512 (after a warm-up)."""
    rng = np.random.default_rng(3)
    x = rng.random((512, 784), dtype=np.float32)
    ws = [rng.standard_normal((a, b), dtype=np.float32) * 0.05
          for a, b in zip(MLP_SIZES[:-1], MLP_SIZES[1:], strict=True)]
    best = float("inf")
    for _ in range(4):
        start = time.perf_counter()
        acts = [x]
        for w in ws:
            acts.append(np.maximum(acts[-1] @ w, 0))
        delta = acts[-1] * np.float32(1 / 512)
        for i in range(len(ws) - 1, -1, -1):
            grad = acts[i].T @ delta
            if i:
                delta = (delta @ ws[i].T) * (acts[i] > 0)
            ws[i] -= grad * np.float32(1e-6)
        best = min(best, time.perf_counter() - start)
    return 1 / best


def numpy_matmul_peak(n: int = 2048, reps: int = 3) -> float:
    """GFLOP/s of the best of ``reps`` NumPy float32 n x n matmuls, measured now."""
    a, b = _matmul_operands(n)
    c = np.empty_like(a)
    best = float("inf")
    for _ in range(reps + 1):  # the first one warms up
        start = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


# --- chainrule -----------------------------------------------------------------------------
class ChainruleCases:
    name = "chainrule"

    def __init__(self) -> None:
        import chainrule as cr

        self.cr = cr

    def info(self) -> dict:
        from threadpoolctl import threadpool_info

        # where chainrule was imported from: the checkout under test, or another installation
        return {"chainrule": self.cr.__version__, "path": os.path.dirname(self.cr.__file__),
                "numpy": np.__version__, "kernels": self.cr.kernels.active(),
                "flush": self.cr.kernels.flush_subnormals(), "threadpools": threadpool_info()}

    def _mlp(self, seed=0):
        return self.cr.mlp(list(MLP_SIZES), activation="relu", seed=seed)

    def mlp(self, samples, batch, momentum, seed=0, kernels=None, flush=None, epochs=1):
        """``epochs`` of ``fit``; ``kernels`` ("numpy", "numba") and ``flush`` (the subnormal flush
        on or off) choose a variant for this run only (the defaults: the process's settings).

        With momentum, the answer counts the subnormal values of the momentum buffers after the
        run (0 < |v| < float32 tiny).
        """
        cr = self.cr
        X, y = data("mnist", samples)
        net, opt = self._mlp(seed), cr.SGD(lr=0.1, momentum=momentum)
        was_kernels, was_flush = cr.kernels.active(), cr.kernels.flush_subnormals()
        try:
            if kernels is not None:
                cr.kernels.use(kernels)
            if flush is not None:
                cr.kernels.flush_subnormals(flush)
            start = time.perf_counter()
            net.fit(X, y, loss=cr.CrossEntropy(), optimizer=opt, epochs=epochs, batch_size=batch,
                    seed=seed, verbose=0)
            seconds = time.perf_counter() - start
            kernel = cr.kernels.active()
        finally:
            cr.kernels.use(was_kernels)
            cr.kernels.flush_subnormals(was_flush)
        answer = {"seconds": seconds, "kernels": kernel}
        if momentum:
            buffers = [s["momentum"] for s in opt.state.values() if "momentum" in s]
            tiny = np.finfo(np.float32).tiny
            answer["subnormals"] = int(sum(np.count_nonzero((b != 0) & (np.abs(b) < tiny)) for b in buffers))
            answer["state_values"] = int(sum(b.size for b in buffers))
        return answer

    def step(self, samples, batch, seed=0):
        """The median time of one training step within a ``fit`` epoch (steady state), and the
        NumPy matmul peak measured right after it."""
        cr = self.cr
        X, y = data("mnist", samples)
        net, times = self._mlp(seed), []
        timer = cr.LambdaCallback(on_batch_end=lambda batch, logs: times.append(time.perf_counter()))
        net.fit(X, y, loss=cr.CrossEntropy(), optimizer=cr.SGD(lr=0.1), epochs=1, batch_size=batch,
                seed=seed, verbose=0, callbacks=[timer])
        return {"seconds": float(np.median(np.diff(times))), "peak_gflops": numpy_matmul_peak()}

    def _mazur_net(self):
        cr = self.cr
        _, _, (w1, b1), (w2, b2) = mazur_sample()
        return cr.Sequential(cr.Dense(2, 2, weight=w1, bias=b1), cr.Sigmoid(),
                             cr.Dense(2, 2, weight=w2, bias=b2), cr.Sigmoid())

    def tiny(self, steps, seed=0):
        """One epoch of ``steps`` per-sample updates on Mazur's sample (repeated)."""
        cr = self.cr
        X, T = data("mazur", steps)
        net = self._mazur_net()
        start = time.perf_counter()
        net.fit(X, T, loss=cr.SSE(), optimizer=cr.SGD(lr=0.5), epochs=1, batch_size=1,
                seed=seed, verbose=0)
        return time.perf_counter() - start

    def tiny_epochs(self, steps, seed=0):
        """The tutorial loop: ``fit(x, t, epochs=steps)`` on the one sample."""
        cr = self.cr
        X, T = data("mazur", 1)
        net = self._mazur_net()
        start = time.perf_counter()
        net.fit(X, T, loss=cr.SSE(), optimizer=cr.SGD(lr=0.5), epochs=steps, batch_size=1,
                seed=seed, verbose=0)
        return time.perf_counter() - start

    def digits(self, seed=0):
        cr = self.cr
        X, Y = data("digits")
        net = cr.mlp([64, 32, 16, 10], activation="sigmoid", output_activation="sigmoid", seed=seed)
        start = time.perf_counter()
        net.fit(X, Y, loss=cr.SSE(), optimizer=cr.SGD(lr=0.5), epochs=1, batch_size=1,
                seed=seed, verbose=0)
        return time.perf_counter() - start

    def predict(self, samples, seed=0):
        X, _ = data("mnist", samples)
        net = self._mlp(seed)
        start = time.perf_counter()
        net.predict(X)
        return time.perf_counter() - start

    def lenet(self, samples, batch, seed=0):
        """One epoch of LeNet on 28x28 one-channel images: ``net.fit(..., epochs=1)``, SGD."""
        cr = self.cr
        X, y = data("images", samples)
        net = cr.Sequential(
            cr.Conv2D(1, 6, 5, seed=seed), cr.ReLU(), cr.MaxPool2D(2),
            cr.Conv2D(6, 16, 5, seed=seed + 1), cr.ReLU(), cr.MaxPool2D(2), cr.Flatten(),
            cr.Dense(256, 120, seed=seed + 2), cr.ReLU(), cr.Dense(120, 84, seed=seed + 3), cr.ReLU(),
            cr.Dense(84, 10, seed=seed + 4))
        opt = cr.SGD(lr=0.05)
        start = time.perf_counter()
        net.fit(X, y, loss=cr.CrossEntropy(), optimizer=opt, epochs=1, batch_size=batch, seed=seed,
                verbose=0)
        return time.perf_counter() - start

    def transformer(self, steps, seed=0):
        """``steps`` Adam steps of one pre-norm transformer block, MSE: ``net.fit(..., epochs=1)``."""
        cr = self.cr
        X, Y = data("tokens", steps)
        d, h = BLOCK_DIM, BLOCK_HEADS
        net = cr.Sequential(
            cr.Residual(cr.LayerNorm(d), cr.MultiHeadAttention(d, h, seed=seed)),
            cr.Residual(cr.LayerNorm(d), cr.Dense(d, 4 * d, seed=seed + 1), cr.GELU(),
                        cr.Dense(4 * d, d, seed=seed + 2)))
        opt = cr.Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
        start = time.perf_counter()
        net.fit(X, Y, loss=cr.MSE(), optimizer=opt, epochs=1, batch_size=BLOCK_BATCH, seed=seed,
                verbose=0)
        return time.perf_counter() - start

    def recurrent(self, layer):
        """One epoch of bench_rnn.py's case: ``net.fit(..., epochs=1)`` of 20 batch-64 steps."""
        return _recurrent_epoch(layer, lambda: bench_rnn.chainrule_epoch(layer))

    def prepare_recurrent(self, layer):
        _prepare_recurrent(layer, lambda: bench_rnn.chainrule_epoch(layer))

    def estimator(self, case):
        """bench_sklearn.py's ``case``: ``chainrule.sklearn.MLPClassifier(dtype=np.float32).fit``.

        Imports scikit-learn (and with it SciPy's own OpenBLAS) into this worker, which also
        probes the machine: run.py runs this case after every other one.
        """
        from chainrule.sklearn import MLPClassifier

        X_train, X_test, y_train, y_test = _estimator_data(case["data"], case["samples"])
        settings = bench_sklearn.estimator_settings(case)
        seconds, _ = bench_sklearn.time_fit(lambda: MLPClassifier(dtype=np.float32, **settings),
                                            X_train, y_train, X_test, y_test)
        return seconds

    def probe(self):
        """The machine's speed now, for arithmetic, memory and caches: the best of 3 NumPy
        1024 x 1024 matmuls (after a warm-up), of 3 gathers of 4,096 random rows of 784 floats
        from a 63 MB array (the access pattern of a shuffled batch), and of 3 plain-NumPy
        batch-512 steps of the MLP (other users of the host sometimes slow only these)."""
        X, rows = _gather_operands()
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            X[rows]
            best = min(best, time.perf_counter() - start)
        return {"seconds": 0.0, "gflops": numpy_matmul_peak(1024, 3), "gather_gbps": X[rows].nbytes / best / 1e9,
                "numpy_steps_per_s": _numpy_step_rate()}

    def matmul(self, n, reps):
        a, b = _matmul_operands(n)
        c = np.empty_like(a)
        start = time.perf_counter()
        for _ in range(reps):
            np.matmul(a, b, out=c)
        return time.perf_counter() - start


# --- PyTorch -------------------------------------------------------------------------------
class TorchCases:
    name = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch
        torch.set_num_threads(len(os.sched_getaffinity(0)))

    def info(self) -> dict:
        from threadpoolctl import threadpool_info

        torch = self.torch
        config = torch.__config__.show()
        blas = [part.split("=", 1)[1] for line in config.splitlines() for part in line.split(", ")
                if part.strip().startswith(("BLAS_INFO=", "LAPACK_INFO="))]
        return {"torch": torch.__version__, "numpy": np.__version__,
                "num_threads": torch.get_num_threads(), "blas": sorted(set(blas)),
                "mkldnn": bool(torch.backends.mkldnn.is_available()),
                "threadpools": threadpool_info()}

    def _mlp(self, seed=0):
        nn = self.torch.nn
        self.torch.manual_seed(seed)
        a, b, c, d = MLP_SIZES
        return nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c), nn.ReLU(), nn.Linear(c, d))

    def _loader(self, X, Y, batch):
        """Shuffle once per epoch (one gather), then yield slices: the fastest plain loader."""
        perm = self.torch.randperm(len(X))
        Xs, Ys = X[perm], Y[perm]
        for start in range(0, len(X), batch):
            yield Xs[start:start + batch], Ys[start:start + batch]

    def _epoch(self, model, loss_fn, opt, X, Y, batch):
        total = 0.0
        for xb, yb in self._loader(X, Y, batch):
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item()
        return total

    def mlp(self, samples, batch, momentum, seed=0):
        torch = self.torch
        X, y = data("mnist", samples)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        model = self._mlp(seed)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
        loss_fn = torch.nn.CrossEntropyLoss()
        start = time.perf_counter()
        self._epoch(model, loss_fn, opt, Xt, yt, batch)
        return time.perf_counter() - start

    def step(self, samples, batch, seed=0):
        """The median time of one training step within an epoch (steady state), and the
        NumPy matmul peak measured right after it."""
        torch = self.torch
        X, y = data("mnist", samples)
        model = self._mlp(seed)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss_fn, times = torch.nn.CrossEntropyLoss(), []
        for xb, yb in self._loader(torch.from_numpy(X), torch.from_numpy(y), batch):
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            loss.item()
            times.append(time.perf_counter())
        # NumPy's peak after the epoch: its BLAS threads must not spin while torch trains
        return {"seconds": float(np.median(np.diff(times))), "peak_gflops": numpy_matmul_peak()}

    def _mazur_net(self):
        torch, nn = self.torch, self.torch.nn
        _, _, (w1, b1), (w2, b2) = mazur_sample()
        l1, l2 = nn.Linear(2, 2), nn.Linear(2, 2)
        with torch.no_grad():  # torch stores weight as (out, in)
            l1.weight.copy_(torch.tensor(w1).T)
            l1.bias.copy_(torch.tensor(b1))
            l2.weight.copy_(torch.tensor(w2).T)
            l2.bias.copy_(torch.tensor(b2))
        return nn.Sequential(l1, nn.Sigmoid(), l2, nn.Sigmoid())

    @staticmethod
    def _sse(out, target):
        """The textbook ½ Σ (t − o)², averaged over the samples of the batch (chainrule SSE)."""
        return 0.5 * ((out - target) ** 2).sum() / len(out)

    def tiny(self, steps, seed=0):
        torch = self.torch
        X, T = data("mazur", steps)
        model = self._mazur_net()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)
        start = time.perf_counter()
        self._epoch(model, self._sse, opt, Xt, Tt, 1)
        return time.perf_counter() - start

    def digits(self, seed=0):
        torch, nn = self.torch, self.torch.nn
        X, Y = data("digits")
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 16), nn.Sigmoid(),
                              nn.Linear(16, 10), nn.Sigmoid())
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
        start = time.perf_counter()
        self._epoch(model, self._sse, opt, Xt, Yt, 1)
        return time.perf_counter() - start

    def predict(self, samples, seed=0):
        torch = self.torch
        X, _ = data("mnist", samples)
        Xt = torch.from_numpy(X)
        model = self._mlp(seed)
        start = time.perf_counter()
        with torch.no_grad():
            model(Xt).numpy()
        return time.perf_counter() - start

    def lenet(self, samples, batch, seed=0):
        """One epoch of the same LeNet: the loop of ``_epoch``, SGD."""
        torch, nn = self.torch, self.torch.nn
        X, y = data("images", samples)
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        start = time.perf_counter()
        self._epoch(model, nn.CrossEntropyLoss(), opt, Xt, yt, batch)
        return time.perf_counter() - start

    def transformer(self, steps, seed=0):
        """``steps`` Adam steps of the same pre-norm block: the loop of ``_epoch``, MSE."""
        torch, nn = self.torch, self.torch.nn
        X, Y = data("tokens", steps)
        d, h = BLOCK_DIM, BLOCK_HEADS
        torch.manual_seed(seed)

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
                self.attention = nn.MultiheadAttention(d, h, batch_first=True)
                self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d))

            def forward(self, x):
                a = self.norm1(x)
                x = x + self.attention(a, a, a, need_weights=False)[0]
                return x + self.mlp(self.norm2(x))

        model = Block()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
        Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
        start = time.perf_counter()
        self._epoch(model, nn.MSELoss(), opt, Xt, Yt, BLOCK_BATCH)
        return time.perf_counter() - start

    def recurrent(self, layer):
        """One epoch of bench_rnn.py's case: the nn.RNN / nn.LSTM / nn.GRU loop over 20 batch-64 steps."""
        threads = self.torch.get_num_threads()
        return _recurrent_epoch(layer, lambda: bench_rnn.torch_epoch(layer, threads))

    def prepare_recurrent(self, layer):
        threads = self.torch.get_num_threads()
        _prepare_recurrent(layer, lambda: bench_rnn.torch_epoch(layer, threads))

    def matmul(self, n, reps):
        torch = self.torch
        a, b = (torch.from_numpy(m) for m in _matmul_operands(n))
        c = torch.empty(n, n)
        start = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=c)
        return time.perf_counter() - start


# --- scikit-learn --------------------------------------------------------------------------
class SklearnCases:
    name = "sklearn"

    def __init__(self) -> None:
        import sklearn
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        self.sklearn, self.MLPClassifier = sklearn, MLPClassifier
        warnings.filterwarnings("ignore", category=ConvergenceWarning)

    def info(self) -> dict:
        import scipy
        from threadpoolctl import threadpool_info

        return {"scikit-learn": self.sklearn.__version__, "scipy": scipy.__version__,
                "numpy": np.__version__, "threadpools": threadpool_info()}

    def mlp(self, samples, batch, momentum, seed=0):
        X, y = data("mnist", samples)
        clf = self.MLPClassifier(
            hidden_layer_sizes=MLP_SIZES[1:-1], activation="relu", solver="sgd", alpha=0.0,
            batch_size=batch, learning_rate_init=0.1, momentum=momentum, nesterovs_momentum=False,
            max_iter=1, shuffle=True, early_stopping=False, n_iter_no_change=10**9,
            random_state=seed)
        start = time.perf_counter()
        clf.fit(X, y)
        return time.perf_counter() - start

    def estimator(self, case):
        """bench_sklearn.py's ``case``: scikit-learn's ``MLPClassifier(solver="adam").fit``, float64."""
        X_train, X_test, y_train, y_test = _estimator_data(case["data"], case["samples"])
        settings = bench_sklearn.estimator_settings(case)
        seconds, _ = bench_sklearn.time_fit(lambda: self.MLPClassifier(**settings),
                                            X_train, y_train, X_test, y_test)
        return seconds


def _peer(name: str):
    """The compiled peers' classes (peers.py), imported when their worker starts."""
    def build():
        sys.modules.setdefault("cases", sys.modules[__name__])  # peers.py imports this module
        import peers

        return {"jax": peers.JaxCases, "torch_compile": peers.TorchCompileCases}[name]()
    return build


FRAMEWORKS = {"chainrule": ChainruleCases, "torch": TorchCases, "sklearn": SklearnCases,
              "torch_compile": _peer("torch_compile"), "jax": _peer("jax")}


# --- entry points --------------------------------------------------------------------------
def serve(name: str) -> None:
    """Answer JSON commands from stdin, one per line, until stdin closes."""
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not break the protocol
    try:
        cases = FRAMEWORKS[name]()
        info = cases.info()
    except Exception as exc:  # not installed, or broken: the driver prints "missing: <reason>"
        reply.write(json.dumps({"missing": f"{type(exc).__name__}: {exc}"}) + "\n")
        return
    reply.write(json.dumps({"ready": name, "info": info}, default=str) + "\n")
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["case"] == "prepare":
                data(*command["args"])
                answer = {"ok": True}
            else:
                answer = getattr(cases, command["case"])(**command["params"])
                if not isinstance(answer, dict):
                    answer = {"seconds": answer}
        except Exception as exc:  # report, keep serving the other cases
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        reply.write(json.dumps(answer) + "\n")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


#: The data each case trains on, built before "setup" is read: kind -> params -> data() args.
_CASE_DATA = {
    "mlp": lambda p: ("mnist", p["samples"]),
    "lenet": lambda p: ("images", p["samples"]),
    "transformer": lambda p: ("tokens", p["steps"]),
}


def measure_memory(name: str, kind: str, params: dict) -> None:
    """One run of case ``kind`` in this fresh process; print its peak RSS (MiB) as JSON.

    "setup" is the peak after importing the framework and building the case's data (and, for
    the recurrent cases, model), read from VmHWM; "peak" is ru_maxrss after the run.
    """
    cases = FRAMEWORKS[name]()
    if kind in _CASE_DATA:
        data(*_CASE_DATA[kind](params))
    prepare = getattr(cases, f"prepare_{kind}", None)
    if prepare is not None:
        prepare(**params)
    setup = _status_kib("VmHWM")
    seconds = getattr(cases, kind)(**params)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"framework": name, "setup_peak_mib": setup / 1024, "peak_mib": peak / 1024,
                      "seconds": seconds}))


def main(argv=None) -> None:
    reexec_without_forced_env(__file__)  # started by hand: rerun with a clean environment
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--worker", choices=sorted(FRAMEWORKS))
    group.add_argument("--memory", choices=sorted(FRAMEWORKS))
    parser.add_argument("--kind", default="mlp", help="with --memory: the case method to run")
    parser.add_argument("--params", default='{"samples": 60000, "batch": 512, "momentum": 0.0}',
                        help="with --memory: the case's parameters, as JSON")
    args = parser.parse_args(argv)
    if args.worker:
        serve(args.worker)
    else:
        measure_memory(args.memory, args.kind, json.loads(args.params))


if __name__ == "__main__":
    main()
