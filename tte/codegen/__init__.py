"""IR -> C: one emitter per op, deterministic names, one static arena, no malloc."""

from .c_emitter import RUNTIME_DIR, emit_inference
from .native import NativeInference, NativeProgram, build_native, build_program

__all__ = ["RUNTIME_DIR", "NativeInference", "NativeProgram", "build_native", "build_program", "emit_inference"]
