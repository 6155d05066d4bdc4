"""A generated program's firmware API and its persistent state (tte_model.h): the int8 entry points and
tte_predict, the table of trained tensors, and tte_state_save / tte_state_load.  A host harness of the emitted C,
built with AddressSanitizer and UndefinedBehaviorSanitizer, cuts the power at every byte of a save (RAM-like and
NOR-flash-like storage) and flips every bit of both stored blobs: loading always yields the previous or the new
complete state.  Blobs of another model or format version, and corrupted ones, are refused by the C and by
``Program.load_state`` alike, which read and write the same bytes."""

from __future__ import annotations

import ctypes
import struct
import subprocess
import zlib

import numpy as np
import pytest
from conftest import ROOT

import tte
from tte.codegen import state as st
from tte.codegen.c_train import c_string, emit_program
from tte.codegen.native import SANITIZE, compile_c

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"
# a partial scheme: permuted channels and split weights (trained slices) in the state
PARTIAL = {"bias_update_last": 2, "weight_update": {"8": 0.5, "9": 0.5}}


def compile_partial(**options) -> tte.Program:
    return tte.compile(EXAMPLE, scheme=PARTIAL, classes=4, lr=0.05, **options)


def int8_inputs(program: tte.Program, count: int, seed: int = 0) -> list[np.ndarray]:
    shape = program.forward[program.forward.inputs[0]].shape
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(count)]


def real(program: tte.Program, q: np.ndarray) -> np.ndarray:
    """The float input that the model's input quantization maps to ``q``."""
    quant = program.forward[program.forward.nodes[0].output].quant
    return ((q.astype(np.float32) - np.float32(quant.zero_point)) * np.float32(quant.scale)).astype(np.float32)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    program = compile_partial()
    return program, program.native(str(tmp_path_factory.mktemp("native")))


# -- the firmware API ------------------------------------------------------------------------------------------------
def test_int8_api_and_predict(built):
    program, native = built
    native.load_state(compile_partial().state_blob())  # back to the compiled values, 0 steps
    reference = compile_partial()
    qs = int8_inputs(program, 6, seed=1)
    for i, q in enumerate(qs[:4]):
        assert native.train_step_s8(q, i % 4) == reference.train_step(real(program, q), i % 4)
    assert native.steps == reference.steps == 4
    for q in qs:
        logits = native.infer_s8(q)
        assert np.array_equal(logits, reference.infer(real(program, q)))
        assert native.predict(q) == int(np.argmax(logits[0]))
    # the step reads its input from the arena: an input written there is not copied, and is the same input
    native.lib.tte_input_buffer.restype = ctypes.c_void_p
    address = native.lib.tte_input_buffer()
    ctypes.memmove(address, qs[4].ctypes.data, qs[4].size)
    loss = np.zeros(1, np.float32)
    assert native.lib.tte_train_step_s8(address, 1, loss.ctypes.data) == 0
    assert loss[0] == np.float32(reference.train_step(real(program, qs[4]), 1))
    # bad arguments
    assert native.lib.tte_train_step_s8(qs[0].ctypes.data, 4, loss.ctypes.data) == -1
    assert native.lib.tte_train_step_s8(None, 0, loss.ctypes.data) == -1
    assert native.lib.tte_train_step_s8(qs[0].ctypes.data, 0, None) == -1
    assert native.lib.tte_train_step(None, 0, loss.ctypes.data) == -1
    assert native.lib.tte_infer_s8(None, loss.ctypes.data) == -1
    assert native.lib.tte_infer_s8(qs[0].ctypes.data, None) == -1
    assert native.lib.tte_infer_f32(None, loss.ctypes.data) == -1
    assert native.lib.tte_predict(None) == -1
    assert native.steps == 5


