"""The runtime's persistent state, called directly: tte_crc32, tte_state_blob_bytes, tte_state_find, tte_state_write
and tte_state_read on a small layout of their own (several units, a tensor across unit boundaries, an empty one),
with storage callbacks in Python.  A power cut at every byte of a save (RAM-like and NOR-flash-like storage) and
every single bit flip of a stored blob leave the previous or the new complete state loadable, never anything else;
blobs of another model or format version are refused; every error return is reached."""

from __future__ import annotations

import ctypes
import struct
import zlib

import numpy as np
import pytest
from cruntime import lib

from tte.codegen import state as st

FP = 0x0123456789ABCDEF
SLOT = 128  # the blob below is 118 bytes: 4 units


def runtime():
    so = lib()
    so.tte_crc32.restype = ctypes.c_uint32
    so.tte_crc32.argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32]
    so.tte_state_blob_bytes.restype = ctypes.c_uint32
    so.tte_state_blob_bytes.argtypes = [ctypes.c_void_p]
    so.tte_state_find.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    so.tte_state_write.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p]
    so.tte_state_read.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    return so


class Model:
    """A layout of five tensors in numpy arrays, its Python twin (tte.codegen.state) and ctypes structs."""

    SHAPES = [("w", "int8", (37,)), ("b", "int32", (5,)), ("v", "float32", (2, 3)), ("empty", "int8", (0,)),
              ("last", "int8", (1,))]

    def __init__(self, fp: int = FP, extra: int = 0):
        shapes = [(n, d, (s[0] + extra,) + s[1:] if n == "w" else s) for n, d, s in self.SHAPES]
        self.arrays = {n: np.zeros(s, d) for n, d, s in shapes}
        self.layout = [st.StateTensor(n, "weight", d, s, s, None) for n, d, s in shapes]
        self.fp = fp
        self.tensors = (st.CStateTensor * len(shapes))()
        for i, (n, _, _) in enumerate(shapes):
            a = self.arrays[n]
            self.tensors[i].name = n.encode()
            self.tensors[i].data = a.ctypes.data if a.size else None
            self.tensors[i].bytes = a.nbytes
        self.c = st.CStateLayout(fp, self.tensors, len(shapes))

    def fill(self, seed: int) -> dict[str, np.ndarray]:
        """Set every tensor to values drawn from ``seed``; returns a copy of them."""
        rng = np.random.default_rng(seed)
        for a in self.arrays.values():
            a[...] = rng.integers(-100, 100, a.shape).astype(a.dtype)
        return self.snapshot()

    def snapshot(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.arrays.items()}

    def holds(self, values: dict[str, np.ndarray]) -> bool:
        return all(np.array_equal(self.arrays[k], v) for k, v in values.items())

    def save(self, storage, steps: int) -> int:
        return runtime().tte_state_write(ctypes.byref(self.c), steps, ctypes.byref(storage.struct))

    def load(self, storage) -> tuple[int, int]:
        steps = ctypes.c_uint64(99)
        status = runtime().tte_state_read(ctypes.byref(self.c), ctypes.byref(storage.struct), ctypes.byref(steps))
        return status, steps.value

    def find(self, storage) -> tuple[int, st.CStateSlot]:
        slot = st.CStateSlot(-1, 0, 0)
        return runtime().tte_state_find(ctypes.byref(self.c), ctypes.byref(storage.struct), ctypes.byref(slot)), slot


class CutStorage(st.MemoryStorage):
    """Storage that loses power after ``budget`` bytes have been erased or written: the write in progress is
    cut after its first bytes, and every callback fails from then on."""

    def __init__(self, slot_size, flash, data, budget):
        super().__init__(slot_size, flash, data)
        self.budget = budget

    def _spend(self, size) -> int:
        n = max(0, min(size, self.budget))
        self.budget -= size
        return n

    def read(self, ctx, offset, data, size):
        return -1 if self.budget < 0 else super().read(ctx, offset, data, size)

    def write(self, ctx, offset, data, size):
        if self.budget < 0:
            return -1
        n = self._spend(size)
        super().write(ctx, offset, data, n)
        return 0 if n == size else -1

    def erase(self, ctx, offset, size):
        if self.budget < 0:
            return -1
        n = self._spend(size)
        super().erase(ctx, offset, n)
        return 0 if n == size else -1


