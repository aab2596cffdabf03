"""One registry of the names users write: activations, losses, optimizers, initializers.

``mlp``, the command line, the scikit-learn estimators, the playground and explain read the
names here, so a new activation needs one change: a Layer subclass in layers/activations.py
with ``names = ("gelu",)`` (and ``default_init`` when He initialization suits it). Losses,
optimizers and initializers keep their tables beside their classes (``losses._NAMES``,
``optim._NAMES``, ``init._NAMES``); this module is the one door to all four.

>>> from chainrule import registry
>>> registry.activation("relu").__name__, registry.activation("logistic").__name__
('ReLU', 'Sigmoid')
"""

from __future__ import annotations

from . import init as _init
from . import losses as _losses
from . import optim as _optim
from .errors import ConfigError
from .layers import activations as _activations  # noqa: F401  (defines the named layers)
from .layers.base import _NAMED, Layer

KINDS = ("activation", "loss", "optimizer", "initializer")


def _table(kind: str) -> dict:
    if kind == "activation":
        return _NAMED
    if kind == "loss":
        return _losses._NAMES
    if kind == "optimizer":
        return _optim._NAMES
    if kind == "initializer":
        return _init._NAMES
    raise ConfigError(f"registry kind must be one of {', '.join(KINDS)}, got {kind!r}")


def names(kind: str, *, aliases: bool = True) -> list[str]:
    """The names of one kind, sorted (without aliases: each class's own name only)."""
    table = _table(kind)
    if aliases or kind != "activation":
        return sorted(table)
    return sorted(cls.names[0] for cls in set(table.values()))


def lookup(kind: str, name: str):
    """The class registered under ``name`` (case-insensitive), or a ConfigError listing the choices."""
    table = _table(kind)
    key = name.lower() if isinstance(name, str) else name
    if not isinstance(key, str) or key not in table:
        raise ConfigError(f"unknown {kind} {name!r}; choose one of {', '.join(names(kind))}")
    return table[key]


def activation(name: str) -> type[Layer]:
    """The activation layer class for ``name`` ("relu", "logistic", ...)."""
    return lookup("activation", name)


def name_of(layer) -> str | None:
    """The registered name of an activation layer (its class's first name), or None."""
    own = type(layer).__dict__.get("names", ())
    return own[0] if own else None
