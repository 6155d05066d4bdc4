"""Emit a whole training program: ``tte_train_step`` (forward, loss, backward, updates, in the order the
passes scheduled), inference, and the trained tensors' table and persistence, over one static arena, with
trained parameters and optimizer state as static arrays (SRAM) and everything frozen as const arrays (flash).

A partially trained weight is split: its trained slice is a static array (SRAM), the remainder a const
array (flash), read through ``tte_split_weights``, exactly as the memory report counts them.  The int8
API (``tte_train_step_s8``, ``tte_infer_s8``, ``tte_predict``) takes an int8 input, which may already sit in
``tte_input_buffer()`` inside the arena (no copy).  ``tte_tensors`` describes every trained tensor (ONNX name,
dtype, shape, bytes, its array) and ``tte_state_save`` / ``tte_state_load`` persist them with the runtime's
power-safe two-slot blobs (``tte_state_*``; the model's fingerprint is :func:`tte.codegen.state.fingerprint`).
The arena offsets and the scratch are the pipeline's plan (``Program.memory``, ``Program.inference``).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from ..errors import TteError
from ..ir.facts import LABEL, LOSS
from ..ops.cgen import CTYPES, LINE, Emitter, Shared, c_comment, c_float, format_call
from ..passes.memory import graph_scratch
from ..version import __version__
from . import state as st
from .c_emitter import copy_runtime, emit_node, header

# runtime files the emitted program calls itself, not through an op: the persistence of its state
PROGRAM_RUNTIME = ("tte_crc32.c", "tte_state_blob_bytes.c", "tte_state_find.c", "tte_state_read.c",
                   "tte_state_write.c")


def _function(e: Emitter) -> None:
    e.deferred, e.prologue = [], []
    for node in e.g.nodes:
        emit_node(e, node)
    e.body += e.deferred


def c_string(text: str, indent: int) -> list[str]:
    """A C string literal of ``text`` (UTF-8; quotes, backslashes, '?' and non-printable bytes escaped), split
    into adjacent literals so that no line passes LINE columns."""
    parts, cur = [], ""
    for b in text.encode():
        ch = chr(b)
        piece = ch if 32 <= b < 127 and ch not in '"\\?' else ("\\" + ch if ch in '"\\?' else f"\\{b:03o}")
        if len(cur) + len(piece) > LINE - indent - 4:
            parts.append(cur)
            cur = ""
        cur += piece
    parts.append(cur)
    return [" " * indent + f'"{p}"' for p in parts]


def _tensor_note(program, t: st.StateTensor) -> str:
    note = f"{t.name}: {t.kind}, {t.dtype} [{', '.join(map(str, t.shape))}]"
    if t.split_axis is not None:
        note += (f", the trained leading {t.shape[t.split_axis]} of {t.full_shape[t.split_axis]} channels along axis "
                 f"{t.split_axis} (the rest is frozen, in flash)")
    if t.name in program.perms:
        note += ", channels in the device's permuted order"
    if program.forward.metadata.get(f"layout:{t.name}") == "KN":
        note += ", [N, K] here, [K, N] in the ONNX file"
    return note


def _tensor_table(program, layout: list[st.StateTensor], shared: Shared) -> str:
    lines = c_comment(
        "The trained tensors, in the order of the state blob (tte_state_save).  The device keeps them in its own "
        "channel order: where a scheme trains only some input channels of a layer, tte permuted that layer's "
        "channels offline (tte/autodiff/channels.py) so that the trained ones lead, and a split weight's array is "
        "only its trained leading slice.  `tte export` (Program.load_state, then save) un-permutes them into the "
        "model's order and writes the ONNX file.")
    lines.append("const tte_state_tensor tte_tensors[TTE_STATE_COUNT > 0 ? TTE_STATE_COUNT : 1] = {")
    kind = {"weight": "TTE_STATE_WEIGHT", "bias": "TTE_STATE_BIAS", "optimizer": "TTE_STATE_OPTIMIZER"}
    dtype = {"int8": "TTE_STATE_INT8", "int32": "TTE_STATE_INT32", "float32": "TTE_STATE_FLOAT32"}
    for t in layout:
        dims = list(t.shape) + [1] * (4 - len(t.shape))
        axis = -1 if t.split_axis is None else t.split_axis
        full = 0 if t.split_axis is None else t.full_shape[t.split_axis]
        lines += c_comment(_tensor_note(program, t), 4)
        name = c_string(t.name, 5)
        name[0] = "    {" + name[0][5:]
        lines += name[:-1] + [name[-1] + ","]
        first = f"     {shared.state[t.name]}, {t.nbytes}u, {kind[t.kind]}, {dtype[t.dtype]},"
        second = f"{len(t.shape)}, {{{', '.join(map(str, dims))}}}, {axis}, {full}}},"
        lines += [f"{first} {second}"] if len(first) + 1 + len(second) <= LINE else [first, "     " + second]
    if not layout:
        lines.append("    {0},")
    lines.append("};")
    return "\n".join(lines)


def emit_program(program, out_dir: str | os.PathLike) -> list[pathlib.Path]:
    """Write tte_model.h / tte_model.c (+ the runtime) for a compiled :class:`tte.Program`."""
    # the pipeline's plans: the training step's (the memory report's) and the inference function's
    train, memory = program.train, program.memory
    fwd, fwd_root, fwd_arena = program.inference
    shared = Shared(scratch=max(memory.scratch, graph_scratch(fwd)))
    layout = st.state_layout(program)
    for t in layout:
        value = program.state[t.name]
        if t.split_axis is not None:
            # the trained slice in SRAM, the rest in flash (program.state holds the whole tensor)
            frozen = np.take(value, range(t.shape[t.split_axis], t.full_shape[t.split_axis]), axis=t.split_axis)
            shared.state[t.name] = shared.array(t.name, t.device_part(value), CTYPES[t.dtype], const=False)
            shared.frozen_part[t.name] = shared.array(f"{t.name}_frozen", frozen, CTYPES[t.dtype])
            shared.split_channels[t.name] = t.shape[t.split_axis]
            continue
        shared.state[t.name] = shared.array(t.name, value, CTYPES[t.dtype], const=False)
    et = Emitter(train, memory.arena, memory.root, shared, view_prefix="step_")
    ef = Emitter(fwd, fwd_arena, fwd_root, shared, view_prefix="infer_")
    _function(et)
    _function(ef)
    if LABEL not in train.inputs or train.outputs[0] != LOSS:
        raise TteError("not a training graph")
    x = train.inputs[0]
    logits_train = train.outputs[1]
    logits_fwd = fwd.outputs[0]
    # one arena serves both functions; the training step's plan is the one the memory report gives
    arena = max(et.plan.size, ef.plan.size)
    fp = program.fingerprint if hasattr(program, "fingerprint") else st.fingerprint(program)
    head = header(__version__, os.path.basename(str(program.source or fwd.name)))
    h = head + f"""#ifndef TTE_MODEL_H
