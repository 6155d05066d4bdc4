"""Training state blobs: what a device keeps of a compiled program, and the bytes it saves.

* :func:`state_layout`: the trained tensors (trained parameters, optimizer state) as the device holds them, in
  the training graph's order: a partially trained weight is only its trained slice (the rest is frozen, in
  flash), and every tensor is in the device's channel order (:mod:`tte.autodiff.channels`), not the model's.
* :func:`fingerprint`: 64 bits of SHA-256 over the compiled program's structure and parameters: the forward graph
  (ops, attributes, value types and quantization, every constant: frozen parameters and the initial values of the
  trained ones), the channel permutations and the state layout.  Training hyperparameters (lr, momentum's
  factor, the seed of stochastic rounding) are left out: a state can continue under other ones.
* :func:`encode` / :func:`decode`: the blob format of ``runtime_c``'s ``tte_state_*`` (``tte_runtime.h`` describes
  it), byte for byte what the C writes.  :func:`decode` takes a single blob or a whole storage of two slots (any
  slot size that is a multiple of :data:`UNIT`): it loads the newest complete blob, like ``tte_state_read``.
* ctypes mirrors of the runtime's state structs and :class:`MemoryStorage`, a storage in a ``bytearray`` for
  :class:`tte.codegen.NativeProgram`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import hashlib
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import TteError

MAGIC = 0x53455454  # "TTES"
VERSION = 1
HEADER_BYTES = 32
CRC_BYTES = 4
UNIT = 32
_HEADER = struct.Struct("<IIIIQQ")  # magic, version, blob bytes, sequence, fingerprint, steps

# tte_state_status
OK, ERROR_ARGUMENT, ERROR_IO, ERROR_EMPTY, ERROR_CORRUPT, ERROR_VERSION, ERROR_MODEL, ERROR_VERIFY = \
    0, -1, -10, -11, -12, -13, -14, -15
STATUS = {OK: "ok", ERROR_ARGUMENT: "argument", ERROR_IO: "io", ERROR_EMPTY: "empty", ERROR_CORRUPT: "corrupt",
          ERROR_VERSION: "version", ERROR_MODEL: "model", ERROR_VERIFY: "verify"}
KINDS = {"weight": 1, "bias": 2, "optimizer": 3}
DTYPES = {"int8": 1, "int32": 2, "float32": 3}


class StateBlobError(TteError):
    """A state blob that cannot be loaded; ``status`` is the runtime's code (``ERROR_EMPTY``, ...)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class StateTensor:
    """One trained tensor as the device holds it."""

    name: str  # ONNX initializer (a trained parameter) or tte's name (optimizer state)
    kind: str  # "weight", "bias" or "optimizer"
    dtype: str  # "int8", "int32" or "float32"
    shape: tuple[int, ...]  # on the device: a split weight's trained slice
    full_shape: tuple[int, ...]  # in the program (tte's layout: a gemm weight is [N, K])
    split_axis: int | None  # the axis of a split weight's trained leading slice

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def device_part(self, value: np.ndarray) -> np.ndarray:
        """The part of the program's value the device holds."""
        value = np.asarray(value, self.dtype).reshape(self.full_shape)
        if self.split_axis is None:
            return value
        return np.take(value, range(self.shape[self.split_axis]), axis=self.split_axis)

    def whole(self, part: np.ndarray, current: np.ndarray) -> np.ndarray:
        """The program's value from the device's part and the frozen rest of ``current``."""
        part = np.asarray(part, self.dtype).reshape(self.shape)
        if self.split_axis is None:
            return part.copy()
        rest = np.take(current, range(self.shape[self.split_axis], self.full_shape[self.split_axis]),
                       axis=self.split_axis)
        return np.concatenate([part, rest], axis=self.split_axis)


def state_layout(program) -> list[StateTensor]:
    """The trained tensors of a compiled :class:`tte.Program`, in the order of its training graph's state."""
    out = []
    for name in program.train.state:
        v = program.train[name]
        p = program.params.get(name)
        shape, axis = tuple(v.shape), None
        if p is not None and p.kind == "weight" and p.channels < v.shape[p.axis]:
            axis = p.axis
            shape = shape[:axis] + (p.channels,) + shape[axis + 1:]
        if len(shape) > 4 or v.dtype not in DTYPES:
            raise TteError(f"state tensor '{name}' ({v.type_str()}) cannot be saved: tte saves int8, int32 and "
                           "float32 tensors of up to 4 dimensions")
        out.append(StateTensor(name, p.kind if p is not None else "optimizer", v.dtype, shape, tuple(v.shape), axis))
    return out


