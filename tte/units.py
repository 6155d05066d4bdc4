"""Byte sizes as users write them: 256k, 256KB, 1m, 1MiB, 262144 (K = 1024)."""

from __future__ import annotations

import re

from .errors import TteError

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}


def parse_size(text: str, what: str = "size") -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise TteError(f"{what} '{text}' is not a size like 256k, 256KB, 1m or 262144")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value <= 0:
        raise TteError(f"{what} must be positive, got '{text}'")
    return int(value)


def kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"
