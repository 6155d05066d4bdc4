"""Emit a whole training program: ``tte_train_step`` (forward, loss, backward, updates, in the order the
passes scheduled) and ``tte_infer_f32``, over one static arena, with trained parameters and optimizer
state as static arrays (SRAM) and everything frozen as const arrays (flash).

A partially trained weight is split: its trained slice is a static array (SRAM), the remainder a const
array (flash), read through ``tte_split_weights``, exactly as the memory report counts them.  The int8
API (``tte_input_buffer`` / ``tte_train_step_s8``) trains on an input written straight into the arena.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from ..autodiff.backward import LABEL, LOSS
from ..errors import TteError
from ..ir import Node
from .c_emitter import CTYPES, EMITTERS, HEADER, Emitter, Shared, c_float, conv_geo, copy_runtime, pool_geo

ROUNDING = {"nearest": "TTE_ROUND_NEAREST", "trunc": "TTE_ROUND_TRUNC", "stochastic": "TTE_ROUND_STOCHASTIC",
            "accumulate": "TTE_ROUND_ACCUMULATE"}


def _weights(e: Emitter, w: str, depthwise: bool = False) -> str:
    v = e.g[w]
    return (f"&(const tte_weights_s8){{{e.split_weights_init(w, depthwise)}, {e.weight_zero_points(w)}, "
            f"{e.array(w + '_scales', np.broadcast_to(v.quant.scale, (v.shape[0],)), 'float')}}}")


def _saved(e: Emitter, x: str) -> str:
    q = e.g[x].quant
    return f"&(const tte_saved_s8){{{e.ptr(x)}, {int(q.zero_point)}, {c_float(q.scale)}}}"


def _sgd(e: Emitter, node: Node, aux: str | None) -> str:
    a = node.attrs
    step = f"(uint32_t)*{e.ptr(aux)}" if a["rounding"] == "stochastic" else "0"
    residual = e.ptr(aux) if a["rounding"] == "accumulate" else "NULL"
    return (f"&(const tte_sgd_params){{{c_float(a['lr'])}, {ROUNDING[a['rounding']]}, {a.get('seed', 0)}u, "
            f"{a.get('stream', 0)}u, {step}, {a['qmin']}, {a['qmax']}, {residual}}}")


def emit_xent(e: Emitter, node: Node) -> None:
    z, label = node.inputs
    n, k = e.g[z].shape
    e.call(node, f"tte_xent_f32({n}, {k}, {e.ptr(z)}, {e.ptr(label)}, {e.ptr(node.outputs[0])}, "
                 f"{e.ptr(node.outputs[1])})")


def emit_ste(e: Emitter, node: Node) -> None:
    gy, mask = node.inputs
    e.call(node, f"tte_ste_f32({e.g[gy].size}, {e.ptr(gy)}, {e.ptr(mask)}, {e.ptr(node.output)})")


def emit_conv_grad_input(e: Emitter, node: Node) -> None:
    gy, w = node.inputs
    a = node.attrs
    geo = conv_geo(a)
    in_dims = "&(const tte_dims){%d, %d, %d, %d}" % tuple(a["in_shape"])
    e.need_scratch(4 * a["in_shape"][2] * a["in_shape"][3])
    depthwise = e.g[w].shape[1] == 1 and a["groups"] == e.g[w].shape[0] and a["groups"] > 1
    e.call(node, f"tte_conv_grad_input_f32({geo}, {e.dims(w)}, {_weights(e, w, depthwise)}, {e.dims(gy)}, {e.ptr(gy)}, "
                 f"{in_dims}, {e.ptr(node.output)}, tte_fscratch)")


def emit_conv_weight_update(e: Emitter, node: Node) -> None:
    gy, x, param, factor = node.inputs[:4]
    aux = node.inputs[4] if len(node.inputs) > 4 else None
    a = node.attrs
    kh, kw = a["kernel"]
    dw = 1 if a["depthwise"] else 0
    e.need_scratch(4 * (1 if dw else a["channels"]) * kh * kw)
    geo = conv_geo(a)
    e.call(node, f"tte_conv_weight_update_s8({geo}, {dw}, {a['channels']}, {e.dims(x)}, {_saved(e, x)}, "
                 f"{e.dims(gy)}, {e.ptr(gy)}, {e.value_const(factor)}, {_sgd(e, node, aux)}, {e.dims(param)}, "
                 f"{e.ptr(param)}, tte_fscratch)")


def emit_conv_grad_weight(e: Emitter, node: Node) -> None:
    gy, x = node.inputs
    a = node.attrs
    geo = conv_geo(a)
    o = e.g[gy].shape[1]
    w_dims = "&(const tte_dims){%d, %d, %d, %d}" % (o, e.g[x].shape[1] // a["groups"], *a["kernel"])
    e.call(node, f"tte_conv_grad_weight_f32({geo}, {1 if a['depthwise'] else 0}, {a['channels']}, {e.dims(x)}, "
                 f"{_saved(e, x)}, {e.dims(gy)}, {e.ptr(gy)}, {w_dims}, {e.ptr(node.output)})")


def emit_bias_grad(e: Emitter, node: Node) -> None:
    gy = node.inputs[0]
    e.call(node, f"tte_bias_grad_f32({e.dims(gy)}, {e.ptr(gy)}, {e.ptr(node.output)})")


def emit_gemm_grad_weight(e: Emitter, node: Node) -> None:
    gy, x = node.inputs
    n, m = e.g[gy].shape
    e.call(node, f"tte_gemm_grad_weight_f32({n}, {e.g[x].shape[1]}, {m}, {node.attrs['channels']}, {_saved(e, x)}, "
                 f"{e.ptr(gy)}, {e.ptr(node.output)})")


def emit_bias_update(e: Emitter, node: Node) -> None:
    gy, param, factor = node.inputs[:3]
    aux = node.inputs[3] if len(node.inputs) > 3 else None
    e.call(node, f"tte_bias_update_s32({e.dims(gy)}, {e.ptr(gy)}, {e.value_const(factor)}, {_sgd(e, node, aux)}, "
                 f"{e.ptr(param)})")


def emit_gemm_grad_input(e: Emitter, node: Node) -> None:
    gy, w = node.inputs
    n, m = e.g[gy].shape
    e.call(node, f"tte_gemm_grad_input_f32({n}, {e.g[w].shape[1]}, {m}, {e.ptr(gy)}, {_weights(e, w)}, "
                 f"{e.ptr(node.output)})")


def emit_gemm_weight_update(e: Emitter, node: Node) -> None:
    gy, x, param, factor = node.inputs[:4]
    aux = node.inputs[4] if len(node.inputs) > 4 else None
    n, m = e.g[gy].shape
    e.call(node, f"tte_gemm_weight_update_s8({n}, {e.g[x].shape[1]}, {m}, {node.attrs['channels']}, "
                 f"{_saved(e, x)}, {e.ptr(gy)}, {e.value_const(factor)}, {_sgd(e, node, aux)}, {e.ptr(param)})")


def emit_sgd(e: Emitter, node: Node) -> None:
    param, grad, factor = node.inputs[:3]
    aux = node.inputs[3] if len(node.inputs) > 3 else None
    if e.g[param].dtype == "int8":
        g_shape = e.g[grad].shape
        size = int(np.prod(g_shape))
        e.call(node, f"tte_sgd_s8({size}, {size // g_shape[0]}, {e.ptr(grad)}, {e.value_const(factor)}, "
                     f"{_sgd(e, node, aux)}, {e.ptr(param)})")
    else:
        e.call(node, f"tte_sgd_s32({e.g[param].size}, {e.ptr(grad)}, {e.value_const(factor)}, "
                     f"{_sgd(e, node, aux)}, {e.ptr(param)})")


def emit_momentum(e: Emitter, node: Node) -> None:
    vel, grad = node.inputs
    e.call(node, f"tte_momentum_f32({e.g[vel].size}, {c_float(node.attrs['beta'])}, {e.ptr(grad)}, {e.ptr(vel)})")


def emit_avgpool_grad(e: Emitter, node: Node) -> None:
    a = node.attrs
    geo = pool_geo(a)
    in_dims = "&(const tte_dims){%d, %d, %d, %d}" % tuple(a["in_shape"])
    gy = node.inputs[0]
    e.call(node, f"tte_avgpool_grad_f32({geo}, {a['count_include_pad']}, {e.dims(gy)}, {e.ptr(gy)}, {in_dims}, "
                 f"{e.ptr(node.output)})")


def emit_global_avgpool_grad(e: Emitter, node: Node) -> None:
    in_dims = "&(const tte_dims){%d, %d, %d, %d}" % tuple(node.attrs["in_shape"])
    e.call(node, f"tte_global_avgpool_grad_f32({in_dims}, {e.ptr(node.inputs[0])}, {e.ptr(node.output)})")


def emit_maxpool_grad(e: Emitter, node: Node) -> None:
    gy, x = node.inputs
    a = node.attrs
    geo = pool_geo(a)
    e.call(node, f"tte_maxpool_grad_f32({geo}, {e.dims(x)}, {e.ptr(x)}, {e.dims(gy)}, {e.ptr(gy)}, "
                 f"{e.ptr(node.output)})")


def emit_slice(e: Emitter, node: Node) -> None:
    gy = node.inputs[0]
    a = node.attrs
    if a["axis"] != 1:
        raise TteError(f"slice '{node.name}': only channel slices can be emitted")
    e.call(node, f"tte_slice_channels_f32({e.dims(gy)}, {a['start']}, {a['stop']}, {e.ptr(gy)}, {e.ptr(node.output)})")


def emit_alias(e: Emitter, node: Node) -> None:
    if e.root[node.output] != e.root[node.inputs[0]]:
        raise AssertionError("a reshape must alias its operand")
    e.body.append(f"    /* {node.op} {node.name}: a view of the same bytes */")


def emit_grad_add(e: Emitter, node: Node) -> None:
    a, b = node.inputs
    e.call(node, f"tte_add_f32({e.g[a].size}, {e.ptr(a)}, {e.ptr(b)}, {e.ptr(node.output)})")


def emit_count(e: Emitter, node: Node) -> None:
    e.deferred.append(f"    (*{e.ptr(node.inputs[0])})++; /* {node.name} */")


def emit_quantize(e: Emitter, node: Node) -> None:
    """Quantizing the float input is the float API's prologue; the int8 API finds the input in place."""
    q = e.g[node.output].quant
    e.prologue.append(f"    TTE_CHECK(tte_quantize_f32({e.g[node.output].size}, input, {c_float(q.scale)}, "
                      f"{int(q.zero_point)}, {e.ptr(node.output)}));")
    e.input_ptr = e.ptr(node.output)