# -- CRC and sizes ---------------------------------------------------------------------------------------------------
def test_crc32_is_zlibs():
    rng = np.random.default_rng(0)
    for n in (0, 1, 3, 31, 32, 33, 1000):
        data = rng.integers(0, 256, n).astype(np.uint8)
        assert runtime().tte_crc32(0, data.ctypes.data if n else None, n) == zlib.crc32(data.tobytes())
    data = rng.integers(0, 256, 100).astype(np.uint8)
    first = runtime().tte_crc32(0, data.ctypes.data, 40)
    assert runtime().tte_crc32(first, data.ctypes.data + 40, 60) == zlib.crc32(data.tobytes())
    assert runtime().tte_crc32(0, b"123456789", 9) == 0xCBF43926  # the CRC-32 check value


def test_blob_bytes():
    m = Model()
    blob = runtime().tte_state_blob_bytes(ctypes.byref(m.c))
    assert blob == st.blob_bytes(m.layout) == 32 + 37 + 20 + 24 + 0 + 1 + 4
    assert runtime().tte_state_blob_bytes(None) == 0
    assert runtime().tte_state_blob_bytes(ctypes.byref(st.CStateLayout(FP, None, -1))) == 0
    assert runtime().tte_state_blob_bytes(ctypes.byref(st.CStateLayout(FP, None, 2))) == 0
    assert runtime().tte_state_blob_bytes(ctypes.byref(st.CStateLayout(FP, None, 0))) == 36
    bad = (st.CStateTensor * 1)()
    bad[0].bytes = 4  # bytes but no data
    assert runtime().tte_state_blob_bytes(ctypes.byref(st.CStateLayout(FP, bad, 1))) == 0
    huge = (st.CStateTensor * 2)()
    for t in huge:
        t.data, t.bytes = m.tensors[0].data, 0x7FFFFFF0  # the sum overflows 32 bits
    assert runtime().tte_state_blob_bytes(ctypes.byref(st.CStateLayout(FP, huge, 2))) == 0


# -- save and load -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flash", [False, True])
def test_saves_alternate_slots_and_load_the_newest(flash):
    m = Model()
    storage = st.MemoryStorage(SLOT, flash=flash)
    assert m.find(storage)[0] == st.ERROR_EMPTY and m.load(storage)[0] == st.ERROR_EMPTY
    saved = []
    for i in range(5):
        saved.append(m.fill(i))
        assert m.save(storage, 100 + i) == st.OK
        status, slot = m.find(storage)
        assert status == st.OK and (slot.slot, slot.sequence, slot.steps) == (i % 2, i + 1, 100 + i)
        # the blob is the one tte.codegen.state encodes, and decodes
        blob = bytes(storage.data[(i % 2) * SLOT:(i % 2) * SLOT + st.blob_bytes(m.layout)])
        assert blob == st.encode(m.layout, FP, saved[-1], 100 + i, i + 1)
        assert storage.data[(i % 2) * SLOT + len(blob):(i % 2 + 1) * SLOT] == b"\xff" * (SLOT - len(blob))
        decoded = st.decode(bytes(storage.data), m.layout, FP)
        assert decoded.sequence == i + 1 and decoded.steps == 100 + i and decoded.offset == (i % 2) * SLOT
        assert all(np.array_equal(decoded.arrays[k], v) for k, v in saved[-1].items())
        m.fill(99)
        assert m.load(storage) == (st.OK, 100 + i) and m.holds(saved[-1])


def test_a_larger_slot_and_the_newest_sequence_modulo_2_32():
    m = Model()
    a, b = m.fill(1), m.fill(2)
    data = bytearray(b"\xff" * 2 * 4096)
    for seq_a, seq_b, newest in ((0xFFFFFFFF, 0, "b"), (5, 4, "a"), (7, 7, "a"), (1, 0x80000001, "a")):
        data[:118] = st.encode(m.layout, FP, a, 1, seq_a)
        data[4096:4096 + 118] = st.encode(m.layout, FP, b, 2, seq_b)
        storage = st.MemoryStorage(4096, data=bytes(data))
        m.fill(0)
        assert m.load(storage)[0] == st.OK and m.holds(a if newest == "a" else b), (seq_a, seq_b)
        assert st.decode(bytes(data), m.layout, FP).steps == (1 if newest == "a" else 2)
        # the next save goes to the other slot, with the next sequence number
        assert m.save(storage, 3) == st.OK
        status, slot = m.find(storage)
        assert status == st.OK and slot.slot == (1 if newest == "a" else 0)
        assert slot.sequence == ((seq_a if newest == "a" else seq_b) + 1) % 2**32


