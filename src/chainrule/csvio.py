"""CSV tables in and out, and the column encoding a model trained on a CSV file keeps.

Reading uses the standard library's ``csv`` module. A table is read in chunks of rows
(:class:`TableReader`), so a large file can be predicted on without holding it in memory;
:func:`read_table` reads a whole file (with ``numeric=True`` its numeric columns go straight
into float64 arrays, chunk by chunk). A file may use a decimal comma (``decimal=","``) and
another text encoding (``encoding="cp1252"``). Every problem with a file is a :class:`CsvError`
whose one-line message names the file, the line and the column::

    data.csv, line 7, column 3 ('age'): expected a number, got 'abc'

:class:`TablePreprocessor` learns from a training table how to turn rows into network inputs,
and keeps it as JSON-able config that ``chainrule train`` stores in the model file's metadata
(no pickle):

- a numeric column is read as numbers;
- a text (categorical) column becomes one input per category seen in training (one-hot);
  a category not seen in training becomes all zeros;
- the target is class labels (classification: text or a few whole numbers) or numbers
  (regression, standardized with the mean and standard deviation of the training target).

Standardizing the inputs is left to the network's own ``scaler`` (a
:class:`chainrule.Standardizer`), so ``net.predict(pre.transform(table))`` is the whole path
from a table to the network's output.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError, DataError

CONFIG_VERSION = 1
MISSING = ("", "na", "nan", "null", "none", "?")


class CsvError(DataError):
    """A CSV file that cannot be used; the message names the file, line and column.

    Attributes
    ----------
    path : str
    line : int or None
        1-based line in the file (the header is line 1).
    column : int or None
        1-based column (field) number.
    name : str or None
        The column's name in the header, when it has one.
    """

    def __init__(self, path, line: int | None, column: int | None, message: str,
                 name: str | None = None) -> None:
        self.path, self.line, self.column, self.name = str(path), line, column, name
        self.reason = message
        where = [self.path]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column}" + (f" ({name!r})" if name is not None else ""))
        elif name is not None:
            where.append(f"column {name!r}")
        super().__init__(f"{', '.join(where)}: {message}")


# --- reading ----------------------------------------------------------------------------------
ENCODINGS_TO_TRY = ("cp1252", "latin-1", "utf-8-sig")
MAX_LISTED = 20


def _decimal_comma(values) -> list[str]:
    """Values written with a decimal comma ("36,9") rewritten with a point ("36.9")."""
    return [v.replace(",", ".") for v in values]


def _parses(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _listed(problems: list[str], what: str) -> str:
    """Up to MAX_LISTED problems, then "and N more"."""
    shown = "; ".join(problems[:MAX_LISTED])
    more = len(problems) - MAX_LISTED
    return f"{len(problems)} {what}: {shown}" + (f"; and {more} more" if more > 0 else "")


@dataclass
class Table:
    """Rows of a CSV file held by column (stripped of spaces).

    Attributes
    ----------
    path : str
    header : list of str
        Column names, from the first line.
    columns : list
        ``columns[j]`` holds column j: a list of the strings in the file or, for a column that
        :func:`read_table` read as numbers (``numeric=True``), a float64 array of finite values.
    lines : numpy.ndarray of int
        The line in the file where each row ends (for error messages).
    decimal : str
        "." or ","; with "," a number may be written "36,9".
    """

    path: str
    header: list[str]
    columns: list
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    decimal: str = "."

    @property
    def n_rows(self) -> int:
        return len(self.lines)

    def index(self, name: str, role: str = "column") -> int:
        """Position of column ``name``; a CsvError on line 1 when the header lacks it."""
        try:
            return self.header.index(name)
        except ValueError:
            close = difflib.get_close_matches(name, self.header, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            shown = ", ".join(self.header[:20]) + (", ..." if len(self.header) > 20 else "")
            raise CsvError(self.path, 1, None, f"the header has no such {role}; {hint}the columns are: {shown}",
                           name) from None

    def column(self, name: str, role: str = "column") -> list[str]:
        return self.columns[self.index(name, role)]

    def strings(self, j: int) -> list[str]:
        """Column ``j`` as text (a column read as numbers is written back in its shortest form)."""
        values = self.columns[j]
        return [format_number(v) for v in values] if isinstance(values, np.ndarray) else values

    def error(self, row: int, column: int, message: str) -> CsvError:
        """A CsvError for the value in ``row`` (0-based) of ``column`` (0-based)."""
        return CsvError(self.path, int(self.lines[row]), column + 1, message, self.header[column])

    def _texts(self, j: int) -> list[str]:
        values = self.columns[j]
        return _decimal_comma(values) if self.decimal == "," else values

    def bad_numbers(self, j: int) -> list[tuple[int, str]]:
        """Every value of column ``j`` that is not a finite number: (row, message), in row order."""
        values = self.columns[j]
        if isinstance(values, np.ndarray):
            return []
        bad = []
        for i, text in enumerate(self._texts(j)):
            if text.lower() in MISSING:
                bad.append((i, f"missing value ({values[i]!r}) in a numeric column"))
                continue
            try:
                value = float(text)
            except ValueError:
                hint = " (a decimal comma? pass --decimal ,)" if self.decimal == "." and _parses(
                    text.replace(",", ".")) else ""
                bad.append((i, f"expected a number, got {values[i]!r}{hint}"))
                continue
            if not math.isfinite(value):
                bad.append((i, f"expected a finite number, got {values[i]!r}"))
        return bad

    def numbers(self, j: int) -> np.ndarray:
        """Column ``j`` as float64; a CsvError naming the first value that is not a finite number."""
        values = self.columns[j]
        if isinstance(values, np.ndarray):
            return values
        try:
            out = np.array(self._texts(j), dtype=np.float64)
        except ValueError:
            out = None
        if out is not None and np.isfinite(out).all():
            return out
        i, message = self.bad_numbers(j)[0]
        if message.startswith("missing"):
            message += "; fill it in, drop the row or pass --drop-incomplete"
        raise self.error(i, j, message)

    def check(self, numeric: list[int], target: int | None = None) -> None:
        """One CsvError listing every bad value, in file order: a missing ``target`` value, or a
        value of a ``numeric`` column that is not a finite number. A single problem keeps the
        located form (file, line, column: reason)."""
        found = []  # (row, column, message)
        if target is not None:
            values = self.columns[target]
            if not isinstance(values, np.ndarray):
                found += [(i, target, f"missing target value ({text!r})") for i, text in enumerate(values)
                          if text.lower() in MISSING]
        for j in numeric:
            found += [(i, j, message) for i, message in self.bad_numbers(j)]
        if not found:
            return
        found.sort()
        incomplete = any(message.startswith("missing") for _, _, message in found)
        advice = "; fill them in, drop the rows, or pass --drop-incomplete" if incomplete else ""
        if len(found) == 1:
            i, j, message = found[0]
            raise self.error(i, j, message + advice.replace("them", "it").replace("rows", "row"))
        listed = [f"line {int(self.lines[i])}, column {j + 1} ({self.header[j]!r}): {message}"
                  for i, j, message in found]
        raise CsvError(self.path, None, None, _listed(listed, "bad values") + advice)

    def incomplete_rows(self, columns: list[int]) -> np.ndarray:
        """Boolean mask of the rows with a missing value in any of ``columns``."""
        mask = np.zeros(self.n_rows, dtype=bool)
        for j in columns:
            values = self.columns[j]
            if not isinstance(values, np.ndarray):
                mask |= np.fromiter((v.lower() in MISSING for v in values), dtype=bool, count=self.n_rows)
        return mask

    def drop(self, mask: np.ndarray) -> Table:
        """The table without the rows where ``mask`` is True."""
        keep = np.flatnonzero(~mask)
        columns = [values[keep] if isinstance(values, np.ndarray) else [values[i] for i in keep]
                   for values in self.columns]
        return Table(self.path, self.header, columns, self.lines[keep], self.decimal)


def _locate_decode_error(path, encoding: str, error: UnicodeDecodeError):
    """The line (1-based) and the error of the first line of ``path`` that is not ``encoding``.

    The text layer decodes blocks of the file, not lines, so its error does not say where.
    """
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as exc:
                return number, exc
    return None, error


class TableReader:
    """Read a CSV file's header, then its rows in chunks.

    >>> with TableReader("data.csv") as reader:          # doctest: +SKIP
    ...     for chunk in reader.chunks(10_000):
    ...         ...

    Blank lines are skipped; a row with more or fewer fields than the header, an empty file,
    a file without data rows and duplicate column names are CsvErrors.
    """

    def __init__(self, path, delimiter: str = ",", encoding: str = "utf-8", decimal: str = ".") -> None:
        self.path = str(path)
        if len(delimiter) != 1:
            raise ConfigError(f"the CSV delimiter must be one character, got {delimiter!r}")
        if decimal not in (".", ","):
            raise ConfigError(f"the decimal mark must be '.' or ',', got {decimal!r}")
        if decimal == delimiter:
            raise ConfigError(f"the decimal mark and the delimiter are both {decimal!r}; use --delimiter ';'"
                              " with --decimal ','")
        import codecs

        try:
            codec = codecs.lookup(encoding).name
        except LookupError:
            raise ConfigError(f"unknown text encoding {encoding!r}; try one of {', '.join(ENCODINGS_TO_TRY)}"
                              ) from None
        self.encoding, self.decimal = encoding, decimal
        try:
            # a UTF-8 file may start with a byte-order mark
            self._file = open(path, newline="", encoding="utf-8-sig" if codec == "utf-8" else encoding)
        except FileNotFoundError:
            raise CsvError(path, None, None, "no such file") from None
        except IsADirectoryError:
            raise CsvError(path, None, None, "is a folder, not a CSV file") from None
        except OSError as exc:
            raise CsvError(path, None, None, f"cannot be opened ({exc.strerror})") from None
        self._reader = csv.reader(self._file, delimiter=delimiter)
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise
        self._rows_read = 0

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except UnicodeDecodeError as exc:
            tried = [e for e in ENCODINGS_TO_TRY if e != self.encoding]
            line, exc = _locate_decode_error(self.path, self.encoding, exc)
            raise CsvError(self.path, line, None,
                           f"is not {self.encoding.upper()} text ({exc.reason} at byte {exc.start + 1} of the line);"
                           f" a spreadsheet may have saved it in another encoding: try --encoding {tried[0]}"
                           f" (or {', '.join(tried[1:])})") from None
        except csv.Error as exc:
            raise CsvError(self.path, self._reader.line_num, None, f"malformed CSV ({exc})") from None

    def _read_header(self) -> list[str]:
        row = self._next()
        while row is not None and not any(cell.strip() for cell in row):
            row = self._next()
        if row is None:
            raise CsvError(self.path, 1, None, "the file is empty; expected a header line with column names")
        header = [cell.strip() for cell in row]
        line = self._reader.line_num
        seen: dict[str, int] = {}
        for j, name in enumerate(header):
            if not name:
                raise CsvError(self.path, line, j + 1, "the header gives this column no name")
            if name in seen:
                raise CsvError(self.path, line, j + 1,
                               f"duplicate column name {name!r} (also column {seen[name] + 1})")
            seen[name] = j
        return header

    def chunks(self, size: int = 65536) -> Iterator[Table]:
        """Yield Tables of at most ``size`` rows; a CsvError if the file has no data rows.

        Rows with more or fewer fields than the header are gathered over the chunk and reported
        together, in file order (one CsvError).
        """
        width = len(self.header)
        while True:
            columns: list[list[str]] = [[] for _ in range(width)]
            lines: list[int] = []
            bad: list[CsvError] = []
            while len(lines) + len(bad) < size:
                row = self._next()
                if row is None:
                    break
                if len(row) != width:
                    if not any(cell.strip() for cell in row):
                        continue  # a blank line
                    line = self._reader.line_num
                    if len(row) > width:
                        bad.append(CsvError(self.path, line, width + 1,
                                            f"this row has {len(row)} fields, the header has {width}"))
                    else:
                        bad.append(CsvError(self.path, line, len(row) + 1,
                                            f"this row has {len(row)} fields, the header has {width}"
                                            f" (no value for {self.header[len(row)]!r})"))
                    continue
                for j in range(width):
                    columns[j].append(row[j].strip())
                lines.append(self._reader.line_num)
            if len(bad) == 1:
                raise bad[0]
            if bad:
                listed = [f"line {e.line}, column {e.column}: {e.reason}" for e in bad]
                raise CsvError(self.path, None, None, _listed(listed, "rows with the wrong number of fields"))
            if not lines:
                if self._rows_read == 0:
                    raise CsvError(self.path, self._reader.line_num + 1, None,
                                   "no data rows after the header line")
                return
            self._rows_read += len(lines)
            yield Table(self.path, self.header, columns, np.asarray(lines, dtype=np.int64), self.decimal)
            if len(lines) < size:
                return

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TableReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_table(path, delimiter: str = ",", encoding: str = "utf-8", decimal: str = ".",
               numeric: bool = False, text=()) -> Table:
    """Read a whole CSV file (header line, then at least one data row) into a Table.

    With ``numeric=True`` a column whose every value is a finite number is kept as one float64
    array, built chunk by chunk, instead of a list of strings (about a tenth of the memory);
    the columns named in ``text`` stay strings. A column that turns out not to be all numbers
    after earlier chunks were converted is read again, as strings, in a second pass.
    """
    with TableReader(path, delimiter, encoding, decimal) as reader:
        if not numeric:
            return next(reader.chunks(1 << 62))
        header = reader.header
        keep_text = {j for j, name in enumerate(header) if name in set(text)}
        parts: list[list] = [[] for _ in header]  # per column: arrays while it parses, else strings
        as_text: set[int] = set(keep_text)
        reread: set[int] = set()
        lines = []
        for chunk in reader.chunks(65536):
            lines.append(chunk.lines)
            for j, values in enumerate(chunk.columns):
                if j not in as_text:
                    try:
                        array = np.array(chunk._texts(j), dtype=np.float64)
                    except ValueError:
                        array = None
                    if array is not None and np.isfinite(array).all():
                        parts[j].append(array)
                        continue
                    as_text.add(j)
                    if parts[j]:
                        reread.add(j)
                        parts[j] = []
                if j not in reread:
                    parts[j].extend(values)
    if reread:  # columns that were numbers in the first chunks only: their text, from the file again
        with TableReader(path, delimiter, encoding, decimal) as reader:
            for chunk in reader.chunks(65536):
                for j in reread:
                    parts[j].extend(chunk.columns[j])
    columns = [values if j in as_text else np.concatenate(values) for j, values in enumerate(parts)]
    return Table(str(path), header, columns, np.concatenate(lines), decimal)


# --- writing ----------------------------------------------------------------------------------
def format_number(value: float) -> str:
    """The shortest text that reads back as exactly the same float64."""
    return repr(float(value))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """A text cell that a spreadsheet will not run as a formula: ``'`` before a leading ``= + - @``,
    tab or carriage return. A number ("-3.5", "+2") is left as it is, so it stays a number.

    >>> spreadsheet_safe("=1+2"), spreadsheet_safe("-3.5"), spreadsheet_safe("@SUM(A1)")
    ("'=1+2", '-3.5', "'@SUM(A1)")
    """
    if text and text.startswith(FORMULA_STARTS) and not _parses(text.strip()):
        return "'" + text
    return text


def write_csv(path, header: list[str], rows) -> None:
    """Write ``header`` and ``rows`` to ``path`` atomically, or to stdout when path is None or "-".

    To stdout, too, nothing is written unless every row could be made: the text is gathered
    first (in memory, or in a temporary file past 32 MiB) and copied out at the end.
    """
    import shutil
    import tempfile

    from .io import atomic_write

    def write(binary) -> None:
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        text.flush()
        text.detach()

    if path is None or str(path) == "-":
        with tempfile.SpooledTemporaryFile(max_size=32 << 20, mode="w+", encoding="utf-8", newline="") as spool:
            writer = csv.writer(spool, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
            spool.seek(0)
            shutil.copyfileobj(spool, sys.stdout)
        sys.stdout.flush()
    else:
        atomic_write(path, write)


# --- the preprocessing a model keeps ----------------------------------------------------------
def _sort_labels(labels) -> list[str]:
    """Class labels in a stable order: by value when all are numbers, else as text."""
    labels = list(labels)
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def _whole_numbers(values: np.ndarray) -> bool:
    return bool(np.all(values == np.round(values))) and bool(np.all(np.abs(values) < 2**53))


class TablePreprocessor:
    """How the columns of a CSV file become network inputs and targets.

    Parameters
    ----------
    target : str or None
        The target column's name (None for a preprocessor of inputs only).
    task : {"auto", "classification", "regression"}
        "auto" takes classification for a text target or one of at most 20 whole numbers
        (and no more distinct values than a fifth of the rows, or 2), regression otherwise.
    categorical : list of str
        Columns to one-hot encode even though they hold numbers.
    ignore : list of str
        Columns that are not inputs (an id, a free-text note).
    max_categories : int
        A text column with more distinct values than this is an error (suggesting ``ignore``).
    scale_target : bool
        Standardize a regression target (predictions are mapped back).

    Attributes (after ``fit``)
    --------------------------
    features : list of dict
        ``{"name": str, "kind": "numeric"}`` or ``{"name", "kind": "categorical",
        "categories": [str, ...]}``, in the order of the inputs.
    target_info : dict or None
        ``{"name", "task": "classification", "classes": [...]}`` or
        ``{"name", "task": "regression", "mean": float, "scale": float}``.
    """

    def __init__(self, target: str | None = None, task: str = "auto", categorical=(), ignore=(),
                 max_categories: int = 100, scale_target: bool = True) -> None:
        if task not in ("auto", "classification", "regression"):
            raise ConfigError(f"task must be 'auto', 'classification' or 'regression', got {task!r}")
        self.target, self.task = target, task
        self.categorical, self.ignore = list(categorical), list(ignore)
        self.max_categories, self.scale_target = int(max_categories), bool(scale_target)
        self.features: list[dict] = []
        self.target_info: dict | None = None
        self.notes: list[str] = []

    # --- learning ------------------------------------------------------------------------
    def fit(self, table: Table) -> TablePreprocessor:
        """Learn the column kinds, categories and target encoding from a training table.

        Every bad value (a missing target, a word or a blank in a numeric column) is reported
        in one CsvError, in file order. ``notes`` gets a line for each text column that looks
        like numbers (a decimal comma, a currency sign), which would otherwise be one-hot
        encoded silently.
        """
        for name in [*self.categorical, *self.ignore]:
            table.index(name, "column (named in --categorical/--ignore)")
        skip = set(self.ignore)
        j_target = None
        if self.target is not None:
            j_target = table.index(self.target, "target column")
            skip.add(self.target)
        self.notes = []
        kinds = {}
        for j, name in enumerate(table.header):
            if name not in skip:
                kinds[j] = "categorical" if name in self.categorical or self._is_text(table, j) else "numeric"
        table.check([j for j, kind in kinds.items() if kind == "numeric"], target=j_target)
        if j_target is not None:
            self.target_info = self._fit_target(table, j_target)
            self.task = self.target_info["task"]
        self.features = []
        for j, kind in kinds.items():
            name = table.header[j]
            if kind == "numeric":
                self.features.append({"name": name, "kind": "numeric"})
                continue
            cats = sorted(set(table.strings(j)))
            if name not in self.categorical:
                self._note_numeric_looking(table, j, len(cats))
            if len(cats) > self.max_categories:
                raise CsvError(table.path, None, j + 1,
                               f"text column with {len(cats)} distinct values; one-hot encoding would"
                               f" make {len(cats)} inputs. Leave it out (--ignore {name}) or raise"
                               f" --max-categories" + (f" ({self.notes[-1]})" if self.notes else ""), name)
            self.features.append({"name": name, "kind": "categorical", "categories": cats})
        if not self.features:
            raise CsvError(table.path, 1, None, "no input columns left besides the target")
        return self

    def _note_numeric_looking(self, table: Table, j: int, n_categories: int) -> None:
        """Add a note when text column ``j`` holds numbers in a form not read as numbers."""
        filled = [v for v in table.strings(j) if v.lower() not in MISSING]
        if not filled:
            return
        name = table.header[j]
        example = next((v for v in filled if not _parses(v)), filled[0])
        comma = sum(_parses(v) or _parses(v.replace(",", ".")) for v in filled)
        cleaned = sum(_parses(re.sub(r"[\s'%$€£¥]", "", v).replace(",", "")) for v in filled)
        what = (f"column {name!r} looks numeric (e.g. {example!r}) but is read as text:"
                f" {n_categories} one-hot categories")
        if table.decimal == "." and comma == len(filled):
            self.notes.append(f"{what}; its numbers have a decimal comma: pass --decimal , to read them as numbers")
        elif cleaned * 2 >= len(filled):
            self.notes.append(f"{what}; remove the signs or separators from its values, or --ignore {name}")

    @staticmethod
    def _is_text(table: Table, j: int) -> bool:
        """Text when fewer than half of the filled-in values are numbers.

        A column that is mostly numbers stays numeric, so one stray word in it is reported
        (with its line) instead of silently turning the column into categories.
        """
        if isinstance(table.columns[j], np.ndarray):
            return False
        values = table._texts(j)
        try:
            np.array(values, dtype=np.float64)
            return False
        except ValueError:
            pass
        numbers = filled = 0
        for text in values:
            if text.lower() in MISSING:
                continue
            filled += 1
            try:
                float(text)
                numbers += 1
            except ValueError:
                pass
        return numbers * 2 < filled

    def _fit_target(self, table: Table, j: int) -> dict:
        values = table.strings(j)
        task = self.task
        numbers = None
        if not self._is_text(table, j):
            numbers = table.numbers(j)
        if task == "auto":
            if numbers is None:
                task = "classification"
            else:
                distinct = np.unique(numbers)
                few = len(distinct) <= 20 and (len(distinct) <= 2 or len(distinct) <= len(numbers) / 5)
                task = "classification" if _whole_numbers(distinct) and few else "regression"
        if task == "regression":
            if numbers is None:
                numbers = table.numbers(j)
            with np.errstate(over="ignore", invalid="ignore"):
                mean, scale = float(numbers.mean()), float(numbers.std())
            if not (math.isfinite(mean) and math.isfinite(scale)):
                raise CsvError(table.path, None, j + 1, "the target's values are too large to standardize"
                               f" (up to {np.abs(numbers).max():.4g}); rescale the column", table.header[j])
            if not self.scale_target:
                mean, scale = 0.0, 1.0
            elif scale == 0:
                scale = 1.0
            return {"name": table.header[j], "task": "regression", "mean": mean, "scale": scale}
        labels = self._canonical_labels(values, numbers)
        classes = _sort_labels(set(labels))
        if len(classes) < 2:
            raise CsvError(table.path, None, j + 1, f"the target has one class only ({classes[0]!r});"
                           " classification needs at least two", table.header[j])
        return {"name": table.header[j], "task": "classification", "classes": classes}

    @staticmethod
    def _canonical_labels(values: list[str], numbers: np.ndarray | None) -> list[str]:
        """Whole-number labels written as integers ("1.0" and "1" are one class), text as is."""
        if numbers is not None and _whole_numbers(numbers):
            return [str(int(v)) for v in numbers]
        return list(values)

    # --- applying ------------------------------------------------------------------------
    @property
    def classes(self) -> list[str] | None:
        return self.target_info.get("classes") if self.target_info else None

    @property
    def input_names(self) -> list[str]:
        """One name per network input: "age", "color=red", "color=blue", ..."""
        names = []
        for f in self.features:
            if f["kind"] == "numeric":
                names.append(f["name"])
            else:
                names.extend(f"{f['name']}={c}" for c in f["categories"])
        return names

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    @property
    def n_outputs(self) -> int:
        if self.target_info is None:
            raise ConfigError("this preprocessor has no target")
        return len(self.classes) if self.task == "classification" else 1

    def transform(self, table: Table, dtype=np.float64) -> tuple[np.ndarray, int]:
        """The input matrix (n_rows, n_inputs) of ``dtype``, and how many values were unseen categories.

        Every bad value of a numeric column is reported in one CsvError, in file order.
        """
        X = np.zeros((table.n_rows, self.n_inputs), dtype=dtype)
        table.check([table.index(f["name"], "input column") for f in self.features if f["kind"] == "numeric"])
        col, unseen = 0, 0
        for f in self.features:
            j = table.index(f["name"], "input column")
            if f["kind"] == "numeric":
                X[:, col] = table.numbers(j)
                col += 1
            else:
                lookup = {c: k for k, c in enumerate(f["categories"])}
                codes = np.fromiter((lookup.get(v, -1) for v in table.strings(j)), dtype=np.int64,
                                    count=table.n_rows)
                known = codes >= 0
                unseen += int((~known).sum())
                X[np.flatnonzero(known), col + codes[known]] = 1.0
                col += len(f["categories"])
        return X, unseen

    def encode_target(self, table: Table) -> np.ndarray:
        """Class indices (int64) or the standardized regression target (float64), shape (n,)."""
        info = self.target_info
        j = table.index(info["name"], "target column")
        table.check([], target=j)
        if info["task"] == "regression":
            return (table.numbers(j) - info["mean"]) / info["scale"]
        values = table.strings(j)
        numbers = None
        if all(c.lstrip("-").isdigit() for c in info["classes"]):
            try:
                numbers = table.numbers(j)
            except CsvError:
                numbers = None
        labels = self._canonical_labels(values, numbers)
        lookup = {c: k for k, c in enumerate(info["classes"])}
        codes = np.fromiter((lookup.get(v, -1) for v in labels), dtype=np.int64, count=len(labels))
        if (codes < 0).any():
            i = int(np.argmax(codes < 0))
            shown = ", ".join(info["classes"][:10]) + (", ..." if len(info["classes"]) > 10 else "")
            raise table.error(i, j, f"class {values[i]!r} was not seen in training (classes: {shown})")
        return codes

    def decode(self, output: np.ndarray) -> list[str] | np.ndarray:
        """Network output -> class labels (arg-max) or regression values in the target's units."""
        info = self.target_info
        if info["task"] == "regression":
            return np.asarray(output, dtype=np.float64)[:, 0] * info["scale"] + info["mean"]
        classes = info["classes"]
        return [classes[k] for k in np.asarray(output).argmax(axis=1)]

    # --- saving --------------------------------------------------------------------------
    def get_config(self) -> dict:
        """JSON-able description; ``from_config`` rebuilds the same preprocessor."""
        return {"version": CONFIG_VERSION, "features": self.features, "target": self.target_info,
                "ignore": self.ignore, "categorical": self.categorical}

    @classmethod
    def from_config(cls, config: dict) -> TablePreprocessor:
        if not isinstance(config, dict) or config.get("version") != CONFIG_VERSION:
            raise ConfigError(f"unknown preprocessing config (version {config.get('version')!r})"
                              if isinstance(config, dict) else "preprocessing config must be a dict")
        target = config.get("target")
        pre = cls(target=target["name"] if target else None, categorical=config.get("categorical", ()),
                  ignore=config.get("ignore", ()))
        pre.features = [dict(f) for f in config["features"]]
        pre.target_info = dict(target) if target else None
        if target:
            pre.task = target["task"]
        return pre


def softmax(output: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (class probabilities from a network's logits)."""
    z = np.asarray(output, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def preprocessor_of(net) -> TablePreprocessor | None:
    """The TablePreprocessor stored with a model by ``chainrule train``, or None."""
    config = (getattr(net, "metadata", None) or {}).get("preprocessing")
    return TablePreprocessor.from_config(config) if config else None


def predict_table(net, pre: TablePreprocessor, table: Table, proba: bool = False):
    """Predictions for a table: labels or values, and class probabilities (or None).

    The same path ``chainrule predict`` takes: ``pre.transform`` then ``net.predict``
    (which applies the network's scaler), then ``pre.decode``.
    """
    X, unseen = pre.transform(table)
    output = net.predict(X)
    probabilities = softmax(output) if proba else None
    return pre.decode(output), probabilities, unseen
