"""A CSV file uploaded to the playground: two numeric feature columns and a label.

The file goes through the command line's reader (:mod:`chainrule.csvio`), so it is checked
the same way and its errors read the same, naming the uploaded file, the line and the column::

    points.csv, line 7, column 2 ('y'): expected a number, got 'abc'

The label column is the one named, or the last one. A label of text or a few whole numbers
is a classification (2 or 3 classes, drawn in the page's colours); any other numbers are a
regression target, standardized as ``chainrule train`` does. The two feature columns are
mapped linearly onto the page's square [-6, 6]² (each column's minimum to -6, its maximum to 6)
so the heat maps and the features x², sin x, ... work on any units.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

from ..csvio import CsvError, TablePreprocessor, read_table

MAX_UPLOAD = 1_000_000   # bytes
MAX_ROWS = 5000


@dataclass
class Uploaded:
    """An uploaded data set, ready for the page."""

    filename: str
    points: np.ndarray            # (n, 2) float64 in [-6, 6]²
    target: np.ndarray            # class indices (int64) or standardized values (float64)
    task: str                     # "classification" or "regression"
    classes: list = field(default_factory=list)
    columns: list = field(default_factory=list)   # the two feature columns' names
    label: str = ""
    ranges: list = field(default_factory=list)    # [(min, max)] of each feature column in its units


def display_name(filename: str | None) -> str:
    """The uploaded file's base name, as error messages show it."""
    name = os.path.basename((filename or "").replace("\\", "/")).strip()
    name = "".join(c for c in name if c.isprintable())[:100]
    return name or "upload.csv"


def read_upload(body: bytes, filename: str | None = None, label: str | None = None) -> Uploaded:
    """Parse an uploaded CSV file; a :class:`chainrule.csvio.CsvError` names what is wrong."""
    name = display_name(filename)
    if len(body) > MAX_UPLOAD:
        raise CsvError(name, None, None, f"the file has {len(body):,} bytes; the playground takes at most"
                       f" {MAX_UPLOAD:,}")
    with tempfile.TemporaryDirectory(prefix="chainrule-upload-") as folder:
        path = os.path.join(folder, "upload.csv")
        with open(path, "wb") as f:
            f.write(body)
        try:
            table = read_table(path)
        except CsvError as exc:  # name the user's file, not the temporary one
            raise CsvError(name, exc.line, exc.column, exc.reason, exc.name) from None
    table.path = name
    header = table.header
    if len(header) != 3:
        raise CsvError(name, 1, None, f"expected three columns, two features and a label; the header has"
                       f" {len(header)}: {', '.join(header[:10])}")
    label = label or header[-1]
    if table.n_rows > MAX_ROWS:
        raise CsvError(name, None, None, f"the file has {table.n_rows:,} rows; the playground takes at most"
                       f" {MAX_ROWS:,}")
    pre = TablePreprocessor(target=label).fit(table)
    for feature in pre.features:
        if feature["kind"] != "numeric":
            j = header.index(feature["name"])
            raise CsvError(name, None, j + 1, "expected numbers in a feature column, got text"
                           f" ({', '.join(feature['categories'][:3])}, ...)", feature["name"])
    X, _ = pre.transform(table)
    target = pre.encode_target(table)
    classes = list(pre.classes or [])
    if pre.task == "classification" and len(classes) > 3:
        raise CsvError(name, None, header.index(label) + 1, f"the label has {len(classes)} classes; the"
                       " playground draws 2 or 3", label)
    lo, hi = X.min(axis=0), X.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    points = (X - lo) / span * 12.0 - 6.0
    points[:, hi <= lo] = 0.0
    return Uploaded(name, points, target, pre.task, classes, [f["name"] for f in pre.features], label,
                    [(float(a), float(b)) for a, b in zip(lo, hi, strict=True)])