#define TTE_MODEL_H

#include <stdint.h>

#include "tte_runtime.h" /* tte_state_tensor, tte_state_storage, tte_state_status */

#define TTE_INPUT_SIZE {train[x].size}
#define TTE_INPUT_SCALE {c_float(train[train.nodes[0].output].quant.scale)}
#define TTE_INPUT_ZERO_POINT {int(train[train.nodes[0].output].quant.zero_point)}
#define TTE_CLASSES {fwd[logits_fwd].shape[1]}
#define TTE_ARENA_BYTES {arena}
#define TTE_SCRATCH_BYTES {shared.scratch}
#define TTE_STATE_COUNT {len(layout)}
/* 64 bits of SHA-256 over the compiled program's structure and parameters (tte.codegen.state.fingerprint): a
 * state blob carries it, and tte_state_load refuses one of another model */
#define TTE_FINGERPRINT UINT64_C(0x{fp:016x})
#define TTE_STATE_BLOB_BYTES {st.blob_bytes(layout)}u /* header, the trained tensors, CRC-32 */
#define TTE_STATE_SLOT_BYTES {st.slot_bytes(layout)}u /* the smallest slot: the blob in whole TTE_STATE_UNITs */
#define TTE_STATE_STORAGE_BYTES (2u * TTE_STATE_SLOT_BYTES)

/* Training and inference; each returns 0 on success and -1 on a NULL pointer, a label outside [0, TTE_CLASSES)
 * or a failed kernel.  int8 inputs are TTE_INPUT_SIZE values, NCHW, quantized with TTE_INPUT_SCALE and
 * TTE_INPUT_ZERO_POINT; tte_input_buffer() is where the step reads them, inside the arena: an input written
 * there is not copied. */
int8_t *tte_input_buffer(void);

/* One SGD step on an int8 input and its class; writes the loss before the step. */
int tte_train_step_s8(const int8_t *input, int32_t label, float *loss);

/* The same from a float32 NCHW input (quantized inside, into tte_input_buffer()). */
int tte_train_step(const float *input, int32_t label, float *loss);

/* float32 logits (TTE_CLASSES) of the current model, from an int8 or a float32 input. */
int tte_infer_s8(const int8_t *input, float *logits);
int tte_infer_f32(const float *input, float *logits);

/* The top-1 class of an int8 input, in [0, TTE_CLASSES) (the lowest on a tie); -1 on an error. */
int32_t tte_predict(const int8_t *input);

/* Steps trained: counted by tte_train_step_s8, saved and loaded with the state. */
uint64_t tte_steps(void);

/* The trained tensors (trained parameters, then optimizer state), in the state blob's order: for each, its ONNX
 * initializer name, kind, dtype, shape and bytes as the device holds them, and its array (.data).  The device keeps
 * them in permuted channel order (see tte_model.c); `tte export` un-permutes them. */
extern const tte_state_tensor tte_tensors[TTE_STATE_COUNT > 0 ? TTE_STATE_COUNT : 1];

/* tte_tensors[index].data, or NULL outside [0, TTE_STATE_COUNT). */
void *tte_tensor_data(int32_t index);
#define tte_state_data tte_tensor_data /* its earlier name */