# -- fingerprint ---------------------------------------------------------------------------------------------------
def _feed(h, x) -> None:
    """Feed ``x`` to the hash ``h`` in a canonical, type-tagged form (stable across processes and platforms)."""
    if isinstance(x, np.ndarray):
        a = np.ascontiguousarray(x)
        h.update(b"A" + a.dtype.newbyteorder("<").str.encode() + repr(a.shape).encode())
        h.update(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    elif isinstance(x, np.generic):
        _feed(h, x.item())
    elif x is None or isinstance(x, (bool, int)):
        h.update(b"I" + repr(x).encode() + b";")
    elif isinstance(x, float):
        h.update(b"F" + x.hex().encode() + b";")
    elif isinstance(x, str):
        b = x.encode()
        h.update(b"S%d:" % len(b) + b)
    elif isinstance(x, (list, tuple)):
        h.update(b"L%d:" % len(x))
        for y in x:
            _feed(h, y)
    elif isinstance(x, dict):
        h.update(b"D%d:" % len(x))
        for k in sorted(x, key=str):
            _feed(h, str(k))
            _feed(h, x[k])
    elif isinstance(x, (set, frozenset)):
        _feed(h, sorted(x, key=repr))
    elif isinstance(x, (bytes, bytearray)):
        h.update(b"B%d:" % len(x) + bytes(x))
    elif isinstance(x, enum.Enum):
        _feed(h, [type(x).__name__, x.value])
    elif dataclasses.is_dataclass(x) and not isinstance(x, type):
        _feed(h, [type(x).__name__, {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}])
    else:
        raise TteError(f"cannot fingerprint a {type(x).__name__} (a bug in tte, please report it)")


def fingerprint(program) -> int:
    """64 bits identifying the compiled program's structure and parameters (see the module docstring)."""
    g = program.forward
    h = hashlib.sha256(b"tte state fingerprint 1\0")
    _feed(h, [list(g.inputs), list(g.outputs)])
    for n in g.nodes:
        _feed(h, [n.op, n.name, list(n.inputs), list(n.outputs), dict(n.attrs)])
    for name in sorted(g.values):
        v = g[name]
        q = None if v.quant is None else [v.quant.scale, v.quant.zero_point, v.quant.axis]
        _feed(h, [name, v.dtype, list(v.shape), q, v.data])
    _feed(h, {k: v for k, v in g.metadata.items() if k == "arithmetic" or k.startswith("layout:")})
    _feed(h, {name: [[axis, perm] for axis, perm in p.steps] for name, p in program.perms.items()})
    _feed(h, [[t.name, t.kind, t.dtype, list(t.shape), list(t.full_shape), t.split_axis]
              for t in state_layout(program)])
    return int.from_bytes(h.digest()[:8], "little")


# -- the blob ------------------------------------------------------------------------------------------------------
def blob_bytes(layout: list[StateTensor]) -> int:
    return HEADER_BYTES + sum(t.nbytes for t in layout) + CRC_BYTES


def slot_bytes(layout: list[StateTensor]) -> int:
    """The smallest slot that holds a blob: its bytes rounded up to a whole unit."""
    return -(-blob_bytes(layout) // UNIT) * UNIT


def encode(layout: list[StateTensor], fp: int, arrays: dict[str, np.ndarray], steps: int = 0,
           sequence: int = 1) -> bytes:
    """A blob of ``arrays`` (the device's parts, by name), as ``tte_state_write`` writes it."""
    body = bytearray(_HEADER.pack(MAGIC, VERSION, blob_bytes(layout), sequence & 0xFFFFFFFF, fp,
                                  steps & 0xFFFFFFFFFFFFFFFF))
    for t in layout:
        a = np.asarray(arrays[t.name], np.dtype(t.dtype).newbyteorder("<"))
        if a.shape != t.shape:
            raise TteError(f"state tensor '{t.name}' is {list(a.shape)}, the layout says {list(t.shape)}")
        body += a.tobytes(order="C")
    return bytes(body + struct.pack("<I", zlib.crc32(body)))


@dataclass
class DecodedState:
    sequence: int
    steps: int
    arrays: dict[str, np.ndarray]  # the device's parts, by name
    offset: int  # where in the data the blob starts


def _parse(data: bytes, at: int, layout: list[StateTensor], fp: int) -> tuple[int, DecodedState | None, str]:
    """(status, state, why) of the blob at ``at``, checked as tte_state_find checks a slot."""
    magic, version, size, sequence, their_fp, steps = _HEADER.unpack_from(data, at)
    if size < HEADER_BYTES + CRC_BYTES or at + size > len(data):
        return ERROR_CORRUPT, None, f"its size field says {size} bytes, {len(data) - at} are there"
    body = data[at:at + size - CRC_BYTES]
    if zlib.crc32(body) != struct.unpack_from("<I", data, at + size - CRC_BYTES)[0]:
        return ERROR_CORRUPT, None, "its CRC32 does not match (a cut write or a changed byte)"
    if version != VERSION:
        return ERROR_VERSION, None, f"it is format version {version}; this tte reads version {VERSION}"
    if their_fp != fp or size != blob_bytes(layout):
        return ERROR_MODEL, None, (f"it is the state of another model (fingerprint {their_fp:016x}, {size} bytes; "
                                   f"this program: {fp:016x}, {blob_bytes(layout)} bytes)")
    arrays, pos = {}, at + HEADER_BYTES
    for t in layout:
        arrays[t.name] = np.frombuffer(data, np.dtype(t.dtype).newbyteorder("<"), int(np.prod(t.shape)),
                                       pos).reshape(t.shape).astype(t.dtype)
        pos += t.nbytes
    return OK, DecodedState(sequence, steps, arrays, at), ""


def _newer(a: int, b: int) -> bool:
    """Sequence number ``a`` is newer than ``b`` (modulo 2^32, as the runtime compares them)."""
    return 1 <= (a - b) % 2**32 < 2**31


def decode(data: bytes, layout: list[StateTensor], fp: int, what: str = "the state data") -> DecodedState:
    """The newest complete blob of this program in ``data``: a blob, or a storage of slots (blobs at multiples of
    :data:`UNIT`).  Raises :class:`StateBlobError` (status EMPTY, CORRUPT, VERSION or MODEL) when there is none."""
    data = bytes(data)
    magic = struct.pack("<I", MAGIC)
    candidates = [at for at in range(0, len(data) - HEADER_BYTES + 1, UNIT) if data[at:at + 4] == magic]
    best, errors = None, []
    for at in candidates:
        status, state, why = _parse(data, at, layout, fp)
        if status == OK:
            if best is None or _newer(state.sequence, best.sequence):
                best = state
        else:
            errors.append((status, at, why))
    if best is not None:
        return best
    if not errors:
        raise StateBlobError(f"{what} holds no tte state blob ({len(data)} bytes, no 'TTES' header)", ERROR_EMPTY)
    rank = {ERROR_MODEL: 3, ERROR_VERSION: 2, ERROR_CORRUPT: 1}
    status, at, why = max(errors, key=lambda e: (rank[e[0]], -e[1]))
    kind = {ERROR_MODEL: "refused", ERROR_VERSION: "refused", ERROR_CORRUPT: "corrupted"}[status]
    raise StateBlobError(f"{what}: the state blob at byte {at} is {kind}: {why}", status)


# -- ctypes mirrors of tte_runtime.h -------------------------------------------------------------------------------
READ_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32)
WRITE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32)
ERASE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32)


