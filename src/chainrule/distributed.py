"""Data-parallel training over MPI (the ``mpi`` extra: mpi4py and an MPI library).

Every rank holds the whole network and the whole data set; each global batch is cut into one
contiguous shard per rank, and one in-place Allreduce adds the ranks' gradients::

    mpiexec -n K python train.py           # train.py calls net.fit(..., distributed=True)

One step on rank r of K, for a global batch of B rows (the same rows on every rank: the
shuffle follows rank 0's seed):

    shard_r      = rows [lo_r, hi_r) of the batch; ⌈B/K⌉ rows on the first B mod K ranks, ⌊B/K⌋ after
    output       = forward(x[shard_r])
    value, delta = the loss on the shard, scaled by 1/B instead of 1/|shard_r| (mean reduction), so
                   delta is exactly the rows of the single-process delta
    grads        = backward(delta)           each layer's grads are views into one buffer
    Allreduce(buffer, SUM) in place          g = Σ_r grads_r = (1/B) Σ_{i in batch} ∂loss_i/∂θ
    optimizer.step(net)                      unchanged, on identical numbers on every rank

The buffer holds the gradients last layer first (the order backward produces them), then three
slots: the rank's share of the batch loss, and counts of the ranks whose loss was not finite and
of those that got SIGINT/SIGTERM (so every rank raises, or stops, after the same batch). It goes
out in one Allreduce, or in buckets of whole parameters, last layer first, when it is larger than
``bucket_cap_mb``. Once per epoch the loss sums and metric counts of all ranks are gathered, so
every rank gets the same logs and callbacks (early stopping) decide the same way; rank 0 alone
prints, shows progress and runs the callbacks that write files.

:func:`chainrule.training.fit` calls this module only when ``distributed`` is set, at the points
marked ``dp``: :meth:`DataParallel.check_agreement` (first), :meth:`~DataParallel.setup`,
:meth:`~DataParallel.shard` and :meth:`~DataParallel.reduce` per batch,
:meth:`~DataParallel.average_buffers` (BatchNorm's running statistics: their mean over the
ranks, before validation), :meth:`~DataParallel.combine_logs` and
:meth:`~DataParallel.stop_together` per epoch,
:meth:`~DataParallel.agreed_stop`, :meth:`~DataParallel.fail` and :meth:`~DataParallel.end_fit`.
See docs/distributed.md.
"""

from __future__ import annotations

import copy
import functools
import math
import operator
import os
import sys
import traceback
import warnings
import zlib

import numpy as np

from .errors import ChainruleError, ConfigError, ShapeError
from .step import NonFiniteLoss

#: Gradients above this size go out in several Allreduce calls (whole parameters, last layer first).
DEFAULT_BUCKET_CAP_MB = 25.0


class MPIDependencyError(ChainruleError, ImportError):
    """mpi4py (or the MPI library under it) is not installed."""


def require_mpi():
    """The ``mpi4py.MPI`` module, or an MPIDependencyError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise MPIDependencyError("distributed training needs mpi4py and an MPI library:"
                                 f" pip install 'chainrule[mpi]' ({exc})") from None
    return MPI


def world_rank() -> int:
    """This process's rank in MPI.COMM_WORLD (0 when run without mpiexec)."""
    return require_mpi().COMM_WORLD.Get_rank()


def shard_bounds(n: int, size: int, rank: int) -> tuple[int, int]:
    """Rows [lo, hi) of an n-row batch that ``rank`` of ``size`` takes (first n mod size ranks: one more)."""
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def gradient_layout(layers) -> list[tuple[int, str, int, int]]:
    """(layer index, parameter name, start, stop) of every gradient in the buffer, last layer first."""
    layout, offset = [], 0
    for i in reversed(range(len(layers))):
        for name, g in layers[i].grads.items():
            layout.append((i, name, offset, offset + g.size))
            offset += g.size
    return layout


