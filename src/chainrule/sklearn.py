"""scikit-learn estimators on chainrule networks: :class:`MLPClassifier` and :class:`MLPRegressor`.

They take the parameters of scikit-learn's own MLPs (same names, defaults and meaning: the
lbfgs, sgd and adam solvers, dense or sparse CSR/CSC X, the regressor's squared-error and
Poisson losses) and train the same objective in the same way, so they can replace them in a
pipeline. On top they offer what scikit-learn's MLP does not: ``dropout``, any chainrule
activation, a validation set of your own (``fit(X, y, X_val=..., y_val=...)``), chainrule
callbacks (EarlyStopping, ModelCheckpoint, CSVLogger, ReduceLROnPlateau, ...) and float32.

The objective, per mini-batch B with sample weights w (1 when none are given):

    L = Σ_{i∈B} w_i ℓ(z_i, t_i) / Σ_{i∈B} w_i  +  α/2 · Σ_layers ‖W‖² / Σ_{i∈B} w_i

with ℓ the softmax cross-entropy (several classes), the sigmoid cross-entropy summed over
outputs (two classes, or multilabel), or ½ Σ_k (z_k − t_k)² (regression) of the last layer's
output z. Its gradient with respect to z is w_i (p_i − t_i) / Σ w (p = softmax, sigmoid or
identity of z), which backpropagation carries through the network. Weights start as in
scikit-learn (Glorot uniform, biases too), drawn from ``random_state``, and the epoch loop,
``tol``/``n_iter_no_change`` stopping, ``early_stopping`` with a held-out
``validation_fraction`` and the "invscaling"/"adaptive" learning rates follow scikit-learn's
MLP step by step.

``solver="lbfgs"`` hands the full-batch objective (the same L over all samples) and its gradient,
both from the network's forward and backward passes, to scipy's L-BFGS-B. A sparse X goes to the
first Dense layer as it is (sparse @ dense forward, Xᵀ·δ gradient), never densified.

The fitted network is ``net_`` (a :class:`chainrule.Sequential` of Dense and activation
layers, without the output non-linearity): ``est.net_.save("model.npz")`` stores it in
chainrule's pickle-free format. The estimator itself pickles (joblib, process pools).
"""

from __future__ import annotations

import copy
import functools
import warnings

import numpy as np

try:
    from scipy.sparse import issparse as _issparse
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state, column_or_1d
    from sklearn.utils import shuffle as sk_shuffle
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import type_of_target, unique_labels
    from sklearn.utils.optimize import _check_optimize_result
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("chainrule.sklearn needs scikit-learn >= 1.6: pip install 'chainrule[sklearn]'"
                      f" ({exc})") from exc

from . import registry
from ._checks import check_number, check_positive_int, quiet_float_errors
from .callbacks import Callback
from .errors import ChainruleError, ConfigError, DataError, InputTypeError, TrainingError
from .layers import Dense, Dropout, Layer
from .losses import SSE, BinaryCrossEntropy, CrossEntropy, Poisson
from .network import PREDICT_BATCH, Sequential
from .optim import SGD, Adam
from .regularizers import L2
from .step import NonFiniteLoss, Step

__all__ = ["MLPClassifier", "MLPRegressor"]

#: The sparse formats the estimators take as they are (the first Dense multiplies them sparse @ dense).
_SPARSE = ["csr", "csc"]


def _lbfgs_verbosity(verbose) -> dict:
    """scipy's L-BFGS-B option for printing progress (scipy >= 1.15 has none and prints nothing)."""
    try:
        from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
    except ImportError:  # pragma: no cover - older scikit-learn
        return {"iprint": 1 if verbose else -1}
    return _get_additional_lbfgs_options_dict("iprint", 1 if verbose else -1)


def _stochastic_solver(est) -> bool:
    """partial_fit exists for the sgd and adam solvers only (scikit-learn's rule and message)."""
    if est.solver not in ("sgd", "adam"):
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. {est.solver} is not"
                             " stochastic.")
    return True


_MIXED: dict[type, type] = {}

#: A diverging fit: a TrainingError, and a ValueError as scikit-learn's MLP raises for non-finite weights.
_DivergedError = type("TrainingError", (TrainingError, ValueError), {"__module__": __name__})
#: scikit-learn's words for it, quoted in chainrule's message so that a search for either finds it.
_SKLEARN_NONFINITE = ("Solver produced non-finite parameter weights. The input data may contain large values"
                      " and need to be preprocessed.")


