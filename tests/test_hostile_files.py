"""Acceptance: a corpus of corrupt and hostile model files, generated here, each refused by
``cr.load`` (and the CLI) with a ChainruleError in under a second, with pickle and eval guarded
so that the test fails if loading ever reaches them."""

from __future__ import annotations

import ast
import builtins
import io
import json
import pickle
import struct
import time
import zipfile
import zlib

import numpy as np
import pytest

import chainrule as cr
from chainrule import cli

HEADER = "__chainrule__"


class Forbidden(BaseException):
    """Raised by the guards; a BaseException, so no `except Exception` in chainrule can hide it."""


class no_pickle_no_eval:
    """Inside: pickle, numpy's own .npy reader (the pickle path), literal_eval, eval and exec fail."""

    def __enter__(self):
        self.calls, self.saved = [], []

        def forbidden(name):
            def guard(*args, **kwargs):
                self.calls.append(name)
                raise Forbidden(f"{name} was called while loading a model file")
            return guard

        targets = [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (np.lib.format, "read_array"),
                   (ast, "literal_eval"), (builtins, "eval"), (builtins, "exec")]
        for owner, name in targets:
            self.saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, forbidden(f"{owner.__name__}.{name}"))
        return self

    def __exit__(self, *exc):
        for owner, name, value in self.saved:
            setattr(owner, name, value)
        assert self.calls == []


# --- building blocks -----------------------------------------------------------------------------
def good_model() -> cr.Sequential:
    net = cr.Sequential(cr.Dense(4, 6, seed=0), cr.Tanh(), cr.Dropout(0.2, seed=1), cr.Dense(6, 3, seed=2))
    net.scaler = cr.Standardizer().fit(np.arange(12.0).reshape(3, 4))
    return net


def good_bytes(tmp_path) -> bytes:
    path = tmp_path / "good.npz"
    good_model().save(path)
    return path.read_bytes()


