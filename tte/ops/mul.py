"""The multiply family: ``mul`` (int8 x int8 -> int8, requantizing; ``b`` of ``a``'s shape or per channel
[N, C, 1, 1], the squeeze-and-excitation gate), and in training graphs its operands' gradients: ``mul_grad``
(the operand shaped like the output: ``dz * real(other)``, other broadcast per channel if it is the gate) and
``mul_grad_channel`` (the per-channel operand: the sum over positions of ``dz * real(other)``).

Numbers: :mod:`tte.reference.activations` (``mul_forward``: ``acc = (a - z_a) * (b - z_b)`` exact, ``v =
float32(acc) * M``, ``M = float32(s_a * s_b / s_y)``, round and clamp; the gradients in real units on the
masked output gradient ``dz``).
"""

from __future__ import annotations

from ..ir import Graph, Node
from ..ir.registry import Shape, register
from ..reference import activations as act
from ..reference import fixedpoint as fp
from ..reference import numerics as nx
from . import cgen as cg
from .common import always, finish_int, mask_output, masked, no_flash, no_scratch, one_rescale, tflite, with_mask
from .update import TRAINING_ONLY


def per_channel(a: Shape, b: Shape) -> bool:
    """``b`` holds one value per (n, c) plane of the NCHW ``a``."""
    return len(a) == 4 and tuple(b) == (a[0], a[1], 1, 1) and tuple(a) != tuple(b)


def mul_shape(g: Graph, n: Node) -> Shape:
    a, b = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if any(g[v].is_const for v in n.inputs):
        raise ValueError("mul multiplies two activations; a constant operand is not supported")
    if a != b and not per_channel(a, b):
        raise ValueError(f"mul operands {a} and {b}: the second must have the first's shape or be per channel "
                         f"(N, C, 1, 1)")
    return a


def multiplier(g: Graph, node: Node):
    qa, qb, qy = (g[v].quant for v in (node.inputs[0], node.inputs[1], node.outputs[0]))
    return act.mul_multiplier(qa.scale, qb.scale, qy.scale)


def tflite_multiplier(g: Graph, node: Node) -> tuple[int, int]:
    """TFLite's (Q31 multiplier, exponent) of s_a * s_b / s_y."""
    qa, qb, qy = (g[v].quant for v in (node.inputs[0], node.inputs[1], node.outputs[0]))
    m, n = fp.mul_multiplier(qa.scale, qb.scale, qy.scale)
    return int(m), int(n)


