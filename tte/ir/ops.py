"""The IR's operator set: for each op, its operand dtypes and its output shape rule.

The ops are the quantized forward ops of an int8 CNN.  Each reads int8 tensors and writes an int8
tensor with its own quantization parameters, except ``quantize`` (float32 -> int8) and ``dequantize``
(int8 -> float32) at the graph boundaries.  Ops that end in a requantization carry ``qmin`` / ``qmax``:
the int8 clamp, into which folded activations (ReLU, ReLU6, Clip) are expressed.

Integer semantics of each op are defined in one place, :mod:`tte.reference.semantics`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .graph import Graph, Node

Shape = tuple[int, ...]


def pool_out(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int) -> int:
    """Output length of a window op (floor mode)."""
    return (size + pad_begin + pad_end - kernel) // stride + 1


def _window_shape(x: Shape, kernel: tuple[int, int], strides, pads, channels: int) -> Shape:
    n, _, h, w = x
    if len(strides) != 2 or min(strides) < 1 or len(pads) != 4 or min(pads) < 0:
        raise ValueError(f"strides {tuple(strides)} / pads {tuple(pads)} are not valid for a 2-d window")
    out = (
        n,
        channels,
        pool_out(h, kernel[0], strides[0], pads[0], pads[2]),
        pool_out(w, kernel[1], strides[1], pads[1], pads[3]),
    )
    if min(out[2:]) < 1:
        raise ValueError(f"a {kernel[0]}x{kernel[1]} window does not fit the padded {h}x{w} input "
                         f"(output {out[2]}x{out[3]})")
    return out


def _conv(g: Graph, n: Node) -> Shape:
    x, w = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if len(x) != 4 or len(w) != 4:
        raise ValueError(f"conv expects 4-d input and weight, got {x} and {w}")
    groups = n.attrs["groups"]
    if x[1] != w[1] * groups:
        raise ValueError(f"conv input has {x[1]} channels, weight expects {w[1]} x {groups} groups")
    if w[0] % groups:
        raise ValueError(f"conv output channels {w[0]} not divisible by groups {groups}")
    if len(n.inputs) > 2 and g[n.inputs[2]].shape != (w[0],):
        raise ValueError(f"conv bias shape {g[n.inputs[2]].shape} != ({w[0]},)")
    return _window_shape(x, w[2:], n.attrs["strides"], n.attrs["pads"], w[0])


def _pw_dw(g: Graph, n: Node) -> Shape:
    x, w1, w2 = g[n.inputs[0]].shape, g[n.inputs[1]].shape, g[n.inputs[3]].shape
    if w1[2:] != (1, 1) or w1[1] != x[1] or w2[1] != 1 or w2[0] != w1[0]:
        raise ValueError(f"pw_dw expects a 1x1 conv {w1} reading {x} and a depthwise conv {w2} on its output")
    return _window_shape((x[0], w1[0], x[2], x[3]), w2[2:], n.attrs["strides"], n.attrs["pads"], w2[0])


def _gemm(g: Graph, n: Node) -> Shape:
    x, w = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if len(x) != 2 or len(w) != 2 or x[1] != w[1]:
        raise ValueError(f"gemm expects x[N,K] and w[M,K], got {x} and {w}")
    if len(n.inputs) > 2 and g[n.inputs[2]].shape != (w[0],):
        raise ValueError(f"gemm bias shape {g[n.inputs[2]].shape} != ({w[0]},)")
    return (x[0], w[0])


def _same_as_inputs(g: Graph, n: Node) -> Shape:
    shapes = {g[i].shape for i in n.inputs}
    if len(shapes) != 1:
        raise ValueError(f"{n.op} operands differ in shape: {sorted(shapes)}")
    return shapes.pop()


def _add(g: Graph, n: Node) -> Shape:
    """Elementwise; the second operand may be a constant that broadcasts to the first (a bias)."""
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
    return out


def _pool(g: Graph, n: Node) -> Shape:
    x = g[n.inputs[0]].shape
    return _window_shape(x, n.attrs["kernel"], n.attrs["strides"], n.attrs["pads"], x[1])


def _global_pool(g: Graph, n: Node) -> Shape:
    x = g[n.inputs[0]].shape
    return (x[0], x[1], 1, 1)


def _concat(g: Graph, n: Node) -> Shape:
    shapes = [g[i].shape for i in n.inputs]
    axis = n.attrs["axis"]
    first = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(first) or any(a != b for k, (a, b) in enumerate(zip(s, first)) if k != axis):
            raise ValueError(f"concat operands do not agree outside axis {axis}: {shapes}")
    out = list(first)
    out[axis] = sum(s[axis] for s in shapes)
    return tuple(out)


def _reshape(g: Graph, n: Node) -> Shape:
    x = g[n.inputs[0]]
    shape = tuple(n.attrs["shape"])
    size = 1
    for d in shape:
        size *= d
    if size != x.size:
        raise ValueError(f"reshape of {x.shape} ({x.size} elements) to {shape}")
    return shape


def _mask_output(g: Graph, n: Node) -> list[tuple[str, Shape]]:
    """Requantizing forward ops in a training graph may also write their saturation mask."""
    return [("bool", g[n.outputs[0]].shape)] if n.attrs.get("save_mask") else []


@dataclass(frozen=True)
class OpDef:
    """Operand dtypes, the first output's dtype and shape rule, and any further outputs.

    ``operands``: one dtype per operand (alternatives separated by ``|``, ``*`` for any), or ``None``
    for any number of int8 operands.  ``out_dtype`` ``"same"`` (``"same:K"``) means the dtype of the first
    (the K-th) operand.
    ``extra`` gives (dtype, shape) of outputs after the first.
    """

    name: str
    operands: tuple[str, ...] | None
    out_dtype: str
    shape: Callable[[Graph, Node], Shape]
    attrs: tuple[str, ...] = ()
    requantizes: bool = True  # output has its own quant params and qmin/qmax clamps
    extra: Callable[[Graph, Node], list[tuple[str, Shape]]] | None = None
    optional_operands: int = 0  # trailing operands that may be absent


OPS: dict[str, OpDef] = {}


def register(*defs: OpDef) -> None:
    for d in defs:
        OPS[d.name] = d


register(
    OpDef("quantize", ("float32",), "int8", _same_as_inputs, (), requantizes=False),
    OpDef("dequantize", ("int8",), "float32", _same_as_inputs, (), requantizes=False),
    OpDef("conv", ("int8", "int8", "int32"), "int8", _conv, ("strides", "pads", "groups", "qmin", "qmax"),
          extra=_mask_output),
    OpDef("gemm", ("int8", "int8", "int32"), "int8", _gemm, ("qmin", "qmax"), extra=_mask_output),
    OpDef("pw_dw", ("int8", "int8", "int32", "int8", "int32"), "int8", _pw_dw,
          ("strides", "pads", "mid_quant", "mid_qmin", "mid_qmax", "qmin", "qmax")),
    OpDef("add", ("int8", "int8"), "int8", _add, ("qmin", "qmax"), extra=_mask_output),
    OpDef("requantize", ("int8",), "int8", _same_as_inputs, ("qmin", "qmax"), extra=_mask_output),
    OpDef("avgpool", ("int8",), "int8", _pool, ("kernel", "strides", "pads", "count_include_pad", "qmin", "qmax"),
          extra=_mask_output),
    OpDef("global_avgpool", ("int8",), "int8", _global_pool, ("qmin", "qmax"), extra=_mask_output),
    OpDef("maxpool", ("int8",), "int8", _pool, ("kernel", "strides", "pads", "qmin", "qmax"), extra=_mask_output),
    OpDef("concat", None, "int8", _concat, ("axis", "qmin", "qmax"), extra=_mask_output),
    OpDef("reshape", ("int8",), "int8", _reshape, ("shape",), requantizes=False),
)


def output_shape(g: Graph, node: Node) -> Shape:
    """The first output's shape of ``node`` by its op's rule (raises ValueError when operands disagree)."""
    return OPS[node.op].shape(g, node)


def output_types(g: Graph, node: Node) -> list[tuple[str, Shape]]:
    """(dtype, shape) of every output of ``node``."""
    d = OPS[node.op]
    dtype = d.out_dtype
    if dtype.startswith("same"):  # "same" or "same:K": the dtype of operand K (default 0)
        dtype = g[node.inputs[int(dtype.partition(":")[2] or 0)]].dtype
    return [(dtype, tuple(d.shape(g, node)))] + [(t, tuple(s)) for t, s in (d.extra(g, node) if d.extra else [])]
