"""The affine family: ``affine``, a per-channel int8 affine map (a BatchNormalization that no conv before it
absorbs exactly, or a multiply by a constant), and in training graphs ``affine_grad``, its input gradient.

``affine(x, m, o)``: ``x`` int8 [N, C] or [N, C, H, W] with scale s_x and zero point z_x; ``m`` and ``o``
float32 [C] constants, the multiplier and the offset of channel c in output units: for ``y = a[c] * real(x) +
b[c]`` the frontend stores ``m[c] = float32(a[c] * s_x / s_y)`` and ``o[c] = float32(b[c] / s_y)`` (computed
in float64).  The kernel computes, in float32 without fused multiply-add,

    v = float32(x - z_x) * m[c] + o[c],   y = clamp(round_half_even(v) + z_y, qmin, qmax)

which is onnxruntime's float ``DequantizeLinear -> BatchNormalization -> QuantizeLinear`` up to the order of
its float operations (within one int8 step).  TFLite has no such integer op: a graph in a TFLite arithmetic
("tflite" or "tflite-micro") refuses it (its shape rule says so, which makes ``tte.load`` fail with one line).

Backward: ``dx = slope[c] * ste(dy)``, ``slope[c] = float32(m[c] * s_y / s_x)`` (float64 product): the
derivative of the op as computed, in real units (``affine_grad``, in place).
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from ..ir.facts import is_tflite
from ..ir.registry import Shape, register
from ..reference import numerics as nx
from ..reference import semantics as sem
from . import cgen as cg
from .common import always, finish, mask_output, masked, no_flash, no_scratch
from .update import TRAINING_ONLY

F32 = nx.F32


def channel_shape(x: np.ndarray) -> tuple[int, ...]:
    """How a per-channel [C] array broadcasts over an [N, C, ...] tensor."""
    return (1, -1) + (1,) * (x.ndim - 2)


# -- affine ----------------------------------------------------------------------------------------------


def affine_shape(g: Graph, n: Node) -> Shape:
    if is_tflite(g):
        raise ValueError("a per-channel affine op (a BatchNormalization left in the model, or a multiply by a "
                         "constant) has no TFLite integer arithmetic; load the model with "
                         "arithmetic='onnxruntime', or fold the BatchNormalization first: python -m "
                         "onnxruntime.quantization.preprocess --input in.onnx --output out.onnx")
    x, m, o = (g[i] for i in n.inputs)
    if len(x.shape) not in (2, 4):
        raise ValueError(f"affine takes [N, C] or [N, C, H, W] tensors, got {list(x.shape)}")
    c = x.shape[1]
    if m.shape != (c,) or o.shape != (c,):
        raise ValueError(f"affine multipliers {list(m.shape)} and offsets {list(o.shape)} must have one entry per "
                         f"channel ({c})")
    if not (m.is_const and o.is_const):
        raise ValueError("affine multipliers and offsets must be constants")
    return x.shape


def affine_preround(g: Graph, node: Node, x, m, o) -> np.ndarray:
    """v = float32(x - z_x) * m[c] + o[c], each operation rounded to float32."""
    shape = channel_shape(x)
    centered = (x.astype(np.int32) - nx.zero_point(g[node.inputs[0]].quant)).astype(F32)
    product = (centered * np.asarray(m, F32).reshape(shape)).astype(F32)
    return (product + np.asarray(o, F32).reshape(shape)).astype(F32)


def affine(g: Graph, node: Node, x, m, o):
    return finish(node, affine_preround(g, node, x, m, o), nx.zero_point(g[node.output].quant))


def slope_ratio(g: Graph, node: Node) -> float:
    """s_y / s_x: turns an output-unit multiplier into the real-unit slope of the map."""
    return float(sem.f64(g[node.output].quant.scale) / sem.f64(g[node.inputs[0]].quant.scale))


def affine_grad_rule(b, node: Node, gy: str) -> None:
    x = node.inputs[0]
    if b.wants(x):
        b.contribute(x, b.emit("affine_grad", [masked(b, node, gy), node.inputs[1]], f"{x}.grad_from.{node.name}",
                               ratio=slope_ratio(b.g, node)))


def affine_channels(g: Graph, n: Node, c) -> None:
    """Input and output share a channel order, which the per-channel constants pin."""
    c.union(n.inputs[0], n.outputs[0])
    c.freeze(n.outputs[0])


def emit_affine(e: cg.Emitter, node: Node) -> None:
    g = e.g
    x, m, o = node.inputs
    y = node.output
    e.call(node, f"tte_affine_s8({e.dims(x)}, {e.ptr(x)}, {int(g[x].quant.zero_point)}, {e.value_const(m)}, "
                 f"{e.value_const(o)}, {int(g[y].quant.zero_point)}, {node.attrs['qmin']}, {node.attrs['qmax']}, "
                 f"{e.ptr(y)}, {e.mask(node)})")


# tte_affine_s8 may write over its input (about 160 B of Thumb-2 at -Os)
register(name="affine", operands=("int8", "float32", "float32"), out_dtype="int8", shape=affine_shape,
         attrs=("qmin", "qmax"), requantizes=True, extra=mask_output, optional=0, kernel=affine,
         grad=affine_grad_rule, emit=emit_affine, runtime=("tte_affine_s8.c",), scratch=no_scratch, in_place=always,
         alias=False, flash=no_flash, code_bytes=160, channels=affine_channels, layer=False,
         onnx=("BatchNormalization",))


# -- backward --------------------------------------------------------------------------------------------


def slopes(m: np.ndarray, ratio: float) -> np.ndarray:
    """slope[c] = float32(m[c] * s_y / s_x), the product in float64."""
    return (sem.f64(m) * ratio).astype(F32)


def affine_grad_shape(g: Graph, n: Node) -> Shape:
    dz, m = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if len(dz) not in (2, 4) or m != (dz[1],):
        raise ValueError(f"affine_grad: multipliers {list(m)} must have one entry per channel of {list(dz)}")
    return dz


def affine_grad(g: Graph, node: Node, dz, m):
    """dx = dz * slope[c] (one float32 product)."""
    s = slopes(m, node.attrs["ratio"])
    return (np.asarray(dz, F32) * s.reshape(channel_shape(dz))).astype(F32)


def affine_grad_flash(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    return [slopes(g[n.inputs[1]].data, n.attrs["ratio"])], 0


def emit_affine_grad(e: cg.Emitter, node: Node) -> None:
    dz, m = node.inputs
    s = e.array(f"{node.name}_slope", slopes(e.g[m].data, node.attrs["ratio"]), "float")
    e.call(node, f"tte_affine_grad_f32({e.dims(dz)}, {e.ptr(dz)}, {s}, {e.ptr(node.output)})")


register(name="affine_grad", operands=("float32", "float32"), out_dtype="float32", shape=affine_grad_shape,
         attrs=("ratio",), extra=None, optional=0, kernel=affine_grad, emit=emit_affine_grad,
         runtime=("tte_affine_grad_f32.c",), scratch=no_scratch, code_bytes=90,
         **dict(TRAINING_ONLY, flash=affine_grad_flash, in_place=always))
