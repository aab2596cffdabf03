"""Frames: what the page is sent after training steps, and the hub that hands them out.

A frame is a JSON object. Numbers the page shows one by one (weights, gradients, unit values,
losses) are JSON numbers, which round-trip float64 exactly. Heat maps are arrays sent as
base64 of little-endian bytes:

- ``heatmap``: the network's output (``net.predict``) on a ``size`` × ``size`` grid of the
  square ``extent`` (rows from the top), float64, ``outputs`` values per point;
- ``unit_maps``: each input feature's and each hidden unit's value on a smaller grid, as
  uint8 codes 0-255 of the range [lo, hi] (for drawing only).

The hub keeps only the newest frame. A browser tab that reads slowly, or not at all, gets the
newest frame whenever it is ready for one and skips those in between, so it can neither slow
training down nor make memory grow.
"""

from __future__ import annotations

import base64
import threading

import numpy as np


def encode_f64(array: np.ndarray) -> str:
    """Base64 of the array's float64 little-endian bytes, C order."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f8").tobytes()).decode("ascii")


def decode_f64(text: str, shape=None) -> np.ndarray:
    """The inverse of :func:`encode_f64`."""
    out = np.frombuffer(base64.b64decode(text), dtype="<f8").astype(np.float64)
    return out if shape is None else out.reshape(shape)


def encode_u8(values: np.ndarray) -> dict:
    """A map quantized to uint8 codes of [lo, hi]; ``value ≈ lo + code/255·(hi - lo)``."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 0.0
    span = hi - lo if hi > lo else 1.0
    codes = np.clip(np.nan_to_num((values - lo) / span * 255.0 + 0.5), 0, 255).astype(np.uint8)
    return {"lo": lo, "hi": hi, "data": base64.b64encode(codes.tobytes()).decode("ascii")}


def unit_values(net, inputs: np.ndarray, hidden_layer_positions: list[int]) -> list[np.ndarray]:
    """The outputs of the layers at ``hidden_layer_positions`` (each hidden layer's activation)
    for ``inputs``, from one forward pass in inference mode."""
    out, keep = inputs, []
    wanted = set(hidden_layer_positions)
    for k, layer in enumerate(net.layers):
        out = layer.forward(out, False)
        if k in wanted:
            keep.append(out)
    return keep


class FrameHub:
    """The newest frame (as JSON text), its sequence number, and a condition to wait on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seq = 0
        self._text: str | None = None
        self.closed = False

    def publish(self, text: str) -> int:
        with self._cond:
            self._seq += 1
            self._text = text
            self._cond.notify_all()
            return self._seq

    @property
    def seq(self) -> int:
        return self._seq

    def wait(self, after: int, timeout: float) -> tuple[int, str | None]:
        """The newest frame once its number is above ``after`` (``(after, None)`` on timeout or
        when the hub closes)."""
        with self._cond:
            if self._seq <= after and not self.closed:
                self._cond.wait_for(lambda: self._seq > after or self.closed, timeout)
            if self.closed or self._seq <= after:
                return after, None
            return self._seq, self._text

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
