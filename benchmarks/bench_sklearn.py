"""Fit time of chainrule.sklearn.MLPClassifier against scikit-learn's MLPClassifier.

    python benchmarks/bench_sklearn.py            the full run (about a minute on 2 cores)
    python benchmarks/bench_sklearn.py --quick    a few seconds
    python benchmarks/bench_sklearn.py --json out.json

Both estimators get the same data (standardized), the same settings (hidden sizes, adam,
learning rate, batch size, a fixed number of epochs: ``n_iter_no_change`` is set above
``max_iter`` so neither stops early) and the same ``random_state``. The clock runs around
``fit`` only; each case is run ``repeats`` times, the two libraries alternating, and the median
is reported with the test accuracy. chainrule runs in float64 (its default for float64
input, like scikit-learn) and, as a second row, with ``dtype=np.float32``.

``run(quick)`` returns the records as a list of dicts. The benchmark suite (run.py) times the
``mnist_like`` case of ``cases()`` as its ``sklearn_estimator`` row (chainrule in float32),
through ``case_data``, ``estimator_settings`` and ``time_fit`` from here, so that both give the
same figures; this file imports only the standard library at the top (NumPy, scikit-learn and
chainrule inside the functions), so run.py's driver can read the case definitions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

from forced_env import reexec_without_forced_env

#: Share of every data set held out for the test accuracy (stratified).
TEST_SIZE = 0.25


def cases(quick: bool) -> list[dict]:
    """(data set, hidden sizes, batch size, epochs)."""
    if quick:
        return [dict(data="digits", hidden=(64,), batch_size=32, epochs=10),
                dict(data="mnist_like", samples=4000, hidden=(256, 128), batch_size=128, epochs=2)]
    return [dict(data="digits", hidden=(64,), batch_size=32, epochs=50),
            dict(data="breast_cancer", hidden=(64,), batch_size=32, epochs=100),
            dict(data="mnist_like", samples=20000, hidden=(256, 128), batch_size=128, epochs=3)]


def case_data(case: dict):
    """Standardized float64 train and test splits of the case's data: X_train, X_test, y_train, y_test."""
    import numpy as np
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if case["data"] == "mnist_like":
        rng = np.random.default_rng(0)
        n = case["samples"]
        protos = rng.random((10, 784)) * (rng.random((10, 784)) < 0.2)
        y = rng.integers(0, 10, n)
        X = np.minimum(protos[y] + 0.3 * rng.random((n, 784)), 1.0)
    else:
        X, y = getattr(datasets, f"load_{case['data']}")(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=TEST_SIZE, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def estimator_settings(case: dict) -> dict:
    """The keyword arguments both MLPClassifiers get: adam, a fixed number of epochs (no early stop)."""
    return dict(hidden_layer_sizes=tuple(case["hidden"]), solver="adam", learning_rate_init=1e-3,
                batch_size=case["batch_size"], max_iter=case["epochs"],
                n_iter_no_change=case["epochs"] + 1, random_state=0)


def time_fit(make, X_train, y_train, X_test, y_test) -> tuple[float, float]:
    """Seconds of ``make().fit`` (the clock around ``fit`` only) and the fitted model's test accuracy."""
    from sklearn.exceptions import ConvergenceWarning

    model = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - start
    return seconds, float(model.score(X_test, y_test))


def run(quick: bool = False, repeats: int | None = None) -> list[dict]:
    """Time both estimators on every case; one record per (case, implementation)."""
    import numpy as np
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier

    from chainrule.sklearn import MLPClassifier

    repeats = repeats or (2 if quick else 5)
    records = []
    for case in cases(quick):
        X_train, X_test, y_train, y_test = case_data(case)
        settings = estimator_settings(case)
        makers = {
            "scikit-learn": lambda s=settings: SkMLPClassifier(**s),
            "chainrule": lambda s=settings: MLPClassifier(**s),
            "chainrule float32": lambda s=settings: MLPClassifier(dtype=np.float32, **s),
        }
        times: dict[str, list[float]] = {name: [] for name in makers}
        scores: dict[str, float] = {}
        for make in makers.values():  # warm-up
            time_fit(make, X_train[:256], y_train[:256], X_test, y_test)
        for r in range(repeats):
            order = list(makers)[r % len(makers):] + list(makers)[:r % len(makers)]
            for name in order:
                seconds, scores[name] = time_fit(makers[name], X_train, y_train, X_test, y_test)
                times[name].append(seconds)
        base = statistics.median(times["scikit-learn"])
        for name in makers:
            median = statistics.median(times[name])
            records.append({
                "case": f"{case['data']} {X_train.shape[0]}x{X_train.shape[1]},"
                        f" hidden {','.join(map(str, case['hidden']))}, batch {case['batch_size']},"
                        f" {case['epochs']} epochs",
                "implementation": name, "fit_seconds_median": median, "fit_seconds": times[name],
                "speedup_vs_sklearn": base / median, "test_accuracy": scores[name],
            })
    return records


def to_markdown(records: list[dict]) -> str:
    lines = ["| case | implementation | fit (s, median) | vs scikit-learn | test accuracy |",
             "|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['case']} | {r['implementation']} | {r['fit_seconds_median']:.3f} |"
                     f" {r['speedup_vs_sklearn']:.2f}x | {r['test_accuracy']:.4f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller cases, 2 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the records to this JSON file")
    args = parser.parse_args(argv)
    records = run(quick=args.quick, repeats=args.repeats)
    print(to_markdown(records))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    reexec_without_forced_env(__file__)
    sys.exit(main())
