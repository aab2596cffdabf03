"""Does a change to the training step keep every door's results? Record, change, compare.

    python benchmarks/spine_equivalence.py --save before.npz      # on the code before the change
    python benchmarks/spine_equivalence.py --compare before.npz   # on the code after it

Each case trains a small network with fixed seeds through one door into training (plain fit
with each optimizer and batch mode, every credit-assignment rule, truncated BPTT, data-parallel
fit on one MPI rank, checkpoint and resume, the scikit-learn estimators, the playground) and
keeps its final parameters and loss curve. ``--compare`` runs the cases again and checks them
against the file: bit for bit for the cases that must not change at all, to 1e-6 relative for
the ones marked ``close`` (where a penalty moved from private arithmetic into the library, and
the sums may be taken in another order). Both runs belong on the same machine: the figures
are BLAS- and CPU-dependent and are never compared across machines.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

import chainrule as cr

CASES: dict[str, tuple[str, object]] = {}  # name -> ("exact" | "close", function returning arrays)


def case(kind: str):
    def register(fn):
        CASES[fn.__name__] = (kind, fn)
        return fn
    return register


def digits(n: int = 300):
    X, y = cr.datasets.load_digits()
    return (X[:n] / 16.0).astype(np.float32), y[:n]


def result(net, history=None) -> list[np.ndarray]:
    arrays = [p.copy() for p in net.params.values()]
    if history is not None:
        for key in sorted(history.history):
            arrays.append(np.asarray(history.history[key], dtype=np.float64))
    return arrays


# --- plain fit ----------------------------------------------------------------------------------
@case("exact")
def fit_sgd_momentum_batch32():
    X, y = digits()
    net = cr.mlp([64, 32, 10], seed=0)
    h = net.fit(X, y, loss="crossentropy", optimizer=cr.SGD(lr=0.05, momentum=0.9), epochs=3, batch_size=32,
                seed=0, validation_data=(X[:50], y[:50]), metrics=["accuracy"], verbose=0)
    return result(net, h)


@case("exact")
def fit_adam_full_batch():
    X, y = digits()
    net = cr.mlp([64, 16, 10], activation="tanh", seed=1)
    h = net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(lr=1e-2), epochs=5, batch_size=None, seed=0, verbose=0)
    return result(net, h)


@case("exact")
def fit_per_sample_sse():
    X, y = cr.datasets.xor()
    net = cr.mlp([2, 3, 1], activation="sigmoid", output_activation="sigmoid", seed=2)
    h = net.fit(X, y, loss="sse", optimizer=cr.SGD(lr=0.5), epochs=50, batch_size=1, seed=0, verbose=0)
    return result(net, h)


@case("exact")
def fit_float64_nesterov_decay_schedule():
    X, y = digits(200)
    net = cr.mlp([64, 16, 10], seed=3, dtype=np.float64)
    opt = cr.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3, schedule=cr.StepLR(2, 0.5))
    h = net.fit(X, y, loss="crossentropy", optimizer=opt, epochs=4, batch_size=16, seed=1, verbose=0)
    return result(net, h)


@case("exact")
def fit_callbacks_early_stopping():
    X, y = digits()
    net = cr.mlp([64, 16, 10], seed=4)
    h = net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(lr=3e-2), epochs=30, batch_size=64, seed=0,
                validation_data=(X[:60], y[:60]), verbose=0,
                callbacks=[cr.EarlyStopping(patience=2, restore_best_weights=True), cr.ReduceLROnPlateau(patience=1)])
    return result(net, h)


# --- credit-assignment rules ------------------------------------------------------------------
def _rule_case(rule, seed: int):
    X, y = digits()
    net = cr.mlp([64, 32, 16, 10], activation="tanh", seed=seed)
    h = net.fit(X, y, loss="crossentropy", optimizer=cr.SGD(lr=0.05), epochs=2, batch_size=32, seed=0,
                rule=rule, verbose=0)
    return result(net, h)


@case("exact")
def rule_backprop():
    return _rule_case(cr.credit.Backprop(), 5)


@case("exact")
def rule_last_layer_only():
    return _rule_case(cr.credit.LastLayerOnly(), 5)


@case("exact")
def rule_feedback_alignment():
    return _rule_case(cr.FeedbackAlignment(seed=1), 6)


@case("exact")
def rule_direct_feedback_alignment():
    return _rule_case(cr.DirectFeedbackAlignment(seed=1), 7)


@case("exact")
def rule_dni_conditioned():
    return _rule_case(cr.DNI(conditioned=True, seed=2), 8)


# --- sequences ---------------------------------------------------------------------------------
def _sequences(n=32, T=12):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, T, 1)).astype(np.float32)
    y = (np.cumsum(X[..., 0], axis=1) > 0).astype(np.int64)
    return X, y


@case("exact")
def bptt_lstm_truncated():
    X, y = _sequences()
    net = cr.Sequential(cr.LSTM(1, 8, return_sequences=True, seed=0), cr.TimeDistributed(cr.Dense(8, 2, seed=1)))
    h = net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(lr=1e-2), epochs=3, batch_size=8, seed=0,
                bptt_steps=4, verbose=0)
    return result(net, h)


@case("exact")
def bptt_rnn_full():
    X, y = _sequences()
    net = cr.Sequential(cr.RNN(1, 8, return_sequences=True, seed=0), cr.TimeDistributed(cr.Dense(8, 2, seed=1)))
    h = net.fit(X, y, loss="crossentropy", optimizer=cr.SGD(lr=0.1), epochs=3, batch_size=8, seed=0, verbose=0)
    return result(net, h)


@case("exact")
def bptt_recurrent_dni():
    X, y = _sequences()
    net = cr.Sequential(cr.RNN(1, 8, return_sequences=True, seed=0), cr.TimeDistributed(cr.Dense(8, 2, seed=1)))
    h = net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(lr=3e-3), epochs=3, batch_size=8, seed=0,
                bptt_steps=4, rule=cr.RecurrentDNI(scale=0.1, seed=0), verbose=0)
    return result(net, h)


# --- data-parallel, checkpoints --------------------------------------------------------------
@case("exact")
def distributed_one_rank():
    if importlib.util.find_spec("mpi4py") is None:
        return None
    X, y = digits()
    net = cr.mlp([64, 16, 10], seed=9)
    h = net.fit(X, y, loss="crossentropy", optimizer=cr.SGD(lr=0.1, momentum=0.5), epochs=2, batch_size=32,
                seed=0, distributed=True, metrics=["accuracy"], verbose=0)
    return result(net, h)


@case("exact")
def checkpoint_resume():
    X, y = digits()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.ckpt"
        net = cr.mlp([64, 16, 10], seed=10)
        net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(lr=1e-2), epochs=2, batch_size=32, seed=0,
                checkpoint=path, checkpoint_every=3, verbose=0)
        again = cr.mlp([64, 16, 10], seed=10)
        h = again.fit(X, y, loss="crossentropy", optimizer=cr.Adam(lr=1e-2), epochs=4, batch_size=32, seed=0,
                      checkpoint=path, checkpoint_every=3, resume=path, verbose=0)
    return result(again, h)


# --- the estimators and the playground (their penalties move into the library) --------------
@case("close")
def estimator_classifier_sgd_alpha():
    if importlib.util.find_spec("sklearn") is None:
        return None
    from chainrule.sklearn import MLPClassifier

    X, y = digits()
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=len(y))
    clf = MLPClassifier(hidden_layer_sizes=(16,), solver="sgd", alpha=1e-2, momentum=0.9, max_iter=5,
                        random_state=0, learning_rate_init=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y, sample_weight=w)
    return [*clf.coefs_, *clf.intercepts_, np.asarray(clf.loss_curve_)]


@case("close")
def estimator_classifier_binary_and_multilabel():
    if importlib.util.find_spec("sklearn") is None:
        return None
    from chainrule.sklearn import MLPClassifier

    X, y = digits()
    w = np.random.default_rng(1).uniform(0.0, 2.0, size=len(y))
    arrays = []
    for target, weight in (((y > 4).astype(int), None), (np.stack([y > 4, y % 2 == 0], axis=1).astype(int), w)):
        clf = MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", alpha=1e-3, max_iter=4, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, target, **({"sample_weight": weight} if weight is not None else {}))
        arrays += [*clf.coefs_, *clf.intercepts_, np.asarray(clf.loss_curve_)]
    return arrays


@case("close")
def estimator_regressor_adam_early_stopping():
    if importlib.util.find_spec("sklearn") is None:
        return None
    from chainrule.sklearn import MLPRegressor

    X, y = digits()
    reg = MLPRegressor(hidden_layer_sizes=(8,), alpha=1e-3, early_stopping=True, max_iter=8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.fit(X, y.astype(np.float64))
    return [*reg.coefs_, *reg.intercepts_, np.asarray(reg.loss_curve_), np.asarray(reg.validation_scores_)]


def _playground(reg: str):
    from chainrule.playground.session import Session

    session = Session({"regularization": reg, "reg_rate": 0.01, "optimizer": "momentum", "seed": 3})
    try:
        for _ in range(60):
            session.step()
        return [p.copy() for p in session.net.params.values()]
    finally:
        session.close()


@case("close")
def playground_l1():
    return _playground("l1")


@case("close")
def playground_l2():
    return _playground("l2")


def run_all() -> dict[str, list[np.ndarray] | None]:
    return {name: fn() for name, (_, fn) in CASES.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path, help="record every case's arrays in this .npz file")
    group.add_argument("--compare", type=Path, help="run again and compare with this .npz file")
    args = parser.parse_args(argv)
    results = run_all()
    if args.save:
        flat = {f"{name}/{i}": a for name, arrays in results.items() if arrays is not None
                for i, a in enumerate(arrays)}
        np.savez(args.save, **flat)
        print(f"saved {len(results)} cases ({len(flat)} arrays) to {args.save}")
        return 0
    stored = np.load(args.compare)
    failed = 0
    for name, arrays in results.items():
        kind = CASES[name][0]
        old = [stored[k] for k in sorted((k for k in stored.files if k.split("/")[0] == name),
                                          key=lambda k: int(k.split("/")[1]))]
        if arrays is None or not old:
            print(f"{name:44s} skipped ({'extra missing' if arrays is None else 'not in the file'})")
            continue
        if len(old) != len(arrays) or any(a.shape != b.shape for a, b in zip(old, arrays, strict=False)):
            print(f"{name:44s} DIFFERENT SHAPES")
            failed += 1
            continue
        worst = max(float(np.max(np.abs(a.astype(np.float64) - b) / np.maximum(np.abs(b), 1e-30), initial=0.0))
                    for a, b in zip(arrays, old, strict=True))
        same = all(np.array_equal(a, b) for a, b in zip(arrays, old, strict=True))
        ok = same if kind == "exact" else worst <= 1e-6
        failed += not ok
        print(f"{name:44s} {'bit-identical' if same else f'max relative difference {worst:.2e}'}"
              f"  [{kind}: {'ok' if ok else 'FAILED'}]")
    print("all cases hold" if not failed else f"{failed} case(s) changed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
