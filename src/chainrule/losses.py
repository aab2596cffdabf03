"""Losses: a value and its gradient with respect to the network output.

Every loss has ``value(output, target) -> float``, ``grad(output, target) -> array`` (same
shape and dtype as ``output``) and ``value_and_grad``. ``reduction="mean"`` averages over
samples (over elements for MSE and BinaryCrossEntropy, as PyTorch does); ``"sum"`` adds.
The public methods check that the target fits the output; the training loop checks the
whole target once and then calls the unchecked ``_value_and_grad`` on each batch.

CrossEntropy and BinaryCrossEntropy(from_logits=True) compute value and gradient in one
compiled pass when numba is active (chainrule.kernels; chainrule/kernels/losses.py holds the
same equations as a loop); the NumPy code here is the reference and runs otherwise.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from ._checks import as_array, as_float_array, check_finite, check_not_empty, quiet_float_errors
from .errors import ConfigError, DataError, ShapeError


class Loss:
    """Base class. Subclasses implement ``_value_and_grad`` (and may speed up ``_value``)."""

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum"):
            raise ConfigError(f"{type(self).__name__} reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    # --- public, checked --------------------------------------------------------------
    def value(self, output, target) -> float:
        return self.value_and_grad(output, target)[0]

    def grad(self, output, target) -> np.ndarray:
        return self.value_and_grad(output, target)[1]

    def value_and_grad(self, output, target) -> tuple[float, np.ndarray]:
        output, target = self.prepare(output, target)
        with quiet_float_errors():  # an overflow comes back as inf, without a warning
            return self._value_and_grad(output, target)

    __call__ = value

    def prepare(self, output, target) -> tuple[np.ndarray, np.ndarray]:
        """Check that ``target`` fits ``output``; return both as arrays ready for the loss."""
        name = f"{type(self).__name__} output"
        output = as_float_array(output, name)
        if output.ndim == 0:
            raise ShapeError(f"{name} must be an array of shape (n_samples, ...), got a scalar")
        check_not_empty(output, name)
        check_finite(output, name)
        return output, self.prepare_target(target, output.shape, output.dtype)

    def prepare_target(self, target, output_shape: tuple, dtype) -> np.ndarray:
        """Default: a real-valued target of the output's shape ((n,) is taken as (n, 1))."""
        name = type(self).__name__
        target = as_float_array(target, f"{name} target", dtype)
        check_finite(target, f"{name} target")
        if target.shape != output_shape:
            if target.ndim == 1 and output_shape == (target.shape[0], 1):
                target = target.reshape(-1, 1)
            else:
                hint = ""
                if target.shape == output_shape[:-1] and np.array_equal(target, np.round(target)):
                    hint = (f"; these look like class labels for {output_shape[-1]} outputs: use"
                            " loss='crossentropy', or one-hot rows (cr.one_hot(y)) for this loss")
                raise ShapeError(
                    f"{name} expects a target of the output's shape {output_shape}, got {target.shape}{hint}"
                )
        return target

    def check_output_layer(self, layer) -> None:
        """Refuse a last layer whose outputs this loss cannot mean (fit calls it once, at the start).

        The base loss takes any output; BinaryCrossEntropy and CrossEntropy know whether they
        want probabilities or logits and compare with the layer's ``output_range``.
        """

    # --- unchecked, for the training loop -----------------------------------------------
    def _value(self, output: np.ndarray, target: np.ndarray) -> float:
        return self._value_and_grad(output, target)[0]

    def _value_and_grad(self, output: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def _scale(self, n: int) -> float:
        return 1.0 / n if self.reduction == "mean" else 1.0

    # --- per sample, for weighted samples (the scikit-learn estimators' sample_weight) ----------
    def _per_sample(self, output: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ℓ_i of each sample (n,), dℓ_i/doutput_i of the output's shape), unscaled; over one
        sample's elements ``reduction`` decides as for the whole loss (mean or sum)."""
        raise NotImplementedError(f"{type(self).__name__} has no per-sample form")

    def _weighted_value_and_grad(self, output, target, weight: np.ndarray):
        """L = Σ_i w_i·ℓ_i / Σ_i w_i and dL/doutput; (0.0, None) when every weight is 0."""
        losses, grad = self._per_sample(output, target)
        total = float(weight.sum())
        if total <= 0:
            return 0.0, None
        grad *= (weight / total).astype(grad.dtype).reshape(-1, *(1,) * (grad.ndim - 1))
        return float(weight @ losses) / total, grad

    def _per_element(self, values: np.ndarray, grad: np.ndarray):
        """Per-sample form of an element-wise loss: each sample's mean (or sum) over its elements."""
        k = values[0].size
        losses = values.reshape(len(values), -1).sum(axis=1)
        if self.reduction == "mean" and k != 1:
            losses /= k
            grad *= 1.0 / k
        return losses, grad

    def get_config(self) -> dict:
        return {"reduction": self.reduction}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class MSE(Loss):
    """Mean squared error over all elements (PyTorch's MSELoss).

    L = (1/N) Σ (o − t)²  with N = number of elements ("sum": no 1/N);  dL/do = 2(o − t)/N.
    """

    def _value(self, output, target):
        diff = output - target
        return float(np.vdot(diff, diff)) * self._scale(diff.size)

    def _value_and_grad(self, output, target):
        diff = output - target
        value = float(np.vdot(diff, diff)) * self._scale(diff.size)
        diff *= 2 * self._scale(diff.size)
        return value, diff


    def _per_sample(self, output, target):
        diff = output - target
        return self._per_element(diff * diff, 2 * diff)


class SSE(Loss):
    """The textbook error: E = ½ Σ_k (t_k − o_k)² per sample, averaged over samples.

    With one sample this is exactly the worked examples' E_total.
    dE/do = (o − t)/n  ("sum": o − t).
    """

    def _value(self, output, target):
        diff = output - target
        return 0.5 * float(np.vdot(diff, diff)) * self._scale(len(diff))

    def _value_and_grad(self, output, target):
        diff = output - target
        scale = self._scale(len(diff))
        value = 0.5 * float(np.vdot(diff, diff)) * scale
        if scale != 1.0:
            diff *= scale
        return value, diff

    def _per_sample(self, output, target):
        diff = output - target
        return 0.5 * np.einsum("ij,ij->i", diff.reshape(len(diff), -1), diff.reshape(len(diff), -1)), diff


class BinaryCrossEntropy(Loss):
    """L = −(1/N) Σ [t·log p + (1 − t)·log(1 − p)] over all elements.

    from_logits=False: p is the output, clipped to [ε, 1 − ε];  dL/dp = (p − t)/(p(1 − p)N).
    from_logits=True:  the output is the logit z, p = σ(z), and the loss is computed as
    max(z, 0) − z·t + log1p(e^(−|z|)) (stable for any z);  dL/dz = (σ(z) − t)/N.
    """

    def __init__(self, from_logits: bool = False, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.from_logits = bool(from_logits)

    def check_output_layer(self, layer) -> None:
        bounded = getattr(layer, "output_range", None)
        if self.from_logits and bounded == (0.0, 1.0):
            raise ConfigError(
                f"BinaryCrossEntropy(from_logits=True) applies the sigmoid itself, but the network ends in"
                f" {layer!r}, whose outputs are already probabilities: remove that last layer, or use"
                " BinaryCrossEntropy(from_logits=False)")
        if not self.from_logits and (bounded is None or bounded[0] < 0 or bounded[1] > 1):
            raise ConfigError(
                f"BinaryCrossEntropy(from_logits=False) expects probabilities in [0, 1], but the network"
                f" ends in {layer!r}, whose outputs can lie outside [0, 1] (they would be clipped and"
                " training would go wrong): use loss=BinaryCrossEntropy(from_logits=True) (the stable"
                " choice), or end the network with a Sigmoid layer (mlp(..., output_activation='sigmoid'))")

    def prepare(self, output, target):
        output, target = super().prepare(output, target)
        if not self.from_logits and (output.min() < 0 or output.max() > 1):
            raise DataError(
                f"BinaryCrossEntropy(from_logits=False) expects outputs in [0, 1] (probabilities), got values"
                f" from {output.min():.6g} to {output.max():.6g}; for logits use from_logits=True")
        return output, target

    def prepare_target(self, target, output_shape, dtype):
        target = super().prepare_target(target, output_shape, dtype)
        if target.size and (target.min() < 0 or target.max() > 1):
            raise DataError(
                "BinaryCrossEntropy expects targets in [0, 1], got values from"
                f" {target.min()} to {target.max()}"
            )
        return target

    def _value_and_grad(self, output, target):
        scale = self._scale(output.size)
        if self.from_logits and kernels.ready(output, target):
            dt = output.dtype.type
            grad = np.empty(output.shape, output.dtype)
            value = kernels.compiled("losses", "binary_cross_entropy_logits")(
                output.ravel(), target.ravel(), dt(scale), dt(0.5), grad.reshape(-1))
            return value * scale, grad
        if self.from_logits:
            z = output
            value = np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))
            p = np.tanh(z * 0.5)
            p *= 0.5
            p += 0.5
            grad = (p - target) * scale
        else:
            eps = np.finfo(output.dtype).eps
            p = np.clip(output, eps, 1 - eps)
            value = -(target * np.log(p) + (1 - target) * np.log1p(-p))
            grad = (p - target) / (p * (1 - p)) * scale
        return float(value.sum()) * scale, grad.astype(output.dtype, copy=False)

    def _per_sample(self, output, target):
        if self.from_logits:
            z = output
            value = np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))
            grad = 0.5 * np.tanh(0.5 * z) + 0.5 - target
        else:
            eps = np.finfo(output.dtype).eps
            p = np.clip(output, eps, 1 - eps)
            value = -(target * np.log(p) + (1 - target) * np.log1p(-p))
            grad = (p - target) / (p * (1 - p))
        return self._per_element(value, grad.astype(output.dtype, copy=False))

    def get_config(self):
        return {"from_logits": self.from_logits, "reduction": self.reduction}


