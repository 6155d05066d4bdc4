"""Byte sizes as users write them (256k, 256KB, 1m, 1MiB, 262144; K = 1024), and the checks of the Python API's
arguments: each wrong argument is one :class:`TteError` line that names it, never a traceback from deep inside."""

from __future__ import annotations

import math
import numbers
import os
import re
from fractions import Fraction

from .errors import TteError

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}
# A number without a unit is bytes; below this it is refused as a likely missing unit (`--sram 256` is 256 bytes,
# no training step fits that): say `256k`, or `512B` for a size that really is that small.
BARE_MINIMUM = 1024
MAX_SIZE = 4 * 1024**3  # a Cortex-M addresses 4 GB
SIZE_HELP = ("a number with a unit: 256k, 320KB, 1m (K = 1024); a number without one is bytes and must be at least "
             f"{BARE_MINIMUM} (write 512B for a smaller size)")


def parse_size(text: str | int, what: str = "size") -> int:
    """Bytes from ``256k``, ``320KB``, ``1.5m``, ``262144`` or an int.  Refused, with one line each: no number,
    an unknown unit, zero or negative sizes, fractional bytes (``0.5``, ``0.3k``), sizes over 4 GB and a bare
    number below 1024 (most likely a missing unit: ``256`` is 256 bytes, not 256 KB)."""
    if isinstance(text, bool) or not isinstance(text, (str, numbers.Integral)):
        raise TteError(f"{what} must be a size like '256k' or a number of bytes, got {type(text).__name__} "
                       f"{text!r}")
    if isinstance(text, numbers.Integral):
        value, unit = Fraction(int(text)), "b"
    else:
        m = re.fullmatch(r"\s*([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)\s*([a-zA-Z]*)\s*", text)
        if not m or m.group(2).lower() not in _UNITS:
            raise TteError(f"{what} '{text}' is not a size like 256k, 256KB, 1m or 262144")
        value, unit = Fraction(m.group(1)) * _UNITS[m.group(2).lower()], m.group(2)
    if value <= 0:
        raise TteError(f"{what} must be positive, got '{text}'")
    if value.denominator != 1:
        raise TteError(f"{what} '{text}' is {float(value):g} bytes: a size is a whole number of bytes")
    if value > MAX_SIZE:
        raise TteError(f"{what} '{text}' is more than 4 GB, the most a Cortex-M addresses")
    if unit == "" and value < BARE_MINIMUM:
        raise TteError(f"{what} '{text}' would be {int(value)} bytes; did you mean {text.strip()}k? (a number "
                       f"without a unit is bytes; write {text.strip()}B if you mean bytes)")
    return int(value)


def kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


# -- argument checks of the Python API ---------------------------------------------------------------------------------
MAX_CLASSES = 65535
SEED_LIMIT = 2**32  # the C keeps the seed of stochastic rounding as a uint32_t


def check_int(value, what: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int: an integer (Python or numpy; not a bool, not 2.7) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TteError(f"{what} must be an integer, got {type(value).__name__} {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        bounds = f"between {low} and {high}" if low is not None and high is not None else \
            (f"at least {low}" if low is not None else f"at most {high}")
        raise TteError(f"{what} must be {bounds}, got {v}")
    return v


def check_number(value, what: str) -> float:
    """``value`` as a finite float (an int or a float, not a bool or a string)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TteError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise TteError(f"{what} must be finite, got {v}")
    return v


def check_bool(value, what: str) -> bool:
    """``value`` as a bool: True or False (numpy's too), not 1 or "yes"."""
    if type(value).__name__ not in ("bool", "bool_"):
        raise TteError(f"{what} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_classes(classes) -> int | None:
    """``classes=N`` of a new head: None, or an integer in [1, 65535]."""
    if classes is None:
        return None
    return check_int(classes, "classes", 1, MAX_CLASSES)


def check_path(path, what: str = "model") -> str:
    """A file path: a str or an os.PathLike, not empty."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TteError(f"{what} must be a file path (str or pathlib.Path), got {type(path).__name__} {path!r}")
    p = os.fspath(path)
    if not isinstance(p, str) or not p.strip():
        raise TteError(f"{what} must be a file path, got {path!r}")
    return p


def check_input_shape(input_shape):
    """``input_shape``: None, one shape (a sequence of positive ints) or a mapping input name -> shape."""
    if input_shape is None:
        return None

    def shape(s, what):
        if isinstance(s, (str, bytes)) or not hasattr(s, "__len__") or not len(s):
            raise TteError(f"{what} must be a shape like (1, 3, 128, 128), got {s!r}")
        return tuple(check_int(d, f"{what}: dimension", 1) for d in s)

    if isinstance(input_shape, dict):
        for name in input_shape:
            if not isinstance(name, str):
                raise TteError(f"input_shape keys must be input names (str), got {name!r}")
        return {name: shape(s, f"input_shape['{name}']") for name, s in input_shape.items()}
    return shape(input_shape, "input_shape")
