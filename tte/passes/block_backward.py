"""Fused backward through trained inverted-residual blocks (``block_backward``, :mod:`tte.ops.block`).

In a block 1x1 ``pw1`` -> depthwise ``dw`` -> 1x1 ``pw2`` whose backward runs, the gradients of the expanded
tensor (at dw's output, and at its input when a gradient goes on to pw1) are the largest float buffers of the
step.  This pass replaces the chain from the masked gradient at pw2's output to the block input's gradient

    conv_grad_input (pw2) -> ste (dw mask) -> [bias_update, conv_weight_update of dw]
      -> conv_grad_input (dw) -> ste (pw1 mask) -> [bias_update, conv_weight_update of pw1]
      -> conv_grad_input (pw1)

together with pw2's weight update, by one ``block_backward`` node that goes one expanded channel at a time: the
expanded gradients never exist whole, a plane or two of scratch instead.  The numbers are the unfused chain's.

It runs after :func:`tte.passes.training.fuse_updates` (it takes fused updates only: an update through momentum
needs the whole gradient) and before ``reorder_updates`` (which then schedules the other updates around it).
Where a block does not match, the log says why (``tte plan --explain``).  :func:`group_block_channels`, the last
pass, sets how many channels each fused node goes at a time, once every other node's scratch is known.
"""

from __future__ import annotations

from ..ir import Graph, Node
from ..ir.facts import is_depthwise
from ..ir.registry import OPS
from ..ops.block import MAX_GROUP, MAX_TAPS, UPDATES, channel_scratch


def _pointwise(g: Graph, conv: Node | None) -> bool:
    return (conv is not None and conv.op == "conv" and g[conv.inputs[1]].shape[2:] == (1, 1)
            and conv.attrs["groups"] == 1 and tuple(conv.attrs["strides"]) == (1, 1) and not any(conv.attrs["pads"]))


class _NoMatch(Exception):
    """Why a block's backward does not fuse."""


