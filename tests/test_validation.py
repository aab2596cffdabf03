"""Every numeric setting of the public API is checked by one validator (``check_number``).

The table below is built by reading the signatures of the public classes and functions: a
parameter annotated ``float`` or ``int``, or whose default is a number or a tuple of numbers,
is numeric, and must refuse NaN, ±inf, a bool and a string with a ConfigError that names it.
Only the settings in NO_LIMIT, where inf means "no limit", accept +inf. A new layer, optimizer
or callback is covered as soon as it is exported; one whose parameters cannot be classified
(no annotation and no numeric default) makes ``test_every_parameter_is_classified`` fail until
it is added to NUMERIC_EXTRA or NOT_NUMERIC.
"""

from __future__ import annotations

import inspect
import math
import re
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule import callbacks, credit, data, datasets, init, layers, losses, optim, regularizers
from chainrule._checks import check_number, check_positive_int

sklearn = pytest.importorskip("sklearn")
from chainrule import sklearn as cr_sklearn  # noqa: E402  (needs scikit-learn)

#: The modules whose public classes and functions the table covers.
MODULES = [layers, losses, optim, init, callbacks, data, credit, datasets, regularizers, cr_sklearn]
#: Public functions outside those modules, covered too.
EXTRA_CALLABLES = [cr.gradcheck, cr.explain]

#: (callable name, parameter) where inf means "no limit", and what it means there.
NO_LIMIT = {
    ("EarlyStopping", "patience"): "never stop",
    ("ReduceLROnPlateau", "patience"): "never reduce the rate",
    ("clip_grad_norm", "max_norm"): "no clipping",
    **{(opt, clip): "no clipping" for opt in ("Optimizer", "SGD", "Adam", "AdamW", "RMSProp", "Adagrad")
       for clip in ("clip_norm", "clip_value")},
    ("MLPClassifier", "n_iter_no_change"): "never stop for lack of improvement (as scikit-learn)",
    ("MLPRegressor", "n_iter_no_change"): "never stop for lack of improvement (as scikit-learn)",
}

#: Numeric parameters that the signature does not show as such.
NUMERIC_EXTRA = {
    "MLPClassifier": ["batch_size"],  # default "auto"
    "MLPRegressor": ["batch_size"],
    # the clipping options reach every optimizer through **kwargs
    **{opt: ["clip_norm", "clip_value"] for opt in ("SGD", "Adam", "AdamW", "RMSProp", "Adagrad")},
}

#: Parameter names that are not numeric settings, and why.
NOT_NUMERIC = {
    "seed": "None, an int or a Generator (as_rng)",
    "verbose": "a flag or a level; True is welcome",
    "dtype": "a numpy dtype",
    **dict.fromkeys(["weight", "bias", "weight_ih", "weight_hh", "weight_in", "values"],
                    "arrays or initializers"),
    **dict.fromkeys(["bias_ih", "bias_hh"], "arrays or initializers"),
    **dict.fromkeys(["init", "bias_init"], "initializers"),
    **dict.fromkeys(["hidden", "cuts", "modules"], "layer structure: sizes checked by Dense"),
    **dict.fromkeys(["sg_optimizer", "schedule", "layer", "net", "loss", "callbacks", "history", "regularizer"],
                    "objects"),
    **dict.fromkeys(["X", "y", "x", "labels", "grads", "stratify", "config", "arrays"], "data"),
    **dict.fromkeys(["path", "comm", "ax", "histories", "hooks"], "objects"),
    "random_state": "scikit-learn's seed",
    **dict.fromkeys(["optimizer", "model"], "objects"),
    "nesterovs_momentum": "a flag",
}

