"""Callbacks: code the training loop calls at the start and end of training, epochs and batches.

A callback subclasses :class:`Callback` and overrides the hooks it needs. ``self.model`` is
the network being trained; setting ``self.model.stop_training = True`` ends training after
the current epoch. ``logs`` is a dict of floats: "loss", metric names, and "val_" names when
there is validation data.

A callback whose behaviour depends on what it saw in earlier epochs lists those attributes in
``_state_attrs`` (or overrides ``get_state``/``set_state``), so that a checkpoint keeps them and
``fit(..., resume=...)`` gives them back (numbers, strings, lists, dicts and arrays).
"""

from __future__ import annotations

import inspect

import numpy as np

from ._checks import check_number
from .errors import ConfigError


def _model_buffers(model) -> list[np.ndarray]:
    """Every layer's buffers (``Layer.buffers``: BatchNorm's running statistics), in layer order:
    the state beside ``get_weights()`` that a snapshot of the model must keep too."""
    return [b for layer in model.layers for b in (getattr(layer, "buffers", None) or {}).values()]


class Callback:
    """Base class: every hook does nothing."""

    model = None
    #: True for callbacks that print or write files: in distributed training only rank 0 runs them.
    root_only = False
    #: Attributes that carry over from epoch to epoch (kept in checkpoints); empty: stateless.
    _state_attrs: tuple[str, ...] = ()

    def set_model(self, model) -> None:
        self.model = model

    def get_state(self) -> dict | None:
        """What a checkpoint keeps of this callback (None: nothing, the callback is stateless)."""
        if not self._state_attrs:
            return None
        return {name: getattr(self, name, None) for name in self._state_attrs}

    def set_state(self, state: dict) -> None:
        """Put back what ``get_state`` gave (called on resume, after ``on_train_begin``)."""
        for name in self._state_attrs:
            if name in state:
                setattr(self, name, state[name])

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...


