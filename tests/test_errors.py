"""Bad input raises a ChainruleError whose message names the layer or argument, what was
expected and what came."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr


def net_4_3_2():
    return cr.Sequential(cr.Dense(4, 3, seed=0), cr.ReLU(), cr.Dense(3, 2, seed=1))


X_GOOD = np.arange(20, dtype=float).reshape(5, 4) / 10
Y_LABELS = np.array([0, 1, 1, 0, 1])


# --- input arrays -------------------------------------------------------------------------------
@pytest.mark.parametrize("call", ["forward", "predict", "fit", "evaluate"])
def test_a_1d_array_is_refused_naming_the_argument_and_both_shapes(call):
    net = net_4_3_2()
    x = np.ones(4)
    expected = r"X must be 2-D .*\(n_samples, n_features\).*1-D array of shape \(4,\)"
    with pytest.raises(cr.ChainruleError, match=expected):
        if call == "fit":
            net.fit(x, np.zeros(4), loss="mse", verbose=0)
        elif call == "evaluate":
            net.evaluate(x, np.zeros(4), loss="mse")
        else:
            getattr(net, call)(x)


def test_a_1d_array_error_is_a_value_error_with_a_hint():
    with pytest.raises(ValueError, match=r"reshape\(1, -1\)"):
        net_4_3_2().predict(np.ones(4))


@pytest.mark.parametrize("call", ["forward", "predict", "fit"])
def test_a_wrong_feature_count_names_the_layer_expected_and_got(call):
    net = net_4_3_2()
    x = np.ones((10, 3))
    with pytest.raises(cr.ChainruleError,
                       match=r"Dense\(4, 3\) expects input with 4 features, got array of shape \(10, 3\)"):
        if call == "fit":
            net.fit(x, np.zeros(10, dtype=int), loss=cr.CrossEntropy(), verbose=0)
        else:
            getattr(net, call)(x)


def test_a_wrong_feature_count_in_a_large_predict_names_the_whole_array():
    with pytest.raises(cr.ChainruleError, match=r"got array of shape \(9000, 5\)"):
        net_4_3_2().predict(np.zeros((9000, 5)), batch_size=4096)


def test_the_design_example_message_for_a_wrong_feature_count():
    with pytest.raises(cr.ShapeError) as info:
        cr.Sequential(cr.Dense(64, 32)).forward(np.zeros((10, 63)))
    assert str(info.value) == "Dense(64, 32) expects input with 64 features, got array of shape (10, 63)"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("call", ["predict", "fit"])
def test_nan_or_inf_in_X_is_reported_with_its_position(call, bad):
    net = net_4_3_2()
    X = X_GOOD.copy()
    X[3, 2] = bad
    with pytest.raises(cr.DataError, match=rf"X must be finite, got {bad} at index \[3, 2\]"):
        if call == "fit":
            net.fit(X, Y_LABELS, loss=cr.CrossEntropy(), verbose=0)
        else:
            net.predict(X)


def test_nan_in_validation_data_is_reported():
    X = X_GOOD.copy()
    X[1, 0] = np.nan
    with pytest.raises(cr.ChainruleError, match=r"validation X must be finite, got nan at index \[1, 0\]"):
        net_4_3_2().fit(X_GOOD, Y_LABELS, loss=cr.CrossEntropy(), validation_data=(X, Y_LABELS), verbose=0)


def test_nan_in_the_target_is_reported_with_its_position():
    y = np.zeros((5, 2))
    y[4, 1] = np.nan
    with pytest.raises(cr.ChainruleError, match=r"y must be finite, got nan at index \[4, 1\]"):
        net_4_3_2().fit(X_GOOD, y, loss="mse", verbose=0)


def test_non_numeric_X_is_refused():
    with pytest.raises(cr.ChainruleError, match="X must hold numbers"):
        net_4_3_2().predict(np.array([["a", "b", "c", "d"]]))


def test_a_target_with_the_wrong_number_of_samples_is_refused():
    with pytest.raises(cr.ChainruleError, match=r"one target per sample \(5 samples\), got shape \(4,\)"):
        net_4_3_2().fit(X_GOOD, Y_LABELS[:4], loss=cr.CrossEntropy(), verbose=0)


def test_a_target_of_the_wrong_shape_for_mse_is_refused():
    with pytest.raises(cr.ChainruleError, match=r"MSE expects a target of the output's shape \(5, 2\), got \(5, 3\)"):
        net_4_3_2().fit(X_GOOD, np.zeros((5, 3)), loss="mse", verbose=0)


# --- labels and losses ---------------------------------------------------------------------------
@pytest.mark.parametrize("label", [2, 7, -1])
def test_crossentropy_labels_out_of_range_name_the_loss_range_and_label_in_fit(label):
    y = Y_LABELS.copy()
    y[2] = label
    expected = rf"CrossEntropy expects class labels in \[0, 1\] for an output with 2 columns, got label {label}"
    with pytest.raises(cr.DataError, match=expected):
        net_4_3_2().fit(X_GOOD, y, loss=cr.CrossEntropy(), verbose=0)


def test_crossentropy_labels_out_of_range_in_value_and_grad():
    logits = np.zeros((3, 4))
    for method in ("value", "grad"):
        with pytest.raises(cr.ChainruleError, match=r"class labels in \[0, 3\].*got label 4"):
            getattr(cr.CrossEntropy(), method)(logits, np.array([0, 4, 1]))


def test_crossentropy_labels_out_of_range_in_evaluate():
    with pytest.raises(cr.ChainruleError, match="got label 5"):
        net_4_3_2().evaluate(X_GOOD, np.array([0, 1, 5, 0, 1]), loss=cr.CrossEntropy())


def test_crossentropy_fractional_labels_are_refused():
    with pytest.raises(cr.ChainruleError, match="whole numbers"):
        cr.CrossEntropy().value(np.zeros((2, 3)), np.array([0.5, 1.0]))


def test_crossentropy_target_of_the_wrong_shape_names_both_forms():
    expected = r"labels of shape \(2,\) or probability rows of shape \(2, 3\), got target of shape \(2, 4\)"
    with pytest.raises(cr.ShapeError, match=expected):
        cr.CrossEntropy().value(np.zeros((2, 3)), np.zeros((2, 4)))


def test_binary_crossentropy_targets_outside_0_1_are_refused():
    expected = r"BinaryCrossEntropy expects targets in \[0, 1\], got values from 0.0 to 2.0"
    with pytest.raises(cr.DataError, match=expected):
        cr.BinaryCrossEntropy().value(np.full((2, 1), 0.5), np.array([[0.0], [2.0]]))


# --- constructor arguments ------------------------------------------------------------------------
@pytest.mark.parametrize("make", [cr.SGD, cr.Adam, cr.AdamW, cr.RMSProp, cr.Adagrad])
def test_a_negative_learning_rate_is_refused_naming_the_optimizer(make):
    with pytest.raises(cr.ConfigError, match=rf"{make.__name__} lr must be >= 0, got -0.1"):
        make(lr=-0.1)


@pytest.mark.parametrize("p", [1, 1.0, 1.5])
def test_dropout_p_of_one_or_more_is_refused(p):
    with pytest.raises(cr.ConfigError, match=r"Dropout p must be in \[0, 1\)"):
        cr.Dropout(p)


def test_dropout_negative_p_is_refused():
    with pytest.raises(cr.ConfigError, match="Dropout p"):
        cr.Dropout(-0.1)


def test_an_unknown_activation_name_is_refused_listing_the_choices():
    with pytest.raises(cr.ConfigError, match=r"unknown activation 'swishy'.*relu"):
        cr.mlp([2, 3, 1], activation="swishy")
    with pytest.raises(cr.ConfigError, match=r"unknown activation 'sigmod'"):
        cr.mlp([2, 3, 1], activation="tanh", output_activation="sigmod")


def test_an_unknown_loss_name_is_refused_listing_the_choices():
    with pytest.raises(cr.ConfigError, match=r"loss must be a Loss or one of .*'mse'.*got 'hinge'"):
        net_4_3_2().fit(X_GOOD, Y_LABELS, loss="hinge", verbose=0)


def test_an_unknown_optimizer_name_is_refused_listing_the_choices():
    with pytest.raises(cr.ConfigError, match=r"optimizer must be an Optimizer or one of .*'sgd'.*got 'lbfgs'"):
        net_4_3_2().fit(X_GOOD, Y_LABELS, loss=cr.CrossEntropy(), optimizer="lbfgs", verbose=0)


def test_an_unknown_initializer_and_metric_are_refused():
    with pytest.raises(cr.ConfigError, match="unknown initializer 'orthogonalish'"):
        cr.Dense(2, 2, init="orthogonalish")
    with pytest.raises(cr.ConfigError, match="unknown metric 'f7'"):
        net_4_3_2().fit(X_GOOD, Y_LABELS, loss=cr.CrossEntropy(), metrics=["f7"], verbose=0)


@pytest.mark.parametrize(("make", "match"), [
    (lambda: cr.Dense(0, 3), "Dense n_in must be a positive integer, got 0"),
    (lambda: cr.Dense(3, 2.5), "Dense n_out must be a positive integer, got 2.5"),
    (lambda: cr.Dense(2, 2, weight=np.ones((3, 2))), r"shape \(2, 2\), got \(3, 2\)"),
    (lambda: cr.LeakyReLU(-0.1), "LeakyReLU alpha must be >= 0"),
    (lambda: cr.MSE(reduction="median"), "MSE reduction must be 'mean' or 'sum', got 'median'"),
    (lambda: cr.SGD(lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (lambda: cr.SGD(lr=0.1, momentum=-0.5), "SGD momentum must be >= 0"),
    (lambda: cr.Adam(betas=(1.5, 0.9)), r"Adam beta1 must be in \[0, 1\)"),
    (lambda: cr.SGD(lr=0.1, clip_norm=0), "clip_norm must be > 0"),
    (lambda: cr.Sequential(cr.Dense(2, 2), dtype=np.int32), "dtype must be float32 or float64"),
    (lambda: cr.Sequential(cr.Dense(2, 2), "relu"), "Sequential layer 1 must be a Layer, got 'relu'"),
    (lambda: cr.EarlyStopping(patience=-1), "patience must be an integer >= 0"),
], ids=["dense_n_in", "dense_n_out", "dense_weight_shape", "leaky_alpha", "reduction", "nesterov",
        "momentum", "adam_beta", "clip_norm", "dtype", "layer_type", "patience"])
def test_bad_constructor_arguments_are_refused_by_name(make, match):
    with pytest.raises(cr.ChainruleError, match=match):
        make()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ({"batch_size": -4}, "batch_size must be a positive integer, got -4"),
    ({"verbose": 3}, "verbose must be 0 .* got 3"),
    ({"print_every": 0}, "print_every must be a positive integer, got 0"),
    ({"validation_data": X_GOOD}, r"validation_data must be a pair \(X_val, y_val\)"),
    ({"seed": -1}, "seed must be a non-negative int, got -1"),
])
def test_bad_fit_arguments_are_refused_by_name(kwargs, match):
    with pytest.raises(cr.ChainruleError, match=match):
        net_4_3_2().fit(X_GOOD, Y_LABELS, loss=cr.CrossEntropy(), **{"verbose": 0, **kwargs})


def test_errors_share_the_chainrule_base_and_fit_the_builtin_kinds():
    assert issubclass(cr.ShapeError, ValueError) and issubclass(cr.DataError, ValueError)
    assert issubclass(cr.ConfigError, ValueError) and issubclass(cr.TrainingError, RuntimeError)
    for cls in (cr.ShapeError, cr.DataError, cr.ConfigError, cr.TrainingError, cr.FileFormatError):
        assert issubclass(cls, cr.ChainruleError)


# Large 2-d arrays are first checked with a BLAS row sum; these cases pin the answer of that path
# to the element-wise definition (every entry finite).
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, "inf and -inf in one row"])
def test_a_large_array_with_one_bad_entry_is_refused_at_its_index(dtype, order, bad):
    from chainrule._checks import check_finite

    arr = np.asarray(np.random.default_rng(0).normal(size=(700, 130)), dtype=dtype, order=order)
    if bad == "inf and -inf in one row":  # the row sum is NaN, not inf
        arr[411, 7], arr[411, 90] = np.inf, -np.inf
        expected = r"got inf at index \[411, 7\] \(2 non-finite values in all\)"
    else:
        arr[411, 90] = bad
        expected = rf"got {bad} at index \[411, 90\] \(1 non-finite values in all\)"
    with pytest.raises(cr.DataError, match=expected):
        check_finite(arr, "X")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_large_array_of_huge_finite_entries_is_accepted(dtype):
    from chainrule._checks import check_finite

    # every row sums past the largest float (an overflow, not a bad entry): the exact test decides
    arr = np.full((600, 120), np.finfo(dtype).max / 4, dtype=dtype)
    check_finite(arr, "X")
    check_finite(arr[:, ::2], "a strided view")  # no BLAS path: element-wise only
