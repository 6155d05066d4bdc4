"""Frontends: int8 models as distributed -> tte IR.

``load`` takes ONNX (QDQ and QOperator, :mod:`.onnx_frontend`) and TFLite flatbuffers
(:mod:`.tflite_frontend`), told apart by the file's contents (a ``.tflite`` file carries the ``TFL3``
identifier), not by its name.
"""

from __future__ import annotations

import os

from ..errors import ModelFileError
from ..ir import Graph
from ..ir.facts import ARITHMETICS
from ..units import check_input_shape, check_path
from .onnx_frontend import SUPPORTED_OPS
from .onnx_frontend import load as load_onnx
from .reader import InputShapes

__all__ = ["SUPPORTED_OPS", "is_tflite", "load"]


def is_tflite(path: str | os.PathLike) -> bool:
    """True for a TFLite flatbuffer: bytes 4..8 hold the file identifier ``TFL3``."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head[4:8] == b"TFL3"


def load(path: str | os.PathLike, input_shape: InputShapes = None, arithmetic: str | None = None) -> Graph:
    """Load an int8 model (ONNX or TFLite) as a verified tte :class:`Graph`.

    ``input_shape`` fixes dynamic input dimensions (a shape, or a mapping from input name to shape).
    ``arithmetic`` chooses how int8 ops requantize: ``"tflite"`` (TFLite's reference kernels: fixed-point
    multipliers, the default for ``.tflite`` files), ``"tflite-micro"`` (TFLite Micro and CMSIS-NN: ``"tflite"``
    but for fully connected layers, requantized as convs, and LOGISTIC, TFLite Micro's integer algorithm) or
    ``"onnxruntime"`` (float32 multipliers, the default for ONNX).
    """
    path, input_shape = check_path(path), check_input_shape(input_shape)  # types and ranges: one line each
    if arithmetic is not None and arithmetic not in ARITHMETICS:
        raise ModelFileError(f"unknown arithmetic '{arithmetic}'; choose one of {', '.join(ARITHMETICS)}")
    if is_tflite(path):
        from .tflite_frontend import load as load_tflite

        return load_tflite(path, input_shape=input_shape, arithmetic=arithmetic or "tflite")
    return load_onnx(path, input_shape=input_shape, arithmetic=arithmetic or "onnxruntime")
