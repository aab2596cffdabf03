"""Threads: the layers that split a batch over the CPU's cores.

NumPy releases the GIL inside its BLAS calls and most ufunc loops, so Python threads that each
work on their own part of a batch run on separate cores. A few layers (Conv2D and Conv1D with
stride 1, MaxPool2D) split their large batches into contiguous runs of samples and
run each run on its own thread; everything else (and every small batch) runs on the calling
thread alone. See docs/speed.md ("Threads") for what is split and the measured figures.

The thread count:

- ``CHAINRULE_NUM_THREADS=n`` in the environment (read on first use), ``auto`` for the number of
  CPUs this process may run on (``os.sched_getaffinity``); without it, 1;
- ``chainrule.set_num_threads(n)`` from Python, n an int or "auto" (overrides the variable;
  ``None`` goes back to it);
- 1: no thread pool is created and every layer runs on the calling thread, as before threads.

The default is 1 because on the 2-core machine where this was measured the split did not pay
inside a whole training step: with NumPy's OpenBLAS running its own threads (its default) two
threads made the LeNet step 6-16% slower (OpenBLAS's threads keep spinning for a while after
each multi-threaded product, a Dense layer's, on the core this pool's thread needs); with
``OPENBLAS_NUM_THREADS=1`` between 25% slower and 20% faster from run to run, as other jobs
loaded the machine (docs/speed.md, "Threads").

Results do not depend on the thread count: a sample's values are computed by the same NumPy
calls whichever run it falls in, and sums over samples (weight gradients) are made after the
runs join, on the calling thread, as with one thread. (Where a layer runs one matrix product
over a run's columns, each entry is the same sum computed by a product of another shape, which
a BLAS may in principle order differently; tests/test_threads.py checks 1e-12 there.)
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ._checks import check_positive_int
from .errors import ConfigError

THREADS_ENV = "CHAINRULE_NUM_THREADS"

_state: dict = {"threads": None, "pool": None, "pool_threads": 0}
_lock = threading.Lock()
_local = threading.local()  # .inside: this thread is running a part already (no nested split)


def available_cpus() -> int:
    """The number of CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # (no affinity mask on this platform)
        return max(1, os.cpu_count() or 1)


def _from_env() -> int:
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return 1
    if raw.lower() == "auto":
        return available_cpus()
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{THREADS_ENV} must be an integer >= 1 or 'auto', got {raw!r}") from None
    check_positive_int(value, THREADS_ENV)
    return value


def get_num_threads() -> int:
    """The number of threads a layer may split a batch over (1: the calling thread only)."""
    threads = _state["threads"]
    if threads is None:
        threads = _state["threads"] = _from_env()
    return threads


def set_num_threads(n: int | str | None) -> int:
    """Set how many threads a layer may split a large batch over; return the count in force.

    Parameters
    ----------
    n : int, "auto" or None
        1 runs every layer on the calling thread (no thread pool); "auto" is the number of
        CPUs this process may run on. None goes back to ``CHAINRULE_NUM_THREADS`` or, without
        it, 1.

    >>> import chainrule as cr
    >>> cr.set_num_threads(1)
    1
    """
    if n is None:
        _state["threads"] = None
        return get_num_threads()
    if isinstance(n, str):
        if n != "auto":
            raise ConfigError(f"chainrule.set_num_threads n must be an integer >= 1 or 'auto', got {n!r}")
        n = available_cpus()
    check_positive_int(n, "chainrule.set_num_threads n")
    _state["threads"] = int(n)
    return int(n)


def _pool(threads: int) -> ThreadPoolExecutor:
    """The pool of threads − 1 workers (the calling thread runs one part itself)."""
    with _lock:
        pool = _state["pool"]
        if pool is None or _state["pool_threads"] != threads:
            if pool is not None:
                pool.shutdown(wait=False)
            pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="chainrule")
            _state["pool"], _state["pool_threads"] = pool, threads
        return pool


def _forget_pool() -> None:
    """After a fork the child has none of the parent's threads: it starts a pool of its own."""
    global _lock
    _lock = threading.Lock()
    _state["pool"], _state["pool_threads"] = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """range(n) as at most ``parts`` contiguous (start, stop) runs, the sizes differing by at most 1."""
    parts = max(1, min(parts, n))
    size, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + size + (i < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


#: runs per thread. The calling thread takes every run no other thread has started (a pool
#: thread whose core is busy with another process starts late); more runs than threads would
#: balance better but cost more calls: on LeNet's layers (batch 64, float32, 2 cores, in one
#: process taking turns) 2 and 4 runs per thread were 5-40% slower than 1
RUNS_PER_THREAD = 1


def parallel(fn, n: int, work: int, min_work: int) -> None:
    """Call ``fn(start, stop)`` on contiguous runs of range(n) that cover it once, on threads.

    ``fn`` must write each sample's results where no other run writes. The batch is split
    only when more than one thread is set, ``work`` (the caller's measure of the call's size)
    is at least ``min_work`` (below it the hand-over to a thread costs more than it saves) and
    this is not already a thread's part; otherwise ``fn(0, n)`` runs here. The runs are fixed by
    n and the thread count (``split(n, threads · RUNS_PER_THREAD)``); the calling thread and the
    pool's threads take them in turn, first come first served, so a run is never waiting for a
    thread that has not started. Every run has finished when this returns; the first error of
    a run is raised (the runs not yet taken are then skipped).
    """
    threads = get_num_threads()
    if threads == 1 or n < 2 or work < min_work or getattr(_local, "inside", False):
        fn(0, n)
        return
    runs = split(n, threads * RUNS_PER_THREAD)
    turn = threading.Condition()
    taken_done = [0, 0]  # runs taken, runs finished
    errors: list[BaseException] = []

    def take_runs() -> None:
        _local.inside = True
        try:
            while True:
                with turn:
                    i = taken_done[0]
                    if i == len(runs) or errors:
                        return
                    taken_done[0] = i + 1
                try:
                    fn(*runs[i])
                except BaseException as error:  # (handed to the calling thread)
                    with turn:
                        errors.append(error)
                with turn:
                    taken_done[1] += 1
                    turn.notify_all()
        finally:
            _local.inside = False

    pool = _pool(threads)
    for _ in range(threads - 1):
        pool.submit(take_runs)
    take_runs()
    with turn:  # no run is taken after this thread stopped taking: wait for those under way
        turn.wait_for(lambda: taken_done[1] == taken_done[0])
    if errors:
        raise errors[0]
