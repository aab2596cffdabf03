"""Threads: the setting, the pool, and layers that give the same results on any thread count.

The layers split a batch into runs of samples only above a size threshold; these tests set the
thresholds to 0 so that the small odd batches here (1, 3, 65 samples) are split too, and compare
every output and gradient with the same layer run on one thread.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import chainrule as cr
from chainrule import _threads
from chainrule.layers import conv, pooling

BATCHES = (1, 3, 65)


@pytest.fixture(autouse=True)
def split_everything(monkeypatch):
    """Split every batch (thresholds 0); restore the thread setting afterwards."""
    monkeypatch.setattr(conv, "CONV_MIN_WORK", 0)
    monkeypatch.setattr(pooling, "POOL_MIN_WORK", 0)
    monkeypatch.delenv(_threads.THREADS_ENV, raising=False)
    yield
    _threads._state["threads"] = None  # (read again from the environment on next use)


def run_layer(layer, x, delta, threads, first_layer=False):
    """forward (training) and backward on ``threads`` threads: output, dL/dx and the grads."""
    cr.set_num_threads(threads)
    out = layer.forward(x, training=True)
    if first_layer:
        layer.backward_params(delta)
        grad_x = None
    else:
        grad_x = layer.backward(delta)
    return out.copy(), None if grad_x is None else grad_x.copy(), \
        {k: g.copy() for k, g in layer.grads.items()}


def assert_same(a, b, exact: bool):
    if a is None:
        assert b is None
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    if exact:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(a).max())


def compare_threads(make, x_shape, seed, exact_out=True, exact_grads=True, first_layer=False,
                    thread_counts=(2, 3)):
    rng = np.random.default_rng(seed)
    layer = make()
    x = rng.standard_normal(x_shape)
    out = layer.forward(x)
    delta = rng.standard_normal(out.shape)
    reference = run_layer(layer, x, delta, 1, first_layer)
    for threads in thread_counts:
        got = run_layer(layer, x, delta, threads, first_layer)
        assert_same(reference[0], got[0], exact_out)
        assert_same(reference[1], got[1], exact_out)
        for k in reference[2]:
            assert_same(reference[2][k], got[2][k], exact_grads if k == "weight" else True)


def conv2d(*args, **kwargs):
    return lambda: cr.Conv2D(*args, seed=0, dtype=np.float64, **kwargs)


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("first_layer", [False, True])
def test_conv2d_per_sample_products_are_bit_identical(n, first_layer):
    # C_out·C·kh·kw = 6·2·9 = 108 weights: every product runs per sample, so each sample's
    # numbers come from the same calls whichever run it is in, and dL/dW is summed in order
    compare_threads(conv2d(2, 6, 3, padding=1), (n, 2, 7, 6), seed=n, first_layer=first_layer)


@pytest.mark.parametrize("n", BATCHES)
def test_conv2d_dilated_unpadded_bit_identical(n):
    compare_threads(conv2d(3, 4, (2, 3), dilation=(2, 1)), (n, 3, 8, 9), seed=10 + n)


@pytest.mark.parametrize("n", BATCHES)
def test_conv1d_same_padding_bit_identical(n):
    compare_threads(lambda: cr.Conv1D(3, 5, 4, padding="same", seed=0, dtype=np.float64), (n, 3, 11),
                    seed=20 + n)


@pytest.mark.parametrize("n", BATCHES)
def test_conv2d_one_product_paths_agree(n):
    # 64·16·3·3 = 9216 weights: the forward and dL/dx run one product over the run's columns and
    # dL/dW one product per run of its rows; each number is the same sum, which the BLAS may
    # order differently for another matrix shape: equal to 1e-12 relative in float64
    compare_threads(conv2d(16, 64, 3, padding=1), (n, 16, 5, 5), seed=30 + n,
                    exact_out=False, exact_grads=False)


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("args", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                  dict(kernel_size=3, stride=1), dict(kernel_size=2, stride=3, padding=1)])
def test_maxpool_bit_identical(n, args):
    # no ties: each window's maximum is unique, as with real activations
    compare_threads(lambda: cr.MaxPool2D(**args), (n, 3, 9, 8), seed=40 + n)


@pytest.mark.parametrize("n", BATCHES)
def test_maxpool_ties_route_to_the_same_first_maximum(n):
    rng = np.random.default_rng(n)
    layer = cr.MaxPool2D(2)
    x = rng.integers(0, 2, size=(n, 2, 6, 6)).astype(np.float64)  # many ties in each window
    delta = rng.standard_normal((n, 2, 3, 3))
    reference = run_layer(layer, x, delta, 1)
    got = run_layer(layer, x, delta, 2)
    np.testing.assert_array_equal(reference[1], got[1])
    # each window sends its gradient to exactly one input: the first maximum in row-major order
    for i in range(n):
        for c in range(2):
            for a in range(3):
                for b in range(3):
                    window = x[i, c, 2 * a:2 * a + 2, 2 * b:2 * b + 2].ravel()
                    first = int(np.argmax(window))
                    expected = np.zeros(4)
                    expected[first] = delta[i, c, a, b]
                    np.testing.assert_array_equal(got[1][i, c, 2 * a:2 * a + 2, 2 * b:2 * b + 2].ravel(),
                                                  expected)


def test_float32_stays_float32_on_threads():
    rng = np.random.default_rng(0)
    layer = cr.Conv2D(2, 3, 3, seed=0)
    x = rng.standard_normal((5, 2, 6, 6)).astype(np.float32)
    cr.set_num_threads(2)
    out = layer.forward(x, training=True)
    assert out.dtype == np.float32
    assert layer.backward(np.ones_like(out)).dtype == np.float32


def test_gradcheck_passes_on_threads():
    # the pool reads the input directly, whose values are 0.01 apart (a permutation): the
    # finite differences' steps of 1e-3 never change a window's maximum
    rng = np.random.default_rng(3)
    net = cr.Sequential(cr.MaxPool2D(2), cr.Conv2D(2, 3, 3, padding=1, seed=1), cr.Tanh(),
                        cr.Conv2D(3, 2, 2, seed=2), cr.Flatten(), cr.Dense(18, 2, seed=3), dtype=np.float64)
    X = rng.permutation(3 * 2 * 8 * 8).reshape(3, 2, 8, 8) * 0.01
    y = rng.standard_normal((3, 2))
    cr.set_num_threads(2)
    report = cr.gradcheck(net, cr.MSE(), X, y, check_input=True, training=True)
    assert report.ok, f"\n{report}"
    assert {c.name for c in report.checks} == {"1.weight", "1.bias", "3.weight", "3.bias", "5.weight",
                                               "5.bias", "input"}


# --- the setting -------------------------------------------------------------------------------
def test_default_is_one_thread():
    assert cr.set_num_threads(None) == 1
    assert cr.get_num_threads() == 1


def test_auto_is_the_cpus_this_process_may_use(monkeypatch):
    assert cr.set_num_threads("auto") == len(os.sched_getaffinity(0))
    monkeypatch.setenv("CHAINRULE_NUM_THREADS", "auto")
    assert cr.set_num_threads(None) == len(os.sched_getaffinity(0))


def test_set_num_threads_returns_and_keeps_the_count():
    assert cr.set_num_threads(3) == 3
    assert cr.get_num_threads() == 3


@pytest.mark.parametrize("bad", [0, -1, 1.5, 2.0, True, "2", "Auto", [2], float("nan")])
def test_set_num_threads_refuses_bad_values(bad):
    with pytest.raises(cr.ConfigError, match=r"chainrule\.set_num_threads n"):
        cr.set_num_threads(bad)


def test_environment_variable_sets_the_count(monkeypatch):
    monkeypatch.setenv("CHAINRULE_NUM_THREADS", " 3 ")
    assert cr.set_num_threads(None) == 3


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5", "cpus"])
def test_environment_variable_refuses_bad_values(monkeypatch, bad):
    monkeypatch.setenv("CHAINRULE_NUM_THREADS", bad)
    with pytest.raises(cr.ConfigError, match="CHAINRULE_NUM_THREADS"):
        cr.set_num_threads(None)


def test_set_num_threads_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("CHAINRULE_NUM_THREADS", "3")
    assert cr.set_num_threads(1) == 1
    assert cr.get_num_threads() == 1


def test_one_thread_creates_no_pool(monkeypatch):
    monkeypatch.setattr(_threads, "_state", {"threads": None, "pool": None, "pool_threads": 0})
    cr.set_num_threads(1)
    rng = np.random.default_rng(0)
    net = cr.Sequential(cr.Conv2D(1, 2, 3), cr.MaxPool2D(2), cr.Flatten(), cr.Dense(8, 1))
    net.fit(rng.standard_normal((65, 1, 6, 6)), rng.standard_normal((65, 1)), loss="mse", epochs=1,
            batch_size=65, verbose=0)
    assert _threads._state["pool"] is None
    cr.set_num_threads(2)
    net.predict(rng.standard_normal((65, 1, 6, 6)))
    assert _threads._state["pool"] is not None  # (the same call on two threads makes one)


# --- the split -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 7, 65])
@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_split_covers_the_range_once_in_order(n, parts):
    runs = _threads.split(n, parts)
    assert runs[0][0] == 0 and runs[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(runs, runs[1:], strict=False))
    sizes = [stop - start for start, stop in runs]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    assert len(runs) == min(parts, n)


def test_parallel_runs_each_part_once_on_separate_threads():
    cr.set_num_threads(3)
    seen, lock, local = [], threading.Lock(), threading.local()
    barrier = threading.Barrier(3, timeout=10)  # each thread's first run waits for the others'

    def part(start, stop):
        if not getattr(local, "met", False):
            local.met = True
            barrier.wait()  # (so no thread can take every run before the others start)
        with lock:
            seen.append((start, stop, threading.get_ident()))

    _threads.parallel(part, 65, work=1, min_work=0)
    assert sorted(s[:2] for s in seen) == _threads.split(65, 3 * _threads.RUNS_PER_THREAD)
    assert len({s[2] for s in seen}) == 3


def test_the_calling_thread_takes_the_runs_of_a_busy_pool():
    cr.set_num_threads(2)
    release = threading.Event()
    _threads._pool(2).submit(release.wait, 10)  # the pool's only thread is busy
    try:
        seen = []
        _threads.parallel(lambda a, b: seen.append((a, b, threading.get_ident())), 9, work=1, min_work=0)
        assert [s[:2] for s in seen] == _threads.split(9, 2 * _threads.RUNS_PER_THREAD)
        assert {s[2] for s in seen} == {threading.get_ident()}
    finally:
        release.set()


def test_parallel_below_the_threshold_runs_here_at_once():
    cr.set_num_threads(2)
    seen = []
    _threads.parallel(lambda a, b: seen.append((a, b, threading.get_ident())), 10, work=5, min_work=6)
    assert seen == [(0, 10, threading.get_ident())]


def test_parallel_inside_a_part_does_not_split_again():
    cr.set_num_threads(2)
    inner = []

    def part(start, stop):
        _threads.parallel(lambda a, b: inner.append((a, b)), stop - start, work=1, min_work=0)

    _threads.parallel(part, 8, work=1, min_work=0)
    runs = _threads.split(8, 2 * _threads.RUNS_PER_THREAD)
    assert sorted(inner) == sorted((0, stop - start) for start, stop in runs)


def test_parallel_raises_the_error_of_a_part():
    cr.set_num_threads(2)

    def part(start, stop):
        if start > 0:
            raise ValueError(f"bad run {start}")

    with pytest.raises(ValueError, match="bad run"):
        _threads.parallel(part, 4, work=1, min_work=0)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("make", [lambda: cr.MaxPool2D(2), lambda: cr.MaxPool2D(3, 1, 1),
                                  lambda: cr.Conv2D(2, 3, 3, padding=1, seed=0)])
def test_a_batch_of_no_samples_keeps_its_shapes(threads, make):
    cr.set_num_threads(threads)
    layer = make()
    out = layer.forward(np.zeros((0, 2, 6, 6)), training=True)
    assert out.shape[0] == 0
    assert layer.backward(np.zeros_like(out)).shape == (0, 2, 6, 6)
