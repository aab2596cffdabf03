"""Residual (skip) connection around a stack of layers."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, ShapeError
from .base import Layer, layer_from_config


class _Merged(dict):
    """The inner layers' ``params`` (or ``grads``, ``buffers``) under "index.name" keys: the same arrays.

    Writing a key also writes it into the inner layer's own dict, so code that rebinds an
    array (loading a file, casting, a gradient buffer moved into a flat vector) reaches the
    layer that computes with it.
    """

    __slots__ = ("_layers", "_attr")

    def __init__(self, layers, attr: str) -> None:
        super().__init__((f"{i}.{k}", v) for i, layer in enumerate(layers)
                         for k, v in (getattr(layer, attr, None) or {}).items())
        self._layers, self._attr = layers, attr

    def __setitem__(self, key, value) -> None:
        if key not in self:
            raise KeyError(key)
        index, _, name = key.partition(".")
        getattr(self._layers[int(index)], self._attr)[name] = value
        super().__setitem__(key, value)


class Residual(Layer):
    """x -> x + f(x), f being the given layers applied in order (f must keep x's shape).

    forward:  y = x + f(x)                      (caches nothing beyond what f's layers cache)
    backward: dL/dx = dL/dy + f.backward(dL/dy), f's layers' backward in reverse order

    The parameters are the inner layers' own arrays, keyed "index.name" ("0.weight", "2.bias";
    "1.0.weight" for a Residual inside a Residual), so optimizers update them in place,
    ``net.params`` lists them as "layer.index.name" and ``freeze("0.weight")`` fixes one.
    Parameters frozen in an inner layer when the Residual is built stay frozen. The inner layers'
    ``buffers`` (a BatchNorm's running statistics) are merged the same way, so they are saved,
    averaged across ranks and restored by EarlyStopping like any layer's.

    A pre-norm transformer block is two of them::

        Residual(LayerNorm(D), MultiHeadAttention(D, H)),
        Residual(LayerNorm(D), Dense(D, 4 * D), GELU(), Dense(4 * D, D))

    Parameters
    ----------
    *layers : Layer or dict
        The layers of f, in order; a dict ``{"class": name, "config": {...}}`` (how a file
        stores a layer) is built first.
    layers : list, optional
        The same as a keyword (what :meth:`get_config` returns); not together with positional layers.
    """

    def __init__(self, *inner: Layer | dict, layers: list | None = None) -> None:
        super().__init__()
        if layers is not None:
            if inner:
                raise ConfigError("Residual takes its layers either positionally or as layers=[...], not both")
            if not isinstance(layers, (list, tuple)):
                raise ConfigError(f"Residual layers must be a list of layers, got {type(layers).__name__}")
            inner = tuple(layers)
        if not inner:
            raise ConfigError("Residual needs at least one layer (x + f(x) with f the layers)")
        built = []
        for i, layer in enumerate(inner):
            if isinstance(layer, dict) and isinstance(layer.get("class"), str):
                config = layer.get("config", {})
                if not isinstance(config, dict):
                    raise ConfigError(f"Residual layer {i}: config must be a dict, got {config!r}")
                layer = layer_from_config(layer["class"], config)
            if not isinstance(layer, Layer):
                raise ConfigError(f"Residual layer {i} must be a Layer, got {layer!r}")
            built.append(layer)
        self.layers: list[Layer] = built
        self.frozen = {f"{i}.{k}" for i, layer in enumerate(built) for k in layer.frozen}
        self._merge()

    def penalized(self) -> list[str]:
        return [f"{i}.{k}" for i, layer in enumerate(self.layers) for k in layer.penalized()]

    def _merge(self) -> None:
        self.params = _Merged(self.layers, "params")
        self.grads = _Merged(self.layers, "grads")
        self.buffers = _Merged(self.layers, "buffers")   # a BatchNorm's running statistics

    # --- forward and backward ---------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        out = x
        for layer in self.layers:
            out = layer.forward(out, training)
        if out.shape != x.shape:
            raise ShapeError(f"{self!r}: its layers map shape {x.shape} to {out.shape};"
                             " x + f(x) needs f to keep the shape")
        return x + out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        grad_f = grad
        for layer in reversed(self.layers):
            grad_f = layer.backward(grad_f)
        return grad + grad_f  # a new array: grad_f may be grad itself (an Identity inside)

    def check_input(self, x: np.ndarray) -> None:
        """The first inner layer's input check (the shape is checked again after f)."""
        check = getattr(self.layers[0], "check_input", None)
        if check is not None:
            check(x)

    # --- parameters and saving --------------------------------------------------------
    def astype(self, dtype) -> Residual:
        for layer in self.layers:
            layer.astype(dtype)
        self._merge()
        self.dtype = np.dtype(dtype)
        return self

    def __getstate__(self) -> dict:  # copies and pickles rebuild the views from the inner layers
        state = super().__getstate__()
        for key in ("params", "grads", "buffers"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._merge()

    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {"layers": [{"class": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers]}

    def __repr__(self) -> str:
        return f"Residual({', '.join(repr(layer) for layer in self.layers)})"
