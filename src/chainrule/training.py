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
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt_io
from ._checks import as_array, as_rng, check_positive_int, quiet_float_errors
from .callbacks import Callback, History
from .errors import ConfigError, ShapeError, TrainingError
from .interrupt import GracefulStop
from .losses import get_loss
from .metrics import get_metric
from .optim import get_optimizer
from .sequence import check_bptt_steps, truncated_bptt_step

#: Above this size, shuffled batches are gathered one by one instead of once per epoch.
_GATHER_EACH_BATCH_BYTES = 16 * 2**20


def _progress_bar(total: int, epoch: int, epochs: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=True,
                dynamic_ncols=True, file=sys.stderr)


def _format_logs(logs: dict) -> str:
    return ", ".join(f"{k}={v:.6g}" for k, v in logs.items())


def fit(net, X, y, loss="mse", optimizer="sgd", epochs: int = 1, batch_size: int | None = 32,
        shuffle: bool = True, seed=None, validation_data=None, metrics=(), callbacks=(),
        verbose: int = 1, print_every: int | None = None, initial_epoch: int = 0,
        rule=None, bptt_steps: int | None = None, distributed=False, checkpoint=None,
        checkpoint_every="epoch", resume=None, graceful_stop: bool = True) -> History:
    """Train ``net`` on (X, y); see :meth:`chainrule.Sequential.fit` for the arguments."""
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
        raise ConfigError(f"verbose must be 0 (silent), 1 (progress bar) or 2 (one line per epoch), got {verbose!r}")
    loss = get_loss(loss)
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
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ConfigError("validation_data must be a pair (X_val, y_val)")
        Xv = net._prepare_input(validation_data[0], "validation X")
        yv = _check_target(net, loss, Xv, validation_data[1], "validation y")
    metric_objs = [get_metric(m) for m in metrics]
    _check_metrics(net, metric_objs, X, y)
    bs = n if batch_size is None else min(batch_size, n)
    n_batches = math.ceil(n / bs)
    rng = as_rng(seed)
    if checkpoint is not None or resumed is not None:
        settings = ckpt_io.settings_of(n, batch_size, shuffle, loss, optimizer, metric_objs, bptt_steps)
        data_print = ckpt_io.fingerprint(X, y)
        if resumed is not None:
            ckpt_io.check_compatible(resumed, settings, data_print)

    history = History()
    history.params = {"epochs": epochs, "batch_size": batch_size, "samples": n,
                      "steps": n_batches, "shuffle": shuffle}
    cbs: list[Callback] = [history, *callbacks]
    net.optimizer, net.loss, net.stop_training = optimizer, loss, False
    net._fit_params = history.params
    if dp is not None:  # rank 0's weights and seed, one gradient buffer; rank 0 alone prints and writes
        loss, metric_objs, callbacks, verbose, print_every = dp.setup(
            n, loss, metric_objs, callbacks, verbose, print_every, rng)
        cbs = [history, *callbacks]
    if rule is not None:  # a credit-assignment rule (chainrule.credit) replaces backward + step
        if not callable(getattr(rule, "backward_step", None)):
            raise ConfigError(f"rule must be a credit-assignment rule (chainrule.credit), got {rule!r}")
        rule.begin(net, loss, optimizer)
    for cb in cbs:
        cb.set_model(net)
        cb.on_train_begin()
    position = ckpt_io.Position(epoch=initial_epoch)
    if resumed is not None:
        params = history.params
        position = ckpt_io.restore_training(resumed, net, optimizer, rng, history, callbacks, epochs=epochs,
                                            n_batches=n_batches, batch_size=bs, metrics=metric_objs)
        history.params = params
        ckpt_io.remove_stale_temporaries(resume)
        if history.stopped_early:
            position.epoch = epochs  # a run that a callback ended stays ended
    saver = None
    if checkpoint is not None:
        saver = ckpt_io.Saver(checkpoint, net, optimizer, rng, history, callbacks, settings, data_print,
                              written=position if resume is not None and Path(resume) == Path(checkpoint) else None)
        history.checkpoint = str(checkpoint)

    mean_reduction = loss.reduction == "mean"
    bar_ok = verbose == 1 and sys.stderr.isatty()
    step, last_finite = position.step, position.last_loss
    stop = GracefulStop(graceful_stop)
    if dp is not None:  # a signal on any rank stops every rank after the same batch
        stop = dp.agreed_stop(stop)
    guard = contextlib.ExitStack()  # (entered here, closed first thing in `finally`)
    guard.enter_context(stop)
    # A diverging step overflows quietly: the finite-loss test below reports it, with its place.
    guard.enter_context(quiet_float_errors())
    try:
        for epoch in range(position.epoch, epochs):
            mid_epoch = epoch == position.epoch and position.batch > 0
            if mid_epoch:  # resuming inside an epoch: draw its order again from the same state
                rng.bit_generator.state = position.epoch_rng
            else:
                optimizer.set_epoch(epoch)
                for cb in cbs:
                    cb.on_epoch_begin(epoch)
            epoch_rng = rng.bit_generator.state if saver is not None else None
            # (one sample: nothing to shuffle, and permutation(1) draws no random number)
            order = rng.permutation(n) if shuffle and n > 1 else None
            # Large data are gathered batch by batch: no epoch-sized copy (memory, page faults),
            # and each batch is fresh in cache. Small data: one gather, then slices per step.
            gather_each_batch = order is not None and X.nbytes > _GATHER_EACH_BATCH_BYTES
            # (np.take: the rows X[order] gives, ~12 % sooner than fancy indexing)
            if order is not None and not gather_each_batch:
                Xs, ys = np.take(X, order, axis=0), np.take(y, order, axis=0)
            else:
                Xs, ys = X, y
            for m in metric_objs:
                m.reset()
            bar = _progress_bar(n_batches, epoch, epochs) if bar_ok else None
            total = 0.0
            first = 0
            if mid_epoch:
                first, total = position.batch, position.total
                for m, state in zip(metric_objs, position.metrics, strict=True):
                    vars(m).update(state)
                if bar is not None:
                    bar.update(first)
            for b in range(first, n_batches):
                if gather_each_batch:
                    rows = order[b * bs:(b + 1) * bs]
                    xb, yb = np.take(X, rows, axis=0), np.take(y, rows, axis=0)
                else:
                    xb, yb = Xs[b * bs:(b + 1) * bs], ys[b * bs:(b + 1) * bs]
                if dp is not None:  # this rank's rows of the global batch
                    xb, yb = dp.shard(xb, yb)
                if bptt_steps is None:
                    output = net._forward_train(xb) if rule is None else rule.forward(net, xb)
                    value, delta = loss._value_and_grad(output, yb)
                elif rule is None:  # forward and backward window by window, the gradients summed
                    output, value = truncated_bptt_step(net, loss, xb, yb, bptt_steps)
                else:  # the rule's own windows (credit.RecurrentDNI); its update is backward_step's
                    (output, value), delta = rule.bptt_step(net, xb, yb, bptt_steps), None
                if not math.isfinite(value) and dp is None:  # distributed: dp.reduce stops every rank
                    last = "" if last_finite is None else f"; the last finite loss was {last_finite:.7g}"
                    raise TrainingError(
                        f"the loss became {value} at epoch {epoch + 1}, batch {b + 1} of {n_batches}"
                        f" (samples {b * bs} to {b * bs + len(xb) - 1} of the epoch's order){last};"
                        " try a smaller learning rate or check the data. Parameters hold the"
                        " values of the last finite step; "
                        + (f"the last checkpoint, {saver.describe()}, was kept untouched."
                           if saver is not None else "nothing was saved.")
                    )
                last_finite = value
                if rule is None:
                    if bptt_steps is None:
                        net._backward_train(delta)
                    if dp is not None:  # one Allreduce: the global batch's gradient and loss
                        value = dp.reduce(value, epoch, b)
                    optimizer.step(net)
                else:
                    rule.backward_step(net, yb, delta)
                total += value * len(xb) if mean_reduction else value
                for m in metric_objs:
                    m.update(yb, output)
                for cb in callbacks:
                    cb.on_batch_end(b, {"loss": value})
                if bar is not None:
                    bar.update(1)
                step += 1
                if b + 1 < n_batches and (stop.requested or (every and step % every == 0)):
                    if saver is not None:
                        saver.save(ckpt_io.Position(epoch, b + 1, step, epoch_rng, total,
                                                    [dict(vars(m)) for m in metric_objs], False, last_finite))
                    if stop.requested:
                        history.interrupted = True
                        break
            if history.interrupted:
                if bar is not None:
                    bar.close()
                break
            logs = {"loss": total / n if mean_reduction else total}
            for m in metric_objs:
                logs[m.name] = m.result()
            if rule is not None:
                logs.update(rule.epoch_logs())
            if validation_data is not None:
                val = net._evaluate_prepared(Xv, yv, loss, metrics)
                logs.update({f"val_{k}": v for k, v in val.items()})
            if dp is not None:  # every rank's loss sums and metric counts: the same logs on every rank
                logs = dp.combine_logs(logs, metric_objs)
            if bar is not None:
                bar.set_postfix_str(_format_logs(logs), refresh=True)
                bar.close()
            elif verbose:
                print(f"epoch {epoch + 1}/{epochs}: {_format_logs(logs)}", flush=True)
            if print_every and (epoch + 1) % print_every == 0:
                print(f"epoch={epoch + 1}, loss={logs['loss']:.7f}", flush=True)
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            if dp is not None:
                dp.stop_together()
            _check_parameters(net, epoch)
            finished = net.stop_training or epoch + 1 == epochs
            if saver is not None:
                saver.save(ckpt_io.Position(epoch + 1, 0, step, None, 0.0, [], finished, last_finite))
            if stop.requested and not finished:
                history.interrupted = True
                break
            if net.stop_training:
                history.stopped_early = epoch + 1 < epochs
                break
    except BaseException as exc:
        if dp is not None:  # a rank failing alone takes the job down with its message
            dp.fail(exc)
        raise
    finally:
        guard.close()
        for cb in cbs:
            cb.on_train_end()
        if dp is not None:
            dp.end_fit()
    return history


