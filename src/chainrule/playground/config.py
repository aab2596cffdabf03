"""The playground's settings: what each one may be, its default, and one check of them all.

A configuration is a plain JSON-able dict. The page sends a partial one (the fields it
changed); :func:`check_config` merges it onto the current one and rejects anything outside
the ranges below with a :class:`chainrule.ConfigError` that names the field::

    playground config 'layers': expected 0 to 6 hidden layers of 1 to 8 units, got [4, 12]
"""

from __future__ import annotations

from typing import Any

from .. import registry
from .._checks import check_number, describe_number
from ..errors import ConfigError

CLASSIFICATION = ("circle", "xor", "gaussian", "spiral")
REGRESSION = ("plane", "multigauss")
DATASETS = CLASSIFICATION + REGRESSION + ("csv",)
FEATURES = ("x", "y", "x2", "y2", "xy", "sinx", "siny")
#: The hidden-layer activations the page offers: every name in chainrule.registry but softmax (a
#: whole-layer function, not a unit's), "linear" standing for the identity.
ACTIVATIONS = tuple(dict.fromkeys(["tanh", "relu", "sigmoid", "linear"] + [
    n for n in registry.names("activation", aliases=False) if n not in ("softmax", "identity")]))
LOSSES = ("squared", "crossentropy")
OPTIMIZERS = ("sgd", "momentum", "adam")
REGULARIZATIONS = ("none", "l1", "l2")
MAX_LAYERS, MAX_UNITS = 6, 8

DEFAULTS: dict[str, Any] = {
    "dataset": "circle",      # one of DATASETS ("csv" once a file was uploaded)
    "classes": 2,             # 2 or 3 (circle, gaussian, spiral; xor has 2)
    "noise": 0,               # percent, 0-50
    "train_ratio": 50,        # percent of the points used for training, 10-90
    "samples": 400,           # points generated, 20-2000
    "seed": 1,                # data, initial weights and batch order
    "features": ["x", "y"],   # input features, from FEATURES
    "layers": [4, 2],         # hidden layer sizes
    "activations": ["tanh", "tanh"],  # one per hidden layer
    "loss": "squared",        # squared error ½Σ(t - o)² or softmax cross-entropy
    "optimizer": "sgd",       # sgd, momentum (SGD with momentum 0.9), adam
    "lr": 0.03,
    "batch_size": 10,
    "regularization": "none",
    "reg_rate": 0.0,
    "speed": 0,               # mini-batches per second while playing; 0: as fast as it goes
}


def _fail(name: str, expected: str, got: Any) -> ConfigError:
    return ConfigError(f"playground config {name!r}: expected {expected}, got {got!r}")


def _int(cfg: dict, name: str, low: int, high: int) -> None:
    value = cfg[name]
    if isinstance(value, float) and value.is_integer():
        value = cfg[name] = int(value)
    _check(name, value, low=low, high=high, integer=True)


def _number(cfg: dict, name: str, low: float, high: float, low_open: bool = False) -> None:
    _check(name, cfg[name], low=low, high=high, low_open=low_open)
    cfg[name] = float(cfg[name])


def _check(name: str, value: Any, **accepted) -> None:
    """The library's check_number, its message in the playground's words."""
    try:
        check_number(value, name, **accepted)
    except ConfigError:
        raise _fail(name, describe_number(**accepted, say_finite=True), value) from None


def _choice(cfg: dict, name: str, choices: tuple) -> None:
    if cfg[name] not in choices:
        raise _fail(name, "one of " + ", ".join(choices), cfg[name])


def check_config(update: dict | None, base: dict | None = None) -> dict:
    """``update`` merged onto ``base`` (default: DEFAULTS), every field checked; a new dict.

    Changing ``layers`` without ``activations`` keeps the activations of the layers that
    remain and gives new layers the activation of the last one (tanh when there was none).
    """
    base = dict(DEFAULTS if base is None else base)
    update = dict(update or {})
    unknown = sorted(set(update) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"playground config: unknown field(s) {', '.join(map(repr, unknown))};"
                          f" the fields are {', '.join(DEFAULTS)}")
    cfg = {**base, **update}
    _choice(cfg, "dataset", DATASETS)
    _int(cfg, "classes", 2, 3)
    _int(cfg, "noise", 0, 50)
    _int(cfg, "train_ratio", 10, 90)
    _int(cfg, "samples", 20, 2000)
    _int(cfg, "seed", 0, 2**31 - 1)
    feats = cfg["features"]
    if not isinstance(feats, (list, tuple)) or not feats or any(f not in FEATURES for f in feats) \
            or len(set(feats)) != len(feats):
        raise _fail("features", "a non-empty list of distinct names from " + ", ".join(FEATURES), feats)
    cfg["features"] = [f for f in FEATURES if f in feats]  # a fixed order: the order of the inputs
    sizes = cfg["layers"]
    if not isinstance(sizes, (list, tuple)) or len(sizes) > MAX_LAYERS or any(
            isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_UNITS for s in sizes):
        raise _fail("layers", f"0 to {MAX_LAYERS} hidden layers of 1 to {MAX_UNITS} units", sizes)
    cfg["layers"] = list(sizes)
    acts = list(cfg["activations"]) if isinstance(cfg["activations"], (list, tuple)) else cfg["activations"]
    if "activations" not in update and isinstance(acts, list):
        fill = acts[-1] if acts else "tanh"
        acts = (acts + [fill] * len(sizes))[:len(sizes)]
    if not isinstance(acts, list) or len(acts) != len(sizes) or any(a not in ACTIVATIONS for a in acts):
        raise _fail("activations", f"one of {', '.join(ACTIVATIONS)} for each of the {len(sizes)} hidden"
                    " layers", cfg["activations"])
    cfg["activations"] = acts
    _choice(cfg, "loss", LOSSES)
    _choice(cfg, "optimizer", OPTIMIZERS)
    _number(cfg, "lr", 0.0, 10.0, low_open=True)
    _int(cfg, "batch_size", 1, 2000)
    _choice(cfg, "regularization", REGULARIZATIONS)
    _number(cfg, "reg_rate", 0.0, 10.0)
    _number(cfg, "speed", 0.0, 1000.0)
    if cfg["dataset"] in REGRESSION and cfg["loss"] == "crossentropy":
        raise ConfigError(f"playground config 'loss': cross-entropy needs classes; the {cfg['dataset']!r} data"
                          " set is a regression (use squared error)")
    if cfg["dataset"] == "xor" and cfg["classes"] != 2:
        raise _fail("classes", "2 for the xor data set", cfg["classes"])
    return cfg
