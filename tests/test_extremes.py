"""Numerically extreme input beyond test_stability.py: sequence layers at ±1e4, scalers on tiny
and huge variances, and outputs that overflow from finite input (a DataError, not a warning)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import chainrule as cr

DTYPES = [np.float32, np.float64]
RAISE = dict(over="raise", invalid="raise", divide="raise", under="ignore")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", [
    lambda: cr.RNN(3, 4, seed=0, return_sequences=True),
    lambda: cr.LSTM(3, 4, seed=0, return_sequences=True),
    lambda: cr.TimeDistributed(cr.Dense(3, 2, seed=0)),
], ids=["RNN", "LSTM", "TimeDistributed"])
def test_sequence_layers_at_plus_minus_1e4_stay_finite_without_warnings(dtype, make):
    x = np.array([[[1e4, -1e4, 0.5]] * 4, [[-1e4, 1e4, 1e4]] * 4], dtype=dtype)
    net = cr.Sequential(make(), dtype=dtype)
    with np.errstate(**RAISE):
        out = net.forward(x, training=True)
        grad = net.backward(np.ones_like(out))
    assert np.isfinite(out).all() and np.isfinite(grad).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_fixed_point_rnn_at_plus_minus_1e4(dtype):
    net = cr.Sequential(cr.FixedPointRNN(3, 4, seed=0), dtype=dtype)
    with np.errstate(**RAISE):
        out = net.forward(np.array([[1e4, -1e4, 0.5], [-1e4, 1e4, 1e4]], dtype=dtype), training=True)
        grad = net.backward(np.ones_like(out))
    assert np.isfinite(out).all() and np.isfinite(grad).all()


@pytest.mark.parametrize("column", [
    [1e-300, 2e-300, 3e-300],     # the squares underflow to 0
    [1e308, -1e308, 5e307],       # the squares (and the sum) overflow
    [1e-320, 2e-320, 0.0],        # subnormal
])
def test_standardizer_handles_tiny_and_huge_variances(column):
    X = np.array(column).reshape(-1, 1)
    with np.errstate(**RAISE):
        Z = cr.Standardizer().fit(X).transform(X)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z.mean(), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(), 1, rtol=1e-3)  # (subnormals hold few significant bits)


def test_standardizer_keeps_the_usual_statistics_for_ordinary_data():
    X = np.random.default_rng(0).normal(3, 2, size=(50, 3))
    s = cr.Standardizer().fit(X)
    assert np.array_equal(s.mean_, X.mean(axis=0)) and np.array_equal(s.scale_, X.std(axis=0))


def test_a_range_that_overflows_is_refused_clearly():
    with pytest.raises(cr.DataError, match="column 0 cannot be scaled"):
        cr.MinMaxScaler().fit(np.array([[1e308], [-1e308]]))


@pytest.mark.parametrize("call", ["forward", "predict", "evaluate", "layer"])
def test_an_output_that_overflows_from_finite_input_is_a_data_error(call):
    net = cr.Sequential(cr.Dense(2, 2, weight=np.full((2, 2), 1e30), seed=0), cr.Softmax(), dtype=np.float32)
    X = np.array([[1e10, -1e10]], dtype=np.float32)
    with pytest.raises(cr.DataError, match="overflow"):
        if call == "evaluate":
            net.evaluate(X, np.array([0]), loss=cr.CrossEntropy())
        elif call == "layer":
            net.layers[0](X)
        else:
            getattr(net, call)(X)


def test_float64_input_too_large_for_a_float32_network_names_the_value():
    with pytest.raises(cr.DataError, match=r"predict X|X holds 1e\+39 at index \[0, 1\], too large for float32"):
        cr.Sequential(cr.Dense(2, 1, seed=0)).predict(np.array([[0.0, 1e39]]))


def test_integer_boolean_read_only_and_strided_input_is_accepted():
    # A Fortran-ordered or strided input reaches BLAS through another kernel path than a C-ordered
    # one, and kernels may round differently. Weights with few binary digits and small integer
    # inputs make every product and sum exact, so equality holds on any CPU and BLAS.
    weight, bias = [[0.5, -0.25], [1.0, 0.125], [-2.0, 0.75]], [0.5, -1.0]
    net = cr.Sequential(cr.Dense(3, 2, weight=weight, bias=bias), dtype=np.float64)
    X = np.arange(12, dtype=np.int64).reshape(4, 3)
    expected = np.array([[float(sum(Fraction(int(x)) * Fraction(w[j]) for x, w in zip(row, weight, strict=True))
                                + Fraction(bias[j])) for j in range(2)] for row in X])
    ro = X.astype(np.float64)
    ro.flags.writeable = False
    assert np.array_equal(net.predict(X), expected)
    assert np.array_equal(net.predict(ro), expected)
    assert np.array_equal(net.predict(np.asfortranarray(ro)), expected)
    wide = np.zeros((4, 6))
    wide[:, ::2] = X
    assert np.array_equal(net.predict(wide[:, ::2]), expected)  # a strided view
    assert net.predict(X > 5).shape == (4, 2)
