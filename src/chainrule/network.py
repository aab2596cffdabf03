"""Sequential: a stack of layers, its forward and backward pass, and fit/predict/evaluate."""

from __future__ import annotations

import copy

import numpy as np

from ._checks import as_float_array, check_batch, check_finite, check_not_empty, check_positive_int, quiet_float_errors
from .errors import ChainruleError, ConfigError, DataError, ShapeError
from .layers.base import Layer
from .losses import get_loss
from .metrics import get_metric

#: predict and evaluate run the network on this many samples at a time: each layer's output then
#: stays in cache for the next layer. The 784-256-128-10 MLP of the benchmarks on 10,000 samples
#: (float32, 2 cores, median of 15 calls taking turns in one process): 305k samples/s in batches
#: of 1,024, 308k in batches of 2,048, 250k in batches of 8,192 (the earlier default)
PREDICT_BATCH = 1024


class Sequential:
    """Layers applied one after the other.

    forward:  a⁰ = x,  aˡ = layerˡ.forward(aˡ⁻¹),  output = aᴸ
    backward: gᴸ = dL/doutput,  gˡ⁻¹ = layerˡ.backward(gˡ)  (each layer fills its ``grads``)

    Parameters
    ----------
    *layers : Layer
        The layers, first to last (a single list is accepted too).
    dtype : numpy dtype
        float32 (default) or float64: parameters, activations, gradients and optimizer state
        all use it; input of another dtype is cast once at the boundary.

    Attributes
    ----------
    scaler : Standardizer, MinMaxScaler, MaxScaler or None
        Input preprocessing that belongs to the network: ``forward`` (and so ``net(x)``),
        ``predict``, ``evaluate`` and ``fit`` all apply it, so ``net(x)`` and ``net.predict(x)``
        always agree. ``fit`` fits it on the training data when it is not fitted yet; it is saved
        with the model. ``backward`` returns dL/dx for the raw input: the chain rule goes on
        through the scaler. (``explain`` and ``gradcheck`` work on the layers alone.)
    """

    def __init__(self, *layers: Layer, dtype=np.float32) -> None:
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ConfigError(f"Sequential layer {i} must be a Layer, got {layer!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ConfigError(f"Sequential dtype must be float32 or float64, got {self.dtype}")
        self.layers: list[Layer] = list(layers)
        for layer in self.layers:
            layer.astype(self.dtype)
        self.scaler = None
        self._scaled_forward = False  # whether the last forward applied the scaler (backward chains it)
        self.optimizer = None
        self.loss = None
        self.stop_training = False

    # --- forward and backward ------------------------------------------------------------
    def _check_input(self, x, name: str = "X") -> np.ndarray:
        first = self.layers[0] if self.layers else None
        if getattr(first, "input_kind", None) == "index":  # integer ids (Embedding): checked, kept integers
            if self.scaler is not None:
                raise ConfigError(f"{first!r} takes integer ids: a network that starts with it has no"
                                  f" input scaler, got {type(self.scaler).__name__}")
            arr = first.check_indices(x, name)
            check_batch(arr, name)
            check_not_empty(arr, name)
            return arr
        arr = as_float_array(x, name, self.dtype)
        check_batch(arr, name)
        check_not_empty(arr, name)
        check_finite(arr, name)
        check_first = getattr(self.layers[0], "check_input", None) if self.layers else None
        if check_first is not None:  # name the caller's whole array, not a probe or a batch
            check_first(arr)
        return arr

    def _prepare_input(self, x, name: str = "X") -> np.ndarray:
        """Checked, cast and (when a scaler is attached) scaled input."""
        arr = self._check_input(x, name)
        if self.scaler is not None:
            arr = self._check_input(self.scaler.transform(arr), f"scaled {name}")
        return arr

    def forward(self, x, training: bool = False) -> np.ndarray:
        """The network's output for a batch ``x`` of shape (n_samples, n_features).

        An attached ``scaler`` is applied first, as ``predict`` does.
        """
        out = self._prepare_input(x)
        self._scaled_forward = self.scaler is not None
        with quiet_float_errors():
            for layer in self.layers:
                out = layer.forward(out, training)
        _check_output(out, "forward")
        return out

    __call__ = forward

    def backward(self, grad) -> np.ndarray:
        """Send dL/doutput back through every layer; fill their ``grads``; return dL/dx.

        ``grad`` must have the shape of the output of the last forward pass (whose caches the
        layers use). When that pass applied a scaler, dL/dx is for the raw input (dL/dx' times
        the scaler's slope per column).
        """
        grad = as_float_array(grad, "backward grad", self.dtype)
        check_finite(grad, "backward grad")
        try:
            with quiet_float_errors():
                for layer in reversed(self.layers):
                    grad = layer.backward(grad)
        except ChainruleError:
            raise
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise ShapeError(f"backward: the gradient does not fit the last forward pass ({exc}); call"
                             " forward first and pass dL/doutput of the output's shape") from None
        if self._scaled_forward and self.scaler is not None:
            grad = self.scaler.input_gradient(grad)
        return grad

    def _forward_train(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, True)
        return x

    def _backward_train(self, grad: np.ndarray) -> None:
        """backward without dL/dx for the first layer, which nothing uses during training."""
        layers = self.layers
        for layer in layers[:0:-1]:
            grad = layer.backward(grad)
        first = layers[0]
        if hasattr(first, "backward_params"):
            first.backward_params(grad)
        else:
            first.backward(grad)

    # --- parameters -----------------------------------------------------------------------
    @property
    def params(self) -> dict[str, np.ndarray]:
        """Every parameter, keyed "layer_index.name" (the arrays themselves, not copies)."""
        return {f"{i}.{k}": p for i, layer in enumerate(self.layers) for k, p in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Every gradient from the last backward, keyed like ``params``."""
        return {f"{i}.{k}": g for i, layer in enumerate(self.layers) for k, g in layer.grads.items()}

    @property
    def n_params(self) -> int:
        return sum(layer.n_params for layer in self.layers)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every parameter, in ``params`` order."""
        return [p.copy() for p in self.params.values()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Copy ``weights`` (as from ``get_weights``) into the parameters, in place."""
        params = list(self.params.items())
        if len(weights) != len(params):
            raise ShapeError(f"set_weights expects {len(params)} arrays, got {len(weights)}")
        for (key, p), w in zip(params, weights, strict=True):
            w = np.asarray(w)
            if w.shape != p.shape:
                raise ShapeError(f"set_weights: parameter {key} has shape {p.shape}, got {w.shape}")
            p[...] = w

    def copy(self) -> Sequential:
        """An independent deep copy (parameters, scaler, layer state)."""
        return copy.deepcopy(self)

    def astype(self, dtype) -> Sequential:
        """A copy of the network in another dtype (gradcheck and explain use float64)."""
        net = self.copy()
        net.dtype = np.dtype(dtype)
        for layer in net.layers:
            layer.astype(net.dtype)
        return net

    # --- description ----------------------------------------------------------------------
    def _summary_rows(self, input_shape: tuple | None = None):
        """(head, rows, notes) of ``summary``: one row of strings per layer, then the totals."""
        shape = input_shape
        if shape is None and self.layers and hasattr(self.layers[0], "n_in"):
            shape = (self.layers[0].n_in,)
        rows = []
        for i, layer in enumerate(self.layers):
            if shape is not None:
                try:
                    shape = layer.output_shape(tuple(shape))
                except Exception:
                    shape = None
            out = "(None, " + ", ".join(map(str, shape)) + ")" if shape is not None else "?"
            frozen = f" frozen: {','.join(sorted(layer.frozen))}" if layer.frozen else ""
            rows.append((f"{i}", repr(layer), out, f"{layer.n_params:,}{frozen}"))
        head = ("#", "layer", "output shape", "parameters")
        total = self.n_params
        trainable = sum(p.size for layer in self.layers for _, p, _ in layer.trainable())
        notes = [f"parameters: {total:,} ({trainable:,} trainable), dtype {self.dtype}"]
        if self.scaler is not None:
            notes.append(f"input scaler: {type(self.scaler).__name__}")
        return head, rows, notes

    def summary(self, input_shape: tuple | None = None) -> str:
        """A table of the layers, their output shapes and parameter counts."""
        head, rows, notes = self._summary_rows(input_shape)
        widths = [max(len(r[c]) for r in [head, *rows]) for c in range(4)]
        line = "  ".join("-" * w for w in widths)
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return "\n".join([fmt.format(*head), line, *(fmt.format(*r) for r in rows), line, *notes])

    def _repr_html_(self) -> str:
        """In a notebook: the layers drawn left to right, then the ``summary`` table."""
        from ._display import html_table, svg_layers

        head, rows, notes = self._summary_rows()
        boxes = [(type(layer).__name__, [f"out {r[2].replace('None, ', '')}", f"{layer.n_params:,} params"],
                  layer.n_params > 0) for layer, r in zip(self.layers, rows, strict=True)]
        return (f"<div>{svg_layers(boxes)}"
                f"{html_table(head, rows, caption='Sequential', footer='; '.join(notes))}</div>")

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential({inner}, dtype={self.dtype.name})"

    # --- training and use -----------------------------------------------------------------
    def fit(self, X, y, loss="mse", optimizer="sgd", epochs: int = 1, batch_size: int | None = 32,
            shuffle: bool = True, seed=None, validation_data=None, metrics=(), callbacks=(),
            verbose: int = 1, print_every: int | None = None, rule=None,
            bptt_steps: int | None = None, distributed=False, checkpoint=None,
            checkpoint_every="epoch", resume=None, graceful_stop: bool = True, regularizer=None):
        """Train the network by backpropagation (or by another credit-assignment ``rule``).

        Each batch is one training step (chainrule.step): forward, loss, backward, update.

        Parameters
        ----------
        X : array (n_samples, n_features)
        y : array
            Targets: what the loss expects (class labels or one-hot rows for CrossEntropy,
            values of the output's shape for MSE/SSE/BinaryCrossEntropy).
        loss : Loss or name
        optimizer : Optimizer or name
            Its state carries over between calls to fit.
        epochs : int
        batch_size : int or None
            1 gives per-sample updates; None gives full-batch gradient descent.
        shuffle : bool
            Shuffle the samples at the start of each epoch.
        seed : int or numpy.random.Generator, optional
            Seed of the shuffling: the same seed gives the same batches.
        validation_data : (X_val, y_val), optional
            Evaluated after each epoch ("val_loss" and "val_" metrics).
        metrics : list of names or Metric
            "accuracy", "mse", "mae", "r2", computed on each batch's output before its update.
        callbacks : list of Callback
        verbose : {0, 1, 2}
            0 silent, 1 a progress bar per epoch in a terminal (in a Jupyter notebook one bar for
            the whole run; one line per epoch when stderr is a file or pipe), 2 one line per epoch.
        print_every : int, optional
            Print "epoch=N, loss=..." every N epochs, like the classic tutorials, and nothing
            else: these lines replace ``verbose``'s per-epoch output.
        rule : chainrule.credit.CreditRule, optional
            Assign credit by another rule than backprop: ``FeedbackAlignment``,
            ``DirectFeedbackAlignment``, ``DNI``, ``LastLayerOnly`` (see docs/credit-assignment.md).
        bptt_steps : int, optional
            Truncated backpropagation through time for sequence input (n, time, features): each
            batch runs in windows of this many steps, the recurrent state carried from window to
            window and the gradient cut at the boundaries, the windows' gradients summed into one
            update (see :mod:`chainrule.sequence`). None: full BPTT.
        distributed : bool or DataParallel
            Data-parallel training over the MPI ranks of ``mpiexec -n K python script.py``: each
            global batch is split over the ranks and their gradients summed by Allreduce; every rank
            ends with the same weights and History (docs/distributed.md, ``chainrule[mpi]``).
        checkpoint : str or Path, optional
            Write the whole training state there (weights, optimizer state, random streams,
            position, History, callbacks' state; see :mod:`chainrule.checkpoint`) after each
            epoch, every ``checkpoint_every`` batches, and when a signal stops training. Each
            write is atomic and checksummed; ``cr.load`` reads the file as the network it holds.
        checkpoint_every : int or "epoch"
            Batches between checkpoints ("epoch": only at the end of each epoch).
        resume : str or Path, optional
            A checkpoint to go on from: the network, optimizer and everything above are put back
            and training continues exactly where it stopped (bit-identical to a run that never
            stopped). The data and settings must be the same; ``epochs`` may be larger.
        graceful_stop : bool
            While fit runs in the main thread, SIGINT (Ctrl-C) and SIGTERM stop it after the
            current batch (after the current compiled run of at most 4,096 samples where fit
            runs batches in one compiled call: docs/speed.md): the checkpoint is written and the
            History comes back with ``interrupted=True``. A second Ctrl-C stops at once
            (KeyboardInterrupt).
        regularizer : L1 or L2, optional
            A weight penalty (``cr.L2(1e-4)``): added to the loss value, its gradient added to
            every "weight" parameter's after the backward pass (chainrule.regularizers).

        Returns
        -------
        History
            ``history.history["loss"]`` holds the mean loss over each epoch's batches.

        Raises
        ------
        TrainingError
            When the loss becomes NaN or inf (naming the epoch, batch and last finite loss; the
            parameters keep their last finite values and the last checkpoint is left untouched).
        """
        from .training import fit

        return fit(self, X, y, loss=loss, optimizer=optimizer, epochs=epochs,
                   batch_size=batch_size, shuffle=shuffle, seed=seed,
                   validation_data=validation_data, metrics=metrics, callbacks=callbacks,
                   verbose=verbose, print_every=print_every, rule=rule, bptt_steps=bptt_steps,
                   distributed=distributed, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                   resume=resume, graceful_stop=graceful_stop, regularizer=regularizer)

    def predict(self, X, batch_size: int | None = PREDICT_BATCH) -> np.ndarray:
        """The network's output for X (scaled first when a scaler is attached), in batches."""
        check_positive_int(batch_size, "batch_size", allow_none=True)
        X = self._prepare_input(X)
        with quiet_float_errors():
            out = self._predict_prepared(X, batch_size)
        _check_output(out, "predict")
        return out

    def _predict_prepared(self, X: np.ndarray, batch_size: int | None = PREDICT_BATCH) -> np.ndarray:
        if batch_size is None or len(X) <= batch_size:
            out = X
            for layer in self.layers:
                out = layer.forward(out, False)
            return out
        parts = []
        for start in range(0, len(X), batch_size):
            out = X[start:start + batch_size]
            for layer in self.layers:
                out = layer.forward(out, False)
            parts.append(out)
        return np.concatenate(parts)

    def evaluate(self, X, y, loss=None, metrics=(), batch_size: int | None = PREDICT_BATCH) -> dict[str, float]:
        """Loss (the last fit's loss when none is given) and metrics on (X, y)."""
        from .training import _check_target

        loss = get_loss(loss) if loss is not None else self.loss
        check_positive_int(batch_size, "batch_size", allow_none=True)
        X = self._prepare_input(X)
        result = {}
        if loss is not None:
            y_ready = _check_target(self, loss, X, y, "evaluate y")
            with quiet_float_errors():
                result = self._evaluate_prepared(X, y_ready, loss, metrics, batch_size)
            bad = [k for k, v in result.items() if not np.isfinite(v)]
            if bad:
                raise DataError(f"evaluate: {', '.join(bad)} came out NaN or inf (the output overflowed);"
                                " the input is far outside what the network can handle, scale it")
        else:
            if not metrics:
                raise ConfigError("evaluate needs a loss or metrics (this network was never fitted)")
            with quiet_float_errors():
                out = self._predict_prepared(X, batch_size)
            _check_output(out, "evaluate")
            for m in metrics:
                acc = get_metric(m)
                acc.reset()
                acc.update(np.asarray(y), out)
                result[acc.name] = acc.result()
        return result

    def _evaluate_prepared(self, X, y, loss, metrics, batch_size=PREDICT_BATCH) -> dict[str, float]:
        out = self._predict_prepared(X, batch_size)
        result = {"loss": loss._value(out, y)}
        for m in metrics:
            acc = get_metric(m)
            acc.reset()
            acc.update(y, out)
            result[acc.name] = acc.result()
        return result

    # --- files ----------------------------------------------------------------------------
    def save(self, path, metadata: dict | None = None, history=None) -> None:
        """Write the architecture (JSON) and every array into one ``.npz`` file.

        ``metadata`` (a JSON-able dict) and ``history`` (a History) are stored with it; see
        :func:`chainrule.io.save`.
        """
        from .io import save

        save(self, path, metadata=metadata, history=history)


def load(path) -> Sequential:
    """The network saved at ``path`` (by ``net.save`` or ``chainrule.save``), bit for bit.

    Its scaler and metadata come with it, and the History saved with it as ``net.history``
    (None when none was). Raises FileFormatError for anything that is not a model file; never
    unpickles and never evaluates anything from the file (docs/reliability.md).
    """
    from .callbacks import History
    from .io import read_model

    net = read_model(path, Sequential)
    saved = net.metadata.get("history")
    net.history = History.from_dict(saved) if isinstance(saved, dict) else None
    return net


def _check_output(out: np.ndarray, what: str) -> None:
    """Raise DataError when the network's output overflowed (inf or NaN from finite input)."""
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        row = int(np.argwhere(~np.isfinite(out))[0][0])
        raise DataError(f"{what}: the network's output for sample {row} is not finite (it overflowed);"
                        " the input is far outside the range the network can handle: scale it")


def mlp(sizes, activation: str = "relu", output_activation: str | None = None,
        init: str | None = None, dropout: float = 0.0, seed=None, dtype=np.float32) -> Sequential:
    """A fully connected network from layer sizes, e.g. ``mlp([64, 32, 16, 10])``.

    Hidden layers get ``activation`` (and Dropout(p=dropout) after it when dropout > 0); the
    last Dense gets ``output_activation`` (none by default: logits for CrossEntropy). Weights
    default to He init for ReLU-like activations and Xavier otherwise. Each layer's seed is
    drawn from ``seed``, so one seed fixes the whole network.
    """
    from . import layers as L
    from .registry import activation as activation_class

    hidden_act = activation_class(activation)
    output_act = activation_class(output_activation) if output_activation is not None else None
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ConfigError(f"mlp needs at least an input and an output size, got {sizes}")
    if init is None:
        init = hidden_act.default_init
    seeds = np.random.SeedSequence(seed).spawn(2 * len(sizes))
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        last = i == len(sizes) - 2
        layers.append(L.Dense(n_in, n_out, init="xavier" if last else init,
                              seed=np.random.default_rng(seeds[2 * i])))
        if not last:
            layers.append(hidden_act())
            if dropout:
                layers.append(L.Dropout(dropout, seed=int(seeds[2 * i + 1].generate_state(1)[0])))
        elif output_act is not None:
            layers.append(output_act())
    return Sequential(*layers, dtype=dtype)
