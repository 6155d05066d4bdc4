"""Frontends: ONNX -> tte IR."""

from .onnx_frontend import SUPPORTED_OPS, load

__all__ = ["SUPPORTED_OPS", "load"]
