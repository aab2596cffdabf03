"""Callbacks: code the training loop calls at the start and end of training, epochs and batches.

A callback subclasses :class:`Callback` and overrides the hooks it needs. ``self.model`` is
the network being trained; setting ``self.model.stop_training = True`` ends training after
the current epoch. ``logs`` is a dict of floats: "loss", metric names, and "val_" names when
there is validation data.
"""

from __future__ import annotations

import inspect

import numpy as np

from .errors import ConfigError


class Callback:
    """Base class: every hook does nothing."""

    model = None

    def set_model(self, model) -> None:
        self.model = model

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
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict = {}
        self.stopped_early = False

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))

    def __repr__(self) -> str:
        last = {k: round(v[-1], 6) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        A log name ("val_loss" by default; needs validation data).
    patience : int
        Epochs without improvement to wait before stopping.
    min_delta : float
        Smallest change that counts as an improvement.
    mode : {"auto", "min", "max"}
        Whether smaller or larger is better; "auto" takes "max" for accuracy and r2.
    restore_best_weights : bool
        At the end of training, put back the parameters of the best epoch.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"EarlyStopping mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not isinstance(patience, int) or patience < 0:
            raise ConfigError(f"EarlyStopping patience must be an integer >= 0, got {patience!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(min_delta)
        if mode == "auto":
            mode = "max" if any(s in monitor for s in ("acc", "r2")) else "min"
        self.mode = mode
        self.restore_best_weights = restore_best_weights

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self.wait, self.stopped_epoch = None, None, 0, None
        self.best_weights = None

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
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


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
