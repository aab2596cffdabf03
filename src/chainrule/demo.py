"""The main job (`make run`, `chainrule demo`): a 64-32-16-10 network on the bundled 8x8 digits."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import datasets
from .callbacks import ProgressBar
from .data import Standardizer, train_test_split
from .losses import CrossEntropy
from .metrics import classification_report
from .network import mlp
from .optim import Adam

#: The configuration the tests hold to (>= 97 % test accuracy).
CONFIG = {"sizes": [64, 32, 16, 10], "activation": "relu", "lr": 1e-3, "weight_decay": 1e-3,
          "epochs": 100, "batch_size": 32, "split_seed": 42, "seed": 0}


def train_digits(verbose: int = 1, config: dict | None = None):
    """Train the demo network; return (net, history, (X_test, y_test))."""
    cfg = {**CONFIG, **(config or {})}
    X, y = datasets.load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, seed=cfg["split_seed"], stratify=y)
    net = mlp(cfg["sizes"], activation=cfg["activation"], seed=cfg["seed"])
    net.scaler = Standardizer()
    history = net.fit(X_train, y_train, loss=CrossEntropy(),
                      optimizer=Adam(lr=cfg["lr"], weight_decay=cfg["weight_decay"]),
                      epochs=cfg["epochs"], batch_size=cfg["batch_size"], seed=cfg["seed"],
                      validation_data=(X_test, y_test), metrics=["accuracy"], verbose=0,
                      callbacks=[ProgressBar()] if verbose else [])
    return net, history, (X_test, y_test)


def plot_history(history, path) -> bool:
    """Write the loss curves to a PNG; return False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(history.history["loss"]) + 1)
    for key in ("loss", "val_loss"):
        if key in history.history:
            ax.plot(epochs, history.history[key], label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("64-32-16-10 network on the 8x8 digits")
    fig.tight_layout()
    from .io import atomic_write

    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return True


def main(out_dir: str = "runs", verbose: int = 1) -> float:
    """Train, report test accuracy and per-class precision/recall, save the model and plot."""
    start = time.perf_counter()
    print("Training a 64-32-16-10 ReLU network on the 8x8 digits (1,797 images, 75/25 split)")
    net, history, (X_test, y_test) = train_digits(verbose=verbose)
    print(net.summary())
    pred = net.predict(X_test).argmax(axis=1)
    acc = float((pred == y_test).mean())
    print(f"\ntest accuracy: {acc:.4f} ({int((pred == y_test).sum())}/{len(y_test)})"
          f" after {len(history.epoch)} epochs, {time.perf_counter() - start:.1f} s\n")
    print(classification_report(y_test, pred, n_classes=10))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net.save(out / "digits.npz")
    print(f"\nmodel saved to {out / 'digits.npz'}")
    if plot_history(history, out / "digits-loss.png"):
        print(f"loss curves saved to {out / 'digits-loss.png'}")
    else:
        print("matplotlib not installed: no plot (pip install 'chainrule[plot]')")
    return acc