def bucket_bounds(layout, cap_elements: int, total: int) -> list[tuple[int, int]]:
    """[start, stop) of each Allreduce: whole parameters in buffer order, each bucket at most
    ``cap_elements`` unless one parameter alone is larger; the last bucket runs to ``total``."""
    buckets, start = [], 0
    for _, _, lo, hi in layout:
        if hi - start > cap_elements and lo > start:
            buckets.append((start, lo))
            start = lo
    buckets.append((start, total))
    return buckets


class _AgreedStop:
    """fit's GracefulStop, seen through the ranks: ``requested`` changes only where every rank meets
    (each step's Allreduce, each epoch's end), so all ranks stop after the same batch."""

    def __init__(self, local) -> None:
        self.local, self.requested = local, None

    def __enter__(self) -> _AgreedStop:
        self.local.__enter__()
        self.requested = None
        return self

    def __exit__(self, *exc) -> None:
        self.local.__exit__(*exc)


class _ShardScale:
    """``Loss._scale`` on one rank's shard: 1 / (what the loss counts in the whole global batch).

    The loss calls it with the count it averages over (rows, rows·time or elements of the shard);
    scaled by global_rows / local_rows that is the single-process count, so delta is bit for bit
    the single-process delta's rows.
    """

    def __init__(self, reduction: str) -> None:
        self.mean = reduction == "mean"
        self.global_rows = self.local_rows = 1

    def __call__(self, n: int) -> float:
        if not self.mean:
            return 1.0
        if n == 0:  # an empty shard (a last batch smaller than the number of ranks)
            return 0.0
        count, rest = divmod(n * self.global_rows, self.local_rows)
        return 1.0 / count if rest == 0 else self.local_rows / (n * self.global_rows)


def _metric_state_names(metric) -> tuple[str, ...]:
    """The attributes of ``metric`` that add up over ranks (``metric.state_names`` for your own)."""
    from .metrics import R2, Accuracy, MeanAbsoluteError, MeanSquaredError

    names = getattr(metric, "state_names", None)
    if names is not None:
        return tuple(names)
    for cls, names in ((Accuracy, ("correct", "count")), (MeanSquaredError, ("total", "count")),
                       (MeanAbsoluteError, ("total", "count")), (R2, ("n", "sum_t", "sum_t2", "ss_res"))):
        if isinstance(metric, cls):
            return names
    raise ConfigError(f"metric {metric.name!r} ({type(metric).__name__}) cannot be combined across ranks:"
                      " give its class state_names, the attributes that add up over samples")


class _ShardMetric:
    """A metric fed one rank's shards; its counts are added over ranks at the end of each epoch."""

    def __init__(self, metric) -> None:
        self.metric, self.name = copy.deepcopy(metric), metric.name  # fit's validation reuses the original
        self.state_names = _metric_state_names(metric)

    def reset(self) -> None:
        self.metric.reset()

    def update(self, y_true, y_pred) -> None:
        if len(y_pred):  # an empty shard adds nothing (and some metrics cannot reshape it)
            self.metric.update(y_true, y_pred)

    def result(self) -> float:
        return self.metric.result()

    def state(self) -> list:
        return [getattr(self.metric, k) for k in self.state_names]

    def set_state(self, values) -> None:
        for k, v in zip(self.state_names, values, strict=True):
            setattr(self.metric, k, v)


def _root_only(callback) -> bool:
    """Callbacks that print, show progress or write files (``root_only = True``) run on rank 0 alone."""
    return bool(getattr(callback, "root_only", False))


def _crc(a: np.ndarray) -> str:
    return f"crc32 {zlib.crc32(np.ascontiguousarray(a).reshape(-1).view(np.uint8)):08x}"


def _array_facts(name: str, a) -> dict:
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists: fit reports it the same way on every rank
        return {name: f"unreadable ({type(exc).__name__})"}
    facts = {f"{name} shape": arr.shape, f"{name} dtype": str(arr.dtype)}
    if not arr.dtype.hasobject:
        facts[f"{name} contents"] = _crc(arr)
    return facts


def _config_text(layer) -> str:
    """A layer's constructor arguments but its seed (ranks may seed their Dropout differently)."""
    return ", ".join(f"{k}={v!r}" for k, v in layer.get_config().items() if k != "seed")


