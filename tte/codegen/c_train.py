"""Emit a whole training program: ``tte_train_step`` (forward, loss, backward, updates, in the order the
passes scheduled) and ``tte_infer_f32``, over one static arena, with trained parameters and optimizer
state as static arrays (SRAM) and everything frozen as const arrays (flash).

A partially trained weight is split: its trained slice is a static array (SRAM), the remainder a const
array (flash), read through ``tte_split_weights``, exactly as the memory report counts them.  The int8
API (``tte_input_buffer`` / ``tte_train_step_s8``) trains on an input written straight into the arena.
The arena offsets and the scratch are the pipeline's plan (``Program.memory``, ``Program.inference``).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from ..errors import TteError
from ..ir.facts import LABEL, LOSS
from ..ops.cgen import CTYPES, Emitter, Shared, c_float, format_call, wrap_expr
from ..passes.memory import graph_scratch
from ..version import __version__
from .c_emitter import copy_runtime, emit_node, header


def _function(e: Emitter) -> None:
    e.deferred, e.prologue = [], []
    for node in e.g.nodes:
        emit_node(e, node)
    e.body += e.deferred


def emit_program(program, out_dir: str | os.PathLike) -> list[pathlib.Path]:
    """Write tte_model.h / tte_model.c (+ the runtime) for a compiled :class:`tte.Program`."""
    # the pipeline's plans: the training step's (the memory report's) and the inference function's
    train, memory = program.train, program.memory
    fwd, fwd_root, fwd_arena = program.inference
    shared = Shared(scratch=max(memory.scratch, graph_scratch(fwd)))
    state_order = list(train.state)
    for name in state_order:
        v = train[name]
        value = program.state[name]
        p = program.params.get(name)
        if p is not None and p.kind == "weight" and p.channels < v.shape[p.axis]:
            # the trained slice in SRAM, the rest in flash (program.state holds the whole tensor)
            trained = np.take(value, range(p.channels), axis=p.axis)
            frozen = np.take(value, range(p.channels, v.shape[p.axis]), axis=p.axis)
            shared.state[name] = shared.array(name, trained, CTYPES[v.dtype], const=False)
            shared.frozen_part[name] = shared.array(f"{name}_frozen", frozen, CTYPES[v.dtype])
            shared.split_channels[name] = p.channels
            continue
        shared.state[name] = shared.array(name, value, CTYPES[v.dtype], const=False)
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
    head = header(__version__, os.path.basename(str(program.source or fwd.name)))
    h = head + f"""#ifndef TTE_MODEL_H
#define TTE_MODEL_H

#include <stdint.h>

#define TTE_INPUT_SIZE {train[x].size}
#define TTE_INPUT_SCALE {c_float(train[train.nodes[0].output].quant.scale)}
#define TTE_INPUT_ZERO_POINT {int(train[train.nodes[0].output].quant.zero_point)}
#define TTE_CLASSES {fwd[logits_fwd].shape[1]}
#define TTE_ARENA_BYTES {arena}
#define TTE_SCRATCH_BYTES {shared.scratch}
#define TTE_STATE_COUNT {len(state_order)}

/* One SGD step on a float32 NCHW input (quantized inside) and its class; writes the loss before the
 * step.  0 on success. */
int tte_train_step(const float *input, int32_t label, float *loss);

/* The same on an int8 input that the caller has written into tte_input_buffer() (TTE_INPUT_SIZE values,
 * NCHW, quantized with TTE_INPUT_SCALE and TTE_INPUT_ZERO_POINT): no float copy of the input. */
int8_t *tte_input_buffer(void);
int tte_train_step_s8(int32_t label, float *loss);

/* float32 logits of the current model: from a float input, or from tte_input_buffer(). */
int tte_infer_f32(const float *input, float *logits);
int tte_infer_s8(float *logits);

/* The trained parameters and optimizer state, in the order of the training graph's state. */
void *tte_state_data(int32_t index);

#endif
"""
    # every view is named before the views are written out
    label, loss, unused = et.ptr(LABEL), et.ptr(LOSS), et.ptr(logits_train)
    logits = format_call("", f"memcpy(logits, {ef.ptr(logits_fwd)}, sizeof(float) * TTE_CLASSES)", ";")
    move_input = format_call("", f"memmove({ef.input_ptr}, {et.input_ptr}, TTE_INPUT_SIZE)", ";")
    states = "\n".join(wrap_expr("static void *const tte_states[TTE_STATE_COUNT > 0 ? TTE_STATE_COUNT : 1] = "
                                 f"{{{', '.join(shared.state[n] for n in state_order) or '0'}}}", 0, ";"))
    c = head + """#include <string.h>

#include "tte_model.h"
#include "tte_runtime.h"

""" + shared.call_macros() + """
static int32_t tte_arena_words[(TTE_ARENA_BYTES + 3) / 4];
#define tte_arena ((int8_t *)tte_arena_words)
""" + (f"static int32_t tte_scratch_words[({shared.scratch} + 3) / 4];\n"
       "#define tte_scratch ((int8_t *)tte_scratch_words)\n#define tte_fscratch ((float *)tte_scratch_words)\n"
       if shared.scratch else "") + "\n" + shared.arrays_section() + f"""

{states}

void *tte_state_data(int32_t index) {{ return index >= 0 && index < TTE_STATE_COUNT ? tte_states[index] : 0; }}

""" + et.view_definitions("tte_train_step_s8") + f"""
int8_t *tte_input_buffer(void) {{ return {et.input_ptr}; }}

int tte_train_step_s8(int32_t label, float *loss) {{
    if (label < 0 || label >= TTE_CLASSES) return -1;
    *{label} = label;
""" + "\n".join(et.body) + f"""
    *loss = *{loss};
    (void){unused};
    return 0;
}}

int tte_train_step(const float *input, int32_t label, float *loss) {{
""" + "\n".join(et.prologue) + """
    return tte_train_step_s8(label, loss);
}

""" + ef.view_definitions("tte_infer_body") + """
static int tte_infer_body(float *logits) {
""" + "\n".join(ef.body + logits) + """
    return 0;
}

int tte_infer_s8(float *logits) {
""" + "\n".join(move_input) + """
    return tte_infer_body(logits);
}

int tte_infer_f32(const float *input, float *logits) {
""" + "\n".join(ef.prologue) + """
    return tte_infer_body(logits);
}
"""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "tte_model.h", out / "tte_model.c"]
    files[0].write_text(h)
    files[1].write_text(c)
    return files + copy_runtime(out)
