"""The shape family: ``reshape`` (a view: no data moves), ``concat`` (along channels, each operand
rescaled to the output), ``quantize`` / ``dequantize`` at the graph's boundaries, and in training graphs
``slice`` (a concat's gradient, per operand) and ``freshape`` (a reshape's gradient, a view).  With TFLite's
arithmetic, concat copies operands with the output's parameters and requantizes the others (TFLite's
Requantize), and quantize rounds half away from zero (AffineQuantize)."""

from __future__ import annotations

import numpy as np

from ..errors import TteError
from ..ir import Graph, Node
from ..ir.registry import Shape, register
from ..reference import fixedpoint as fp
from ..reference import numerics as nx
from ..reference import semantics as sem
from . import cgen as cg
from .common import (
    attr_shape,
    channels_pinned,
    finish,
    finish_int,
    literal_per_operand,
    mask_output,
    masked,
    never,
    no_flash,
    no_scratch,
    requantize_multiplier,
    rescale_preround,
    same_as_inputs,
    tflite,
    tflite_rescale,
)
from .update import TRAINING_ONLY

# -- C emitters (the ``emit`` facet) ------------------------------------------------------------


def emit_concat(e: cg.Emitter, node: Node) -> None:
    g = e.g
    y = node.output
    if node.attrs["axis"] != 1 or len(g[y].shape) != 4:
        raise TteError(f"concat '{node.name}': only channel concatenation of NCHW tensors can be emitted")
    offset = 0
    for x in node.inputs:
        if tflite(g):  # a copy when the parameters are equal, else TFLite's Requantize
            m, n = requantize_multiplier(g, x, y)
            e.call(node, f"tte_concat_channels_tflite_s8({e.dims(x)}, {e.ptr(x)}, {int(g[x].quant.zero_point)}, {m}, "
                         f"{n}, {int(g[y].quant.zero_point)}, {node.attrs['qmin']}, {node.attrs['qmax']}, "
                         f"{g[y].shape[1]}, {offset}, {e.ptr(y)}, {e.mask(node)})")
            offset += g[x].shape[1]
            continue
        e.call(node, f"tte_concat_channels_s8({e.dims(x)}, {e.ptr(x)}, {int(g[x].quant.zero_point)}, "
                     f"{cg.rescale(g, x, y)}, {int(g[y].quant.zero_point)}, {node.attrs['qmin']}, "
                     f"{node.attrs['qmax']}, {g[y].shape[1]}, {offset}, {e.ptr(y)}, {e.mask(node)})")
        offset += g[x].shape[1]


def emit_slice(e: cg.Emitter, node: Node) -> None:
    gy = node.inputs[0]
    a = node.attrs
    if a["axis"] != 1:
        raise TteError(f"slice '{node.name}': only channel slices can be emitted")
    e.call(node, f"tte_slice_channels_f32({e.dims(gy)}, {a['start']}, {a['stop']}, {e.ptr(gy)}, {e.ptr(node.output)})")


def emit_alias(e: cg.Emitter, node: Node) -> None:
    """A view (reshape, freshape): a comment naming the bytes it shares; nothing for a view of a streamed input."""
    if node.output not in e.root and node.inputs[0] not in e.root:  # a view of a streamed input: no bytes
        e.comment(f"{node.op} {node.name}: a view of the streamed input, read in rows by the patched stage")
        return
    if e.root[node.output] != e.root[node.inputs[0]]:
        raise AssertionError("a reshape must alias its operand")
    e.comment(f"{node.op} {node.name}: {e.ptr(node.output)} is a view of the bytes of {e.ptr(node.inputs[0])}")


