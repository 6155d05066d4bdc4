"""The elementwise family: ``add`` (two int8 operands rescaled to the output, or a constant broadcast
bias), ``requantize`` (int8 re-expressed in other parameters), and in training graphs ``ste`` (the
straight-through estimator: a gradient through a saturation mask) and ``grad_add`` (gradient
accumulation).  With TFLite's arithmetic, ``add`` is TFLite's ADD (inputs shifted left by 20 bits, three Q31
multipliers) and ``requantize`` TFLite's Requantize (tte.reference.fixedpoint)."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from ..ir.registry import Shape, register
from ..reference import fixedpoint as fp
from ..reference import numerics as nx
from ..reference import semantics as sem
from . import cgen as cg
from .common import (
    always,
    channels_follow,
    finish,
    finish_int,
    mask_output,
    masked,
    never,
    no_scratch,
    one_rescale,
    requantize_multiplier,
    rescale_preround,
    same_as_inputs,
    same_pair,
    tflite,
    tflite_rescale,
)
from .update import TRAINING_ONLY

F32 = nx.F32


# -- C emitters (the ``emit`` facet) ------------------------------------------------------------


def emit_add(e: cg.Emitter, node: Node) -> None:
    g = e.g
    a, b = node.inputs
    y = node.output
    qy = g[y].quant
    bptr = e.value_const(b) if g[b].is_const else e.ptr(b)
    b_size, b_inner = broadcast_run(g[a].shape, g[b].shape)
    if tflite(g):
        params = e.array(f"{node.name}_params", add_params(g, node), "int32_t")
        e.call(node, f"tte_add_tflite_s8({g[y].size}, {e.ptr(a)}, {int(g[a].quant.zero_point)}, {b_size}, {b_inner}, "
                     f"{bptr}, {int(g[b].quant.zero_point)}, {params}, {int(qy.zero_point)}, {node.attrs['qmin']}, "
                     f"{node.attrs['qmax']}, {e.ptr(y)}, {e.mask(node)})")
        return
    ma, mb = (sem.multiplier(g[v].quant.scale, qy.scale) for v in (a, b))
    e.call(node, f"tte_add_s8({g[y].size}, {e.ptr(a)}, {int(g[a].quant.zero_point)}, {cg.c_float(ma)}, {b_size}, "
                 f"{b_inner}, {bptr}, {int(g[b].quant.zero_point)}, {cg.c_float(mb)}, {int(qy.zero_point)}, "
                 f"{node.attrs['qmin']}, {node.attrs['qmax']}, {e.ptr(y)}, {e.mask(node)})")


def emit_requantize(e: cg.Emitter, node: Node) -> None:
    g = e.g
    x, y = node.inputs[0], node.output
    if tflite(g):
        m, n = requantize_multiplier(g, x, y)
        e.call(node, f"tte_requantize_tflite_s8({g[y].size}, {e.ptr(x)}, {int(g[x].quant.zero_point)}, {m}, {n}, "
                     f"{int(g[y].quant.zero_point)}, {node.attrs['qmin']}, {node.attrs['qmax']}, {e.ptr(y)}, "
                     f"{e.mask(node)})")
        return
    e.call(node, f"tte_requantize_s8({g[y].size}, {e.ptr(x)}, {int(g[x].quant.zero_point)}, {cg.rescale(g, x, y)}, "
                 f"{int(g[y].quant.zero_point)}, {node.attrs['qmin']}, {node.attrs['qmax']}, {e.ptr(y)}, "
                 f"{e.mask(node)})")


def emit_ste(e: cg.Emitter, node: Node) -> None:
    gy, mask = node.inputs
    e.call(node, f"tte_ste_f32({e.g[gy].size}, {e.ptr(gy)}, {e.ptr(mask)}, {e.ptr(node.output)})")


def emit_grad_add(e: cg.Emitter, node: Node) -> None:
    a, b = node.inputs
    e.call(node, f"tte_add_f32({e.g[a].size}, {e.ptr(a)}, {e.ptr(b)}, {e.ptr(node.output)})")


# -- add -----------------------------------------------------------------------------------------------


def broadcast_run(a: Shape, b: Shape) -> tuple[int, int]:
    """How the C kernels read an operand ``b`` that broadcasts to ``a``: element i of a (flat, row-major) meets
    ``b.flat[(i // inner) % size]``; returns (size, inner).  b's axes other than 1 must be consecutive axes of
    a, equal to a's there (a bias along the last axis, one value per channel of NCHW, a whole sample...)."""
    b = (1,) * (len(a) - len(b)) + tuple(b)
    axes = [k for k, d in enumerate(b) if d != 1]
    if not axes:
        return 1, 1
    lo, hi = axes[0], axes[-1]
    if len(b) != len(a) or any(b[k] != a[k] for k in range(lo, hi + 1)):
        raise ValueError(f"a constant of shape {list(b)} does not broadcast to {list(a)} along consecutive axes")
    return int(np.prod(a[lo:hi + 1], dtype=np.int64)), int(np.prod(a[hi + 1:], dtype=np.int64))


def add_shape(g: Graph, n: Node) -> Shape:
    """Elementwise; the second operand may be a constant that broadcasts to the first (a bias) along consecutive
    axes (:func:`broadcast_run`)."""
    a, b = (g[i] for i in n.inputs)
    if a.shape == b.shape:
        return a.shape
    try:
        out = tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        out = None
    if out != a.shape or not b.is_const:
        raise ValueError(f"add operands differ in shape: {a.shape} and {b.shape} (only a constant second operand "
                         f"may broadcast)")
    broadcast_run(a.shape, b.shape)
    return out


def add_preround(g: Graph, node: Node, a, b) -> np.ndarray:
    """v = float32(a - z_a) * M_a + float32(b - z_b) * M_b, M_i = s_i / s_y."""
    qa, qb, qy = (g[n].quant for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    ma, mb = sem.multiplier(qa.scale, qy.scale), sem.multiplier(qb.scale, qy.scale)
    va = (a.astype(np.int32) - nx.zero_point(qa)).astype(np.float32) * ma
    vb = (b.astype(np.int32) - nx.zero_point(qb)).astype(np.float32) * mb
    return (va + vb).astype(np.float32)


def add_params(g: Graph, node: Node) -> np.ndarray:
    """TFLite's ADD multipliers: [m_a, n_a, m_b, n_b, m_y, n_y] (tte.reference.fixedpoint.add_multipliers)."""
    qa, qb, qy = (g[n].quant for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    return fp.add_multipliers(qa.scale, qb.scale, qy.scale)


def add(g: Graph, node: Node, a, b):
    qa, qb, qy = (g[n].quant for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if tflite(g):  # both inputs shifted left by 20 bits, rescaled, summed, rescaled (reference_integer_ops::AddFunc)
        return finish_int(node, fp.add(a, nx.zero_point(qa), b, nx.zero_point(qb), add_params(g, node),
                                       nx.zero_point(qy)))
    return finish(node, add_preround(g, node, a, b), nx.zero_point(qy))


def add_flash(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """One multiplier literal per operand, or TFLite's six multipliers and exponents as one array."""
    return ([add_params(g, n)], 0) if tflite(g) else ([], len(n.inputs))


def add_grad(b, node: Node, gy: str) -> None:
    dz = masked(b, node, gy)
    for x in node.inputs:
        if b.wants(x):
            b.contribute(x, dz)


def add_channels(g: Graph, n: Node, c) -> None:
    """Both operands share the output's channel order; a constant bias that varies by channel pins it."""
    x, other, y = n.inputs[0], n.inputs[1], n.outputs[0]
    c.union(x, y)
    if not g[other].is_const:
        c.union(other, y)
    elif g[other].size > 1:
        c.freeze(y)


register(name="add", operands=("int8", "int8"), out_dtype="int8", shape=add_shape, attrs=("qmin", "qmax"),
         requantizes=True, extra=mask_output, optional=0, kernel=add, grad=add_grad, emit=emit_add,
         runtime=("tte_add_s8.c", "tte_add_tflite_s8.c"), scratch=no_scratch, in_place=never, alias=False,
         flash=add_flash, code_bytes=300,
         channels=add_channels, layer=False, onnx=("Add", "QLinearAdd"))


# -- requantize ----------------------------------------------------------------------------------------


def requantize(g: Graph, node: Node, x):
    if tflite(g):  # TFLite's Requantize: MBQM(x - z_x) + z_y
        return finish_int(node, tflite_rescale(g, node.inputs[0], node.output, x))
    qx, qy = g[node.inputs[0]].quant, g[node.output].quant
    return finish(node, rescale_preround(x, qx, qy), nx.zero_point(qy))


def requantize_grad(b, node: Node, gy: str) -> None:
    if b.wants(node.inputs[0]):
        b.contribute(node.inputs[0], masked(b, node, gy))


register(name="requantize", operands=("int8",), out_dtype="int8", shape=same_as_inputs, attrs=("qmin", "qmax"),
         requantizes=True, extra=mask_output, optional=0, kernel=requantize, grad=requantize_grad,
         emit=emit_requantize, runtime=("tte_requantize_s8.c", "tte_requantize_tflite_s8.c"), scratch=no_scratch,
         in_place=never, alias=False, flash=one_rescale, code_bytes=200, channels=channels_follow, layer=False,
         onnx=("Relu", "Clip", "QuantizeLinear"))


# -- training: straight-through estimator, gradient accumulation ---------------------------------------


def ste_shape(g: Graph, n: Node) -> Shape:
    a, m = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if a != m:
        raise ValueError(f"gradient {a} and mask {m} differ in shape")
    return a


def ste(g: Graph, node: Node, gy, mask):
    return np.where(mask, gy, F32(0)).astype(F32)


register(name="ste", operands=("float32", "bool"), out_dtype="float32", shape=ste_shape, attrs=(), extra=None,
         optional=0, kernel=ste, emit=emit_ste, runtime=("tte_ste_f32.c",), scratch=no_scratch, code_bytes=100,
         **dict(TRAINING_ONLY, in_place=always))


def grad_add(g: Graph, node: Node, a, b):
    return (a + b).astype(F32)


register(name="grad_add", operands=("float32", "float32"), out_dtype="float32", shape=same_pair, attrs=(),
         extra=None, optional=0, kernel=grad_add, emit=emit_grad_add, runtime=("tte_add_f32.c",), scratch=no_scratch,
         code_bytes=100, **dict(TRAINING_ONLY, in_place=always))
