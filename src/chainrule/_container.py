"""The ``.npz`` container of chainrule files, read defensively and written atomically.

A chainrule file is a zip archive of ``.npy`` members, as ``numpy.savez`` writes it. It is read
here without ``numpy.load`` and without pickle, checking everything before trusting it:

- the file is a zip archive whose central directory lists only ``NAME.npy`` members, once each,
  stored uncompressed (so no member can expand: no zip bombs, no nested archives), unencrypted;
- the sizes the central directory declares add up to no more than the file's size, so nothing
  is allocated for data the file does not hold; each member's local header agrees with the
  central directory (name, flags, method, CRC, sizes), the members do not overlap, and the
  archive ends with its end record (no comment, nothing after it);
- each member is an ``.npy`` array of a plain numeric dtype (bool, int, uint, float; never
  object, never a structured dtype) whose header, parsed by a strict regular expression (not
  ``ast.literal_eval``), declares exactly as many bytes as the member holds;
- the zip CRC-32 of every member is checked as it is read.

Anything else is a :class:`~chainrule.errors.FileFormatError` naming the problem.
"""

from __future__ import annotations

import errno
import math
import os
import re
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import ChainruleError, ConfigError, FileFormatError, SaveError

#: Member names chainrule writes: letters, digits, ``_ . -``, then ``.npy``.
_MEMBER = re.compile(r"[A-Za-z0-9_.\-]{1,256}\.npy\Z")
#: The header ``numpy.lib.format`` writes: keys sorted, Python literals, padded with spaces.
_NPY_HEADER = re.compile(
    r"\{'descr': '([^']{1,16})', 'fortran_order': (True|False), 'shape': \(([0-9, ]{0,200})\), \}[ ]*\n?\Z"
)
_NPY_MAGIC = b"\x93NUMPY"
_KINDS = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8)}
#: More members than this is not a model file (a network of 10,000 layers has fewer).
MAX_MEMBERS = 100_000


def _refuse(path, message: str) -> FileFormatError:
    return FileFormatError(f"{path}: {message}")