class CrossEntropy(Loss):
    """Softmax and negative log-likelihood fused, from logits z (n, C).

    p = softmax(z),  L = −(1/n) Σ_i Σ_k t_ik · log p_ik = (1/n) Σ_i [logsumexp(z_i) − Σ_k t_ik z_ik]
    dL/dz = (p − t)/n

    Targets are integer class labels (n,) in [0, C) or probability / one-hot rows (n, C).
    Leading axes beyond the first (e.g. time) are treated as more samples.
    """

    def check_output_layer(self, layer) -> None:
        if getattr(layer, "output_range", None) == (0.0, 1.0):
            raise ConfigError(
                f"CrossEntropy takes logits and applies the softmax itself, but the network ends in"
                f" {layer!r}, whose outputs are already probabilities (softmax would be applied to"
                " them again, and training stalls): remove that last layer (predict then gives logits;"
                " cr.Softmax()(logits) turns them into probabilities)")

    def prepare_target(self, target, output_shape, dtype):
        target = as_array(target, "CrossEntropy target")
        n_classes = output_shape[-1]
        if target.shape == output_shape:
            if target.dtype.kind not in "biuf":
                raise DataError(f"CrossEntropy target rows must be numbers, got dtype {target.dtype}")
            target = as_float_array(target, "CrossEntropy target", dtype)
            check_finite(target, "CrossEntropy target")
            return target
        if target.shape == output_shape[:-1] or (
            target.ndim == len(output_shape) and target.shape[-1] == 1
            and target.shape[:-1] == output_shape[:-1]
        ):
            target = target.reshape(output_shape[:-1])
            if target.dtype.kind == "f":
                target = target.astype(np.float64, copy=False)
                check_finite(target, "CrossEntropy class labels")
                if not np.array_equal(target, np.round(target)):
                    raise DataError("CrossEntropy class labels must be whole numbers, got fractions")
            elif target.dtype.kind not in "biu":
                raise DataError(f"CrossEntropy class labels must be integers, got dtype {target.dtype}")
            out_of_range = (target < 0) | (target >= n_classes)
            if out_of_range.any():  # (checked before the cast, so 1e30 or 2**64 - 1 cannot wrap around)
                bad = target[out_of_range][0]
                raise DataError(
                    f"CrossEntropy expects class labels in [0, {n_classes - 1}] for an output"
                    f" with {n_classes} columns, got label {bad}"
                )
            return target.astype(np.intp)
        raise ShapeError(
            f"CrossEntropy expects integer labels of shape {output_shape[:-1]} or probability rows"
            f" of shape {output_shape}, got target of shape {target.shape}"
        )

    def _log_softmax_parts(self, output):
        z = output.reshape(-1, output.shape[-1])
        # the ufuncs' reduce, not z.max / exp.sum: the same result without ~1.5 µs of Python wrapper each
        shifted = z - np.maximum.reduce(z, axis=1, keepdims=True)
        exp = np.exp(shifted)
        sum_exp = np.add.reduce(exp, axis=1, keepdims=True)
        return shifted, exp, sum_exp

    def _value_and_grad(self, output, target):
        if kernels.ready(output, output):
            return self._value_and_grad_compiled(output, target)
        shifted, exp, sum_exp = self._log_softmax_parts(output)
        n = shifted.shape[0]
        log_sum = np.log(sum_exp)
        scale = self._scale(n)
        p = exp
        p /= sum_exp
        if target.dtype.kind in "iu":
            labels = target.reshape(-1)
            rows = np.arange(n)
            value = float(np.add.reduce(log_sum, axis=None) - np.add.reduce(shifted[rows, labels]))
            p[rows, labels] -= 1
        else:
            t = target.reshape(n, -1)
            value = float((log_sum * t.sum(axis=1, keepdims=True)).sum() - np.vdot(t, shifted))
            p -= t
        if scale != 1.0:
            p *= scale
        return value * scale, p.reshape(output.shape)

    def _value_and_grad_compiled(self, output, target):
        z = output.reshape(-1, output.shape[-1])
        z = z if z.flags.c_contiguous else np.ascontiguousarray(z)
        scale = self._scale(len(z))
        grad = np.empty(z.shape, z.dtype)
        if target.dtype.kind in "iu":
            value = kernels.compiled("losses", "cross_entropy_labels")(
                z, target.ravel(), z.dtype.type(scale), grad)
        else:
            t = target.reshape(z.shape)
            value = kernels.compiled("losses", "cross_entropy_rows")(
                z, t if t.flags.c_contiguous and t.dtype == z.dtype else np.ascontiguousarray(t, z.dtype),
                z.dtype.type(scale), grad)
        return value * scale, grad.reshape(output.shape)

    def _per_sample(self, output, target):
        if output.ndim != 2:
            raise ShapeError(f"weighted CrossEntropy takes outputs of shape (n, classes), got {output.shape}")
        shifted, p, sum_exp = self._log_softmax_parts(output)
        p /= sum_exp
        log_sum = np.log(sum_exp[:, 0])
        if target.dtype.kind in "iu":
            rows = np.arange(len(p))
            p[rows, target] -= 1
            return log_sum - shifted[rows, target], p
        p -= target
        return log_sum * target.sum(axis=1) - np.einsum("ij,ij->i", target, shifted), p