class History(Callback):
    """What ``fit`` returns: ``history`` maps each log name to one float per epoch.

    Attributes
    ----------
    history : dict[str, list[float]]
        "loss", "val_loss" and metric names, one entry per epoch.
    epoch : list[int]
        The (0-based) epochs recorded.
    params : dict
        The fit settings (epochs, batch_size, samples, ...).
    stopped_early : bool
        True when a callback ended training before ``epochs``.
    interrupted : bool
        True when SIGINT or SIGTERM stopped ``fit`` after a batch (the checkpoint, when one
        was configured, holds the state to resume from).
    checkpoint : str or None
        The checkpoint file of the fit, when one was configured.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict = {}
        self.stopped_early = False
        self.interrupted = False
        self.checkpoint: str | None = None

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))

    def __repr__(self) -> str:
        last = {k: round(v[-1], 6) for k, v in self.history.items() if v}
        stopped = ", interrupted" if self.interrupted else ""
        return f"History(epochs={len(self.epoch)}, last={last}{stopped})"

    def _final_rows(self) -> list[tuple[str, str, str, str]]:
        """(name, final value, best value, epoch of the best, from 1) per log; the best is the
        lowest, or the highest for accuracy and r2 (as EarlyStopping's mode "auto")."""
        rows = []
        for name, vals in self.history.items():
            finite = [(v, i) for i, v in enumerate(vals) if np.isfinite(v)]
            if not vals:
                continue
            if not finite:
                rows.append((name, f"{vals[-1]:.9g}", "", ""))
                continue
            pick = max if any(s in name for s in ("acc", "r2")) else min
            value, i = pick(finite, key=lambda t: t[0])
            epoch = self.epoch[i] + 1 if i < len(self.epoch) else i + 1
            rows.append((name, f"{vals[-1]:.9g}", f"{value:.9g}", str(epoch)))
        return rows

    def _status(self) -> str:
        n = len(self.epoch)
        return (f"{n} epoch{'' if n == 1 else 's'}" + (", stopped early" if self.stopped_early else "")
                + (", interrupted" if self.interrupted else ""))

    def _repr_html_(self) -> str:
        """In a notebook: one small chart per quantity (its val_ curve beside it), then the final values."""
        from ._display import html_table, svg_curves

        charts = []
        for name, vals in self.history.items():
            if name.startswith("val_") and name[4:] in self.history:
                continue
            series = {name: vals}
            if f"val_{name}" in self.history:
                series[f"val_{name}"] = self.history[f"val_{name}"]
            charts.append(svg_curves(name, series))
        table = html_table(("log", "final", "best", "best epoch"), self._final_rows(),
                           caption=f"History: {self._status()}", right=(1, 2, 3))
        return f'<div><div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(charts)}</div>{table}</div>'

    def _repr_markdown_(self) -> str:
        from ._display import markdown_table

        return (f"**History**: {self._status()}\n\n"
                + markdown_table(("log", "final", "best", "best epoch"), self._final_rows()))

    def to_dict(self) -> dict:
        """JSON-able copy (``save(net, path, history=h)`` stores it in the model file)."""
        return {"history": {k: list(v) for k, v in self.history.items()}, "epoch": list(self.epoch),
                "params": dict(self.params), "stopped_early": bool(self.stopped_early),
                "interrupted": bool(self.interrupted)}

    @classmethod
    def from_dict(cls, data: dict) -> History:
        """The History that ``to_dict`` described."""
        h = cls()
        h.set_state(data)
        return h

    def get_state(self) -> dict:
        return self.to_dict()

    def set_state(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise ConfigError(f"History state must be a dict, got {type(state).__name__}")
        self.history = {str(k): [float(x) for x in v] for k, v in dict(state.get("history", {})).items()}
        self.epoch = [int(e) for e in state.get("epoch", [])]
        self.params = dict(state.get("params", {}))
        self.stopped_early = bool(state.get("stopped_early", False))
        self.interrupted = bool(state.get("interrupted", False))


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        A log name ("val_loss" by default; needs validation data).
    patience : int or inf
        Epochs without improvement to wait before stopping; ``math.inf`` never stops.
    min_delta : float
        Smallest change that counts as an improvement.
    mode : {"auto", "min", "max"}
        Whether smaller or larger is better; "auto" takes "max" for accuracy and r2.
    restore_best_weights : bool
        At the end of training, put back the parameters of the best epoch, and the layers'
        buffers (BatchNorm's running statistics) as they were at its end.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"EarlyStopping mode must be 'auto', 'min' or 'max', got {mode!r}")
        # patience=inf never stops; with restore_best_weights it still ends on the best epoch
        check_number(patience, "EarlyStopping patience", low=0, integer=True, no_limit=True)
        check_number(min_delta, "EarlyStopping min_delta")
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(min_delta)
        if mode == "auto":
            mode = "max" if any(s in monitor for s in ("acc", "r2")) else "min"
        self.mode = mode
        self.restore_best_weights = restore_best_weights

    _state_attrs = ("best", "best_epoch", "wait", "stopped_epoch", "best_weights", "best_buffers")

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self.wait, self.stopped_epoch = None, None, 0, None
        self.best_weights = self.best_buffers = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise ConfigError(
                f"EarlyStopping monitors {self.monitor!r}, but the logs hold {sorted(logs)};"
                " pass validation_data or choose another monitor"
            )
        value = float(logs[self.monitor])
        if self._better(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
                self.best_buffers = [b.copy() for b in _model_buffers(self.model)]
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            if self.best_buffers is not None:  # (None: resumed from a checkpoint that did not keep them)
                for b, best in zip(_model_buffers(self.model), self.best_buffers, strict=True):
                    b[...] = best


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch.

    ``schedule`` is a :class:`chainrule.optim.Schedule` or a callable ``epoch -> lr`` or
    ``(epoch, lr) -> lr`` (epochs count from 0).
    """

    def __init__(self, schedule, verbose: int = 0) -> None:
        if not callable(schedule):
            raise ConfigError(f"LearningRateScheduler needs a callable schedule, got {schedule!r}")
        self.schedule, self.verbose = schedule, verbose
        try:
            self._n_args = len(inspect.signature(schedule).parameters)
        except (TypeError, ValueError):
            self._n_args = 1

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        from .optim import Schedule

        if isinstance(self.schedule, Schedule):
            lr = self.schedule(epoch, opt.base_lr)
        elif self._n_args >= 2:
            lr = self.schedule(epoch, opt.lr)
        else:
            lr = self.schedule(epoch)
        if not np.isfinite(lr) or lr < 0:
            raise ConfigError(f"LearningRateScheduler gave lr={lr!r} at epoch {epoch}")
        opt.lr = float(lr)
        if self.verbose:
            print(f"epoch {epoch + 1}: learning rate {opt.lr:.6g}")


class ProgressBar(Callback):
    """One tqdm bar over the epochs (instead of one per epoch), the latest logs beside it.

    Shown only when stderr is a terminal (``disable=None``), unless ``always=True``.
    """

    root_only = True

    def __init__(self, always: bool = False) -> None:
        self.always = always
        self._bar = None

    def on_train_begin(self, logs=None):
        from tqdm.auto import tqdm

        epochs = self.model._fit_params.get("epochs") if hasattr(self.model, "_fit_params") else None
        self._bar = tqdm(total=epochs, unit="epoch", disable=None if not self.always else False,
                         dynamic_ncols=True)

    def on_epoch_end(self, epoch, logs=None):
        self._bar.set_postfix_str(", ".join(f"{k}={v:.4g}" for k, v in (logs or {}).items()),
                                  refresh=False)
        self._bar.update(1)

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, **hooks) -> None:
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise ConfigError(f"LambdaCallback has no hook {name!r}")
            setattr(self, name, fn)


# --- checkpoints, logs, learning-rate reduction, gradient norms -----------------------------
def _auto_mode(monitor: str, mode: str, who: str) -> str:
    """"min" or "max": "auto" takes "max" for accuracies, R² and scores."""
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"{who} mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if any(s in monitor for s in ("acc", "r2", "score")) else "min"
    return mode


def _monitored(logs, monitor: str, who: str) -> float:
    if monitor not in (logs or {}):
        raise ConfigError(f"{who} monitors {monitor!r}, but the logs hold {sorted(logs or {})};"
                          " pass validation data or choose another monitor")
    return float(logs[monitor])


class ModelCheckpoint(Callback):
    """Save the model after each epoch, or only when ``monitor`` improves.

    Every write is atomic (temporary file beside the target, flush, fsync, rename; see
    :func:`chainrule.io.atomic_write`): a crash or a failure while writing leaves the previous
    checkpoint in place and loadable. The file holds the logs of every epoch so far as the
    model's History (``cr.load(path).history``) and ``metadata["checkpoint"]`` with the epoch
    and the monitored value.

    Parameters
    ----------
    path : str or Path
        File to write; it may contain fields of the epoch (1-based) and the logs, e.g.
        ``"ckpt-{epoch:03d}-{val_loss:.4f}.npz"``.
    monitor : str
        The log that decides what "best" means ("val_loss" by default).
    save_best_only : bool
        Write only when ``monitor`` is better than at every earlier epoch.
    mode : {"auto", "min", "max"}
    verbose : int
        1 prints a line for each write.

    Attributes
    ----------
    best : float or None
        Best value of ``monitor`` seen.
    saved : list of str
        The paths written, in order.
    """

    root_only = True

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", verbose: int = 0) -> None:
        self.path, self.monitor = str(path), monitor
        self.save_best_only, self.verbose = bool(save_best_only), verbose
        self.mode = _auto_mode(monitor, mode, "ModelCheckpoint")
        self.best: float | None = None
        self.saved: list[str] = []

    def on_train_begin(self, logs=None):
        self.best = None
        self._history = History()

    def get_state(self) -> dict:
        return {"best": self.best, "saved": list(self.saved), "history": self._history.to_dict()}

    def set_state(self, state: dict) -> None:
        self.best, self.saved = state.get("best"), list(state.get("saved", []))
        self._history = History.from_dict(state.get("history", {}))

    def _better(self, value: float) -> bool:
        if not np.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        self._history.on_epoch_end(epoch, logs)
        value = None
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if not self._better(value):
                return
            self.best = value
        elif self.monitor in logs:
            value = float(logs[self.monitor])
            if self._better(value):
                self.best = value
        try:
            path = self.path.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"ModelCheckpoint path {self.path!r} cannot be filled from the epoch"
                              f" and the logs {sorted(logs)}: {exc}") from None
        from .io import save

        metadata = dict(getattr(self.model, "metadata", None) or {})
        metadata["checkpoint"] = {"epoch": epoch + 1, "monitor": self.monitor, "value": value,
                                  "logs": logs}
        save(self.model, path, metadata=metadata, history=self._history)
        self.saved.append(path)
        if self.verbose:
            shown = f", {self.monitor}={value:.6g}" if value is not None else ""
            print(f"epoch {epoch + 1}: saved {path}{shown}")


class CSVLogger(Callback):
    """Write the logs of each epoch as a row of a CSV file: epoch, loss, metrics, val_ logs.

    The file is rewritten atomically after every epoch, so it is always complete and a new
    log name (appearing after the first epoch) gets its own column.

    Parameters
    ----------
    path : str or Path
    separator : str
        Field separator (",").
    append : bool
        Keep the rows already in the file (from an earlier run) and add to them.
    """

    root_only = True

    def __init__(self, path, separator: str = ",", append: bool = False) -> None:
        if len(separator) != 1:
            raise ConfigError(f"CSVLogger separator must be one character, got {separator!r}")
        self.path, self.separator, self.append = str(path), separator, bool(append)
        self.rows: list[dict] = []

    _state_attrs = ("rows",)

    def on_train_begin(self, logs=None):
        import csv
        import os

        self.rows = []
        if self.append and os.path.exists(self.path):
            with open(self.path, newline="", encoding="utf-8") as f:
                self.rows = list(csv.DictReader(f, delimiter=self.separator))

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        self._write()

    def _write(self) -> None:
        import csv
        import io as _io

        from .io import atomic_write

        fields: list[str] = []
        for row in self.rows:
            fields.extend(k for k in row if k not in fields)

        def write(binary):
            text = _io.TextIOWrapper(binary, encoding="utf-8", newline="")
            writer = csv.DictWriter(text, fieldnames=fields, delimiter=self.separator,
                                    lineterminator="\n", restval="")
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
            text.flush()
            text.detach()

        atomic_write(self.path, write)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    After ``patience`` epochs without an improvement larger than ``min_delta``, lr ← max(lr ·
    factor, min_lr); the ``cooldown`` epochs after a reduction are not counted (as in
    torch.optim.lr_scheduler.ReduceLROnPlateau). The optimizer's
    ``base_lr`` is scaled by the same factor, so a schedule keeps working on top of it.

    Parameters
    ----------
    monitor : str
    factor : float
        In (0, 1).
    patience : int or inf
        Epochs without improvement before the rate is reduced; ``math.inf`` never reduces it.
    min_delta : float
    cooldown : int
    min_lr : float
    mode : {"auto", "min", "max"}
    verbose : int

    Attributes
    ----------
    reductions : list of (epoch, new_lr)
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0, mode: str = "auto",
                 verbose: int = 0) -> None:
        check_number(factor, "ReduceLROnPlateau factor", low=0, high=1, low_open=True, high_open=True)
        # patience=inf never reduces the rate
        check_number(patience, "ReduceLROnPlateau patience", low=0, integer=True, no_limit=True)
        check_number(cooldown, "ReduceLROnPlateau cooldown", low=0, integer=True)
        check_number(min_delta, "ReduceLROnPlateau min_delta")
        check_number(min_lr, "ReduceLROnPlateau min_lr", low=0)
        self.monitor, self.factor, self.patience = monitor, float(factor), patience
        self.min_delta, self.cooldown, self.min_lr = abs(min_delta), cooldown, float(min_lr)
        self.mode = _auto_mode(monitor, mode, "ReduceLROnPlateau")
        self.verbose = verbose
        self.reductions: list[tuple[int, float]] = []

    _state_attrs = ("best", "wait", "cooldown_counter", "reductions")

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = None, 0, 0
        self.reductions = []

    def _better(self, value: float) -> bool:
        if self.best is None:
            return np.isfinite(value)
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(logs, self.monitor, "ReduceLROnPlateau")
        better = self._better(value)
        if better:
            self.best, self.wait = value, 0
        if self.cooldown_counter > 0:  # an epoch of cooldown is not counted
            self.cooldown_counter -= 1
            self.wait = 0
            return
        if better:
            return
        self.wait += 1
        if self.wait < max(self.patience, 1):
            return
        opt = self.model.optimizer
        if opt.lr > self.min_lr:
            new_lr = max(opt.lr * self.factor, self.min_lr)
            if opt.lr > 0:
                opt.base_lr *= new_lr / opt.lr
            opt.lr = new_lr
            self.reductions.append((epoch, new_lr))
            if self.verbose:
                print(f"epoch {epoch + 1}: {self.monitor} has not improved for {self.wait} epochs;"
                      f" learning rate reduced to {new_lr:.6g}")
        self.cooldown_counter, self.wait = self.cooldown, 0


class GradientNormLogger(Callback):
    """Record the 2-norm of each layer's gradient (all its parameters together) during training.

    Parameters
    ----------
    every : {"epoch", "batch"}
        "epoch" keeps the mean over each epoch's batches; "batch" keeps every batch.

    Attributes
    ----------
    norms : dict[str, list[float]]
        One list per layer with parameters, keyed "index: Layer(args)" (e.g. "0: Dense(...)").
    """

    def __init__(self, every: str = "epoch") -> None:
        if every not in ("epoch", "batch"):
            raise ConfigError(f"GradientNormLogger every must be 'epoch' or 'batch', got {every!r}")
        self.every = every
        self.norms: dict[str, list[float]] = {}

    _state_attrs = ("norms", "_sums", "_count")

    def on_train_begin(self, logs=None):
        self._layers = [(f"{i}: {layer!r}", layer) for i, layer in enumerate(self.model.layers)
                        if layer.grads]
        for key, _ in self._layers:
            self.norms.setdefault(key, [])
        self._sums = {key: 0.0 for key, _ in self._layers}
        self._count = 0

    def on_batch_end(self, batch, logs=None):
        for key, layer in self._layers:
            norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in layer.grads.values())))
            if self.every == "batch":
                self.norms[key].append(norm)
            else:
                self._sums[key] += norm
        self._count += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.every == "epoch" and self._count:
            for key, _ in self._layers:
                self.norms[key].append(self._sums[key] / self._count)
                self._sums[key] = 0.0
        self._count = 0