def test_the_tensor_table(built):
    program, native = built
    layout = st.state_layout(program)
    table = (st.CStateTensor * len(layout)).in_dll(native.lib, "tte_tensors")
    kinds = {v: k for k, v in st.KINDS.items()}
    dtypes = {v: k for k, v in st.DTYPES.items()}
    for i, (t, c) in enumerate(zip(layout, table)):
        assert c.name.decode() == t.name and kinds[c.kind] == t.kind and dtypes[c.dtype] == t.dtype
        assert tuple(c.dims[:c.rank]) == t.shape and list(c.dims[c.rank:]) == [1] * (4 - c.rank)
        assert c.bytes == t.nbytes and c.data == native.lib.tte_tensor_data(i)
        assert c.split_axis == (-1 if t.split_axis is None else t.split_axis)
        assert c.full_channels == (0 if t.split_axis is None else t.full_shape[t.split_axis])
        if t.kind != "optimizer":  # trained parameters go by their ONNX initializer names
            assert t.name in program.params
    assert native.lib.tte_tensor_data(-1) is None and native.lib.tte_tensor_data(len(layout)) is None
    # the split weights and the permuted channels this scheme makes are in the table
    assert any(t.split_axis is not None for t in layout) and any(t.name in program.perms for t in layout)
    header = (native.directory / "tte_model.h").read_text()
    assert f"#define TTE_FINGERPRINT UINT64_C(0x{program.fingerprint:016x})" in header
    assert f"#define TTE_STATE_BLOB_BYTES {st.blob_bytes(layout)}u" in header
    assert "#define tte_state_data tte_tensor_data" in header and "permuted channel order" in header


def test_names_become_valid_c_strings(tmp_path):
    name = 'a"b\\c??=d\ttab \u00e9/*x*/' + "x" * 300
    lines = c_string(name, 5)
    assert all(len(line) <= 120 for line in lines) and len(lines) > 2
    (tmp_path / "s.c").write_text("#include <stdio.h>\nstatic const char s[] =\n" + "\n".join(lines) +
                                  ";\nint main(void) { fputs(s, stdout); return 0; }\n")
    exe = tmp_path / "s"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion", "-Werror",
                    str(tmp_path / "s.c"), "-o", str(exe)], check=True)
    assert subprocess.run([str(exe)], capture_output=True, check=True).stdout == name.encode()


def test_the_fingerprint():
    a, b = compile_partial(), compile_partial()
    assert a.fingerprint == b.fingerprint
    # training hyperparameters are not part of it; the model, the head, the scheme and the state are
    assert tte.compile(EXAMPLE, scheme=PARTIAL, classes=4, lr=0.001).fingerprint == a.fingerprint
    others = [tte.compile(EXAMPLE, scheme=PARTIAL, classes=3), tte.compile(EXAMPLE, scheme="last-2", classes=4),
              tte.compile(EXAMPLE, scheme=PARTIAL, classes=4, seed=1), compile_partial(momentum=0.9),
              compile_partial(rounding="nearest"), tte.compile(EXAMPLE, scheme=PARTIAL)]
    assert len({a.fingerprint} | {p.fingerprint for p in others}) == 1 + len(others)


# -- state blobs between C and Python -------------------------------------------------------------------------------
def test_c_and_python_blobs_are_the_same_bytes(built):
    program, native = built
    native.load_state(compile_partial().state_blob())
    reference = compile_partial()
    for i, q in enumerate(int8_inputs(program, 3, seed=2)):
        native.train_step_s8(q, i % 4)
        reference.train_step(real(program, q), i % 4)
    blob = native.state_blob()
    assert blob == reference.state_blob() and len(blob) == st.blob_bytes(st.state_layout(program))
    fresh = compile_partial()
    fresh.load_state(blob)
    assert fresh.steps == 3 and all(np.array_equal(fresh.state[k], v) for k, v in reference.state.items())
    # and back into C
    native.load_state(compile_partial().state_blob())
    native.load_state(reference.state_blob(sequence=9))
    assert native.steps == 3 and all(np.array_equal(native.state()[k], v) for k, v in reference.state.items())
    # a storage with slots larger than the blob: the newest blob wins
    big = bytearray(b"\xff" * 8192)
    big[:len(blob)] = compile_partial().state_blob(sequence=4)
    big[4096:4096 + len(blob)] = reference.state_blob(sequence=5)
    native.load_state(compile_partial().state_blob())
    for target in (compile_partial(), native):
        target.load_state(bytes(big))
        assert target.steps == 3


def _with_version(blob: bytes, version: int) -> bytes:
    body = bytearray(blob[:-4])
    body[4:8] = struct.pack("<I", version)
    return bytes(body + struct.pack("<I", zlib.crc32(body)))


