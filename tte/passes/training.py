"""Passes over training graphs.  Each is a pure function ``graph -> (new graph, log)``; the log says
what fired and, for what did not, why (``tte plan --explain`` prints it).

* :func:`eliminate_dead`: drop nodes whose results nobody reads (no output, no state update).
* :func:`prune_masks`: a requantization that provably cannot saturate needs no mask: its
  straight-through gradient passes everywhere.
* :func:`tte.passes.forward.fuse_pointwise_depthwise`: frozen 1x1 expansion + depthwise conv pairs
  run as one op, one channel plane at a time.
* :func:`fuse_updates`: gradient + update become one op (``conv_weight_update``,
  ``gemm_weight_update``, ``bias_update``): the C kernel produces the gradient one output channel at
  a time and applies it at once, so no gradient buffer exists.
* :func:`tte.passes.block_backward.fuse_block_backward`: the backward of a trained inverted-residual
  block (pw2's input gradient through pw1's, with their updates) runs channel by channel, so the
  float gradients of the expanded tensors never exist whole.
* :func:`reorder_updates`: each update runs right after its gradient is ready and the parameter's old
  value has been read for the last time, so gradients die as early as possible.
* :func:`tte.passes.patch.patch_frozen_prefix`: the leading frozen forward ops run band by band of
  rows (line buffers kept between bands, or halos recomputed), so the stem's result never exists whole.
* :func:`tte.passes.block_backward.group_block_channels`: how many channels each fused block backward
  takes at a time, within the scratch the other kernels need anyway.
"""

from __future__ import annotations

import os
import sys

from ..ir import Graph, Node
from .block_backward import fuse_block_backward, group_block_channels
from .forward import fuse_pointwise_depthwise
from .patch import patch_frozen_prefix

UPDATES = ("sgd", "conv_weight_update", "gemm_weight_update", "bias_update")


def _readers(g: Graph) -> dict[str, list[Node]]:
    out: dict[str, list[Node]] = {}
    for n in g.nodes:
        for i in n.inputs:
            out.setdefault(i, []).append(n)
    return out


def eliminate_dead(g: Graph) -> tuple[Graph, list[str]]:
    g = g.copy()
    live = set(g.outputs) | set(g.state_updates.values())
    kept, log = [], []
    for node in reversed(g.nodes):
        if any(o in live for o in node.outputs):
            kept.append(node)
            live.update(node.inputs)
        else:
            log.append(f"eliminate_dead: removed {node.op} '{node.name}' (no reader of {', '.join(node.outputs)})")
    g.nodes = kept[::-1]
    g.remove_unused_values()
    if not log:
        log.append("eliminate_dead: nothing to remove (every result is read, returned or is a state update)")
    return g, log


def _cannot_saturate(g: Graph, node: Node) -> str | None:
    """Why ``node``'s requantization can never clamp, or None if it can."""
    full = (node.attrs.get("qmin"), node.attrs.get("qmax")) == (-128, 127)
    same = all(g[i].quant == g[node.outputs[0]].quant for i in node.inputs if not g[i].is_const)
    if not full:
        return None
    if node.op in ("requantize", "maxpool", "concat") and same:
        return "same quantization in and out: the values are copied"
    if node.op in ("global_avgpool", "avgpool") and same:
        return "same quantization in and out: an average of int8 values (and zero padding) stays in range"
    return None


def prune_masks(g: Graph) -> tuple[Graph, list[str]]:
    g = g.copy()
    log = []
    dropped: dict[str, str] = {}
    for node in g.nodes:
        if not node.attrs.get("save_mask"):
            continue
        why = _cannot_saturate(g, node)
        if why is None:
            log.append(f"prune_masks: kept the mask of {node.op} '{node.name}' (its clamp can saturate)")
            continue
        dropped[node.outputs[1]] = node.name
        node.outputs = node.outputs[:1]
        node.attrs = {k: v for k, v in node.attrs.items() if k != "save_mask"}
        log.append(f"prune_masks: dropped the mask of {node.op} '{node.name}' ({why})")
    if dropped:
        renames: dict[str, str] = {}
        kept = []
        for node in g.nodes:
            node.inputs = [renames.get(i, i) for i in node.inputs]
            if node.op == "ste" and node.inputs[1] in dropped:
                renames[node.outputs[0]] = node.inputs[0]
                continue
            kept.append(node)
        g.nodes = kept
        g.outputs = [renames.get(o, o) for o in g.outputs]
        g.state_updates = {k: renames.get(v, v) for k, v in g.state_updates.items()}
        g.remove_unused_values()
    return g, log


