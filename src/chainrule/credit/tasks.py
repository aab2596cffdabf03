"""A seeded synthetic task for comparing credit-assignment rules: a random teacher network.

x ~ N(0, I_d);  logits = tanh(x·W₁/√d)·W₂ with W₁ (d×h), W₂ (h×C) ~ N(0, 1);  label = argmax.
Samples whose two largest logits are closer than ``margin`` are dropped, so the labels are a
deterministic, learnable function of x with no near-ties.
"""

from __future__ import annotations

import numpy as np

from .._checks import as_rng, check_number, check_positive_int


def teacher_task(n_train: int = 30_000, n_test: int = 5_000, n_features: int = 10, n_hidden: int = 32,
                 n_classes: int = 10, margin: float = 0.3, seed=0, dtype=np.float32):
    """Draw the teacher task: ``(X_train, y_train), (X_test, y_test)``.

    Parameters
    ----------
    n_train, n_test : int
        Samples kept (after the margin filter) for training and testing.
    n_features, n_hidden, n_classes : int
        d, h and C above.
    margin : float
        Keep a sample only when its top-2 logit margin exceeds this.
    seed : int or numpy.random.Generator
        One seed fixes the teacher weights (drawn first) and every sample.
    dtype : numpy dtype
        Of X; the labels are int64.

    Examples
    --------
    >>> (X, y), (Xt, yt) = teacher_task(100, 50)
    >>> X.shape, y.shape, Xt.shape, int(y.max()) < 10
    ((100, 10), (100,), (50, 10), True)
    """
    for value, name in ((n_train, "n_train"), (n_test, "n_test"), (n_features, "n_features"),
                        (n_hidden, "n_hidden"), (n_classes, "n_classes")):
        check_positive_int(value, f"teacher_task {name}")
    check_number(margin, "teacher_task margin", low=0)
    rng = as_rng(seed)
    w1 = rng.standard_normal((n_features, n_hidden))
    w2 = rng.standard_normal((n_hidden, n_classes))
    need = n_train + n_test
    xs, ys, kept = [], [], 0
    while kept < need:
        x = rng.standard_normal((max(2 * (need - kept), 1024), n_features))
        logits = np.tanh(x @ w1 / np.sqrt(n_features)) @ w2
        top2 = np.sort(logits, axis=1)[:, -2:]
        ok = top2[:, 1] - top2[:, 0] > margin
        xs.append(x[ok])
        ys.append(logits[ok].argmax(axis=1))
        kept += int(ok.sum())
    X = np.concatenate(xs)[:need].astype(dtype)
    y = np.concatenate(ys)[:need].astype(np.int64)
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:])
