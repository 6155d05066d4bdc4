"""Build emitted C with the system compiler and call it from Python (ctypes)."""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import itertools
import os
import pathlib
import platform
import stat
import subprocess
import tempfile

import numpy as np

from ..errors import TteError
from ..ir import Graph
from . import state as st
from .c_train import cached_prefixes, frontier_layout

CFLAGS = ["-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion", "-Werror"]
SANITIZE = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
# Programs built for this machine (NativeProgram, NativeInference) add these to CFLAGS: -funroll-loops, and the
# host's vector units (-march=native) with generic tuning.  The float backward kernels keep each output element in
# its own vector lane (runtime_c/src/tte_conv_grad_input_f32.c, tte_grad_core.h), so wider vectors stay exact and
# go faster: on the three paper models (benchmarks/speed.py; an AMD EPYC with AVX-512) a cached step 15 % and a
# whole step 3-6 %, with the same losses and state bits.  -march=native's own tuning (znver3 there) made the int8
# forward kernels 35 % slower, hence -mtune=generic; -O3 was 1.5-2x slower (its loop transformations undo the
# kernels' tiles).  -fvect-cost-model=dynamic lets -O2 vectorize loops whose trip count is not a multiple of the
# vector length (the int8 forward's runs of positions: interior rows of 30 or 62 outputs), with an epilogue: an
# mbv2 step (99kb, benchmarks/speed.py's build) went from 5.8 to 4.6 ms.  -ffp-contract=off stays (no fused
# multiply-add), and nothing like -ffast-math: float32 results must stay those of the reference.
HOST_SPEED = ["-funroll-loops", "-march=native", "-mtune=generic", "-fvect-cost-model=dynamic"]
SHARED_FLAGS = [*CFLAGS, *HOST_SPEED, "-fPIC"]  # a shared library of an emitted program (compile_shared)


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


_built = itertools.count()


def library_path(directory: pathlib.Path) -> pathlib.Path:
    """A new file name for a shared library built in ``directory``: the dynamic loader keeps one copy of a library
    per path and process, so a second build loaded from the same path would silently run the first one's code
    (and share its trained state)."""
    return directory / f"libtte_model-{os.getpid()}-{next(_built)}.so"


_GCC: dict[str, str] = {}  # `gcc --version` and the CPU's flags (-march=native), asked once per process


def _machine() -> str:
    if "gcc" not in _GCC:
        _GCC["gcc"] = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
        try:
            with open("/proc/cpuinfo") as f:
                _GCC["cpu"] = next((line for line in f if line.startswith(("flags", "Features"))), "")
        except OSError:
            _GCC["cpu"] = ""
    return "\0".join([_GCC["gcc"], _GCC["cpu"], platform.node(), platform.machine()])


def _cache_root() -> pathlib.Path | None:
    """This user's archive cache under the temporary directory, created private (0700); None when it exists but is
    not this user's own private directory (another user could have planted objects in it): then nothing is cached."""
    root = pathlib.Path(tempfile.gettempdir()) / f"tte-runtime-{os.getuid()}"
    try:
        root.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(root)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return root


