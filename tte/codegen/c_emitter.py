"""Emit C for a graph: constants (flash), one static arena (planned), and the calls, op by op.

This module holds the emitter machinery and the forward ops' emitters, and ``emit_inference`` for a
forward graph alone (``tte_infer(const int8_t *input, int8_t *logits)`` and ``tte_infer_f32``); whole
training programs are :mod:`tte.codegen.c_train`.  Output is deterministic: the same graph gives
byte-identical files.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil

import numpy as np

from ..autodiff.scheme import is_depthwise
from ..errors import TteError
from ..ir import Graph, Node
from ..passes.arena import plan_arena
from ..passes.memory import liveness
from ..reference import semantics as sem

RUNTIME_DIR = pathlib.Path(os.environ.get("TTE_RUNTIME_DIR", pathlib.Path(__file__).resolve().parents[2] /
                                          "runtime_c"))
CTYPES = {"int8": "int8_t", "int32": "int32_t", "float32": "float", "bool": "uint8_t"}
ACC_LIMIT = 2**31 - 1


def c_float(x) -> str:
    """An exact float32 literal."""
    f = float(np.float32(x))
    if not np.isfinite(f):
        raise TteError(f"cannot emit the non-finite constant {f}")
    return f"{f.hex()}f" if f != 0 else "0.0f"


def c_ident(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


class Shared:
    """What the functions of one emitted program share: constants (flash), state (SRAM), scratch."""

    def __init__(self) -> None:
        self.consts: list[str] = []
        self.const_names: dict[str, str] = {}
        self.state: dict[str, str] = {}  # state value -> its static array (a split weight: the trained slice)
        self.frozen_part: dict[str, str] = {}  # split weight -> const array of its untrained remainder
        self.split_channels: dict[str, int] = {}  # split weight -> trained leading channels (rows if depthwise)
        self.op_kinds: list[str] = []  # for TTE_PROFILE: time per kind of op
        self.scratch = 0

    def kind(self, op: str) -> int:
        if op not in self.op_kinds:
            self.op_kinds.append(op)
        return self.op_kinds.index(op)

    def call_macros(self) -> str:
        """TTE_CALL(kind, call): checks the status; with -DTTE_PROFILE (bare metal) also adds up SysTick
        ticks per kind of op, printed by tte_profile_print()."""
        names = ", ".join(f'"{k}"' for k in self.op_kinds) or '""'
        n = max(len(self.op_kinds), 1)
        return f"""#define TTE_CHECK(call) do {{ if ((call) != TTE_OK) return -1; }} while (0)
#ifdef TTE_PROFILE
#include <stdio.h>
extern uint64_t tte_ticks(void);
static uint64_t tte_profile_ticks[{n}];
static const char *const tte_profile_names[{n}] = {{{names}}};
#define TTE_CALL(kind, call) do {{ uint64_t t0_ = tte_ticks(); TTE_CHECK(call); \\
    tte_profile_ticks[kind] += tte_ticks() - t0_; }} while (0)
