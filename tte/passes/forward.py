"""Forward-graph fusion for memory: a pointwise conv whose only reader is a depthwise conv.

In inverted-residual blocks the 1x1 expansion writes the largest tensor of the network (e.g. 48x64x64
int8 = 192 KB in mbv2-w0.35 at 128x128).  Fused into ``pw_dw``, the expansion is computed one channel
plane at a time and consumed by the depthwise conv at once: the expanded tensor never exists, only
one plane of scratch.  The integers are exactly those of the two convs.  Only frozen layers fuse:
nothing of theirs is trained or saved for backward.
"""

from __future__ import annotations

from ..ir import Graph, Node
from ..ir.facts import is_depthwise


def _why_not(g: Graph, pw: Node, dw: Node | None, readers: dict[str, int], trained: set[str]) -> str | None:
    w = g[pw.inputs[1]].shape
    if w[2:] != (1, 1) or pw.attrs["groups"] != 1 or pw.attrs["strides"] != (1, 1) or any(pw.attrs["pads"]):
        return "not a plain 1x1 conv"
    if dw is None or not is_depthwise(g, dw) or dw.inputs[0] != pw.output:
        return "its result does not go to a depthwise conv"
    if readers.get(pw.output, 0) != 1 or pw.output in g.outputs:
        return "its result has another reader"
    if pw.attrs.get("save_mask") or dw.attrs.get("save_mask"):
        return "a gradient passes through it"
    if any(not g[i].is_const or i in trained for i in pw.inputs[1:] + dw.inputs[1:]):
        return "a weight or bias trains"
    return None


def fuse_pointwise_depthwise(g: Graph, trained: set[str] | frozenset = frozenset()) -> tuple[Graph, list[str]]:
    """Fuse frozen 1x1 + depthwise pairs; ``trained`` names constants that train (a forward graph's
    view of a training program)."""
    g = g.copy()
    readers: dict[str, int] = {}
    for n in g.nodes:
        for i in n.inputs:
            readers[i] = readers.get(i, 0) + 1
    by_input = {n.inputs[0]: n for n in g.nodes if n.op == "conv"}
    log, nodes, skip = [], [], set()
    fused = 0
    for n in g.nodes:
        if id(n) in skip:
            continue
        if n.op != "conv" or is_depthwise(g, n):
            nodes.append(n)
            continue
        dw = by_input.get(n.output)
        why = _why_not(g, n, dw, readers, set(trained))
        if why is not None:
            if dw is not None and is_depthwise(g, dw):
                log.append(f"fuse_pointwise_depthwise: '{n.name}' -> '{dw.name}' not fused: {why}")
            nodes.append(n)
            continue
        attrs = {"strides": dw.attrs["strides"], "pads": dw.attrs["pads"], "mid_quant": g[n.output].quant,
                 "mid_qmin": n.attrs["qmin"], "mid_qmax": n.attrs["qmax"], "qmin": dw.attrs["qmin"],
                 "qmax": dw.attrs["qmax"]}
        nodes.append(Node("pw_dw", f"{n.name}+{dw.name}", n.inputs + dw.inputs[1:], list(dw.outputs), attrs))
        skip.add(id(dw))
        fused += 1
        log.append(f"fuse_pointwise_depthwise: '{n.name}' + '{dw.name}' -> pw_dw (no {g[n.output].nbytes:,} B "
                   f"intermediate)")
    g.nodes = nodes
    g.remove_unused_values()
    if not fused:
        log.append("fuse_pointwise_depthwise: nothing fused (no frozen 1x1 conv feeds a depthwise conv alone)")
    return g, log
