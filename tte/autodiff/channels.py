"""Offline channel selection: put the channels a partial weight update trains first.

A scheme may train only ``k`` of a layer's input channels.  The paper selects them by weight
magnitude; its device code updates the first ``k`` as stored.  We make both the same, at no run-time
cost, by permuting channels offline so that the selected ones lead.

Permuting the input channels of a layer means permuting the channels of the tensor it reads, and so of
every tensor tied to it channel by channel: through residual adds, pools, requantizations,
channel-preserving reshapes and depthwise convs (whose input and output channels are one).  Such a
*component* is permuted as a whole: its producers (convs, gemms) permute their output rows, bias and
per-channel scales; its consumers permute their weight's input columns.  The function computed by the
graph is unchanged.  A component that touches the graph's input or output, a concat, a grouped conv or
a broadcast constant is left as stored (its leading channels train).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..ir import Graph, Node, QuantParams
from ..ir.facts import is_depthwise
from ..ir.registry import OPS
from .scheme import TrainPlan, channel_count


@dataclass
class Permutation:
    """The permutations applied to one constant: a list of (axis, perm) with new[i] = old[perm[i]]."""

    steps: list[tuple[int, np.ndarray]]

    def apply(self, a: np.ndarray) -> np.ndarray:
        for axis, p in self.steps:
            a = np.take(a, p, axis=axis)
        return a

    def undo(self, a: np.ndarray) -> np.ndarray:
        for axis, p in reversed(self.steps):
            a = np.take(a, np.argsort(p), axis=axis)
        return a


class _Components:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.frozen: set[str] = set()

    def find(self, v: str) -> str:
        self.parent.setdefault(v, v)
        while self.parent[v] != v:
            self.parent[v] = self.parent[self.parent[v]]
            v = self.parent[v]
        return v

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb
            if ra in self.frozen:
                self.frozen.add(rb)

    def freeze(self, v: str) -> None:
        self.frozen.add(self.find(v))

    def is_frozen(self, v: str) -> bool:
        return self.find(v) in self.frozen


def _components(g: Graph) -> _Components:
    """Tensors whose channels must share one order (each op's ``channels`` facet ties them)."""
    c = _Components()
    for n in g.nodes:
        OPS[n.op].channels(g, n, c)
    for v in g.outputs:
        c.freeze(v)
    return c


def _column_magnitude(g: Graph, n: Node) -> np.ndarray:
    """Per-channel weight magnitude (L2 over everything else), in real units, normalized to max 1."""
    w = g[n.inputs[1]]
    real = (w.data.astype(np.float64) - w.quant.zero_point.reshape(-1, *[1] * (w.data.ndim - 1))) * \
        w.quant.scale.astype(np.float64).reshape(-1, *[1] * (w.data.ndim - 1))
    if is_depthwise(g, n):
        mag = np.sqrt((real ** 2).reshape(real.shape[0], -1).sum(axis=1))
    else:
        mag = np.sqrt((np.moveaxis(real, 1, 0) ** 2).reshape(real.shape[1], -1).sum(axis=1))
    return mag / max(mag.max(), 1e-30)


def _permute_const(g: Graph, name: str, axis: int, perm: np.ndarray, perms: dict[str, Permutation]) -> None:
    v = g[name]
    data = np.take(v.data, perm, axis=axis)
    quant = v.quant
    if quant is not None and quant.axis == axis:
        quant = QuantParams(quant.scale[perm], quant.zero_point[perm], axis)
    data.setflags(write=False)
    g.values[name] = replace(v, data=data, quant=quant)
    perms.setdefault(name, Permutation([])).steps.append((axis, perm))


def select_channels(g: Graph, plan: TrainPlan) -> tuple[Graph, dict[str, Permutation], list[str]]:
    """An equivalent graph whose partially trained layers train their largest-magnitude channels first.

    Returns (graph, permutations applied to each changed constant, notes on layers left as stored).
    """
    partial = [n for n in g.nodes if n.name in plan.weight_channels
               and plan.weight_channels[n.name] < channel_count(g, n)]
    if not partial:
        return g, {}, []
    comps = _components(g)
    scores: dict[str, np.ndarray] = {}
    notes = []
    for n in partial:
        root = comps.find(n.inputs[0])
        if comps.is_frozen(n.inputs[0]):
            notes.append(f"{n.name}: channels tied to the graph boundary, a concat, a grouped conv, a spatial "
                         f"flatten or a broadcast constant; "
                         f"its first {plan.weight_channels[n.name]} channels train as stored")
            continue
        mag = _column_magnitude(g, n)
        scores[root] = scores.get(root, 0) + mag
    g = g.copy()
    perms: dict[str, Permutation] = {}
    for root, score in scores.items():
        perm = np.argsort(-score, kind="stable")
        for n in g.nodes:
            if not OPS[n.op].layer:
                continue
            w, b = n.inputs[1], n.inputs[2]
            x_in = comps.find(n.inputs[0]) == root
            y_in = comps.find(n.outputs[0]) == root
            if is_depthwise(g, n):
                if x_in:  # input and output channels are the same channels
                    _permute_const(g, w, 0, perm, perms)
                    _permute_const(g, b, 0, perm, perms)
                continue
            if y_in:
                _permute_const(g, w, 0, perm, perms)
                _permute_const(g, b, 0, perm, perms)
            if x_in:
                _permute_const(g, w, 1, perm, perms)
    return g, perms, notes

