"""save and load: the architecture as JSON and every array in one ``.npz`` file, no pickle.

File layout (an ``.npz`` archive of uncompressed ``.npy`` members, as ``numpy.savez`` writes):

    __chainrule__        uint8 bytes of a UTF-8 JSON document:
                         {"format": "chainrule", "version": 2, "dtype": "float32",
                          "layers": [{"class": "Dense", "config": {...}, "frozen": [...],
                                      "params": [...], "buffers": [...] (only when
                                      the layer has some)}, ...],
                          "scaler": {"class": "Standardizer", ...} or null,
                          "metadata": {..., "history": {...} (optional)},
                          "training": {...} (checkpoints only, see chainrule.checkpoint),
                          "checksum": {"algorithm": "sha256", "header": HEX,
                                       "arrays": {NAME: {"dtype": "<f4", "shape": [4, 6],
                                                         "sha256": HEX}, ...}}}
    layers.<i>.<name>    parameter or buffer <name> of layer <i> (``Layer.buffers``: state that is
                         saved but not trained, e.g. BatchNorm's running statistics)
    scaler.<name>        the scaler's fitted arrays
    (checkpoints add optimizer.*, rng.*, state.* arrays)

Version 2 added the checksum: the SHA-256 of each array (over its dtype, shape and bytes) and
of the header itself (its canonical JSON without the checksum entry). ``load`` checks the
container (:mod:`chainrule._container`), the format and version, that the arrays are exactly
those the header lists, with the listed dtypes and shapes, that the architecture agrees with
them, and finally every digest. Version-1 files (chainrule 0.1, before checksums) still load,
with every check but the digests. Writing goes through :func:`atomic_write`.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from ._container import atomic_write, atomic_write_text, read_arrays
from .errors import DataError, FileFormatError
from .layers.base import layer_class, layer_from_config

__all__ = ["save", "read_model", "atomic_write", "atomic_write_text", "read", "write"]

FORMAT = "chainrule"
VERSION = 2
READABLE_VERSIONS = (1, 2)
HEADER = "__chainrule__"
#: A layer whose two largest sizes (its class's ``size_args``) multiply to more than this (and to more than 16 times the
#: elements the file holds) would allocate far more than the file describes: refused.
_MIN_ALLOCATION = 2**22


# --- checksums ------------------------------------------------------------------------------
def _canonical(header: dict) -> bytes:
    body = {k: v for k, v in header.items() if k != "checksum"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def array_digest(arr: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and C-order bytes."""
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}|{tuple(arr.shape)}|".encode("ascii"))
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _checksum(header: dict, arrays: dict[str, np.ndarray]) -> dict:
    return {"algorithm": "sha256", "header": hashlib.sha256(_canonical(header)).hexdigest(),
            "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": array_digest(a)}
                       for name, a in sorted(arrays.items())}}


