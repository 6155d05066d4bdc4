"""IR -> C: one emitter per op, deterministic names, one static arena, no malloc."""

from .c_emitter import RUNTIME_DIR, emit_inference
from .native import NativeInference, build_native

__all__ = ["RUNTIME_DIR", "NativeInference", "build_native", "emit_inference"]
