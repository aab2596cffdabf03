"""Layers' work arrays kept between training steps (Layer._scratch): never visible outside."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import chainrule as cr
from chainrule import kernels


def _layers():
    return [
        (cr.Conv2D(2, 3, 3, seed=0), (4, 2, 7, 7)),
        (cr.Conv2D(2, 3, 3, padding=1, seed=0), (4, 2, 7, 7)),
        (cr.Conv1D(2, 3, 3, seed=0), (4, 2, 9)),
        (cr.GELU(), (4, 5, 6)),
        (cr.MultiHeadAttention(8, 2, seed=0), (3, 5, 8)),
        (cr.LayerNorm(6), (4, 5, 6)),
    ]


@pytest.mark.parametrize("layer, shape", _layers(), ids=lambda v: repr(v) if isinstance(v, cr.Layer) else "")
def test_outputs_and_input_gradients_are_not_reused_by_the_next_step(layer, shape):
    """What a layer returns (its output, dL/dx) stays as it was after the next training step."""
    layer.astype(np.float64)
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=shape), rng.normal(size=shape)
    y1 = layer.forward(x1, training=True)
    g1 = layer.backward(np.ones_like(y1))
    kept_y, kept_g = y1.copy(), g1.copy()
    y2 = layer.forward(x2, training=True)
    g2 = layer.backward(2 * np.ones_like(y2))
    assert np.array_equal(y1, kept_y) and np.array_equal(g1, kept_g)
    assert not np.shares_memory(y1, y2) and not np.shares_memory(g1, g2)
    # and the second step is the one a fresh layer computes
    fresh = copy.deepcopy(layer)
    assert not getattr(fresh, "_workspace", None)
    np.testing.assert_array_equal(fresh.forward(x2, training=True), y2)
    np.testing.assert_array_equal(fresh.backward(2 * np.ones_like(y2)), g2)


@pytest.fixture
def backend():
    saved = dict(kernels._settings)
    yield kernels.use
    kernels._settings.update(saved)


def test_work_arrays_are_kept_in_training_only_and_never_pickled(backend):
    backend("numpy")  # the column path: the batch's columns
    conv = cr.Conv2D(1, 2, 3, seed=0).astype(np.float64)
    x = np.random.default_rng(0).normal(size=(2, 1, 6, 6))
    conv.forward(x)  # evaluation: nothing kept
    assert not getattr(conv, "_workspace", None)
    conv.forward(x, training=True)
    first = conv._workspace["cols"]
    conv.forward(x, training=True)
    assert conv._workspace["cols"] is first  # the same array, step after step
    conv.forward(x[:1], training=True)  # another batch size: another array
    assert conv._workspace["cols"] is not first
    assert "_workspace" not in pickle.loads(pickle.dumps(conv)).__dict__
    assert "_workspace" not in copy.copy(conv).__dict__


def test_the_compiled_paths_keep_their_work_arrays_in_training_only(backend):
    """The sample-by-sample convolution and the 2×2 pool (numba): nothing kept in evaluation, the
    same arrays step after step, none in a pickle or a copy."""
    pytest.importorskip("numba")
    backend("numba")
    rng = np.random.default_rng(0)
    for layer, x in ((cr.Conv2D(1, 2, 3, seed=0).astype(np.float64), rng.normal(size=(2, 1, 6, 6))),
                     (cr.MaxPool2D(2), rng.normal(size=(2, 3, 6, 6)))):
        layer.forward(x)
        assert not getattr(layer, "_workspace", None)
        layer.backward(np.ones_like(layer.forward(x, training=True)))
        first = dict(layer._workspace)
        assert first
        layer.backward(np.ones_like(layer.forward(x, training=True)))
        assert all(layer._workspace[key] is array for key, array in first.items())
        assert "_workspace" not in pickle.loads(pickle.dumps(layer)).__dict__
        assert "_workspace" not in copy.copy(layer).__dict__
