"""The layout family: ``transpose`` of an int8 tensor, for models that declare channels-last (NHWC)
inputs (TFLite files, tf2onnx conversions).  tte computes in NCHW; the graph input keeps the layout the
model declares and one ``transpose`` after the quantization turns it into NCHW, so that firmware hands
the C API its samples exactly as the model describes them."""

from __future__ import annotations

import numpy as np

from ..errors import TteError
from ..ir import Graph, Node
from ..ir.registry import Shape, register
from . import cgen as cg
from .common import channels_pinned, never, no_flash, no_scratch


def transpose_shape(g: Graph, n: Node) -> Shape:
    perm = tuple(n.attrs["perm"])
    x = g[n.inputs[0]].shape
    if sorted(perm) != list(range(len(x))):
        raise ValueError(f"perm {list(perm)} is not a permutation of the {len(x)} axes of {list(x)}")
    return tuple(x[p] for p in perm)


def transpose(g: Graph, node: Node, x) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, node.attrs["perm"]))


def transpose_grad(b, node: Node, gy: str) -> None:
    """Transposes sit right after the graph input, which is data: nothing upstream trains."""
    if b.wants(node.inputs[0]):
        raise TteError(f"transpose '{node.name}': tte does not differentiate through a transpose (it only takes "
                       f"them at the graph input)")


def emit_transpose(e: cg.Emitter, node: Node) -> None:
    x, y = node.inputs[0], node.output
    shape = e.g[x].shape
    if len(shape) != 4:
        raise TteError(f"transpose '{node.name}': only 4-d tensors can be emitted")
    perm = ", ".join(str(p) for p in node.attrs["perm"])
    e.call(node, f"tte_transpose_s8({e.dims(x)}, (const int32_t[4]){{{perm}}}, {e.ptr(x)}, {e.ptr(y)})")


register(name="transpose", operands=("int8",), out_dtype="int8", shape=transpose_shape, attrs=("perm",),
         requantizes=False, extra=None, optional=0, kernel=transpose, grad=transpose_grad, emit=emit_transpose,
         runtime=("tte_transpose_s8.c",), scratch=no_scratch, in_place=never, alias=False,
         flash=no_flash, code_bytes=120, channels=channels_pinned, layer=False, onnx=("Transpose",))
