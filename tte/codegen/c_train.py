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

The training step and inference are each emitted as two static functions, their frozen prefix (the calls before the
first that reads what trains, :mod:`tte.passes.prefix`) and the rest; the host's cached entry points
(``tte_prefix_s8`` / ``tte_train_step_cached``, ``tte_infer_prefix_s8`` / ``tte_predict_cached``) copy the frontier
between the arena and a caller's buffer around the same two functions, so a step from a cached frontier runs the very
statements of a whole one.  A bare-metal build leaves the cached entry points out (``TTE_CACHED_PREFIX``).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from ..errors import TteError
from ..ir.facts import LABEL, LOSS, value_bytes
from ..ops.cgen import CTYPES, LINE, Emitter, Shared, c_comment, c_float, format_call
from ..passes.memory import graph_scratch
from ..passes.prefix import FrozenPrefix, frozen_prefix
from ..version import __version__
from . import state as st
from .c_emitter import copy_runtime, emit_node, header

# runtime files the emitted program calls itself, not through an op: the persistence of its state
PROGRAM_RUNTIME = ("tte_crc32.c", "tte_state_blob_bytes.c", "tte_state_find.c", "tte_state_read.c",
                   "tte_state_write.c")


def _function(e: Emitter, cut: int) -> int:
    """Emit every node of ``e.g`` into ``e.body`` (the statements they defer at its end); return the index of the
    first line of ``nodes[cut:]`` in it: the lines before are the frozen prefix's, the rest the tail's."""
    e.deferred, e.prologue = [], []
    split = None
    for i, node in enumerate(e.g.nodes):
        if i == cut:
            split = len(e.body)
        emit_node(e, node)
        if i < cut and e.deferred:
            raise AssertionError(f"node '{node.name}' of the frozen prefix deferred a statement to the end of the step")
    split = len(e.body) if split is None else split
    e.body += e.deferred
    return split


def cached_prefixes(program) -> tuple[FrozenPrefix, FrozenPrefix]:
    """The frozen prefixes of the training step (before its first node that reads a trained parameter, optimizer
    state or the label) and of inference (before its first node that reads a trained parameter): what the emitted
    tte_prefix_s8 and tte_infer_prefix_s8 run (:func:`tte.passes.prefix.frozen_prefix`)."""
    return frozen_prefix(program.train), frozen_prefix(program.inference[0], program.params)


def frontier_layout(g, root: dict[str, str], prefix: FrozenPrefix) -> list[tuple[str, int]]:
    """The frontier buffer of ``prefix`` as (value, bytes), concatenated in the order of
    :attr:`FrozenPrefix.frontier`, one segment per arena buffer (``root``: value -> buffer): a value whose buffer is
    already listed (a view) adds nothing, the larger of the two is kept.  Bytes are the value's in memory (a bool
    saturation mask is bit-packed); dtypes do not matter, the copy is bytewise."""
    by_root: dict[str, tuple[str, int]] = {}
    for v in prefix.frontier:
        if v not in root:
            raise TteError(f"the frontier value '{v}' does not live in the arena")
        size = value_bytes(g, v)
        if root[v] not in by_root or size > by_root[root[v]][1]:
            by_root[root[v]] = (v, size)
    return list(by_root.values())


def frontier_segments(e: Emitter, prefix: FrozenPrefix) -> list[tuple[str, int, str]]:
    """:func:`frontier_layout` as (view, bytes, a note on the tensor) for the emitted copies."""
    segments = []
    for v, size in frontier_layout(e.g, e.root, prefix):
        val = e.g[v]
        segments.append((e.ptr(v), size, f"{v}: {val.dtype} [{', '.join(map(str, val.shape))}], {size:,} B"))
    return segments


def _frontier_copies(segments: list[tuple[str, int, str]], into_arena: bool) -> list[str]:
    """memcpy statements between the arena views of ``segments`` and the frontier buffer, at running offsets."""
    lines, offset = [], 0
    for view, size, note in segments:
        at = f"frontier + {offset}" if offset else "frontier"
        if not into_arena:
            lines += c_comment(note, 4)
        lines += format_call("", f"memcpy({view}, {at}, {size})" if into_arena else f"memcpy({at}, {view}, {size})",
                             ";")
        offset += size
    return lines


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


