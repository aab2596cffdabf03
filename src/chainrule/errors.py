"""The errors chainrule raises at its public boundary.

Every message names the layer or argument, what was expected and what came.
"""

from __future__ import annotations


class ChainruleError(Exception):
    """Base class of every error chainrule raises on purpose."""


class ShapeError(ChainruleError, ValueError):
    """An array has the wrong number of dimensions or the wrong size."""


class DataError(ChainruleError, ValueError):
    """Data holds values that cannot be used (NaN, inf, labels out of range)."""


class ConfigError(ChainruleError, ValueError):
    """An argument has a value outside what the function accepts."""


class TrainingError(ChainruleError, RuntimeError):
    """Training cannot go on (the loss became NaN or inf)."""


class FileFormatError(ChainruleError, ValueError):
    """A file is not a chainrule file, or is damaged."""


class InputTypeError(ChainruleError, TypeError):
    """An argument is of a kind chainrule cannot take at all (a sparse matrix, a scalar)."""


class SaveError(ChainruleError, OSError):
    """A file could not be written (a folder as the target, a missing folder, a full disk, no
    permission); the file already at the target, if any, is left as it was."""
