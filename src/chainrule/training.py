"""The training loop: batching, shuffling, the step, callbacks, logging and the History.

One step on a batch (xb, yb):

    output      = net._forward_train(xb)                   # each layer caches what backward needs
    loss, delta = loss._value_and_grad(output, yb)         # delta = dL/doutput
    net._backward_train(delta)                             # fills every layer.grads
    optimizer.step(net)                                    # updates the parameters in place

Everything about the data is checked once, before the first step; the loop itself does no
checking beyond one test that the loss is finite (and one that the parameters are, after each
epoch). With ``checkpoint=`` the loop writes its whole state (chainrule.checkpoint) every
``checkpoint_every`` batches and after each epoch; ``resume=`` puts such a state back. SIGINT
and SIGTERM stop it after the current batch (chainrule.interrupt).

With numba, where nothing needs the loop between batches (no metrics, no callback's
``on_batch_end``), the plain step of a Dense network runs a run of batches per compiled call
(chainrule.step.DenseRuns: the same step, the loop's accounting done per run).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt_io
from ._checks import as_array, as_rng, check_positive_int, quiet_float_errors
from ._env import in_notebook
from .callbacks import Callback, History
from .errors import ConfigError, ShapeError, TrainingError
from .interrupt import GracefulStop
from .layers.activations import Identity
from .losses import get_loss
from .metrics import get_metric
from .optim import get_optimizer
from .regularizers import get_regularizer
from .sequence import check_bptt_steps
from .step import DenseRuns, NonFiniteLoss, make_step

#: Above this size, shuffled batches are gathered one by one instead of once per epoch.
_GATHER_EACH_BATCH_BYTES = 16 * 2**20


def _progress_bar(total: int, epoch: int, epochs: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=True,
                dynamic_ncols=True, file=sys.stderr)


def _run_bar(epochs: int, first: int):
    """In a notebook: one bar over the whole run, its postfix the last epoch's logs."""
    from tqdm.auto import tqdm

    return tqdm(total=epochs, initial=first, desc="fit", unit="epoch", leave=True, file=sys.stderr)


def _format_logs(logs: dict) -> str:
    return ", ".join(f"{k}={v:.6g}" for k, v in logs.items())


def fit(net, X, y, loss="mse", optimizer="sgd", epochs: int = 1, batch_size: int | None = 32,
        shuffle: bool = True, seed=None, validation_data=None, metrics=(), callbacks=(),
        verbose: int = 1, print_every: int | None = None, initial_epoch: int = 0,
        rule=None, bptt_steps: int | None = None, distributed=False, checkpoint=None,
        checkpoint_every="epoch", resume=None, graceful_stop: bool = True, regularizer=None) -> History:
    """Train ``net`` on (X, y); see :meth:`chainrule.Sequential.fit` for the arguments."""
    run = _Run(net, X, y, loss=loss, optimizer=optimizer, epochs=epochs, batch_size=batch_size,
               shuffle=shuffle, seed=seed, validation_data=validation_data, metrics=metrics,
               callbacks=callbacks, verbose=verbose, print_every=print_every, initial_epoch=initial_epoch,
               rule=rule, bptt_steps=bptt_steps, distributed=distributed, checkpoint=checkpoint,
               checkpoint_every=checkpoint_every, resume=resume, graceful_stop=graceful_stop,
               regularizer=regularizer)
    history, pos, step, stop, out, bs = run.history, run.position, run.step, run.stop, run.output, run.bs
    try:
        with stop, quiet_float_errors():  # an overflow shows as a non-finite loss, reported below
            for epoch in range(pos.epoch, epochs):
                first, Xs, ys = run.begin_epoch(epoch)  # (Xs None: large data, gathered batch by batch)
                bar = out.epoch_bar(run.n_batches, epoch, first) if out.bars else None
                b = first
                while b < run.n_batches:
                    if run.runs is not None:  # batches b to end - 1 in one compiled call (step.DenseRuns)
                        end = run.compiled_batches(b, epoch)
                    else:
                        end = b + 1
                        xb, yb = (Xs[b * bs:end * bs], ys[b * bs:end * bs]) if Xs is not None else run.gather(b)
                        try:
                            output, value, target = step(xb, yb)
                        except NonFiniteLoss as exc:
                            raise run.diverged(exc, epoch, b, len(xb)) from None
                        pos.last_loss = value
                        pos.total += value * len(xb) if run.mean_reduction else value
                        for m in run.metrics:
                            m.update(target, output)
                        for cb in run.user_callbacks:
                            cb.on_batch_end(b, {"loss": value})
                    if bar is not None:
                        bar.update(end - b)
                    pos.batch, pos.step, b = end, pos.step + end - b, end
                    for hook in run.hooks:
                        hook.batch_end(pos, stop.requested)
                    if stop.requested and b < run.n_batches:
                        history.interrupted = True
                        break
                if history.interrupted:
                    out.close(bar)
                    break
                logs = run.epoch_logs(epoch)
                out.epoch_done(bar, epoch, logs)
                for cb in run.callbacks:
                    cb.on_epoch_end(epoch, logs)
                run.check_parameters(epoch)
                pos.epoch, pos.batch = epoch + 1, 0
                for hook in run.hooks:  # the ranks agree on stopping; the checkpoint is written
                    hook.epoch_end(pos)
                if stop.requested and not (net.stop_training or epoch + 1 == epochs):
                    history.interrupted = True
                    break
                if net.stop_training:
                    history.stopped_early = epoch + 1 < epochs
                    break
    except BaseException as exc:
        for hook in run.hooks:
            hook.fail(exc)
        raise
    finally:
        out.close()
        for cb in run.callbacks:
            cb.on_train_end()
        for hook in run.hooks:
            hook.end()
    return history


