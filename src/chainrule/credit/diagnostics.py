"""Diagnostics of credit-assignment rules: alignment angles from a History, and their plot.

A rule given to ``fit`` logs, each epoch, the mean angle between its gradient and backprop's
for every parametric layer i as ``history.history["angle_<i>"]`` (0° = backprop's direction,
90° = no information), and DNI its modules' regression losses as ``sg_loss_<k>``.
matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

from ..errors import ConfigError


def angle_curves(history) -> dict[int, list[float]]:
    """Layer index -> the per-epoch angles (degrees) a rule logged in ``history``."""
    logs = history.history if hasattr(history, "history") else history
    return {int(k.split("_", 1)[1]): list(v) for k, v in logs.items() if k.startswith("angle_")}


def final_angles(history) -> dict[int, float]:
    """Layer index -> the angle (degrees) of the last epoch."""
    return {i: v[-1] for i, v in angle_curves(history).items() if v}


def _pyplot():
    try:
        import matplotlib.pyplot as plt  # falls back to a file-only backend without a display
    except ImportError:
        raise ConfigError("plotting needs matplotlib: pip install 'chainrule[plot]'") from None
    return plt


def plot_alignment(histories, path=None, ax=None, title: str | None = None):
    """Plot the alignment angle of every layer against the epoch.

    Parameters
    ----------
    histories : History or dict[str, History]
        One run, or several by name (e.g. {"FA": h1, "DFA": h2}); one line per run and layer.
    path : str or Path, optional
        Save the figure there (PNG, PDF, SVG by the suffix).
    ax : matplotlib Axes, optional
        Draw into these axes instead of a new figure.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    plt = _pyplot()
    if not isinstance(histories, dict):
        histories = {"": histories}
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    drawn = 0
    for name, history in histories.items():
        for layer, curve in sorted(angle_curves(history).items()):
            if not curve or max(curve) == 0.0:
                continue  # a layer that gets the true gradient (the top one) stays at 0
            label = f"{name} layer {layer}".strip()
            ax.plot(range(1, len(curve) + 1), curve, label=label)
            drawn += 1
    if not drawn:
        raise ConfigError("no alignment angles to plot: train with a rule whose track_every is set")
    ax.axhline(90, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("epoch")
    ax.set_ylabel("angle to the backprop gradient (degrees)")
    ax.set_ylim(0, 100)
    ax.set_title(title or "alignment with backprop")
    ax.legend(fontsize="small")
    if path is not None:
        ax.figure.tight_layout()
        from pathlib import Path

        from ..io import atomic_write

        fmt = Path(path).suffix.lstrip(".").lower() or "png"
        atomic_write(path, lambda f: ax.figure.savefig(f, format=fmt, dpi=120))
    return ax
