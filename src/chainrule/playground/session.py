"""A playground session: the data, the network, its optimizer and the training thread.

Everything the page shows comes from here, and every number from chainrule itself. One
training step on the mini-batch ``(xb, tb)`` is the library's own (chainrule.step.Step), with
the L1/L2 penalty as a library regularizer (chainrule.regularizers), and the page's extras
recorded on the way (:class:`_RecordingStep`: every layer's output and arriving gradient, the
data gradients before the penalty)::

    output = xb; for layer in net.layers: output = layer.forward(output, training=True)
    loss, grad = loss.value_and_grad(output, tb)
    for layer in reversed(net.layers): grad = layer.backward(grad)     # fills layer.grads
    regularizer: grads["weight"] += λ·sign(w) (L1) or λ·w (L2)
    optimizer.step(net)

so the weights after a step are bit for bit those of a Sequential with the same initial
weights, optimizer and regularizer taking that step, and the gradients a frame shows are
``backward``'s.

Reproducibility: ``SeedSequence(seed).spawn(3)`` gives three generators, for the data (points
and the train/test split), the initial weights (passed to each Dense in turn, first layer
first) and the batch order (one ``permutation`` of the training points per epoch).

Threads: the HTTP server's threads call the public methods; one training thread takes steps
while playing. One lock guards the network (its layers keep the caches of a pass), so a
frame or an export never sees a half-taken step.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..layers import Dense, Sigmoid
from ..losses import SSE, CrossEntropy
from ..network import Sequential
from ..optim import SGD, Adam
from ..registry import activation
from ..regularizers import L1, L2
from ..step import NonFiniteLoss, Step
from .config import ACTIVATIONS, REGRESSION, check_config
from .datasets import EXTENT, LABELS, features, generate, grid
from .frames import FrameHub, encode_f64, encode_u8, unit_values
from .upload import Uploaded, read_upload
from .walk import bias_names, unit_names, walk, weight_names

#: Settings that change training from the next step on; the others rebuild data and network.
LIVE = frozenset({"lr", "optimizer", "batch_size", "regularization", "reg_rate", "speed"})
HISTORY_LIMIT = 4000
HISTORY_IN_FRAME = 40


def seeded_generators(seed: int) -> tuple[np.random.Generator, ...]:
    """(data, weights, batches) generators of a playground seed."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def build_network(n_inputs: int, hidden: list[int], activations: list[str], n_outputs: int,
                  output_sigmoid: bool, rng: np.random.Generator) -> Sequential:
    """Dense(n_in, size, seed=rng) and its activation per hidden layer, then the output Dense
    (followed by a Sigmoid for squared error on classes); float64."""
    layers, n_in = [], n_inputs
    for size, act in zip(hidden, activations, strict=True):
        layers += [Dense(n_in, size, seed=rng), activation(act)()]
        n_in = size
    layers.append(Dense(n_in, n_outputs, seed=rng))
    if output_sigmoid:
        layers.append(Sigmoid())
    return Sequential(*layers, dtype=np.float64)


class _RecordingStep(Step):
    """The library's step, keeping what a frame shows: each layer's output, the gradient arriving
    at each layer, dL/dx, and the data gradients before the regularizer adds its share."""

    def __init__(self, net, loss, optimizer, dense) -> None:
        super().__init__(net, loss, optimizer)
        self.dense = dense

    def forward(self, xb, yb):
        outputs, out = [], xb
        for layer in self.net.layers:
            out = layer.forward(out, True)
            outputs.append(out)
        self.outputs = outputs
        value, delta = self.loss._value_and_grad(out, yb)
        self.data_loss = value
        return out, value, delta

    def backward(self, yb, delta) -> None:
        layers, grad = self.net.layers, delta
        self.arriving = [None] * len(layers)
        for k in range(len(layers) - 1, -1, -1):
            self.arriving[k] = grad
            grad = layers[k].backward(grad)
        self.input_grad = grad
        self.data_grads = [{k: g.copy() for k, g in d.grads.items()} for d in self.dense]


