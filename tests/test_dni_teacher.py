"""The teacher task of issue 7: every credit-assignment rule against backprop.

Teacher: x ~ N(0, I₁₀), labels = argmax tanh(x W₁/√10) W₂ (W ~ N(0, 1), seed 0), top-2 margin
> 0.3; 30,000 train, 5,000 test. Student 10-128-128-10, He init, softmax cross-entropy, Adam
1e-3, batch 128, 43 epochs (10,105 steps; the issue's 10,000 rounded up to whole epochs),
float32. ReLU student for BP, DNI, cDNI and last-layer-only; tanh student for FA and DFA.
Seed 1 runs in the default suite (about 20 s); seeds 1-3 are marked slow.
"""

import time

import numpy as np
import pytest

import chainrule as cr
from chainrule.credit import DNI, DirectFeedbackAlignment, FeedbackAlignment, LastLayerOnly, teacher_task

EPOCHS = 43  # ceil(10,000 / 235 batches per epoch)


pytestmark = pytest.mark.usefixtures("one_blas_thread")   # (tests/conftest.py)


@pytest.fixture(scope="module")
def task():
    return teacher_task(30_000, 5_000, seed=0)


def run(task, method, seed):
    """Train one student; return (test error in %, final angles, seconds)."""
    (X, y), (Xt, yt) = task
    rules = {
        "BP": ("relu", None),
        "last layer": ("relu", LastLayerOnly()),
        "DNI": ("relu", DNI(seed=seed)),
        "cDNI": ("relu", DNI(conditioned=True, seed=seed)),
        "FA": ("tanh", FeedbackAlignment(seed=seed)),
        "DFA": ("tanh", DirectFeedbackAlignment(seed=seed)),
    }
    activation, rule = rules[method]
    net = cr.mlp([10, 128, 128, 10], activation=activation, init="he_uniform", seed=seed)
    start = time.perf_counter()
    history = net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(1e-3), epochs=EPOCHS, batch_size=128,
                      seed=seed, verbose=0, rule=rule)
    seconds = time.perf_counter() - start
    error = 100.0 * float(np.mean(net.predict(Xt).argmax(axis=1) != yt))
    return error, cr.credit.final_angles(history), seconds


def check_thresholds(task, seed):
    results = {m: run(task, m, seed) for m in ("BP", "last layer", "DNI", "cDNI", "FA", "DFA")}
    err = {m: r[0] for m, r in results.items()}
    table = "\n".join(f"  {m:10s} {e:6.2f} %  {results[m][2]:5.1f} s  angles {results[m][1]}" for m, e in err.items())
    msg = f"seed {seed}:\n{table}"
    print(msg)  # shown with pytest -s
    assert err["BP"] <= 6.0, msg
    assert err["cDNI"] <= 9.5 and err["cDNI"] <= err["BP"] + 4.5, msg
    assert err["DNI"] <= err["last layer"] - 1.5, msg
    assert err["cDNI"] <= err["DNI"] - 2.0, msg
    assert err["last layer"] >= 11.0, msg
    for m in ("FA", "DFA"):
        assert err[m] <= 6.0 and err[m] <= err["BP"] + 2.5, msg
        assert results[m][1][2] < 60.0, msg  # layer 2: the last hidden Dense
    return results


def test_teacher_task_seed_1(task):
    check_thresholds(task, 1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_teacher_task_all_seeds(task, seed):
    check_thresholds(task, seed)