#: Arguments a callable needs before its numeric settings can be tried (the rest are defaults).
REQUIRED = {
    "Dense": dict(n_in=2, n_out=3),
    "RNN": dict(n_in=2, n_hidden=3),
    "LSTM": dict(n_in=2, n_hidden=3),
    "GRU": dict(n_in=2, n_hidden=3),
    "Embedding": dict(num_embeddings=4, dim=3),
    "PositionalEmbedding": dict(max_len=4, dim=3),
    "FixedPointRNN": dict(n_in=2, n_hidden=3),
    "MaxPool2D": dict(kernel_size=2),
    "AvgPool2D": dict(kernel_size=2),
    "BatchNorm": dict(num_features=3),
    "LayerNorm": dict(normalized_shape=3),
    "Conv2D": dict(in_channels=2, out_channels=3, kernel_size=3),
    "Conv1D": dict(in_channels=2, out_channels=3, kernel_size=3),
    "MultiHeadAttention": dict(dim=4, num_heads=2),
    "SyntheticGradient": dict(n_features=3),
    "StepLR": dict(step_size=2),
    "CosineLR": dict(t_max=5),
    "ExponentialLR": dict(gamma=0.5),
    "Optimizer": dict(lr=0.1),
    "clip_grad_norm": dict(grads=[np.ones(3)], max_norm=1.0),
    "batches": dict(X=np.zeros((4, 2))),
    "one_hot": dict(labels=[0, 1]),
    "train_test_split": dict(X=np.zeros((10, 2))),
    "teacher_task": dict(n_train=20, n_test=10),
    "LearningRateScheduler": dict(schedule=lambda epoch: 0.1),
    "gradcheck": dict(net=cr.Sequential(cr.Dense(2, 1, seed=0)), loss="mse", X=np.ones((2, 2)),
                      y=np.ones((2, 1))),
    "Block": dict(layers=[cr.Dense(2, 2, seed=0)]),
    "Recurrent": dict(n_in=2, n_hidden=3, return_sequences=False, stateful=False, weight_ih=None,
                      weight_hh=None, bias=None, init=None, seed=None, dtype=np.float32),
    "get_optimizer": dict(optimizer="sgd"),
    "explain": dict(net=cr.Sequential(cr.Dense(2, 1, seed=0)), loss="sse", x=[0.1, 0.2], y=[0.0]),
}

#: For a tuple setting: where the bad value goes, and the name the message gives it.
IN_A_TUPLE = {
    "betas": (lambda bad: (bad, 0.999), "beta1"),
    "feature_range": (lambda bad: (bad, 1.0), "feature_range[0]"),
    "hidden_layer_sizes": (lambda bad: (bad,), "hidden_layer_sizes[0]"),
}

X_FIT, Y_FIT = np.linspace(0, 1, 16).reshape(8, 2), np.array([0, 1] * 4)


def public_callables():
    """(name, object) of every public class and function defined in MODULES, and EXTRA_CALLABLES."""
    found = {}
    for module in MODULES:
        listed = getattr(module, "__all__", None)
        for name in listed or [n for n in vars(module) if not n.startswith("_")]:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) \
                    or (inspect.isclass(obj) and issubclass(obj, BaseException)):
                continue
            if listed or obj.__module__ == module.__name__:  # not what a module imports
                found[obj.__name__] = obj
    for obj in EXTRA_CALLABLES:
        found[obj.__name__] = obj
    return sorted(found.items())


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric(param: inspect.Parameter) -> bool | None:
    """True for a numeric setting, False for another, None when the signature does not say."""
    if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.name in NOT_NUMERIC:
        return False
    if re.search(r"\b(float|int)\b", str(param.annotation)):
        return True
    default = param.default
    if _is_number(default) or (isinstance(default, tuple) and default and all(map(_is_number, default))):
        return True
    if param.annotation is not param.empty or isinstance(default, (str, bool)):
        return False  # annotated with something else (str, bool, a class), or a str/bool default
    return None


def numeric_parameters(name, obj):
    params = inspect.signature(obj).parameters.values()
    return sorted({p.name for p in params if _numeric(p)} | set(NUMERIC_EXTRA.get(name, ())))


def caller(name, obj):
    """A function kwargs -> call ``obj`` (for an estimator: fit it, where it checks its settings)."""
    base = REQUIRED.get(name, {})
    if name in ("MLPClassifier", "MLPRegressor"):
        return lambda **kw: obj(**{"hidden_layer_sizes": (3,), "max_iter": 2, **kw}).fit(X_FIT, Y_FIT)
    return lambda **kw: obj(**{**base, **kw})


TABLE = [(name, obj, arg) for name, obj in public_callables() for arg in numeric_parameters(name, obj)]
BAD = [float("nan"), np.float32("nan"), float("inf"), -float("inf"), True, "1"]


def _ids(case):
    return f"{case[0]}.{case[2]}"


# --- the table -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", BAD, ids=repr)
@pytest.mark.parametrize("case", TABLE, ids=_ids)
def test_a_bad_number_is_refused_naming_the_argument(case, bad):
    name, obj, arg = case
    if (name, arg) in NO_LIMIT and bad == float("inf"):
        pytest.skip("inf means no limit here (test_no_limit_settings_accept_inf)")
    value, shown = bad, arg
    if arg in IN_A_TUPLE:
        place, shown = IN_A_TUPLE[arg]
        value = place(bad)
    with pytest.raises(cr.ConfigError) as caught:
        caller(name, obj)(**{arg: value})
    message = str(caught.value)
    assert shown in message, message
    assert repr(bad) in message or str(bad) in message, message  # says what came


@pytest.mark.parametrize("case", [c for c in TABLE if (c[0], c[2]) in NO_LIMIT], ids=_ids)
def test_no_limit_settings_accept_inf(case):
    name, obj, arg = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        caller(name, obj)(**{arg: math.inf})


