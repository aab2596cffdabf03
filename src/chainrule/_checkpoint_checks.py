"""Every field of a checkpoint's training state, checked before ``fit(resume=...)`` uses it.

A checkpoint is a file, and a file can be edited: a saved epoch of -1,000,000 would make the
loop run for an hour, a batch position past the epoch's end would skip it, a momentum of the
wrong shape would fail deep inside an update. So each field is checked for its type and range,
and against the run that resumes it (the epochs asked, the batches per epoch, the network, the
optimizer, the metrics and callbacks), before anything is changed. A malformed field is a
FileFormatError, a well-formed one that does not fit this run a ConfigError; each names the
field as ``training.<path>``. Nothing here allocates more than the file already holds.
"""

from __future__ import annotations

import json
import math

import numpy as np

from .errors import ConfigError, FileFormatError

#: Counts (steps, iterations, accumulator counts) above this cannot come from a real run.
MAX_COUNT = 2**53


class Fields:
    """Checks on the fields of one checkpoint, each error prefixed by the file's path."""

    def __init__(self, path) -> None:
        self.path = path

    # --- errors ---------------------------------------------------------------------------------
    def bad(self, field: str, expected: str, value) -> FileFormatError:
        return FileFormatError(f"{self.path}: training.{field} must be {expected}, got {show(value)}")

    def mismatch(self, field: str, message: str) -> ConfigError:
        return ConfigError(f"resume: {self.path}: training.{field} {message}")

    # --- scalars --------------------------------------------------------------------------------
    def integer(self, value, field: str, low: int = 0, high: int = MAX_COUNT) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
            raise self.bad(field, f"a whole number in [{low:,}, {high:,}]", value)
        return int(value)

    def number(self, value, field: str, low: float | None = None, allow_none: bool = False,
               finite: bool = True) -> float | None:
        if value is None and allow_none:
            return None
        ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
        if ok and isinstance(value, (int, np.integer)) and abs(int(value)) > 2**1023:
            ok = False
        if ok and finite and not math.isfinite(value):
            ok = False
        if ok and low is not None and not value >= low:
            ok = False
        if not ok:
            want = "a finite number" if finite else "a number"
            want += f" >= {low}" if low is not None else ""
            raise self.bad(field, want + (" or null" if allow_none else ""), value)
        return float(value)

    def flag(self, value, field: str) -> bool:
        if not isinstance(value, bool):
            raise self.bad(field, "true or false", value)
        return value

    def mapping(self, value, field: str, keys=None, required=()) -> dict:
        if not isinstance(value, dict):
            raise self.bad(field, "a dict" + (f" with keys {sorted(keys)}" if keys else ""), value)
        if keys is not None:
            extra = [k for k in value if k not in keys]
            if extra:
                raise self.bad(field, f"a dict with keys among {sorted(keys)}", f"key {show(extra[0])}")
        missing = [k for k in required if k not in value]
        if missing:
            raise self.bad(field, f"a dict with the key {missing[0]!r}", value)
        return value

    def sequence(self, value, field: str, max_len: int | None = None) -> list:
        if not isinstance(value, (list, tuple)):
            raise self.bad(field, "a list", value)
        if max_len is not None and len(value) > max_len:
            raise self.bad(field, f"a list of at most {max_len:,} entries", f"{len(value):,} entries")
        return list(value)

    def array(self, value, field: str, shape: tuple | None = None, dtype=None,
              nonnegative: bool = False) -> np.ndarray:
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
            raise self.bad(field, "an array of numbers", value)
        if shape is not None and value.shape != tuple(shape):
            raise self.bad(field, f"an array of shape {tuple(shape)}", value)
        if dtype is not None and value.dtype != dtype:
            raise self.bad(field, f"an array of {np.dtype(dtype).name}", value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise self.bad(field, "an array of finite numbers", "an array holding NaN or inf")
        if nonnegative and value.size and value.min() < 0:
            raise self.bad(field, "an array of numbers >= 0", "an array holding negative numbers")
        return value

    def random_state(self, state, gen: np.random.Generator, field: str) -> dict:
        """A bit generator's state that ``gen`` can take (checked on a scratch generator)."""
        kind = type(gen.bit_generator).__name__
        if not isinstance(state, dict) or not isinstance(state.get("bit_generator"), str):
            raise self.bad(field, f"the state of a {kind} bit generator", state)
        if state["bit_generator"] != kind:
            raise self.mismatch(field, f"is the state of a {show(state['bit_generator'])}, but this run's"
                                f" generator is a {kind}")
        if kind == "PCG64":
            inner = self.mapping(state.get("state"), f"{field}.state", required=("state", "inc"))
            self.integer(inner["state"], f"{field}.state.state", 0, 2**128 - 1)
            self.integer(inner["inc"], f"{field}.state.inc", 0, 2**128 - 1)
            self.integer(state.get("has_uint32"), f"{field}.has_uint32", 0, 1)
            self.integer(state.get("uinteger"), f"{field}.uinteger", 0, 2**32 - 1)
        scratch = type(gen.bit_generator)()
        try:
            scratch.state = state
            same = _same(scratch.state, state)
        except (TypeError, ValueError, KeyError, OverflowError, AttributeError):
            same = False
        if not same:
            raise self.bad(field, f"the state of a {kind} bit generator", state)
        return state


def show(value) -> str:
    """A short description of a value read from a file (never its whole, possibly huge, text)."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _same(a, b) -> bool:
    try:
        return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return False


# --- the position ------------------------------------------------------------------------------
def position(f: Fields, pos, *, epochs: int, n_batches: int, metrics, rng) -> dict:
    """The position of the fit: epoch, batch, steps, the epoch's running sums; checked."""
    names = ("epoch", "batch", "step", "epoch_rng", "total", "metrics", "finished", "last_loss")
    f.mapping(pos, "position", keys=names, required=("epoch", "batch", "step"))
    epoch = f.integer(pos["epoch"], "position.epoch", 0, MAX_COUNT)
    if epoch > epochs:
        raise f.mismatch("position.epoch", f"is {epoch:,}: the checkpoint has trained {epoch:,} epochs,"
                         f" this fit asks for {epochs:,}; ask for at least {epoch:,} epochs")
    batch = f.integer(pos["batch"], "position.batch", 0, max(n_batches - 1, 0))
    if batch > 0 and epoch == epochs:
        raise f.bad("position.batch", f"0 once all {epochs} epochs are done", batch)
    step = f.integer(pos["step"], "position.step", 0, epoch * n_batches + batch)
    finished = f.flag(pos.get("finished", False), "position.finished")
    if finished and batch:
        raise f.bad("position.finished", "false in the middle of an epoch", finished)
    last_loss = f.number(pos.get("last_loss"), "position.last_loss", allow_none=True)
    total = f.number(pos.get("total", 0.0), "position.total")
    saved = f.sequence(pos.get("metrics", []), "position.metrics", max_len=len(metrics))
    epoch_rng = pos.get("epoch_rng")
    if batch == 0:
        if total != 0 or saved or epoch_rng is not None:
            what = "position.total" if total != 0 else "position.metrics" if saved else "position.epoch_rng"
            raise f.bad(what, "empty at the start of an epoch (position.batch 0)",
                        {"position.total": total, "position.metrics": saved,
                         "position.epoch_rng": epoch_rng}[what])
    else:
        f.random_state(epoch_rng, rng, "position.epoch_rng")
        if len(saved) != len(metrics):
            raise f.mismatch("position.metrics", f"holds {len(saved)} metric accumulators, this fit has"
                             f" {len(metrics)} metrics ({[m.name for m in metrics]})")
        for i, (m, state) in enumerate(zip(metrics, saved, strict=True)):
            accumulator(f, state, m, f"position.metrics[{i}]")
    return {"epoch": epoch, "batch": batch, "step": step, "epoch_rng": epoch_rng, "total": total,
            "metrics": saved, "finished": finished, "last_loss": last_loss}


def accumulator(f: Fields, state, metric, field: str) -> None:
    """A metric's running sums: the same attributes as the live metric, of the same kinds."""
    live = vars(metric)
    f.mapping(state, field, keys=set(live), required=tuple(live))
    for key, now in live.items():
        like(f, state[key], now, f"{field}.{key}", counts=True)


def like(f: Fields, value, now, field: str, counts: bool = False) -> None:
    """``value`` is of the kind ``now`` is: a count, a finite number, a string, a flag, an array."""
    if isinstance(now, bool):
        f.flag(value, field)
    elif isinstance(now, (int, np.integer)):
        f.integer(value, field, 0 if counts else -MAX_COUNT, MAX_COUNT)
    elif isinstance(now, (float, np.floating)) or isinstance(now, np.ndarray) and now.ndim <= 1:
        if isinstance(value, np.ndarray):  # (R2's sums become one entry per output column)
            if value.ndim > 1 or isinstance(now, np.ndarray) and value.shape != now.shape:
                raise f.bad(field, "a number or a 1-d array of numbers", value)
            f.array(value, field)
        else:
            f.number(value, field)
    elif isinstance(now, str):
        if not isinstance(value, str):
            raise f.bad(field, "a string", value)
    elif now is not None and type(value) is not type(now):
        raise f.bad(field, f"a {type(now).__name__}", value)


# --- the optimizer -------------------------------------------------------------------------------
def _state_schema(optimizer) -> tuple[dict, tuple]:
    """{name: "array" | "nonneg" | "count"} each optimizer keeps per parameter, and the names
    that come together (all or none); an optimizer of your own gets ({}, ()): any names."""
    from .optim import SGD, Adagrad, Adam, RMSProp

    if isinstance(optimizer, Adam):
        return {"m": "array", "v": "nonneg", "t": "count"}, ("m", "v", "t")
    if isinstance(optimizer, SGD):
        return {"momentum": "array", "step": "array"}, ()
    if isinstance(optimizer, RMSProp):
        return {"square_avg": "nonneg", "grad_avg": "array", "momentum": "array"}, ()
    if isinstance(optimizer, Adagrad):
        return {"sum": "array", "t": "count"}, ("sum", "t")
    return {}, ()


def optimizer_state(f: Fields, opt, optimizer, params: dict) -> dict:
    """The optimizer's class, settings, step count, learning rates and per-parameter state."""
    names = ("class", "config", "state", "iterations", "lr", "base_lr", "last_grad_norm")
    f.mapping(opt, "optimizer", keys=names, required=("class", "state", "lr", "base_lr"))
    if opt["class"] != type(optimizer).__name__:
        raise f.mismatch("optimizer.class", f"is {show(opt['class'])}, but this fit trains with"
                         f" {type(optimizer).__name__}; resume with the same optimizer")
    live = optimizer.get_config()
    config = f.mapping(opt.get("config", live), "optimizer.config", keys=set(live), required=tuple(live))
    f.number(config["lr"], "optimizer.config.lr", low=0)
    for key, value in config.items():
        if key != "lr" and not _same(value, live[key]):
            raise f.mismatch(f"optimizer.config.{key}", f"is {show(value)}, this fit's optimizer has"
                             f" {show(live[key])}")
    iterations = f.integer(opt.get("iterations", 0), "optimizer.iterations")
    out = {"iterations": iterations, "lr": f.number(opt["lr"], "optimizer.lr", low=0),
           "base_lr": f.number(opt["base_lr"], "optimizer.base_lr", low=0),
           "last_grad_norm": f.number(opt.get("last_grad_norm"), "optimizer.last_grad_norm", low=0,
                                      allow_none=True)}
    schema, together = _state_schema(optimizer)
    state = f.mapping(opt["state"], "optimizer.state", keys=set(params))
    for key, entry in state.items():
        where = f"optimizer.state.{key}"
        f.mapping(entry, where, keys=set(schema) if schema else None)
        if together and entry and set(entry) != set(together):
            raise f.bad(where, f"a dict with all of {list(together)} or none", sorted(entry))
        for name, value in entry.items():
            kind = schema.get(name) or ("count" if isinstance(value, (int, np.integer)) else "array")
            if kind == "count":
                f.integer(value, f"{where}.{name}", 1, max(iterations, 1))
            else:
                f.array(value, f"{where}.{name}", params[key].shape, params[key].dtype,
                        nonnegative=kind == "nonneg")
    out["state"] = state
    return out


# --- random streams, recurrent state --------------------------------------------------------------
def streams(f: Fields, value, rng, layer_generators: dict) -> None:
    f.mapping(value, "rng", keys=("shuffle", "layers"), required=("shuffle", "layers"))
    f.random_state(value["shuffle"], rng, "rng.shuffle")
    stored = f.mapping(value["layers"], "rng.layers")
    if set(stored) != set(layer_generators):
        raise f.mismatch("rng.layers", f"names the random streams {sorted(map(str, stored))[:10]}, this"
                         f" network has {sorted(layer_generators)}; build the same network to resume")
    for key, gen in layer_generators.items():
        f.random_state(stored[key], gen, f"rng.layers.{key}")


def carried(f: Fields, value, net, batch_size: int) -> dict:
    """The carried state of stateful recurrent layers: {layer index: {training: (h, ...)}}."""
    if value is None:
        return {}
    f.mapping(value, "carried")
    out = {}
    for index, per_mode in value.items():
        where = f"carried.{index}"
        if not isinstance(index, str) or not index.isdigit() or int(index) >= len(net.layers):
            raise f.bad("carried", f"keyed by layer indices 0 to {len(net.layers) - 1}", f"key {show(index)}")
        layer = net.layers[int(index)]
        if not getattr(layer, "stateful", False) or not isinstance(getattr(layer, "_carried", None), dict):
            raise f.mismatch(where, f"is a carried state, but layer {index} ({layer!r}) is not a stateful"
                             " recurrent layer")
        f.mapping(per_mode, where, keys=(True, False))
        names = layer._state_names
        for mode, parts in per_mode.items():
            parts = f.sequence(parts, f"{where}.{mode}", max_len=len(names))
            if len(parts) != len(names):
                raise f.bad(f"{where}.{mode}", f"{len(names)} arrays ({', '.join(names)})", parts)
            rows = parts[0].shape[0] if isinstance(parts[0], np.ndarray) and parts[0].ndim == 2 else -1
            if not 1 <= rows <= batch_size:
                raise f.bad(f"{where}.{mode}", f"arrays of 1 to {batch_size} rows (the batch size)", parts[0])
            for name, part in zip(names, parts, strict=True):
                f.array(part, f"{where}.{mode}.{name}", (rows, layer.n_hidden), layer.dtype)
        out[int(index)] = {mode: tuple(parts) for mode, parts in per_mode.items()}
    return out


# --- History and callbacks --------------------------------------------------------------------------
def history(f: Fields, state, field: str, epochs_done: int) -> None:
    names = ("history", "epoch", "params", "stopped_early", "interrupted")
    f.mapping(state, field, keys=names)
    epochs = f.sequence(state.get("epoch", []), f"{field}.epoch", max_len=epochs_done)
    previous = -1
    for i, e in enumerate(epochs):
        previous = f.integer(e, f"{field}.epoch[{i}]", previous + 1, max(epochs_done - 1, 0))
    logs = f.mapping(state.get("history", {}), f"{field}.history")
    for key, values in logs.items():
        if not isinstance(key, str):
            raise f.bad(f"{field}.history", "keyed by log names", f"key {show(key)}")
        values = f.sequence(values, f"{field}.history.{key}", max_len=len(epochs))
        for i, v in enumerate(values):  # (a metric of your own may log NaN)
            f.number(v, f"{field}.history.{key}[{i}]", finite=False)
    f.mapping(state.get("params", {}), f"{field}.params")
    for name in ("stopped_early", "interrupted"):
        f.flag(state.get(name, False), f"{field}.{name}")


def _weights(f: Fields, value, net, field: str) -> None:
    params = list(net.params.values())
    value = f.sequence(value, field, max_len=len(params))
    if len(value) != len(params):
        raise f.bad(field, f"{len(params)} arrays (the network's parameters)", f"{len(value)} entries")
    for i, (w, p) in enumerate(zip(value, params, strict=True)):
        f.array(w, f"{field}[{i}]", p.shape, p.dtype)


def _buffers(f: Fields, value, net, field: str) -> None:
    from .callbacks import _model_buffers

    buffers = _model_buffers(net)
    value = f.sequence(value, field, max_len=len(buffers))
    if len(value) != len(buffers):
        raise f.bad(field, f"{len(buffers)} arrays (the layers' buffers)", f"{len(value)} entries")
    for i, (v, b) in enumerate(zip(value, buffers, strict=True)):
        f.array(v, f"{field}[{i}]", b.shape, b.dtype)


def callback_state(f: Fields, cb, state, field: str, net, epochs_done: int, n_batches: int) -> None:
    """The state of one callback: the built-in ones field by field, others like their live state."""
    from .callbacks import CSVLogger, EarlyStopping, GradientNormLogger, ModelCheckpoint, ReduceLROnPlateau

    live = cb.get_state()
    f.mapping(state, field, keys=set(live) if isinstance(live, dict) else None)
    last = max(epochs_done - 1, 0)

    def epoch_or_none(key):
        if state.get(key) is not None:
            f.integer(state[key], f"{field}.{key}", 0, last)

    if isinstance(cb, EarlyStopping):
        f.number(state.get("best"), f"{field}.best", allow_none=True)
        epoch_or_none("best_epoch")
        epoch_or_none("stopped_epoch")
        f.integer(state.get("wait", 0), f"{field}.wait", 0, epochs_done)
        if state.get("best_weights") is not None:
            _weights(f, state["best_weights"], net, f"{field}.best_weights")
        if state.get("best_buffers") is not None:
            _buffers(f, state["best_buffers"], net, f"{field}.best_buffers")
    elif isinstance(cb, ReduceLROnPlateau):
        f.number(state.get("best"), f"{field}.best", allow_none=True)
        f.integer(state.get("wait", 0), f"{field}.wait", 0, epochs_done)
        f.integer(state.get("cooldown_counter", 0), f"{field}.cooldown_counter", 0, cb.cooldown)
        reductions = f.sequence(state.get("reductions", []), f"{field}.reductions", max_len=epochs_done)
        for i, pair in enumerate(reductions):
            pair = f.sequence(pair, f"{field}.reductions[{i}]", max_len=2)
            if len(pair) != 2:
                raise f.bad(f"{field}.reductions[{i}]", "a pair (epoch, learning rate)", pair)
            f.integer(pair[0], f"{field}.reductions[{i}][0]", 0, last)
            f.number(pair[1], f"{field}.reductions[{i}][1]", low=0)
    elif isinstance(cb, ModelCheckpoint):
        f.number(state.get("best"), f"{field}.best", allow_none=True)
        saved = f.sequence(state.get("saved", []), f"{field}.saved", max_len=epochs_done)
        if not all(isinstance(p, str) for p in saved):
            raise f.bad(f"{field}.saved", "a list of file paths", saved)
        history(f, state.get("history", {}), f"{field}.history", epochs_done)
    elif isinstance(cb, CSVLogger):
        for i, row in enumerate(f.sequence(state.get("rows", []), f"{field}.rows")):
            f.mapping(row, f"{field}.rows[{i}]")
            for key, v in row.items():
                if not isinstance(key, str) or not isinstance(v, (str, int, float)) or isinstance(v, bool):
                    raise f.bad(f"{field}.rows[{i}]", "a row of numbers and strings keyed by column names",
                                {key: v})
    elif isinstance(cb, GradientNormLogger):
        norms = f.mapping(state.get("norms", {}), f"{field}.norms")
        for key, values in norms.items():
            values = f.sequence(values, f"{field}.norms.{show(key)}")
            for i, v in enumerate(values):
                f.number(v, f"{field}.norms.{show(key)}[{i}]", low=0)
        for key, v in f.mapping(state.get("_sums", {}), f"{field}._sums").items():
            f.number(v, f"{field}._sums.{show(key)}", low=0)
        f.integer(state.get("_count", 0), f"{field}._count", 0, n_batches)
    elif isinstance(live, dict):  # a callback of your own: the kinds of its live state
        for key, value in state.items():
            like(f, value, live[key], f"{field}.{key}")


def sequence_of_dicts(f: Fields, value, field: str) -> list:
    entries = f.sequence(value, field)
    for i, entry in enumerate(entries):
        f.mapping(entry, f"{field}[{i}]", keys=("index", "class", "state"), required=("index", "class"))
    return entries


# --- what must not change ---------------------------------------------------------------------------
def settings(f: Fields, stored) -> dict:
    return f.mapping(stored, "settings")


def data(f: Fields, stored) -> dict:
    f.mapping(stored, "data")
    for name, entry in stored.items():
        f.mapping(entry, f"data.{name}", keys=("shape", "sha256"), required=("shape", "sha256"))
        shape = f.sequence(entry["shape"], f"data.{name}.shape", max_len=32)
        for i, n in enumerate(shape):
            f.integer(n, f"data.{name}.shape[{i}]")
        if not isinstance(entry["sha256"], str) or len(entry["sha256"]) != 64:
            raise f.bad(f"data.{name}.sha256", "a SHA-256 digest (64 hex digits)", entry["sha256"])
    return stored


# --- a credit-assignment rule ----------------------------------------------------------------------
def rule_state(f: Fields, stored, rule) -> None:
    """The rule's step count, this epoch's angle sums and its arrays, against the live rule's."""
    if stored is None:
        raise f.mismatch("rule", f"is missing: the checkpoint was written without a rule; this fit trains"
                         f" with {rule!r}")
    live = rule.get_state()
    f.mapping(stored, "rule", keys=set(live), required=tuple(live))
    f.integer(stored["steps"], "rule.steps")
    f.flag(stored["first_of_epoch"], "rule.first_of_epoch")
    for name in ("angle_sums", "angle_counts"):
        f.mapping(stored[name], f"rule.{name}", keys={str(i) for i in rule._param_layers})
    for key, value in stored["angle_sums"].items():
        f.number(value, f"rule.angle_sums.{key}", low=0)
    for key, value in stored["angle_counts"].items():
        f.integer(value, f"rule.angle_counts.{key}", 0, MAX_COUNT)
    arrays = f.mapping(stored["arrays"], "rule.arrays", keys=set(live["arrays"]), required=tuple(live["arrays"]))
    for key, value in arrays.items():
        f.array(value, f"rule.arrays.{key}", live["arrays"][key].shape, live["arrays"][key].dtype)