@pytest.mark.parametrize("flash", [False, True])
@pytest.mark.parametrize("first", [False, True])
def test_a_power_cut_at_every_byte_of_a_save(flash, first):
    """Storage holding A (older) and B (newer), or nothing (`first`); saving C is cut after k bytes, for every k.
    After the cut, loading yields B (or, for a first save, no state) or C, complete; never a mix."""
    m = Model()
    storage = st.MemoryStorage(SLOT, flash=flash)
    previous = None
    if not first:
        m.fill(1)
        assert m.save(storage, 1) == st.OK
        previous = m.fill(2)
        assert m.save(storage, 2) == st.OK
    before = bytes(storage.data)
    new = m.fill(3)
    total = (SLOT if flash else 0) + -(-st.blob_bytes(m.layout) // st.UNIT) * st.UNIT
    outcomes = []
    for k in range(total + 1):
        for name, v in new.items():  # the RAM state being saved
            m.arrays[name][...] = v
        cut = CutStorage(SLOT, flash, before, k)
        status = m.save(cut, 3)
        assert (status == st.OK) == (k == total), (k, status)
        rebooted = st.MemoryStorage(SLOT, flash=flash, data=bytes(cut.data))
        m.fill(99)  # RAM is lost
        loaded, steps = m.load(rebooted)
        if loaded == st.OK and steps == 3:
            assert m.holds(new), k
            outcomes.append("new")
        elif previous is not None:
            assert loaded == st.OK and steps == 2 and m.holds(previous), (k, loaded)
            outcomes.append("previous")
        else:
            assert loaded in (st.ERROR_EMPTY, st.ERROR_CORRUPT), (k, loaded)
            outcomes.append("none")
    # the new state appears once its last byte is written, and stays
    assert outcomes[-1] == "new" and outcomes[0] != "new"
    switch = outcomes.index("new")
    assert set(outcomes[switch:]) == {"new"}
    assert switch == total - (st.slot_bytes(m.layout) - st.blob_bytes(m.layout))


def test_every_single_bit_flip_of_a_stored_blob():
    m = Model()
    storage = st.MemoryStorage(SLOT)
    older = m.fill(1)
    assert m.save(storage, 1) == st.OK
    newer = m.fill(2)
    assert m.save(storage, 2) == st.OK
    good = bytes(storage.data)
    n = st.blob_bytes(m.layout)
    for slot, survivor, steps in ((1, older, 1), (0, newer, 2)):
        for bit in range(8 * n):
            data = bytearray(good)
            data[slot * SLOT + bit // 8] ^= 1 << (bit % 8)
            m.fill(99)
            assert m.load(st.MemoryStorage(SLOT, data=bytes(data))) == (st.OK, steps), (slot, bit)
            assert m.holds(survivor)
    # a single blob with a flipped bit is never loaded
    lone = bytearray(good[:SLOT] + b"\xff" * SLOT)
    for bit in range(8 * n):
        data = bytearray(lone)
        data[bit // 8] ^= 1 << (bit % 8)
        before = m.fill(99)
        status, _ = m.load(st.MemoryStorage(SLOT, data=bytes(data)))
        assert status in (st.ERROR_EMPTY, st.ERROR_CORRUPT), bit
        assert m.holds(before)  # refused: nothing written


# -- refusals ---------------------------------------------------------------------------------------------------------
def _with_version(blob: bytes, version: int) -> bytes:
    body = bytearray(blob[:-4])
    body[4:8] = struct.pack("<I", version)
    return bytes(body + struct.pack("<I", zlib.crc32(body)))


def test_blobs_of_another_model_or_version_are_refused():
    m = Model()
    values = m.fill(1)
    blob = st.encode(m.layout, FP, values, 7)
    pad = b"\xff" * (2 * SLOT - len(blob))
    other_fp = Model(fp=FP ^ 1)
    other_size = Model(extra=1)  # the same fingerprint, one byte more: not this model either
    for model, status in ((other_fp, st.ERROR_MODEL), (other_size, st.ERROR_MODEL), (m, st.OK)):
        model.fill(5)
        before = model.snapshot()
        assert model.load(st.MemoryStorage(SLOT, data=blob + pad))[0] == status
        assert model.holds(values if status == st.OK else before)  # refused: nothing written
    with pytest.raises(st.StateBlobError) as e:
        st.decode(blob, other_fp.layout, other_fp.fp)
    assert e.value.status == st.ERROR_MODEL and "another model" in str(e.value)
    v2 = _with_version(blob, 2)
    assert m.load(st.MemoryStorage(SLOT, data=v2 + pad))[0] == st.ERROR_VERSION
    with pytest.raises(st.StateBlobError, match="format version 2") as e:
        st.decode(v2, m.layout, FP)
    assert e.value.status == st.ERROR_VERSION
    # a save over storage holding only refused blobs starts again in slot 0
    storage = st.MemoryStorage(SLOT, data=v2 + pad)
    assert m.save(storage, 8) == st.OK and m.find(storage)[1].slot == 0


def test_the_most_telling_error_when_no_slot_is_valid():
    m = Model()
    blob = st.encode(m.layout, FP, m.fill(1), 1)
    foreign = st.encode(m.layout, FP ^ 1, m.snapshot(), 1)
    v2 = _with_version(blob, 2)
    cut = blob[:50] + b"\xff" * (len(blob) - 50)
    empty = b"\xff" * len(blob)
    fill = b"\xff" * (SLOT - len(blob))
    cases = [(empty, empty, st.ERROR_EMPTY), (cut, empty, st.ERROR_CORRUPT), (empty, cut, st.ERROR_CORRUPT),
             (v2, cut, st.ERROR_VERSION), (cut, v2, st.ERROR_VERSION), (foreign, v2, st.ERROR_MODEL),
             (v2, foreign, st.ERROR_MODEL), (cut, blob, st.OK)]
    for a, b, status in cases:
        storage = st.MemoryStorage(SLOT, data=a + fill + b + fill)
        assert m.find(storage)[0] == status
        if status != st.OK:
            with pytest.raises(st.StateBlobError) as e:
                st.decode(bytes(storage.data), m.layout, FP)
            assert e.value.status == status


def test_size_fields_out_of_range_are_corrupt():
    m = Model()
    blob = bytearray(st.encode(m.layout, FP, m.fill(1), 1))
    for size in (0, 35, SLOT + 1, 2**32 - 1):
        data = bytearray(blob)
        data[8:12] = struct.pack("<I", size)
        assert m.find(st.MemoryStorage(SLOT, data=bytes(data) + b"\xff" * (2 * SLOT - len(data))))[0] == \
            st.ERROR_CORRUPT


# -- arguments and failing callbacks -----------------------------------------------------------------------------------
def test_argument_errors():
    m = Model()
    so = runtime()
    good = st.MemoryStorage(SLOT)
    slot, steps = st.CStateSlot(), ctypes.c_uint64()
    ref = ctypes.byref
    assert so.tte_state_find(None, ref(good.struct), ref(slot)) == st.ERROR_ARGUMENT
    assert so.tte_state_find(ref(m.c), None, ref(slot)) == st.ERROR_ARGUMENT
    assert so.tte_state_find(ref(m.c), ref(good.struct), None) == st.ERROR_ARGUMENT
    no_read = st.MemoryStorage(SLOT)
    no_read.struct.read = st.READ_FN()
    assert so.tte_state_find(ref(m.c), ref(no_read.struct), ref(slot)) == st.ERROR_ARGUMENT
    for size in (SLOT + 1, 96, 0x80000020):  # not a multiple of a unit; smaller than the blob; 2 slots > 4 GB
        s = st.MemoryStorage(SLOT)
        s.struct.slot_size = size
        assert so.tte_state_find(ref(m.c), ref(s.struct), ref(slot)) == st.ERROR_ARGUMENT
        assert so.tte_state_write(ref(m.c), 0, ref(s.struct)) == st.ERROR_ARGUMENT
        assert so.tte_state_read(ref(m.c), ref(s.struct), ref(steps)) == st.ERROR_ARGUMENT
    no_write = st.MemoryStorage(SLOT)
    no_write.struct.write = st.WRITE_FN()
    assert so.tte_state_write(ref(m.c), 0, ref(no_write.struct)) == st.ERROR_ARGUMENT
    assert so.tte_state_read(ref(m.c), ref(good.struct), None) == st.ERROR_ARGUMENT
    assert good.data == bytearray(b"\xff" * 2 * SLOT)


class FailingStorage(st.MemoryStorage):
    """Storage whose n-th read, write or erase call fails (counted per kind)."""

    def __init__(self, kind: str, n: int, data=None, flash=True):
        super().__init__(SLOT, flash=flash, data=data)
        self.kind, self.n, self.calls = kind, n, {"read": 0, "write": 0, "erase": 0}

    def _fails(self, kind) -> bool:
        self.calls[kind] += 1
        return kind == self.kind and self.calls[kind] == self.n

    def read(self, ctx, offset, data, size):
        return -1 if self._fails("read") else super().read(ctx, offset, data, size)

    def write(self, ctx, offset, data, size):
        return -1 if self._fails("write") else super().write(ctx, offset, data, size)

    def erase(self, ctx, offset, size):
        return -1 if self._fails("erase") else super().erase(ctx, offset, size)


def test_failing_callbacks_are_io_errors():
    m = Model()
    previous = m.fill(1)
    base = st.MemoryStorage(SLOT, flash=True)
    assert m.save(base, 1) == st.OK
    stored = bytes(base.data)
    # a save: reads of both slots (1 unit of the empty slot 1, 4 of slot 0), erase, 4 writes, 5 reads to verify
    reads = FailingStorage("read", 10**9, stored)
    m.fill(2)
    assert m.save(reads, 2) == st.OK
    total_reads = reads.calls["read"]
    for n in range(1, total_reads + 1):
        assert m.save(FailingStorage("read", n, stored), 2) == st.ERROR_IO, n
    assert m.save(FailingStorage("erase", 1, stored), 2) == st.ERROR_IO
    for n in range(1, 5):
        assert m.save(FailingStorage("write", n, stored), 2) == st.ERROR_IO, n
    # a load: 5 reads to check both slots, 4 to copy
    loads = FailingStorage("read", 10**9, stored)
    assert m.load(loads)[0] == st.OK
    for n in range(1, loads.calls["read"] + 1):
        m.fill(3)
        status = m.load(FailingStorage("read", n, stored))[0]
        assert status == st.ERROR_IO, n
    m.fill(3)
    assert m.load(st.MemoryStorage(SLOT, flash=True, data=stored)) == (st.OK, 1) and m.holds(previous)


def test_a_write_that_does_not_stick_fails_to_verify():
    m = Model()
    m.fill(1)
    storage = st.MemoryStorage(SLOT, flash=True)
    assert m.save(storage, 1) == st.OK
    storage.write = lambda ctx, offset, data, size: 0  # reports success, writes nothing
    storage._write = st.WRITE_FN(storage.write)
    storage.struct.write = storage._write
    m.fill(2)
    assert m.save(storage, 2) == st.ERROR_VERIFY


def test_storage_that_changes_between_check_and_copy():
    """tte_state_read checks the slot, then copies it; if the storage changes in between, the copy's CRC fails."""
    m = Model()
    m.fill(1)
    storage = st.MemoryStorage(SLOT)
    assert m.save(storage, 1) == st.OK
    reads = {"n": 0}
    inner = storage.read

    def read(ctx, offset, data, size):
        reads["n"] += 1
        status = inner(ctx, offset, data, size)
        if reads["n"] > 5 and offset == 64:  # the copy's third unit
            (ctypes.c_uint8 * size).from_address(data)[3] ^= 0xFF
        return status

    storage._read = st.READ_FN(read)
    storage.struct.read = storage._read
    assert m.load(storage)[0] == st.ERROR_CORRUPT