def arrays_of(raw: bytes) -> dict:
    with np.load(io.BytesIO(raw), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def header_of(arrays: dict) -> dict:
    return json.loads(arrays[HEADER].tobytes().decode())


def npz(arrays: dict, header: dict | None = None) -> bytes:
    arrays = dict(arrays)
    if header is not None:
        arrays[HEADER] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def zip_of(members: dict[str, bytes], method=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def npy_bytes(header_text: str, data: bytes = b"") -> bytes:
    text = header_text + " " * ((64 - (len(header_text) + 11) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + data


def with_header_change(raw: bytes, change) -> bytes:
    arrays = arrays_of(raw)
    header = header_of(arrays)
    change(header)
    return npz({k: v for k, v in arrays.items() if k != HEADER}, header)


def with_array_change(raw: bytes, change) -> bytes:
    arrays = arrays_of(raw)
    change(arrays)
    return npz(arrays)


def flip(raw: bytes, where: int) -> bytes:
    b = bytearray(raw)
    b[where % len(b)] ^= 0x5A
    return bytes(b)


def set_in(path, value):
    def change(header):
        target = header
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def corpus(tmp_path) -> dict[str, bytes]:
    raw = good_bytes(tmp_path)
    n = len(raw)
    eocd = raw.rfind(b"PK\x05\x06")
    central = raw.find(b"PK\x01\x02")
    weight_at = raw.find(b"layers.0.weight.npy") + 200
    files: dict[str, bytes] = {}
    # truncations
    for cut in (0, 1, 4, 30, 100, n // 4, n // 2, central, eocd, n - 1):
        files[f"truncated at {cut}"] = raw[:cut]
    # flipped bytes: local header, npy header, array data, JSON header, central directory, end record
    for name, where in (("local header", 8), ("npy magic", 40), ("array data", weight_at),
                        ("JSON header", raw.find(b'"format"')), ("central directory", central + 20),
                        ("end record", eocd + 12), ("last byte", n - 1)):
        files[f"byte flipped in {name}"] = flip(raw, where)
    # versions and formats
    files["version 3"] = with_header_change(raw, set_in(["version"], 3))
    files["version missing"] = with_header_change(raw, lambda h: h.pop("version"))
    files["version as text"] = with_header_change(raw, set_in(["version"], "2"))
    files["version true"] = with_header_change(raw, set_in(["version"], True))
    files["format missing"] = with_header_change(raw, lambda h: h.pop("format"))
    files["checksum missing"] = with_header_change(raw, lambda h: h.pop("checksum"))
    # architecture against arrays
    files["unknown layer type"] = with_header_change(raw, set_in(["layers", 1, "class"], "Conv2DTranspose"))
    files["layer class is the base class"] = with_header_change(raw, set_in(["layers", 1, "class"], "Layer"))
    files["config with an unknown argument"] = with_header_change(
        raw, set_in(["layers", 0, "config", "evil"], "__import__('os').system('true')"))
    files["config disagrees with arrays"] = with_header_change(raw, set_in(["layers", 0, "config", "n_out"], 7))
    files["config allocates a terabyte"] = with_header_change(
        raw, set_in(["layers", 0, "config"], {"n_in": 10**6, "n_out": 10**6}))
    files["negative size"] = with_header_change(raw, set_in(["layers", 0, "config", "n_in"], -4))
    files["layers not a list"] = with_header_change(raw, set_in(["layers"], {"0": "Dense"}))
    files["param list wrong"] = with_header_change(raw, set_in(["layers", 0, "params"], ["weight"]))
    files["scaler class unknown"] = with_header_change(raw, set_in(["scaler", "class"], "os.system"))
    files["dtype not a dtype"] = with_header_change(raw, set_in(["dtype"], "object"))
    files["array shape mismatch"] = with_array_change(
        raw, lambda a: a.__setitem__("layers.0.weight", np.zeros((4, 7), np.float32)))
    files["array dtype int"] = with_array_change(
        raw, lambda a: a.__setitem__("layers.0.weight", np.zeros((4, 6), np.int64)))
    files["array missing"] = with_array_change(raw, lambda a: a.pop("layers.3.bias"))
    files["extra array"] = with_array_change(raw, lambda a: a.__setitem__("layers.9.weight", np.zeros(3)))
    files["array values changed (checksum)"] = with_array_change(
        raw, lambda a: a.__setitem__("layers.0.weight", a["layers.0.weight"] + 1))
    files["NaN weights with a matching checksum"] = nan_model(tmp_path)
    # sizes declared larger than the file
    files["npy header declares a billion floats"] = swap_member(
        raw, "layers.0.weight.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000,), }"))
    files["central directory declares 4 GB"] = forge_size(raw, 2**32 - 1)
    # pickles and objects
    files["object array parameter"] = npz_objects(raw)
    files["pickled header"] = npz({HEADER: np.array([{"format": "chainrule"}], dtype=object)})
    files["a pickle file"] = pickle.dumps({"format": "chainrule", "layers": []})
    files["structured dtype"] = swap_member(
        raw, "layers.0.weight.npy",
        npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (24,), }", b"\0" * 96))
    # archives inside archives, bombs
    files["nested archive"] = zip_of({"inner.npy": raw, HEADER + ".npy": arrays_npy(arrays_of(raw)[HEADER])})
    files["zip named member"] = zip_of({"model.zip": raw})
    files["zip bomb (deflate)"] = zip_of({"layers.0.weight.npy": b"\0" * (30 * 2**20)}, zipfile.ZIP_DEFLATED)
    files["duplicate members"] = duplicate_member(raw)
    files["path traversal member"] = zip_of({"../../etc/passwd.npy": b"root"})
    files["empty zip"] = zip_of({})
    # not zip at all
    files["empty file"] = b""
    files["text"] = b"this is not a model\n" * 20
    files["an npy file"] = npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", b"\0" * 16)
    files["png"] = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    files["random bytes"] = np.random.default_rng(0).bytes(5000)
    # JSON header problems
    files["header not JSON"] = npz({HEADER: np.frombuffer(b"{not json", np.uint8)})
    files["header a JSON list"] = npz({HEADER: np.frombuffer(b"[1, 2]", np.uint8)})
    files["header nested 100000 deep"] = npz({HEADER: np.frombuffer(b"[" * 100000 + b"]" * 100000, np.uint8)})
    files["header huge integer"] = npz({HEADER: np.frombuffer(b'{"version": ' + b"9" * 50000 + b"}", np.uint8)})
    files["header not UTF-8"] = npz({HEADER: np.frombuffer(b'{"format": "\xff\xfe"}', np.uint8)})
    files["header as floats"] = npz({HEADER: np.zeros(8)})
    return files


def arrays_npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def members_of(raw: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return {name: z.read(name) for name in z.namelist()}


def swap_member(raw: bytes, name: str, data: bytes) -> bytes:
    members = members_of(raw)
    members[name] = data
    return zip_of(members)


def duplicate_member(raw: bytes) -> bytes:
    buf = io.BytesIO()
    members = members_of(raw)
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
            z.writestr("layers.0.weight.npy", members["layers.0.weight.npy"])
    return buf.getvalue()


def forge_size(raw: bytes, size: int) -> bytes:
    """Set the uncompressed size of the first central-directory entry (and fix nothing else)."""
    b = bytearray(raw)
    at = b.find(b"PK\x01\x02")
    struct.pack_into("<I", b, at + 24, size)
    return bytes(b)


def npz_objects(raw: bytes) -> bytes:
    arrays = arrays_of(raw)
    arrays["layers.0.weight"] = np.empty((4, 6), dtype=object)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def nan_model(tmp_path) -> bytes:
    """A well-formed version-2 file (valid checksums) whose weights hold NaN."""
    from chainrule import io as cr_io

    net = good_model()
    header, arrays = cr_io.model_parts(net)
    arrays = {k: np.array(v) for k, v in arrays.items()}
    arrays["layers.0.weight"][0, 0] = np.nan
    path = tmp_path / "nan.npz"
    cr_io.write(path, header, arrays)
    return path.read_bytes()


def test_the_corpus_is_large_enough(tmp_path):
    assert len(corpus(tmp_path)) >= 30


def test_the_good_file_loads(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(good_bytes(tmp_path))
    with no_pickle_no_eval():
        net = cr.load(path)
    X = np.arange(8.0).reshape(2, 4)
    assert np.array_equal(net.predict(X), good_model().predict(X))


def test_every_hostile_file_is_refused_quickly_without_pickle_or_eval(tmp_path):
    slow, accepted = [], []
    for i, (name, content) in enumerate(corpus(tmp_path).items()):
        path = tmp_path / f"hostile-{i}.npz"
        path.write_bytes(content)
        start = time.perf_counter()
        try:
            with no_pickle_no_eval():
                cr.load(path)
            accepted.append(name)
        except cr.ChainruleError as exc:
            assert isinstance(exc, cr.FileFormatError) and str(path) in str(exc), (name, exc)
        elapsed = time.perf_counter() - start
        if elapsed > 1.0:
            slow.append((name, round(elapsed, 2)))
    assert accepted == [] and slow == []


def test_the_cli_refuses_hostile_files_with_one_line_and_exit_1(tmp_path, capsys):
    files = corpus(tmp_path)
    cli.build_parser()  # import the optional subcommands' modules now, outside the guard
    for i, name in enumerate(["truncated at 100", "byte flipped in array data", "zip bomb (deflate)",
                              "object array parameter", "config allocates a terabyte", "a pickle file"]):
        path = tmp_path / f"cli-{i}.npz"
        path.write_bytes(files[name])
        for command in (["info", path], ["predict", path, path]):
            with no_pickle_no_eval():
                code = cli.main([str(a) for a in command])
            assert code == 1, name
            err = capsys.readouterr().err
            assert err.startswith("chainrule: error:") and err.count("\n") == 1 and str(path) in err


def test_a_folder_and_a_missing_file_are_refused(tmp_path):
    with pytest.raises(cr.FileFormatError, match="not a regular file"):
        cr.load(tmp_path)
    with pytest.raises(cr.FileFormatError, match="no such file"):
        cr.load(tmp_path / "absent.npz")


def test_version_1_files_still_load(tmp_path):
    """Files written before checksums (format version 1) load with every check but the digests."""
    raw = good_bytes(tmp_path)
    arrays = arrays_of(raw)
    header = header_of(arrays)
    del header["checksum"]
    header["version"] = 1
    path = tmp_path / "v1.npz"
    path.write_bytes(npz({k: v for k, v in arrays.items() if k != HEADER}, header))
    with no_pickle_no_eval():
        net = cr.load(path)
    X = np.arange(8.0).reshape(2, 4)
    assert np.array_equal(net.predict(X), good_model().predict(X))


def test_zip_crc_is_checked(tmp_path):
    raw = bytearray(good_bytes(tmp_path))
    at = raw.find(b"layers.0.weight.npy") + 200
    raw[at] ^= 1
    path = tmp_path / "crc.npz"
    path.write_bytes(bytes(raw))
    with pytest.raises(cr.FileFormatError, match="damaged|CRC"):
        cr.load(path)
    assert zlib.crc32(b"") == 0


# --- sizes under any name --------------------------------------------------------------------
class HostileTestEmbedding(cr.Layer):
    """A test-only layer whose sizes are not called n_in/n_out/n_hidden."""

    built: list = []

    def __init__(self, num_embeddings: int, dim: int) -> None:
        super().__init__()
        HostileTestEmbedding.built.append((num_embeddings, dim))
        self.num_embeddings, self.dim = num_embeddings, dim
        self.params["table"] = np.zeros((num_embeddings, dim), np.float32)
        self.grads["table"] = np.zeros_like(self.params["table"])

    def forward(self, x, training=False):
        return self.params["table"][x.astype(int)[:, 0]]

    def get_config(self):
        return {"num_embeddings": self.num_embeddings, "dim": self.dim}


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "inside TimeDistributed"])
def test_the_size_guard_knows_every_layers_size_arguments(tmp_path, wrapped):
    from chainrule import io as cr_io

    assert HostileTestEmbedding.size_args == ("num_embeddings", "dim")
    layer = HostileTestEmbedding(5, 3)
    net = cr.Sequential(cr.TimeDistributed(layer) if wrapped else layer)
    header, arrays = cr_io.model_parts(net)
    config = header["layers"][0]["config"]
    (config["layer"]["config"] if wrapped else config).update(num_embeddings=10**7, dim=10**6)
    path = tmp_path / "embedding.npz"
    cr_io.write(path, header, arrays)  # checksums recomputed: only the sizes can stop it
    HostileTestEmbedding.built.clear()
    start = time.perf_counter()
    with pytest.raises(cr.FileFormatError, match=r"num_embeddings.*10000000.*cannot hold"):
        cr.load(path)
    assert HostileTestEmbedding.built == [] and time.perf_counter() - start < 1.0


def test_a_fixed_point_rnn_with_many_iterations_still_loads(tmp_path):
    net = cr.Sequential(cr.FixedPointRNN(3, 4, max_iter=10**9, backward_max_iter=10**9, seed=0))
    path = tmp_path / "fp.npz"
    net.save(path)
    assert cr.load(path).layers[0].max_iter == 10**9


def test_nul_bytes_in_member_names_and_paths_are_file_format_errors(tmp_path):
    raw = good_bytes(tmp_path)
    path = tmp_path / "nul.npz"
    path.write_bytes(raw.replace(b"layers.0.bias.npy", b"layers.0.bias\x00npy"))
    with pytest.raises(cr.FileFormatError, match="not an array"):
        cr.load(path)
    with pytest.raises(cr.FileFormatError, match="NUL byte"):
        cr.load(str(tmp_path / "a\0b.npz"))


@pytest.mark.parametrize("layer", [cr.LSTM(1, 2), cr.RNN(1, 2), cr.FixedPointRNN(1, 2)])
def test_a_recurrent_layers_hidden_size_counts_squared(tmp_path, layer):
    """n_hidden = 3000 with n_in = 1 asks for 3000 x 3000 (or x 12000) weights: far more than a
    file of a few numbers holds, though n_in x n_hidden is small."""
    from chainrule import io as cr_io

    header, arrays = cr_io.model_parts(cr.Sequential(layer))
    header["layers"][0]["config"]["n_hidden"] = 3000
    path = tmp_path / "recurrent.npz"
    cr_io.write(path, header, arrays)
    with pytest.raises(cr.FileFormatError, match=r"n_hidden.*3000.*cannot hold"):
        cr.load(path)
