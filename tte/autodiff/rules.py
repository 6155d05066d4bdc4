"""Gradient rules: one small function per forward op, keyed by op name.

A rule receives the node and ``gy``, the name of the float32 gradient of the node's (real-valued)
output, and asks the builder for the gradients of exactly the operands that lead to a trained
parameter (``b.wants(name)``); everything else is a symbolic zero and costs nothing.

Requantizing ops first pass ``gy`` through their saturation mask (straight-through estimator:
the gradient flows where round(acc * M) + z landed inside [qmin, qmax]), then apply the rule of the
real-valued op: y = conv(x, W) + b, y = a + b, pools, and so on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ir import Node
from .scheme import is_depthwise

if TYPE_CHECKING:
    from .backward import Builder


def _masked(b: Builder, node: Node, gy: str) -> str:
    return b.emit("ste", [gy, b.mask_of(node)], f"{node.output}.grad_pre")


def conv(b: Builder, node: Node, gy: str) -> None:
    x, w, bias = node.inputs
    dz = _masked(b, node, gy)
    a = node.attrs
    if b.wants(x):
        b.contribute(x, b.emit("conv_grad_input", [dz, w], f"{x}.grad_from.{node.name}", strides=a["strides"],
                               pads=a["pads"], groups=a["groups"], in_shape=b.g[x].shape))
    if b.wants(w):
        b.param_grad(w, b.emit("conv_grad_weight", [dz, b.saved(x)], f"{w}.grad", strides=a["strides"],
                               pads=a["pads"], groups=a["groups"], kernel=b.g[w].shape[2:], channels=b.channels(w),
                               depthwise=is_depthwise(b.g, node)))
    if b.wants(bias):
        b.param_grad(bias, b.emit("bias_grad", [dz], f"{bias}.grad"))


def gemm(b: Builder, node: Node, gy: str) -> None:
    x, w, bias = node.inputs
    dz = _masked(b, node, gy)
    if b.wants(x):
        b.contribute(x, b.emit("gemm_grad_input", [dz, w], f"{x}.grad_from.{node.name}"))
    if b.wants(w):
        b.param_grad(w, b.emit("gemm_grad_weight", [dz, b.saved(x)], f"{w}.grad", channels=b.channels(w)))
    if b.wants(bias):
        b.param_grad(bias, b.emit("bias_grad", [dz], f"{bias}.grad"))


def add(b: Builder, node: Node, gy: str) -> None:
    dz = _masked(b, node, gy)
    for x in node.inputs:
        if b.wants(x):
            b.contribute(x, dz)


def requantize(b: Builder, node: Node, gy: str) -> None:
    if b.wants(node.inputs[0]):
        b.contribute(node.inputs[0], _masked(b, node, gy))


def avgpool(b: Builder, node: Node, gy: str) -> None:
    x = node.inputs[0]
    if b.wants(x):
        a = node.attrs
        b.contribute(x, b.emit("avgpool_grad", [_masked(b, node, gy)], f"{x}.grad_from.{node.name}",
                               kernel=a["kernel"], strides=a["strides"], pads=a["pads"],
                               count_include_pad=a["count_include_pad"], in_shape=b.g[x].shape))


def global_avgpool(b: Builder, node: Node, gy: str) -> None:
    x = node.inputs[0]
    if b.wants(x):
        b.contribute(x, b.emit("global_avgpool_grad", [_masked(b, node, gy)], f"{x}.grad_from.{node.name}",
                               in_shape=b.g[x].shape))


def maxpool(b: Builder, node: Node, gy: str) -> None:
    x = node.inputs[0]
    if b.wants(x):
        a = node.attrs
        b.contribute(x, b.emit("maxpool_grad", [_masked(b, node, gy), b.saved(x)], f"{x}.grad_from.{node.name}",
                               kernel=a["kernel"], strides=a["strides"], pads=a["pads"]))


def concat(b: Builder, node: Node, gy: str) -> None:
    dz = _masked(b, node, gy)
    axis, start = node.attrs["axis"], 0
    for x in node.inputs:
        stop = start + b.g[x].shape[axis]
        if b.wants(x):
            b.contribute(x, b.emit("slice", [dz], f"{x}.grad_from.{node.name}", axis=axis, start=start, stop=stop))
        start = stop


def reshape(b: Builder, node: Node, gy: str) -> None:
    x = node.inputs[0]
    if b.wants(x):
        b.contribute(x, b.emit("freshape", [gy], f"{x}.grad_from.{node.name}", shape=b.g[x].shape))


def dequantize(b: Builder, node: Node, gy: str) -> None:
    # real(output) == real(input): the gradient is the same tensor
    if b.wants(node.inputs[0]):
        b.contribute(node.inputs[0], gy)


def quantize(b: Builder, node: Node, gy: str) -> None:
    """The graph input is data, never trained: nothing to propagate."""


RULES = {
    "conv": conv,
    "gemm": gemm,
    "add": add,
    "requantize": requantize,
    "avgpool": avgpool,
    "global_avgpool": global_avgpool,
    "maxpool": maxpool,
    "concat": concat,
    "reshape": reshape,
    "dequantize": dequantize,
    "quantize": quantize,
}
