"""Checkpoints: all that ``fit`` needs to go on exactly where it stopped.

A checkpoint is a model file (``cr.load`` reads it as the network it holds) with a
``"training"`` entry in its header and the training state's arrays beside the weights:

- the optimizer: its class and settings, ``state`` (momenta, moments, step counts, keyed
  "layer.param"), ``iterations``, ``lr`` and ``base_lr``;
- the random streams: the shuffling Generator's state now and at the start of the current
  epoch (the epoch's order is drawn again from it), and every Generator a layer holds
  (Dropout masks); a stateful recurrent layer's carried state;
- the position: the epoch in progress, the batches of it already done, the steps done in
  all, the epoch's running loss sum and its metric accumulators;
- the History and the state of every callback that has one (``Callback.get_state``);
- what must not change on resume: the data's SHA-256 fingerprint, the batch size, shuffling,
  loss, optimizer class and settings, metrics and truncated-BPTT steps.

``fit(..., resume=path)`` checks all of that against the new call and puts it back; the run
then continues batch for batch as if it had never stopped (docs/reliability.md).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _checkpoint_checks as checks
from . import io
from .errors import ConfigError, DataError, FileFormatError, TrainingError

_KIND = "chainrule-checkpoint"
_TRAINING_VERSION = 1


# --- JSON trees with arrays beside them -------------------------------------------------------
class _Packer:
    """Turn a tree of dicts, lists, tuples, numbers, strings and arrays into JSON + named arrays."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.arrays = prefix, {}

    def pack(self, value, where: str):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            return float(value)
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "biuf":
                raise ConfigError(f"{where}: a checkpoint stores arrays of numbers, got dtype {value.dtype}")
            name = f"{self.prefix}{len(self.arrays)}"
            self.arrays[name] = value
            return {"__array__": name}
        if isinstance(value, tuple):
            return {"__tuple__": [self.pack(v, where) for v in value]}
        if isinstance(value, list):
            return [self.pack(v, where) for v in value]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: self.pack(v, where) for k, v in value.items()}
            return {"__items__": [[self.pack(k, where), self.pack(v, where)] for k, v in value.items()]}
        raise ConfigError(f"{where}: a checkpoint cannot store a {type(value).__name__}"
                          " (numbers, strings, lists, dicts and arrays only)")


