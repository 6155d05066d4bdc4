"""The activation family: table-driven ``hardswish`` and ``sigmoid`` (int8 -> int8, requantizing),
``lut_global_avgpool`` (the mean over H x W of an activation of the int8 input, requantized: onnxruntime's
float ``DequantizeLinear -> HardSwish -> GlobalAveragePool -> QuantizeLinear`` chain), and in training graphs
``lut_grad`` (a gradient times a 256-entry derivative table indexed by the saved int8 input).

The numbers are :mod:`tte.reference.activations`' (tables built once, at compile time, from the node's
quantization parameters and clamp); the C kernels only look them up.

* ``hardswish`` / ``sigmoid``: ``y = forward[x + 128]`` (``tte_lut_s8``).  Backward: ``dx = dy * grad[x + 128]``
  where ``grad`` is the derivative **with the saturation mask folded in** (zero where the output clamped), so
  the gradient rule needs no ``ste``: one ``lut_grad`` reading the saved input.  The mask output that autodiff
  adds to every requantizing node that needs a gradient is still written (it is what the kernel signature
  computes) but nothing reads it.
* ``lut_global_avgpool`` (attribute ``kind``: ``hardswish`` or ``sigmoid``): per (n, c), the float32 sum over
  positions (h, w ascending, left to right) of ``T[x + 128]``, ``T`` = the activation of the real input in
  float32; then ``v = sum * M``, ``M = float32(1 / (s_y * H * W))`` (computed in float64), rounded and
  clamped.  Backward: ``ste`` on the output mask, ``global_avgpool_grad``, then ``lut_grad`` with the
  unmasked derivative table (the input is not requantized before the mean).

With TFLite's arithmetics (``tte.ir.facts.arithmetic``) the hardswish / sigmoid forward tables are TFLite's
(:mod:`tte.reference.fixedpoint`): HARD_SWISH's integer algorithm in both; LOGISTIC as TFLite's reference kernel
tabulates it (the float32 sigmoid, ``"tflite"``) or as TFLite Micro computes it (gemmlowp's fixed-point logistic,
then a Requantize to the node's output parameters, ``"tflite-micro"``).  The C is the same ``tte_lut_s8``.
``lut_global_avgpool`` stands for onnxruntime's float chain, which TFLite has no counterpart of: it keeps its float
arithmetic in all three.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from ..ir.registry import Shape, register
from ..reference import activations as act
from ..reference import fixedpoint as fp
from ..reference import numerics as nx
from ..reference import semantics as sem
from . import cgen as cg
from .common import (
    always,
    channels_follow,
    finish,
    mask_output,
    masked,
    never,
    no_flash,
    no_scratch,
    same_as_inputs,
    tflite,
    tflite_micro,
    with_mask,
)
from .update import TRAINING_ONLY

F32 = nx.F32


# -- tables ----------------------------------------------------------------------------------------------


TFLITE_TABLES = {"hardswish": fp.hardswish_table, "sigmoid": fp.sigmoid_table}
MICRO_TABLES = {"hardswish": fp.hardswish_table, "sigmoid": fp.sigmoid_table_micro}


def unary_tables(g: Graph, node: Node, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(int8 forward[256], bool mask[256], float32 masked derivative[256]) of a hardswish / sigmoid node.

    With TFLite's arithmetics the forward table is TFLite's (HardSwish's integer algorithm; Logistic as TFLite's
    reference kernel or TFLite Micro computes it) on each of the 256 inputs; the derivative stays that of the real
    function, masked where the integer before the clamp left [qmin, qmax]."""
    qx, qy = g[node.inputs[0]].quant, g[node.outputs[0]].quant
    lo, hi = node.attrs["qmin"], node.attrs["qmax"]
    if tflite(g):
        tables = MICRO_TABLES if tflite_micro(g) else TFLITE_TABLES
        pre = tables[kind](qx.scale, nx.zero_point(qx), qy.scale, nx.zero_point(qy))
        forward, mask = fp.clamp_mask(pre, lo, hi)
        r = sem.dequantize(act.ALL_S8, F32(qx.scale), nx.zero_point(qx))
        return forward, mask, np.where(mask, act.DERIVATIVE[kind](r), F32(0)).astype(F32)
    return act.unary_tables(kind, qx.scale, nx.zero_point(qx), qy.scale, nx.zero_point(qy), lo, hi)