def emit_dequantize(e: Emitter, node: Node) -> None:
    x = node.inputs[0]
    q = e.g[x].quant
    e.call(node, f"tte_dequantize_s8({e.g[x].size}, {e.ptr(x)}, {c_float(q.scale)}, {int(q.zero_point)}, "
                 f"{e.ptr(node.output)})")


TRAIN_EMITTERS = dict(EMITTERS, **{
    "xent": emit_xent, "ste": emit_ste, "conv_grad_input": emit_conv_grad_input,
    "conv_weight_update": emit_conv_weight_update, "bias_update": emit_bias_update,
    "gemm_grad_input": emit_gemm_grad_input, "gemm_weight_update": emit_gemm_weight_update, "sgd": emit_sgd,
    "conv_grad_weight": emit_conv_grad_weight, "bias_grad": emit_bias_grad, "gemm_grad_weight": emit_gemm_grad_weight,
    "momentum": emit_momentum, "avgpool_grad": emit_avgpool_grad, "global_avgpool_grad": emit_global_avgpool_grad,
    "maxpool_grad": emit_maxpool_grad, "slice": emit_slice, "freshape": emit_alias, "grad_add": emit_grad_add,
    "count": emit_count, "quantize": emit_quantize, "dequantize": emit_dequantize,
})


