"""Plots of training (matplotlib, the ``plot`` extra): curves, decision boundaries, gradient norms.

Each function draws on ``ax`` when given, else on a new figure, and returns the Figure.
With ``path`` the figure is written there atomically (the format from the suffix, PNG by
default) and not left open in pyplot, so scripts and servers need no display.

>>> import chainrule as cr                                   # doctest: +SKIP
>>> cr.plot.history(net.fit(...), path="curves.png")
>>> cr.plot.decision_boundary(net, X, y, path="boundary.png")
>>> norms = cr.GradientNormLogger(); net.fit(..., callbacks=[norms])
>>> cr.plot.gradient_norms(norms, path="gradients.png")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._env import in_notebook
from .errors import ChainruleError, ShapeError


class PlotDependencyError(ChainruleError, ImportError):
    """matplotlib is not installed."""


def require_matplotlib():
    """The matplotlib module, or a PlotDependencyError saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise PlotDependencyError("plots need matplotlib: pip install 'chainrule[plot]'") from None
    return matplotlib


def _figure(ax, ncols: int = 1, width: float = 5.0, height: float = 3.8, path=None):
    """(figure, list of axes): ``ax``'s figure; a bare Figure when saving to ``path`` or in a
    notebook; else pyplot's."""
    require_matplotlib()
    if ax is not None:
        axes = list(np.ravel(ax))
        return axes[0].figure, axes
    size = (width * ncols, height)
    if path is not None or in_notebook():  # (a notebook shows the returned figure; pyplot would show it again)
        from matplotlib.figure import Figure

        fig = Figure(figsize=size)
        return fig, list(np.ravel(fig.subplots(1, ncols, squeeze=False)))
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=size, squeeze=False)
    return fig, list(np.ravel(axes))


def _finish(fig, path, title: str | None = None):
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        from .io import atomic_write

        fmt = Path(path).suffix.lstrip(".").lower() or "png"
        atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=100))
    return fig


def _curves(history) -> dict[str, list[float]]:
    """History, dict of lists, or a fitted chainrule.sklearn estimator -> {name: values}."""
    if hasattr(history, "history") and isinstance(history.history, dict):
        return history.history
    if hasattr(history, "loss_curve_"):
        curves = {"loss": list(history.loss_curve_)}
        if getattr(history, "validation_scores_", None):
            curves[f"val_{getattr(history, '_score_name', 'score')}"] = list(history.validation_scores_)
        return curves
    if isinstance(history, dict):
        return history
    raise ShapeError(f"plot.history expects a History, a dict of lists or a fitted estimator, got {history!r}")