def _canonical(value):
    """A value that compares equal on every rank when the setting is the same."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    if hasattr(value, "name") and isinstance(value.name, str):  # Metric objects
        return f"{type(value).__name__}({value.name})"
    text = repr(value)
    return type(value).__name__ if " at 0x" in text else text


class DataParallel:
    """Train ``net`` data-parallel over the ranks of an MPI communicator.

    Run the same script on every rank (``mpiexec -n K python train.py``); ``fit`` then gives
    every rank the same weights and History as single-process training on the same global
    batches, up to float32 rounding. ``net.fit(..., distributed=True)`` does the same with
    MPI.COMM_WORLD and the default bucket size.

    Parameters
    ----------
    net : Sequential
    comm : mpi4py communicator, optional
        MPI.COMM_WORLD by default.
    bucket_cap_mb : float
        Gradients larger than this (MiB) go out in several Allreduce calls, whole parameters
        each, last layer first.

    Examples
    --------
    >>> dp = cr.DataParallel(net)                                 # doctest: +SKIP
    >>> history = dp.fit(X, y, loss="crossentropy", optimizer=cr.Adam(), epochs=5)
    >>> if dp.is_root:
    ...     net.save("model.npz")
    """

    def __init__(self, net, comm=None, bucket_cap_mb: float = DEFAULT_BUCKET_CAP_MB) -> None:
        self._mpi = require_mpi()
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or not bucket_cap_mb > 0:
            raise ConfigError(f"DataParallel bucket_cap_mb must be a number > 0, got {bucket_cap_mb!r}")
        self.net = net
        self.comm = self._mpi.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.bucket_cap_mb = float(bucket_cap_mb)
        self.buffer: np.ndarray | None = None
        self.layout: list[tuple[int, str, int, int]] = []
        self.buckets: list[tuple[int, int]] = []
        self._failed = False
        self._collective_error: BaseException | None = None
        self._stdout = None

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that prints and writes files."""
        return self.rank == 0

    def fit(self, X, y, **kwargs):
        """``net.fit(X, y, distributed=self, **kwargs)``; returns the History (the same on every rank)."""
        return self.net.fit(X, y, distributed=self, **kwargs)

    @classmethod
    def for_fit(cls, net, distributed) -> DataParallel:
        """The DataParallel that ``fit(..., distributed=...)`` asks for (True: a new one)."""
        if isinstance(distributed, DataParallel):
            if distributed.net is not net:
                raise ConfigError("fit(distributed=dp): dp = DataParallel(...) wraps another network")
            return distributed
        if distributed is True:
            return cls(net)
        raise ConfigError(f"fit distributed must be True, False or a DataParallel, got {distributed!r}")

    # --- before training: agreement, rank 0's weights, the buffer --------------------------------
    def check_agreement(self, X, y, validation_data=None, **settings) -> None:
        """Collective: raise the same ChainruleError on every rank unless every rank has the same
        network architecture, parameter shapes and dtypes, data (shapes, dtypes, contents) and
        settings. One allgather of a small description; nothing else is sent before it passes."""
        net = self.net
        facts = {"dtype": net.dtype.name,
                 "layers": ", ".join(f"{type(layer).__name__}({_config_text(layer)})" for layer in net.layers),
                 "parameters": ", ".join(f"{k} {p.shape}" for k, p in net.params.items()),
                 "frozen": tuple(tuple(sorted(layer.frozen)) for layer in net.layers)}
        scaler = self.net.scaler
        if scaler is not None:
            arrays = scaler.get_arrays() if scaler.is_fitted else {}
            facts["scaler"] = (repr(scaler.get_config()), tuple((k, _crc(a)) for k, a in sorted(arrays.items())))
        facts.update(_array_facts("X", X))
        facts.update(_array_facts("y", y))
        if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
            facts.update(_array_facts("validation X", validation_data[0]))
            facts.update(_array_facts("validation y", validation_data[1]))
        else:
            facts["validation_data"] = _canonical(validation_data)
        for key, value in settings.items():
            facts[key] = _canonical(value)
        everyone = self.comm.allgather(facts)
        problems = []
        for r, other in enumerate(everyone[1:], 1):
            for key in dict.fromkeys([*everyone[0], *other]):
                mine, theirs = everyone[0].get(key, "nothing"), other.get(key, "nothing")
                shape = key.replace("contents", "shape")
                if mine != theirs and (shape == key or everyone[0].get(shape) == other.get(shape)):
                    problems.append(f"{key}: rank 0 has {mine}, rank {r} has {theirs}")
        if problems:
            shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
            sizes = any(p.split(":")[0].endswith(("shape", "layers", "parameters")) for p in problems)
            raise (ShapeError if sizes else ConfigError)(
                "distributed training needs the same network, data and settings on every rank"
                f" (checked before any gradient is sent); they differ: {shown}")
        rule = settings.get("rule")
        if rule is not None and not getattr(rule, "data_parallel", False):
            raise ConfigError(f"distributed training sums the ranks' gradients; rule={rule!r} learns from each"
                              " rank's own rows (its modules would differ between ranks): train it on one"
                              " process, or use Backprop, LastLayerOnly, FeedbackAlignment or"
                              " DirectFeedbackAlignment")

    def broadcast_parameters(self) -> None:
        """Collective: copy rank 0's parameters and layer buffers (BatchNorm's running statistics)
        into every rank's, in place: one Bcast per dtype (one, unless a layer keeps another)."""
        arrays = [*self.net.params.values(), *self._buffers()]
        for dtype in dict.fromkeys(a.dtype for a in arrays):  # (the same on every rank: checked first)
            same = [a for a in arrays if a.dtype == dtype]
            flat = np.concatenate([a.reshape(-1) for a in same])
            self.comm.Bcast(flat, root=0)
            offset = 0
            for a in same:
                a.reshape(-1)[...] = flat[offset:offset + a.size]  # params and buffers are never rebound
                offset += a.size

    def _buffers(self) -> list[np.ndarray]:
        """Every layer's buffers (BatchNorm's running statistics), each array once, in layer order."""
        seen, arrays = set(), []
        for layer in self.net.layers:
            for b in (getattr(layer, "buffers", None) or {}).values():
                if id(b) not in seen:
                    seen.add(id(b))
                    arrays.append(b)
        return arrays

    def average_buffers(self) -> None:
        """Collective: every layer's buffers become their mean over the ranks, in place.

        Each rank updates BatchNorm's running statistics from its own shards; fit calls this at the
        end of every epoch, before validation, callbacks and checkpoints read the model (and
        end_fit after a run stopped mid-epoch), so every rank holds the same model. One Allreduce
        (SUM) per dtype, then a division by the number of ranks: the same floats on every rank."""
        if self.size == 1:
            return
        arrays = self._buffers()
        for dtype in dict.fromkeys(b.dtype for b in arrays):
            same = [b for b in arrays if b.dtype == dtype]
            flat = np.concatenate([b.reshape(-1) for b in same])
            self.comm.Allreduce(self._mpi.IN_PLACE, flat, op=self._mpi.SUM)
            flat /= self.size
            offset = 0
            for b in same:
                b.reshape(-1)[...] = flat[offset:offset + b.size]  # buffers are updated in place
                offset += b.size

    def _build_buffer(self) -> None:
        """Point every layer's grads at views into one contiguous buffer (values kept)."""
        layers, dtype = self.net.layers, self.net.dtype
        for i, layer in enumerate(layers):
            for name, g in layer.grads.items():
                if g.dtype != dtype:
                    raise ConfigError(f"layer {i} ({layer!r}) has gradient {name!r} of dtype {g.dtype};"
                                      f" distributed training needs every gradient in the network's {dtype}")
        self.layout = gradient_layout(layers)
        total = self.layout[-1][3] if self.layout else 0
        self.buffer = np.zeros(total + 3, dtype=dtype)  # + the loss, non-finite and stop counts
        self._views = []
        for i, name, start, stop in self.layout:
            g = layers[i].grads[name]
            view = self.buffer[start:stop].reshape(g.shape)
            view[...] = g
            layers[i].grads[name] = view  # grads may be rebound; params never are
            self._views.append((layers[i].grads, name, view))
        cap = max(1, int(self.bucket_cap_mb * 2**20) // dtype.itemsize)
        self.buckets = bucket_bounds(self.layout, cap, total + 3)
        self._bucket_views = [self.buffer[a:b] for a, b in self.buckets]
        self._slots = self.buffer[total:]

    def setup(self, n: int, loss, metrics: list, callbacks, verbose: int, print_every, rng):
        """Collective, after fit's checks: rank 0's weights and shuffle seed on every rank, the
        gradient buffer, and what this rank's loop uses: (loss, metrics, callbacks, verbose,
        print_every), with printing, progress and file-writing callbacks on rank 0 alone."""
        self._failed, self._collective_error, self._stop = False, None, None
        shard_metrics = [_ShardMetric(m) for m in metrics]
        self._build_buffer()
        self.broadcast_parameters()
        rng.bit_generator.state = self.comm.bcast(rng.bit_generator.state if self.is_root else None, root=0)
        shard_loss = copy.copy(loss)
        self._scale = shard_loss._scale = _ShardScale(loss.reduction)
        self._mean, self._n, self._batch, self._loss_sum = loss.reduction == "mean", n, 0, 0.0
        if self.is_root:
            return shard_loss, shard_metrics, list(callbacks), verbose, print_every
        self._stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # closed by end_fit
        return shard_loss, shard_metrics, [cb for cb in callbacks if not _root_only(cb)], 0, None

    def agreed_stop(self, stop) -> _AgreedStop:
        """Wrap fit's GracefulStop so that a signal on any rank stops every rank after the same batch."""
        self._stop = _AgreedStop(stop)
        return self._stop

    # --- each step ------------------------------------------------------------------------------
    def shard(self, xb: np.ndarray, yb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """This rank's rows of the global batch (views); sets the loss scale for the batch."""
        self._batch = len(xb)
        lo, hi = shard_bounds(self._batch, self.size, self.rank)
        self._scale.global_rows, self._scale.local_rows = self._batch, hi - lo
        return xb[lo:hi], yb[lo:hi]

    def wrap(self, step) -> _ParallelStep:
        """``step`` on this rank's rows of each global batch, with one Allreduce of the gradients
        (and losses) between its backward and its update: the step fit takes with distributed."""
        return _ParallelStep(step, self)

    def reduce(self, value: float) -> float:
        """Collective: add the ranks' gradients (and losses) in place; return the global batch loss.

        Raises NonFiniteLoss on every rank when the loss was not finite on any of them."""
        finite = math.isfinite(value)
        slots = self._slots
        slots[0], slots[1] = (value, 0.0) if finite else (0.0, 1.0)
        stop = self._stop
        slots[2] = 1.0 if stop is not None and stop.local.requested else 0.0
        for grads, name, view in self._views:
            if grads[name] is not view:  # a layer rebound its gradient: copy it in, point back
                view[...] = grads[name]
                grads[name] = view
        in_place, op = self._mpi.IN_PLACE, self._mpi.SUM
        for part in self._bucket_views:
            self.comm.Allreduce(in_place, part, op=op)
        self._scale.global_rows = self._scale.local_rows = 1
        if slots[1] != 0:
            self._collective_error = NonFiniteLoss(value if not finite else "non-finite",
                                                   f" (on {int(slots[1])} of {self.size} ranks)")
            raise self._collective_error
        if slots[2] and stop.requested is None:
            stop.requested = stop.local.requested or "a signal to another rank"
        self._loss_sum += value * self._batch if self._mean else value
        return float(slots[0])

    # --- each epoch -----------------------------------------------------------------------------
    def combine_logs(self, logs: dict, metrics: list) -> dict:
        """Collective: the epoch's logs from every rank's loss sums and metric counts (added in rank
        order, so the same floats on every rank); validation logs are rank 0's."""
        everyone = self.comm.allgather((self._loss_sum, [m.state() for m in metrics],
                                        logs if self.is_root else None))
        combined = dict(everyone[0][2])
        total = 0.0
        for loss_sum, _, _ in everyone:
            total += loss_sum
        combined["loss"] = total / self._n if self._mean else total
        for i, m in enumerate(metrics):
            m.set_state([functools.reduce(operator.add, values)
                         for values in zip(*(states[i] for _, states, _ in everyone), strict=True)])
            combined[m.name] = m.result()
        self._loss_sum = 0.0
        return combined

    def stop_together(self) -> None:
        """Collective: stop on every rank when a callback (or a signal) asked on any of them."""
        stop = self._stop
        signal = stop.local.requested if stop is not None else None
        everyone = self.comm.allgather((bool(self.net.stop_training), signal))
        self.net.stop_training = any(asked for asked, _ in everyone)
        signals = [s for _, s in everyone if s]
        if stop is not None and signals and stop.requested is None:
            stop.requested = signal or f"{signals[0]} (to another rank)"

    # --- the end --------------------------------------------------------------------------------
    def fail(self, exc: BaseException) -> None:
        """A rank raised inside fit. An error raised on every rank at once (a non-finite loss) goes
        on as usual; any other, with several ranks, aborts the job with this rank's message (the
        others would wait for it forever)."""
        self._failed = True
        if self.size == 1 or self._collective_error is not None:  # (every rank raises it)
            return
        self._restore_stdout()
        text = "".join(traceback.format_exception(exc))
        sys.stderr.write(f"chainrule.distributed: rank {self.rank} of {self.size} failed; aborting the job\n{text}")
        sys.stderr.flush()
        self.comm.Abort(1)

    def batch_end(self, position, stop_requested) -> None:
        """(fit's hook after each batch: nothing to agree on; reduce carried the stop signal)"""

    def epoch_end(self, position) -> None:
        """fit's hook after each epoch's callbacks: the ranks agree on stopping."""
        self.stop_together()

    def end(self) -> None:
        """fit's hook when it returns or raises."""
        self.end_fit()

    def end_fit(self) -> None:
        """Put stdout back; after a fit that ended normally, average the buffers if a stop in the
        middle of an epoch left them apart, and warn if the ranks' weights differ."""
        self._restore_stdout()
        if self._failed:
            return
        if not self._agree(b"".join(b.tobytes() for b in self._buffers())):
            self.average_buffers()
        if not self.in_sync():
            warnings.warn("the ranks hold different parameters after distributed fit: the MPI library's"
                          " Allreduce did not give every rank the same sums", RuntimeWarning, stacklevel=3)

    def in_sync(self) -> bool:
        """Collective: whether every rank holds bit-identical parameters."""
        return self._agree(b"".join(p.tobytes() for p in self.net.params.values()))

    def _agree(self, data: bytes) -> bool:
        """Collective: whether ``data`` has the same CRC-32 on every rank."""
        return len(set(self.comm.allgather(zlib.crc32(data)))) == 1

    def _restore_stdout(self) -> None:
        if self._stdout is not None:
            sys.stdout.close()
            sys.stdout, self._stdout = self._stdout, None


class _ParallelStep:
    """A training step on this rank's rows of each batch, the ranks' gradients summed by one
    Allreduce between backward and update (and the regularizer added once, after the sum)."""

    def __init__(self, inner, dp: DataParallel) -> None:
        self.inner, self.dp = inner, dp

    def __call__(self, xb: np.ndarray, yb: np.ndarray):
        rows = len(xb)
        xb, yb = self.dp.shard(xb, yb)
        output, value, delta = self.inner.forward(xb, yb)
        self.inner.backward(yb, delta)
        value = self.dp.reduce(value)  # (a non-finite loss on any rank stops every rank here)
        value += self.inner.regularize(rows)
        self.inner.update()
        return output, value, yb

    def epoch_logs(self) -> dict[str, float]:
        return self.inner.epoch_logs()
