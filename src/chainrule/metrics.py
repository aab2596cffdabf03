"""Metrics: functions of (y_true, y_pred), and accumulators the training loop feeds batch by batch.

``accuracy`` reads the prediction as class scores: the arg-max of each row when the output
has several columns, or a threshold at 0.5 on one column (probabilities; for logits use a
threshold of 0). The truth can be integer labels (n,), one-hot rows (n, C) or 0/1 values.
``r2`` is the coefficient of determination averaged over output columns (scikit-learn's
"uniform_average").
"""

from __future__ import annotations

import numpy as np

from ._checks import as_array, as_float_array, check_finite, check_not_empty, quiet_float_errors
from .errors import ConfigError, DataError, ShapeError

#: confusion_matrix refuses to build a matrix for more classes than this (4096² counts: 128 MiB).
MAX_CLASSES = 4096


def _checked(y, name: str, labels: bool = False) -> np.ndarray:
    """A public metric's argument: a non-empty, finite array of numbers (whole ones for labels)."""
    arr = as_float_array(y, name) if not labels else as_array(y, name)
    if labels and arr.dtype.kind not in "biuf":
        raise DataError(f"{name} must be class labels (integers), got an array of dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ShapeError(f"{name} must be an array with one entry per sample, got a scalar")
    check_not_empty(arr, name)
    if arr.dtype.kind == "f":
        check_finite(arr, name)
    return arr


def _labels_pred(y_pred: np.ndarray, threshold: float) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    if y_pred.ndim >= 2 and y_pred.shape[-1] > 1:
        return y_pred.argmax(axis=-1)
    return (y_pred.reshape(y_pred.shape[:-1] if y_pred.ndim >= 2 else y_pred.shape) > threshold)


def _labels_true(y_true: np.ndarray, n_cols: int) -> np.ndarray:
    y_true = np.asarray(y_true)
    if y_true.ndim >= 2 and y_true.shape[-1] == n_cols and n_cols > 1:
        return y_true.argmax(axis=-1)
    if y_true.ndim >= 2 and y_true.shape[-1] == 1:
        y_true = y_true.reshape(y_true.shape[:-1])
    if n_cols == 1 and y_true.dtype.kind == "f":
        return y_true > 0.5
    return y_true


def _correct(y_true, y_pred, threshold=0.5) -> tuple[int, int]:
    y_pred = np.asarray(y_pred)
    n_cols = y_pred.shape[-1] if y_pred.ndim >= 2 else 1
    pred = _labels_pred(y_pred, threshold)
    true = _labels_true(y_true, n_cols)
    if true.shape != pred.shape:
        raise ShapeError(f"accuracy: y_true of shape {np.shape(y_true)} does not match"
                         f" predictions of shape {y_pred.shape}")
    return int(np.count_nonzero(true == pred)), true.size


def accuracy(y_true, y_pred, threshold: float = 0.5) -> float:
    """Fraction of samples whose predicted class equals the true class."""
    y_true, y_pred = _checked(y_true, "accuracy y_true"), _checked(y_pred, "accuracy y_pred")
    correct, n = _correct(y_true, y_pred, threshold)
    return correct / n


def _as_2d(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_pred = np.asarray(y_pred, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        y_true = y_true.reshape(y_pred.shape) if y_true.size == y_pred.size else y_true
    if y_true.shape != y_pred.shape:
        raise ShapeError(f"y_true of shape {y_true.shape} does not match y_pred of shape {y_pred.shape}")
    return y_true.reshape(len(y_true), -1), y_pred.reshape(len(y_pred), -1)


def _checked_2d(y_true, y_pred, name: str) -> tuple[np.ndarray, np.ndarray]:
    return _as_2d(_checked(y_true, f"{name} y_true"), _checked(y_pred, f"{name} y_pred"))


def mse(y_true, y_pred) -> float:
    """Mean squared error over all elements (inf when the squares overflow)."""
    t, p = _checked_2d(y_true, y_pred, "mse")
    with quiet_float_errors():
        return float(np.mean((t - p) ** 2))


def mae(y_true, y_pred) -> float:
    """Mean absolute error over all elements."""
    t, p = _checked_2d(y_true, y_pred, "mae")
    with quiet_float_errors():
        return float(np.mean(np.abs(t - p)))


def r2(y_true, y_pred) -> float:
    """1 − SS_res/SS_tot per output column, averaged; a constant column with perfect fit is 1."""
    t, p = _checked_2d(y_true, y_pred, "r2")
    with quiet_float_errors():
        return _r2(t, p)


def _r2(t: np.ndarray, p: np.ndarray) -> float:
    ss_res = ((t - p) ** 2).sum(axis=0)
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1),
                          np.where(ss_res == 0, 1.0, 0.0))
    return float(scores.mean())


# --- accumulators for the training loop ---------------------------------------------------
class Metric:
    """Accumulates a metric over the batches of an epoch: reset(), update(), result()."""

    name = "metric"

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, y_true, y_pred) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError


class Accuracy(Metric):
    name = "accuracy"

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.reset()

    def reset(self):
        self.correct = self.count = 0

    def update(self, y_true, y_pred):
        c, n = _correct(y_true, y_pred, self.threshold)
        self.correct += c
        self.count += n

    def result(self):
        return self.correct / max(self.count, 1)


class _SumMetric(Metric):
    def reset(self):
        self.total = 0.0
        self.count = 0

    def update(self, y_true, y_pred):
        t, p = _as_2d(y_true, y_pred)
        self.total += float(self._sum(t - p))
        self.count += t.size

    def result(self):
        return self.total / max(self.count, 1)


class MeanSquaredError(_SumMetric):
    name = "mse"

    def __init__(self):
        self.reset()

    @staticmethod
    def _sum(d):
        return np.vdot(d, d)


class MeanAbsoluteError(_SumMetric):
    name = "mae"

    def __init__(self):
        self.reset()

    @staticmethod
    def _sum(d):
        return np.abs(d).sum()


class R2(Metric):
    """Keeps per-column sums so the epoch's R² is exact, not an average over batches."""

    name = "r2"

    def __init__(self):
        self.reset()

    def reset(self):
        self.n = 0
        self.sum_t = self.sum_t2 = self.ss_res = 0.0

    def update(self, y_true, y_pred):
        t, p = _as_2d(y_true, y_pred)
        self.n += len(t)
        self.sum_t = self.sum_t + t.sum(axis=0)
        self.sum_t2 = self.sum_t2 + (t * t).sum(axis=0)
        self.ss_res = self.ss_res + ((t - p) ** 2).sum(axis=0)

    def result(self):
        if self.n == 0:
            return float("nan")
        ss_tot = np.asarray(self.sum_t2 - self.sum_t**2 / self.n)
        ss_res = np.asarray(self.ss_res)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.where(ss_tot > 1e-12 * np.maximum(self.sum_t2, 1e-300),
                              1 - ss_res / np.where(ss_tot > 0, ss_tot, 1),
                              np.where(ss_res == 0, 1.0, 0.0))
        return float(np.mean(scores))


_METRICS = {"accuracy": Accuracy, "acc": Accuracy, "mse": MeanSquaredError,
            "mae": MeanAbsoluteError, "r2": R2}


def get_metric(metric) -> Metric:
    """A fresh Metric accumulator from a name or an instance."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str) and metric.lower() in _METRICS:
        return _METRICS[metric.lower()]()
    raise ConfigError(f"unknown metric {metric!r}; choose one of {sorted(_METRICS)} or pass a Metric")


# --- per-class reports -------------------------------------------------------------------
def _labels(y, name: str, n_classes: int | None) -> np.ndarray:
    arr = _checked(y, name, labels=True).reshape(-1)
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        raise DataError(f"{name} must be whole class labels, got {arr[arr != np.round(arr)][0]}")
    limit = n_classes if n_classes is not None else MAX_CLASSES
    bad = (arr < 0) | (arr >= limit)
    if bad.any():
        raise DataError(f"{name} must hold class labels in [0, {limit - 1}], got {arr[bad][0]}")
    return arr.astype(np.intp)


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """Counts C[i, j] of samples of true class i predicted as class j (integer labels)."""
    if n_classes is not None and (isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer))
                                  or not 1 <= n_classes <= MAX_CLASSES):
        raise ConfigError(f"confusion_matrix n_classes must be an integer in [1, {MAX_CLASSES}], got {n_classes!r}")
    t = _labels(y_true, "confusion_matrix y_true", n_classes)
    p = _labels(y_pred, "confusion_matrix y_pred", n_classes)
    if t.shape != p.shape:
        raise ShapeError(f"confusion_matrix: y_true has {t.size} labels, y_pred has {p.size}")
    k = n_classes if n_classes is not None else int(max(t.max(initial=-1), p.max(initial=-1)) + 1)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def precision_recall(y_true, y_pred, n_classes: int | None = None):
    """Per-class precision, recall, F1 and support (0 where a class is never predicted)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1, support


def classification_report(y_true, y_pred, n_classes: int | None = None, names=None) -> str:
    """A text table of per-class precision, recall, F1 and support, with the accuracy."""
    precision, recall, f1, support = precision_recall(y_true, y_pred, n_classes)
    names = [str(n) for n in (names if names is not None else range(len(support)))]
    if len(names) != len(support):
        raise ConfigError(f"classification_report names: {len(support)} classes, got {len(names)} names")
    w = max(len(n) for n in names + ["class"])
    lines = [f"{'class':>{w}}  precision  recall  f1-score  support"]
    for i, name in enumerate(names):
        lines.append(f"{name:>{w}}  {precision[i]:9.3f}  {recall[i]:6.3f}  {f1[i]:8.3f}  {support[i]:7d}")
    acc = float((np.asarray(y_true).reshape(-1) == np.asarray(y_pred).reshape(-1)).mean())
    lines.append(f"{'accuracy':>{w}}  {'':9}  {'':6}  {acc:8.3f}  {int(support.sum()):7d}")
    return "\n".join(lines)