def real_tables(g: Graph, x: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(float32 f(r)[256], float32 f'(r)[256]) over the 256 real values r of int8 value ``x``."""
    q = g[x].quant
    r = sem.dequantize(act.ALL_S8, F32(q.scale), nx.zero_point(q))
    return act.FORWARD[kind](r), act.DERIVATIVE[kind](r)


def _grad_table(b, node: Node, table: np.ndarray) -> str:
    return b.g.add_const(f"{node.name}.grad_table", np.asarray(table, F32)).name


# -- hardswish, sigmoid ----------------------------------------------------------------------------------


def _unary(kind: str):
    def kernel(g: Graph, node: Node, x):
        forward, mask, _ = unary_tables(g, node, kind)
        y, m = act.lut_forward(x, forward, mask)
        return with_mask(node, y, m)

    def grad(b, node: Node, gy: str) -> None:
        x = node.inputs[0]
        if b.wants(x):  # the output's mask is folded into the table: no ste
            table = _grad_table(b, node, unary_tables(b.g, node, kind)[2])
            b.contribute(x, b.emit("lut_grad", [gy, b.saved(x), table], f"{x}.grad_from.{node.name}"))

    def emit(e, node: Node) -> None:
        g = e.g
        x, y = node.inputs[0], node.outputs[0]
        forward, mask, _ = unary_tables(g, node, kind)
        mask_table = e.array(f"{node.name}_mask_table", act.pack_mask_table(mask), "uint8_t") \
            if node.attrs.get("save_mask") else "NULL"
        e.call(node, f"tte_lut_s8({g[y].size}, {e.ptr(x)}, {e.array(node.name + '_table', forward, 'int8_t')}, "
                     f"{mask_table}, {e.ptr(y)}, {e.mask(node)})")

    kernel.__name__, grad.__name__, emit.__name__ = kind, f"{kind}_grad", f"emit_{kind}"
    return kernel, grad, emit


def unary_flash(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """The int8 forward table, and in training graphs the bit-packed mask table."""
    forward, mask, _ = unary_tables(g, n, n.op)
    return [forward] + ([act.pack_mask_table(mask)] if n.attrs.get("save_mask") else []), 0


hardswish, hardswish_grad, emit_hardswish = _unary("hardswish")
sigmoid, sigmoid_grad, emit_sigmoid = _unary("sigmoid")

# tte_lut_s8 is elementwise: the output may overwrite the input (106 B of Thumb-2 at -Os, Cortex-M4)
register(name="hardswish", operands=("int8",), out_dtype="int8", shape=same_as_inputs, attrs=("qmin", "qmax"),
         requantizes=True, extra=mask_output, optional=0, kernel=hardswish, grad=hardswish_grad, emit=emit_hardswish,
         runtime=("tte_lut_s8.c",), scratch=no_scratch, in_place=always, alias=False, flash=unary_flash, code_bytes=106,
         channels=channels_follow, layer=False, onnx=("HardSwish",))

register(name="sigmoid", operands=("int8",), out_dtype="int8", shape=same_as_inputs, attrs=("qmin", "qmax"),
         requantizes=True, extra=mask_output, optional=0, kernel=sigmoid, grad=sigmoid_grad, emit=emit_sigmoid,
         runtime=("tte_lut_s8.c",), scratch=no_scratch, in_place=always, alias=False, flash=unary_flash, code_bytes=106,
         channels=channels_follow, layer=False, onnx=("Sigmoid", "QLinearSigmoid"))


# -- lut_global_avgpool ----------------------------------------------------------------------------------


def lut_global_avgpool_shape(g: Graph, n: Node) -> Shape:
    x = g[n.inputs[0]].shape
    if len(x) != 4:
        raise ValueError(f"lut_global_avgpool expects an NCHW input, got {x}")
    if n.attrs["kind"] not in act.KINDS:
        raise ValueError(f"unknown activation kind '{n.attrs['kind']}' (expected one of {act.KINDS})")
    return (x[0], x[1], 1, 1)


def pool_multiplier(g: Graph, node: Node) -> np.float32:
    """M = float32(1 / (s_y * H * W)): the table is in real units already."""
    h, w = g[node.inputs[0]].shape[2:]
    return sem.multiplier(1.0, sem.f64(g[node.outputs[0]].quant.scale) * (h * w))[()]


def lut_global_avgpool_preround(g: Graph, node: Node, x) -> np.ndarray:
    """The float32 value that is rounded: (left-to-right float32 sum of T[x + 128] over H x W) * M."""
    table, _ = real_tables(g, node.inputs[0], node.attrs["kind"])
    n, c = x.shape[:2]
    terms = table[x.astype(np.int32) + 128].reshape(n, c, -1)
    acc = nx.seq_sum(terms, axis=2).reshape(n, c, 1, 1)
    return (acc * pool_multiplier(g, node)).astype(F32)


def lut_global_avgpool(g: Graph, node: Node, x):
    return finish(node, lut_global_avgpool_preround(g, node, x), nx.zero_point(g[node.outputs[0]].quant))


def lut_global_avgpool_grad(b, node: Node, gy: str) -> None:
    x = node.inputs[0]
    if b.wants(x):
        spread = b.emit("global_avgpool_grad", [masked(b, node, gy)], f"{x}.grad_spread.{node.name}",
                        in_shape=b.g[x].shape)
        table = _grad_table(b, node, real_tables(b.g, x, node.attrs["kind"])[1])
        b.contribute(x, b.emit("lut_grad", [spread, b.saved(x), table], f"{x}.grad_from.{node.name}"))


def emit_lut_global_avgpool(e, node: Node) -> None:
    """``tte_lut_global_avgpool_s8`` (runtime_c/src/tte_lut_global_avgpool_s8.c)."""
    g = e.g
    x, y = node.inputs[0], node.outputs[0]
    table, _ = real_tables(g, x, node.attrs["kind"])
    e.call(node, f"tte_lut_global_avgpool_s8({e.dims(x)}, {e.ptr(x)}, {e.array(node.name + '_table', table, 'float')}, "
                 f"{cg.c_float(pool_multiplier(g, node))}, {int(g[y].quant.zero_point)}, {node.attrs['qmin']}, "
                 f"{node.attrs['qmax']}, {e.ptr(y)}, {e.mask(node)})")


def lut_global_avgpool_flash(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """The float32 activation table and the pool's multiplier literal."""
    return [real_tables(g, n.inputs[0], n.attrs["kind"])[0]], 1


register(name="lut_global_avgpool", operands=("int8",), out_dtype="int8", shape=lut_global_avgpool_shape,
         attrs=("kind", "qmin", "qmax"), requantizes=True, extra=mask_output, optional=0, kernel=lut_global_avgpool,
         grad=lut_global_avgpool_grad, emit=emit_lut_global_avgpool, runtime=("tte_lut_global_avgpool_s8.c",),
         scratch=no_scratch, in_place=never, alias=False,
         flash=lut_global_avgpool_flash, code_bytes=248, channels=channels_follow, layer=False,
         onnx=("HardSwish", "Sigmoid", "GlobalAveragePool", "ReduceMean"))


# -- backward: lut_grad ----------------------------------------------------------------------------------


def lut_grad_shape(g: Graph, n: Node) -> Shape:
    dy, x, table = (g[i].shape for i in n.inputs)
    if dy != x:
        raise ValueError(f"gradient {dy} and saved input {x} differ in shape")
    if table != (256,):
        raise ValueError(f"a derivative table has 256 entries, not {table}")
    return dy


def lut_grad(g: Graph, node: Node, dy, x, table):
    """dx = dy * table[x + 128], one float32 product."""
    return act.lut_grad(dy, x, table)


def emit_lut_grad(e, node: Node) -> None:
    dy, x, table = node.inputs
    e.call(node, f"tte_lut_grad_f32({e.g[dy].size}, {e.ptr(dy)}, {e.ptr(x)}, {e.value_const(table)}, "
                 f"{e.ptr(node.outputs[0])})")


register(name="lut_grad", operands=("float32", "int8", "float32"), out_dtype="float32", shape=lut_grad_shape,
         attrs=(), extra=None, optional=0, kernel=lut_grad, emit=emit_lut_grad, runtime=("tte_lut_grad_f32.c",),
         scratch=no_scratch, code_bytes=52, **dict(TRAINING_ONLY, flash=no_flash, in_place=always))