def make_regularizer(config: dict):
    """The page's regularization setting as a library regularizer (None: none)."""
    kind, rate = config["regularization"], config["reg_rate"]
    if kind == "none" or rate <= 0:
        return None
    return (L1 if kind == "l1" else L2)(rate)


def make_optimizer(config: dict):
    if config["optimizer"] == "adam":
        return Adam(lr=config["lr"])
    return SGD(lr=config["lr"], momentum=0.9 if config["optimizer"] == "momentum" else 0.0)


class Session:
    """The state behind one playground page (see the module docstring).

    Parameters
    ----------
    config : dict, optional
        Settings over :data:`chainrule.playground.config.DEFAULTS`.
    frame_interval : float
        Seconds between frames while playing.
    grid_size, unit_grid_size : int
        Pixels per side of the output heat map and of each unit's small heat map.
    """

    def __init__(self, config: dict | None = None, *, frame_interval: float = 1 / 15, grid_size: int = 48,
                 unit_grid_size: int = 20) -> None:
        self.frame_interval = float(frame_interval)
        self.grid_size, self.unit_grid_size = int(grid_size), int(unit_grid_size)
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self.hub = FrameHub()
        self._closed = False
        self._playing = False
        self.generation = 0
        self.upload: Uploaded | None = None
        self._walk_cache = None
        with self._lock:
            self._rebuild(check_config(config))
            self._publish()
        self._thread = threading.Thread(target=self._loop, name="chainrule-playground-training", daemon=True)
        self._thread.start()

    # --- building -------------------------------------------------------------------------
    def _rebuild(self, cfg: dict) -> None:
        data_rng, weight_rng, batch_rng = seeded_generators(cfg["seed"])
        if cfg["dataset"] == "csv":
            if self.upload is None:
                raise ConfigError("playground config 'dataset': 'csv' needs an uploaded CSV file first")
            up = self.upload
            order = data_rng.permutation(len(up.target))
            points, target, task = up.points[order], up.target[order], up.task
            n_classes = len(up.classes) if task == "classification" else 0
            if n_classes:
                cfg["classes"] = n_classes
        else:
            points, target = generate(cfg["dataset"], cfg["samples"], cfg["noise"] / 100, cfg["classes"], data_rng)
            task = "regression" if cfg["dataset"] in REGRESSION else "classification"
            n_classes = cfg["classes"] if task == "classification" else 0
        if task == "regression" and cfg["loss"] == "crossentropy":
            raise ConfigError("playground config 'loss': cross-entropy needs classes; this data is a regression"
                              " (use squared error)")
        n = len(points)
        n_train = min(max(1, round(n * cfg["train_ratio"] / 100)), n - 1) if n > 1 else n
        self.config, self.task, self.n_classes = cfg, task, n_classes
        self.points = {"train": points[:n_train], "test": points[n_train:]}
        self.labels = {"train": target[:n_train], "test": target[n_train:]}
        self.inputs = {k: features(v, cfg["features"]) for k, v in self.points.items()}
        if task == "classification" and cfg["loss"] == "crossentropy":
            n_out, sigmoid, self.output_kind = n_classes, False, "softmax"
            self.loss = CrossEntropy()
            prepare = lambda t: np.asarray(t, dtype=np.int64)  # noqa: E731
        elif task == "classification":
            n_out, sigmoid, self.output_kind = (1 if n_classes == 2 else n_classes), True, "sigmoid"
            self.loss = SSE()
            prepare = (lambda t: np.asarray(t, dtype=np.float64).reshape(-1, 1)) if n_out == 1 else \
                (lambda t: np.eye(n_out)[np.asarray(t, dtype=np.int64)])
        else:
            n_out, sigmoid, self.output_kind = 1, False, "linear"
            self.loss = SSE()
            prepare = lambda t: np.asarray(t, dtype=np.float64).reshape(-1, 1)  # noqa: E731
        self.net = build_network(len(cfg["features"]), cfg["layers"], cfg["activations"], n_out, sigmoid, weight_rng)
        self.targets = {k: self.loss.prepare_target(prepare(v), (len(v), n_out), self.net.dtype)
                        for k, v in self.labels.items()}
        self.dense = [layer for layer in self.net.layers if isinstance(layer, Dense)]
        positions = [k for k, layer in enumerate(self.net.layers) if isinstance(layer, Dense)]
        self._dense_pos = positions
        self._top_pos = [p + 1 for p in positions[:-1]] + [len(self.net.layers) - 1]
        self.optimizer = make_optimizer(cfg)
        self._batch_rng = batch_rng
        self.steps, self.epoch = 0, 0
        self._order, self._pos = None, 0
        self._last: dict | None = None
        self.error: str | None = None
        self.history: list[list] = []
        self._grid_inputs = features(grid(self.grid_size), cfg["features"])
        self._unit_grid_inputs = features(grid(self.unit_grid_size), cfg["features"])
        self._walk_cache = None
        self.generation += 1
        self._playing = False

    # --- public controls ------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self._playing

    def configure(self, update: dict) -> dict:
        """Apply settings (a partial config); training settings take effect at the next step,
        others rebuild data and network (and pause). Returns the new state."""
        with self._lock:
            cfg = check_config(update, self.config)
            changed = {k for k in cfg if cfg[k] != self.config.get(k)}
            if changed <= LIVE:
                if changed & {"optimizer"}:
                    self.optimizer = make_optimizer(cfg)
                elif "lr" in changed:
                    self.optimizer.lr = self.optimizer.base_lr = cfg["lr"]
                self.config = cfg
                self._publish()
            else:
                self._rebuild(cfg)
                self._publish()
            return self.state()

    def reset(self) -> dict:
        """Back to step 0: the seed's data and initial weights, paused."""
        with self._lock:
            self._rebuild(dict(self.config))
            self._publish()
            return self.state()

    def play(self) -> None:
        with self._lock:
            if self.error is None:
                self._playing = True
                self._wake.notify_all()

    def pause(self) -> dict:
        with self._lock:
            self._playing = False
            self._wake.notify_all()
            return self._publish()

    def step(self) -> dict:
        """Pause, take exactly one mini-batch step, and return its frame."""
        with self._lock:
            self._playing = False
            self._wake.notify_all()
            self._step()
            return self._publish()

    def upload_csv(self, body: bytes, filename: str | None = None, label: str | None = None) -> dict:
        """Use an uploaded CSV file (two feature columns and a label) as the data set."""
        uploaded = read_upload(body, filename, label)
        with self._lock:
            previous, self.upload = self.upload, uploaded
            update = {"dataset": "csv"}
            if uploaded.task == "regression" and self.config["loss"] == "crossentropy":
                update["loss"] = "squared"
            try:
                cfg = check_config(update, self.config)
                self._rebuild(cfg)
            except Exception:
                self.upload = previous
                raise
            self._publish()
            return self.state()

    def close(self) -> None:
        """Stop the training thread (within a second)."""
        with self._lock:
            self._closed = True
            self._playing = False
            self._wake.notify_all()
        self.hub.close()
        if self._thread is not threading.current_thread():
            self._thread.join(1.0)

    # --- training -------------------------------------------------------------------------
    def _next_batch(self) -> np.ndarray:
        n = len(self.inputs["train"])
        if self._order is None or self._pos >= n:
            if self._order is not None:
                self.epoch += 1
            self._order, self._pos = self._batch_rng.permutation(n), 0
        idx = self._order[self._pos:self._pos + self.config["batch_size"]]
        self._pos += len(idx)
        return idx

    def _step(self) -> bool:
        if self.error is not None:
            return False
        idx = self._next_batch()
        xb, tb = self.inputs["train"][idx], self.targets["train"][idx]
        step = _RecordingStep(self.net, self.loss, self.optimizer, self.dense)
        step.regularizer = make_regularizer(self.config)  # (a live setting: read at every step)
        try:
            step(xb, tb)
        except NonFiniteLoss as exc:
            self.error = (f"the loss became {exc.value} at step {self.steps + 1}; the weights are those of"
                          f" step {self.steps}. Lower the learning rate and press Reset.")
            self._playing = False
            return False
        self.steps += 1
        outputs, arriving = step.outputs, step.arriving
        self._last = {
            "batch": idx, "loss": float(step.data_loss), "grads": step.data_grads,
            "act": [xb.mean(axis=0)] + [outputs[p].mean(axis=0) for p in self._top_pos],
            "delta": [step.input_grad.sum(axis=0)] + [arriving[p].sum(axis=0) for p in self._dense_pos],
        }
        return True

    def _loop(self) -> None:
        next_frame = 0.0
        with self._lock:
            while not self._closed:
                if not self._playing:
                    self._wake.wait()
                    continue
                try:
                    self._step()
                except Exception as exc:  # keep the thread alive; show what broke
                    self.error, self._playing = f"training stopped: {type(exc).__name__}: {exc}", False
                now = time.monotonic()
                if now >= next_frame or not self._playing:
                    self._publish()
                    next_frame = now + self.frame_interval
                speed = self.config["speed"]
                self._wake.wait(1.0 / speed if speed else 0.0001)  # lets the page's requests in

    # --- what the page is sent ----------------------------------------------------------------
    def _loss_on(self, split: str) -> float | None:
        if len(self.inputs[split]) == 0:
            return None
        value = self.loss.value(self.net.predict(self.inputs[split]), self.targets[split])
        return float(value) if math.isfinite(value) else None

    def _accuracy(self, split: str) -> float | None:
        if self.task != "classification" or len(self.inputs[split]) == 0:
            return None
        out = self.net.predict(self.inputs[split])
        pred = (out[:, 0] > 0.5).astype(np.int64) if out.shape[1] == 1 else out.argmax(axis=1)
        return float((pred == self.labels[split]).mean())

    def frame(self) -> dict:
        """The current frame (see :mod:`chainrule.playground.frames`)."""
        with self._lock:
            net = self.net
            heat = net.predict(self._grid_inputs)
            maps = [encode_u8(self._unit_grid_inputs[:, k]) for k in range(self._unit_grid_inputs.shape[1])]
            for values in unit_values(net, self._unit_grid_inputs, self._top_pos[:-1]):
                maps += [encode_u8(values[:, j]) for j in range(values.shape[1])]
            train, test = self._loss_on("train"), self._loss_on("test")
            if not self.history or self.history[-1][0] != self.steps:
                epochs = self.epoch + self._pos / max(len(self.inputs["train"]), 1)  # epochs done, fractional
                self.history.append([self.steps, train, test, epochs])
                if len(self.history) > HISTORY_LIMIT:  # keep every other old point
                    self.history = self.history[:-HISTORY_LIMIT // 2:2] + self.history[-HISTORY_LIMIT // 2:]
            last = self._last
            return {
                "generation": self.generation, "step": self.steps, "epoch": self.epoch, "playing": self._playing,
                "loss": {"train": train, "test": test, "batch": last["loss"] if last else None},
                "accuracy": {"train": self._accuracy("train"), "test": self._accuracy("test")},
                "weights": [d.params["weight"].tolist() for d in self.dense],
                "biases": [d.params["bias"].tolist() for d in self.dense],
                "grads": [g["weight"].tolist() for g in last["grads"]] if last else None,
                "bias_grads": [g["bias"].tolist() for g in last["grads"]] if last else None,
                "units": {"act": [a.tolist() for a in last["act"]], "delta": [d.tolist() for d in last["delta"]]}
                if last else None,
                "batch": last["batch"].tolist() if last else None,
                "heatmap": {"size": self.grid_size, "extent": list(EXTENT), "outputs": int(heat.shape[1]),
                            "data": encode_f64(heat)},
                "unit_maps": {"size": self.unit_grid_size, "maps": maps},
                "history": self.history[-HISTORY_IN_FRAME:],
                "error": self.error,
            }

    def _publish(self) -> dict:
        frame = self.frame()
        self.hub.publish(json.dumps(frame))
        return frame

    def topology(self) -> dict:
        with self._lock:
            cfg = self.config
            n_in = len(cfg["features"])
            sizes = [*cfg["layers"], self.dense[-1].n_out]
            out_act = {"softmax": "linear", "sigmoid": "sigmoid", "linear": "linear"}[self.output_kind]
            if self.upload is not None and cfg["dataset"] == "csv" and self.task == "classification":
                class_names = [str(c) for c in self.upload.classes]
            else:
                class_names = [str(k) for k in range(self.n_classes)]
            return {
                "features": [{"id": f, "label": LABELS[f]} for f in cfg["features"]],
                "sizes": [n_in, *sizes], "activations": [*cfg["activations"], out_act],
                "names": {"units": unit_names(n_in, sizes), "weights": weight_names(n_in, sizes),
                          "biases": bias_names(n_in, sizes)},
                "task": self.task, "classes": self.n_classes, "class_names": class_names,
                "output": self.output_kind, "loss": cfg["loss"], "extent": list(EXTENT),
            }

    def state(self) -> dict:
        """Everything the page needs after loading or after a rebuild."""
        with self._lock:
            def rows(split):
                p, t = self.points[split], self.labels[split]
                return [[float(a), float(b), _plain(c)] for (a, b), c in zip(p, t, strict=True)]

            upload = None
            if self.upload is not None:
                u = self.upload
                upload = {"filename": u.filename, "columns": u.columns, "label": u.label, "task": u.task,
                          "classes": [str(c) for c in u.classes], "ranges": u.ranges}
            return {"config": dict(self.config), "choices": {"activations": list(ACTIVATIONS)},
                    "generation": self.generation, "playing": self._playing,
                    "topology": self.topology(), "data": {"train": rows("train"), "test": rows("test")},
                    "frame": self.frame(), "history": list(self.history), "upload": upload, "error": self.error}

    # --- backprop mode and exports ------------------------------------------------------------
    def _sample(self, split: str, index: int):
        if split not in ("train", "test"):
            raise ConfigError(f"playground sample: split must be 'train' or 'test', got {split!r}")
        n = len(self.inputs[split])
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
            raise ConfigError(f"playground sample: index must be an integer from 0 to {n - 1} for the"
                              f" {split} set, got {index!r}")
        return self.inputs[split][index:index + 1], self.targets[split][index:index + 1]

    def backprop(self, split: str = "train", index: int = 0) -> dict:
        """Pause and walk one sample through the forward and backward pass (``cr.explain``)."""
        with self._lock:
            x, y = self._sample(split, index)
            if self._playing:
                self._playing = False
                self._publish()
            key = (self.generation, self.steps, split, index)
            net, loss = self.net.copy(), self.loss
            plain_sgd = self.config["optimizer"] == "sgd" and self.config["regularization"] == "none"
            lr = self.config["lr"] if plain_sgd else None
            point = self.points[split][index].tolist()
            label = _plain(self.labels[split][index])
        if self._walk_cache is not None and self._walk_cache[0] == key:
            return self._walk_cache[1]
        result, trace = walk(net, loss, x, y, lr)
        result["sample"] = {"split": split, "index": index, "point": point, "label": label,
                            "inputs": x[0].tolist(), "target": y[0].tolist()}
        result["step"] = key[1]
        result["generation"] = key[0]
        self._walk_cache = (key, result, trace)
        return result

    def trace(self, split: str = "train", index: int = 0, fmt: str = "markdown") -> str:
        """The explain trace of one sample at the current step, as Markdown or HTML."""
        if fmt not in ("markdown", "html"):
            raise ConfigError(f"playground trace format must be 'markdown' or 'html', got {fmt!r}")
        self.backprop(split, index)
        trace = self._walk_cache[2]
        return trace.to_markdown() if fmt == "markdown" else trace.to_html()

    def model_bytes(self) -> bytes:
        """The current network as a chainrule model file (``cr.load`` reads it)."""
        with self._lock:
            net = self.net.copy()
            meta = {"playground": {"config": dict(self.config), "features": list(self.config["features"]),
                                   "task": self.task, "classes": self.n_classes, "output": self.output_kind,
                                   "loss": type(self.loss).__name__, "step": self.steps}}
        with tempfile.TemporaryDirectory(prefix="chainrule-playground-") as folder:
            path = Path(folder) / "playground.npz"
            net.save(path, metadata=meta)
            return path.read_bytes()


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    return value