def _check_checkpointing(checkpoint, every, resume, rule, distributed, initial_epoch) -> int | None:
    """Check fit's checkpoint arguments; return the batch interval (None: after each epoch only)."""
    for name, value in (("checkpoint", checkpoint), ("resume", resume)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"fit {name} must be a file path, got {value!r}")
    if checkpoint is None and resume is None:
        return None
    if rule is not None or distributed:
        raise ConfigError("fit checkpoint and resume do not support credit-assignment rules or distributed"
                          " training yet")
    if resume is not None and initial_epoch:
        raise ConfigError("fit resume takes the epoch from the checkpoint; leave initial_epoch at 0")
    if every == "epoch":
        return None
    check_positive_int(every, "checkpoint_every (a number of batches, or 'epoch')")
    return int(every)


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


def _check_parameters(net, epoch: int) -> None:
    for i, layer in enumerate(net.layers):
        for name, p in layer.params.items():
            # p·p is one BLAS call and finite whenever p is; only when it is not (NaN, inf, or an
            # overflow of huge but finite entries) does the exact test decide
            if not math.isfinite(np.vdot(p, p)) and not np.isfinite(p).all():
                raise TrainingError(
                    f"parameter {i}.{name} became NaN or inf during epoch {epoch + 1} (an update"
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