def _prefix_note(g, prefix: FrozenPrefix, what: str, sources: str) -> str:
    """The comment over a frozen prefix's static function."""
    if prefix.work == 0:
        return (f"The frozen prefix of {what}: nothing to run (its first node that reads {sources} is node "
                f"{prefix.cut} of {len(g.nodes)}, right after the input).")
    return (f"The frozen prefix of {what}: its first {prefix.cut} of {len(g.nodes)} nodes, those before the first "
            f"that reads {sources} (tte.passes.prefix): the same for an image at every epoch.")


_ARENA_API = """/* Training and inference; each returns 0 on success and -1 on a NULL pointer, a label outside
 * [0, TTE_CLASSES) or a failed kernel.  int8 inputs are TTE_INPUT_SIZE values, NCHW, quantized with TTE_INPUT_SCALE and
 * TTE_INPUT_ZERO_POINT; tte_input_buffer() is where the step reads them, inside the arena: an input written
 * there is not copied (and does not survive the call: the step reuses its bytes, e.g. for the patched stage's
 * result). */
int8_t *tte_input_buffer(void);

/* One SGD step on an int8 input and its class; writes the loss before the step. */
int tte_train_step_s8(const int8_t *input, int32_t label, float *loss);
"""

_STREAMED_API = """/* Training and inference; each returns 0 on success and -1 on a NULL pointer, a label outside
 * [0, TTE_CLASSES), a failed kernel or a failed row source.  int8 inputs are TTE_INPUT_SIZE values in the model's
 * input layout (TTE_INPUT_INDEX), quantized with TTE_INPUT_SCALE and TTE_INPUT_ZERO_POINT.
 *
 * The input is streamed (tte compile --stream-input): the arena holds no input.  The first layers run band by band
 * and ask a row source (tte_row_source, tte_runtime.h) for the input's rows as they need them, each row once, from
 * the top down: for row r, each channel c's TTE_INPUT_WIDTH values at dst + c * channel_stride.  A camera's lines
 * or a file read row by row feed the *_rows entry points directly; the others read a whole input where the caller
 * holds it (flash, external memory, or SRAM outside the planned budget). */
#define TTE_INPUT_STREAMED 1
#define TTE_INPUT_CHANNELS %d
#define TTE_INPUT_HEIGHT %d
#define TTE_INPUT_WIDTH %d
/* Where value (channel c, row r, column x) sits in a whole int8 input (%s). */
#define TTE_INPUT_INDEX(c, r, x) %s

/* One SGD step on an int8 input from a row source and its class; writes the loss before the step. */
int tte_train_step_rows(tte_row_source source, void *context, int32_t label, float *loss);

/* The same on a whole int8 input, read in place. */
int tte_train_step_s8(const int8_t *input, int32_t label, float *loss);

/* Inference on an input from a row source: float32 logits (TTE_CLASSES), or the top-1 class (-1 on an error). */
int tte_infer_rows(tte_row_source source, void *context, float *logits);
int32_t tte_predict_rows(tte_row_source source, void *context);
"""


def _streamed_api(node) -> str:
    """The header's part on a streamed input: the entry points, the input's dimensions and layout."""
    body = node.attrs["body"]
    _, c, h, w = body[body.inputs[0]].shape
    if node.attrs["plan"].channels_last:
        layout, index = "channels last, NHWC", "(((r) * TTE_INPUT_WIDTH + (x)) * TTE_INPUT_CHANNELS + (c))"
        index += "\n#define TTE_INPUT_CHANNELS_LAST 1"
    else:
        layout, index = "NCHW", "(((c) * TTE_INPUT_HEIGHT + (r)) * TTE_INPUT_WIDTH + (x))"
    return _STREAMED_API % (c, h, w, layout, index)


