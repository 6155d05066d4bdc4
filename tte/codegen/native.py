"""Build emitted C with the system compiler and call it from Python (ctypes)."""

from __future__ import annotations

import ctypes
import pathlib
import subprocess
import tempfile

import numpy as np

from ..errors import TteError
from ..ir import Graph
from . import state as st

CFLAGS = ["-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion", "-Werror"]
SANITIZE = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
# Programs built for this machine (NativeProgram, NativeInference) add these to CFLAGS: measured on the three
# paper models, -funroll-loops makes a training step 4-7 % faster with the same losses and state bits;
# -O3 and -march=native (AVX-512 here) were slower (benchmarks/speed.py).  -ffp-contract=off stays, and
# nothing like -ffast-math: float32 results must stay those of the reference.
HOST_SPEED = ["-funroll-loops"]


def compile_c(src_dir: pathlib.Path, out: pathlib.Path, extra: list[str] | None = None) -> pathlib.Path:
    """gcc the emitted sources of ``src_dir`` (its *.c and the runtime's) into ``out``."""
    sources = [str(p) for p in sorted(src_dir.glob("*.c"))] + [str(p) for p in sorted((src_dir / "runtime" /
                                                                                         "src").glob("*.c"))]
    cmd = ["gcc", *CFLAGS, *HOST_SPEED, *(extra or []), f"-I{src_dir}", f"-I{src_dir / 'runtime' / 'include'}",
           *sources, "-o", str(out), "-lm"]
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
    """A compiled training program running as C: ``train_step``, ``infer``, ``predict``, its state, and its state
    blob (``state_blob`` / ``load_state``, through the C's own ``tte_state_save`` / ``tte_state_load``)."""

    def __init__(self, program, directory: pathlib.Path, library: pathlib.Path):
        self.program = program
        self.directory = directory
        self.lib = ctypes.CDLL(str(library))
        lib = self.lib
        lib.tte_train_step.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p]
        lib.tte_train_step_s8.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p]
        lib.tte_infer_f32.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.tte_infer_s8.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.tte_predict.argtypes = [ctypes.c_void_p]
        lib.tte_predict.restype = ctypes.c_int32
        lib.tte_steps.restype = ctypes.c_uint64
        lib.tte_tensor_data.argtypes = [ctypes.c_int32]
        lib.tte_tensor_data.restype = ctypes.c_void_p
        lib.tte_state_save.argtypes = lib.tte_state_load.argtypes = [ctypes.POINTER(st.CStateStorage)]
        fwd = program.forward
        self.initial = {k: v.copy() for k, v in program.state.items()}
        self.layout = st.state_layout(program)
        self.fingerprint = program.fingerprint if hasattr(program, "fingerprint") else st.fingerprint(program)
        self.in_shape = fwd[fwd.inputs[0]].shape
        self.out_shape = fwd[fwd.outputs[0]].shape

    def train_step(self, x: np.ndarray, label: int) -> float:
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(self.in_shape)
        loss = np.zeros(1, np.float32)
        if self.lib.tte_train_step(x.ctypes.data, int(label), loss.ctypes.data) != 0:
            raise TteError("tte_train_step failed")
        return float(loss[0])

    def train_step_s8(self, q: np.ndarray, label: int) -> float:
        """One step on an int8 input (quantized with the model's input scale and zero point)."""
        q = np.ascontiguousarray(q, dtype=np.int8).reshape(self.in_shape)
        loss = np.zeros(1, np.float32)
        if self.lib.tte_train_step_s8(q.ctypes.data, int(label), loss.ctypes.data) != 0:
            raise TteError("tte_train_step_s8 failed")
        return float(loss[0])

    def infer(self, x: np.ndarray) -> np.ndarray:
        return _infer_f32(self.lib, x, self.in_shape, self.out_shape)

    def infer_s8(self, q: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(q, dtype=np.int8).reshape(self.in_shape)
        y = np.zeros(self.out_shape, np.float32)
        if self.lib.tte_infer_s8(q.ctypes.data, y.ctypes.data) != 0:
            raise TteError("tte_infer_s8 failed")
        return y

    def predict(self, q: np.ndarray) -> int:
        """The C's top-1 class of an int8 input."""
        q = np.ascontiguousarray(q, dtype=np.int8).reshape(self.in_shape)
        top = self.lib.tte_predict(q.ctypes.data)
        if top < 0:
            raise TteError("tte_predict failed")
        return int(top)

    @property
    def steps(self) -> int:
        """Steps trained (the C's tte_steps())."""
        return int(self.lib.tte_steps())

    def state(self) -> dict[str, np.ndarray]:
        """Copies of the C state arrays (trained parameters, optimizer state), in the program's layout."""
        out = {}
        for i, t in enumerate(self.layout):
            buf = (ctypes.c_byte * t.nbytes).from_address(self.lib.tte_tensor_data(i))
            part = np.frombuffer(bytes(buf), dtype=t.dtype).reshape(t.shape)
            out[t.name] = t.whole(part, self.initial[t.name])  # C holds only a split weight's trained slice
        return out

    def state_blob(self) -> bytes:
        """The state blob the C's tte_state_save writes (into an empty storage: slot 0, sequence 1)."""
        storage = st.MemoryStorage(st.slot_bytes(self.layout))
        status = self.lib.tte_state_save(ctypes.byref(storage.struct))
        if status != st.OK:
            raise TteError(f"tte_state_save failed: {st.STATUS.get(status, status)}")
        return bytes(storage.data[:st.blob_bytes(self.layout)])

    def load_state(self, blob: bytes) -> None:
        """Load a state blob (or a storage of two slots) with the C's tte_state_load; raises
        :class:`tte.codegen.state.StateBlobError` with the C's status when it refuses it."""
        data = bytes(blob)
        slot = st.slot_bytes(self.layout)
        if len(data) > 2 * slot:  # slots larger than the blob: hand the C the newest blob alone
            found = st.decode(data, self.layout, self.fingerprint)
            data = data[found.offset:found.offset + st.blob_bytes(self.layout)]
        storage = st.MemoryStorage(slot, data=data + b"\xff" * (2 * slot - len(data)))
        status = self.lib.tte_state_load(ctypes.byref(storage.struct))
        if status != st.OK:
            raise st.StateBlobError(f"tte_state_load refused the state: {st.STATUS.get(status, status)}", status)


def build_program(program, directory: str | None = None, extra_flags: list[str] | None = None) -> NativeProgram:
    from .c_train import emit_program

    d = pathlib.Path(directory or tempfile.mkdtemp(prefix="tte_native_"))
    emit_program(program, d)
    lib = compile_shared(d, d / "libtte_model.so", extra_flags)
    return NativeProgram(program, d, lib)