void tte_profile_print(void) {{
    for (int i = 0; i < {n}; i++)
        printf("profile %s ticks %lu\\n", tte_profile_names[i], (unsigned long)tte_profile_ticks[i]);
}}
#else
#define TTE_CALL(kind, call) TTE_CHECK(call)
#endif
"""

    def array(self, hint: str, data: np.ndarray, ctype: str, const: bool = True) -> str:
        name = f"{'k' if const else 's'}{len(self.consts)}_{c_ident(hint)[:48]}"
        flat = np.asarray(data).reshape(-1)
        items = [c_float(v) for v in flat] if ctype == "float" else [str(int(v)) for v in flat]
        lines = [", ".join(items[i:i + 16]) for i in range(0, len(items), 16)]
        qualifier = "static const" if const else "static"
        self.consts.append(f"{qualifier} {ctype} {name}[{max(len(items), 1)}] = {{\n    " +
                           ",\n    ".join(lines or ["0"]) + "\n};")
        return name


class Emitter:
    def __init__(self, g: Graph, shared: Shared | None = None):
        self.g = g
        self.shared = shared or Shared()
        self.body: list[str] = []
        buffers, self.root = liveness(g)
        self.plan = plan_arena(buffers, alignment=4)
        # a state update writes the state array in place
        self.state_of = {new: old for old, new in g.state_updates.items()}

    @property
    def consts(self) -> list[str]:
        return self.shared.consts

    @property
    def scratch(self) -> int:
        return self.shared.scratch

    # -- constants ----------------------------------------------------------------------------
    def array(self, hint: str, data: np.ndarray, ctype: str) -> str:
        return self.shared.array(hint, data, ctype)

    def value_const(self, name: str) -> str:
        """A constant's array, or the SRAM array of a trained parameter."""
        if name in self.shared.state:
            return self.shared.state[name]
        if name not in self.shared.const_names:
            v = self.g[name]
            self.shared.const_names[name] = self.array(name, v.data, CTYPES[v.dtype])
        return self.shared.const_names[name]

    def split_weights_init(self, name: str, depthwise: bool) -> str:
        """The initializer of a conv weight's tte_split_weights: the trained slice (SRAM) and the frozen
        rest (flash), or the whole tensor."""
        if name in self.shared.frozen_part:
            return (f"{{{self.shared.state[name]}, {self.shared.frozen_part[name]}, "
                    f"{self.shared.split_channels[name]}}}")
        return f"{{{self.value_const(name)}, NULL, {self.g[name].shape[0 if depthwise else 1]}}}"

    def split_weights(self, name: str, depthwise: bool) -> str:
        return f"&(const tte_split_weights){self.split_weights_init(name, depthwise)}"

    def weight_zero_points(self, name: str) -> str:
        zp = self.g[name].quant.zero_point
        return "NULL" if not np.any(zp) else self.array(f"{name}_zp", np.broadcast_to(zp, (self.g[name].shape[0],)),
                                                         "int32_t")

    # -- buffers --------------------------------------------------------------------------------
    def ptr(self, name: str) -> str:
        v = self.g[name]
        name = self.state_of.get(name, name)
        if name in self.shared.state:
            return self.shared.state[name]
        offset = self.plan.offsets[self.root[name]]
        return f"(({CTYPES[v.dtype]} *)(tte_arena + {offset}))"

    def dims(self, name: str) -> str:
        s = self.g[name].shape
        s4 = tuple(s) + (1,) * (4 - len(s)) if len(s) <= 4 else None
        if s4 is None:
            raise TteError(f"cannot emit a {len(s)}-d tensor '{name}'")
        return "&(const tte_dims){%d, %d, %d, %d}" % s4

    def quant(self, x: str, y: str, node: Node, z_in: int | None = None) -> str:
        zx = int(self.g[x].quant.zero_point) if z_in is None else z_in
        zy = int(self.g[y].quant.zero_point)
        return "&(const tte_quant_params){%d, %d, %d, %d}" % (zx, zy, node.attrs["qmin"], node.attrs["qmax"])

    def mask(self, node: Node) -> str:
        """The bit-packed saturation mask a forward op writes in a training graph, or NULL."""
        return self.ptr(node.outputs[1]) if node.attrs.get("save_mask") else "NULL"

    def call(self, node: Node, text: str) -> None:
        self.body.append(f"    /* {node.op} {node.name} */")
        self.body.append(f"    TTE_CALL({self.shared.kind(node.op)}, {text});")

    def need_scratch(self, n: int) -> None:
        self.shared.scratch = max(self.shared.scratch, n)


def _multipliers(g: Graph, x: str, w: str, y: str) -> np.ndarray:
    return sem.multiplier(sem.f64(g[x].quant.scale) * sem.f64(g[w].quant.scale), g[y].quant.scale)


def conv_geo(attrs: dict, groups: int | None = None) -> str:
    """A tte_conv_geometry literal from a conv-like node's strides, pads and groups."""
    g = attrs["groups"] if groups is None else groups
    return "&(const tte_conv_geometry){%d, %d, %d, %d, %d, %d, %d}" % (*attrs["strides"], *attrs["pads"], g)


def pool_geo(attrs: dict) -> str:
    """A tte_pool_geometry literal from a window node's kernel, strides and pads."""
    return "&(const tte_pool_geometry){%d, %d, %d, %d, %d, %d, %d, %d}" % (*attrs["kernel"], *attrs["strides"],
                                                                            *attrs["pads"])