def _row_sources(quantize: str) -> str:
    """A streamed input's plumbing in tte_model.c: the row source the patched stage reads, and the sources over a
    whole int8 or float32 input the caller holds (the float one quantizes each row with ``quantize``)."""
    return f"""/* The row source the patched stage's calls read (tte_patch_fetch_s8), set by each entry point. */
static tte_row_source tte_row_source_now;
static void *tte_row_context_now;

static void tte_read_rows(tte_row_source source, void *context) {{
    tte_row_source_now = source;
    tte_row_context_now = context;
}}

/* Row sources over a whole input the caller holds (tte_train_step_s8, tte_train_step, tte_infer_*, tte_predict). */
static const int8_t *tte_input_s8;
static const float *tte_input_f32;

static int tte_rows_s8(void *context, int32_t row, int8_t *dst, int32_t channel_stride) {{
    (void)context;
    for (int32_t c = 0; c < TTE_INPUT_CHANNELS; c++)
        for (int32_t x = 0; x < TTE_INPUT_WIDTH; x++)
            dst[c * channel_stride + x] = tte_input_s8[TTE_INPUT_INDEX(c, row, x)];
    return 0;
}}

static int tte_rows_f32(void *context, int32_t row, int8_t *dst, int32_t channel_stride) {{
    (void)context;
    for (int32_t c = 0; c < TTE_INPUT_CHANNELS; c++)
        for (int32_t x = 0; x < TTE_INPUT_WIDTH; x++)
            if ({quantize}(1, tte_input_f32 + TTE_INPUT_INDEX(c, row, x), TTE_INPUT_SCALE, TTE_INPUT_ZERO_POINT,
                           dst + c * channel_stride + x) != TTE_OK)
                return -1;
    return 0;
}}

"""


def _static_function(name: str, body: list[str], note: str) -> str:
    """``static int name(void)`` running ``body``, after the comment ``note``; 0 on success, -1 if a call fails."""
    return "\n".join([*c_comment(note), f"static int {name}(void) {{", *body, "    return 0;", "}"])


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
    train_prefix, infer_prefix = cached_prefixes(program)
    train_split = _function(et, train_prefix.cut)
    infer_split = _function(ef, infer_prefix.cut)
    train_frontier, infer_frontier = frontier_segments(et, train_prefix), frontier_segments(ef, infer_prefix)
    if LABEL not in train.inputs or train.outputs[0] != LOSS:
        raise TteError("not a training graph")
    x = train.inputs[0]
    stream = next((n for n in train.nodes if n.op == "patch" and n.attrs["plan"].streamed), None)
    streamed = stream is not None
    quantized = "row by row" if streamed else "into tte_input_buffer()"
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
#define TTE_FRONTIER_BYTES {sum(size for _, size, _ in train_frontier)}
#define TTE_INFER_FRONTIER_BYTES {sum(size for _, size, _ in infer_frontier)}
/* 64 bits of SHA-256 over the compiled program's structure and parameters (tte.codegen.state.fingerprint): a
 * state blob carries it, and tte_state_load refuses one of another model */
#define TTE_FINGERPRINT UINT64_C(0x{fp:016x})
#define TTE_STATE_BLOB_BYTES {st.blob_bytes(layout)}u /* header, the trained tensors, CRC-32 */
#define TTE_STATE_SLOT_BYTES {st.slot_bytes(layout)}u /* the smallest slot: the blob in whole TTE_STATE_UNITs */
#define TTE_STATE_STORAGE_BYTES (2u * TTE_STATE_SLOT_BYTES)

""" + (_streamed_api(stream) if streamed else _ARENA_API) + f"""
/* The same from a float32 input of the model's input shape (quantized inside, {quantized}). */
int tte_train_step(const float *input, int32_t label, float *loss);

/* float32 logits (TTE_CLASSES) of the current model, from an int8 or a float32 input. */
int tte_infer_s8(const int8_t *input, float *logits);
int tte_infer_f32(const float *input, float *logits);

/* The top-1 class of an int8 input, in [0, TTE_CLASSES) (the lowest on a tie); -1 on an error. */
int32_t tte_predict(const int8_t *input);

/* Host training from a cache of the frozen prefix (tte.trainer.fit): with a sparse-update scheme, the first calls
 * of a step read nothing but the input (the frozen prefix: those before the first one that reads a trained
 * parameter, optimizer state or the label), so an image's results are the same at every epoch.
 * tte_prefix_s8 runs them on an int8 input and copies out the tensors the rest of the step reads of them, the
 * frontier: TTE_FRONTIER_BYTES, the tensors one after the other in the order of tte_prefix_s8's copies in
 * tte_model.c (the frontier buffer must not lie in the arena).
 * tte_train_step_cached copies a frontier back into the arena and runs the rest of the step: the same statements as
 * tte_train_step_s8 runs after its prefix, so the same loss, update and step count, bit for bit.
 * tte_infer_prefix_s8 / tte_predict_cached do the same for tte_predict, whose own arena plan gives it its own
 * frontier (TTE_INFER_FRONTIER_BYTES).  A bare-metal build (TTE_BARE_METAL) leaves them out unless it defines
 * TTE_CACHED_PREFIX. */