def runtime_archive(src_dir: pathlib.Path, flags: list[str]) -> pathlib.Path:
    """The emitted runtime's sources (``src_dir/runtime``) compiled with ``flags`` into an archive once per machine
    and compiler: kept in a private directory under the temporary directory, keyed by a SHA-256 of the runtime's
    files, the flags, ``gcc --version`` and the CPU (``-march=native``); a lock lets one process compile while the
    others wait.  The bytes hashed are the bytes compiled (copied into the build directory first).  Each runtime file
    is its own translation unit either way: the objects are those a whole build makes."""
    files = {f.relative_to(src_dir / "runtime").as_posix(): f.read_bytes()
             for f in sorted((src_dir / "runtime").rglob("*")) if f.is_file()}
    h = hashlib.sha256("\0".join([*flags, _machine()]).encode())
    for name, data in files.items():
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    root = _cache_root()
    out = (root / h.hexdigest()[:24]) if root is not None else pathlib.Path(tempfile.mkdtemp(prefix="tte-runtime-"))
    archive = out / "libtte_runtime.a"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not archive.exists():
            with tempfile.TemporaryDirectory(dir=out) as tmp:
                build = pathlib.Path(tmp)
                for name, data in files.items():
                    (build / "runtime" / name).parent.mkdir(parents=True, exist_ok=True)
                    (build / "runtime" / name).write_bytes(data)
                sources = [str(p) for p in sorted((build / "runtime" / "src").glob("*.c"))]
                _gcc(["gcc", *flags, f"-I{build / 'runtime' / 'include'}", "-c", *sources], build)
                objects = sorted(p.name for p in build.glob("*.o"))
                _gcc(["ar", "rcs", "libtte_runtime.a", *objects], build)
                os.replace(build / "libtte_runtime.a", archive)
    return archive