def test_foreign_old_version_and_corrupted_blobs_are_refused(built, tmp_path):
    _, native = built
    blob = compile_partial().state_blob()
    corrupted = bytearray(blob)
    corrupted[100] ^= 4
    other_model = tte.compile(EXAMPLE, scheme=PARTIAL, classes=3)
    cases = [(other_model, blob, st.ERROR_MODEL, "another model"),
             (compile_partial(), other_model.state_blob(), st.ERROR_MODEL, "another model"),
             (compile_partial(), _with_version(blob, 2), st.ERROR_VERSION, "format version 2"),
             (compile_partial(), bytes(corrupted), st.ERROR_CORRUPT, "CRC32"),
             (compile_partial(), b"\x00" * 2048, st.ERROR_EMPTY, "no tte state blob"),
             (compile_partial(), blob[:1000], st.ERROR_CORRUPT, "size field")]
    for program, data, status, message in cases:
        before = {k: v.copy() for k, v in program.state.items()}
        with pytest.raises(st.StateBlobError, match=message) as e:
            program.load_state(data)
        assert e.value.status == status
        assert all(np.array_equal(program.state[k], v) for k, v in before.items())  # nothing changed
    # the C (tte_state_load) refuses the same blobs with the same codes, and keeps its state
    native.load_state(blob)
    for _, data, status, _ in cases[1:]:
        with pytest.raises(st.StateBlobError) as e:
            native.load_state(data)
        assert e.value.status == status
        assert native.state_blob() == blob
    path = tmp_path / "state.bin"
    path.write_bytes(blob)
    program = compile_partial()
    program.load_state(path)
    program.load_state(str(path))
    with pytest.raises(tte.TteError, match="cannot read state file"):
        program.load_state(tmp_path / "missing.bin")


