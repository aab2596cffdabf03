"""save and load: the architecture as JSON and every array in one ``.npz`` file, no pickle.

File layout (a NumPy ``.npz`` archive):

    __chainrule__        uint8 bytes of a UTF-8 JSON document:
                         {"format": "chainrule", "version": 1, "dtype": "float32",
                          "layers": [{"class": "Dense", "config": {...}, "frozen": [...]}, ...],
                          "scaler": {"class": "Standardizer", ...} or null,
                          "metadata": {..., "history": {...} (optional)}}
    layers.<i>.<name>    parameter <name> of layer <i>
    scaler.<name>        the scaler's fitted arrays

Writing goes to a temporary file in the same folder, is flushed to disk, then renamed over
the target, so a crash never leaves a half-written model in place of a good one.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import FileFormatError
from .layers.base import layer_from_config

FORMAT = "chainrule"
VERSION = 1
HEADER = "__chainrule__"


def atomic_write(path, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, fsync, then rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(net, path, metadata: dict | None = None, history=None) -> None:
    """Save ``net`` (a Sequential) to ``path`` (".npz" is not added).

    ``metadata`` is a JSON-able dict (default: ``net.metadata`` when the network has one);
    ``history`` a :class:`chainrule.History` kept under ``metadata["history"]``, which ``load``
    gives back as ``net.history``.
    """
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for i, layer in enumerate(net.layers):
        layers.append({"class": type(layer).__name__, "config": layer.get_config(),
                       "frozen": sorted(layer.frozen), "params": list(layer.params)})
        for k, p in layer.params.items():
            arrays[f"layers.{i}.{k}"] = p
    scaler = None
    if net.scaler is not None:
        scaler = net.scaler.get_config()
        for k, a in net.scaler.get_arrays().items():
            arrays[f"scaler.{k}"] = np.asarray(a)
    metadata = dict(metadata or getattr(net, "metadata", {}) or {})
    if history is not None:
        metadata["history"] = history.to_dict()
    header = {"format": FORMAT, "version": VERSION, "dtype": net.dtype.name, "layers": layers,
              "scaler": scaler, "metadata": metadata}
    arrays[HEADER] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path):
    """Rebuild the network saved at ``path``; raise FileFormatError for anything else."""
    from .network import Sequential

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise FileFormatError(f"{path} is not a chainrule model file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if HEADER not in data.files:
                raise FileFormatError(f"{path} is an .npz file but not a chainrule model (no {HEADER} entry)")
            arrays = {k: data[k] for k in data.files}
    except FileFormatError:
        raise
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise FileFormatError(f"{path} holds data that would need pickle to load; refused ({exc})") from None
    except Exception as exc:
        raise FileFormatError(f"{path} could not be read as a chainrule model: {exc}") from None
    try:
        header = json.loads(arrays.pop(HEADER).tobytes().decode("utf-8"))
    except Exception as exc:
        raise FileFormatError(f"{path}: the {HEADER} entry is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise FileFormatError(f"{path} is not a chainrule model file (format {header.get('format')!r})"
                              if isinstance(header, dict) else f"{path}: malformed header")
    if header.get("version") != VERSION:
        raise FileFormatError(f"{path} has format version {header.get('version')!r};"
                              f" this chainrule reads version {VERSION}")
    try:
        return _rebuild(header, arrays, Sequential)
    except FileFormatError as exc:
        raise FileFormatError(f"{path}: {exc}") from None
    except Exception as exc:
        raise FileFormatError(f"{path}: the model description is inconsistent ({exc})") from None


def _rebuild(header: dict, arrays: dict, Sequential):
    dtype = np.dtype(header["dtype"])
    layers = []
    for i, spec in enumerate(header["layers"]):
        try:
            layer = layer_from_config(spec["class"], spec["config"])
        except KeyError:
            raise FileFormatError(f"layer {i} has unknown type {spec.get('class')!r}") from None
        expected = set(layer.params)
        stored = set(spec.get("params", []))
        if expected != stored:
            raise FileFormatError(f"layer {i} ({spec['class']}) should have parameters"
                                  f" {sorted(expected)}, the file lists {sorted(stored)}")
        for k in layer.params:
            key = f"layers.{i}.{k}"
            if key not in arrays:
                raise FileFormatError(f"missing array {key}")
            arr = arrays[key]
            if arr.shape != layer.params[k].shape or arr.dtype.kind != "f":
                raise FileFormatError(f"array {key} should be a float array of shape"
                                      f" {layer.params[k].shape}, got {arr.dtype} {arr.shape}")
            layer.params[k] = arr.astype(dtype, copy=True)
            layer.grads[k] = np.zeros_like(layer.params[k])
        layer.frozen = set(spec.get("frozen", []))
        layers.append(layer)
    net = Sequential(*layers, dtype=dtype)
    if header.get("scaler"):
        from .data import scaler_from_config

        scaler_arrays = {k[len("scaler."):]: v for k, v in arrays.items() if k.startswith("scaler.")}
        net.scaler = scaler_from_config(header["scaler"], scaler_arrays)
    net.metadata = header.get("metadata", {})
    net.history = None
    if isinstance(net.metadata.get("history"), dict):
        from .callbacks import History

        net.history = History.from_dict(net.metadata["history"])
    return net
