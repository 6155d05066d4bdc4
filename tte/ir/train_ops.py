"""Ops of training graphs: loss, float32 backward ops and parameter updates.

Backward tensors are float32 gradients in *real* units (dL/d of the dequantized value).  Integer
forward tensors saved for backward (a layer's int8 input, a bit mask of where a requantization did not
saturate) are read by the ops that need them.
"""

from __future__ import annotations

from .graph import Graph, Node
from .ops import OpDef, Shape, register


def _first(g: Graph, n: Node) -> Shape:
    return g[n.inputs[0]].shape


def _attr_shape(name: str):
    def rule(g: Graph, n: Node) -> Shape:
        return tuple(n.attrs[name])
    return rule


def _xent(g: Graph, n: Node) -> Shape:
    logits, label = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if len(logits) != 2 or label != (logits[0],):
        raise ValueError(f"xent expects logits [N,K] and labels [N], got {logits} and {label}")
    return ()


def _ste(g: Graph, n: Node) -> Shape:
    a, m = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if a != m:
        raise ValueError(f"gradient {a} and mask {m} differ in shape")
    return a


def _conv_grad_weight(g: Graph, n: Node) -> Shape:
    o = g[n.inputs[0]].shape[1]
    kh, kw = n.attrs["kernel"]
    k = n.attrs["channels"]
    if n.attrs["depthwise"]:
        return (k, 1, kh, kw)
    return (o, k, kh, kw)


def _bias_grad(g: Graph, n: Node) -> Shape:
    return (g[n.inputs[0]].shape[1],)


def _gemm_grad_input(g: Graph, n: Node) -> Shape:
    dy, w = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if dy[1] != w[0]:
        raise ValueError(f"gemm_grad_input: gradient {dy} does not match weight {w}")
    return (dy[0], w[1])


def _gemm_grad_weight(g: Graph, n: Node) -> Shape:
    return (g[n.inputs[0]].shape[1], n.attrs["channels"])


def _slice(g: Graph, n: Node) -> Shape:
    s = list(g[n.inputs[0]].shape)
    s[n.attrs["axis"]] = n.attrs["stop"] - n.attrs["start"]
    return tuple(s)


def _same2(g: Graph, n: Node) -> Shape:
    a, b = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if a != b:
        raise ValueError(f"grad_add operands differ in shape: {a} and {b}")
    return a


def _xent_extra(g: Graph, n: Node):
    return [("float32", g[n.inputs[0]].shape)]


def _sgd_extra(g: Graph, n: Node):
    return [("float32", g[n.inputs[3]].shape)] if n.attrs["rounding"] == "accumulate" else []


def _sgd(g: Graph, n: Node) -> Shape:
    p, grad = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    want = list(p)
    want[n.attrs["axis"]] = n.attrs["channels"]
    if tuple(want) != grad:
        raise ValueError(f"sgd: gradient {grad} does not match the trained slice {tuple(want)} of {p}")
    return p


def _fused_update(param_index: int, grad_rule):
    """Shape rule of a fused gradient + update op: the gradient it would produce must fit the slice."""
    def rule(g: Graph, n: Node) -> Shape:
        p = g[n.inputs[param_index]].shape
        want = list(p)
        want[n.attrs["axis"]] = n.attrs["channels"]
        grad = grad_rule(g, n) if grad_rule else (p[0],)
        if tuple(want) != tuple(grad):
            raise ValueError(f"{n.op}: gradient {tuple(grad)} does not match the trained slice {tuple(want)} of {p}")
        return p
    return rule


def _fused_extra(aux_index: int):
    def extra(g: Graph, n: Node):
        return [("float32", g[n.inputs[aux_index]].shape)] if n.attrs["rounding"] == "accumulate" else []
    return extra


_UPDATE_ATTRS = ("lr", "rounding", "axis", "channels", "qmin", "qmax")

register(
    OpDef("xent", ("float32", "int32"), "float32", _xent, (), requantizes=False, extra=_xent_extra),
    OpDef("ste", ("float32", "bool"), "float32", _ste, (), requantizes=False),
    OpDef("conv_grad_input", ("float32", "int8"), "float32", _attr_shape("in_shape"),
          ("strides", "pads", "groups", "in_shape"), requantizes=False),
    OpDef("conv_grad_weight", ("float32", "int8"), "float32", _conv_grad_weight,
          ("strides", "pads", "groups", "kernel", "channels", "depthwise"), requantizes=False),
    OpDef("bias_grad", ("float32",), "float32", _bias_grad, (), requantizes=False),
    OpDef("gemm_grad_input", ("float32", "int8"), "float32", _gemm_grad_input, (), requantizes=False),
    OpDef("gemm_grad_weight", ("float32", "int8"), "float32", _gemm_grad_weight, ("channels",), requantizes=False),
    OpDef("avgpool_grad", ("float32",), "float32", _attr_shape("in_shape"),
          ("kernel", "strides", "pads", "count_include_pad", "in_shape"), requantizes=False),
    OpDef("global_avgpool_grad", ("float32",), "float32", _attr_shape("in_shape"), ("in_shape",),
          requantizes=False),
    OpDef("maxpool_grad", ("float32", "int8"), "float32", lambda g, n: g[n.inputs[1]].shape,
          ("kernel", "strides", "pads"), requantizes=False),
    OpDef("slice", ("float32",), "float32", _slice, ("axis", "start", "stop"), requantizes=False),
    OpDef("freshape", ("float32",), "float32", _attr_shape("shape"), ("shape",), requantizes=False),
    OpDef("grad_add", ("float32", "float32"), "float32", _same2, (), requantizes=False),
    OpDef("momentum", ("float32", "float32"), "float32", _same2, ("beta",), requantizes=False),
    OpDef("sgd", ("int8|int32", "float32", "float32", "*"), "same", _sgd,
          ("lr", "rounding", "axis", "channels", "qmin", "qmax"), requantizes=False, extra=_sgd_extra,
          optional_operands=1),
    OpDef("count", ("int32",), "int32", _first, (), requantizes=False),
    # fused gradient + update (tte.passes.fuse): no gradient buffer; C computes it per output channel
    OpDef("conv_weight_update", ("float32", "int8", "int8", "float32", "*"), "same:2",
          _fused_update(2, _conv_grad_weight),
          ("strides", "pads", "groups", "kernel", "depthwise") + _UPDATE_ATTRS, requantizes=False,
          extra=_fused_extra(4), optional_operands=1),
    OpDef("gemm_weight_update", ("float32", "int8", "int8", "float32", "*"), "same:2",
          _fused_update(2, _gemm_grad_weight),
          _UPDATE_ATTRS, requantizes=False, extra=_fused_extra(4), optional_operands=1),
    OpDef("bias_update", ("float32", "int32", "float32", "*"), "same:1", _fused_update(1, None),
          _UPDATE_ATTRS, requantizes=False, extra=_fused_extra(3), optional_operands=1),
)