def _check_acc(g: Graph, node: Node, w: str) -> None:
    """int32 accumulation of products must not overflow: |x - z_x| <= 255, |w - z_w| <= 255."""
    k = int(np.prod(g[w].shape[1:]))
    if k * 255 * 255 > ACC_LIMIT:
        raise TteError(f"layer '{node.name}' sums {k} products per output: its int32 accumulator could "
                       f"overflow; tte supports up to {ACC_LIMIT // (255 * 255)}")


def emit_conv(e: Emitter, node: Node) -> None:
    g = e.g
    x, w, b = node.inputs
    y = node.output
    _check_acc(g, node, w)
    geo = conv_geo(node.attrs)
    m = e.array(f"{node.name}_m", _multipliers(g, x, w, y), "float")
    args = (f"{geo}, {e.quant(x, y, node)}, {e.dims(x)}, {e.ptr(x)}, {e.dims(w)}, "
            f"{e.split_weights(w, is_depthwise(g, node))}, "
            f"{e.weight_zero_points(w)}, {e.value_const(b)}, {m}, {e.dims(y)}, {e.ptr(y)}, {e.mask(node)}")
    if is_depthwise(g, node):
        e.need_scratch(g[y].shape[2] * g[y].shape[3])
        e.call(node, f"tte_conv_dw_s8({args}, tte_scratch)")
    else:
        e.call(node, f"tte_conv_s8({args})")


def emit_pw_dw(e: Emitter, node: Node) -> None:
    g = e.g
    x, w1, b1, w2, b2 = node.inputs
    y = node.output
    a = node.attrs
    mq = a["mid_quant"]
    _check_acc(g, node, w1)
    _check_acc(g, node, w2)
    m1 = sem.multiplier(sem.f64(g[x].quant.scale) * sem.f64(g[w1].quant.scale), mq.scale)
    m2 = sem.multiplier(sem.f64(mq.scale) * sem.f64(g[w2].quant.scale), g[y].quant.scale)
    q1 = "&(const tte_quant_params){%d, %d, %d, %d}" % (int(g[x].quant.zero_point), int(mq.zero_point),
                                                         a["mid_qmin"], a["mid_qmax"])
    q2 = "&(const tte_quant_params){%d, %d, %d, %d}" % (int(mq.zero_point), int(g[y].quant.zero_point),
                                                         a["qmin"], a["qmax"])
    geo = conv_geo(a, groups=g[w2].shape[0])
    e.need_scratch(g[x].shape[2] * g[x].shape[3])
    e.call(node, f"tte_conv_pw_dw_s8({q1}, {e.value_const(w1)}, {e.weight_zero_points(w1)}, {e.value_const(b1)}, "
                 f"{e.array(node.name + '_m1', m1, 'float')}, {geo}, {q2}, {e.dims(w2)}, {e.value_const(w2)}, "
                 f"{e.weight_zero_points(w2)}, {e.value_const(b2)}, {e.array(node.name + '_m2', m2, 'float')}, "
                 f"{e.dims(x)}, {e.ptr(x)}, {e.dims(y)}, {e.ptr(y)}, tte_scratch)")


def emit_gemm(e: Emitter, node: Node) -> None:
    g = e.g
    x, w, b = node.inputs
    y = node.output
    _check_acc(g, node, w)
    n, k = g[x].shape
    if w in e.shared.frozen_part:
        raise TteError(f"gemm '{node.name}': a partially trained gemm weight cannot be emitted yet")
    m = e.array(f"{node.name}_m", _multipliers(g, x, w, y), "float")
    e.call(node, f"tte_gemm_s8({e.quant(x, y, node)}, {n}, {k}, {g[w].shape[0]}, {e.ptr(x)}, {e.value_const(w)}, "
                 f"{e.weight_zero_points(w)}, {e.value_const(b)}, {m}, {e.ptr(y)}, {e.mask(node)})")


def emit_add(e: Emitter, node: Node) -> None:
    g = e.g
    a, b = node.inputs
    y = node.output
    qy = g[y].quant
    ma, mb = (sem.multiplier(g[v].quant.scale, qy.scale) for v in (a, b))
    bptr = e.value_const(b) if g[b].is_const else e.ptr(b)
    e.call(node, f"tte_add_s8({g[y].size}, {e.ptr(a)}, {int(g[a].quant.zero_point)}, {c_float(ma)}, {g[b].size}, "
                 f"{bptr}, {int(g[b].quant.zero_point)}, {c_float(mb)}, {int(qy.zero_point)}, "
                 f"{node.attrs['qmin']}, {node.attrs['qmax']}, {e.ptr(y)}, {e.mask(node)})")