# --- writing ------------------------------------------------------------------------------------
def write(path, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write a chainrule file: ``header`` (JSON-able) and ``arrays``, with the checksum, atomically."""
    arrays = {k: np.asarray(a) for k, a in arrays.items()}
    for k, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise FileFormatError(f"cannot save array {k} of dtype {a.dtype}: only numbers are stored")
    header = json.loads(json.dumps({**header, "format": FORMAT, "version": VERSION}))  # the form load sees
    header["checksum"] = _checksum(header, arrays)
    stored = dict(arrays)
    stored[HEADER] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **stored))


def _check_finite_params(net) -> None:
    for i, layer in enumerate(net.layers):
        for k, p in (*layer.params.items(), *_buffers(layer).items()):
            if p.dtype.kind == "f" and not np.isfinite(p).all():
                bad = tuple(int(j) for j in np.argwhere(~np.isfinite(p))[0])
                kind = "parameter" if k in layer.params else "buffer"
                raise DataError(f"refusing to save a broken model: {kind} layers.{i}.{k} holds"
                                f" {p[bad]} at index {list(bad)}; the file already at the target,"
                                " if any, is left as it was")


def _buffers(layer) -> dict[str, np.ndarray]:
    """``layer.buffers`` (empty for a layer class that did not call ``Layer.__init__``)."""
    return getattr(layer, "buffers", None) or {}


def model_parts(net, metadata: dict | None = None, history=None) -> tuple[dict, dict]:
    """The header and arrays that describe ``net`` (what :func:`save` writes)."""
    _check_finite_params(net)
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for i, layer in enumerate(net.layers):
        spec = {"class": type(layer).__name__, "config": layer.get_config(),
                "frozen": sorted(layer.frozen), "params": list(layer.params)}
        if _buffers(layer):  # listed only when there are some: files of layers without buffers are unchanged
            spec["buffers"] = list(layer.buffers)
        layers.append(spec)
        for k, p in (*layer.params.items(), *_buffers(layer).items()):  # one "layers.<i>.<name>" namespace
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
    return header, arrays


def save(net, path, metadata: dict | None = None, history=None) -> None:
    """Save ``net`` (a Sequential) to ``path`` (".npz" is not added).

    ``metadata`` is a JSON-able dict (default: ``net.metadata`` when the network has one);
    ``history`` a :class:`chainrule.History` kept under ``metadata["history"]``, which ``load``
    gives back as ``net.history``. A network with a NaN or inf parameter is refused
    (DataError), so a diverged model never replaces a good file.
    """
    header, arrays = model_parts(net, metadata, history)
    try:
        json.dumps(header, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise DataError(f"save: metadata must be JSON-able (str, numbers, lists, dicts): {exc}") from None
    write(path, header, arrays)


# --- reading ------------------------------------------------------------------------------------
def read(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and arrays of a chainrule file, after the container, format, version and
    manifest checks (digests are checked by :func:`verify`)."""
    arrays = read_arrays(path)
    if HEADER not in arrays:
        raise FileFormatError(f"{path} is an .npz file but not a chainrule model (no {HEADER} entry)")
    raw = arrays.pop(HEADER)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise FileFormatError(f"{path}: the {HEADER} entry should be UTF-8 bytes, got {raw.dtype} {raw.shape}")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise FileFormatError(f"{path}: the {HEADER} entry is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(header, dict):
        raise FileFormatError(f"{path}: malformed header (a JSON {type(header).__name__}, not an object)")
    if header.get("format") != FORMAT:
        raise FileFormatError(f"{path} is not a chainrule model file (format {str(header.get('format'))[:80]!r})")
    version = header.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise FileFormatError(f"{path} has format version {repr(version)[:40]}; this chainrule reads"
                              f" versions {', '.join(map(str, READABLE_VERSIONS))}"
                              + (" (the file is newer than this chainrule: upgrade it)"
                                 if isinstance(version, int) and version > VERSION else ""))
    if version >= 2:
        _check_manifest(path, header, arrays)
    return header, arrays


def _check_manifest(path, header: dict, arrays: dict) -> None:
    checksum = header.get("checksum")
    listed = checksum.get("arrays") if isinstance(checksum, dict) else None
    if not isinstance(listed, dict) or checksum.get("algorithm") != "sha256" \
            or not isinstance(checksum.get("header"), str):
        raise FileFormatError(f"{path}: version-2 file without a valid checksum entry")
    for name, entry in listed.items():
        if name not in arrays:
            raise FileFormatError(f"{path}: missing array {name} (the header lists it, the file lacks it)")
        arr = arrays[name]
        if not isinstance(entry, dict):
            raise FileFormatError(f"{path}: malformed checksum entry for {name}")
        try:
            want_dtype, want_shape = np.dtype(str(entry.get("dtype"))), tuple(entry.get("shape"))
        except TypeError:
            raise FileFormatError(f"{path}: malformed checksum entry for {name}") from None
        if arr.dtype != want_dtype or arr.shape != want_shape:
            raise FileFormatError(f"{path}: array {name} should be {want_dtype.name} of shape {want_shape}"
                                  f" (as the header lists), the file holds {arr.dtype.name} {arr.shape}")
    extra = sorted(set(arrays) - set(listed))
    if extra:
        raise FileFormatError(f"{path}: arrays the header does not list: {', '.join(extra[:10])}")


def verify(path, header: dict, arrays: dict) -> None:
    """Check the SHA-256 digests of a version-2 file (the header's and every array's)."""
    if header.get("version", 1) < 2:
        return
    checksum = header["checksum"]
    if hashlib.sha256(_canonical(header)).hexdigest() != checksum["header"]:
        raise FileFormatError(f"{path}: the header does not match its checksum (the file was changed"
                              " or damaged after it was written)")
    for name, entry in checksum["arrays"].items():
        if array_digest(arrays[name]) != entry.get("sha256"):
            raise FileFormatError(f"{path}: array {name} does not match its checksum (the file was"
                                  " changed or damaged after it was written)")


def read_model(path, build):
    """Read, check and rebuild the network saved at ``path`` with ``build(*layers, dtype=...)``
    (``Sequential``; ``chainrule.load`` passes it, so this module needs no network class).

    Raises FileFormatError for anything that is not a model file. Never unpickles and never
    evaluates anything from the file; see docs/reliability.md.
    """
    header, arrays = read(path)
    try:
        net = _rebuild(header, arrays, build)
    except FileFormatError as exc:
        raise FileFormatError(f"{path}: {exc}") from None
    except (Exception, RecursionError) as exc:
        raise FileFormatError(f"{path}: the model description is inconsistent"
                              f" ({type(exc).__name__}: {str(exc)[:300]})") from None
    verify(path, header, arrays)
    return net


def _check_sizes(i: int, name, config, n_elements: int, depth: int = 0) -> None:
    """Refuse a layer config that would allocate far more than the file holds (before building it).

    The sizes are the layer class's ``size_args`` (whatever they are called), in this layer and
    in any layer nested in its config (TimeDistributed's ``{"class": ..., "config": ...}``, or a
    list of them: Residual's ``"layers"``).
    """
    if depth > 16:
        raise FileFormatError(f"layer {i}: layer configs nested too deeply")
    cls = layer_class(name)
    if cls is None or not isinstance(config, dict):
        return
    sizes, factors = {}, []
    for key in cls.size_args:
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, list):  # a pair such as a kernel's [kh, kw] is its own sizes, counted once
            if key in sizes:
                continue
            values = value
        else:
            values = [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise FileFormatError(f"layer {i} ({name}) size {key} must be a whole number >= 0,"
                                      f" got {repr(value)[:80]}")
        sizes[key] = value
        factors.extend(values)  # (a size listed twice counts twice)
    largest = sorted(factors, reverse=True)[:2]
    if math.prod(largest) > max(16 * n_elements, _MIN_ALLOCATION):
        raise FileFormatError(f"layer {i} ({name}) declares sizes {sizes} that the file's"
                              f" {n_elements:,} stored numbers cannot hold")
    for value in config.values():  # layers inside this layer's config, alone or in a list
        for inner in value if isinstance(value, list) else [value]:
            if isinstance(inner, dict) and isinstance(inner.get("class"), str):
                _check_sizes(i, inner["class"], inner.get("config"), n_elements, depth + 1)


def _stored_array(arrays: dict, key: str, shape: tuple, dtype) -> np.ndarray:
    """A writable copy in ``dtype`` of the float array ``key``, checked for shape and finiteness."""
    if key not in arrays:
        raise FileFormatError(f"missing array {key}")
    arr = arrays[key]
    if arr.shape != shape or arr.dtype.kind != "f":
        raise FileFormatError(f"array {key} should be a float array of shape {shape}, got {arr.dtype} {arr.shape}")
    if not np.isfinite(arr).all():
        raise FileFormatError(f"array {key} holds NaN or inf values")
    return arr.astype(dtype, copy=True)


def _rebuild(header: dict, arrays: dict, Sequential):
    try:
        dtype = np.dtype(header["dtype"])
    except (KeyError, TypeError):
        raise FileFormatError(f"the header's dtype {str(header.get('dtype'))[:40]!r} is not a dtype") from None
    if dtype not in (np.float32, np.float64):
        raise FileFormatError(f"the header's dtype must be float32 or float64, got {dtype}")
    specs = header.get("layers")
    if not isinstance(specs, list):
        raise FileFormatError("the header's layers must be a list")
    n_elements = sum(a.size for a in arrays.values())
    layers = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("class"), str) \
                or not isinstance(spec.get("config", {}), dict):
            raise FileFormatError(f"layer {i} is malformed (expected {{'class': name, 'config': {{...}}}})")
        _check_sizes(i, spec["class"], spec.get("config", {}), n_elements)
        try:
            layer = layer_from_config(spec["class"], spec.get("config", {}))
        except KeyError as exc:
            if exc.args and exc.args[0] == spec["class"]:
                raise FileFormatError(f"layer {i} has unknown type {spec['class'][:80]!r}") from None
            raise
        expected = set(layer.params)
        stored = set(spec.get("params", [])) if isinstance(spec.get("params", []), list) else None
        if expected != stored:
            raise FileFormatError(f"layer {i} ({spec['class']}) should have parameters"
                                  f" {sorted(expected)}, the file lists {sorted(stored or [])}")
        for k in layer.params:
            layer.params[k] = _stored_array(arrays, f"layers.{i}.{k}", layer.params[k].shape, dtype)
            layer.grads[k] = np.zeros_like(layer.params[k])
        # Buffers (Layer.buffers) get the same checks. A layer with buffers must find them all
        # listed; the "buffers" entry may be missing only for layers without any (older files).
        buffers = _buffers(layer)
        stored_buffers = spec.get("buffers", [])
        if not isinstance(stored_buffers, list) or set(stored_buffers) != set(buffers):
            raise FileFormatError(f"layer {i} ({spec['class']}) should have buffers {sorted(buffers)},"
                                  f" the file lists {str(stored_buffers)[:200]}")
        for k in buffers:
            buffers[k] = _stored_array(arrays, f"layers.{i}.{k}", buffers[k].shape, dtype)
        frozen = spec.get("frozen", [])
        if not isinstance(frozen, list) or not set(frozen) <= expected:
            raise FileFormatError(f"layer {i}: frozen names {frozen!r} are not among its parameters")
        layer.frozen = set(frozen)
        layers.append(layer)
    net = Sequential(*layers, dtype=dtype)
    if header.get("scaler"):
        from .data import scaler_from_config

        scaler_arrays = {k[len("scaler."):]: v for k, v in arrays.items() if k.startswith("scaler.")}
        net.scaler = scaler_from_config(header["scaler"], scaler_arrays)
    metadata = header.get("metadata", {})
    net.metadata = metadata if isinstance(metadata, dict) else {}
    return net