def _gcc(cmd: list[str], cwd: pathlib.Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TteError(f"the C compiler failed:\n{proc.stderr.strip()}")


def compile_shared(src_dir: pathlib.Path, out: pathlib.Path, extra: list[str] | None = None) -> pathlib.Path:
    """A shared library of the emitted program in ``src_dir``: its own sources compiled here, the runtime from
    :func:`runtime_archive` (compiled once per set of flags)."""
    flags = [*SHARED_FLAGS, *(extra or [])]
    runtime = runtime_archive(src_dir, flags)
    _gcc(["gcc", *flags, "-shared", f"-I{src_dir}", f"-I{src_dir / 'runtime' / 'include'}",
          *[str(p) for p in sorted(src_dir.glob("*.c"))], str(runtime), "-o", str(out), "-lm"])
    return out


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
    lib = compile_shared(d, library_path(d))
    return NativeInference(g, d, lib)


class NativeProgram:
    """A compiled training program running as C: ``train_step``, ``infer``, ``predict``, its state, and its state
    blob (``state_blob`` / ``load_state``, through the C's own ``tte_state_save`` / ``tte_state_load``).

    The cached frozen prefix (``tte_prefix_s8`` ..., see tte_model.h): ``prefix(q)`` runs the training step's calls
    that read nothing but the input and returns the tensors the rest of the step reads (``frontier_bytes`` int8
    bytes), ``train_step_cached(frontier, label)`` runs the rest: the same loss and state, bit for bit, as
    ``train_step_s8(q, label)``.  ``infer_prefix`` / ``predict_cached`` do the same for ``predict``
    (``infer_frontier_bytes``).  :func:`tte.trainer.fit` uses them to run each image's prefix once."""

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
        lib.tte_set_learning_rate.argtypes = [ctypes.c_float]
        lib.tte_learning_rate_now.restype = ctypes.c_float
        lib.tte_tensor_data.argtypes = [ctypes.c_int32]
        lib.tte_tensor_data.restype = ctypes.c_void_p
        lib.tte_state_save.argtypes = lib.tte_state_load.argtypes = [ctypes.POINTER(st.CStateStorage)]
        lib.tte_prefix_s8.argtypes = lib.tte_infer_prefix_s8.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.tte_train_step_cached.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p]
        lib.tte_predict_cached.argtypes = [ctypes.c_void_p]
        lib.tte_predict_cached.restype = ctypes.c_int32
        fwd = program.forward
        self.initial = {k: v.copy() for k, v in program.state.items()}
        self.layout = st.state_layout(program)
        self.fingerprint = program.fingerprint if hasattr(program, "fingerprint") else st.fingerprint(program)
        self.in_shape = fwd[fwd.inputs[0]].shape
        self.out_shape = fwd[fwd.outputs[0]].shape
        # the frozen prefixes the C was emitted with, and the bytes of their frontiers (TTE_FRONTIER_BYTES, ...)
        self.prefixes = cached_prefixes(program)
        self._frontier = (
            sum(size for _, size in frontier_layout(program.train, program.memory.root, self.prefixes[0])),
            sum(size for _, size in frontier_layout(program.inference[0], program.inference[1], self.prefixes[1])))

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next step (the C's tte_learning_rate_now())."""
        return float(self.lib.tte_learning_rate_now())

    def set_learning_rate(self, lr: float) -> None:
        """The C's tte_set_learning_rate: the rate of the next steps (as :meth:`tte.Program.set_learning_rate`)."""
        if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, (int, float, np.floating, np.integer)):
            raise TteError(f"learning rate must be a number, got {type(lr).__name__}")
        with np.errstate(over="ignore"):
            value = float(np.float32(lr))
        if self.lib.tte_set_learning_rate(value) != 0:
            raise TteError(f"learning rate must be positive and finite (as a float32), got {lr}")

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
    def frontier_bytes(self) -> int:
        """Bytes of the training step's frontier (``prefix``'s result, TTE_FRONTIER_BYTES).  When the frozen prefix
        computes nothing (``prefixes[0].work`` 0: the first layer trains) the frontier is the int8 input itself and
        the cached step costs what ``train_step_s8`` does; :func:`tte.trainer.fit` then does not cache."""
        return self._frontier[0]

    @property
    def infer_frontier_bytes(self) -> int:
        """Bytes of inference's frontier (``infer_prefix``'s result, TTE_INFER_FRONTIER_BYTES)."""
        return self._frontier[1]

    def _frontier_bytes(self, frontier: np.ndarray, size: int, what: str) -> np.ndarray:
        frontier = np.ascontiguousarray(frontier).view(np.int8).reshape(-1)
        if frontier.size != size:
            raise TteError(f"{what} takes a frontier of {size} bytes, got {frontier.size}")
        return frontier

    def prefix(self, q: np.ndarray) -> np.ndarray:
        """The training step's frontier for an int8 input: its frozen prefix's tensors that the rest of the step
        reads, as int8 bytes (tte_prefix_s8).  With no prefix to run (``frontier_bytes`` 0) it is the input."""
        q = np.ascontiguousarray(q, dtype=np.int8).reshape(self.in_shape)
        out = np.empty(self._frontier[0], np.int8)
        if self.lib.tte_prefix_s8(q.ctypes.data, out.ctypes.data) != 0:
            raise TteError("tte_prefix_s8 failed")
        return out

    def train_step_cached(self, frontier: np.ndarray, label: int) -> float:
        """One step from a frontier of :meth:`prefix` (tte_train_step_cached): the loss and update of
        ``train_step_s8`` on its input, bit for bit."""
        frontier = self._frontier_bytes(frontier, self._frontier[0], "train_step_cached")
        loss = np.zeros(1, np.float32)
        if self.lib.tte_train_step_cached(frontier.ctypes.data, int(label), loss.ctypes.data) != 0:
            raise TteError("tte_train_step_cached failed")
        return float(loss[0])

    def infer_prefix(self, q: np.ndarray) -> np.ndarray:
        """Inference's frontier for an int8 input, as int8 bytes (tte_infer_prefix_s8)."""
        q = np.ascontiguousarray(q, dtype=np.int8).reshape(self.in_shape)
        out = np.empty(self._frontier[1], np.int8)
        if self.lib.tte_infer_prefix_s8(q.ctypes.data, out.ctypes.data) != 0:
            raise TteError("tte_infer_prefix_s8 failed")
        return out

    def predict_cached(self, frontier: np.ndarray) -> int:
        """The top-1 class from a frontier of :meth:`infer_prefix` (tte_predict_cached): ``predict``'s."""
        frontier = self._frontier_bytes(frontier, self._frontier[1], "predict_cached")
        top = self.lib.tte_predict_cached(frontier.ctypes.data)
        if top < 0:
            raise TteError("tte_predict_cached failed")
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
    lib = compile_shared(d, library_path(d), extra_flags)
    return NativeProgram(program, d, lib)