def emit_quantize(e: cg.Emitter, node: Node) -> None:
    """Quantizing the float input is the float API's prologue; the int8 API finds the input in place.  A streamed
    input (no arena buffer) is quantized row by row in its row source: the emitter keeps the function only."""
    q = e.g[node.output].quant
    function = "tte_quantize_tflite_f32" if tflite(e.g) else "tte_quantize_f32"
    if node.output not in e.root:
        e.quantize_rows = function
        return
    call = (f"{function}({e.g[node.output].size}, input, {cg.c_float(q.scale)}, {int(q.zero_point)}, "
            f"{e.ptr(node.output)})")
    e.prologue += cg.format_call("TTE_CHECK(", call, ");")
    e.input_ptr = e.ptr(node.output)


def emit_dequantize(e: cg.Emitter, node: Node) -> None:
    x = node.inputs[0]
    q = e.g[x].quant
    e.call(node, f"tte_dequantize_s8({e.g[x].size}, {e.ptr(x)}, {cg.c_float(q.scale)}, {int(q.zero_point)}, "
                 f"{e.ptr(node.output)})")


# -- reshape -------------------------------------------------------------------------------------------


def reshape_shape(g: Graph, n: Node) -> Shape:
    x = g[n.inputs[0]]
    shape = tuple(n.attrs["shape"])
    size = 1
    for d in shape:
        size *= d
    if size != x.size:
        raise ValueError(f"reshape of {x.shape} ({x.size} elements) to {shape}")
    return shape


def reshape(g: Graph, node: Node, x) -> np.ndarray:
    return x.reshape(node.attrs["shape"])


def reshape_grad(b, node: Node, gy: str) -> None:
    x = node.inputs[0]
    if b.wants(x):
        b.contribute(x, b.emit("freshape", [gy], f"{x}.grad_from.{node.name}", shape=b.g[x].shape))


def reshape_channels(g: Graph, n: Node, c) -> None:
    """[N, C, 1, 1] <-> [N, C] keeps channels; any other reshape mixes them with positions."""
    x, y = n.inputs[0], n.outputs[0]
    xs, ys = g[x].shape, g[y].shape
    if len(xs) >= 2 and len(ys) >= 2 and xs[:2] == ys[:2] and all(d == 1 for d in xs[2:]) and \
            all(d == 1 for d in ys[2:]):
        c.union(x, y)
    else:
        c.freeze(x)
        c.freeze(y)


register(name="reshape", operands=("int8",), out_dtype="int8", shape=reshape_shape, attrs=("shape",),
         requantizes=False, extra=None, optional=0, kernel=reshape, grad=reshape_grad, emit=emit_alias, runtime=(),
         scratch=no_scratch, in_place=never, alias=True,
         flash=no_flash, code_bytes=0, channels=reshape_channels, layer=False,
         onnx=("Flatten", "Reshape", "Squeeze", "Unsqueeze"))


# -- concat --------------------------------------------------------------------------------------------


def concat_shape(g: Graph, n: Node) -> Shape:
    shapes = [g[i].shape for i in n.inputs]
    axis = n.attrs["axis"]
    first = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(first) or any(a != b for k, (a, b) in enumerate(zip(s, first)) if k != axis):
            raise ValueError(f"concat operands do not agree outside axis {axis}: {shapes}")
    out = list(first)
    out[axis] = sum(s[axis] for s in shapes)
    return tuple(out)


def concat(g: Graph, node: Node, *xs):
    qy = g[node.output].quant
    if tflite(g):  # TFLite's int8 CONCATENATION copies (equal parameters); otherwise each operand is requantized
        parts = [tflite_rescale(g, n, node.output, x) for n, x in zip(node.inputs, xs)]
        return finish_int(node, np.concatenate(parts, axis=node.attrs["axis"]))
    v = np.concatenate([rescale_preround(x, g[n].quant, qy) for n, x in zip(node.inputs, xs)], axis=node.attrs["axis"])
    return finish(node, v, nx.zero_point(qy))