class Poisson(Loss):
    """Half the Poisson deviance of a log-rate output z (rate μ = e^z), for counts t ≥ 0.

    ℓ = e^z − t·z + t·log t − t  per element (t·log t = 0 at t = 0; the constant makes ℓ = 0 at
    μ = t, as scikit-learn's ``loss="poisson"``);  dℓ/dz = e^z − t.
    L = (1/N) Σ ℓ over all N elements ("sum": no 1/N).
    """

    def _elements(self, output, target):
        rate = np.exp(output)
        t_log_t = target * np.log(np.where(target > 0, target, 1))
        return rate - target * output + t_log_t - target, rate - target

    def _value_and_grad(self, output, target):
        values, grad = self._elements(output, target)
        scale = self._scale(values.size)
        if scale != 1.0:
            grad *= scale
        return float(values.sum()) * scale, grad

    def _per_sample(self, output, target):
        return self._per_element(*self._elements(output, target))


_NAMES = {
    "mse": MSE, "sse": SSE, "bce": BinaryCrossEntropy, "binary_crossentropy": BinaryCrossEntropy,
    "crossentropy": CrossEntropy, "cross_entropy": CrossEntropy,
    "categorical_crossentropy": CrossEntropy, "poisson": Poisson,
}


def get_loss(loss) -> Loss:
    """A Loss from an instance, a class or a name ("mse", "sse", "bce", "crossentropy")."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str) and loss.lower() in _NAMES:
        return _NAMES[loss.lower()]()
    raise ConfigError(f"loss must be a Loss or one of {sorted(_NAMES)}, got {loss!r}")