def history(history, metrics=None, ax=None, path=None, title: str | None = None, log_loss: bool = False):
    """Loss and metric curves per epoch, each with its validation curve ("val_" name) if any.

    Parameters
    ----------
    history : History, dict of lists, or fitted chainrule.sklearn estimator
    metrics : list of str, optional
        Names to plot besides the loss (default: every name in the history that does not
        start with "val_"; a validation-only metric gets its own panel).
    ax : matplotlib Axes or sequence of them, optional
        One per panel (loss first).
    path : str or Path, optional
        Save the figure there.
    title : str, optional
    log_loss : bool
        Logarithmic y axis for the loss panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    curves = _curves(history)
    if not curves:
        raise ShapeError("plot.history: the history is empty (nothing was trained?)")
    if metrics is None:
        metrics = [k for k in curves if not k.startswith("val_") and k != "loss"]
        metrics += [k[4:] for k in curves if k.startswith("val_") and k[4:] not in curves and k != "val_loss"]
    panels = (["loss"] if "loss" in curves or "val_loss" in curves else []) + list(metrics)
    fig, axes = _figure(ax, ncols=len(panels), path=path)
    if len(axes) < len(panels):
        raise ShapeError(f"plot.history needs {len(panels)} axes ({', '.join(panels)}), got {len(axes)}")
    for a, name in zip(axes, panels, strict=False):
        for key, style in ((name, "-"), (f"val_{name}", "--")):
            if key in curves:
                values = np.asarray(curves[key], dtype=float)
                a.plot(np.arange(1, len(values) + 1), values, style, label=key.replace("_", " "))
        a.set_xlabel("epoch")
        a.set_ylabel(name)
        if name == "loss" and log_loss:
            a.set_yscale("log")
        a.grid(alpha=0.3)
        a.legend()
    return _finish(fig, path, title)


def _class_of(model, points: np.ndarray, threshold: float) -> np.ndarray:
    """Class index of each point: arg-max of several outputs, or one output against ``threshold``."""
    if hasattr(model, "classes_") and hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(points)).argmax(axis=1)
    out = np.asarray(model.predict(points))
    if out.ndim == 2 and out.shape[1] > 1:
        return out.argmax(axis=1)
    return (out.reshape(-1) > threshold).astype(int)


def decision_boundary(model, X, y=None, ax=None, path=None, resolution: int = 200, margin: float = 0.5,
                      threshold: float = 0.5, title: str | None = None, cmap: str = "coolwarm"):
    """The regions a classifier assigns to each class over 2-D inputs, with the samples on top.

    Parameters
    ----------
    model : chainrule.Sequential or a scikit-learn-style classifier
        A network's output is read as class scores (arg-max), or, with one output column, as a
        probability compared with ``threshold`` (use ``threshold=0`` for a logit).
    X : array (n_samples, 2)
    y : array (n_samples,), optional
        Class labels of the samples (integers, or the estimator's labels), to colour the points.
    resolution : int
        Grid points along each axis.
    margin : float
        Space around the data, in the data's units.

    Returns
    -------
    matplotlib.figure.Figure
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ShapeError(f"plot.decision_boundary needs 2-D inputs of shape (n_samples, 2), got {X.shape}")
    lo, hi = X.min(axis=0) - margin, X.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    regions = _class_of(model, grid, threshold).reshape(gx.shape)
    fig, (a,) = _figure(ax, path=path, width=5.0, height=4.5)
    n_classes = int(regions.max()) + 1
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if hasattr(model, "classes_"):
            y = np.searchsorted(np.asarray(model.classes_), y)
        n_classes = max(n_classes, int(y.max()) + 1)
    levels = np.arange(n_classes + 1) - 0.5
    a.contourf(gx, gy, regions, levels=levels, cmap=cmap, alpha=0.3)
    a.contour(gx, gy, regions, levels=levels, colors="k", linewidths=0.5)
    a.scatter(X[:, 0], X[:, 1], c=y if y is not None else "k", cmap=cmap, vmin=-0.5,
              vmax=n_classes - 0.5, s=14, edgecolors="k", linewidths=0.3)
    a.set_xlim(lo[0], hi[0])
    a.set_ylim(lo[1], hi[1])
    a.set_xlabel("x₁")
    a.set_ylabel("x₂")
    return _finish(fig, path, title)


def gradient_norms(norms, ax=None, path=None, log: bool = True, title: str | None = None):
    """Each layer's gradient norm over training (vanishing or exploding gradients show here).

    Parameters
    ----------
    norms : GradientNormLogger or dict[str, list[float]]
        What a :class:`chainrule.GradientNormLogger` recorded during ``fit``.
    log : bool
        Logarithmic y axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    every = getattr(norms, "every", "epoch")
    curves = getattr(norms, "norms", norms)
    if not isinstance(curves, dict) or not curves or not any(len(v) for v in curves.values()):
        raise ShapeError("plot.gradient_norms needs recorded norms: pass a GradientNormLogger to fit's callbacks")
    fig, (a,) = _figure(ax, path=path, width=6.0, height=4.0)
    for name, values in curves.items():
        values = np.asarray(values, dtype=float)
        a.plot(np.arange(1, len(values) + 1), values, label=name)
    if log:
        a.set_yscale("log")
    a.set_xlabel(every)
    a.set_ylabel("‖∂L/∂θ‖ per layer")
    a.grid(alpha=0.3)
    a.legend(fontsize="small")
    return _finish(fig, path, title)
