"""Build emitted C with the system compiler and call it from Python (ctypes)."""

from __future__ import annotations

import ctypes
import pathlib
import subprocess
import tempfile

import numpy as np

from ..errors import TteError
from ..ir import Graph

CFLAGS = ["-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror"]
SANITIZE = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def compile_c(src_dir: pathlib.Path, out: pathlib.Path, extra: list[str] | None = None) -> pathlib.Path:
    """gcc the emitted sources of ``src_dir`` (its *.c and the runtime's) into ``out``."""
    sources = [str(p) for p in sorted(src_dir.glob("*.c"))] + [str(p) for p in sorted((src_dir / "runtime" /
                                                                                         "src").glob("*.c"))]
    cmd = ["gcc", *CFLAGS, *(extra or []), f"-I{src_dir}", f"-I{src_dir / 'runtime' / 'include'}", *sources,
           "-o", str(out), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TteError(f"the C compiler failed:\n{proc.stderr.strip()}")
    return out


def compile_shared(src_dir: pathlib.Path, out: pathlib.Path, extra: list[str] | None = None) -> pathlib.Path:
    return compile_c(src_dir, out, ["-fPIC", "-shared", *(extra or [])])


def _infer_f32(lib, x: np.ndarray, in_shape, out_shape) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(in_shape)
    y = np.zeros(out_shape, np.float32)
    if lib.tte_infer_f32(x.ctypes.data, y.ctypes.data) != 0:
        raise TteError("tte_infer_f32 failed")
    return y


class NativeInference:
    """Inference with the emitted C, compiled for this machine."""

    def __init__(self, g: Graph, directory: pathlib.Path, library: pathlib.Path):
        self.graph = g
        self.directory = directory
        self.lib = ctypes.CDLL(str(library))
        self.lib.tte_infer.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.lib.tte_infer_f32.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.in_shape = g[g.inputs[0]].shape
        self.out_shape = g[g.outputs[0]].shape

    def infer(self, x: np.ndarray) -> np.ndarray:
        return _infer_f32(self.lib, x, self.in_shape, self.out_shape)

    def infer_s8(self, q: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(q, dtype=np.int8)
        y = np.zeros(int(np.prod(self.out_shape)), np.int8)
        if self.lib.tte_infer(q.ctypes.data, y.ctypes.data) != 0:
            raise TteError("tte_infer failed")
        return y


def build_native(g: Graph, directory: str | None = None) -> NativeInference:
    from .c_emitter import emit_inference

    d = pathlib.Path(directory or tempfile.mkdtemp(prefix="tte_native_"))
    emit_inference(g, d)
    lib = compile_shared(d, d / "libtte_model.so")
    return NativeInference(g, d, lib)


class NativeProgram:
    """A compiled training program running as C: ``train_step``, ``infer``, and its state."""

    def __init__(self, program, directory: pathlib.Path, library: pathlib.Path):
        self.program = program
        self.directory = directory
        self.lib = ctypes.CDLL(str(library))
        self.lib.tte_train_step.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p]
        self.lib.tte_infer_f32.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.lib.tte_state_data.argtypes = [ctypes.c_int32]
        self.lib.tte_state_data.restype = ctypes.c_void_p
        fwd = program.forward
        self.initial = {k: v.copy() for k, v in program.state.items()}
        self.in_shape = fwd[fwd.inputs[0]].shape
        self.out_shape = fwd[fwd.outputs[0]].shape

    def train_step(self, x: np.ndarray, label: int) -> float:
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(self.in_shape)
        loss = np.zeros(1, np.float32)
        if self.lib.tte_train_step(x.ctypes.data, int(label), loss.ctypes.data) != 0:
            raise TteError("tte_train_step failed")
        return float(loss[0])

    def infer(self, x: np.ndarray) -> np.ndarray:
        return _infer_f32(self.lib, x, self.in_shape, self.out_shape)

    def state(self) -> dict[str, np.ndarray]:
        """Copies of the C state arrays (trained parameters, optimizer state), in the program's layout."""
        out = {}
        for i, name in enumerate(self.program.train.state):
            v = self.program.train[name]
            shape = list(v.shape)
            p = self.program.params.get(name)
            split = p is not None and p.kind == "weight" and p.channels < v.shape[p.axis]
            if split:  # C holds only the trained slice; the rest never changes
                shape[p.axis] = p.channels
            ptr = self.lib.tte_state_data(i)
            n = int(np.prod(shape, dtype=np.int64)) if shape else 1
            buf = (ctypes.c_byte * (n * np.dtype(v.dtype).itemsize)).from_address(ptr)
            value = np.frombuffer(bytes(buf), dtype=v.dtype).reshape(shape).copy()
            if split:
                rest = np.take(self.initial[name], range(p.channels, v.shape[p.axis]), axis=p.axis)
                value = np.concatenate([value, rest], axis=p.axis)
            out[name] = value
        return out


def build_program(program, directory: str | None = None, extra_flags: list[str] | None = None) -> NativeProgram:
    from .c_train import emit_program

    d = pathlib.Path(directory or tempfile.mkdtemp(prefix="tte_native_"))
    emit_program(program, d)
    lib = compile_shared(d, d / "libtte_model.so", extra_flags)
    return NativeProgram(program, d, lib)