class _Block:
    """The forward convs of one block and the backward nodes of its chain (found from pw2's input gradient)."""

    def __init__(self, g: Graph, p2: Node, convs: dict[str, Node], producers: dict[str, Node],
                 readers: dict[str, list[Node]]):
        self.g, self.p2 = g, p2
        self.pw2 = convs.get(p2.inputs[1])
        self.dw = producers.get(self.pw2.inputs[0]) if self.pw2 is not None else None
        self.pw1 = producers.get(self.dw.inputs[0]) if self.dw is not None else None
        self.readers, self.producers = readers, producers
        self.removed: list[Node] = []  # the chain's nodes the fused node replaces
        self.updates: dict[str, Node] = {}  # UPDATES name -> its fused update node
        self.dx: Node | None = None  # pw1's input gradient
        self.pw1_stage = False

    @property
    def candidate(self) -> bool:
        """pw2's input gradient of a 1x1 conv reading a depthwise conv (one channel per group)."""
        g = self.g
        return (_pointwise(g, self.pw2) and self.dw is not None and self.dw.op == "conv" and is_depthwise(g, self.dw)
                and g[self.dw.inputs[1]].shape[0] == g[self.dw.inputs[0]].shape[1])

    @property
    def label(self) -> str:
        pw1 = f"'{self.pw1.name}' -> " if self.pw1 is not None and self.pw1.op == "conv" else ""
        return f"{pw1}'{self.dw.name}' -> '{self.pw2.name}'"

    def _masked(self, grad: str, conv: Node, what: str) -> str:
        """The masked gradient of ``conv``'s output from its unmasked one ``grad``, which only that mask reads."""
        rs = self.readers.get(grad, [])
        mask = conv.outputs[1] if len(conv.outputs) > 1 else None
        if len(rs) != 1 or rs[0].op != "ste" or rs[0].inputs != [grad, mask] or grad in self.g.outputs:
            names = ", ".join(f"{r.op} '{r.name}'" for r in rs) or "nothing"
            raise _NoMatch(f"the gradient of {what} goes to {names}, not to its mask alone")
        self.removed.append(rs[0])
        return rs[0].output

    def _take(self, grad: str, conv: Node, prefix: str, what: str) -> Node | None:
        """Sort the readers of ``conv``'s masked output gradient ``grad``: its fused bias and weight updates, and
        its input gradient (returned)."""
        w, b, x = conv.inputs[1], conv.inputs[2], conv.inputs[0]
        grad_input = None
        for r in self.readers.get(grad, []):
            if r.op == "bias_update" and r.inputs[1] == b:
                self.updates[f"{prefix}_bias"] = r
            elif r.op == "conv_weight_update" and r.inputs[1:3] == [x, w]:
                self.updates[f"{prefix}_weight"] = r
            elif r.op == "conv_grad_input" and r.inputs[1] == w and grad_input is None:
                grad_input = r
            else:
                raise _NoMatch(f"the gradient of {what} is also read by {r.op} '{r.name}'"
                               + (" (an update through momentum needs the whole gradient)"
                                  if r.op in ("conv_grad_weight", "bias_grad") else ""))
        if grad in self.g.outputs:
            raise _NoMatch(f"the gradient of {what} is a graph output")
        return grad_input

    def match(self) -> None:
        g = self.g
        e2 = self._masked(self.p2.output, self.dw, f"'{self.dw.name}''s output")
        self.removed.insert(0, self.p2)
        if max(g[self.dw.inputs[1]].shape[2:]) > MAX_TAPS:
            raise _NoMatch(f"its depthwise kernel is larger than {MAX_TAPS}x{MAX_TAPS}")
        d = self._take(e2, self.dw, "dw", f"'{self.dw.name}''s output")
        gy = self.p2.inputs[0]
        for r in self.readers.get(gy, []):
            if r.op == "conv_weight_update" and r.inputs[1:3] == [self.dw.output, self.pw2.inputs[1]]:
                self.updates["pw2_weight"] = r
        if d is not None:
            if not _pointwise(g, self.pw1):
                what = f"{self.pw1.op} '{self.pw1.name}'" if self.pw1 is not None else "an input"
                raise _NoMatch(f"the depthwise conv's input comes from {what}, not from a 1x1 expansion conv")
            self.removed.append(d)
            e1 = self._masked(d.output, self.pw1, f"'{self.pw1.name}''s output")
            self.pw1_stage = True
            self.dx = self._take(e1, self.pw1, "pw1", f"'{self.pw1.name}''s output")
            if self.dx is not None:
                self.removed.append(self.dx)
        elif any(k.startswith("pw1") for k in self.updates):
            raise AssertionError("pw1 updates without a gradient through the depthwise conv")
        if not self.updates and self.dx is None:
            raise _NoMatch("nothing of it trains and no gradient goes on")
        ups = list(self.updates.values())
        shared = {(u.attrs["lr"], u.attrs["rounding"], u.attrs.get("seed", 0)) for u in ups}
        if len(shared) > 1:
            raise _NoMatch(f"its updates differ in learning rate, rounding or seed: {sorted(shared)}")
        if ups and ups[0].attrs["rounding"] == "stochastic" and len({u.inputs[-1] for u in ups}) > 1:
            raise _NoMatch("its updates read different step counters")

    def node(self) -> Node:
        """The fused node: operands and results by role (tte.ops.block)."""
        g, dw, pw1, pw2 = self.g, self.dw, self.pw1, self.pw2
        roles = {"gy": self.p2.inputs[0], "w2": pw2.inputs[1], "dw_mask": dw.outputs[1], "w_dw": dw.inputs[1]}
        if "pw2_weight" in self.updates:
            roles["x2"] = dw.output
        if "dw_weight" in self.updates:
            roles["x_dw"] = dw.inputs[0]
        if "dw_bias" in self.updates:
            roles["b_dw"] = dw.inputs[2]
        if self.pw1_stage:
            roles["pw1_mask"], roles["w1"] = pw1.outputs[1], pw1.inputs[1]
            if "pw1_weight" in self.updates:
                roles["x1"] = pw1.inputs[0]
            if "pw1_bias" in self.updates:
                roles["b1"] = pw1.inputs[2]
        results: dict[str, str] = {"dx": self.dx.output} if self.dx is not None else {}
        updates = []
        for name in UPDATES:
            u = self.updates.get(name)
            if u is None:
                continue
            factor = 2 if u.op == "bias_update" else 3  # the operands after the parameter: factor, [aux]
            roles[f"{name}.factor"] = u.inputs[factor]
            if len(u.inputs) > factor + 1:
                roles[f"{name}.aux"] = u.inputs[factor + 1]
            results[f"{name}.next"] = u.outputs[0]
            if len(u.outputs) > 1:
                results[f"{name}.residual"] = u.outputs[1]
            a = u.attrs
            updates.append(dict(param=name, stream=a["stream"], axis=a["axis"], channels=a["channels"],
                                qmin=a["qmin"], qmax=a["qmax"]))
        lead = "gy" if self.dx is not None else UPDATES[updates[0]["param"]]
        order = [lead] + [k for k in roles if k != lead]
        first = next(iter(self.updates.values()), None)
        a = first.attrs if first is not None else {"lr": 0.0, "rounding": "nearest", "seed": 0}
        attrs = dict(roles=tuple(order), results=tuple(results), strides=tuple(dw.attrs["strides"]),
                     pads=tuple(dw.attrs["pads"]), mid_shape=g[dw.inputs[0]].shape,
                     in_shape=g[self.dx.output].shape if self.dx is not None else None, group=1,
                     updates=tuple(updates),
                     lr=a["lr"], rounding=a["rounding"], seed=a.get("seed", 0))
        return Node("block_backward", f"{dw.name}:block_backward", [roles[k] for k in order], list(results.values()),
                    attrs)

    def summary(self) -> str:
        g = self.g
        expanded = [g[n.output] for n in self.removed if n.op == "conv_grad_input" and n is not self.dx]
        trains = []
        for name in UPDATES:
            u = self.updates.get(name)
            if u is not None:
                full = g[u.inputs[2] if u.op == "conv_weight_update" else u.inputs[1]].shape[u.attrs["axis"]]
                part = f" ({u.attrs['channels']} of {full} channels)" if u.attrs["channels"] < full else ""
                trains.append(name.replace("_", " ") + part)
        kept = "the block input's gradient" if self.dx is not None else "no input gradient (none is needed)"
        grads = " and ".join(f"{v.type_str()} ({v.nbytes:,} B)" for v in expanded)
        return (f"fuse_block_backward: {self.label} -> block_backward: no whole float gradient of the expanded "
                f"tensor ({grads}); updates {', '.join(trains) or 'nothing'}; {kept}")


