"""Property-based tests: every public entry point, driven with random arrays (shapes, dtypes, NaN,
inf, huge and tiny values, empty, non-contiguous, read-only, objects, strings), random CSV text
and random bytes, either works or raises a ChainruleError. Warnings are errors in this suite, so
an overflow or invalid-value warning escaping counts as a failure too.

The default run keeps each property to a few dozen examples; ``make fuzz`` runs
CHAINRULE_FUZZ_EXAMPLES=750 per property (11,250 cases in all, see FUZZ_CASES below).
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import chainrule as cr
from chainrule import cli, metrics
from chainrule.csvio import read_table

EXAMPLES = int(os.environ.get("CHAINRULE_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=EXAMPLES <= 25,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])
pytestmark = pytest.mark.fuzz


def only_chainrule_errors(fn, *args, **kwargs):
    """Call ``fn``; a ChainruleError is an answer, anything else escapes and fails the test."""
    try:
        return fn(*args, **kwargs)
    except cr.ChainruleError as exc:
        assert str(exc), "an error without a message"
        return None


# --- random arrays ------------------------------------------------------------------------------
NUMERIC = [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.uint64, np.bool_]
OTHER = [np.complex128, np.dtype("<U3"), np.dtype("S2"), np.dtype("datetime64[s]")]


def elements(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        specials = [v for v in (0.0, -0.0, 1e-300, 5e-324, 1e-40, 1e4, -1e4, 6e4, 3e38, -1e300)
                    if abs(v) <= float(np.finfo(dtype).max)]
        return st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=8 * dtype.itemsize),
                         st.sampled_from(specials))
    return None


@st.composite
def arrays(draw, max_dims=3, min_dims=0, numeric_only=False, dtypes=None):
    dtype = draw(st.sampled_from(dtypes or (NUMERIC if numeric_only else NUMERIC + OTHER)))
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=5))
    if np.dtype(dtype).kind == "M":
        arr = np.zeros(shape, dtype=dtype)
    else:
        arr = draw(hnp.arrays(dtype, shape, elements=elements(dtype)))
    view = draw(st.sampled_from(["plain", "transposed", "reversed", "readonly", "fortran"]))
    if view == "transposed":
        arr = arr.T
    elif view == "reversed" and arr.ndim:
        arr = arr[::-1]
    elif view == "readonly":
        arr.flags.writeable = False
    elif view == "fortran":
        arr = np.asfortranarray(arr)
    return arr


anything = st.one_of(
    arrays(),
    st.builds(lambda n: np.array([object()] * n, dtype=object), st.integers(0, 3)),
    st.lists(st.one_of(st.floats(), st.integers(-5, 5), st.text(max_size=2)), max_size=4),
    st.lists(st.lists(st.floats(-10, 10), max_size=3), max_size=3),  # possibly ragged
    st.sampled_from([None, 3, 2.5, "abc", b"xy", {"a": 1}]),
)


def matrix(n_features=3, max_rows=6):
    """Mostly well-shaped float input with random values, sometimes anything at all."""
    well_shaped = st.builds(
        lambda rows, dtype, seed, spice: _spiced(np.random.default_rng(seed).normal(size=(rows, n_features))
                                                 .astype(dtype), spice),
        st.integers(0, 20).map(lambda k: min(k, max_rows)), st.sampled_from(NUMERIC[:3] + [np.int64, np.bool_]),
        st.integers(0, 2**16),
        st.sampled_from([None, None, None, np.nan, np.inf, -np.inf, 1e38, 1e300, 1e-310]))
    return st.integers(0, 9).flatmap(lambda k: well_shaped if k < 7 else anything)  # 70% well shaped


def _spiced(arr, value):
    if value is not None and arr.size:
        arr = arr.astype(np.float64)
        arr.flat[arr.size // 2] = value
    return arr


def small_net(dtype=np.float32):
    return cr.Sequential(cr.Dense(3, 4, seed=0), cr.Tanh(), cr.Dropout(0.1, seed=1), cr.Dense(4, 2, seed=2),
                         dtype=dtype)


LOSSES = [cr.MSE(), cr.SSE(), cr.BinaryCrossEntropy(), cr.BinaryCrossEntropy(from_logits=True),
          cr.CrossEntropy(), cr.MSE(reduction="sum")]
LAYERS = [lambda: cr.Dense(3, 2, seed=0), cr.Sigmoid, cr.Tanh, cr.ReLU, lambda: cr.LeakyReLU(0.1), cr.ELU,
          cr.Softplus, cr.Softmax, cr.Identity, lambda: cr.Dropout(0.5, seed=0),
          lambda: cr.RNN(3, 2, seed=0), lambda: cr.LSTM(3, 2, seed=0),
          lambda: cr.TimeDistributed(cr.Dense(3, 2, seed=0))]


# --- networks -------------------------------------------------------------------------------------
@FUZZ
@given(X=matrix(), dtype=st.sampled_from([np.float32, np.float64]), how=st.sampled_from(["forward", "predict"]))
def test_forward_and_predict(X, dtype, how):
    net = small_net(dtype)
    out = only_chainrule_errors(getattr(net, how), X)
    if out is not None:
        assert out.dtype == dtype and np.isfinite(out).all()


@FUZZ
@given(data=st.data(), valid=st.booleans(),
       loss=st.sampled_from(LOSSES), metric=st.sampled_from([(), ("accuracy",), ("r2",), ("mae",)]))
def test_evaluate(data, valid, loss, metric):
    X = data.draw(valid_matrix() if valid else matrix())
    y = data.draw(targets(len(X) if isinstance(X, np.ndarray) and X.ndim else 3, valid))
    only_chainrule_errors(small_net().evaluate, X, y, loss=loss, metrics=metric)


def targets(n: int, valid: bool = False):
    """Targets for n samples (labels, one-hot-like rows, values; sometimes spiced), or anything."""
    labels = st.lists(st.integers(0, 1) if valid else st.integers(-1, 2), min_size=n, max_size=n).map(np.array)
    spice = [None] if valid else [None, None, None, np.nan, 2.0, 1e300]
    values = st.builds(lambda seed, spice, cols: _spiced(np.random.default_rng(seed).random((n, cols)), spice),
                       st.integers(0, 99), st.sampled_from(spice), st.just(2) if valid else st.sampled_from([1, 2, 2]))
    if valid:
        return st.one_of(labels, values)
    return st.integers(0, 9).flatmap(lambda k: labels if k < 4 else values if k < 8 else anything)


def valid_matrix(n_features=3):
    def make(rows, dtype, seed):
        return np.random.default_rng(seed).normal(size=(rows, n_features)).astype(dtype)

    return st.builds(make, st.integers(1, 6), st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.float16]),
                     st.integers(0, 2**16))


@FUZZ
@given(data=st.data(), valid=st.integers(0, 9).map(lambda k: k < 6),
       loss=st.sampled_from(LOSSES), opt=st.sampled_from(["sgd", "adam", "rmsprop", "adagrad", "adamw"]),
       lr=st.sampled_from([1e-3, 1e-3, 0.1, 10.0, 1e6]))
def test_fit(data, valid, loss, opt, lr):
    X = data.draw(valid_matrix() if valid else matrix())
    n = len(X) if isinstance(X, np.ndarray) and X.ndim else 3
    y = data.draw(targets(n, valid))
    batch_size = data.draw(st.sampled_from([1, 2, 3, None] if valid else [2, 0, -1, 2.5, None]))
    optimizer = cr.optim.get_optimizer(opt, lr=lr)
    net = small_net()
    history = only_chainrule_errors(net.fit, X, y, loss=loss, optimizer=optimizer, epochs=2,
                                    batch_size=batch_size, verbose=0, metrics=["accuracy"]
                                    if isinstance(loss, cr.CrossEntropy) else ())
    if history is not None:
        assert all(np.isfinite(p).all() for p in net.params.values())


@FUZZ
@given(X=matrix(max_rows=4), grad=st.one_of(matrix(n_features=2, max_rows=4), anything))
def test_backward(X, grad):
    net = small_net(np.float64)
    if only_chainrule_errors(net.forward, X, training=True) is not None:
        only_chainrule_errors(net.backward, grad)


@FUZZ
@given(layer=st.sampled_from(LAYERS), x=st.one_of(arrays(max_dims=4), anything), training=st.booleans())
def test_layers(layer, x, training):
    out = only_chainrule_errors(layer(), x, training=training)
    if isinstance(out, np.ndarray):
        assert np.isfinite(out).all()


@FUZZ
@given(loss=st.sampled_from(LOSSES), output=st.one_of(arrays(max_dims=3), anything),
       target=st.one_of(arrays(max_dims=3), anything), what=st.sampled_from(["value", "grad", "value_and_grad"]))
def test_losses(loss, output, target, what):
    only_chainrule_errors(getattr(loss, what), output, target)


# --- data -----------------------------------------------------------------------------------------
SCALERS = [cr.Standardizer, cr.MinMaxScaler, cr.MaxScaler]


@FUZZ
@given(scaler=st.sampled_from(SCALERS), X=st.one_of(matrix(), arrays(max_dims=3)), X2=st.one_of(matrix(), anything))
def test_scalers(scaler, X, X2):
    s = scaler()
    if only_chainrule_errors(s.fit, X) is not None:
        for method in (s.transform, s.inverse_transform):
            out = only_chainrule_errors(method, X2)
            if out is not None:
                assert np.isfinite(out).all()


@FUZZ
@given(labels=st.one_of(arrays(max_dims=2), anything), n=st.sampled_from([None, 0, 1, 3, 2.5, True, 10**12]))
def test_one_hot(labels, n):
    only_chainrule_errors(cr.one_hot, labels, n_classes=n)


@FUZZ
@given(X=st.one_of(arrays(max_dims=3), anything), y=st.one_of(st.none(), arrays(max_dims=2), anything),
       test_size=st.sampled_from([0.25, 0.0, 1.0, 1, 3, -1, 0.5, "a", None, True]), shuffle=st.booleans(),
       stratify=st.booleans(), batch_size=st.sampled_from([1, 2, None, 0, 1.5]))
def test_splits_and_batches(X, y, test_size, shuffle, stratify, batch_size):
    only_chainrule_errors(cr.train_test_split, X, y, test_size=test_size, shuffle=shuffle, seed=0,
                          stratify=y if stratify else None)
    it = only_chainrule_errors(cr.batches, X, y, batch_size=batch_size, shuffle=shuffle, seed=0)
    if it is not None:
        only_chainrule_errors(list, it)


@FUZZ
@given(y_true=st.one_of(arrays(max_dims=2), anything), y_pred=st.one_of(arrays(max_dims=2), anything),
       fn=st.sampled_from([metrics.accuracy, metrics.mse, metrics.mae, metrics.r2, metrics.confusion_matrix,
                           metrics.precision_recall, metrics.classification_report]))
def test_metric_functions(y_true, y_pred, fn):
    only_chainrule_errors(fn, y_true, y_pred)


# --- estimators -----------------------------------------------------------------------------------
@FUZZ
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter=2 on purpose
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.DataConversionWarning")  # y given as a column
@given(data=st.data(), valid=st.booleans(), kind=st.sampled_from(["classifier", "regressor"]),
       X_new=st.one_of(matrix(), anything))
def test_estimators(data, valid, kind, X_new):
    X = data.draw(valid_matrix() if valid else matrix())
    n = len(X) if isinstance(X, np.ndarray) and X.ndim else 3
    y = data.draw(targets(n, valid) if valid else st.one_of(targets(n), arrays(max_dims=2)))
    from chainrule.sklearn import MLPClassifier, MLPRegressor

    cls = MLPClassifier if kind == "classifier" else MLPRegressor
    est = cls(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    if only_chainrule_errors(est.fit, X, y) is not None:
        only_chainrule_errors(est.predict, X_new)
        if kind == "classifier":
            only_chainrule_errors(est.predict_proba, X_new)
    else:
        only_chainrule_errors(est.predict, X_new)  # not fitted


@FUZZ
@given(data=st.data(), valid=st.booleans(), loss=st.sampled_from(LOSSES),
       which=st.sampled_from(["gradcheck", "explain"]))
def test_gradcheck_and_explain(data, valid, loss, which):
    X = data.draw(valid_matrix() if valid else matrix())
    y = data.draw(targets(len(X) if isinstance(X, np.ndarray) and X.ndim else 3, valid))
    net = cr.Sequential(cr.Dense(3, 2, seed=0), cr.Tanh(), dtype=np.float64)
    if which == "gradcheck":
        only_chainrule_errors(cr.gradcheck, net, loss, X, y)
    else:
        only_chainrule_errors(cr.explain, net, loss, X, y, lr=0.5)


# --- files and the command line ---------------------------------------------------------------
cell = st.one_of(st.sampled_from(["", "1", "-2.5", "nan", "inf", "1e400", "a", "b", "NA", '"x,y"', " 3 "]),
                 st.text(max_size=4), st.floats(allow_nan=True).map(repr), st.integers().map(str))


@st.composite
def tables(draw):
    """Mostly well-formed CSV text: a header ending in "label", rows of the same width."""
    width = draw(st.integers(2, 4))
    header = ["a", "b", "c"][:width - 1] + ["label"]
    number = st.one_of(st.floats(-1e3, 1e3).map(lambda v: f"{v:.4g}"), st.integers(-3, 3).map(str))
    odd = draw(st.integers(0, 12))  # how often a cell is something else than a number
    value = st.integers(0, 12).flatmap(lambda k: cell if k < odd // 4 else number)
    label = st.one_of(st.sampled_from(["0", "1", "2", "x", "y"]), number)
    rows = draw(st.lists(st.tuples(st.lists(value, min_size=width - 1, max_size=width - 1), label)
                         .map(lambda r: [*r[0], r[1]]), min_size=2, max_size=12))
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


csv_text = st.one_of(
    tables(), tables(),
    st.builds(lambda header, rows, sep: "\n".join(sep.join(r) for r in [header, *rows]) + "\n",
              st.lists(st.sampled_from(["a", "b", "label", "c", "a", ""]), min_size=1, max_size=4),
              st.lists(st.lists(cell, min_size=0, max_size=5), max_size=8), st.sampled_from([",", ";"])),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin1")),
)


@FUZZ
@given(text=csv_text)
def test_read_table(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("csv") / "data.csv"
    path.write_bytes(text.encode("utf-8", errors="replace"))
    only_chainrule_errors(read_table, path)


@FUZZ
@given(text=csv_text, target=st.sampled_from(["label", "a", "b", "missing"]),
       extra=st.sampled_from([[], ["--task", "regression"], ["--task", "classification"], ["--no-standardize"],
                              ["--validation-split", "0.5"], ["--categorical", "a"], ["--loss", "sse"]]))
def test_cli_train_predict_evaluate_info(tmp_path_factory, capsys, text, target, extra):
    folder = tmp_path_factory.mktemp("cli")
    data, model = folder / "data.csv", folder / "model.npz"
    data.write_bytes(text.encode("utf-8", errors="replace"))
    code = cli.main(["train", str(data), "--target", target, "--hidden", "2", "--epochs", "2", "-q",
                     "--out", str(model), *extra])
    assert code in (0, 1, 2)
    if code == 0:
        for command in (["predict", str(model), str(data), "--proba"], ["evaluate", str(model), str(data)],
                        ["info", str(model)], ["predict", str(model), str(data), "--out", str(folder / "p.csv")]):
            assert cli.main(command) in (0, 1)
    capsys.readouterr()


def good_file() -> bytes:
    buf = io.BytesIO()
    net = small_net()
    from chainrule import io as cr_io

    header, arrays = cr_io.model_parts(net)
    import json

    header = json.loads(json.dumps(header))
    header["checksum"] = cr_io._checksum(header, arrays)
    stored = dict(arrays)
    stored["__chainrule__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(buf, **stored)
    return buf.getvalue()


GOOD = good_file()


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)), max_size=4),
       cut=st.one_of(st.none(), st.integers(0, len(GOOD))), noise=st.binary(max_size=64))
def test_load_of_damaged_files(tmp_path_factory, edits, cut, noise):
    raw = bytearray(GOOD)
    for at, xor in edits:
        raw[at] ^= xor
    raw = bytes(raw[:cut] if cut is not None else raw) + (noise if cut == 0 else b"")
    path = tmp_path_factory.mktemp("load") / "model.npz"
    path.write_bytes(raw)
    net = only_chainrule_errors(cr.load, path)
    if net is not None:  # a change the checks let through cannot have changed the model
        x = np.ones((1, 3))
        assert np.array_equal(net.predict(x), small_net().predict(x))
        assert zipfile.is_zipfile(path)


PROPERTIES = 15
FUZZ_CASES = PROPERTIES * int(os.environ.get("CHAINRULE_FUZZ_EXAMPLES", "750"))


def test_make_fuzz_runs_at_least_ten_thousand_cases():
    assert PROPERTIES * 750 >= 10_000