def concat_grad(b, node: Node, gy: str) -> None:
    dz = masked(b, node, gy)
    axis, start = node.attrs["axis"], 0
    for x in node.inputs:
        stop = start + b.g[x].shape[axis]
        if b.wants(x):
            b.contribute(x, b.emit("slice", [dz], f"{x}.grad_from.{node.name}", axis=axis, start=start, stop=stop))
        start = stop


register(name="concat", operands=None, out_dtype="int8", shape=concat_shape, attrs=("axis", "qmin", "qmax"),
         requantizes=True, extra=mask_output, optional=0, kernel=concat, grad=concat_grad, emit=emit_concat,
         runtime=("tte_concat_channels_s8.c", "tte_concat_channels_tflite_s8.c"), scratch=no_scratch, in_place=never,
         alias=False,
         flash=literal_per_operand, code_bytes=200,
         channels=channels_pinned, layer=False, onnx=("Concat", "QLinearConcat"))


# -- graph boundaries ----------------------------------------------------------------------------------


def quantize(g: Graph, node: Node, x) -> np.ndarray:
    q = g[node.output].quant
    if tflite(g):  # AffineQuantize: round half away from zero
        return fp.quantize(x, q.scale, nx.zero_point(q))
    return sem.quantize(x, float(q.scale), nx.zero_point(q))


def quantize_grad(b, node: Node, gy: str) -> None:
    """The graph input is data, never trained: nothing to propagate."""


register(name="quantize", operands=("float32",), out_dtype="int8", shape=same_as_inputs, attrs=(), requantizes=False,
         extra=None, optional=0, kernel=quantize, grad=quantize_grad, emit=emit_quantize,
         runtime=("tte_quantize_f32.c", "tte_quantize_tflite_f32.c"), scratch=no_scratch, in_place=never, alias=False,
         flash=no_flash, code_bytes=150,
         channels=channels_pinned, layer=False, onnx=("QuantizeLinear",))


def dequantize(g: Graph, node: Node, x) -> np.ndarray:
    q = g[node.inputs[0]].quant
    return sem.dequantize(x, q.scale, q.zero_point)


def dequantize_grad(b, node: Node, gy: str) -> None:
    """real(output) == real(input): the gradient is the same tensor."""
    if b.wants(node.inputs[0]):
        b.contribute(node.inputs[0], gy)


register(name="dequantize", operands=("int8",), out_dtype="float32", shape=same_as_inputs, attrs=(),
         requantizes=False, extra=None, optional=0, kernel=dequantize, grad=dequantize_grad, emit=emit_dequantize,
         runtime=("tte_dequantize_s8.c",), scratch=no_scratch, in_place=never, alias=False,
         flash=no_flash, code_bytes=100,
         channels=channels_pinned, layer=False, onnx=("DequantizeLinear",))


# -- training ------------------------------------------------------------------------------------------


def slice_shape(g: Graph, n: Node) -> Shape:
    s = list(g[n.inputs[0]].shape)
    s[n.attrs["axis"]] = n.attrs["stop"] - n.attrs["start"]
    return tuple(s)


def slice_(g: Graph, node: Node, gy):
    idx = [slice(None)] * gy.ndim
    idx[node.attrs["axis"]] = slice(node.attrs["start"], node.attrs["stop"])
    return np.ascontiguousarray(gy[tuple(idx)])


register(name="slice", operands=("float32",), out_dtype="float32", shape=slice_shape, attrs=("axis", "start", "stop"),
         extra=None, optional=0, kernel=slice_, emit=emit_slice, runtime=("tte_slice_channels_f32.c",),
         scratch=no_scratch, code_bytes=150, **TRAINING_ONLY)


def freshape(g: Graph, node: Node, gy):
    return gy.reshape(node.attrs["shape"])


register(name="freshape", operands=("float32",), out_dtype="float32", shape=attr_shape("shape"), attrs=("shape",),
         extra=None, optional=0, kernel=freshape, emit=emit_alias, runtime=(), scratch=no_scratch, code_bytes=0,
         **dict(TRAINING_ONLY, alias=True))