def test_every_no_limit_setting_is_in_the_table():
    assert set(NO_LIMIT) <= {(name, arg) for name, _, arg in TABLE}


def test_every_parameter_is_classified():
    """A public parameter must be numeric by its signature, or listed as numeric or not."""
    unclear = [f"{name}({p.name})" for name, obj in public_callables()
               for p in inspect.signature(obj).parameters.values()
               if _numeric(p) is None and p.name not in NUMERIC_EXTRA.get(name, ())]
    assert not unclear, f"classify these in NUMERIC_EXTRA or NOT_NUMERIC: {unclear}"


def test_every_callable_with_numbers_can_be_called_from_the_table():
    """A numeric setting is only tried when the callable's other required arguments are known."""
    missing = [name for name, obj, arg in TABLE
               if any(p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                      and p.name not in REQUIRED.get(name, {}) and p.name != arg
                      for p in inspect.signature(obj).parameters.values())]
    assert not missing, f"add the required arguments of {sorted(set(missing))} to REQUIRED"


def test_the_table_covers_the_settings_named_in_the_docs():
    covered = {(name, arg) for name, _, arg in TABLE}
    for case in [("SGD", "lr"), ("Adam", "lr"), ("Adam", "betas"), ("Dropout", "p"), ("LeakyReLU", "alpha"),
                 ("ELU", "alpha"), ("LSTM", "forget_bias"), ("FixedPointRNN", "tol"),
                 ("EarlyStopping", "min_delta"), ("ReduceLROnPlateau", "factor"),
                 ("ReduceLROnPlateau", "min_lr"), ("train_test_split", "test_size"), ("Normal", "std"),
                 ("DNI", "mix"), ("MLPClassifier", "alpha"), ("MLPRegressor", "batch_size"),
                 ("SGD", "clip_norm"), ("MinMaxScaler", "feature_range")]:
        assert case in covered, case


# --- what inf means where it is allowed --------------------------------------------------------
def test_clip_grad_norm_with_an_infinite_threshold_leaves_the_gradients_alone():
    grads = [np.array([3.0, 4.0])]
    assert cr.clip_grad_norm(grads, math.inf) == 5.0  # √(3² + 4²)
    np.testing.assert_array_equal(grads[0], [3.0, 4.0])


@pytest.mark.parametrize("clip", ["clip_norm", "clip_value"])
def test_an_optimizer_with_infinite_clipping_steps_as_one_without(clip):
    layer = cr.Dense(2, 1, weight=np.array([[1.0], [2.0]]), bias=np.zeros(1), dtype=np.float64)
    layer.grads["weight"][...] = [[30.0], [40.0]]
    cr.SGD(lr=0.1, **{clip: math.inf}).step(layer)
    np.testing.assert_allclose(layer.params["weight"], [[1.0 - 3.0], [2.0 - 4.0]], rtol=0, atol=1e-12)


def test_early_stopping_with_infinite_patience_trains_every_epoch():
    net = cr.Sequential(cr.Dense(1, 1, seed=0))
    x = np.ones((4, 1))
    stop = cr.EarlyStopping(monitor="loss", patience=math.inf)
    history = net.fit(x, x, loss="mse", optimizer=cr.SGD(lr=0.0), epochs=5, verbose=0, callbacks=[stop])
    assert len(history.history["loss"]) == 5 and stop.stopped_epoch is None  # lr 0: no improvement


# --- the validator itself ----------------------------------------------------------------------
@pytest.mark.parametrize("value, accepted, message", [
    (float("nan"), dict(low=0), "x must be a finite number >= 0, got nan"),
    (-1, dict(low=0), "x must be >= 0, got -1"),
    (1.0, dict(low=0, high=1, high_open=True), r"x must be in \[0, 1\), got 1.0"),
    (0, dict(low=0, low_open=True, no_limit=True), "x must be > 0, or inf for no limit, got 0"),
    (True, dict(), "x must be a finite number, got True"),
    (np.bool_(True), dict(), "x must be a finite number, got "),
    (2.0, dict(low=1, integer=True), "x must be a positive integer, got 2.0"),
    (-math.inf, dict(low=0, integer=True, no_limit=True), "x must be an integer >= 0, or inf"),
    ("3", dict(), "x must be a finite number, got '3'"),
])
def test_check_number_refuses_and_says_what_it_expected(value, accepted, message):
    with pytest.raises(cr.ConfigError, match=message):
        check_number(value, "x", **accepted)


def test_check_number_accepts_numpy_numbers_and_none_where_allowed():
    check_number(np.float32(0.5), "x", low=0, high=1)
    check_number(np.int64(3), "x", low=1, integer=True)
    check_number(None, "x", allow_none=True)
    check_positive_int(math.inf, "x", no_limit=True)