def mul(g: Graph, node: Node, a, b):
    qa, qb, qy = (g[v].quant for v in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if tflite(g):  # MulElementwise: MBQM((a - z_a) * (b - z_b)) + z_y, b broadcast per channel if it is the gate
        return finish_int(node, fp.mul(a, nx.zero_point(qa), b, nx.zero_point(qb), *tflite_multiplier(g, node),
                                       nx.zero_point(qy)))
    y, mask = act.mul_forward(a, nx.zero_point(qa), b, nx.zero_point(qb), multiplier(g, node), nx.zero_point(qy),
                              node.attrs["qmin"], node.attrs["qmax"])
    return with_mask(node, y, mask)


def mul_grad_rule(b, node: Node, gy: str) -> None:
    x, gate = node.inputs
    dz = masked(b, node, gy)
    if b.wants(x):
        b.contribute(x, b.emit("mul_grad", [dz, b.saved(gate)], f"{x}.grad_from.{node.name}"))
    if b.wants(gate):
        op = "mul_grad_channel" if per_channel(b.g[x].shape, b.g[gate].shape) else "mul_grad"
        b.contribute(gate, b.emit(op, [dz, b.saved(x)], f"{gate}.grad_from.{node.name}"))


def mul_channels(g: Graph, n: Node, c) -> None:
    """Channel k of the output is channel k of a times channel k of b (the gate's value for plane k): one
    channel order for the three."""
    c.union(n.inputs[0], n.outputs[0])
    c.union(n.inputs[1], n.outputs[0])


def emit_mul(e, node: Node) -> None:
    g = e.g
    a, b = node.inputs
    y = node.outputs[0]
    if tflite(g):
        m, n = tflite_multiplier(g, node)
        e.call(node, f"tte_mul_tflite_s8({e.dims(a)}, {e.ptr(a)}, {int(g[a].quant.zero_point)}, {e.dims(b)}, "
                     f"{e.ptr(b)}, {int(g[b].quant.zero_point)}, {m}, {n}, {int(g[y].quant.zero_point)}, "
                     f"{node.attrs['qmin']}, {node.attrs['qmax']}, {e.ptr(y)}, {e.mask(node)})")
        return
    e.call(node, f"tte_mul_s8({e.dims(a)}, {e.ptr(a)}, {int(g[a].quant.zero_point)}, {e.dims(b)}, {e.ptr(b)}, "
                 f"{int(g[b].quant.zero_point)}, {cg.c_float(multiplier(g, node))}, {int(g[y].quant.zero_point)}, "
                 f"{node.attrs['qmin']}, {node.attrs['qmax']}, {e.ptr(y)}, {e.mask(node)})")


# tte_mul_s8 may write over a (328 B of Thumb-2 at -Os, Cortex-M4)
register(name="mul", operands=("int8", "int8"), out_dtype="int8", shape=mul_shape, attrs=("qmin", "qmax"),
         requantizes=True, extra=mask_output, optional=0, kernel=mul, grad=mul_grad_rule, emit=emit_mul,
         runtime=("tte_mul_s8.c", "tte_mul_tflite_s8.c"), scratch=no_scratch, in_place=always, alias=False,
         flash=one_rescale, code_bytes=328,
         channels=mul_channels, layer=False, onnx=("Mul", "QLinearMul"))


# -- backward --------------------------------------------------------------------------------------------


def mul_grad_shape(g: Graph, n: Node) -> Shape:
    dz, other = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if dz != other and not per_channel(dz, other):
        raise ValueError(f"mul_grad: saved operand {other} is neither the gradient's shape {dz} nor per channel")
    return dz


def mul_grad(g: Graph, node: Node, dz, other):
    """Gradient of the operand shaped like dz: dz * real(other), other broadcast per channel if it is."""
    return act.mul_grad(dz, nx.real(g, node.inputs[1], other))


def emit_mul_grad(e, node: Node) -> None:
    dz, other = node.inputs
    e.call(node, f"tte_mul_grad_f32({e.dims(dz)}, {e.ptr(dz)}, {e.dims(other)}, {cg.saved(e, other)}, "
                 f"{e.ptr(node.outputs[0])})")


register(name="mul_grad", operands=("float32", "int8"), out_dtype="float32", shape=mul_grad_shape, attrs=(),
         extra=None, optional=0, kernel=mul_grad, emit=emit_mul_grad, runtime=("tte_mul_grad_f32.c",),
         scratch=no_scratch, code_bytes=242, **dict(TRAINING_ONLY, flash=no_flash, in_place=always))


def mul_grad_channel_shape(g: Graph, n: Node) -> Shape:
    dz, other = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if dz != other or len(dz) != 4:
        raise ValueError(f"mul_grad_channel: saved operand {other} must have the NCHW gradient's shape {dz}")
    return (dz[0], dz[1], 1, 1)


def mul_grad_channel(g: Graph, node: Node, dz, other):
    """Gradient of the per-channel operand: per (n, c), the sum over positions (ascending) of dz * real(other)."""
    return act.mul_grad_channel(dz, nx.real(g, node.inputs[1], other))


def emit_mul_grad_channel(e, node: Node) -> None:
    dz, other = node.inputs
    e.call(node, f"tte_mul_grad_channel_f32({e.dims(dz)}, {e.ptr(dz)}, {cg.saved(e, other)}, {e.ptr(node.outputs[0])})")


register(name="mul_grad_channel", operands=("float32", "int8"), out_dtype="float32", shape=mul_grad_channel_shape,
         attrs=(), extra=None, optional=0, kernel=mul_grad_channel, emit=emit_mul_grad_channel,
         runtime=("tte_mul_grad_channel_f32.c",), scratch=no_scratch, code_bytes=130,
         **dict(TRAINING_ONLY, flash=no_flash, in_place=always))