def fuse_block_backward(g: Graph) -> tuple[Graph, list[str]]:
    """Replace the backward chain of each trained inverted-residual block by one ``block_backward`` node, placed
    where the chain began (every operand of the chain is known there)."""
    g = g.copy()
    producers = {o: n for n in g.nodes for o in n.outputs}
    convs = {n.inputs[1]: n for n in g.nodes if n.op == "conv"}  # weight -> its conv
    readers: dict[str, list[Node]] = {}
    for n in g.nodes:
        for i in n.inputs:
            readers.setdefault(i, []).append(n)
    log: list[str] = []
    replace: dict[int, Node | None] = {}
    for p2 in [n for n in g.nodes if n.op == "conv_grad_input"]:
        block = _Block(g, p2, convs, producers, readers)
        if not block.candidate:
            continue
        try:
            block.match()
        except _NoMatch as why:
            log.append(f"fuse_block_backward: {block.label} not fused: {why}")
            continue
        taken = [n for n in block.removed + list(block.updates.values()) if id(n) in replace]
        if taken:  # 1x1 -> dw -> 1x1 -> dw -> 1x1 ...: the middle 1x1 is one block's pw1 and the next one's pw2
            log.append(f"fuse_block_backward: {block.label} not fused: its {taken[0].op} '{taken[0].name}' is in "
                       f"the block fused before it")
            continue
        fused = block.node()
        for n in block.removed + list(block.updates.values()):
            replace[id(n)] = None
        replace[id(p2)] = fused
        log.append(block.summary())
    if not replace:
        log.append("fuse_block_backward: nothing fused (no backward runs through a 1x1 -> depthwise -> 1x1 block)")
        return g, log
    g.nodes = [r for n in g.nodes if (r := replace.get(id(n), n)) is not None]
    g.remove_unused_values()
    return g, log


def group_block_channels(g: Graph) -> tuple[Graph, list[str]]:
    """Let each ``block_backward`` go as many channels at a time (up to :data:`tte.ops.block.MAX_GROUP`; the C's
    tiles then amortize loads and conversions over them) as fit in the kernel scratch the step's other nodes need
    anyway, so that the scratch does not grow (one channel at least).  The last pass: the others' scratch is known."""
    g = g.copy()
    blocks = [n for n in g.nodes if n.op == "block_backward"]
    room = max((OPS[n.op].scratch(g, n) for n in g.nodes if n.op != "block_backward"), default=0)
    log = []
    for n in blocks:
        n.attrs["group"] = max(1, min(MAX_GROUP, room // channel_scratch(g, n)))
        log.append(f"group_block_channels: '{n.name}' goes {n.attrs['group']} channel(s) at a time "
                   f"({n.attrs['group'] * channel_scratch(g, n):,} B of scratch; the other kernels need {room:,} B)")
    return g, log or ["group_block_channels: no block_backward"]
