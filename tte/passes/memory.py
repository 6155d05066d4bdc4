"""Where every byte of a training step lives: the arena (planned), static SRAM, flash.

* **Arena** (SRAM, planned by :func:`tte.passes.arena.plan_arena`): every tensor a step creates: int8
  activations (the int8 input included), saturation masks (bit-packed: one bit per element), float32
  gradients, the loss.  Lifetimes come from the scheduled graph.  Reshapes alias their operand;
  depthwise convs and elementwise gradient ops (``ste``, ``grad_add``) write over their first operand
  when it dies there.
* **Static SRAM**: the trained parameters (only the trained slice of a partially trained weight),
  optimizer state (momentum buffers, residuals, the step counter) and kernel scratch.
* **Flash**: frozen weights and biases (with the untrained remainder of partially trained weights),
  step factors, quantization parameters (per-channel requantization multipliers, average-pool tables,
  the weight scales and non-zero weight zero points that input gradients read; scalar multipliers are
  float literals in the code, 4 bytes each), the initial values of trained parameters, and an estimate of
  code size.  Constant arrays count once per dtype and contents, as :mod:`tte.codegen` emits them (it
  shares identical arrays), so that the report's constant arrays are exactly those of ``tte_model.c``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph, Node
from ..ir.facts import value_bytes
from ..ir.registry import OPS
from ..ops.patch import patch_stats, streamed_values
from .arena import ArenaPlan, Buffer, check_overlaps, plan_arena

RUNTIME_CODE_BYTES = 2048  # startup, the step driver, helpers


def scratch_bytes(g: Graph, node: Node) -> int:
    """Kernel scratch, as the C kernels take it (each op's ``scratch`` facet)."""
    return OPS[node.op].scratch(g, node)


def _in_place(g: Graph, node: Node) -> bool:
    """Ops whose result may overwrite their first operand when that operand dies here (``in_place`` facet:
    elementwise gradient ops; a depthwise conv and its input gradient, channel by channel through a
    one-plane scratch, since output channel c lands at or before input channel c, already consumed)."""
    return OPS[node.op].in_place(g, node)


def liveness(g: Graph) -> tuple[list[Buffer], dict[str, str]]:
    """Arena buffers of a scheduled graph, and which values share a buffer (value -> buffer name).

    Reshapes alias their operand; an in-place op (:func:`_in_place`) reuses its first operand's buffer
    when nothing reads that buffer later."""
    external = set(g.state) | {i for i in g.inputs if g[i].dtype == "float32"} | set(g.state_updates.values())
    external |= streamed_values(g)  # a streamed input: its rows live in the patch node's workspace
    last_use: dict[str, int] = {}
    for i, node in enumerate(g.nodes):
        for name in node.inputs:
            last_use[name] = i
    end = len(g.nodes) - 1
    for name in g.outputs:
        last_use[name] = end
    root: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    start: dict[str, int] = {}
    for name in g.inputs:
        if name not in external:
            root[name], start[name], members[name] = name, 0, [name]
    for i, node in enumerate(g.nodes):
        for k, out in enumerate(node.outputs):
            if out in external:
                continue
            src = node.inputs[0] if k == 0 and node.inputs else None
            r = root.get(src)
            reuse = r is not None and (
                OPS[node.op].alias
                or (_in_place(g, node) and value_bytes(g, out) <= value_bytes(g, r)
                    and max(last_use.get(m, start[r]) for m in members[r]) == i))
            if reuse:
                root[out] = r
                members[r].append(out)
            else:
                root[out], start[out], members[out] = out, i, [out]
    buffers = [Buffer(r, value_bytes(g, r), start[r], max(last_use.get(m, start[r]) for m in ms))
               for r, ms in members.items()]
    return buffers, root


@dataclass
class MemoryReport:
    graph: Graph
    arena: ArenaPlan
    trained: dict[str, int]  # trained parameter -> SRAM bytes (trained slice)
    optimizer: dict[str, int]  # optimizer state -> bytes
    scratch: int
    frozen_flash: dict[str, int]  # constant -> flash bytes
    quant_flash: int  # quantization parameters: distinct per-channel arrays, and scalar literals (below)
    initial_flash: int  # initial values of the trained parameters
    code_estimate: int
    peak_step: int = 0
    notes: list[str] = field(default_factory=list)
    quant_literals: int = 0  # of quant_flash: scalar multipliers, float literals in the code
    root: dict[str, str] = field(default_factory=dict)  # value -> the arena buffer it lives in (liveness)

    @property
    def trained_bytes(self) -> int:
        return sum(self.trained.values())

    @property
    def optimizer_bytes(self) -> int:
        return sum(self.optimizer.values())

    @property
    def peak_sram(self) -> int:
        return self.arena.size + self.trained_bytes + self.optimizer_bytes + self.scratch

    @property
    def flash(self) -> int:
        return sum(self.frozen_flash.values()) + self.quant_flash + self.initial_flash + self.code_estimate

    def live_at_peak(self) -> list[tuple[str, int]]:
        t = self.peak_step
        return sorted(((b.name, b.size) for b in self.arena.buffers if b.start <= t <= b.end),
                      key=lambda x: -x[1])

    @property
    def input_streamed(self) -> bool:
        """Whether the step reads its input in rows from the caller's row source (no input in the arena)."""
        return bool(streamed_values(self.graph))

    def to_dict(self) -> dict:
        return {
            "peak_sram_bytes": self.peak_sram,
            "input_streamed": self.input_streamed,
            "arena_bytes": self.arena.size,
            "arena_lower_bound_bytes": self.arena.lower_bound,
            "trained_param_bytes": self.trained_bytes,
            "optimizer_state_bytes": self.optimizer_bytes,
            "scratch_bytes": self.scratch,
            "flash_bytes": self.flash,
            "frozen_param_flash_bytes": sum(self.frozen_flash.values()),
            "quant_param_flash_bytes": self.quant_flash,
            "initial_value_flash_bytes": self.initial_flash,
            "code_bytes_estimate": self.code_estimate,
            "arena_peak_step": self.peak_step,
            "arena_peak_node": self.graph.nodes[self.peak_step].name if self.graph.nodes else "",
            "live_at_peak": [{"value": n, "bytes": b} for n, b in self.live_at_peak()],
            "trained": self.trained,
            "optimizer": self.optimizer,
            "arena_offsets": {b.name: {"offset": self.arena.offsets[b.name], "bytes": b.size, "first_step": b.start,
                                       "last_step": b.end} for b in self.arena.buffers},
            "patch": self.patch,
        }

    @property
    def patch(self) -> dict | None:
        """The frozen prefix run band by band (tte.passes.patch): its stage, bands, workspace and the MACs it
        recomputes; None when the step runs no patch."""
        node = next((n for n in self.graph.nodes if n.op == "patch"), None)
        return None if node is None else patch_stats(node)


def _trained_slice_bytes(g: Graph, node: Node, param: str) -> int:
    v = g[param]
    if node.op == "bias_update" or (node.op == "sgd" and v.dtype == "int32"):
        return v.nbytes
    axis, k = node.attrs["axis"], node.attrs["channels"]
    return v.nbytes // v.shape[axis] * k


class _Distinct:
    """Flash bytes of arrays emitted once per dtype and contents (tte.codegen shares identical ones)."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, bytes]] = set()

    def bytes(self, data: np.ndarray) -> int:
        a = np.ascontiguousarray(data).reshape(-1)
        if a.dtype.kind == "f":
            a = a + a.dtype.type(0)  # -0.0 and 0.0: the same literal
        key = (a.dtype.str, a.tobytes())
        if key in self.seen:
            return 0
        self.seen.add(key)
        return max(a.size, 1) * a.itemsize


def arena_of(g: Graph, alignment: int = 4) -> tuple[list[Buffer], dict[str, str], ArenaPlan]:
    """The buffers of ``g`` (:func:`liveness`), which buffer each value lives in, and their planned offsets."""
    buffers, root = liveness(g)
    arena = plan_arena(buffers, alignment)
    problems = check_overlaps(arena)
    if problems:  # a planner bug, never the user's: fail loudly
        raise AssertionError(f"arena plan overlaps: {problems[0]}")
    return buffers, root, arena


def graph_scratch(g: Graph) -> int:
    """The kernel scratch a graph's C needs: the most any one of its calls takes."""
    return max((scratch_bytes(g, n) for n in g.nodes), default=0)


def memory_report(g: Graph, alignment: int = 4) -> MemoryReport:
    """Plan the arena of the scheduled training graph ``g`` and account for every other byte."""
    buffers, root, arena = arena_of(g, alignment)
    updates = {n.inputs[2] if "weight_update" in n.op else n.inputs[1] if n.op == "bias_update" else n.inputs[0]: n
               for n in g.nodes if n.op in ("sgd", "conv_weight_update", "gemm_weight_update", "bias_update")}
    from ..ops.block import update_nodes  # a fused block backward's updates (tte.passes.block_backward)
    for n in g.nodes:
        updates.update(update_nodes(n) if n.op == "block_backward" else {})
    trained, optimizer, frozen = {}, {}, {}
    initial = 0
    for name in g.state:
        if name in updates:
            trained[name] = _trained_slice_bytes(g, updates[name], name)
            frozen_part = g[name].nbytes - trained[name]
            if frozen_part:
                frozen[name] = frozen_part
            initial += trained[name]
        else:
            optimizer[name] = g[name].nbytes
    # constant arrays count once per dtype and contents, as the C emits them; a frozen remainder (above)
    # counts whole, since the graph does not hold its contents
    distinct = _Distinct()
    for v in g.constants():
        frozen[v.name] = distinct.bytes(v.data)
    flash = [OPS[n.op].flash(g, n) for n in g.nodes]  # each op's quantization arrays and scalar literals
    quant_arrays = sum(distinct.bytes(a) for arrays, _ in flash for a in arrays)
    literals = 4 * sum(n for _, n in flash)
    quant = quant_arrays + literals
    code = RUNTIME_CODE_BYTES + sum(OPS[op].code_bytes for op in {n.op for n in g.nodes})
    scratch = graph_scratch(g)
    peak_step = 0
    if buffers:
        steps = range(max(b.end for b in buffers) + 1)
        peak_step = max(steps, key=lambda t: sum(b.size for b in buffers if b.start <= t <= b.end))
    return MemoryReport(g, arena, trained, optimizer, scratch, frozen, quant, initial, code, peak_step,
                        quant_literals=literals, root=root)
