"""Facts about graphs that every layer above the IR shares: what a depthwise conv is, the names of the
training graph's label and loss."""

from __future__ import annotations

from .graph import Graph, Node

LABEL = "label"  # the training graph's int32 class-label input
LOSS = "loss"  # its float32 loss output


def is_depthwise(g: Graph, node: Node) -> bool:
    """A conv with one input and one output channel per group (channel multiplier 1)."""
    if node.op != "conv" or node.attrs["groups"] == 1:
        return False
    w = g[node.inputs[1]].shape
    return w[1] == 1 and w[0] == node.attrs["groups"]


def value_bytes(g: Graph, name: str) -> int:
    """Bytes of a value in memory: a bool tensor (a saturation mask) is bit-packed."""
    v = g[name]
    if v.dtype == "bool":
        return -(-v.size // 8)
    return v.nbytes