def _rescale(g: Graph, x: str, y: str) -> str:
    return c_float(sem.multiplier(g[x].quant.scale, g[y].quant.scale))


def emit_requantize(e: Emitter, node: Node) -> None:
    g = e.g
    x, y = node.inputs[0], node.output
    e.call(node, f"tte_requantize_s8({g[y].size}, {e.ptr(x)}, {int(g[x].quant.zero_point)}, {_rescale(g, x, y)}, "
                 f"{int(g[y].quant.zero_point)}, {node.attrs['qmin']}, {node.attrs['qmax']}, {e.ptr(y)}, "
                 f"{e.mask(node)})")


def emit_avgpool(e: Emitter, node: Node) -> None:
    g = e.g
    x, y = node.inputs[0], node.output
    kh, kw = node.attrs["kernel"]
    counts = np.arange(kh * kw + 1, dtype=np.float64)
    counts[0] = 1  # unused
    table = sem.multiplier(g[x].quant.scale, sem.f64(g[y].quant.scale) * counts)
    e.call(node, f"tte_avgpool_s8({pool_geo(node.attrs)}, {e.quant(x, y, node)}, {node.attrs['count_include_pad']}, "
                 f"{e.dims(x)}, {e.ptr(x)}, {e.array(node.name + '_m', table, 'float')}, {e.dims(y)}, {e.ptr(y)}, "
                 f"{e.mask(node)})")


def emit_global_avgpool(e: Emitter, node: Node) -> None:
    g = e.g
    x, y = node.inputs[0], node.output
    hw = g[x].shape[2] * g[x].shape[3]
    m = sem.multiplier(g[x].quant.scale, sem.f64(g[y].quant.scale) * hw)
    e.call(node, f"tte_global_avgpool_s8({e.quant(x, y, node)}, {c_float(m)}, {e.dims(x)}, {e.ptr(x)}, {e.ptr(y)}, "
                 f"{e.mask(node)})")


def emit_maxpool(e: Emitter, node: Node) -> None:
    g = e.g
    x, y = node.inputs[0], node.output
    e.call(node, f"tte_maxpool_s8({pool_geo(node.attrs)}, {e.quant(x, y, node)}, {_rescale(g, x, y)}, {e.dims(x)}, "
                 f"{e.ptr(x)}, {e.dims(y)}, {e.ptr(y)}, {e.mask(node)})")


def emit_concat(e: Emitter, node: Node) -> None:
    g = e.g
    y = node.output
    if node.attrs["axis"] != 1 or len(g[y].shape) != 4:
        raise TteError(f"concat '{node.name}': only channel concatenation of NCHW tensors can be emitted")
    offset = 0
    for x in node.inputs:
        e.call(node, f"tte_concat_channels_s8({e.dims(x)}, {e.ptr(x)}, {int(g[x].quant.zero_point)}, "
                     f"{_rescale(g, x, y)}, {int(g[y].quant.zero_point)}, {node.attrs['qmin']}, {node.attrs['qmax']}, "
                     f"{g[y].shape[1]}, {offset}, {e.ptr(y)}, {e.mask(node)})")
        offset += g[x].shape[1]


def emit_reshape(e: Emitter, node: Node) -> None:
    if e.root[node.output] != e.root[node.inputs[0]]:
        raise AssertionError("a reshape must alias its operand")
    e.body.append(f"    /* reshape {node.name}: a view of the same bytes */")


EMITTERS = {
    "conv": emit_conv,
    "pw_dw": emit_pw_dw,
    "gemm": emit_gemm,
    "add": emit_add,
    "requantize": emit_requantize,
    "avgpool": emit_avgpool,
    "global_avgpool": emit_global_avgpool,
    "maxpool": emit_maxpool,
    "concat": emit_concat,
    "reshape": emit_reshape,
}

HEADER = """/* Generated by tte {version} from '{source}'. Do not edit: rerun tte instead. */
"""