def _function(e: Emitter) -> None:
    e.deferred, e.prologue = [], []
    for node in e.g.nodes:
        emitter = TRAIN_EMITTERS.get(node.op)
        if emitter is None:
            raise TteError(f"no C emitter for op '{node.op}' (node '{node.name}'); emittable ops: "
                           f"{', '.join(sorted(TRAIN_EMITTERS))}")
        emitter(e, node)
    e.body += e.deferred


def emit_program(program, out_dir: str | os.PathLike) -> list[pathlib.Path]:
    """Write tte_model.h / tte_model.c (+ the runtime) for a compiled :class:`tte.Program`."""
    from .. import __version__
    from ..passes.forward import fuse_pointwise_depthwise

    # inference runs the forward graph with its frozen expansions fused, as the training step does
    train, fwd = program.train, fuse_pointwise_depthwise(program.forward, set(program.params))[0]
    shared = Shared()
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
    et, ef = Emitter(train, shared), Emitter(fwd, shared)
    _function(et)
    _function(ef)
    if LABEL not in train.inputs or train.outputs[0] != LOSS:
        raise TteError("not a training graph")
    x = train.inputs[0]
    logits_train = train.outputs[1]
    logits_fwd = fwd.outputs[0]
    # one arena serves both functions; the training step's plan is the one the memory report gives
    arena = max(et.plan.size, ef.plan.size)
    head = HEADER.format(version=__version__, source=os.path.basename(str(program.source or fwd.name)))
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
    label_ptr = et.ptr(LABEL)
    state_list = ", ".join(shared.state[n] for n in state_order) or "0"
    c = head + """#include <string.h>

#include "tte_model.h"
#include "tte_runtime.h"

""" + shared.call_macros() + """
static int32_t tte_arena_words[(TTE_ARENA_BYTES + 3) / 4];
#define tte_arena ((int8_t *)tte_arena_words)
""" + (f"static int32_t tte_scratch_words[({shared.scratch} + 3) / 4];\n"
       "#define tte_scratch ((int8_t *)tte_scratch_words)\n#define tte_fscratch ((float *)tte_scratch_words)\n"
       if shared.scratch else "") + "\n" + "\n\n".join(shared.consts) + f"""

static void *const tte_states[TTE_STATE_COUNT > 0 ? TTE_STATE_COUNT : 1] = {{{state_list}}};

void *tte_state_data(int32_t index) {{ return index >= 0 && index < TTE_STATE_COUNT ? tte_states[index] : 0; }}

int8_t *tte_input_buffer(void) {{ return {et.input_ptr}; }}

int tte_train_step_s8(int32_t label, float *loss) {{
    if (label < 0 || label >= TTE_CLASSES) return -1;
    *{label_ptr} = label;
""" + "\n".join(et.body) + f"""
    *loss = *{et.ptr(LOSS)};
    (void){et.ptr(logits_train)};
    return 0;
}}

int tte_train_step(const float *input, int32_t label, float *loss) {{
""" + "\n".join(et.prologue) + """
    return tte_train_step_s8(label, loss);
}

static int tte_infer_body(float *logits) {
""" + "\n".join(ef.body) + f"""
    memcpy(logits, {ef.ptr(logits_fwd)}, sizeof(float) * TTE_CLASSES);
    return 0;
}}

int tte_infer_s8(float *logits) {{
    memmove({ef.input_ptr}, {et.input_ptr}, TTE_INPUT_SIZE);
    return tte_infer_body(logits);
}}

int tte_infer_f32(const float *input, float *logits) {{
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