class CStateTensor(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.c_void_p), ("bytes", ctypes.c_uint32),
                ("kind", ctypes.c_int32), ("dtype", ctypes.c_int32), ("rank", ctypes.c_int32),
                ("dims", ctypes.c_int32 * 4), ("split_axis", ctypes.c_int32), ("full_channels", ctypes.c_int32)]


class CStateLayout(ctypes.Structure):
    _fields_ = [("fingerprint", ctypes.c_uint64), ("tensors", ctypes.POINTER(CStateTensor)),
                ("count", ctypes.c_int32)]


class CStateStorage(ctypes.Structure):
    _fields_ = [("read", READ_FN), ("write", WRITE_FN), ("erase", ERASE_FN), ("ctx", ctypes.c_void_p),
                ("slot_size", ctypes.c_uint32)]


class CStateSlot(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_int32), ("sequence", ctypes.c_uint32), ("steps", ctypes.c_uint64)]


class MemoryStorage:
    """Two slots of ``slot_size`` bytes in a bytearray (``erased`` bytes at first), as ``tte_state_storage``
    callbacks.  ``flash=True`` behaves as NOR flash: an erase callback sets bytes to 0xFF, a write clears bits."""

    def __init__(self, slot_size: int, flash: bool = False, data: bytes | None = None):
        self.slot_size = slot_size
        self.flash = flash
        self.data = bytearray(data if data is not None else b"\xff" * (2 * slot_size))
        self._read, self._write, self._erase = READ_FN(self.read), WRITE_FN(self.write), ERASE_FN(self.erase)
        self.struct = CStateStorage(self._read, self._write, self._erase if flash else ERASE_FN(), None, slot_size)

    def read(self, ctx, offset, data, size) -> int:
        if offset + size > len(self.data):
            return -1
        ctypes.memmove(data, bytes(self.data[offset:offset + size]), size)
        return 0

    def write(self, ctx, offset, data, size) -> int:
        if offset + size > len(self.data):
            return -1
        new = ctypes.string_at(data, size)
        if self.flash:
            new = bytes(a & b for a, b in zip(self.data[offset:offset + size], new))
        self.data[offset:offset + size] = new
        return 0

    def erase(self, ctx, offset, size) -> int:
        if offset + size > len(self.data):
            return -1
        self.data[offset:offset + size] = b"\xff" * size
        return 0