def emit_inference(g: Graph, out_dir: str | os.PathLike) -> list[pathlib.Path]:
    """Write ``tte_model.h``, ``tte_model.c`` and the runtime sources for inference with graph ``g``."""
    from .. import __version__

    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise TteError("codegen needs one input and one output")
    first, last = g.nodes[0], g.nodes[-1]
    if first.op != "quantize" or last.op != "dequantize":
        raise TteError("codegen expects a graph that starts with quantize and ends with dequantize")
    e = Emitter(g)
    for node in g.nodes[1:-1]:
        emitter = EMITTERS.get(node.op)
        if emitter is None:
            raise TteError(f"no C emitter for op '{node.op}' (node '{node.name}'); emittable ops: "
                           f"{', '.join(sorted(EMITTERS))}")
        emitter(e, node)
    xin, xq = first.inputs[0], first.output
    yq, yout = last.inputs[0], last.output
    qin, qout = g[xq].quant, g[yq].quant
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    head = HEADER.format(version=__version__, source=os.path.basename(g.metadata.get("source", g.name)))
    h = head + f"""#ifndef TTE_MODEL_H
#define TTE_MODEL_H

#include <stdint.h>

#define TTE_INPUT_SIZE {g[xin].size}
#define TTE_OUTPUT_SIZE {g[yout].size}
#define TTE_INPUT_SCALE {c_float(qin.scale)}
#define TTE_INPUT_ZERO_POINT {int(qin.zero_point)}
#define TTE_OUTPUT_SCALE {c_float(qout.scale)}
#define TTE_OUTPUT_ZERO_POINT {int(qout.zero_point)}
#define TTE_ARENA_BYTES {e.plan.size}
#define TTE_SCRATCH_BYTES {e.scratch}

/* input: TTE_INPUT_SIZE int8 values (NCHW, quantized with TTE_INPUT_SCALE / TTE_INPUT_ZERO_POINT);
 * logits: TTE_OUTPUT_SIZE int8 values (TTE_OUTPUT_SCALE / TTE_OUTPUT_ZERO_POINT).  0 on success. */
int tte_infer(const int8_t *input, int8_t *logits);

/* The same from float32 input (quantized inside) to float32 logits (dequantized). */
int tte_infer_f32(const float *input, float *logits);

#endif
"""
    c = head + """#include <string.h>

#include "tte_model.h"
#include "tte_runtime.h"

""" + e.shared.call_macros() + """
/* one static arena, planned offline: every tensor of a step at a fixed offset */
static int32_t tte_arena_words[(TTE_ARENA_BYTES + 3) / 4];
#define tte_arena ((int8_t *)tte_arena_words)
""" + ("static int32_t tte_scratch_words[(TTE_SCRATCH_BYTES + 3) / 4];\n"
       "#define tte_scratch ((int8_t *)tte_scratch_words)\n" if e.scratch else "") + "\n" + "\n\n".join(e.consts) + """

static int tte_run(void) {
""" + "\n".join(e.body) + f"""
    return 0;
}}

int tte_infer(const int8_t *input, int8_t *logits) {{
    memcpy({e.ptr(xq)}, input, TTE_INPUT_SIZE);
    if (tte_run() != 0) return -1;
    memcpy(logits, {e.ptr(yq)}, TTE_OUTPUT_SIZE);
    return 0;
}}

int tte_infer_f32(const float *input, float *logits) {{
    TTE_CHECK(tte_quantize_f32(TTE_INPUT_SIZE, input, TTE_INPUT_SCALE, TTE_INPUT_ZERO_POINT, {e.ptr(xq)}));
    if (tte_run() != 0) return -1;
    TTE_CHECK(tte_dequantize_s8(TTE_OUTPUT_SIZE, {e.ptr(yq)}, TTE_OUTPUT_SCALE, TTE_OUTPUT_ZERO_POINT, logits));
    return 0;
}}
"""
    files = [out / "tte_model.h", out / "tte_model.c"]
    files[0].write_text(h)
    files[1].write_text(c)
    return files + copy_runtime(out)


def copy_runtime(out: pathlib.Path) -> list[pathlib.Path]:
    """Copy runtime_c into ``out/runtime`` so that the emitted directory builds on its own."""
    runtime = out / "runtime"
    (runtime / "include").mkdir(parents=True, exist_ok=True)
    (runtime / "src").mkdir(parents=True, exist_ok=True)
    files = []
    for src in sorted((RUNTIME_DIR / "include").glob("*.h")) + sorted((RUNTIME_DIR / "src").glob("*")):
        dst = runtime / src.relative_to(RUNTIME_DIR)
        shutil.copyfile(src, dst)
        files.append(dst)
    return files
