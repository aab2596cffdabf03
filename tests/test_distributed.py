"""Pieces of chainrule.distributed that need no MPI: how batches are cut into shards, the gradient
buffer's layout and buckets, the loss scaling on a shard, and the errors before anything starts.
The training itself is tested through mpiexec in test_distributed_mpi.py.
"""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule.distributed import (
    MPIDependencyError,
    _ShardMetric,
    _ShardScale,
    bucket_bounds,
    gradient_layout,
    shard_bounds,
)


@pytest.mark.parametrize(("n", "size"), [(32, 2), (10, 3), (1, 3), (2, 3), (7, 7), (5, 1)])
def test_shards_are_contiguous_cover_the_batch_once_and_differ_by_at_most_one_row(n, size):
    bounds = [shard_bounds(n, size, r) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_global_batch_10_on_3_ranks_gives_shards_of_4_3_3():
    assert [shard_bounds(10, 3, r) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]


def test_the_gradient_layout_runs_last_layer_first_without_gaps():
    net = cr.mlp([5, 4, 3, 2], seed=0)  # Dense layers at 0, 2, 4
    layout = gradient_layout(net.layers)
    assert [(i, name) for i, name, _, _ in layout] == [(4, "weight"), (4, "bias"), (2, "weight"), (2, "bias"),
                                                       (0, "weight"), (0, "bias")]
    assert layout[0][2] == 0 and all(a[3] == b[2] for a, b in zip(layout, layout[1:], strict=False))
    assert layout[-1][3] == net.n_params


def test_buckets_hold_whole_parameters_and_split_only_above_the_cap():
    layout = [(4, "weight", 0, 6), (4, "bias", 6, 8), (2, "weight", 8, 20), (2, "bias", 20, 24)]
    assert bucket_bounds(layout, cap_elements=26, total=26) == [(0, 26)]
    assert bucket_bounds(layout, cap_elements=10, total=26) == [(0, 8), (8, 20), (20, 26)]
    assert bucket_bounds(layout, cap_elements=1, total=26) == [(0, 6), (6, 8), (8, 20), (20, 26)]


@pytest.mark.parametrize("loss", [cr.CrossEntropy(), cr.MSE(), cr.SSE(), cr.BinaryCrossEntropy(from_logits=True),
                                  cr.MSE(reduction="sum"), cr.CrossEntropy(reduction="sum")])
def test_a_shards_loss_delta_is_bit_for_bit_the_rows_of_the_whole_batchs_delta(loss):
    rng = np.random.default_rng(0)
    output = rng.normal(size=(10, 3)).astype(np.float32)
    target = (rng.integers(0, 3, 10) if isinstance(loss, cr.CrossEntropy)
              else rng.uniform(size=(10, 3)).astype(np.float32))
    whole_value, whole_delta = loss._value_and_grad(output.copy(), target)
    shard_loss = copy.copy(loss)
    shard_loss._scale = scale = _ShardScale(loss.reduction)
    values = []
    for lo, hi in [shard_bounds(10, 3, r) for r in range(3)]:
        scale.global_rows, scale.local_rows = 10, hi - lo
        value, delta = shard_loss._value_and_grad(output[lo:hi].copy(), target[lo:hi])
        assert np.array_equal(delta, whole_delta[lo:hi])
        values.append(value)
    assert sum(values) == pytest.approx(whole_value, rel=1e-6)


def test_an_empty_shard_has_zero_loss_and_an_empty_delta():
    shard_loss = copy.copy(cr.CrossEntropy())
    shard_loss._scale = scale = _ShardScale("mean")
    scale.global_rows, scale.local_rows = 1, 0
    value, delta = shard_loss._value_and_grad(np.zeros((0, 4), np.float32), np.zeros(0, np.intp))
    assert value == 0.0 and delta.shape == (0, 4)


def test_shard_metrics_add_up_to_the_whole_batchs_metric():
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.normal(size=(9, 2)), rng.normal(size=(9, 2))
    for name in ("accuracy", "mse", "mae", "r2"):
        truth = y_true.argmax(axis=1) if name == "accuracy" else y_true
        whole = cr.metrics.get_metric(name)
        whole.update(truth, y_pred)
        shards = [_ShardMetric(cr.metrics.get_metric(name)) for _ in range(3)]
        for m, (lo, hi) in zip(shards, [(0, 4), (4, 9), (9, 9)], strict=True):
            m.reset()
            m.update(truth[lo:hi], y_pred[lo:hi])  # the empty third shard is skipped
        states = [m.state() for m in shards]
        shards[0].set_state([a + b + c for a, b, c in zip(*states, strict=True)])
        assert shards[0].result() == pytest.approx(whole.result(), rel=1e-12), name


def test_a_metric_without_known_counts_is_refused_by_name():
    class Median(cr.metrics.Metric):
        name = "median"

    with pytest.raises(cr.ConfigError, match="'median'.*state_names"):
        _ShardMetric(Median())


def test_without_mpi4py_distributed_fit_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    net = cr.mlp([2, 3, 1], seed=0)
    with pytest.raises(MPIDependencyError, match=r"pip install 'chainrule\[mpi\]'"):
        net.fit(np.zeros((4, 2)), np.zeros((4, 1)), verbose=0, distributed=True)
    with pytest.raises(cr.ChainruleError):
        cr.DataParallel(net)


def test_distributed_must_be_a_bool_or_a_data_parallel():
    with pytest.raises(cr.ConfigError, match="distributed must be True, False or a DataParallel"):
        cr.DataParallel.for_fit(cr.mlp([2, 1]), "yes")