def _as_chainrule_error(exc: Exception) -> ChainruleError:
    """The same error, message and type (so scikit-learn's checks still see a ValueError, a
    NotFittedError...) but also a ChainruleError."""
    if type(exc) is ValueError:
        return DataError(*exc.args)
    if type(exc) is TypeError:
        return InputTypeError(*exc.args)
    cls = _MIXED.get(type(exc))
    if cls is None:
        cls = _MIXED[type(exc)] = type(type(exc).__name__, (ChainruleError, type(exc)), {"__module__": __name__})
    new = cls.__new__(cls)
    new.args = exc.args
    new.__dict__.update(getattr(exc, "__dict__", {}))
    return new


def _chainrule_errors(method):
    """A public method whose ValueErrors and TypeErrors (scikit-learn's input validation) come out
    as ChainruleErrors too, and whose diverging arithmetic is reported, not warned about."""
    @functools.wraps(method)
    def public(self, *args, **kwargs):
        try:
            with quiet_float_errors():
                return method(self, *args, **kwargs)
        except ChainruleError:
            raise
        except (ValueError, TypeError) as exc:
            raise _as_chainrule_error(exc).with_traceback(exc.__traceback__) from None
    return public


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) = e^−log(1 + e^−z), exact in the tails (σ(−40) ≈ 4e−18, not 0) and never overflowing."""
    return np.exp(-np.logaddexp(0, -z))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


#: scikit-learn's output losses as chainrule's, each per sample, averaged over the (weighted) samples:
#: softmax: ℓ = logsumexp(z) − z_t;  logistic: ℓ = Σ_k [max(z,0) − z·t + log(1 + e^−|z|)];  identity: ℓ = ½ Σ_k (z − t)²
#: exp (MLPRegressor(loss="poisson")): ℓ = Σ_k [e^z − t·z + t·log t − t], half the Poisson deviance of μ = e^z
_LOSSES = {"softmax": CrossEntropy, "logistic": lambda: BinaryCrossEntropy(from_logits=True, reduction="sum"),
           "identity": SSE, "exp": lambda: Poisson(reduction="sum")}


#: The estimators' numeric settings and the values each accepts (see ``check_number``); as in
#: scikit-learn, n_iter_no_change=inf never stops for lack of improvement.
_NUMBERS = {
    "alpha": dict(low=0),
    "learning_rate_init": dict(low=0, low_open=True),
    "power_t": dict(low=0),
    "max_iter": dict(low=1, integer=True),
    "tol": dict(low=0),
    "momentum": dict(low=0, high=1),
    "validation_fraction": dict(low=0, high=1, low_open=True, high_open=True),
    "beta_1": dict(low=0, high=1, high_open=True),
    "beta_2": dict(low=0, high=1, high_open=True),
    "epsilon": dict(low=0, low_open=True),
    "n_iter_no_change": dict(low=1, integer=True, no_limit=True),
    "max_fun": dict(low=1, integer=True),
    "dropout": dict(low=0, high=1, high_open=True),
}


def _check_settings(est) -> None:
    """Check an estimator's settings at fit time (scikit-learn's convention), raising ConfigError."""
    who = type(est).__name__
    est._hidden_sizes()
    if est.batch_size != "auto":
        check_positive_int(est.batch_size, f"{who} batch_size")
    for name, accepted in _NUMBERS.items():
        check_number(getattr(est, name), f"{who} {name}", **accepted)
    names = [n for n in registry.names("activation") if n != "softmax"]  # scikit-learn's four and chainrule's
    if not (est.activation in names or (isinstance(est.activation, type) and issubclass(est.activation, Layer))):
        raise ConfigError(f"{who} activation must be one of {names} or a chainrule Layer class,"
                          f" got {est.activation!r}")
    if est.solver not in ("sgd", "adam", "lbfgs"):
        raise ConfigError(f"{who} solver must be 'lbfgs', 'sgd' or 'adam', got {est.solver!r}")
    if est.solver == "lbfgs" and (est.dropout or est.callbacks):
        raise ConfigError(f"{who} solver='lbfgs' minimizes the full-batch loss: it takes no dropout"
                          f" and no callbacks (use 'sgd' or 'adam'), got dropout={est.dropout!r},"
                          f" callbacks={est.callbacks!r}")
    if getattr(est, "loss", "squared_error") not in ("squared_error", "poisson"):
        raise ConfigError(f"{who} loss must be 'squared_error' or 'poisson', got {est.loss!r}")
    if est.learning_rate not in ("constant", "invscaling", "adaptive"):
        raise ConfigError(f"{who} learning_rate must be 'constant', 'invscaling' or"
                          f" 'adaptive', got {est.learning_rate!r}")
    if est.callbacks is not None and not all(isinstance(c, Callback) for c in est.callbacks):
        raise ConfigError(f"{who} callbacks must be a list of chainrule Callbacks, got {est.callbacks!r}")
    if est.dtype is not None and np.dtype(est.dtype) not in (np.float32, np.float64):
        raise ConfigError(f"{who} dtype must be None, float32 or float64, got {est.dtype!r}")


class _LayerArrays(list):
    """``coefs_`` or ``intercepts_``: a list of the network's arrays whose items can be assigned
    (``est.coefs_[0] = W`` copies W into the first Dense layer, its shape checked)."""

    def __init__(self, est, key: str, attr: str, arrays: list[np.ndarray]) -> None:
        super().__init__(arrays)
        self._est, self._key, self._attr = est, key, attr

    def __setitem__(self, index, value) -> None:
        new = list(self)
        new[index] = value
        self._est._copy_arrays(self._key, self._attr, list(self), new)

    def __reduce__(self):  # pickles (and copies) as a plain list
        return list, (list(self),)


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: parameters, network, the epoch loop."""

    _score_name = "score"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, dropout=0.0, callbacks=None, dtype=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.callbacks = callbacks
        self.dtype = dtype

    # --- parameters ------------------------------------------------------------------------
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        for i, s in enumerate(sizes):
            check_positive_int(s, f"{type(self).__name__} hidden_layer_sizes[{i}]")
        return [int(s) for s in sizes]

    # --- the network -------------------------------------------------------------------------
    def _build(self, n_features: int, n_outputs: int, dtype, rs, use_initial: bool = False) -> None:
        """Glorot-uniform weights and biases in scikit-learn's order, from ``rs`` (with ``use_initial``,
        those assigned to ``coefs_`` and ``intercepts_`` before the first fit in their place)."""
        sizes = [n_features, *self._hidden_sizes(), n_outputs]
        factor = 2.0 if self.activation in ("logistic", "sigmoid") else 6.0
        act = self.activation if isinstance(self.activation, type) else registry.activation(self.activation)
        weights, biases = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = np.sqrt(factor / (fan_in + fan_out))
            weights.append(rs.uniform(-bound, bound, (fan_in, fan_out)))
            biases.append(rs.uniform(-bound, bound, fan_out))
        for key, attr, arrays in (("weight", "coefs_", weights), ("bias", "intercepts_", biases)):
            initial = self.__dict__.pop(f"_initial_{key}", None)  # assigned before the first fit
            if initial is not None and use_initial:
                self._copy_arrays(key, attr, arrays, initial)
        dense = [Dense(w.shape[0], w.shape[1], weight=w, bias=b) for w, b in zip(weights, biases, strict=True)]
        layers: list[Layer] = []
        for i, layer in enumerate(dense):
            layers.append(layer)
            if i < len(dense) - 1:
                layers.append(act())
                if self.dropout:
                    layers.append(Dropout(self.dropout, seed=int(rs.randint(2**31 - 1))))
        self.net_ = Sequential(*layers, dtype=dtype)
        self.n_layers_ = len(sizes)
        self.n_outputs_ = n_outputs
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        early = self.early_stopping and self.solver != "lbfgs"  # lbfgs has no early stopping
        self.best_loss_ = None if early else np.inf
        self.best_validation_score_ = -np.inf if early else None
        self.validation_scores_ = [] if early else None
        self._callbacks_started = False

    def _dense(self) -> list[Dense]:
        return [layer for layer in self.net_.layers if isinstance(layer, Dense)]

    @property
    def coefs_(self) -> list[np.ndarray]:
        """The weight matrices, (n_in, n_out) each; the network's own arrays (not copies).

        Assigning ``est.coefs_ = [W1, W2, ...]`` (or ``est.coefs_[i] = W``) copies into the network,
        each shape checked. Before the first fit, what is assigned is kept and becomes the starting
        weights of the next ``partial_fit`` or warm-started ``fit`` (as in scikit-learn).
        """
        return self._get_arrays("weight", "coefs_")

    @coefs_.setter
    def coefs_(self, value) -> None:
        self._set_arrays("weight", "coefs_", value)

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The bias vectors; the network's own arrays (not copies). Assignable as ``coefs_``."""
        return self._get_arrays("bias", "intercepts_")

    @intercepts_.setter
    def intercepts_(self, value) -> None:
        self._set_arrays("bias", "intercepts_", value)

    def _get_arrays(self, key: str, attr: str) -> list[np.ndarray]:
        if not self.__sklearn_is_fitted__() and f"_initial_{key}" in self.__dict__:
            return self.__dict__[f"_initial_{key}"]
        check_is_fitted(self)
        return _LayerArrays(self, key, attr, [layer.params[key] for layer in self._dense()])

    def _set_arrays(self, key: str, attr: str, value) -> None:
        if not self.__sklearn_is_fitted__():  # kept as it is (users fill the list in place) until the build
            self.__dict__[f"_initial_{key}"] = value
            return
        self._copy_arrays(key, attr, [layer.params[key] for layer in self._dense()], value)

    def _copy_arrays(self, key: str, attr: str, targets: list[np.ndarray], value) -> None:
        """Copy ``value`` (one array per Dense layer) into ``targets``, every shape checked first."""
        who = type(self).__name__
        if not isinstance(value, (list, tuple)) or len(value) != len(targets):
            got = f"{len(value)} arrays" if isinstance(value, (list, tuple)) else repr(type(value).__name__)
            raise ConfigError(f"{who} {attr} must be a list of {len(targets)} arrays (one {key} per Dense"
                              f" layer), got {got}")
        arrays = []
        for i, (target, v) in enumerate(zip(targets, value, strict=True)):
            try:
                arr = np.asarray(v, dtype=np.float64)
            except (TypeError, ValueError):
                arr = None
            if arr is None or arr.shape != target.shape:
                got = f"shape {arr.shape}" if arr is not None else repr(v)
                raise ConfigError(f"{who} {attr}[{i}] (the {key} of Dense layer {i + 1}) must have shape"
                                  f" {target.shape}, got {got}")
            if not np.isfinite(arr).all():
                raise ConfigError(f"{who} {attr}[{i}] (the {key} of Dense layer {i + 1}) must be finite,"
                                  " got NaN or inf")
            arrays.append(arr)
        for target, arr in zip(targets, arrays, strict=True):
            target[...] = arr

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "net_")

    def _new_optimizer(self):
        if self.solver == "adam":
            return Adam(lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        return SGD(lr=self.learning_rate_init, momentum=self.momentum,
                   nesterov=bool(self.nesterovs_momentum and self.momentum > 0))

    # --- fitting -------------------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, X_val=None, y_val=None, incremental=False, classes=None):
        _check_settings(self)
        first = not self.__sklearn_is_fitted__() or (not self.warm_start and not incremental)
        X, y = validate_data(self, X, y, multi_output=True, dtype=(np.float64, np.float32), reset=first,
                             accept_sparse=_SPARSE, y_numeric=not isinstance(self, ClassifierMixin))
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
            if not sample_weight.any():
                raise ValueError("Sample weights must contain at least one non-zero number")
        T = self._encode_target(y, first, incremental, classes)
        if X_val is not None or y_val is not None:
            if X_val is None or y_val is None:
                raise ValueError("pass both X_val and y_val, or neither")
            X_val = validate_data(self, X_val, reset=False, dtype=(np.float64, np.float32), accept_sparse=_SPARSE)
            y_val = self._check_val_target(y_val, X_val.shape[0])
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")

        rs = check_random_state(self.random_state)
        if first:
            dtype = self.dtype if self.dtype is not None else (
                np.float32 if X.dtype == np.float32 else np.float64)
            self._build(X.shape[1], T.shape[1] if T.ndim == 2 else len(self.classes_), dtype, rs,
                        use_initial=incremental or self.warm_start)
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._new_optimizer()
        self.net_.optimizer = self._optimizer

        sw_val = None
        if self.early_stopping and X_val is None and self.solver != "lbfgs":  # lbfgs: no early stopping
            parts = self._split(X, y, T, sample_weight, rs)
            X, X_val, _, y_val, T, _ = parts[:6]
            if sample_weight is not None:
                sample_weight, sw_val = parts[6], parts[7]
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the"
                                 " size of your dataset.")
        if X_val is not None and self.validation_scores_ is None:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
        X = self._net_input(X)
        T = T.astype(self.net_.dtype) if T.dtype.kind == "f" else T
        sw = None if sample_weight is None else sample_weight.astype(self.net_.dtype)
        if self.solver == "lbfgs":
            self._lbfgs(X, T, sw)
            if X_val is not None:
                self.validation_scores_.append(self._score(X_val, y_val, sw_val))
                self.best_validation_score_ = max(self.best_validation_score_, self.validation_scores_[-1])
        else:
            self._stochastic(X, T, sw, X_val, y_val, sw_val, rs, incremental)
        return self

    def _split(self, X, y, T, sample_weight, rs) -> list:
        """fit's validation split for early stopping, scikit-learn's: stratified only for a classifier
        with one output (one or two classes), on the column ``y == classes_[-1]``; for more classes
        (a rare class of one sample must not stop the fit) and for regression, a plain shuffle."""
        stratify = None
        if isinstance(self, ClassifierMixin) and not self._multilabel and len(self.classes_) <= 2:
            stratify = (y == self.classes_[-1]).reshape(-1, 1)
        arrays = (X, y, T, *([sample_weight] if sample_weight is not None else []))
        try:
            return train_test_split(*arrays, random_state=rs, test_size=self.validation_fraction,
                                    stratify=stratify)
        except ValueError as exc:
            if stratify is None or "too few members" not in str(exc):
                raise
            last, first = (repr(c.tolist() if isinstance(c, np.generic) else c) for c in self.classes_[[-1, 0]])
            raise ValueError(f"{exc} (for two classes the split is stratified on y == {last}, as scikit-learn's"
                             f" is: 'True' is class {last}, 'False' class {first})") from None

    def _net_input(self, X):
        """X, validated by ``validate_data``, in the network's dtype: a CSR matrix for sparse X (rows are
        sliced into batches and the first Dense multiplies it as it is), else the network's checks."""
        if _issparse(X):
            return X.tocsr().astype(self.net_.dtype, copy=False)
        return self.net_._check_input(X, "X")

    def _lbfgs(self, X, T, sw) -> None:
        """scipy's L-BFGS-B on the full-batch objective of scikit-learn's lbfgs solver,

            f(θ) = Σ_i w_i ℓ(z_i, t_i) / Σ_i w_i  +  α/2 · Σ_layers ‖W‖² / Σ_i w_i,

        its value and gradient from the network's forward and backward passes (the training step's
        loss and regularizer), θ = every weight then every bias, flattened in the layers' order."""
        import scipy.optimize

        net, step = self.net_, self._train_step()
        params = [layer.params["weight"] for layer in self._dense()] + [layer.params["bias"] for layer in self._dense()]
        grads = [layer.grads["weight"] for layer in self._dense()] + [layer.grads["bias"] for layer in self._dense()]
        bounds = np.cumsum([0] + [p.size for p in params])
        w = np.ones(X.shape[0], net.dtype) if sw is None else sw

        def unpack(theta):
            for p, start, stop in zip(params, bounds[:-1], bounds[1:], strict=True):
                p[...] = theta[start:stop].reshape(p.shape)

        def objective(theta):
            unpack(theta)
            value, delta = step.loss._weighted_value_and_grad(net._forward_train(X), T, w)
            if not np.isfinite(value):  # L-BFGS-B backs off from an infinite value in its line search
                return np.inf, np.zeros_like(theta)
            step.backward(T, delta)
            value += step.regularize(float(w.sum()))
            return value, np.concatenate([g.ravel() for g in grads]).astype(np.float64)

        self.loss_curve_ = []
        result = scipy.optimize.minimize(
            objective, np.concatenate([p.ravel() for p in params]).astype(np.float64), method="L-BFGS-B",
            jac=True, options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol,
                               **_lbfgs_verbosity(self.verbose)},
            callback=lambda intermediate_result: self.loss_curve_.append(float(intermediate_result.fun)))
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        self.loss_ = float(result.fun)
        self.best_loss_ = min(self.loss_curve_, default=self.loss_)
        unpack(result.x)

    def _batch_size(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be"
                          " clipped", stacklevel=3)
        return int(np.clip(self.batch_size, 1, n))

    def _stochastic(self, X, T, sw, X_val, y_val, sw_val, rs, incremental) -> None:
        net, opt = self.net_, self._optimizer
        callbacks = list(self.callbacks or [])
        n = X.shape[0]
        bs = self._batch_size(n)
        index = np.arange(n)
        step = self._train_step()
        early = self.early_stopping and X_val is not None
        best_weights = None
        if callbacks and not (incremental and self._callbacks_started):
            for cb in callbacks:
                cb.set_model(net)
                cb.on_train_begin()
            self._callbacks_started = True
        net.stop_training = False
        self.n_iter_ = 0 if not incremental else self.n_iter_
        try:
            for _ in range(self.max_iter):
                epoch = len(self.loss_curve_)
                for cb in callbacks:
                    cb.on_epoch_begin(epoch)
                if self.shuffle:
                    index = sk_shuffle(index, random_state=rs)
                total = 0.0
                try:
                    for b, start in enumerate(range(0, n, bs)):
                        rows = index[start:start + bs]
                        value = self._step(step, X[rows], T[rows], None if sw is None else sw[rows], epoch, b)
                        total += value * len(rows)
                        for cb in callbacks:
                            cb.on_batch_end(b, {"loss": value})
                except TrainingError as exc:
                    if not early:
                        raise
                    self._diverged(str(exc), epoch)
                    break
                self.n_iter_ += 1
                self.loss_ = total / n
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                logs = {"loss": self.loss_}
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                if X_val is not None:
                    score = self._score(X_val, y_val, sw_val)
                    self.validation_scores_.append(score)
                    logs["val_loss"] = self._val_loss(X_val, y_val, sw_val)
                    logs[f"val_{self._score_name}"] = score
                    if self.verbose:
                        print(f"Validation score: {score:f}")
                stop_now, improved = self._update_no_improvement(early)
                if early and improved:
                    best_weights = net.get_weights()
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    opt.lr = self.learning_rate_init / (self.t_ + 1) ** self.power_t
                if stop_now and self._trigger_stopping(early):
                    break
                if net.stop_training or incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and"
                                  " the optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4)
        finally:
            if callbacks and not incremental:
                for cb in callbacks:
                    cb.on_train_end()
        if early and best_weights is not None:
            net.set_weights(best_weights)

    def _train_step(self) -> Step:
        """The library's training step with scikit-learn's loss and its L2 penalty α/(2n)·Σ‖W‖²."""
        regularizer = L2(self.alpha, per_sample=True) if self.alpha else None
        return Step(self.net_, _LOSSES[self._out](), self._optimizer, regularizer=regularizer)

    def _step(self, step: Step, xb, tb, wb, epoch, batch) -> float:
        """One update on a batch (sample weights: ones when none were given; all zero: no update)."""
        try:
            return step(xb, tb, np.ones(xb.shape[0], self.net_.dtype) if wb is None else wb)[1]
        except NonFiniteLoss as exc:
            raise _DivergedError(f"{type(self).__name__}: the loss became {exc.value} at epoch {epoch + 1},"
                                 f" batch {batch + 1}, and training stopped before that batch's update, so the"
                                 " weights are those before it (scikit-learn's MLP, which applies the update,"
                                 f" ends such a fit with '{_SKLEARN_NONFINITE}'): scale the inputs or lower"
                                 " learning_rate_init") from None

    def _diverged(self, message: str, epoch: int) -> None:
        """With early stopping, a non-finite training loss ends training as scikit-learn's diverging fit
        ends: the epoch is recorded (loss_ NaN, validation score NaN), the best weights are restored."""
        self.n_iter_ += 1
        self.loss_ = np.nan
        self.loss_curve_.append(np.nan)
        self.validation_scores_.append(np.nan)
        warnings.warn(f"{message}. Training stopped; the weights of the best validation score"
                      f" ({self.best_validation_score_:g}) are restored.", ConvergenceWarning, stacklevel=5)

    def _update_no_improvement(self, early: bool) -> tuple[bool, bool]:
        """scikit-learn's rule: (stop?, is the validation score the best so far?)."""
        improved = False
        if early:
            score = self.validation_scores_[-1]
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                improved = True
        else:
            if self.validation_scores_:
                self.best_validation_score_ = max(self.best_validation_score_, self.validation_scores_[-1])
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]
        return self._no_improvement_count > self.n_iter_no_change, improved

    def _trigger_stopping(self, early: bool) -> bool:
        what = "Validation score" if early else "Training loss"
        msg = f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} consecutive epochs."
        if self.solver == "sgd" and self.learning_rate == "adaptive":
            if self._optimizer.lr > 1e-6:
                self._optimizer.lr /= 5
                self._no_improvement_count = 0
                if self.verbose:
                    print(f"{msg} Setting learning rate to {self._optimizer.lr:f}")
                return False
        if self.verbose:
            print(f"{msg} Stopping.")
        return True

    def _val_loss(self, X_val, y_val, sw_val) -> float:
        z = self._raw_output(X_val)
        t = self._encode_known(y_val)
        t = t.astype(z.dtype) if t.dtype.kind == "f" else t
        w = np.ones(len(z), z.dtype) if sw_val is None else np.asarray(sw_val, z.dtype)
        return _LOSSES[self._out]()._weighted_value_and_grad(z, t, w)[0]

    # --- using --------------------------------------------------------------------------------
    def _output(self, X) -> np.ndarray:
        """The network's output (logits, or the regressor's value before its output activation) for
        X, in the network's dtype (float32 for a model trained in float32, as scikit-learn's)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32), accept_sparse=_SPARSE)
        if _issparse(X):
            return self._raw_output(X)
        return self.net_.predict(X)

    def _raw_output(self, X) -> np.ndarray:
        """The output for X already validated (by fit or ``_output``), without the network's checks:
        a diverged network's inf or NaN comes back as it is, for the validation score to record."""
        if not _issparse(X):
            return self.net_._predict_prepared(np.asarray(X, self.net_.dtype))
        X = X.tocsr().astype(self.net_.dtype, copy=False)  # dense row slices of it, a batch at a time
        size = PREDICT_BATCH
        return np.concatenate([self.net_._predict_prepared(X[i:i + size], None) for i in range(0, X.shape[0], size)])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def __getstate__(self):
        """Pickle without the arrays the layers keep from their last forward pass."""
        state = dict(super().__getstate__())
        if "net_" in state:
            net = copy.copy(state["net_"])
            net.layers = []
            for layer in state["net_"].layers:
                layer = copy.copy(layer)
                for key, value in list(vars(layer).items()):
                    if key.startswith("_") and isinstance(value, np.ndarray):
                        setattr(layer, key, None)
                net.layers.append(layer)
            state["net_"] = net
        return state


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier on a chainrule network (log-loss; lbfgs, sgd or adam).

    Two classes give one sigmoid output, more give a softmax over one output per class, and
    a label-indicator matrix y (n_samples, n_labels) gives one sigmoid per label (multilabel).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
    activation : str or chainrule Layer class, default "relu"
        "identity", "logistic" (= "sigmoid"), "tanh", "relu", "leaky_relu", "elu", "softplus",
        or a Layer class (instantiated without arguments after each hidden Dense).
    solver : {"adam", "sgd", "lbfgs"}
        lbfgs: scipy's L-BFGS-B on the full-batch loss (``max_iter`` iterations at most,
        ``max_fun`` loss evaluations, ``tol`` its gradient tolerance); no dropout, no callbacks.
    alpha : float
        L2 penalty on the weights (not the biases), as in scikit-learn.
    batch_size : int or "auto"
        "auto" is min(200, n_samples).
    learning_rate : {"constant", "invscaling", "adaptive"}
        The sgd solver's schedule.
    learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, warm_start,
    momentum, nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, epsilon,
    n_iter_no_change, max_fun
        As in :class:`sklearn.neural_network.MLPClassifier`.
    dropout : float
        Dropout probability after each hidden activation (0 = none).
    callbacks : list of chainrule.Callback, optional
        Called with the logs of each epoch: "loss", and with a validation set "val_loss" and
        "val_accuracy". ``callback.model`` is ``net_``.
    dtype : None, numpy.float32 or numpy.float64
        The network's dtype; None follows X (float32 input stays float32, all else float64).

    Attributes
    ----------
    classes_ : ndarray
    net_ : chainrule.Sequential
        The trained network (outputs logits).
    coefs_, intercepts_ : list of ndarray
        The network's own arrays; assignable (shapes checked), before or after a fit.
    loss_, loss_curve_, best_loss_, validation_scores_, best_validation_score_, n_iter_, t_,
    n_layers_, n_outputs_, out_activation_, n_features_in_, feature_names_in_
        As in scikit-learn. ``validation_scores_`` is filled whenever there is a validation
        set (``early_stopping`` or ``X_val``).
    """

    _score_name = "accuracy"

    @_chainrule_errors
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None):
        """Train on (X, y) for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        y : array-like (n_samples,) labels, or (n_samples, n_labels) 0/1 for multilabel
        sample_weight : array-like (n_samples,), optional
        X_val, y_val : array-like, optional
            A validation set, scored after each epoch (``validation_scores_``); with
            ``early_stopping=True`` it replaces the held-out ``validation_fraction``.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, X_val, y_val)

    @available_if(_stochastic_solver)
    @_chainrule_errors
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y); ``classes`` (every label) is required on the first call."""
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _encode_target(self, y, first: bool, incremental: bool, classes) -> np.ndarray:
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(f"Unknown label type: {kind!r}; {type(self).__name__} needs class labels"
                             " or a 0/1 label-indicator matrix")
        if first:
            if incremental and classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            if kind == "multilabel-indicator":
                self.classes_ = np.arange(y.shape[1])
                self._out = "logistic"
            else:
                self.classes_ = unique_labels(classes if classes is not None else y)
                self._out = "softmax" if len(self.classes_) > 2 else "logistic"
            self.out_activation_ = "softmax" if self._out == "softmax" else "logistic"
            self._multilabel = kind == "multilabel-indicator"
        else:
            if (kind == "multilabel-indicator") != self._multilabel:
                fitted = "a label-indicator matrix" if self._multilabel else "class labels"
                raise ValueError(f"y is {kind}, but the model was fitted on {fitted}")
            if kind != "multilabel-indicator":
                if classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
                    raise ValueError(f"`classes={classes!r}` is not the same as on the first call to"
                                     f" partial_fit ({self.classes_!r})")
                if self.warm_start and not incremental and set(unique_labels(y)) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in"
                                     f" the previous call to fit. Previously got {self.classes_}, `y` has"
                                     f" {unique_labels(y)}")
        if not self._multilabel:
            new = np.setdiff1d(unique_labels(y), self.classes_)
            if len(new):
                raise ValueError(f"`y` has classes not in `self.classes_`: {new!r};"
                                 f" the model knows {self.classes_!r}")
        return self._encode_known(y)

    def _encode_known(self, y) -> np.ndarray:
        y = np.asarray(y)
        if self._multilabel:
            return y.astype(np.float64)
        index = np.searchsorted(self.classes_, y)
        if self._out == "softmax":
            return index.astype(np.intp)
        return index.astype(np.float64).reshape(-1, 1)

    def _check_val_target(self, y_val, n: int):
        y_val = np.asarray(y_val)
        if len(y_val) != n:
            raise ValueError(f"X_val has {n} samples, y_val has {len(y_val)}")
        if y_val.ndim == 1 or y_val.shape[1] == 1:
            y_val = y_val.reshape(-1)
            new = np.setdiff1d(unique_labels(y_val), self.classes_)
            if len(new):
                raise ValueError(f"y_val has classes not in y: {new!r}")
        return y_val

    def _score(self, X, y, sample_weight=None) -> float:
        """Accuracy on X already validated (fit's validation set: no feature-name checks per epoch)."""
        return accuracy_score(y, self._labels(self._raw_output(X)), sample_weight=sample_weight)

    @_chainrule_errors
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n_samples, n_classes); one column per label for multilabel."""
        z = self._output(X)
        if self._out == "softmax":
            return _softmax(z)
        if len(self.classes_) == 1:  # the one class seen in fit: probability 1, whatever the output
            return np.ones((len(z), 1), z.dtype)
        p = _sigmoid(z)
        if not self._multilabel:  # two classes, one output: 1 − σ(z) = σ(−z), exact for large z too
            return np.hstack([_sigmoid(-z), p])
        return p

    @_chainrule_errors
    def predict_log_proba(self, X) -> np.ndarray:
        """Natural log of ``predict_proba``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    @_chainrule_errors
    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample (a 0/1 matrix for multilabel)."""
        return self._labels(self._output(X))

    def _labels(self, z: np.ndarray) -> np.ndarray:
        if self._out == "softmax":
            return self.classes_[z.argmax(axis=1)]
        if len(self.classes_) == 1:
            return np.repeat(self.classes_, len(z))
        if not self._multilabel:
            return self.classes_[(z[:, 0] > 0).astype(np.intp)]
        return (z > 0).astype(np.int64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor on a chainrule network (squared error or Poisson).

    One output unit per target column, linear (``loss="squared_error"``) or exp
    (``loss="poisson"``: half the Poisson deviance of the rate e^z, for targets >= 0). The other
    parameters and attributes are those of :class:`MLPClassifier` (without ``classes_``); the
    callbacks' validation score is "val_r2". Scale the target (e.g. a
    ``TransformedTargetRegressor``) when its values are large.
    """

    _score_name = "r2"
    _out = "identity"
    _multilabel = False

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, dropout=0.0, callbacks=None, dtype=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
            max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
            beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            dropout=dropout, callbacks=callbacks, dtype=dtype)
        self.loss = loss

    @_chainrule_errors
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None):
        """Train on (X, y) for up to ``max_iter`` epochs; see :meth:`MLPClassifier.fit`."""
        return self._fit(X, y, sample_weight, X_val, y_val)

    @available_if(_stochastic_solver)
    @_chainrule_errors
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y)."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _encode_target(self, y, first: bool, incremental: bool, classes) -> np.ndarray:
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        T = np.asarray(y, dtype=np.float64)
        T = T.reshape(len(T), -1)
        if self.loss == "poisson" and (T < 0).any():
            raise ValueError(f"{type(self).__name__} loss='poisson' needs targets >= 0 (counts or rates),"
                             f" got a minimum of {T.min()!r}")
        if first:
            self._out = self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif T.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {T.shape[1]} columns, but the model was fitted on {self.n_outputs_}")
        return T

    def _encode_known(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        return y.reshape(len(y), -1)

    def _check_val_target(self, y_val, n: int):
        y_val = np.asarray(y_val, dtype=np.float64)
        if len(y_val) != n:
            raise ValueError(f"X_val has {n} samples, y_val has {len(y_val)}")
        return y_val

    def _score(self, X, y, sample_weight=None) -> float:
        """R² on X already validated; NaN (as scikit-learn) when the network's output is not finite."""
        pred = self._values(self._raw_output(X))
        if not np.isfinite(pred).all():
            return np.nan
        return r2_score(y, pred, sample_weight=sample_weight)

    @_chainrule_errors
    def predict(self, X) -> np.ndarray:
        """Predicted values, (n_samples,) for one target, (n_samples, n_targets) for several; in
        float32 for a model trained in float32."""
        return self._values(self._output(X))

    def _values(self, z: np.ndarray) -> np.ndarray:
        if self._out == "exp":
            z = np.exp(z)
        return z[:, 0] if z.shape[1] == 1 else z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
