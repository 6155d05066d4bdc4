"""The frozen prefix of a scheduled graph: the leading nodes that are pure functions of the input.

With a sparse-update scheme the first layers of a network train nothing: the nodes before the first one that
reads a trained parameter (or optimizer state, or the label) compute the same tensors from the same image at every
epoch.  Host training (:func:`tte.trainer.fit`) computes them once per image and keeps the tensors the rest of the
step reads, the *frontier*; each epoch then runs only the tail, the very statements the whole step runs for those
nodes (the emitted C's ``tte_prefix_s8`` / ``tte_train_step_cached``, :mod:`tte.codegen.c_train`).

The cut is a property of the schedule, not of the network: the nodes keep their scheduled order and their arena
plan, so the prefix is exactly ``nodes[:cut]`` and a frozen node the scheduler placed after the cut stays in the
tail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..ir import Graph
from ..ir.facts import LABEL
from ..ops import OPS


@dataclass(frozen=True)
class FrozenPrefix:
    """``nodes[:cut]`` of a graph depend on its input alone; ``frontier`` names the values they produce (or the
    graph's inputs) that ``nodes[cut:]`` or the graph's outputs read, in order of definition (inputs first, then
    each node's outputs in turn): all the tail needs of the prefix.  ``work`` counts the prefix's nodes that compute
    something (not the input's quantize, not a view): 0 when caching the prefix saves nothing."""

    cut: int
    frontier: tuple[str, ...]
    work: int


def frozen_prefix(g: Graph, sources: Iterable[str] | None = None) -> FrozenPrefix:
    """The frozen prefix of the scheduled graph ``g``: the cut is the index of the first node that reads one of
    ``sources`` or writes a state update (``g.state_updates``).  That node is the first one to depend on a source
    at all: every node before it reads only the input, constants and values of nodes that do not depend on one.

    ``sources`` default to what varies between steps of a training graph besides the image: its state (trained
    parameters, optimizer state, the step counter) and the label.  For a forward (inference) graph, pass the
    names of the trained parameters (``Program.params``): there they are constants whose values change."""
    sources = set(g.state) | ({LABEL} & set(g.inputs)) if sources is None else set(sources)
    writes = set(g.state_updates.values())
    cut = next((i for i, n in enumerate(g.nodes) if sources & set(n.inputs) or writes & set(n.outputs)),
               len(g.nodes))
    prefix, tail = g.nodes[:cut], g.nodes[cut:]
    read = {name for n in tail for name in n.inputs} | set(g.outputs)
    defined = [i for i in g.inputs if i not in sources] + [out for n in prefix for out in n.outputs]
    frontier = tuple(v for v in defined if v in read)
    work = sum(1 for n in prefix if n.op != "quantize" and not OPS[n.op].alias)
    return FrozenPrefix(cut, frontier, work)
