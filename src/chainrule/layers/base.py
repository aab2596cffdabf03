"""The Layer protocol every layer follows.

A layer maps a batch forward and sends the gradient back:

    forward(x, training=False) -> output          caches what backward needs
    backward(grad_out)         -> grad_in         fills ``self.grads`` (same keys as ``self.params``)

``params`` and ``grads`` are dicts of arrays with the same keys. Optimizers update
``params`` in place, so a layer must never rebind a parameter array after it is built.
``frozen`` names parameters that optimizers leave alone; their gradients are still computed.
``buffers`` (a dict of arrays, empty unless a layer has some) holds state that is not a
parameter but belongs to the model: BatchNorm's running mean and variance. Saving and
checkpoints store it beside the parameters, ``astype`` casts it; optimizers and gradcheck
never see it. A layer updates its buffers in place; their names differ from its parameters'
(a model file stores both as ``layers.<i>.<name>``).

``layer(x)`` is the checked public face of ``forward``: it accepts any array of numbers (ints
and bools are converted, non-contiguous and read-only arrays are fine) and refuses empty,
non-numeric and non-finite input with a ChainruleError. ``forward`` and ``backward`` themselves
are the unchecked protocol the training loop calls.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ShapeError

_REGISTRY: dict[str, type[Layer]] = {}  # class name -> class (what a model file names)
_NAMED: dict[str, type[Layer]] = {}     # a name users write ("relu") -> class (chainrule.registry)


class Layer:
    """Base class: no parameters, identity shapes. Subclasses override forward/backward.

    ``size_args`` names the constructor arguments that size the parameters (``Dense``: n_in,
    n_out). Unless a class (or a base class of it) sets it, it is read from the constructor:
    every argument annotated ``int`` (or ``int | None``), so ``Embedding(num_embeddings: int,
    dim: int)`` is covered as written. ``load`` refuses a config whose two largest sizes
    multiply to far more than the file holds, before it builds the layer; an argument listed
    twice counts squared (a recurrent layer's n_hidden × n_hidden weights).
    """

    size_args: tuple[str, ...] = ()
    _size_args_declared = False

    #: The names users write for this layer ("relu"), the first being its own (chainrule.registry).
    names: tuple[str, ...] = ()
    #: The initializer a Dense layer before it gets by default in ``mlp`` and the estimators.
    default_init = "xavier"
    #: (low, high) when every output lies in that closed range whatever the input (Sigmoid: (0, 1));
    #: None when unbounded or unknown. Losses compare it with what they expect (``check_output_layer``).
    output_range: tuple[float, float] | None = None

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.frozen: set[str] = set()
        self.buffers: dict[str, np.ndarray] = {}  # saved state that is not trained (see the module docstring)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls
        for name in cls.__dict__.get("names", ()):
            _NAMED[name] = cls
        if "size_args" in vars(cls):
            cls._size_args_declared = True
        elif "__init__" in vars(cls) and not cls._size_args_declared:
            cls.size_args = _int_arguments(cls.__init__)

    # --- the protocol ---------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x, training: bool = False, **kwargs) -> np.ndarray:
        """``forward`` with the input checked first (see the module docstring)."""
        from .._checks import as_float_array, check_finite, check_not_empty, quiet_float_errors

        name = f"{self!r} input"
        x = as_float_array(x, name, getattr(self, "dtype", None))
        if x.ndim == 0:
            raise ShapeError(f"{name} must be an array with at least one axis, got a scalar")
        check_not_empty(x, name)
        check_finite(x, name)
        check = getattr(self, "check_input", None)
        if check is not None:
            check(x)
        with quiet_float_errors():
            out = self.forward(x, training=training, **kwargs)
        if isinstance(out, np.ndarray) and out.dtype.kind == "f" and not np.isfinite(out).all():
            raise DataError(f"{self!r}: the output overflowed (inf or NaN) for finite input; scale the input")
        return out

    # --- work arrays ------------------------------------------------------------------
    def _scratch(self, key: str, shape: tuple, dtype) -> np.ndarray:
        """An uninitialized work array of ``shape`` and ``dtype``, the same one on every call with
        that key, shape and dtype: a layer's scratch space for one training step.

        Only for arrays that never leave the layer (not returned, not kept by a caller) and that
        the layer's own cache may keep until its next call at most, as forward's columns for
        backward. Training repeats the same batch shape step after step, and a fresh array of a
        few MiB each step costs a page fault per 4 KiB the first time it is written: on LeNet at
        batch 64 (float32, 2 cores) about 400-800 faults and a third of the step's time, with the
        convolutions' work arrays allocated per call. Evaluation-mode calls, whose batches can be
        any size, allocate their own instead, so nothing large stays held after a predict.
        Copies and pickles of a layer do not carry it (``__getstate__``).
        """
        work = self.__dict__.setdefault("_workspace", {})
        buf = work.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = work[key] = np.empty(shape, dtype)
        return buf

    def _work(self, training: bool, key: str, shape: tuple, dtype) -> np.ndarray:
        """A work array for one call: the layer's ``_scratch`` in training (the same array step
        after step), a new one in evaluation (whose batches can be any size)."""
        return self._scratch(key, shape, dtype) if training else np.empty(shape, dtype)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_workspace", None)  # scratch only (see _scratch): a copy gets its own
        return state

    # --- parameters -------------------------------------------------------------------
    def penalized(self) -> list[str]:
        """The parameters a weight penalty (chainrule.regularizers) applies to: those whose
        name starts with "weight" (weight, weight_ih, weight_q...), biases not. Normalization
        layers, whose "weight" is a scale, say none."""
        return [k for k in self.params if k.startswith("weight")]

    def freeze(self, *names: str) -> Layer:
        """Keep the named parameters (all, when none is named) fixed during training."""
        names = names or tuple(self.params)
        unknown = [n for n in names if n not in self.params]
        if unknown:
            raise ConfigError(
                f"{self!r} has parameters {sorted(self.params)}, cannot freeze {unknown}"
            )
        self.frozen.update(names)
        return self

    def unfreeze(self, *names: str) -> Layer:
        """Let the named parameters (all, when none is named) be trained again."""
        self.frozen.difference_update(names or tuple(self.params))
        return self

    def trainable(self):
        """(name, param, grad) for every parameter an optimizer should update."""
        return [(k, p, self.grads[k]) for k, p in self.params.items() if k not in self.frozen]

    def astype(self, dtype) -> Layer:
        """Cast parameters, their gradients and ``buffers`` to ``dtype`` (a new array only when it differs).

        A layer that keeps its float64 initial draw in ``self._initial`` (a dict by parameter
        name) is cast from that draw while its parameters are untouched since construction, so a
        float64 network gets the exact initial values, not float32-rounded ones; the draw is
        then dropped (it is needed only once, when the layer joins a network).
        """
        dtype = np.dtype(dtype)
        initial, self._initial = getattr(self, "_initial", None), None
        if initial and any(self.params[k].dtype != dtype for k in initial) and all(
                np.array_equal(self.params[k], v.astype(self.params[k].dtype)) for k, v in initial.items()):
            for k, v in initial.items():
                self.params[k] = v.astype(dtype)
                self.grads[k] = np.zeros_like(self.params[k])
        for k in self.params:
            if self.params[k].dtype != dtype:
                self.params[k] = self.params[k].astype(dtype)
                self.grads[k] = np.zeros_like(self.params[k])
        buffers = getattr(self, "buffers", {})  # (a subclass that skipped Layer.__init__ has none)
        for k in buffers:
            if buffers[k].dtype != dtype:
                buffers[k] = buffers[k].astype(dtype)
        self.dtype = np.dtype(dtype)
        return self

    @property
    def n_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    # --- shapes and saving ----------------------------------------------------------
    def output_shape(self, input_shape: tuple) -> tuple:
        """Shape of the output for an input of ``input_shape`` (sample axis excluded)."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (arrays travel separately, in ``params``)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


_INT_ANNOTATIONS = {"int", "int|None", "None|int", "Optional[int]", "typing.Optional[int]"}


def _int_arguments(init) -> tuple[str, ...]:
    """The arguments of ``init`` annotated ``int`` or ``int | None`` (strings or types)."""
    try:
        parameters = inspect.signature(init).parameters.values()
    except (TypeError, ValueError):
        return ()
    found = []
    for p in parameters:
        ann = p.annotation
        text = ann if isinstance(ann, str) else getattr(ann, "__name__", None) if ann is int else str(ann)
        if isinstance(text, str) and text.replace(" ", "") in _INT_ANNOTATIONS:
            found.append(p.name)
    return tuple(found)


def layer_class(name: str) -> type[Layer] | None:
    """The registered Layer class called ``name`` (None when there is none)."""
    return _REGISTRY.get(name) if isinstance(name, str) else None


def layer_from_config(name: str, config: dict[str, Any]) -> Layer:
    """Rebuild a layer from its class name and ``get_config()``."""
    if name not in _REGISTRY:
        raise KeyError(name)
    return _REGISTRY[name](**config)
