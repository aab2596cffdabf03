"""Preparing data for a network: scaling, one-hot labels, splits and mini-batches.

Everything here is NumPy only. The scalers learn per-column statistics with ``fit`` on
the training data and apply the same map to any later data with ``transform``:

- ``Standardizer``:  x' = (x - mean) / std                     (z-score)
- ``MinMaxScaler``:  x' = lo + (x - min) (hi - lo) / (max - min)
- ``MaxScaler``:     x' = x / max|x|                           (the "hours studied" tutorial)

Dtypes: statistics are computed and stored in float64. ``transform`` and
``inverse_transform`` return float32 for float32 input and float64 for every other
input (float64, integers, bools, float16), so a float32 training set stays float32.

A scaler is saved without pickle as a JSON-able ``get_config()`` plus float64 arrays from
``get_arrays()``; ``scaler_from_config(config, arrays)`` rebuilds it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from chainrule.errors import ChainruleError, ConfigError, DataError, ShapeError

from ._checks import as_array, as_rng, check_number, check_positive_int, quiet_float_errors

__all__ = [
    "Standardizer",
    "MinMaxScaler",
    "MaxScaler",
    "scaler_from_config",
    "one_hot",
    "train_test_split",
    "batches",
]

SeedLike = int | np.random.Generator | None


def _check_finite(X: np.ndarray, what: str) -> None:
    """Raise DataError naming the row and column of the first NaN or inf in 2-D ``X``."""
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{what} contains {X[row, col]} at row {row}, column {col}; "
            "remove or impute non-finite values first"
        )


def _check_2d(X: Any, what: str) -> np.ndarray:
    """Turn ``X`` into a 2-D numeric array, or raise ShapeError / DataError."""
    X = as_array(X, what)
    if X.ndim != 2:
        raise ShapeError(
            f"{what} expects a 2-D array (n_samples, n_features), got array of shape {X.shape}"
            + ("; use X.reshape(-1, 1) for a single feature" if X.ndim == 1 else "")
        )
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise DataError(f"{what} expects numeric data, got dtype {X.dtype}")
    if np.iscomplexobj(X):
        raise DataError(f"{what} expects real numbers, got dtype {X.dtype}")
    if np.issubdtype(X.dtype, np.floating):
        _check_finite(X, what)
    return X


def _out_dtype(X: np.ndarray) -> type[np.floating]:
    """float32 stays float32; everything else becomes float64."""
    return np.float32 if X.dtype == np.float32 else np.float64


class _Scaler:
    """Shared machinery of the scalers: validation, fit_transform, saving.

    A subclass sets ``_array_names`` (its fitted float64 arrays, each of shape
    (n_features,)) and writes ``_fit_stats``, ``_forward`` and ``_backward``.
    """

    _array_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.n_features_in_: int | None = None

    # --- what each scaler writes -------------------------------------------------
    def _fit_stats(self, X: np.ndarray) -> None:  # X is float64
        raise NotImplementedError

    def _forward(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _backward(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _slope(self) -> np.ndarray:
        """dx'/dx per column (every scaler is x' = x · slope + offset), float64."""
        raise NotImplementedError

    def input_gradient(self, grad: np.ndarray) -> np.ndarray:
        """The chain rule through the scaler: dL/dx = dL/dx' · dx'/dx, column by column.

        ``grad`` is dL/dx' of shape (n_samples, n_features); the result has its shape and dtype.
        """
        return grad * self._slope().astype(grad.dtype)

    def _params(self) -> dict[str, Any]:
        """Constructor arguments, JSON-able."""
        return {}

    # --- public API ---------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        """True once ``fit`` has run (or the scaler was rebuilt from a fitted state)."""
        return self.n_features_in_ is not None

    def fit(self, X: Any) -> _Scaler:
        """Learn the per-column statistics of ``X``.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Training data, finite numbers, at least one row.

        Returns
        -------
        self
        """
        name = type(self).__name__
        X = _check_2d(X, f"{name}.fit")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ShapeError(f"{name}.fit needs at least one sample and one feature, got array of shape {X.shape}")
        with quiet_float_errors():
            self._fit_stats(X.astype(np.float64))
        for key in self._array_names:
            value = getattr(self, key + "_")
            if not np.isfinite(value).all() or (key == "scale" and not np.all(value != 0)):
                col = int(np.argmax(~np.isfinite(value) | (value == 0)))
                raise DataError(f"{name}.fit: column {col} cannot be scaled in float64 (values from"
                                f" {X[:, col].min():.4g} to {X[:, col].max():.4g}); rescale it first")
        self.n_features_in_ = int(X.shape[1])
        return self

    def _check_transform_input(self, X: Any, method: str) -> np.ndarray:
        name = type(self).__name__
        if not self.is_fitted:
            raise ChainruleError(f"{name} is not fitted; call fit(X) first")
        X = _check_2d(X, f"{name}.{method}")
        if X.shape[1] != self.n_features_in_:
            raise ShapeError(
                f"{name} was fitted on {self.n_features_in_} features, "
                f"got array of shape {X.shape} in {method}"
            )
        return X.astype(_out_dtype(X), copy=False)

    def transform(self, X: Any) -> np.ndarray:
        """Scale ``X`` with the statistics learned by ``fit``.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray
            New array of the same shape; float32 for float32 input, else float64.
        """
        return self._checked(self._forward, X, "transform")

    def _checked(self, method, X: Any, name: str) -> np.ndarray:
        X = self._check_transform_input(X, name)
        with quiet_float_errors():
            out = method(X)
        if not np.isfinite(out).all():
            row, col = (int(i) for i in np.argwhere(~np.isfinite(out))[0])
            raise DataError(f"{type(self).__name__}.{name}: the value at row {row}, column {col} overflows"
                            f" {out.dtype} once scaled; the data are far outside the fitted range")
        return out

    def fit_transform(self, X: Any) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Map scaled data back to the original units (the inverse of ``transform``).

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray
            New array of the same shape; float32 for float32 input, else float64.
        """
        return self._checked(self._backward, X, "inverse_transform")

    def get_config(self) -> dict[str, Any]:
        """JSON-able description: class name under ``"class"``, arguments, feature count.

        Returns
        -------
        dict
            Plain str/int/float/list/None values only.
        """
        return {"class": type(self).__name__, "n_features_in": self.n_features_in_,
                **self._params()}

    def get_arrays(self) -> dict[str, np.ndarray]:
        """Fitted statistics as float64 arrays of shape (n_features,); empty if not fitted."""
        if not self.is_fitted:
            return {}
        return {key: np.array(getattr(self, key + "_"), dtype=np.float64)
                for key in self._array_names}

    @classmethod
    def from_config(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> _Scaler:
        """Rebuild a scaler from ``get_config()`` and ``get_arrays()`` output.

        Parameters
        ----------
        config : dict
            As returned by ``get_config``; ``config["class"]`` must name this class.
        arrays : dict of str to numpy.ndarray
            As returned by ``get_arrays`` (empty for an unfitted scaler).

        Returns
        -------
        scaler
            An instance of ``cls`` that transforms exactly like the saved one.
        """
        if config.get("class") != cls.__name__:
            raise ConfigError(
                f"{cls.__name__}.from_config expects config['class'] == {cls.__name__!r}, "
                f"got {config.get('class')!r}"
            )
        params = {k: v for k, v in config.items() if k not in ("class", "n_features_in")}
        try:
            scaler = cls(**params)
        except TypeError as exc:
            raise ConfigError(f"{cls.__name__} config has unknown keys: {exc}") from None
        n_features = config.get("n_features_in")
        if n_features is None:
            return scaler
        missing = [k for k in cls._array_names if k not in arrays]
        if missing:
            raise ConfigError(f"{cls.__name__} state lacks the arrays {missing}")
        for key in cls._array_names:
            value = np.asarray(arrays[key], dtype=np.float64)
            if value.shape != (n_features,):
                raise ShapeError(
                    f"{cls.__name__} state array {key!r} should have shape ({n_features},), "
                    f"got {value.shape}"
                )
            setattr(scaler, key + "_", value.copy())
        scaler.n_features_in_ = int(n_features)
        return scaler

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


class Standardizer(_Scaler):
    """Z-score each column: x' = (x - mean) / std, with std over the rows (ddof=0).

    After ``fit_transform`` every non-constant column has mean 0 and standard
    deviation 1. A constant column gets ``scale_ = 1`` and maps to 0.

    Attributes
    ----------
    mean_ : numpy.ndarray, shape (n_features,)
        Column means (float64).
    scale_ : numpy.ndarray, shape (n_features,)
        Column standard deviations, 1 for constant columns (float64).

    Examples
    --------
    >>> s = Standardizer()
    >>> s.fit_transform(np.array([[1.0, 5.0], [3.0, 5.0]])).tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
    """

    _array_names = ("mean", "scale")

    def __init__(self) -> None:
        super().__init__()
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def _fit_stats(self, X: np.ndarray) -> None:
        # A column is constant exactly when max == min; test that rather than std == 0,
        # because the std of a constant column can come out as 1e-17 from rounding.
        constant = X.max(axis=0) == X.min(axis=0)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # (checked just below)
            mean, std = X.mean(axis=0), X.std(axis=0)
        # Squares of 1e-300 underflow to 0 and of 1e300 overflow: such columns are divided by their
        # largest magnitude first (only they, so ordinary data keep exactly the usual statistics).
        odd = ~constant & ~(np.isfinite(mean) & np.isfinite(std) & (std > 0))
        if odd.any():
            m = np.abs(X[:, odd]).max(axis=0)
            Z = X[:, odd] / m
            mean[odd], std[odd] = Z.mean(axis=0) * m, Z.std(axis=0) * m
        self.mean_ = np.where(constant, X[0], mean)
        self.scale_ = np.where(constant, 1.0, std)

    def _forward(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_.astype(X.dtype)) / self.scale_.astype(X.dtype)

    def _slope(self) -> np.ndarray:
        return 1.0 / self.scale_

    def _backward(self, X: np.ndarray) -> np.ndarray:
        return X * self.scale_.astype(X.dtype) + self.mean_.astype(X.dtype)


class MinMaxScaler(_Scaler):
    """Map each column's [min, max] onto ``feature_range`` = (lo, hi).

    x' = x * scale_ + min_,  with  scale_ = (hi - lo) / (data_max_ - data_min_)
    and  min_ = lo - data_min_ * scale_.  A constant column maps to ``lo``.
    Values outside the fitted range map outside ``feature_range`` (no clipping).

    Parameters
    ----------
    feature_range : tuple of two floats, default (0, 1)
        Target interval (lo, hi), lo < hi.

    Attributes
    ----------
    data_min_, data_max_ : numpy.ndarray, shape (n_features,)
        Column minima and maxima seen by ``fit`` (float64).
    scale_, min_ : numpy.ndarray, shape (n_features,)
        Slope and offset of the map (float64).
    """

    _array_names = ("data_min", "data_max", "scale", "min")

    def __init__(self, feature_range: tuple[float, float] = (0, 1)) -> None:
        super().__init__()
        if not isinstance(feature_range, (tuple, list)) or len(feature_range) != 2:
            raise ConfigError(
                f"MinMaxScaler feature_range must be two numbers (lo, hi), got {feature_range!r}"
            )
        for i, v in enumerate(feature_range):
            check_number(v, f"MinMaxScaler feature_range[{i}]")
        lo, hi = (float(v) for v in feature_range)
        if not lo < hi:
            raise ConfigError(
                f"MinMaxScaler feature_range must satisfy lo < hi (finite), got {feature_range!r}"
            )
        self.feature_range = (lo, hi)
        self.data_min_: np.ndarray | None = None
        self.data_max_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.min_: np.ndarray | None = None

    def _params(self) -> dict[str, Any]:
        return {"feature_range": list(self.feature_range)}

    def _fit_stats(self, X: np.ndarray) -> None:
        lo, hi = self.feature_range
        self.data_min_ = X.min(axis=0)
        self.data_max_ = X.max(axis=0)
        data_range = self.data_max_ - self.data_min_
        self.scale_ = (hi - lo) / np.where(data_range == 0, 1.0, data_range)
        self.min_ = lo - self.data_min_ * self.scale_

    def _forward(self, X: np.ndarray) -> np.ndarray:
        return X * self.scale_.astype(X.dtype) + self.min_.astype(X.dtype)

    def _slope(self) -> np.ndarray:
        return self.scale_

    def _backward(self, X: np.ndarray) -> np.ndarray:
        return (X - self.min_.astype(X.dtype)) / self.scale_.astype(X.dtype)


class MaxScaler(_Scaler):
    """Divide each column by its largest absolute value: x' = x / max|x|.

    The scaling of the classic "hours studied, hours slept -> test score" tutorial
    (there the data are non-negative, so this is division by the column maximum).
    Non-negative data land in [0, 1], signed data in [-1, 1]; zeros stay zeros.

    Attributes
    ----------
    max_ : numpy.ndarray, shape (n_features,)
        Largest absolute value of each column (0 for an all-zero column), float64.
    scale_ : numpy.ndarray, shape (n_features,)
        The divisor: ``max_`` with zeros replaced by 1, float64.
    """

    _array_names = ("max", "scale")

    def __init__(self) -> None:
        super().__init__()
        self.max_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def _fit_stats(self, X: np.ndarray) -> None:
        self.max_ = np.abs(X).max(axis=0)
        self.scale_ = np.where(self.max_ == 0, 1.0, self.max_)

    def _forward(self, X: np.ndarray) -> np.ndarray:
        return X / self.scale_.astype(X.dtype)

    def _slope(self) -> np.ndarray:
        return 1.0 / self.scale_

    def _backward(self, X: np.ndarray) -> np.ndarray:
        return X * self.scale_.astype(X.dtype)


_SCALERS: dict[str, type[_Scaler]] = {
    cls.__name__: cls for cls in (Standardizer, MinMaxScaler, MaxScaler)
}


def scaler_from_config(config: dict[str, Any], arrays: dict[str, np.ndarray]) -> _Scaler:
    """Rebuild any scaler from its ``get_config()`` and ``get_arrays()``.

    Parameters
    ----------
    config : dict
        JSON-able config; ``config["class"]`` names the scaler class.
    arrays : dict of str to numpy.ndarray
        The fitted arrays (empty for an unfitted scaler).

    Returns
    -------
    Standardizer or MinMaxScaler or MaxScaler

    Examples
    --------
    >>> s = MaxScaler().fit(np.array([[2.0], [4.0]]))
    >>> scaler_from_config(s.get_config(), s.get_arrays()).transform(np.array([[1.0]]))
    array([[0.25]])
    """
    name = config.get("class") if isinstance(config, dict) else None
    if name not in _SCALERS:
        raise ConfigError(f"unknown scaler class {name!r}; expected one of {sorted(_SCALERS)}")
    return _SCALERS[name].from_config(config, arrays)


def one_hot(labels: Any, n_classes: int | None = None, dtype: Any = np.float32) -> np.ndarray:
    """Encode integer class labels as one-hot rows.

    Parameters
    ----------
    labels : array_like, shape (n,) or (n, 1)
        Class indices 0..n_classes-1. Floats are accepted when they are whole
        numbers (1.0); 0.5, NaN, strings and negative values are rejected.
    n_classes : int, optional
        Number of columns C. Default: ``max(labels) + 1``.
    dtype : numpy dtype, default float32

    Returns
    -------
    numpy.ndarray, shape (n, C)
        ``out[i, labels[i]] = 1``, every other entry 0.

    Examples
    --------
    >>> one_hot([0, 2, 1]).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    y = as_array(labels, "one_hot labels")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ShapeError(f"one_hot expects labels of shape (n,) or (n, 1), got shape {y.shape}")
    if y.dtype == np.bool_:
        y = y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            i = int(np.argmin(whole))
            raise DataError(
                f"one_hot expects integer labels, got {y[i]} at position {i}"
            )
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"one_hot expects integer labels, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        i = int(np.argmin(y))
        raise DataError(f"one_hot expects labels >= 0, got {y[i]} at position {i}")
    if y.size and float(y.max()) >= 2**31:
        i = int(np.argmax(y))
        raise DataError(f"one_hot got label {y[i]} at position {i}; that many classes cannot be one-hot encoded")
    y = y.astype(np.int64)
    if n_classes is None:
        if y.size == 0:
            raise DataError("one_hot cannot infer n_classes from empty labels; pass n_classes")
        n_classes = int(y.max()) + 1
    else:
        check_positive_int(n_classes, "one_hot n_classes")
    if y.shape[0] * int(n_classes) > 2**31:
        raise ConfigError(f"one_hot of {y.shape[0]} labels into {n_classes} classes would make"
                          f" {y.shape[0] * int(n_classes):,} entries; that is too many")
    if y.size and y.max() >= n_classes:
        i = int(np.argmax(y))
        raise DataError(
            f"one_hot got label {y[i]} at position {i}, but n_classes={n_classes} "
            f"allows labels 0..{n_classes - 1}"
        )
    out = np.zeros((y.shape[0], int(n_classes)), dtype=dtype)
    out[np.arange(y.shape[0]), y] = 1
    return out


def _n_test(test_size: Any, n: int) -> int:
    """Number of test samples: ceil(test_size * n) for a fraction, the count for an int."""
    if isinstance(test_size, bool):
        raise ConfigError(f"test_size must be a float in (0, 1) or an int, got {test_size!r}")
    if isinstance(test_size, (int, np.integer)):
        n_test = int(test_size)
        if not 0 < n_test < n:
            raise ConfigError(
                f"test_size={n_test} must leave both parts non-empty: 1 <= test_size <= {n - 1} "
                f"for {n} samples"
            )
        return n_test
    if isinstance(test_size, (float, np.floating)):
        check_number(test_size, "test_size", low=0, high=1, low_open=True, high_open=True)
        # ceil as in scikit-learn; the 1e-9 keeps 0.3 * 10 = 3.0000000000000004 at 3.
        n_test = math.ceil(float(test_size) * n - 1e-9)
        if not 0 < n_test < n:
            raise ConfigError(
                f"test_size={test_size} of {n} samples gives {n_test} test samples; "
                "both parts must be non-empty"
            )
        return n_test
    raise ConfigError(f"test_size must be a float in (0, 1) or an int, got {test_size!r}")


def _stratified_counts(class_sizes: np.ndarray, n_test: int) -> np.ndarray:
    """How many samples of each class go to the test part (see ``train_test_split``)."""
    n = int(class_sizes.sum())
    ideal = n_test * class_sizes / n
    take = np.floor(ideal).astype(np.int64)
    leftover = n_test - int(take.sum())
    # Largest remainder first; stable sort keeps ties in class order.
    order = np.argsort(-(ideal - take), kind="stable")
    take[order[:leftover]] += 1
    # Every class with >= 2 samples should appear in both parts when the sizes allow it.
    for c in np.flatnonzero((class_sizes >= 2) & (take == 0)):
        can_give = (take >= 2) | ((class_sizes == 1) & (take == 1))
        if can_give.any():
            donor = np.flatnonzero(can_give)[np.argmax((take - ideal)[can_give])]
            take[donor] -= 1
            take[c] += 1
    for c in np.flatnonzero((class_sizes >= 2) & (take == class_sizes)):
        room = class_sizes - take
        can_take = (room >= 2) | ((class_sizes == 1) & (take == 0))
        if can_take.any():
            receiver = np.flatnonzero(can_take)[np.argmax((ideal - take)[can_take])]
            take[receiver] += 1
            take[c] -= 1
    return take


def train_test_split(
    X: Any,
    y: Any = None,
    test_size: float | int = 0.25,
    seed: SeedLike = None,
    shuffle: bool = True,
    stratify: Any = None,
) -> tuple[np.ndarray, ...]:
    """Split samples (rows) into a training part and a test part.

    Parameters
    ----------
    X : array_like, shape (n, ...)
        Samples along the first axis (any number of further axes).
    y : array_like, shape (n, ...), optional
        Targets, split with the same rows as ``X``.
    test_size : float or int, default 0.25
        A float in (0, 1) is a fraction: n_test = ceil(test_size * n), as in
        scikit-learn. An int is the number of test samples. Both parts must be non-empty.
    seed : int or numpy.random.Generator, optional
        Randomness of the shuffle. The same int gives the same split.
    shuffle : bool, default True
        If False, the first n - n_test rows are the training part and the rest the test.
    stratify : array_like, shape (n,), optional
        Class labels; each class is split in proportion to its size. Class c of size
        n_c gets floor(n_test * n_c / n) test samples; the test places left over go to
        the classes with the largest fractional parts (ties to the class that sorts
        first). Then a class with at least 2 samples that ended up with none in one part
        swaps one place with the class that has the most to spare, where one exists.
        A class with one sample goes where the rounding puts it. Needs ``shuffle=True``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(X_train, X_test, y_train, y_test)``, or ``(X_train, X_test)`` if ``y`` is None.
        With shuffling, each part is in random order.

    Examples
    --------
    >>> X_train, X_test = train_test_split(np.arange(8).reshape(4, 2), shuffle=False)
    >>> X_test.tolist()
    [[6, 7]]
    """
    X = as_array(X, "train_test_split X")
    if X.ndim == 0:
        raise ShapeError("train_test_split expects an array of samples, got a scalar")
    n = X.shape[0]
    arrays = [X]
    if y is not None:
        y = as_array(y, "train_test_split y")
        if y.ndim == 0 or y.shape[0] != n:
            raise ShapeError(
                f"train_test_split: X has {n} samples but y has shape {y.shape}"
            )
        arrays.append(y)
    if n < 2:
        raise ShapeError(f"train_test_split needs at least 2 samples, got {n}")
    n_test = _n_test(test_size, n)

    if not shuffle:
        if stratify is not None:
            raise ConfigError("train_test_split: stratify needs shuffle=True")
        train_idx, test_idx = np.arange(n - n_test), np.arange(n - n_test, n)
    else:
        rng = as_rng(seed)
        if stratify is None:
            perm = rng.permutation(n)
            test_idx, train_idx = perm[:n_test], perm[n_test:]
        else:
            labels = as_array(stratify, "train_test_split stratify")
            if labels.ndim == 2 and labels.shape[1] == 1:
                labels = labels[:, 0]
            if labels.shape != (n,):
                raise ShapeError(
                    f"train_test_split: stratify should have shape ({n},), got {labels.shape}"
                )
            try:
                _, class_of = np.unique(labels, return_inverse=True)
            except TypeError:  # objects that cannot be ordered
                raise DataError(f"train_test_split: stratify labels must be numbers or strings that can be"
                                f" sorted, got an array of dtype {labels.dtype}") from None
            class_of = class_of.reshape(-1)
            take = _stratified_counts(np.bincount(class_of), n_test)
            test_parts, train_parts = [], []
            for c, k in enumerate(take):
                members = rng.permutation(np.flatnonzero(class_of == c))
                test_parts.append(members[:k])
                train_parts.append(members[k:])
            test_idx = rng.permutation(np.concatenate(test_parts))
            train_idx = rng.permutation(np.concatenate(train_parts))

    out: list[np.ndarray] = []
    for a in arrays:
        out += [a[train_idx], a[test_idx]]
    return tuple(out)


def batches(
    X: Any,
    y: Any = None,
    batch_size: int | None = 32,
    shuffle: bool = True,
    seed: SeedLike = None,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Iterate over mini-batches ``(Xb, yb)`` covering every sample once.

    Parameters
    ----------
    X : array_like, shape (n, ...)
    y : array_like, shape (n, ...), optional
        If None, each ``yb`` is None.
    batch_size : int or None, default 32
        Rows per batch; the last batch may be smaller. None gives one full batch.
    shuffle : bool, default True
        Visit the rows in a random order (copies); without it the batches are views.
    seed : int or numpy.random.Generator, optional
        Randomness of the order. Pass one Generator for all epochs to get a new
        order each epoch; the same int gives the same order every time.

    Yields
    ------
    (numpy.ndarray, numpy.ndarray or None)
        A batch of rows of ``X`` and the matching rows of ``y``.

    Examples
    --------
    >>> [xb.tolist() for xb, _ in batches([[1], [2], [3]], batch_size=2, shuffle=False)]
    [[[1], [2]], [[3]]]
    """
    X = as_array(X, "batches X")
    if X.ndim == 0:
        raise ShapeError("batches expects an array of samples, got a scalar")
    n = X.shape[0]
    if y is not None:
        y = as_array(y, "batches y")
        if y.ndim == 0 or y.shape[0] != n:
            raise ShapeError(f"batches: X has {n} samples but y has shape {y.shape}")
    if batch_size is None:
        size = max(n, 1)
    else:
        check_positive_int(batch_size, "batches batch_size", allow_none=True)
        size = int(batch_size)
    order = as_rng(seed).permutation(n) if shuffle else None
    return _iter_batches(X, y, size, order)


def _iter_batches(
    X: np.ndarray, y: np.ndarray | None, size: int, order: np.ndarray | None
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    for start in range(0, X.shape[0], size):
        if order is None:
            rows: slice | np.ndarray = slice(start, start + size)
        else:
            rows = order[start:start + size]
        yield X[rows], (None if y is None else y[rows])
