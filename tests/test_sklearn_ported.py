"""scikit-learn's own MLP test suite, run against chainrule's estimators.

The installed ``sklearn/neural_network/tests/test_mlp.py`` is imported, not copied: each of
its test functions is re-bound here to a copy of that module's namespace in which
``MLPClassifier`` and ``MLPRegressor`` are chainrule's, and its parametrizations over
scikit-learn's classes are redirected to chainrule's. A newer scikit-learn brings its newer
tests along; tests it drops drop out here too.
"""

from __future__ import annotations

import copy
import os
import types

import pytest

pytest.importorskip("sklearn")
_mlp = pytest.importorskip("sklearn.neural_network.tests.test_mlp")

from sklearn.neural_network import MLPClassifier as _SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as _SkMLPRegressor  # noqa: E402

from chainrule.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

#: Tests that read or call scikit-learn's private internals, which chainrule's estimators do
#: not have (they keep their state in a chainrule network and optimizer), so cannot apply.
NOT_APPLICABLE: dict[str, str] = {
    # packs coefficients by hand and calls the private _loss_grad_lbfgs / _forward_pass
    "test_gradient": "calls MLP._loss_grad_lbfgs with scikit-learn's packed parameter layout",
    # read the private optimizer object's learning_rate attribute
    "test_learning_rate_warmstart": "reads MLP._optimizer.learning_rate (scikit-learn's SGDOptimizer)",
    "test_adaptive_learning_rate": "reads MLP._optimizer.learning_rate (scikit-learn's SGDOptimizer)",
}

#: Tests that apply but that chainrule fails on purpose: it behaves differently, for a stated reason.
#: Empty: each difference the suite found has been closed (docs/estimators.md).
KNOWN_DIFFERENCES: dict[str, str] = {}

#: Parametrizations that chainrule fails on purpose: (test, estimator class) -> (error, reason).
KNOWN_DIFFERENT_CASES: dict[tuple[str, type], tuple[type[BaseException], str]] = {}

_SWAP = {_SkMLPClassifier: MLPClassifier, _SkMLPRegressor: MLPRegressor}


def _swap(value):
    """A parametrize value with scikit-learn's estimator classes replaced by chainrule's."""
    if isinstance(value, type):
        return _SWAP.get(value, value)
    if isinstance(value, (list, tuple)):
        return type(value)(_swap(v) for v in value)
    return value


def _case(name: str, value):
    """A parametrize value, marked as a strict xfail when it is one of KNOWN_DIFFERENT_CASES."""
    known = KNOWN_DIFFERENT_CASES.get((name, value)) if isinstance(value, type) else None
    if known is None:
        return value
    error, reason = known
    return pytest.param(value, marks=pytest.mark.xfail(raises=error, reason=reason, strict=True))


def _port(func: types.FunctionType, namespace: dict) -> types.FunctionType:
    """``func`` with ``namespace`` as its globals and its parametrize marks pointed at chainrule."""
    ported = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__)
    ported.__dict__.update(func.__dict__)
    ported.__module__ = __name__
    ported.__qualname__ = func.__qualname__
    marks = []
    for mark in getattr(func, "pytestmark", []):
        if mark.name == "parametrize":
            mark = copy.copy(mark)
            args = list(mark.args)
            args[1] = [_case(func.__name__, _swap(v)) for v in args[1]]
            object.__setattr__(mark, "args", tuple(args))
        marks.append(mark)
    if marks:
        ported.pytestmark = marks
    return ported


_NAMESPACE = dict(vars(_mlp))
_NAMESPACE.update(MLPClassifier=MLPClassifier, MLPRegressor=MLPRegressor)

for _name, _func in vars(_mlp).items():
    if _name.startswith("test_") and isinstance(_func, types.FunctionType):
        _test = _port(_func, _NAMESPACE)
        if _name in NOT_APPLICABLE:
            _test = pytest.mark.skip(reason=f"scikit-learn internals: {NOT_APPLICABLE[_name]}")(_test)
        elif _name in KNOWN_DIFFERENCES:
            _test = pytest.mark.xfail(raises=AssertionError, reason=KNOWN_DIFFERENCES[_name], strict=True)(_test)
        globals()[_name] = _test


@pytest.fixture
def global_random_seed() -> int:
    """scikit-learn's fixture of the same name (its conftest is not loaded here): its default seed."""
    return int(os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED", "42").split("-")[0])