_FUSIBLE = {"conv_grad_weight": "conv_weight_update", "gemm_grad_weight": "gemm_weight_update",
            "bias_grad": "bias_update"}


def fuse_updates(g: Graph) -> tuple[Graph, list[str]]:
    g = g.copy()
    readers = _readers(g)
    producers = {o: n for n in g.nodes for o in n.outputs}
    log = []
    replaced: dict[int, Node | None] = {}
    for sgd in [n for n in g.nodes if n.op == "sgd"]:
        grad = sgd.inputs[1]
        prod = producers.get(grad)
        if prod is None or prod.op not in _FUSIBLE:
            what = f"{prod.op} '{prod.name}'" if prod is not None else "an input"
            log.append(f"fuse_updates: '{sgd.name}' not fused: its gradient comes from {what} "
                       f"(momentum keeps a velocity buffer the size of the gradient)" if prod is not None
                       and prod.op == "momentum" else
                       f"fuse_updates: '{sgd.name}' not fused: its gradient comes from {what}")
            continue
        if len(readers.get(grad, [])) != 1:
            log.append(f"fuse_updates: '{prod.name}' not fused: its gradient is also read by "
                       f"{[r.name for r in readers[grad] if r is not sgd]}")
            continue
        fused_op = _FUSIBLE[prod.op]
        attrs = {k: v for k, v in prod.attrs.items() if k != "channels"}
        attrs.update(sgd.attrs)
        fused = Node(fused_op, sgd.name, list(prod.inputs) + list(sgd.inputs[:1]) + list(sgd.inputs[2:]),
                     list(sgd.outputs), attrs)
        replaced[id(sgd)] = fused
        replaced[id(prod)] = None
        log.append(f"fuse_updates: {prod.op} '{prod.name}' + sgd -> {fused_op} '{fused.name}' "
                   f"(no {g[grad].nbytes:,} B gradient buffer)")
    if not replaced:
        log.append("fuse_updates: nothing fused (no sgd reads a weight or bias gradient directly)")
        return g, log
    nodes = []
    for n in g.nodes:
        r = replaced.get(id(n), n)
        if r is not None:
            nodes.append(r)
    g.nodes = nodes
    g.remove_unused_values()
    return g, log


def reorder_updates(g: Graph) -> tuple[Graph, list[str]]:
    """Hoist every update to just after its last dependency (its operands, and every other reader of
    the parameter's old value)."""
    g = g.copy()
    log = []
    order = [n for n in g.nodes]
    moved = 0
    for upd in [n for n in order if n.op in UPDATES]:
        order.remove(upd)
        param = upd.inputs[2] if upd.op in ("conv_weight_update", "gemm_weight_update") else \
            upd.inputs[1] if upd.op == "bias_update" else upd.inputs[0]
        deps = set(upd.inputs)
        position = 0
        for i, n in enumerate(order):
            if deps & set(n.outputs) or param in n.inputs:
                position = i + 1
        old = g.nodes.index(upd)
        order.insert(position, upd)
        if position < old:
            moved += 1
    g.nodes = order
    log.append(f"reorder_updates: moved {moved} of {sum(n.op in UPDATES for n in order)} updates up to right "
               f"after their gradients" if moved else
               "reorder_updates: every update already follows its gradient directly")
    return g, log


PIPELINE = (eliminate_dead, prune_masks, fuse_pointwise_depthwise, fuse_updates, fuse_block_backward, reorder_updates,
            patch_frozen_prefix, group_block_channels)


def optimize(g: Graph, steps=PIPELINE, verify: bool = True) -> tuple[Graph, list[str]]:
    """Run the training-graph passes in order; verify after each (tests rely on it).

    ``TTE_DUMP=name[,name...]`` prints the graph after each named pass (or ``all``) to stderr."""
    dump = {s.strip() for s in os.environ.get("TTE_DUMP", "").split(",") if s.strip()}
    log: list[str] = []
    for step in steps:
        g, lines = step(g)
        log += lines
        if verify:
            g.verify()
        if step.__name__ in dump or "all" in dump:
            print(f"// after {step.__name__}\n{g.dump()}", file=sys.stderr)
    return g, log
