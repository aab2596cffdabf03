"""The compiled peers of the benchmark suite: ``torch.compile`` and JAX, run inside a worker.

``cases.py --worker torch_compile`` and ``cases.py --worker jax`` serve these classes, with
the same protocol, data and case parameters as the eager frameworks, so run.py alternates them
run by run with the others. Compilation is kept out of the steady-state figure: the first call
of a case compiles (timed apart, answered as ``compile_s``) before its clock starts, and the
compiled code is reused by every later run of that case.

torch.compile: the model is compiled (``torch.compile(model)``, mode default, the inductor
backend), the way PyTorch's torch.compile tutorial trains: the loss, ``backward()`` (through
AOTAutograd's compiled backward) and ``torch.optim.SGD`` run as in the eager loop. The compiled
module is built once per architecture and its weights are reset to the same initial values
before every run.

JAX: jax.numpy only (no flax or optax). float32, the chainrule initialization (He uniform for
the ReLU layers, Xavier uniform for the output layer, zero biases; the recurrent rows:
PyTorch's U(±1/√hidden)), the same data and the same update as ``torch.optim.SGD``
(b ← μb + g, θ ← θ − lr·b; plain θ ← θ − lr·g without momentum). Two variants:

- ``step``: ``jax.jit`` of the whole training step (gather of the batch by index, forward, loss,
  gradient, update), parameters donated, called once per batch from Python;
- ``scan``: the whole epoch as one compiled function, ``jax.lax.scan`` over the batches (a last
  partial batch is one more call of the step).

The recurrent layers run ``jax.lax.scan`` over time inside the step.
"""

from __future__ import annotations

import time

import bench_rnn
import numpy as np
from cases import MLP_SIZES, TorchCases, data