# -- the host harness: power cuts and bit flips through the model's own API -------------------------------------------
HARNESS = r"""
#include <stdio.h>
#include <string.h>

#include "tte_model.h"

#define SLOT TTE_STATE_SLOT_BYTES
static uint8_t flash[2 * SLOT], before[2 * SLOT], c_image[2 * SLOT];
static long budget = -1; /* bytes that may still be erased or written; -1: no limit */
static int nor;          /* NOR flash: erase to 0xFF, writes clear bits */

static uint32_t spend(uint32_t size) {
    if (budget < 0) return size;
    const uint32_t n = budget < (long)size ? (uint32_t)budget : size;
    budget -= (long)size;
    if (budget < 0) budget = -2; /* the power is gone */
    return n;
}

static int rd(void *ctx, uint32_t offset, void *data, uint32_t size) {
    (void)ctx;
    if (budget == -2) return -1;
    memcpy(data, flash + offset, size);
    return 0;
}

static int wr(void *ctx, uint32_t offset, const void *data, uint32_t size) {
    (void)ctx;
    if (budget == -2) return -1;
    const uint32_t n = spend(size);
    const uint8_t *bytes = (const uint8_t *)data;
    for (uint32_t i = 0; i < n; i++) flash[offset + i] = nor ? (uint8_t)(flash[offset + i] & bytes[i]) : bytes[i];
    return n == size ? 0 : -1;
}

static int er(void *ctx, uint32_t offset, uint32_t size) {
    (void)ctx;
    if (budget == -2) return -1;
    const uint32_t n = spend(size);
    memset(flash + offset, 0xFF, n);
    return n == size ? 0 : -1;
}

static uint8_t snap[3][TTE_STATE_BLOB_BYTES];
static uint64_t steps_at[3]; /* tte_steps() of each snapshot */

static void snapshot(uint8_t *out) {
    for (int i = 0; i < TTE_STATE_COUNT; i++) {
        memcpy(out, tte_tensors[i].data, tte_tensors[i].bytes);
        out += tte_tensors[i].bytes;
    }
}

static int holds(const uint8_t *values) {
    for (int i = 0; i < TTE_STATE_COUNT; i++) {
        if (memcmp(values, tte_tensors[i].data, tte_tensors[i].bytes) != 0) return 0;
        values += tte_tensors[i].bytes;
    }
    return 1;
}

static void lose_ram(void) {
    for (int i = 0; i < TTE_STATE_COUNT; i++) memset(tte_tensors[i].data, 0x5A, tte_tensors[i].bytes);
}

static uint32_t lcg = 1u;

static void train(int steps) {
    for (int s = 0; s < steps; s++) {
        int8_t *x = tte_input_buffer();
        for (int i = 0; i < TTE_INPUT_SIZE; i++) {
            lcg = lcg * 1664525u + 1013904223u;
            x[i] = (int8_t)(int32_t)(lcg >> 24);
        }
        float loss;
        if (tte_train_step_s8(x, s % TTE_CLASSES, &loss) != 0) printf("step failed\n");
    }
}

/* 0: the previous state (B), 1: the new one (C), -1: anything else */
static int which(tte_state_status status) {
    if (status != TTE_STATE_OK) return -1;
    if (tte_steps() == steps_at[1] && holds(snap[1])) return 0;
    if (tte_steps() == steps_at[2] && holds(snap[2])) return 1;
    return -1;
}

int main(void) {
    int bad = 0;
    for (nor = 0; nor < 2; nor++) {
        tte_state_storage storage = {rd, wr, nor ? er : NULL, NULL, SLOT};
        memset(flash, 0xFF, sizeof flash);
        if (tte_state_load(&storage) != TTE_STATE_ERROR_EMPTY) bad++;
        /* A, B (the previous state), C (the new one), 2 steps apart */
        if (nor == 0 && tte_steps() != 0) bad++;
        for (int s = 0; s < 3; s++) {
            train(2);
            snapshot(snap[s]);
            steps_at[s] = tte_steps();
            if (s == 2) break;
            if (tte_state_save(&storage) != TTE_STATE_OK) bad++;
        }
        memcpy(before, flash, sizeof flash);
        if (tte_state_save(&storage) != TTE_STATE_OK) bad++;
        memcpy(c_image, flash, sizeof flash);
        const long total = (nor ? SLOT : 0) + SLOT;
        long first_new = -1, previous = 0, fresh = 0;
        for (long k = 0; k <= total; k++) {
            memcpy(flash, c_image, sizeof flash); /* back to the state being saved: C */
            budget = -1;
            if (tte_state_load(&storage) != TTE_STATE_OK || which(TTE_STATE_OK) != 1) bad++;
            memcpy(flash, before, sizeof flash);
            budget = k;
            const tte_state_status saved = tte_state_save(&storage);
            if ((saved == TTE_STATE_OK) != (k == total)) bad++;
            budget = -1; /* power back: reboot */
            lose_ram();
            const int got = which(tte_state_load(&storage));
            if (got < 0 || (first_new >= 0 && got == 0)) {
                printf("cut at byte %ld: loaded %d\n", k, got);
                bad++;
            }
            if (got == 1 && first_new < 0) first_new = k;
            previous += got == 0;
            fresh += got == 1;
        }
        printf("%s: %ld cuts, previous state %ld, new state %ld (from byte %ld)\n", nor ? "flash" : "ram",
               total + 1, previous, fresh, first_new);
        /* every bit of both blobs: A in slot 0, B in slot 1 */
        long flips = 0;
        for (int slot = 0; slot < 2; slot++) {
            for (uint32_t bit = 0; bit < 8u * TTE_STATE_BLOB_BYTES; bit++) {
                memcpy(flash, before, sizeof flash);
                flash[(uint32_t)slot * SLOT + bit / 8] ^= (uint8_t)(1u << (bit % 8));
                lose_ram();
                const tte_state_status status = tte_state_load(&storage);
                const int ok = status == TTE_STATE_OK &&
                               (slot == 1 ? tte_steps() == steps_at[0] && holds(snap[0])
                                          : tte_steps() == steps_at[1] && holds(snap[1]));
                if (!ok) {
                    printf("flip of bit %u in slot %d: status %d\n", (unsigned)bit, slot, (int)status);
                    bad++;
                }
                flips++;
            }
        }
        printf("%s: %ld bit flips, each loaded the other blob\n", nor ? "flash" : "ram", flips);
    }
    printf("%d failures\n", bad);
    return bad != 0;
}
"""


def test_power_cuts_and_bit_flips_in_the_generated_program(tmp_path, figures):
    program = compile_partial()
    emit_program(program, tmp_path)
    (tmp_path / "harness.c").write_text(HARNESS)
    exe = compile_c(tmp_path, tmp_path / "harness", SANITIZE)
    p = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert "runtime error" not in p.stderr, p.stderr[-2000:]
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert p.stdout.splitlines()[-1] == "0 failures"
    blob, slot = st.blob_bytes(st.state_layout(program)), st.slot_bytes(st.state_layout(program))
    for kind, erase in (("ram", 0), ("flash", slot)):
        # the new state is loadable exactly once its last byte is written
        assert f"{kind}: {erase + slot + 1} cuts, previous state {erase + blob}, new state {slot - blob + 1} " \
               f"(from byte {erase + blob})" in p.stdout, p.stdout
        assert f"{kind}: {2 * 8 * blob} bit flips" in p.stdout
    figures(f"state blobs: tiny_cnn (partial scheme, {blob} B blob): a power cut at each of the "
            f"{2 * slot + 1} + {slot + 1} byte offsets of a save and each of {4 * 8 * blob} bit flips leave the "
            "previous or the new complete state loadable")
