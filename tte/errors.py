"""User-facing errors.

Every problem caused by the user's input (a bad file, an op tte cannot take, a budget that cannot be
met) is raised as a :class:`TteError` subclass whose message is one line saying what, where and what
to do.  The CLI prints that line and exits non-zero; it never shows a traceback for these.
"""


class TteError(Exception):
    """Base class of every error tte reports to a user."""

    exit_code = 1


class ModelFileError(TteError):
    """The file is missing, unreadable, truncated or not ONNX."""


class UnsupportedModelError(TteError):
    """The model is valid ONNX but uses something tte does not support (an op, an attribute)."""


class DynamicShapeError(TteError):
    """A graph input has a dimension that is not fixed."""


class FloatModelError(TteError):
    """The model was never quantized."""


class IRError(TteError):
    """An IR graph is inconsistent (raised by the verifier)."""