def _uniform(rng, bound, shape):
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def mlp_init(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """chainrule.mlp's scheme for ReLU: He uniform U(±√(6/fan_in)) for the hidden layers, Xavier
    uniform U(±√(6/(fan_in+fan_out))) for the output layer, zero biases; (n_in, n_out) weights."""
    rng = np.random.default_rng(seed)
    pairs = list(zip(MLP_SIZES[:-1], MLP_SIZES[1:], strict=True))
    params = []
    for i, (a, b) in enumerate(pairs):
        bound = np.sqrt(6.0 / (a + b)) if i == len(pairs) - 1 else np.sqrt(6.0 / a)
        params.append((_uniform(rng, bound, (a, b)), np.zeros(b, np.float32)))
    return params


# --- torch.compile -------------------------------------------------------------------------
class TorchCompileCases(TorchCases):
    name = "torch_compile"

    def __init__(self) -> None:
        super().__init__()
        self._models: dict = {}   # key -> (compiled module, eager module, initial state_dict)
        self._recurrent: dict = {}

    def info(self) -> dict:
        import shutil

        info = super().info()
        compiler = shutil.which("g++") or shutil.which("c++") or shutil.which("cc")
        return info | {"compile": "torch.compile(model), mode default, backend inductor",
                       "cxx": compiler}

    def _compiled(self, key, build):
        """The compiled module for ``key`` and the seconds its first compilation took (None if
        it was compiled by an earlier run)."""
        if key not in self._models:
            model = build()
            initial = {k: v.clone() for k, v in model.state_dict().items()}
            self._models[key] = [self.torch.compile(model), model, initial, set()]
        return self._models[key]

    def mlp(self, samples, batch, momentum, seed=0):
        torch = self.torch
        X, y = data("mnist", samples)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        compiled, model, initial, shapes = self._compiled("mlp", lambda: self._mlp(seed))
        loss_fn = torch.nn.CrossEntropyLoss()
        compile_s = None
        # the batch shapes of this epoch (the last batch may be shorter), compiled before the clock
        todo = sorted({batch, len(X) % batch or batch} - shapes)
        if todo:
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
            start = time.perf_counter()
            for b in todo:
                self._epoch(compiled, loss_fn, opt, Xt[:b], yt[:b], b)
            compile_s = time.perf_counter() - start
            shapes.update(todo)
        model.load_state_dict(initial)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
        start = time.perf_counter()
        self._epoch(compiled, loss_fn, opt, Xt, yt, batch)
        seconds = time.perf_counter() - start
        return {"seconds": seconds} | ({"compile_s": compile_s} if compile_s is not None else {})

    def recurrent(self, layer):
        """bench_rnn.py's epoch with ``torch.compile`` of the recurrent layer and the head."""
        torch = self.torch
        compile_s = None
        if layer not in self._recurrent:
            torch.manual_seed(0)
            X, y = bench_rnn.data()
            cell = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[layer]

            class Net(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.recurrent = cell(bench_rnn.FEATURES, bench_rnn.HIDDEN, batch_first=True)
                    self.head = torch.nn.Linear(bench_rnn.HIDDEN, bench_rnn.CLASSES)

                def forward(self, x):
                    return self.head(self.recurrent(x)[0][:, -1])

            model = Net()
            compiled = torch.compile(model)
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            state = [compiled, opt, torch.from_numpy(X), torch.from_numpy(y), 0]
            start = time.perf_counter()
            self._recurrent_epoch(state, steps=1)
            compile_s = time.perf_counter() - start
            self._recurrent[layer] = state
        state = self._recurrent[layer]
        start = time.perf_counter()
        self._recurrent_epoch(state)
        seconds = time.perf_counter() - start
        return {"seconds": seconds} | ({"compile_s": compile_s} if compile_s is not None else {})

    def _recurrent_epoch(self, state, steps=bench_rnn.STEPS):
        torch = self.torch
        compiled, opt, Xt, yt, seed = state
        state[4] += 1
        order = torch.randperm(len(Xt), generator=torch.Generator().manual_seed(seed))
        loss_fn = torch.nn.functional.cross_entropy
        for b in range(steps):
            idx = order[b * bench_rnn.BATCH:(b + 1) * bench_rnn.BATCH]
            loss = loss_fn(compiled(Xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


# --- JAX -----------------------------------------------------------------------------------
class JaxCases:
    name = "jax"

    def __init__(self) -> None:
        import jax

        jax.config.update("jax_platforms", "cpu")
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self._fns: dict = {}        # compiled functions by key
        self._data: dict = {}       # device arrays by key
        self._recurrent: dict = {}  # layer -> [params, runs so far]

    def info(self) -> dict:
        import jaxlib
        from threadpoolctl import threadpool_info

        jax = self.jax
        return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "numpy": np.__version__,
                "devices": [str(d) for d in jax.devices()], "threadpools": threadpool_info()}

    # the pieces, in jax.numpy
    def _sgd(self, params, bufs, grads, lr, momentum):
        tree_map = self.jax.tree_util.tree_map
        if momentum:
            bufs = tree_map(lambda b, g: momentum * b + g, bufs, grads)
            return tree_map(lambda p, b: p - lr * b, params, bufs), bufs
        return tree_map(lambda p, g: p - lr * g, params, grads), bufs

    def _cross_entropy(self, logits, y):
        jax, jnp = self.jax, self.jnp
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def _mlp_loss(self, params, x, y):
        jax = self.jax
        h = x
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        return self._cross_entropy(h, y)

    def _trainer(self, loss, lr, momentum, batch):
        """step(params, bufs, X, y, order, start) -> (params, bufs, loss) on the batch
        X[order[start:start + batch]], and epoch(params, bufs, X, y, order) -> the same over all
        whole batches of ``order`` under lax.scan."""
        jax = self.jax
        grad = jax.value_and_grad(loss)

        def step(params, bufs, X, y, order, start, size=batch):
            idx = jax.lax.dynamic_slice_in_dim(order, start, size)
            value, grads = grad(params, X[idx], y[idx])
            params, bufs = self._sgd(params, bufs, grads, lr, momentum)
            return params, bufs, value

        def epoch(params, bufs, X, y, order):
            whole = len(order) // batch

            def body(carry, idx):
                params, bufs = carry
                value, grads = grad(params, X[idx], y[idx])
                return self._sgd(params, bufs, grads, lr, momentum), value

            (params, bufs), values = jax.lax.scan(body, (params, bufs),
                                                  order[:whole * batch].reshape(whole, batch))
            return params, bufs, values.sum()

        return step, epoch

    def _compile(self, key, fn, args, donate=(0, 1), static=()):
        """``fn`` jitted and compiled ahead of time for ``args``; (compiled, seconds or None)."""
        if key in self._fns:
            return self._fns[key], None
        start = time.perf_counter()
        compiled = self.jax.jit(fn, donate_argnums=donate, static_argnums=static).lower(*args).compile()
        self._fns[key] = compiled
        return compiled, time.perf_counter() - start

    def _fresh(self, arrays):
        jnp = self.jnp
        return [tuple(jnp.array(a) for a in pair) for pair in arrays]

    def mlp(self, samples, batch, momentum, seed=0, mode="step"):
        jax, jnp = self.jax, self.jnp
        key = ("mnist", samples)
        if key not in self._data:
            X, y = data("mnist", samples)
            self._data[key] = (jnp.asarray(X), jnp.asarray(y.astype(np.int32)))
        X, y = self._data[key]
        init = mlp_init(seed)
        zeros = [(np.zeros_like(w), np.zeros_like(b)) for w, b in init]
        order = jnp.asarray(np.random.default_rng(seed).permutation(samples).astype(np.int32))
        step, epoch = self._trainer(self._mlp_loss, 0.1, momentum, batch)
        rest = samples % batch
        whole = samples - rest
        args = (self._fresh(init), self._fresh(zeros), X, y, order)
        compile_s = 0.0
        fresh = False
        if mode == "scan":
            run_epoch, t = self._compile(("mlp_scan", samples, batch, momentum), epoch, args)
        else:
            run_step, t = self._compile(("mlp_step", batch, momentum), step, (*args, 0))
        fresh |= t is not None
        compile_s += t or 0.0
        if rest:
            def last(params, bufs, X, y, order, start):
                return step(params, bufs, X, y, order, start, size=rest)

            run_last, t = self._compile(("mlp_last", rest, momentum), last, (*args, whole))
            fresh |= t is not None
            compile_s += t or 0.0
        params, bufs = self._fresh(init), self._fresh(zeros)
        jax.block_until_ready((params, bufs))
        start = time.perf_counter()
        # the shuffle, as the other frameworks do inside their clock (one permutation per epoch)
        order = jnp.asarray(np.random.default_rng(seed + 1).permutation(samples).astype(np.int32))
        if mode == "scan":
            params, bufs, _ = run_epoch(params, bufs, X, y, order)
        else:
            for s in range(0, whole, batch):
                params, bufs, _ = run_step(params, bufs, X, y, order, s)
        if rest:
            params, bufs, _ = run_last(params, bufs, X, y, order, whole)
        jax.block_until_ready(params)
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "mode": mode} | ({"compile_s": compile_s} if fresh else {})

    # recurrent layers: bench_rnn.py's case, lax.scan over time
    def _recurrent_init(self, layer):
        rng = np.random.default_rng(0)
        F, H, C = bench_rnn.FEATURES, bench_rnn.HIDDEN, bench_rnn.CLASSES
        gates = {"rnn": 1, "lstm": 4, "gru": 3}[layer]
        bound = 1 / np.sqrt(H)
        return [(_uniform(rng, bound, (F, gates * H)), _uniform(rng, bound, (H, gates * H))),
                (_uniform(rng, bound, (gates * H,)), _uniform(rng, bound, (gates * H,))),
                (_uniform(rng, bound, (H, C)), _uniform(rng, bound, (C,)))]

    def _recurrent_loss(self, layer):
        jax, jnp = self.jax, self.jnp
        H = bench_rnn.HIDDEN

        def loss(params, x, y):
            (w_x, w_h), (b_x, b_h), (w_o, b_o) = params
            xs = jnp.swapaxes(x, 0, 1) @ w_x + b_x      # (T, B, gates·H): the input products at once
            h0 = jnp.zeros((x.shape[0], H), x.dtype)

            if layer == "lstm":   # PyTorch's gate order i, f, g, o
                def cell(carry, xt):
                    h, c = carry
                    z = xt + h @ w_h + b_h
                    i, f, g, o = jnp.split(z, 4, axis=1)
                    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
                    h = jax.nn.sigmoid(o) * jnp.tanh(c)
                    return (h, c), None
                (h, _), _ = jax.lax.scan(cell, (h0, h0), xs)
            elif layer == "gru":  # PyTorch's r, z, n with r applied to (W_hn h + b_hn)
                def cell(h, xt):
                    xr, xz, xn = jnp.split(xt, 3, axis=1)
                    hr, hz, hn = jnp.split(h @ w_h + b_h, 3, axis=1)
                    r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
                    n = jnp.tanh(xn + r * hn)
                    return (1 - z) * n + z * h, None
                h, _ = jax.lax.scan(cell, h0, xs)
            else:
                def cell(h, xt):
                    return jnp.tanh(xt + h @ w_h + b_h), None
                h, _ = jax.lax.scan(cell, h0, xs)
            return self._cross_entropy(h @ w_o + b_o, y)

        return loss

    def recurrent(self, layer, mode="step"):
        """One epoch of bench_rnn.py's case (20 steps of batch 64, SGD lr 0.01); the parameters
        are trained on from run to run, each epoch shuffled with the next seed."""
        jax, jnp = self.jax, self.jnp
        key = ("recurrent", layer)
        if key not in self._data:
            X, y = bench_rnn.data()
            self._data[key] = (jnp.asarray(X), jnp.asarray(y.astype(np.int32)))
            self._recurrent[layer] = [self._fresh(self._recurrent_init(layer)), 0]
        X, y = self._data[key]
        params, seed = self._recurrent[layer]
        self._recurrent[layer][1] += 1
        bufs = []  # plain SGD: no momentum buffers
        step, epoch = self._trainer(self._recurrent_loss(layer), 0.01, 0.0, bench_rnn.BATCH)
        order = jnp.asarray(np.arange(len(X), dtype=np.int32))
        if mode == "scan":
            run, compile_s = self._compile((key, "scan"), epoch, (params, bufs, X, y, order))
        else:
            run, compile_s = self._compile((key, "step"), step, (params, bufs, X, y, order, 0))
        start = time.perf_counter()
        order = jnp.asarray(np.random.default_rng(seed).permutation(len(X)).astype(np.int32))
        if mode == "scan":
            params, bufs, _ = run(params, bufs, X, y, order)
        else:
            for s in range(0, bench_rnn.STEPS * bench_rnn.BATCH, bench_rnn.BATCH):
                params, bufs, _ = run(params, bufs, X, y, order, s)
        jax.block_until_ready(params)
        seconds = time.perf_counter() - start
        self._recurrent[layer][0] = params
        return {"seconds": seconds, "mode": mode} | ({"compile_s": compile_s} if compile_s is not None else {})