#if !defined(TTE_BARE_METAL) && !defined(TTE_CACHED_PREFIX)
#define TTE_CACHED_PREFIX
#endif
#ifdef TTE_CACHED_PREFIX
int tte_prefix_s8(const int8_t *input, int8_t *frontier);
int tte_train_step_cached(const int8_t *frontier, int32_t label, float *loss);
int tte_infer_prefix_s8(const int8_t *input, int8_t *frontier);
int32_t tte_predict_cached(const int8_t *frontier);
#endif

/* Steps trained: counted by tte_train_step_s8, saved and loaded with the state. */
uint64_t tte_steps(void);

/* The SGD learning rate of the next steps: TTE_LEARNING_RATE (the compiled --lr) until tte_set_learning_rate
 * changes it, e.g. for a schedule (warm-up, cosine decay) between steps; returns -1 (and keeps the rate) unless
 * lr is positive and finite.  Every trained parameter uses it; it is not part of the saved state. */
#define TTE_LEARNING_RATE {c_float(program.options.lr)}
int tte_set_learning_rate(float lr);
float tte_learning_rate_now(void);

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
    if streamed:  # no input in the arena: the patched stage asks a row source for rows
        take_input = move_input = ["    tte_read_rows(tte_rows_s8, NULL);", "    tte_input_s8 = input;"]
        float_train = ["    tte_input_f32 = input;", "    return tte_train_step_rows(tte_rows_f32, NULL, label, loss);"]
        float_infer = ["    tte_read_rows(tte_rows_f32, NULL);", "    tte_input_f32 = input;"]
    else:
        take_input = [f"    if (input != {et.input_ptr})", f"        memmove({et.input_ptr}, input, TTE_INPUT_SIZE);"]
        move_input = format_call("", f"memmove({ef.input_ptr}, input, TTE_INPUT_SIZE)", ";")
        float_train = et.prologue + [f"    return tte_train_step_s8({et.input_ptr}, label, loss);"]
        float_infer = ef.prologue
    # each step as its frozen prefix and the rest: the cached entry points run the same two functions
    train_functions = "\n\n".join([
        _static_function("tte_train_prefix", et.body[:train_split],
                         _prefix_note(train, train_prefix, "the training step",
                                      "a trained parameter, optimizer state or the label")),
        _static_function("tte_train_tail", et.body[train_split:],
                         "The rest of the training step: forward from there, the loss, backward and updates.")])
    infer_functions = "\n\n".join([
        _static_function("tte_infer_prefix", ef.body[:infer_split],
                         _prefix_note(fwd, infer_prefix, "inference", "a trained parameter")),
        _static_function("tte_infer_tail", ef.body[infer_split:], "The rest of inference.")])
    c = head + """#include <float.h>
#include <string.h>

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

static float tte_learning_rate = TTE_LEARNING_RATE;

int tte_set_learning_rate(float lr) {
    if (!(lr > 0.0f && lr <= FLT_MAX)) return -1; /* also refuses NaN and infinity */
    tte_learning_rate = lr;
    return 0;
}

float tte_learning_rate_now(void) { return tte_learning_rate; }

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

""" + (_row_sources(et.quantize_rows) if streamed else "") + et.view_definitions("tte_train_step_s8") + (
        "" if streamed else f"""
int8_t *tte_input_buffer(void) {{ return {et.input_ptr}; }}
""") + "\n" + train_functions + f"""

static int tte_train_run(int32_t label, float *loss) {{
    *{label} = label;
    if (tte_train_prefix() != 0 || tte_train_tail() != 0) return -1;
    *loss = *{loss};
    (void){unused};
    tte_step_count++;
    return 0;
}}

int tte_train_step_s8(const int8_t *input, int32_t label, float *loss) {{
    if (input == NULL || loss == NULL || label < 0 || label >= TTE_CLASSES) return -1;
""" + "\n".join(take_input) + """
    return tte_train_run(label, loss);
}
""" + ("""
int tte_train_step_rows(tte_row_source source, void *context, int32_t label, float *loss) {
    if (source == NULL || loss == NULL || label < 0 || label >= TTE_CLASSES) return -1;
    tte_read_rows(source, context);
    return tte_train_run(label, loss);
}
""" if streamed else "") + """
int tte_train_step(const float *input, int32_t label, float *loss) {
    if (input == NULL) return -1;
""" + "\n".join(float_train) + """
}

""" + ef.view_definitions("tte_infer_run") + "\n" + infer_functions + f"""

static int tte_infer_run(void) {{ return tte_infer_prefix() != 0 ? -1 : tte_infer_tail(); }}

/* The top-1 class of the logits inference left in the arena (the lowest on a tie). */
static int32_t tte_top1(void) {{
    const float *scores = {fwd_logits};
    int32_t best = 0;
    for (int32_t c = 1; c < TTE_CLASSES; c++)
        if (scores[c] > scores[best]) best = c;
    return best;
}}

int tte_infer_s8(const int8_t *input, float *logits) {{
    if (input == NULL || logits == NULL) return -1;
""" + "\n".join(move_input) + """
    if (tte_infer_run() != 0) return -1;
""" + "\n".join(logits) + """
    return 0;
}

int tte_infer_f32(const float *input, float *logits) {
    if (input == NULL || logits == NULL) return -1;
""" + "\n".join(float_infer) + """
    if (tte_infer_run() != 0) return -1;
""" + "\n".join(logits) + """
    return 0;
}

int32_t tte_predict(const int8_t *input) {
    if (input == NULL) return -1;
""" + "\n".join(move_input) + """
    if (tte_infer_run() != 0) return -1;
    return tte_top1();
}
""" + ("""
int tte_infer_rows(tte_row_source source, void *context, float *logits) {
    if (source == NULL || logits == NULL) return -1;
    tte_read_rows(source, context);
    if (tte_infer_run() != 0) return -1;
""" + "\n".join(logits) + """
    return 0;
}

int32_t tte_predict_rows(tte_row_source source, void *context) {
    if (source == NULL) return -1;
    tte_read_rows(source, context);
    if (tte_infer_run() != 0) return -1;
    return tte_top1();
}
""" if streamed else "") + """
#ifdef TTE_CACHED_PREFIX
/* The cached frozen prefix (tte_model.h).  tte_prefix_s8 writes the training step's frontier in the order of its
 * copies, each tensor named; tte_train_step_cached reads it back in the same order. */
int tte_prefix_s8(const int8_t *input, int8_t *frontier) {
    if (input == NULL || frontier == NULL) return -1;
""" + "\n".join(take_input) + """
    if (tte_train_prefix() != 0) return -1;
""" + "\n".join(_frontier_copies(train_frontier, into_arena=False)) + """
    return 0;
}

int tte_train_step_cached(const int8_t *frontier, int32_t label, float *loss) {
    if (frontier == NULL || loss == NULL || label < 0 || label >= TTE_CLASSES) return -1;
""" + "\n".join(_frontier_copies(train_frontier, into_arena=True)) + f"""
    *{label} = label;
    if (tte_train_tail() != 0) return -1;
    *loss = *{loss};
    tte_step_count++;
    return 0;
}}

/* The same for tte_predict, over inference's own plan and frontier. */
int tte_infer_prefix_s8(const int8_t *input, int8_t *frontier) {{
    if (input == NULL || frontier == NULL) return -1;
""" + "\n".join(move_input) + """
    if (tte_infer_prefix() != 0) return -1;
""" + "\n".join(_frontier_copies(infer_frontier, into_arena=False)) + """
    return 0;
}

int32_t tte_predict_cached(const int8_t *frontier) {
    if (frontier == NULL) return -1;
""" + "\n".join(_frontier_copies(infer_frontier, into_arena=True)) + """
    if (tte_infer_tail() != 0) return -1;
    return tte_top1();
}
#endif
"""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "tte_model.h", out / "tte_model.c"]
    files[0].write_text(h)
    files[1].write_text(c)
    return files + copy_runtime(out)