def _unpack(value, arrays: dict, where: str, depth: int = 0):
    """The tree ``_Packer.pack`` wrote, arrays put back; ``where`` names the field in errors."""
    if depth > 64:
        raise FileFormatError(f"{where}: nested too deeply")
    if isinstance(value, list):
        return [_unpack(v, arrays, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        name = value["__array__"]
        if len(value) != 1 or not isinstance(name, str) or name not in arrays:
            raise FileFormatError(f"{where}: refers to an array {str(name)[:80]!r} the file lacks")
        return np.array(arrays[name])  # a writable copy
    if "__tuple__" in value:
        parts = value["__tuple__"]
        if len(value) != 1 or not isinstance(parts, list):
            raise FileFormatError(f"{where}: malformed tuple")
        return tuple(_unpack(v, arrays, f"{where}[{i}]", depth + 1) for i, v in enumerate(parts))
    if "__items__" in value:
        items = value["__items__"]
        if len(value) != 1 or not isinstance(items, list) \
                or not all(isinstance(kv, list) and len(kv) == 2 for kv in items):
            raise FileFormatError(f"{where}: malformed mapping")
        out = {}
        for k, v in items:
            key = _hashable(_unpack(k, arrays, where, depth + 1), where)
            out[key] = _unpack(v, arrays, f"{where}.{key!r}", depth + 1)
        return out
    return {k: _unpack(v, arrays, f"{where}.{k}", depth + 1) for k, v in value.items()}


def _hashable(key, where: str):
    if isinstance(key, (list, dict, np.ndarray)) or isinstance(key, tuple) and not _hashable_tuple(key):
        raise FileFormatError(f"{where}: malformed key {checks.show(key)}")
    return key


def _hashable_tuple(key: tuple) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


# --- the parts of the state ---------------------------------------------------------------------
def _generators(layer, prefix: str, depth: int = 0) -> dict[str, np.random.Generator]:
    """Every numpy Generator a layer holds (Dropout's ``rng``), wrapped layers (one, or a list) included."""
    from .layers.base import Layer

    found = {}
    for attr, value in vars(layer).items():
        if isinstance(value, np.random.Generator):
            found[f"{prefix}.{attr}"] = value
        elif isinstance(value, Layer) and depth < 8:
            found.update(_generators(value, f"{prefix}.{attr}", depth + 1))
        elif isinstance(value, list) and depth < 8:  # Residual's layers
            for j, inner in enumerate(value):
                if isinstance(inner, Layer):
                    found.update(_generators(inner, f"{prefix}.{attr}.{j}", depth + 1))
    return found


def network_generators(net) -> dict[str, np.random.Generator]:
    found = {}
    for i, layer in enumerate(net.layers):
        found.update(_generators(layer, str(i)))
    return found


def _carried_states(net) -> dict[str, dict]:
    """The carried state of stateful recurrent layers (what their next batch starts from)."""
    return {str(i): dict(layer._carried) for i, layer in enumerate(net.layers)
            if getattr(layer, "stateful", False) and isinstance(getattr(layer, "_carried", None), dict)}


def fingerprint(X: np.ndarray, y: np.ndarray) -> dict:
    """SHA-256 of the training inputs and targets as fit uses them, with their shapes."""
    digests = {}
    for name, arr in (("X", X), ("y", y)):
        h = hashlib.sha256(f"{arr.dtype.str}|{arr.shape}|".encode())
        h.update(np.ascontiguousarray(arr).data)
        digests[name] = {"shape": list(arr.shape), "sha256": h.hexdigest()}
    return digests


@dataclass
class Position:
    """Where the fit loop is: epoch in progress (0-based) and batches of it done."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    epoch_rng: dict | None = None
    total: float = 0.0
    metrics: list = field(default_factory=list)
    finished: bool = False
    last_loss: float | None = None


@dataclass
class Checkpoint:
    """A checkpoint read back: its header, arrays and training entry (see :func:`read`)."""

    path: str
    header: dict
    arrays: dict
    training: dict

    def value(self, key: str):
        return _unpack(self.training.get(key), self.arrays, f"{self.path}: training.{key}")

    @property
    def position(self) -> Position:
        pos = self.value("position")
        if not isinstance(pos, dict):
            raise FileFormatError(f"{self.path}: malformed training position")
        try:
            return Position(**pos)
        except TypeError as exc:
            raise FileFormatError(f"{self.path}: malformed training position ({exc})") from None


def write(path, net, optimizer, rng, position: Position, history, callbacks, settings: dict,
          data: dict, rule=None) -> None:
    """Write a checkpoint of the running fit to ``path`` (atomically, with checksums)."""
    header, arrays = io.model_parts(net, metadata=getattr(net, "metadata", None), history=None)
    packer = _Packer("training.")
    states = []
    for i, cb in enumerate(callbacks):
        state = cb.get_state()
        if state is not None:
            states.append({"index": i, "class": type(cb).__name__,
                           "state": packer.pack(state, f"{type(cb).__name__} state")})
    training = {
        "kind": _KIND, "version": _TRAINING_VERSION,
        "settings": settings, "data": data,
        "position": packer.pack(vars(position), "position"),
        "optimizer": packer.pack({"class": type(optimizer).__name__, "config": optimizer.get_config(),
                                  "state": optimizer.state, "iterations": optimizer.iterations,
                                  "lr": optimizer.lr, "base_lr": optimizer.base_lr,
                                  "last_grad_norm": optimizer.last_grad_norm}, "optimizer"),
        "rng": packer.pack({"shuffle": rng.bit_generator.state,
                            "layers": {k: g.bit_generator.state for k, g in network_generators(net).items()}},
                           "random state"),
        "carried": packer.pack(_carried_states(net), "recurrent state"),
        "history": packer.pack(history.get_state(), "History"),
        "callbacks": states,
    }
    if rule is not None:  # a credit-assignment rule's step count, angle sums and fixed matrices
        training["rule"] = packer.pack(rule.get_state(), "rule state")
    header["training"] = training
    arrays.update(packer.arrays)
    io.write(path, header, arrays)


class Saver:
    """Writes the checkpoints of one fit; remembers where the last one stands."""

    def __init__(self, path, net, optimizer, rng, history, callbacks, settings: dict, data: dict,
                 written: Position | None = None, rule=None) -> None:
        self.path, self.net, self.optimizer, self.rng, self.rule = str(path), net, optimizer, rng, rule
        self.history, self.callbacks = history, callbacks
        self.settings, self.data = settings, data
        self.written = written

    def save(self, position: Position) -> None:
        try:
            write(self.path, self.net, self.optimizer, self.rng, position, self.history, self.callbacks,
                  self.settings, self.data, self.rule)
        except DataError as exc:  # a parameter overflowed in the last update
            raise TrainingError(f"{exc} (epoch {position.epoch + 1}, batch {position.batch}); the last"
                                f" checkpoint, {self.describe()}, was kept untouched") from None
        self.written = position

    def describe(self) -> str:
        return describe(self.path, self.written)


def read(path) -> Checkpoint:
    """Read and verify a checkpoint file; FileFormatError for anything that is not one."""
    header, arrays = io.read(path)
    io.verify(path, header, arrays)
    training = header.get("training")
    if not isinstance(training, dict) or training.get("kind") != _KIND:
        raise FileFormatError(f"{path} is a model file, not a training checkpoint; resume needs a file"
                              " that fit(checkpoint=...) wrote")
    if training.get("version") != _TRAINING_VERSION:
        raise FileFormatError(f"{path} has training-state version {repr(training.get('version'))[:40]};"
                              f" this chainrule reads version {_TRAINING_VERSION}")
    return Checkpoint(str(path), header, arrays, training)


# --- resuming -------------------------------------------------------------------------------------
def restore_network(ckpt: Checkpoint, net) -> None:
    """Copy the checkpoint's weights (and scaler) into ``net``, which must have the same architecture."""
    try:
        saved = io._rebuild(ckpt.header, ckpt.arrays, type(net))  # (the network's own class builds it)
    except FileFormatError as exc:
        raise FileFormatError(f"{ckpt.path}: {exc}") from None
    except Exception as exc:
        raise FileFormatError(f"{ckpt.path}: the model description is inconsistent ({exc})") from None
    if saved.dtype != net.dtype or repr(saved) != repr(net):
        raise ConfigError(f"resume: {ckpt.path} holds {saved!r}, but the network being trained is {net!r};"
                          " build the same network to resume")
    for key, p in net.params.items():
        p[...] = saved.params[key]
    for layer, other in zip(net.layers, saved.layers, strict=True):
        layer.frozen = set(other.frozen)
        for k, b in io._buffers(layer).items():  # BatchNorm's running statistics, in place
            b[...] = other.buffers[k]
    net.scaler = saved.scaler
    net.metadata = saved.metadata


def check_compatible(ckpt: Checkpoint, settings: dict, data: dict) -> None:
    """Refuse to resume with other data or other settings than the checkpoint's."""
    f = checks.Fields(ckpt.path)
    problems = []
    stored = checks.settings(f, ckpt.training.get("settings", {}))
    for key, value in settings.items():
        if stored.get(key) != value:
            problems.append(f"training.settings.{key} was {checks.show(stored.get(key))}, now {value!r}")
    stored_data = checks.data(f, ckpt.training.get("data", {}))
    for name, digest in data.items():
        before = stored_data.get(name, {})
        if before != digest:
            what = (f"shape {tuple(before.get('shape', ()))} then, {tuple(digest['shape'])} now"
                    if before and before.get("shape") != digest["shape"] else "other values")
            problems.append(f"the training {name} differs ({what}; training.data.{name})")
    if problems:
        raise ConfigError(f"resume: {ckpt.path} was written by a different run: " + "; ".join(problems)
                          + ". Resume with the same data and settings (epochs may grow).")


def restore_training(ckpt: Checkpoint, net, optimizer, rng, history, callbacks, *, epochs: int,
                     n_batches: int, batch_size: int, metrics=(), rule=None) -> Position:
    """Put back the optimizer, random streams, History and callbacks' state; return the position.

    Every field is checked first (chainrule._checkpoint_checks: types, ranges, and agreement with
    this run's epochs, batches, network, optimizer, metrics and callbacks), so a checkpoint that
    does not fit is refused before anything changes.
    """
    f = checks.Fields(ckpt.path)
    try:
        unpacked = {key: ckpt.value(key) for key in ("position", "optimizer", "rng", "carried", "history", "rule")}
    except RecursionError:
        raise FileFormatError(f"{ckpt.path}: the training state is nested too deeply") from None
    pos = Position(**checks.position(f, unpacked["position"], epochs=epochs, n_batches=n_batches,
                                     metrics=metrics, rng=rng))
    opt = checks.optimizer_state(f, unpacked["optimizer"], optimizer, net.params)
    layer_streams = network_generators(net)
    checks.streams(f, unpacked["rng"], rng, layer_streams)
    carried = checks.carried(f, unpacked["carried"], net, batch_size)
    checks.history(f, unpacked["history"], "history", pos.epoch)
    stored = checks.sequence_of_dicts(f, ckpt.training.get("callbacks", []), "callbacks")
    live = [(i, cb) for i, cb in enumerate(callbacks) if cb.get_state() is not None]
    if [c.get("class") for c in stored] != [type(cb).__name__ for _, cb in live]:
        raise ConfigError(f"resume: {ckpt.path}: training.callbacks holds the state of"
                          f" {checks.show([c.get('class') for c in stored])} (by class), this fit's callbacks"
                          f" with state are {[type(cb).__name__ for _, cb in live]}; pass the same callbacks")
    states = []
    for k, (entry, (i, cb)) in enumerate(zip(stored, live, strict=True)):
        where = f"callbacks[{k}]"
        if entry.get("index") != i:
            raise f.mismatch(f"{where}.index", f"is {checks.show(entry.get('index'))}, but"
                             f" {type(cb).__name__} is callback {i} of this fit; pass the callbacks in the"
                             " same order")
        try:
            state = _unpack(entry.get("state"), ckpt.arrays, f"{ckpt.path}: training.{where}.state")
        except RecursionError:
            raise FileFormatError(f"{ckpt.path}: training.{where}.state is nested too deeply") from None
        checks.callback_state(f, cb, state, f"{where}.state", net, pos.epoch, n_batches)
        states.append(state)

    if rule is not None:
        checks.rule_state(f, unpacked["rule"], rule)

    # everything checked: put it back
    optimizer.state = opt["state"]
    optimizer.iterations = opt["iterations"]
    optimizer.lr, optimizer.base_lr = opt["lr"], opt["base_lr"]
    optimizer.last_grad_norm = opt["last_grad_norm"]
    rng.bit_generator.state = unpacked["rng"]["shuffle"]
    for key, gen in layer_streams.items():
        gen.bit_generator.state = unpacked["rng"]["layers"][key]
    for i, per_mode in carried.items():
        net.layers[i]._carried = per_mode
    history.set_state(unpacked["history"])
    if rule is not None:
        rule.set_state(unpacked["rule"])
    for state, (_, cb) in zip(states, live, strict=True):
        try:
            cb.set_state(state)
        except Exception as exc:  # a callback of your own refusing what its checked state holds
            raise FileFormatError(f"{ckpt.path}: {type(cb).__name__} could not take its saved state"
                                  f" ({type(exc).__name__}: {str(exc)[:200]})") from None
    return pos


def settings_of(n: int, batch_size, shuffle: bool, loss, optimizer, metrics, bptt_steps, rule=None) -> dict:
    """What a resumed fit must repeat (JSON-able; a credit-assignment rule by its repr)."""
    config = {k: v for k, v in optimizer.get_config().items() if k != "lr"}
    return json.loads(json.dumps({
        "samples": n, "batch_size": batch_size, "shuffle": bool(shuffle),
        "loss": [type(loss).__name__, loss.get_config()],
        "optimizer": [type(optimizer).__name__, config],
        "metrics": [m.name for m in metrics], "bptt_steps": bptt_steps,
        "rule": repr(rule) if rule is not None else None,
    }, default=repr))


def describe(path, position: Position | None) -> str:
    if position is None:
        return f"{path} (not written yet)"
    return f"{path} (epoch {position.epoch + 1}, after batch {position.batch})"


def remove_stale_temporaries(path) -> None:
    """Remove temporary files a killed write left beside ``path`` (``.NAME.*.tmp``); beside the
    file it points to when ``path`` is a symbolic link, since writes go there."""
    path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    for stale in folder.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            os.unlink(stale)
        except OSError:
            pass
