"""Import the example scripts in examples/ (they are scripts, not a package)."""

from __future__ import annotations

import importlib.util
import pathlib

_PATH = pathlib.Path(__file__).resolve().parents[1] / "examples" / "make_tiny_cnn.py"
_spec = importlib.util.spec_from_file_location("make_tiny_cnn", _PATH)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

tiny_cnn = _module.tiny_cnn
main = _module.main
