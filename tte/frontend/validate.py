"""Validate an ONNX model the way onnxruntime does, before lifting it: one clear line per problem."""

from __future__ import annotations

import onnx


def check(model: onnx.ModelProto, path: str) -> None:
    """Raise :class:`tte.errors.ModelFileError` / :class:`UnsupportedModelError` for what onnxruntime rejects."""
