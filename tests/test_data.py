"""Tests of chainrule.data: scalers, one_hot, train_test_split, batches.

Reference values are worked by hand or computed with plain NumPy, never by the code
under test.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from chainrule.data import (
    MaxScaler,
    MinMaxScaler,
    Standardizer,
    batches,
    one_hot,
    scaler_from_config,
    train_test_split,
)
from chainrule.errors import ChainruleError, ConfigError, DataError, ShapeError

SCALERS = [Standardizer, MinMaxScaler, MaxScaler]


@pytest.fixture
def data() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(loc=[3.0, -2.0, 50.0], scale=[1.0, 0.1, 20.0], size=(200, 3))


# --- Standardizer -----------------------------------------------------------------

def test_standardizer_hand_example():
    out = Standardizer().fit_transform(np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]]))
    # column 1: mean 3, std sqrt(8/3); column 2 is ten times column 1
    expected = np.array([-2.0, 0.0, 2.0]) / np.sqrt(8.0 / 3.0)
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(out[:, 1], expected, rtol=1e-12)


def test_standardized_train_columns_have_mean_0_std_1(data):
    out = Standardizer().fit_transform(data)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), 1.0, rtol=1e-12)


def test_standardizer_applies_training_statistics_to_new_data(data):
    train, test = data[:150], data[150:]
    s = Standardizer().fit(train)
    np.testing.assert_allclose(s.mean_, train.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.scale_, train.std(axis=0), rtol=1e-12)
    expected = (test - train.mean(axis=0)) / train.std(axis=0)
    np.testing.assert_allclose(s.transform(test), expected, rtol=1e-12)


def test_standardizer_constant_column_maps_to_zero_without_warning():
    X = np.array([[1.0, 0.1, 7.0], [2.0, 0.1, 7.0], [4.0, 0.1, 7.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = Standardizer().fit(X)
        out = s.transform(X)
    assert np.all(out[:, 1:] == 0.0)
    assert s.scale_[1] == 1.0 and s.scale_[2] == 1.0
    np.testing.assert_allclose(s.inverse_transform(out), X, rtol=1e-15)


@pytest.mark.parametrize("cls", SCALERS)
def test_inverse_transform_round_trip(cls, data):
    s = cls().fit(data)
    np.testing.assert_allclose(s.inverse_transform(s.transform(data)), data, rtol=1e-12)


@pytest.mark.parametrize("cls", SCALERS)
def test_float32_stays_float32_and_others_become_float64(cls, data):
    s = cls().fit(data)
    out32 = s.transform(data.astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, s.transform(data), rtol=1e-5, atol=1e-5)
    assert s.inverse_transform(out32).dtype == np.float32
    assert s.transform(data).dtype == np.float64
    ints = cls().fit_transform(np.array([[1, 2], [3, 4], [5, 9]]))
    assert ints.dtype == np.float64


@pytest.mark.parametrize("cls", SCALERS)
def test_transform_does_not_modify_input(cls, data):
    copy = data.copy()
    cls().fit(data).transform(data)
    assert np.array_equal(data, copy)


# --- MinMaxScaler and MaxScaler ----------------------------------------------------

def test_minmax_hand_example_with_feature_range():
    s = MinMaxScaler(feature_range=(-1, 1)).fit(np.array([[2.0, 5.0], [4.0, 5.0], [6.0, 5.0]]))
    out = s.transform(np.array([[2.0, 5.0], [4.0, 5.0], [6.0, 5.0], [8.0, 1.0]]))
    # 2 -> -1, 4 -> 0, 6 -> 1 and, outside the fitted range, 8 -> 2 (no clipping);
    # the constant column maps to the lower end of the range.
    np.testing.assert_allclose(out[:, 0], [-1.0, 0.0, 1.0, 2.0])
    np.testing.assert_allclose(out[:3, 1], [-1.0, -1.0, -1.0])
    assert s.data_min_.tolist() == [2.0, 5.0] and s.data_max_.tolist() == [6.0, 5.0]


def test_minmax_default_range_is_0_1(data):
    out = MinMaxScaler().fit_transform(data)
    np.testing.assert_allclose(out.min(axis=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(out.max(axis=0), 1.0, rtol=1e-15)


@pytest.mark.parametrize("bad", [(1, 0), (0, 0), (0, np.inf), (0,), "ab", None])
def test_minmax_rejects_bad_feature_range(bad):
    with pytest.raises(ConfigError, match="feature_range"):
        MinMaxScaler(feature_range=bad)


def test_maxscaler_hours_studied_slept_tutorial():
    # (hours sleeping, hours studying) -> divided by the column maxima 10 and 5
    X = np.array([[3.0, 5.0], [5.0, 1.0], [10.0, 2.0]])
    s = MaxScaler().fit(X)
    np.testing.assert_allclose(s.transform(X), [[0.3, 1.0], [0.5, 0.2], [1.0, 0.4]])
    assert s.max_.tolist() == [10.0, 5.0]


def test_maxscaler_uses_absolute_value_and_handles_zero_column():
    s = MaxScaler().fit(np.array([[-4.0, 0.0], [2.0, 0.0]]))
    np.testing.assert_allclose(s.transform(np.array([[-4.0, 0.0], [2.0, 3.0]])),
                               [[-1.0, 0.0], [0.5, 3.0]])
    assert s.max_.tolist() == [4.0, 0.0]


# --- errors -------------------------------------------------------------------------

@pytest.mark.parametrize("cls", SCALERS)
@pytest.mark.parametrize("method", ["transform", "inverse_transform"])
def test_use_before_fit_is_an_error(cls, method):
    s = cls()
    assert not s.is_fitted
    with pytest.raises(ChainruleError, match=rf"{cls.__name__} is not fitted; call fit\(X\) first"):
        getattr(s, method)(np.zeros((2, 2)))


@pytest.mark.parametrize("cls", SCALERS)
def test_feature_count_mismatch_names_expected_and_got(cls, data):
    s = cls().fit(data)
    assert s.is_fitted and s.n_features_in_ == 3
    with pytest.raises(ShapeError, match=r"fitted on 3 features, got array of shape \(5, 2\)"):
        s.transform(np.zeros((5, 2)))


@pytest.mark.parametrize("cls", SCALERS)
def test_one_dimensional_input_is_rejected(cls):
    with pytest.raises(ShapeError, match=r"2-D.*shape \(4,\).*reshape"):
        cls().fit(np.arange(4.0))


@pytest.mark.parametrize("cls", SCALERS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_reported_with_position(cls, bad, data):
    X = data.copy()
    X[7, 2] = bad
    X[9, 0] = bad
    with pytest.raises(DataError, match=r"row 7, column 2"):
        cls().fit(X)
    s = cls().fit(data)
    with pytest.raises(DataError, match=r"row 7, column 2"):
        s.transform(X)


def test_non_numeric_input_is_rejected():
    with pytest.raises(DataError, match="numeric"):
        Standardizer().fit(np.array([["a", "b"]]))


def test_empty_fit_is_rejected():
    with pytest.raises(ShapeError, match="at least one sample"):
        Standardizer().fit(np.zeros((0, 3)))


# --- saving without pickle -----------------------------------------------------------

@pytest.mark.parametrize("scaler", [Standardizer(), MinMaxScaler((-2, 3)), MaxScaler()])
def test_config_and_arrays_round_trip(scaler, data):
    scaler.fit(data[:100])
    config = json.loads(json.dumps(scaler.get_config()))   # must be JSON-able
    assert config["class"] == type(scaler).__name__
    arrays = {k: v.copy() for k, v in scaler.get_arrays().items()}
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in arrays.values())
    rebuilt = scaler_from_config(config, arrays)
    assert type(rebuilt) is type(scaler) and rebuilt.is_fitted
    assert np.array_equal(rebuilt.transform(data), scaler.transform(data))
    assert np.array_equal(rebuilt.inverse_transform(data), scaler.inverse_transform(data))


def test_unfitted_scaler_round_trips_unfitted():
    s = MinMaxScaler((0, 2))
    rebuilt = scaler_from_config(json.loads(json.dumps(s.get_config())), s.get_arrays())
    assert not rebuilt.is_fitted and rebuilt.feature_range == (0.0, 2.0)


def test_scaler_from_config_rejects_unknown_class_and_bad_arrays(data):
    with pytest.raises(ConfigError, match=r"unknown scaler class 'Normalizer'.*MaxScaler"):
        scaler_from_config({"class": "Normalizer"}, {})
    s = Standardizer().fit(data)
    with pytest.raises(ConfigError, match="lacks the arrays"):
        scaler_from_config(s.get_config(), {"mean": s.mean_})
    with pytest.raises(ShapeError, match=r"'scale' should have shape \(3,\), got \(2,\)"):
        scaler_from_config(s.get_config(), {"mean": s.mean_, "scale": s.scale_[:2]})


# --- one_hot ----------------------------------------------------------------------------

def test_one_hot_hand_example():
    out = one_hot([2, 0, 1, 2])
    assert out.dtype == np.float32
    assert out.tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_one_hot_options_and_accepted_forms():
    assert one_hot(np.array([0, 1]), n_classes=4, dtype=np.float64).shape == (2, 4)
    assert one_hot(np.array([0, 1]), dtype=np.float64).dtype == np.float64
    assert one_hot(np.array([[1.0], [0.0]])).tolist() == [[0, 1], [1, 0]]
    assert one_hot(np.array([], dtype=int), n_classes=3).shape == (0, 3)


@pytest.mark.parametrize(
    "labels, n_classes, error, message",
    [
        ([0, 1.5, 2], None, DataError, r"integer labels, got 1\.5 at position 1"),
        ([0, np.nan], None, DataError, r"integer labels, got nan at position 1"),
        (["a", "b"], None, DataError, "integer labels"),
        ([0, -1, 2], None, DataError, r"labels >= 0, got -1 at position 1"),
        ([0, 3, 1], 3, DataError, r"label 3 at position 1.*n_classes=3.*0\.\.2"),
        ([[0, 1], [1, 0]], None, ShapeError, r"shape \(2, 2\)"),
        ([0, 1], 0, ConfigError, "n_classes must be a positive int"),
        ([], None, DataError, "empty"),
    ],
)
def test_one_hot_rejects_bad_labels(labels, n_classes, error, message):
    with pytest.raises(error, match=message):
        one_hot(labels, n_classes=n_classes)


# --- train_test_split ------------------------------------------------------------------

@pytest.mark.parametrize("test_size, n_test", [(0.25, 3), (0.3, 3), (0.5, 5), (0.01, 1), (4, 4)])
def test_split_sizes(test_size, n_test):
    X_train, X_test = train_test_split(np.arange(10), test_size=test_size, seed=0)
    assert len(X_test) == n_test and len(X_train) == 10 - n_test


def test_split_size_is_not_thrown_off_by_float_rounding():
    # 0.07 * 100 == 7.000000000000001 in floating point; 7 % of 100 is still 7
    _, X_test = train_test_split(np.arange(100), test_size=0.07, seed=0)
    assert len(X_test) == 7


def test_split_is_a_partition_and_keeps_rows_aligned():
    X = np.arange(100).reshape(50, 2)
    y = X[:, 0] * 10
    X_train, X_test, y_train, y_test = train_test_split(X, y, seed=3)
    rows = np.concatenate([X_train[:, 0], X_test[:, 0]])
    assert sorted(rows.tolist()) == list(range(0, 100, 2))
    assert np.array_equal(y_train, X_train[:, 0] * 10)
    assert np.array_equal(y_test, X_test[:, 0] * 10)
    assert not np.array_equal(X_test[:, 0], np.arange(76, 100, 2))   # shuffled


def test_split_same_seed_same_result_different_seed_different_result():
    X = np.arange(200).reshape(100, 2)
    a = train_test_split(X, seed=7)
    b = train_test_split(X, seed=7)
    c = train_test_split(X, seed=8)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    assert np.array_equal(train_test_split(X, seed=g1)[1], train_test_split(X, seed=g2)[1])


def test_split_without_shuffle_takes_the_last_rows_for_test():
    X_train, X_test, y_train, y_test = train_test_split(
        np.arange(8), np.arange(8) + 100, test_size=0.25, shuffle=False
    )
    assert X_train.tolist() == [0, 1, 2, 3, 4, 5] and X_test.tolist() == [6, 7]
    assert y_test.tolist() == [106, 107]


def test_stratified_split_keeps_class_proportions():
    labels = np.repeat([0, 1, 2], [500, 300, 200])
    X = np.arange(1000)
    _, _, y_train, y_test = train_test_split(X, labels, test_size=0.2, seed=0, stratify=labels)
    assert np.bincount(y_test).tolist() == [100, 60, 40]
    assert np.bincount(y_train).tolist() == [400, 240, 160]


def test_stratified_split_rounding_with_uneven_classes():
    # n_test = ceil(0.15 * 100) = 15; ideal shares 15 * [45, 35, 20] / 100 = [6.75, 5.25, 3]
    # floors [6, 5, 3] leave one place, which goes to the largest remainder (class "a").
    labels = np.repeat(["a", "b", "c"], [45, 35, 20])
    _, y_test = train_test_split(labels, test_size=0.15, seed=1, stratify=labels)
    assert [int(np.sum(y_test == k)) for k in "abc"] == [7, 5, 3]


def test_stratified_split_puts_every_class_in_both_parts():
    labels = np.array([0] * 20 + [1] * 2 + [2] * 3)
    for seed in range(5):
        _, _, y_train, y_test = train_test_split(
            np.arange(25), labels, test_size=0.1, seed=seed, stratify=labels
        )
        assert len(y_test) == 3
        assert set(y_test.tolist()) == {0, 1, 2}
        assert set(y_train.tolist()) == {0, 1, 2}


def test_stratified_split_is_reproducible_and_mixed():
    labels = np.repeat([0, 1], [30, 30])
    a = train_test_split(np.arange(60), seed=4, stratify=labels)
    b = train_test_split(np.arange(60), seed=4, stratify=labels)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    test_labels = labels[a[1]]
    assert not np.array_equal(test_labels, np.sort(test_labels))   # not grouped by class


@pytest.mark.parametrize("test_size", [0, 10, 0.0, 1.0, 1.5, -0.1, True, "0.2"])
def test_split_rejects_bad_test_size(test_size):
    with pytest.raises(ConfigError, match="test_size"):
        train_test_split(np.arange(10), test_size=test_size)


def test_split_errors_name_what_came():
    with pytest.raises(ShapeError, match=r"X has 5 samples but y has shape \(4,\)"):
        train_test_split(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ShapeError, match=r"stratify should have shape \(5,\), got \(3,\)"):
        train_test_split(np.zeros((5, 2)), stratify=[0, 1, 0])
    with pytest.raises(ConfigError, match="stratify needs shuffle=True"):
        train_test_split(np.zeros((5, 2)), stratify=[0, 1, 0, 1, 0], shuffle=False)
    with pytest.raises(ConfigError, match="seed"):
        train_test_split(np.zeros((5, 2)), seed="abc")


# --- batches --------------------------------------------------------------------------------

def test_batches_cover_every_row_once_with_smaller_last_batch():
    X = np.arange(100).reshape(50, 2)
    y = np.arange(50)
    got = list(batches(X, y, batch_size=16, seed=0))
    assert [len(xb) for xb, _ in got] == [16, 16, 16, 2]
    seen = np.concatenate([yb for _, yb in got])
    assert sorted(seen.tolist()) == list(range(50))
    assert not np.array_equal(seen, np.arange(50))                 # shuffled
    for xb, yb in got:
        assert np.array_equal(xb[:, 0], 2 * yb)                     # rows stay aligned


def test_batches_without_shuffle_are_in_order_and_none_means_one_batch():
    X = np.arange(10).reshape(5, 2)
    assert [xb[:, 0].tolist() for xb, _ in batches(X, batch_size=2, shuffle=False)] == [
        [0, 2], [4, 6], [8]
    ]
    (only,) = list(batches(X, batch_size=None, shuffle=False))
    assert np.array_equal(only[0], X) and only[1] is None


def test_batches_seed_controls_the_order():
    X = np.arange(40)
    def order(seed):
        return np.concatenate([xb for xb, _ in batches(X, batch_size=8, seed=seed)])
    assert np.array_equal(order(1), order(1))
    assert not np.array_equal(order(1), order(2))
    rng = np.random.default_rng(0)
    assert not np.array_equal(order(rng), order(rng))   # one Generator: new order each epoch


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_batches_rejects_bad_batch_size_at_call_time(batch_size):
    with pytest.raises(ConfigError, match="batch_size"):
        batches(np.zeros((4, 2)), batch_size=batch_size)   # no iteration needed


def test_batches_rejects_mismatched_y():
    with pytest.raises(ShapeError, match=r"X has 4 samples but y has shape \(3,\)"):
        batches(np.zeros((4, 2)), np.zeros(3))