def read_arrays(path) -> dict[str, np.ndarray]:
    """Every array of the archive at ``path``, keyed by member name without ``.npy``.

    The arrays are read-only views of the bytes read; copy them before changing them.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such file") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except ValueError:  # a NUL byte in the path
        raise FileFormatError(f"{str(path)[:200]!r}: not a file name (it holds a NUL byte)") from None
    if not path.is_file():
        raise FileFormatError(f"{path}: not a regular file")
    try:
        with open(path, "rb") as f:
            start = f.read(4)
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if start[:2] != b"PK":
        what = "an .npy array" if start == _NPY_MAGIC[:4] else "not a zip archive"
        raise _refuse(path, f"is not a chainrule model file ({what}; a model file is an .npz archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_directory(path, infos, size)
            with open(path, "rb") as raw:
                _check_layout(path, raw, infos, size)
            arrays = {}
            for info in infos:
                data = archive.read(info)  # checks the CRC-32
                if len(data) != info.file_size:
                    raise _refuse(path, f"member {info.filename} holds {len(data)} bytes,"
                                  f" the archive declares {info.file_size}")
                arrays[info.filename[:-4]] = _parse_npy(path, info.filename, data)
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, struct.error,
            NotImplementedError, RuntimeError, OverflowError, MemoryError) as exc:
        raise _refuse(path, f"is not a readable chainrule model file (damaged or truncated archive: {exc})") from None
    return arrays


def _check_directory(path, infos: list[zipfile.ZipInfo], size: int) -> None:
    """Names, methods, flags and sizes of the members, from the central directory alone."""
    if not infos:
        raise _refuse(path, "is an empty zip archive, not a chainrule model file")
    if len(infos) > MAX_MEMBERS:
        raise _refuse(path, f"has {len(infos):,} members; a chainrule file has at most {MAX_MEMBERS:,}")
    seen: set[str] = set()
    declared = 0
    for info in infos:
        name = info.filename
        if not _MEMBER.match(name):
            raise _refuse(path, f"has a member {name[:80]!r} that is not an array (.npy) of a chainrule file")
        if name in seen:
            raise _refuse(path, f"has the member {name} twice")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise _refuse(path, f"member {name} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED:
            raise _refuse(path, f"member {name} is compressed (method {info.compress_type}); chainrule"
                          " files store arrays uncompressed, so a small file cannot expand into a large one")
        if info.file_size != info.compress_size:
            raise _refuse(path, f"member {name} declares {info.file_size:,} bytes but stores"
                          f" {info.compress_size:,}")
        declared += info.file_size
    if declared > size:
        raise _refuse(path, f"declares {declared:,} bytes of arrays, more than the whole file"
                      f" ({size:,} bytes): truncated or forged")


_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # the 30 bytes of a zip local file header


def _check_layout(path, raw, infos: list[zipfile.ZipInfo], size: int) -> None:
    """Local headers against the central directory, no overlaps, the end record at the very end."""
    raw.seek(size - 22)
    end = raw.read(22)
    if len(end) != 22 or end[:4] != b"PK\x05\x06" or end[20:22] != b"\0\0":
        raise _refuse(path, "does not end with a zip end record (trailing data, a comment, or damage)")
    (directory_start,) = struct.unpack("<I", end[16:20])
    spans = []
    for info in sorted(infos, key=lambda i: i.header_offset):
        raw.seek(info.header_offset)
        head = raw.read(_LOCAL.size)
        if len(head) != _LOCAL.size:
            raise _refuse(path, f"member {info.filename}: local header past the end of the file")
        sig, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = _LOCAL.unpack(head)
        name = raw.read(name_len)
        wide = 0xFFFFFFFF  # ZIP64: the real sizes are in the extra field
        if (sig != b"PK\x03\x04" or name != info.filename.encode("utf-8") or flags != info.flag_bits
                or method != info.compress_type or crc != info.CRC
                or (csize != wide and csize != info.compress_size) or (usize != wide and usize != info.file_size)):
            raise _refuse(path, f"member {info.filename}: the local header disagrees with the central directory")
        start = info.header_offset + _LOCAL.size + name_len + extra_len
        spans.append((info.header_offset, start + info.compress_size, info.filename))
    for (_, end_a, name_a), (start_b, _, name_b) in zip(spans, spans[1:], strict=False):
        if end_a > start_b:
            raise _refuse(path, f"members {name_a} and {name_b} overlap")
    if spans and spans[-1][1] > min(directory_start, size) and directory_start != 0xFFFFFFFF:
        raise _refuse(path, f"member {spans[-1][2]} runs into the central directory")


def _parse_npy(path, name: str, data: bytes) -> np.ndarray:
    if len(data) < 10 or data[:6] != _NPY_MAGIC:
        raise _refuse(path, f"member {name} is not an .npy array")
    major = data[6]
    if major == 1:
        (header_len,), start = struct.unpack("<H", data[8:10]), 10
    elif major in (2, 3) and len(data) >= 12:
        (header_len,), start = struct.unpack("<I", data[8:12]), 12
    else:
        raise _refuse(path, f"member {name} has .npy format version {major}.{data[7]}, not 1, 2 or 3")
    if start + header_len > len(data):
        raise _refuse(path, f"member {name}: the .npy header runs past the member's end")
    try:
        text = data[start:start + header_len].decode("utf-8" if major == 3 else "latin1")
    except UnicodeDecodeError:
        raise _refuse(path, f"member {name}: the .npy header is not text") from None
    match = _NPY_HEADER.match(text)
    if match is None:
        if "'descr': '|O'" in text or "'descr': 'O'" in text:
            raise _refuse(path, f"array {name[:-4]} holds Python objects, which would need pickle to load; refused")
        raise _refuse(path, f"member {name} has an .npy header chainrule does not read: {text[:120]!r}"
                      " (only plain numeric arrays; object arrays would need pickle and are refused)")
    descr, fortran, shape_text = match.groups()
    if descr.lstrip("<>|=") in ("O", "O8", "O4"):
        raise _refuse(path, f"array {name[:-4]} holds Python objects, which would need pickle to load; refused")
    kind, digits = descr.lstrip("<>|=")[:1], descr.lstrip("<>|=")[1:]
    if kind not in _KINDS or not digits.isdigit() or int(digits) not in _KINDS[kind]:
        raise _refuse(path, f"array {name[:-4]} has dtype {descr!r}; chainrule reads bool, integer and"
                      " float arrays only")
    dtype = np.dtype(descr)
    parts = [p.strip() for p in shape_text.split(",") if p.strip()]
    if shape_text.strip() and not parts or not all(p.isdigit() for p in parts) or len(parts) > 32:
        raise _refuse(path, f"array {name[:-4]} has a malformed shape ({shape_text!r})")
    shape = tuple(int(p) for p in parts)
    offset = start + header_len
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != len(data) - offset:
        raise _refuse(path, f"array {name[:-4]} declares shape {shape} of {dtype} ({nbytes:,} bytes),"
                      f" the member holds {len(data) - offset:,} bytes")
    arr = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset)
    return arr.reshape(shape, order="F" if fortran == "True" else "C")


# --- writing ------------------------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_target(path) -> Path:
    """The file a write to ``path`` replaces: ``path`` itself, or the file a symbolic link there
    points to (the link is kept and followed, as ``open(path, "w")`` would). A folder as the
    target, a missing folder and a link loop are refused with a SaveError saying what to do."""
    given = Path(path)
    if "\0" in str(given):
        raise ConfigError(f"cannot save to {str(path)[:200]!r}: the path holds a NUL byte")
    target = Path(os.path.realpath(given)) if os.path.islink(given) else given
    if os.path.islink(target):
        raise SaveError(f"cannot save to {path}: it is a symbolic link that leads in a loop;"
                        " remove the link or save to another path")
    folder = target.parent if str(target.parent) else Path(".")
    shown = str(path) if target == Path(path) else f"{path} (a link to {target})"
    if target.is_dir():
        raise SaveError(f"cannot save to {shown}: it is a folder; give a file path such as"
                        f" {target / 'model.npz'}")
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise SaveError(f"cannot save to {shown}: the folder {folder} {what}; create it first"
                        " (os.makedirs) or choose another path")
    return target


def atomic_write(path, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, fsync, then rename it over ``path``.

    A crash, a ``kill -9`` or an exception at any point leaves either the old file or the new
    one at ``path``, never a mix; the temporary file is removed when ``write`` raises. The
    folder is fsynced after the rename (where the platform allows), so the rename itself
    survives a power cut. The new file keeps the old one's permissions (or gets the usual
    ones from the umask). When ``path`` is a symbolic link, the file it points to is replaced
    (the temporary file sits in that file's folder) and the link stays. An OSError while
    writing (a full disk, no permission) becomes a SaveError that says the old file was kept.
    """
    target = write_target(path)
    folder = target.parent if str(target.parent) else Path(".")
    existed = target.exists()
    try:
        mode = target.stat().st_mode & 0o777
    except OSError:
        mode = 0o666 & ~_umask()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, ChainruleError):
            raise _save_error(path, exc, existed) from exc
        raise
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; the rename is as durable as it gets there
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _save_error(path, exc: OSError, existed: bool) -> SaveError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        advice = "free some disk space or save to another disk"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "check the folder's permissions or save elsewhere"
    else:
        advice = "check the path and the disk"
    kept = (f"the file already at {path} was kept unchanged" if existed
            else f"nothing was written at {path}")
    error = SaveError(f"could not write {path}: {reason}; {kept}; {advice}")
    error.errno = exc.errno  # (strerror and filename stay unset: they would replace the message)
    return error


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` through :func:`atomic_write`."""
    data = text.encode(encoding)
    atomic_write(path, lambda f: f.write(data))