/* Persist what was learned across resets and power loss: the trained tensors and tte_steps() as one blob (format:
 * tte_runtime.h) in one of two slots of storage->slot_size bytes (at least TTE_STATE_SLOT_BYTES, a multiple of
 * TTE_STATE_UNIT), through the storage's callbacks.  tte_state_save writes the slot that does not hold the newest
 * state and reads it back; a power cut at any moment of it leaves the previous state loadable.  tte_state_load
 * loads the newest complete state of this model; it refuses a blob of another model (TTE_STATE_ERROR_MODEL),
 * another format version (TTE_STATE_ERROR_VERSION) or a corrupted one (TTE_STATE_ERROR_CORRUPT); with no state
 * saved yet it returns TTE_STATE_ERROR_EMPTY and the model keeps its compiled values. */
tte_state_status tte_state_save(const tte_state_storage *storage);
tte_state_status tte_state_load(const tte_state_storage *storage);

#endif
"""
    # every view is named before the views are written out
    label, loss, unused = et.ptr(LABEL), et.ptr(LOSS), et.ptr(logits_train)
    fwd_logits = ef.ptr(logits_fwd)
    logits = format_call("", f"memcpy(logits, {fwd_logits}, sizeof(float) * TTE_CLASSES)", ";")
    take_input = [f"    if (input != {et.input_ptr})", f"        memmove({et.input_ptr}, input, TTE_INPUT_SIZE);"]
    move_input = format_call("", f"memmove({ef.input_ptr}, input, TTE_INPUT_SIZE)", ";")
    c = head + """#include <string.h>

#include "tte_model.h"
#include "tte_runtime.h"

""" + shared.call_macros() + """
static int32_t tte_arena_words[(TTE_ARENA_BYTES + 3) / 4];
#define tte_arena ((int8_t *)tte_arena_words)
""" + (f"static int32_t tte_scratch_words[({shared.scratch} + 3) / 4];\n"
       "#define tte_scratch ((int8_t *)tte_scratch_words)\n#define tte_fscratch ((float *)tte_scratch_words)\n"
       if shared.scratch else "") + "\n" + shared.arrays_section() + "\n\n" + _tensor_table(program, layout, shared) \
        + """

static const tte_state_layout tte_layout = {TTE_FINGERPRINT, tte_tensors, TTE_STATE_COUNT};

static uint64_t tte_step_count;

uint64_t tte_steps(void) { return tte_step_count; }

void *tte_tensor_data(int32_t index) { return index >= 0 && index < TTE_STATE_COUNT ? tte_tensors[index].data : 0; }

tte_state_status tte_state_save(const tte_state_storage *storage) {
    return tte_state_write(&tte_layout, tte_step_count, storage);
}

tte_state_status tte_state_load(const tte_state_storage *storage) {
    uint64_t steps = 0;
    const tte_state_status status = tte_state_read(&tte_layout, storage, &steps);
    if (status == TTE_STATE_OK) tte_step_count = steps;
    return status;
}

""" + et.view_definitions("tte_train_step_s8") + f"""
int8_t *tte_input_buffer(void) {{ return {et.input_ptr}; }}

int tte_train_step_s8(const int8_t *input, int32_t label, float *loss) {{
    if (input == NULL || loss == NULL || label < 0 || label >= TTE_CLASSES) return -1;
""" + "\n".join(take_input) + f"""
    *{label} = label;
""" + "\n".join(et.body) + f"""
    *loss = *{loss};
    (void){unused};
    tte_step_count++;
    return 0;
}}

int tte_train_step(const float *input, int32_t label, float *loss) {{
    if (input == NULL) return -1;
""" + "\n".join(et.prologue) + f"""
    return tte_train_step_s8({et.input_ptr}, label, loss);
}}

""" + ef.view_definitions("tte_infer_run") + """
static int tte_infer_run(void) {
""" + "\n".join(ef.body) + """
    return 0;
}

int tte_infer_s8(const int8_t *input, float *logits) {
    if (input == NULL || logits == NULL) return -1;
""" + "\n".join(move_input) + """
    if (tte_infer_run() != 0) return -1;
""" + "\n".join(logits) + """
    return 0;
}

int tte_infer_f32(const float *input, float *logits) {
    if (input == NULL || logits == NULL) return -1;
""" + "\n".join(ef.prologue) + """
    if (tte_infer_run() != 0) return -1;
""" + "\n".join(logits) + """
    return 0;
}

int32_t tte_predict(const int8_t *input) {
    if (input == NULL) return -1;
""" + "\n".join(move_input) + f"""
    if (tte_infer_run() != 0) return -1;
    const float *scores = {fwd_logits};
    int32_t best = 0;
    for (int32_t c = 1; c < TTE_CLASSES; c++)
        if (scores[c] > scores[best]) best = c;
    return best;
}}
"""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "tte_model.h", out / "tte_model.c"]
    files[0].write_text(h)
    files[1].write_text(c)
    return files + copy_runtime(out)
