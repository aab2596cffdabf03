"""Numerical stability at extreme inputs (±1e4): no warning, no NaN, and the right limits.

Each check runs with every warning turned into an error and NumPy's overflow, invalid-value
and divide-by-zero conditions raising, in float32 and float64, for the forward and the
backward pass. Underflow is left as NumPy's default leaves it (ignored): e^(−1e4) rounding
to 0 is the correct limit, not a loss of accuracy.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import chainrule as cr

DTYPES = [np.float32, np.float64]
BIG = 1e4
Z = np.array([[-BIG, -100.0, -1.0, 0.0, 1.0, 100.0, BIG]])


@pytest.fixture(autouse=True)
def strict_floats():
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        warnings.simplefilter("error")
        yield


def forward_backward(layer, z, dtype):
    z = np.asarray(z, dtype=dtype)
    out = layer.forward(z)
    grad = layer.backward(np.ones_like(out))
    assert out.dtype == dtype and grad.dtype == dtype
    assert np.isfinite(out).all() and np.isfinite(grad).all()
    return out, grad


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_saturates_to_0_and_1_without_overflow(dtype):
    out, grad = forward_backward(cr.Sigmoid(), Z, dtype)
    assert out[0, 0] == 0.0 and out[0, -1] == 1.0
    assert out[0, 3] == 0.5
    assert np.all(np.diff(out[0]) >= 0)
    assert grad[0, 0] == 0.0 and grad[0, -1] == 0.0 and grad[0, 3] == 0.25


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_saturates_to_minus_1_and_1(dtype):
    out, grad = forward_backward(cr.Tanh(), Z, dtype)
    assert out[0, 0] == -1.0 and out[0, -1] == 1.0 and out[0, 3] == 0.0
    assert grad[0, 0] == 0.0 and grad[0, -1] == 0.0 and grad[0, 3] == 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus_is_0_far_left_and_the_identity_far_right(dtype):
    out, grad = forward_backward(cr.Softplus(), Z, dtype)
    assert out[0, 0] == 0.0
    assert out[0, -1] == np.asarray(BIG, dtype)
    assert out[0, 5] == pytest.approx(100.0)
    assert out[0, 3] == pytest.approx(np.log(2.0), rel=1e-6)
    assert grad[0, 0] == 0.0 and grad[0, -1] == 1.0 and grad[0, 3] == 0.5
    assert np.all(out >= 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_huge_logits_is_one_hot_and_sums_to_one(dtype):
    layer = cr.Softmax()
    z = np.array([[BIG, 0.0, -BIG], [-BIG, -BIG, BIG], [BIG, BIG, BIG], [-BIG, -BIG, -BIG]])
    out, grad = forward_backward(layer, z, dtype)
    np.testing.assert_array_equal(out[0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(out[1], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(out[2], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(out[3], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(grad, 0.0, atol=1e-6)  # a ones gradient has no softmax component


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer", [cr.ELU(), cr.LeakyReLU(0.1), cr.ReLU(), cr.Identity()],
                         ids=["ELU", "LeakyReLU", "ReLU", "Identity"])
def test_piecewise_activations_stay_finite_at_extremes(layer, dtype):
    out, _ = forward_backward(layer, Z, dtype)
    assert out[0, -1] == np.asarray(BIG, dtype)
    if isinstance(layer, cr.ELU):
        assert out[0, 0] == -1.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_crossentropy_at_huge_logits_gives_the_exact_limits(dtype, reduction):
    loss = cr.CrossEntropy(reduction=reduction)
    logits = np.array([[BIG, -BIG], [BIG, -BIG], [0.0, 0.0]], dtype=dtype)
    labels = np.array([0, 1, 1])
    # −log softmax: 0 for the right huge logit, 2e4 for the wrong one, log 2 for a tie
    per_sample = np.array([0.0, 2 * BIG, np.log(2.0)])
    expected = per_sample.sum() / (3 if reduction == "mean" else 1)
    value, grad = loss.value_and_grad(logits, labels)
    assert np.isfinite(value) and value == pytest.approx(expected, rel=1e-6)
    assert grad.dtype == dtype and np.isfinite(grad).all()
    scale = 1 / 3 if reduction == "mean" else 1.0
    np.testing.assert_allclose(grad, scale * np.array([[0.0, 0.0], [1.0, -1.0], [0.5, -0.5]]), atol=1e-7)
    # probability rows give the same
    value_rows = loss.value(logits, np.eye(2)[labels])
    assert value_rows == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_crossentropy_from_logits_at_huge_logits_gives_the_exact_limits(dtype):
    loss = cr.BinaryCrossEntropy(from_logits=True, reduction="sum")
    z = np.array([[BIG], [BIG], [-BIG], [-BIG], [0.0]], dtype=dtype)
    t = np.array([[1.0], [0.0], [0.0], [1.0], [1.0]])
    value, grad = loss.value_and_grad(z, t)
    # −[t log σ(z) + (1 − t) log(1 − σ(z))]: 0, 1e4, 0, 1e4, log 2
    assert value == pytest.approx(2 * BIG + np.log(2.0), rel=1e-6)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, [[0.0], [1.0], [0.0], [-1.0], [-0.5]], atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_crossentropy_on_saturated_probabilities_stays_finite(dtype):
    loss = cr.BinaryCrossEntropy(from_logits=False)
    p = np.array([[0.0], [1.0], [1.0], [0.0]], dtype=dtype)
    t = np.array([[0.0], [1.0], [0.0], [1.0]])
    value, grad = loss.value_and_grad(p, t)
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert value > 0  # the two wrong confident predictions cost something large but finite


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_network_fed_huge_inputs_trains_a_step_without_warnings(dtype):
    net = cr.Sequential(cr.Dense(3, 4, seed=0), cr.Sigmoid(), cr.Dense(4, 4, seed=1), cr.Softplus(),
                        cr.Dense(4, 3, seed=2), dtype=dtype)
    X = np.array([[BIG, -BIG, 0.0], [-BIG, BIG, BIG], [0.5, -0.5, 1.0]])
    history = net.fit(X, np.array([0, 1, 2]), loss=cr.CrossEntropy(), optimizer=cr.SGD(lr=1e-3),
                      epochs=2, batch_size=None, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.isfinite(p).all() for p in net.params.values())
