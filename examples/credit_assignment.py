"""Compare credit-assignment rules on one network: BP, DNI, cDNI, FA, DFA and last-layer-only.

Two tasks:

- teacher: the seeded synthetic 10-class task of docs/credit-assignment.md (x ~ N(0, I₁₀), labels
  from a random tanh teacher, top-2 margin > 0.3; 30,000 train / 5,000 test), student 10-128-128-10;
- digits: the bundled 8x8 digits (1,797 samples, 25 % held out, standardised), 64-128-128-10.

Every run: He init, softmax cross-entropy, Adam 1e-3, batch 128, about 10,000 steps on the
teacher task (43 epochs) and 100 epochs on digits. BP, DNI, cDNI and last-layer-only train a
ReLU student; FA and DFA a tanh student (random feedback aligns far better through tanh),
with BP on the tanh student as their reference. The table gives the test error, the training
time and the final angle between each rule's update and the backprop gradient per hidden layer.
With ``--plot PATH`` (and matplotlib) it also saves a figure of the errors and of the angle of the
last hidden layer during training; without it, nothing is written.

    python examples/credit_assignment.py                    # both tasks, seed 1 (about a minute)
    python examples/credit_assignment.py --seeds 1 2 3 --task teacher
    python examples/credit_assignment.py --plot credit.png  # and save the figure
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import chainrule as cr
from chainrule.credit import (
    DNI,
    DirectFeedbackAlignment,
    FeedbackAlignment,
    LastLayerOnly,
    final_angles,
    teacher_task,
)

METHODS = {  # name: (hidden activation, rule factory)
    "BP": ("relu", lambda seed: None),
    "DNI": ("relu", lambda seed: DNI(seed=seed)),
    "cDNI": ("relu", lambda seed: DNI(conditioned=True, seed=seed)),
    "last layer": ("relu", lambda seed: LastLayerOnly()),
    "BP (tanh)": ("tanh", lambda seed: None),
    "FA (tanh)": ("tanh", lambda seed: FeedbackAlignment(seed=seed)),
    "DFA (tanh)": ("tanh", lambda seed: DirectFeedbackAlignment(seed=seed)),
}


COLORS = {"BP": "C0", "DNI": "C1", "cDNI": "C2", "last layer": "C7", "BP (tanh)": "C9", "FA (tanh)": "C3",
          "DFA (tanh)": "C4"}


def load(task: str):
    if task == "teacher":
        return teacher_task(30_000, 5_000, seed=0), 43
    X, y = cr.datasets.load_digits()
    X_train, X_test, y_train, y_test = cr.train_test_split(X, y, test_size=0.25, seed=0, stratify=y)
    scaler = cr.Standardizer().fit(X_train)
    return ((scaler.transform(X_train), y_train), (scaler.transform(X_test), y_test)), 100


def run(data, epochs: int, method: str, seed: int) -> dict:
    (X, y), (X_test, y_test) = data
    activation, make_rule = METHODS[method]
    net = cr.mlp([X.shape[1], 128, 128, 10], activation=activation, init="he_uniform", seed=seed)
    start = time.perf_counter()
    history = net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(1e-3), epochs=epochs, batch_size=128,
                      seed=seed, verbose=0, rule=make_rule(seed))
    seconds = time.perf_counter() - start
    error = 100.0 * float(np.mean(net.predict(X_test).argmax(axis=1) != y_test))
    return {"error": error, "seconds": seconds, "angles": final_angles(history), "history": history}


def table(task: str, results: dict[str, list[dict]]) -> str:
    lines = [f"{task}: test error (%) per seed, mean, time per run, final angle to BP per hidden layer",
             f"{'method':12s} {'errors':>24s} {'mean':>6s} {'time':>7s}   angles (layer: degrees)"]
    for method, runs in results.items():
        errors = " ".join(f"{r['error']:6.2f}" for r in runs)
        mean_err = np.mean([r["error"] for r in runs])
        secs = np.mean([r["seconds"] for r in runs])
        angles = runs[0]["angles"]
        hidden = ", ".join(f"{i}: {np.mean([r['angles'][i] for r in runs]):5.1f}"
                           for i in sorted(angles)[:-1]) if angles else "-"
        lines.append(f"{method:12s} {errors:>24s} {mean_err:6.2f} {secs:6.1f}s   {hidden}")
    return "\n".join(lines)


def plot(all_results: dict[str, dict[str, list[dict]]], path: str) -> None:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install 'chainrule[plot]')")
        return
    tasks = list(all_results)
    fig, axes = plt.subplots(1, 2 * len(tasks), figsize=(7 * len(tasks), 4.2), squeeze=False)
    for k, task in enumerate(tasks):
        results = all_results[task]
        ax = axes[0, 2 * k]
        names = list(results)
        means = [np.mean([r["error"] for r in results[m]]) for m in names]
        ax.bar(range(len(names)), means, color=[COLORS[m] for m in names])
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize="small")
        ax.set_ylabel("test error (%)")
        ax.set_title(f"{task}: test error")
        ax = axes[0, 2 * k + 1]
        for method, runs in results.items():
            curves = cr.credit.angle_curves(runs[0]["history"])
            if len(curves) < 2:
                continue
            last_hidden = sorted(curves)[-2]
            ax.plot(range(1, len(curves[last_hidden]) + 1), curves[last_hidden], label=method,
                    color=COLORS[method])
        ax.axhline(90, color="grey", lw=0.8, ls=":")
        ax.set_ylim(0, 100)
        ax.set_xlabel("epoch")
        ax.set_ylabel("angle to backprop (degrees)")
        ax.set_title(f"{task}: last hidden layer")
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"saved {path}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["teacher", "digits", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--plot", metavar="PATH", help="save a figure of the errors and angles to PATH")
    args = parser.parse_args(argv)
    tasks = ["teacher", "digits"] if args.task == "both" else [args.task]
    all_results = {}
    for task in tasks:
        data, epochs = load(task)
        results = {m: [run(data, epochs, m, seed) for seed in args.seeds] for m in args.methods}
        print(table(task, results), end="\n\n", flush=True)
        all_results[task] = results
    if args.plot:
        plot(all_results, args.plot)


if __name__ == "__main__":
    main()