class _Run:
    """One fit's checked arguments and live state: data, step, callbacks, hooks and position.

    Everything about the arguments and the data is checked here, once, before the first step.
    """

    def __init__(self, net, X, y, *, loss, optimizer, epochs, batch_size, shuffle, seed, validation_data,
                 metrics, callbacks, verbose, print_every, initial_epoch, rule, bptt_steps, distributed,
                 checkpoint, checkpoint_every, resume, graceful_stop, regularizer) -> None:
        dp = None
        if distributed:  # data-parallel over MPI ranks (chainrule.distributed): first, the ranks must agree
            from .distributed import DataParallel

            dp = DataParallel.for_fit(net, distributed)
            dp.check_agreement(X, y, validation_data, loss=loss, optimizer=optimizer, epochs=epochs,
                               batch_size=batch_size, shuffle=shuffle, metrics=metrics, rule=rule,
                               bptt_steps=bptt_steps, initial_epoch=initial_epoch,
                               checkpoint=checkpoint is not None, resume=resume is not None)
        every = _check_checkpointing(checkpoint, checkpoint_every, resume, rule, distributed, initial_epoch)
        resumed = ckpt_io.read(resume) if resume is not None else None
        if resumed is not None:  # the weights and scaler first: fit's checks and scaling use them
            ckpt_io.restore_network(resumed, net)
        check_positive_int(epochs, "epochs")
        check_positive_int(batch_size, "batch_size", allow_none=True)
        check_positive_int(print_every, "print_every", allow_none=True)
        if verbose not in (0, 1, 2):
            raise ConfigError(f"verbose must be 0 (silent), 1 (progress bar) or 2 (one line per epoch),"
                              f" got {verbose!r}")
        callbacks = _check_callbacks(callbacks)
        regularizer = get_regularizer(regularizer)
        loss = get_loss(loss)
        if net.layers:  # a loss that wants probabilities after a layer that gives logits, or the reverse
            loss.check_output_layer(next((la for la in reversed(net.layers) if not isinstance(la, Identity)),
                                         net.layers[-1]))
        optimizer = get_optimizer(optimizer)
        X = net._check_input(X, "fit X")
        n = len(X)
        if n == 0:
            raise ShapeError("fit X has no samples")
        if net.scaler is not None:
            if not net.scaler.is_fitted:
                net.scaler.fit(X)
            X = net._check_input(net.scaler.transform(X), "scaled X")
        y = _check_target(net, loss, X, y, "fit y")
        if bptt_steps is not None:  # truncated BPTT (chainrule.sequence)
            check_bptt_steps(net, X, bptt_steps, rule)
        self.validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ConfigError("validation_data must be a pair (X_val, y_val)")
            Xv = net._prepare_input(validation_data[0], "validation X")
            self.validation = (Xv, _check_target(net, loss, Xv, validation_data[1], "validation y"), metrics)
        metric_objs = [get_metric(m) for m in metrics]
        _check_metrics(net, metric_objs, X, y)
        self.bs = n if batch_size is None else min(batch_size, n)
        self.n_batches = math.ceil(n / self.bs)
        rng = as_rng(seed)
        if checkpoint is not None or resumed is not None:
            settings = ckpt_io.settings_of(n, batch_size, shuffle, loss, optimizer, metric_objs, bptt_steps, rule)
            data_print = ckpt_io.fingerprint(X, y)
            if resumed is not None:
                ckpt_io.check_compatible(resumed, settings, data_print)

        history = History()
        history.params = {"epochs": epochs, "batch_size": batch_size, "samples": n,
                          "steps": self.n_batches, "shuffle": shuffle}
        net.optimizer, net.loss, net.stop_training = optimizer, loss, False
        net._fit_params = history.params
        self.hooks: list = []
        if dp is not None:  # rank 0's weights and seed, one gradient buffer; rank 0 alone prints and writes
            loss, metric_objs, callbacks, verbose, print_every = dp.setup(
                n, loss, metric_objs, callbacks, verbose, print_every, rng)
            self.hooks.append(dp)
        step = make_step(net, loss, optimizer, rule=rule, bptt_steps=bptt_steps, regularizer=regularizer)
        self.step = dp.wrap(step) if dp is not None else step
        self.step_logs = rule is not None
        self.check_parameters = _ParameterCheck(net)
        self.callbacks: list[Callback] = [history, *callbacks]
        for cb in self.callbacks:
            cb.set_model(net)
            cb.on_train_begin()
        self.position = ckpt_io.Position(epoch=initial_epoch)
        if resumed is not None:
            params = history.params
            self.position = ckpt_io.restore_training(resumed, net, optimizer, rng, history, callbacks,
                                                     epochs=epochs, n_batches=self.n_batches, batch_size=self.bs,
                                                     metrics=metric_objs, rule=rule)
            history.params = params
            ckpt_io.remove_stale_temporaries(resume)
            if history.stopped_early:
                self.position.epoch = epochs  # a run that a callback ended stays ended
        if checkpoint is not None and (dp is None or dp.is_root):
            saver = ckpt_io.Saver(checkpoint, net, optimizer, rng, history, callbacks, settings, data_print,
                                  written=self.position if resume is not None and Path(resume) == Path(checkpoint)
                                  else None, rule=rule)
            history.checkpoint = str(checkpoint)
            self.hooks.append(_CheckpointHook(saver, every, metric_objs, self.n_batches, net, epochs,
                                              mid_epoch=dp is None))
        stop = GracefulStop(graceful_stop)
        self.stop = dp.agreed_stop(stop) if dp is not None else stop  # a signal to any rank stops them all
        self.output = _Output(verbose, print_every, epochs, self.position.epoch)
        self.net, self.X, self.y, self.shuffle, self.rng, self.optimizer = net, X, y, shuffle, rng, optimizer
        self.loss, self.metrics, self.user_callbacks, self.history = loss, metric_objs, callbacks, history
        self.mean_reduction = loss.reduction == "mean"
        self.dp, self.saver = dp, next((h.saver for h in self.hooks if isinstance(h, _CheckpointHook)), None)
        # Many batches per compiled call where nothing needs the loop between them (step.DenseRuns)
        self.runs = None if dp is not None or metric_objs or any(
            getattr(cb.on_batch_end, "__func__", None) is not Callback.on_batch_end for cb in callbacks) \
            else DenseRuns.of(self.step, X, y, self.bs)
        self.every = next((h.every for h in self.hooks if isinstance(h, _CheckpointHook)), None)

    def begin_epoch(self, epoch: int):
        """Draw the epoch's order, reset or restore the metrics; (first batch to run, X and y in the
        epoch's order, or None, None when large data are gathered batch by batch: ``gather``)."""
        pos = self.position
        mid_epoch = epoch == pos.epoch and pos.batch > 0
        if mid_epoch:  # resuming inside an epoch: draw its order again from the same state
            self.rng.bit_generator.state = pos.epoch_rng
        else:
            self.optimizer.set_epoch(epoch)
            for cb in self.callbacks:
                cb.on_epoch_begin(epoch)
        pos.epoch_rng = self.rng.bit_generator.state if self.saver is not None else None
        X, y = self.X, self.y
        # (one sample: nothing to shuffle, and permutation(1) draws no random number)
        order = self.order = self.rng.permutation(len(X)) if self.shuffle and len(X) > 1 else None
        for m in self.metrics:
            m.reset()
        if mid_epoch:
            for m, state in zip(self.metrics, pos.metrics, strict=True):
                vars(m).update(state)
            first = pos.batch
        else:
            pos.epoch, pos.batch, pos.total = epoch, 0, 0.0
            first = 0
        # Large data are gathered batch by batch: no epoch-sized copy (memory, page faults), and
        # each batch is fresh in cache. Small data: one gather, then slices per step.
        if order is not None and (X.nbytes > _GATHER_EACH_BATCH_BYTES or self.runs is not None):
            return first, None, None  # (the compiled runs gather each batch themselves)
        if order is not None:  # (np.take: the rows X[order] gives, ~12 % sooner than fancy indexing)
            X, y = np.take(X, order, axis=0), np.take(y, order, axis=0)
        return first, X, y

    def compiled_batches(self, b: int, epoch: int) -> int:
        """Run batches from ``b`` in one compiled call, account for their losses as the loop does
        per batch, and return the first batch not run. A call ends at RUN_SAMPLES samples, at the
        epoch's end, or where a checkpoint is due every ``checkpoint_every`` batches."""
        runs, pos, bs, n = self.runs, self.position, self.bs, len(self.X)
        end = min(self.n_batches, b + max(1, runs.RUN_SAMPLES // bs))
        if self.every:
            end = min(end, b + self.every - pos.step % self.every)
        done = runs(self.order, b, end)
        values = runs.values[b:done].tolist()  # Python floats, added one by one as the loop does
        if values:
            total, last = pos.total, len(values) - 1
            if self.mean_reduction:  # Σ loss·rows: every batch has bs rows but the epoch's last
                for value in values[:last]:
                    total += value * bs
                total += values[last] * (min(n, done * bs) - (done - 1) * bs)
            else:
                for value in values:
                    total += value
            pos.total, pos.last_loss = total, values[last]
        if done < end:
            pos.batch, pos.step = done, pos.step + done - b
            raise self.diverged(NonFiniteLoss(float(runs.values[done])), epoch, done,
                                min(n, (done + 1) * bs) - done * bs) from None
        return done

    def gather(self, b: int):
        """Batch ``b`` of the epoch's order, gathered from the whole data (large data)."""
        rows = self.order[b * self.bs:(b + 1) * self.bs]
        return np.take(self.X, rows, axis=0), np.take(self.y, rows, axis=0)

    def epoch_logs(self, epoch: int) -> dict:
        n, pos = len(self.X), self.position
        logs = {"loss": pos.total / n if self.mean_reduction else pos.total}
        for m in self.metrics:
            logs[m.name] = m.result()
        if self.step_logs:  # (a credit rule's angles)
            logs.update(self.step.epoch_logs())
        if self.dp is not None:  # the ranks' running statistics averaged: one model for validation and callbacks
            self.dp.average_buffers()
        if self.validation is not None:
            Xv, yv, metrics = self.validation
            val = self.net._evaluate_prepared(Xv, yv, self.loss, metrics)
            logs.update({f"val_{k}": v for k, v in val.items()})
        if self.dp is not None:  # every rank's loss sums and metric counts: the same logs on every rank
            logs = self.dp.combine_logs(logs, self.metrics)
        return logs

    def diverged(self, exc: NonFiniteLoss, epoch: int, b: int, rows: int) -> TrainingError:
        """The error for a non-finite loss, with its place and what was kept."""
        pos, bs = self.position, self.bs
        if exc.where:  # on other ranks too (distributed): each rank knows only its own rows
            return TrainingError(
                f"the loss became {exc.value} at epoch {epoch + 1}, batch {b + 1}{exc.where}; try a smaller"
                " learning rate or check the data. Parameters hold the values of the last finite step;"
                " nothing was saved.")
        last = "" if pos.last_loss is None else f"; the last finite loss was {pos.last_loss:.7g}"
        kept = (f"the last checkpoint, {self.saver.describe()}, was kept untouched." if self.saver is not None
                else "nothing was saved.")
        return TrainingError(
            f"the loss became {exc.value} at epoch {epoch + 1}, batch {b + 1} of {self.n_batches}"
            f" (samples {b * bs} to {b * bs + rows - 1} of the epoch's order){last};"
            f" try a smaller learning rate or check the data. Parameters hold the values of the last"
            f" finite step; {kept}")


class _CheckpointHook:
    """Writes the training state (chainrule.checkpoint) every ``every`` batches, after each epoch,
    and when a signal stops training."""

    def __init__(self, saver, every, metrics, n_batches: int, net, epochs: int, mid_epoch: bool = True) -> None:
        self.saver, self.every, self.metrics, self.n_batches = saver, every, metrics, n_batches
        self.net, self.epochs, self.mid_epoch = net, epochs, mid_epoch

    def batch_end(self, pos, stop_requested) -> None:
        """Mid-epoch: every ``every`` steps, and when a signal stops training (not when distributed:
        each rank's running sums would be needed, and only rank 0 writes)."""
        if not self.mid_epoch:
            return
        if pos.batch < self.n_batches and (stop_requested or (self.every and pos.step % self.every == 0)):
            self.saver.save(ckpt_io.Position(pos.epoch, pos.batch, pos.step, pos.epoch_rng, pos.total,
                                             [dict(vars(m)) for m in self.metrics], False, pos.last_loss))

    def epoch_end(self, pos) -> None:
        pos.finished = self.net.stop_training or pos.epoch == self.epochs
        # a run a callback ended stays ended on resume: the file must say so
        self.saver.history.stopped_early = self.net.stop_training and pos.epoch < self.epochs
        self.saver.save(ckpt_io.Position(pos.epoch, 0, pos.step, None, 0.0, [], pos.finished, pos.last_loss))

    def fail(self, exc) -> None:
        pass

    def end(self) -> None:
        pass


class _Output:
    """What fit prints. print_every's lines replace the per-epoch output; verbose=1 shows a bar
    per epoch in a terminal, one bar for the run in a notebook, else (a log file) a line per epoch."""

    def __init__(self, verbose: int, print_every, epochs: int, first_epoch: int) -> None:
        notebook = verbose == 1 and print_every is None and in_notebook()
        self.bars = verbose == 1 and print_every is None and not notebook and sys.stderr.isatty()
        self.lines = verbose and print_every is None and not notebook
        self.run_bar = _run_bar(epochs, first_epoch) if notebook else None
        self.print_every, self.epochs = print_every, epochs

    def epoch_bar(self, n_batches: int, epoch: int, first: int):
        bar = _progress_bar(n_batches, epoch, self.epochs)
        if first:
            bar.update(first)
        return bar

    def epoch_done(self, bar, epoch: int, logs: dict) -> None:
        if bar is not None:
            bar.set_postfix_str(_format_logs(logs), refresh=True)
            bar.close()
        elif self.run_bar is not None:
            self.run_bar.set_postfix_str(_format_logs(logs), refresh=False)
            self.run_bar.update(1)
        elif self.lines:
            print(f"epoch {epoch + 1}/{self.epochs}: {_format_logs(logs)}", flush=True)
        if self.print_every and (epoch + 1) % self.print_every == 0:
            print(f"epoch={epoch + 1}, loss={logs['loss']:.7f}", flush=True)

    def close(self, bar=None) -> None:
        if bar is not None:
            bar.close()
        elif self.run_bar is not None:
            self.run_bar.close()
            self.run_bar = None


def _check_checkpointing(checkpoint, every, resume, rule, distributed, initial_epoch) -> int | None:
    """Check fit's checkpoint arguments; return the batch interval (None: after each epoch only)."""
    for name, value in (("checkpoint", checkpoint), ("resume", resume)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"fit {name} must be a file path, got {value!r}")
    if checkpoint is None and resume is None:
        return None
    if rule is not None and not getattr(rule, "checkpointable", False):
        raise ConfigError(f"fit checkpoint and resume: {rule!r} learns modules or optimizers of its own that"
                          " checkpoints do not keep; train it without checkpoint=/resume=, or checkpoint"
                          " a rule that keeps none (Backprop, FeedbackAlignment, DirectFeedbackAlignment)")
    if distributed and every != "epoch":
        raise ConfigError("fit with distributed=True writes checkpoints after each epoch only: leave"
                          f" checkpoint_every='epoch' (got {every!r}); a signal then stops every rank after"
                          " the current batch and the resume repeats that epoch from its start")
    if resume is not None and initial_epoch:
        raise ConfigError("fit resume takes the epoch from the checkpoint; leave initial_epoch at 0")
    if every == "epoch":
        return None
    check_positive_int(every, "checkpoint_every (a number of batches, or 'epoch')")
    return int(every)


def _check_callbacks(callbacks) -> list[Callback]:
    """fit's callbacks as a list, each a Callback (None is no callbacks; a bare string is refused)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        raise ConfigError(f"fit callbacks must be a list of callbacks, got one callback {callbacks!r}:"
                          " write callbacks=[...]")
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, (list, tuple)):
        raise ConfigError(f"fit callbacks must be a list of Callback objects, got {callbacks!r}")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise ConfigError(f"fit callbacks[{i}] must be a Callback (chainrule.callbacks), got {cb!r}")
    return list(callbacks)


def _check_metrics(net, metric_objs, X, y) -> None:
    """Try each metric on two samples, so that one that cannot read the targets fails now."""
    if not metric_objs:
        return
    probe = _probe(net, X[:2])
    for m in metric_objs:
        try:
            m.update(y[:2], probe)
        except ShapeError as exc:
            raise ShapeError(f"metric {m.name!r} does not fit these targets and outputs: {exc}") from None
        finally:
            m.reset()


class _ParameterCheck:
    """After each epoch: are the parameters still finite? (an update can overflow while every loss
    the loop saw was finite). p·p is one BLAS call and finite whenever p is; only when it is not
    (NaN, inf, or an overflow of huge but finite entries) does the exact test decide. The flat
    views are made once per fit (parameters are never rebound): f.dot(f) on them costs ~0.55 µs a
    parameter against ~0.8 µs for np.vdot(p, p), which counts when an epoch is one small step."""

    def __init__(self, net) -> None:
        self.entries = []
        for i, layer in enumerate(net.layers):
            for name, p in layer.params.items():
                flat = p.reshape(-1)
                self.entries.append((f"{i}.{name}", p, flat if np.shares_memory(flat, p) else None))

    def __call__(self, epoch: int) -> None:
        for key, p, flat in self.entries:
            if not math.isfinite(flat.dot(flat) if flat is not None else np.vdot(p, p)) and not np.isfinite(p).all():
                raise TrainingError(
                    f"parameter {key} became NaN or inf during epoch {epoch + 1} (an update"
                    " overflowed); try a smaller learning rate, gradient clipping or scaled data")


def _check_target(net, loss, X, y, name: str) -> np.ndarray:
    """Check ``y`` once against the network's output for X; return it ready for the loss."""
    if y is None:
        raise ShapeError(f"{name} is missing")
    y_arr = as_array(y, name)
    if y_arr.ndim == 0 or len(y_arr) != len(X):
        raise ShapeError(
            f"{name} must have one target per sample ({len(X)} samples), got shape {y_arr.shape}"
        )
    if y_arr.dtype.kind == "f":
        from ._checks import check_finite

        check_finite(y_arr, name)
    probe = _probe(net, X[:1])
    return loss.prepare_target(y_arr, (len(X), *probe.shape[1:]), probe.dtype)


def _probe(net, x: np.ndarray) -> np.ndarray:
    """The output for a few checked samples, for its shape and dtype (NaN is the loop's to report)."""
    with quiet_float_errors():
        for layer in net.layers:
            x = layer.forward(x, False)
    return x
