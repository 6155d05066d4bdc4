"""Independent oracles for the arena planner (:mod:`tte.passes.arena`) and liveness (:mod:`tte.passes.memory`).

Nothing here calls the planner's or liveness's own predicates; a plan is only read as data (its buffers'
names, sizes and first/last steps, its offsets and its size), and a training graph only through its nodes'
inputs and outputs, so that a bug in ``Buffer.overlaps_in_time``, ``check_overlaps`` or ``liveness`` cannot
make the oracle agree with it.

* :func:`overlap_problems` checks a plan from the definitions: a buffer occupies the bytes
  ``[offset, offset + size)`` during the steps ``start, start + 1, ..., end`` (inclusive), so two buffers
  alive at a common step must not share a byte.  Time is handled by enumerating the steps, bytes by
  intersecting half-open ranges.
* :func:`simulate_step` runs one training step of the generated C over a model of the arena: one stamp per
  byte, the id of the write that last stored it.  Every node checks, before it runs, that each arena
  operand still holds that operand's stamp on every byte, then stamps its outputs; the graph's outputs are
  read at the end (``*loss = ...``).  The reads and writes come from ``node.inputs`` / ``node.outputs`` in
  the scheduled order, and placement from the plan's offsets and the value -> buffer map (``root``) that
  liveness returns, i.e. which values share bytes; the lifetimes are not used.  What the C does:

  - reshapes (``reshape``, ``freshape``) emit no code: their output is the bytes of their operand, so it
    carries the operand's stamp, wherever the plan put it (elsewhere it was never written);
  - an op's output may overlap its operands only where the kernel's documented order allows it (the kernels
    that may run in place): ``tte_ste_f32`` and ``tte_add_f32`` read element i then write element i, in
    ascending order; ``tte_conv_dw_s8`` reads input plane (n, c) into scratch, then copies output plane
    (n, c); ``tte_conv_grad_input_f32`` accumulates input-gradient plane (n, c) from the output-gradient
    planes of c's group into scratch, then stores it; a ``patch`` node reads the stage input's rows and stores
    the result's rows band after band.  Those kernels are simulated unit by unit (element or
    plane): a byte of the first operand written by an earlier unit than the last one that reads it is a
    clobber.  Every other overlap between an output and an operand of the same node is a clobber (the
    kernel may interleave its reads and writes arbitrarily);
  - graph inputs kept in the arena (the int8 input, the label) are written by the caller before step 0;
    ``count`` nodes run after all the others (the step counter is a static array, not arena bytes);
  - trained parameters, optimizer state, their next values (static arrays) and constants (flash) are not
    in the arena, nor is a float32 graph input (read through the caller's pointer).

* :func:`lifetime_problems` checks the other way round that every byte access of the step happens while its
  buffer is alive by the plan (a lifetime one step too short is a latent bug even where the planner has not
  yet put anything in the gap).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

ITEMSIZE = {"int8": 1, "int32": 4, "float32": 4}
ALIAS_OPS = ("reshape", "freshape")  # emitted as a comment: a view of the same bytes
DEFERRED_OPS = ("count",)  # emitted after every other node of the step
CALLER = "the caller (before step 0)"
END = "the end of the step"


# -- plans -------------------------------------------------------------------------------------------------
def bytes_intersect(offset_a: int, size_a: int, offset_b: int, size_b: int) -> bool:
    """Whether [offset_a, offset_a + size_a) and [offset_b, offset_b + size_b) have a byte in common."""
    return max(offset_a, offset_b) < min(offset_a + size_a, offset_b + size_b)


def alive_at(buffers: Iterable) -> dict[int, list]:
    """step -> the buffers alive at it (a buffer is alive at start, start + 1, ..., end)."""
    steps: dict[int, list] = {}
    for b in buffers:
        for t in range(b.start, b.end + 1):
            steps.setdefault(t, []).append(b)
    return steps


def live_bytes(buffers: Iterable, alignment: int = 1) -> dict[int, int]:
    """step -> total bytes (each size rounded up to ``alignment``) of the buffers alive at it."""
    return {t: sum(-(-b.size // alignment) * alignment for b in live) for t, live in alive_at(buffers).items()}


def extent(plan) -> int:
    """The bytes a plan actually reaches: the highest end of a buffer."""
    return max((plan.offsets[b.name] + b.size for b in plan.buffers), default=0)


def overlap_problems(plan, alignment: int | None = None) -> list[str]:
    """Everything wrong with ``plan`` as a placement (empty when it is sound): a buffer without an offset
    or an offset without a buffer, a buffer outside [0, plan.size), an offset not a multiple of
    ``alignment`` (when given), two buffers alive at a common step sharing a byte."""
    problems = []
    names = [b.name for b in plan.buffers]
    if len(set(names)) != len(names):
        problems.append(f"duplicate buffer names: {sorted({n for n in names if names.count(n) > 1})}")
    missing, extra = set(names) - set(plan.offsets), set(plan.offsets) - set(names)
    if missing:
        problems.append(f"buffers without an offset: {sorted(missing)}")
    if extra:
        problems.append(f"offsets without a buffer: {sorted(extra)}")
    placed = [b for b in plan.buffers if b.name in plan.offsets]
    for b in placed:
        o = plan.offsets[b.name]
        if o < 0 or o + b.size > plan.size:
            problems.append(f"{b.name} [{o}, {o + b.size}) is outside the arena [0, {plan.size})")
        if alignment and o % alignment:
            problems.append(f"{b.name} at offset {o} is not {alignment}-byte aligned")
        if b.end < b.start:
            problems.append(f"{b.name} ends (step {b.end}) before it starts (step {b.start})")
    shared: dict[tuple[str, str], list[int]] = {}
    for t, live in alive_at(placed).items():
        live = sorted((b for b in live if b.size > 0), key=lambda b: (plan.offsets[b.name], b.name))
        for i, a in enumerate(live):
            oa = plan.offsets[a.name]
            for b in live[i + 1:]:
                ob = plan.offsets[b.name]
                if ob >= oa + a.size:  # sorted by offset: no later buffer reaches back into a
                    break
                if bytes_intersect(oa, a.size, ob, b.size):
                    shared.setdefault((a.name, b.name), []).append(t)
    for (a, b), steps in sorted(shared.items()):
        oa, ob = plan.offsets[a], plan.offsets[b]
        sa, sb = (next(x.size for x in placed if x.name == n) for n in (a, b))
        problems.append(f"{a} [{oa}, {oa + sa}) and {b} [{ob}, {ob + sb}) share bytes at step(s) "
                        f"{min(steps)}..{max(steps)}")
    return problems


# -- one training step, byte by byte ---------------------------------------------------------------------
def value_bytes(v) -> int:
    """Bytes of a value in the C: bit-packed masks, int8, int32 and float32 elements."""
    if v.dtype == "bool":
        return -(-v.size // 8)
    return v.size * ITEMSIZE[v.dtype]


def streamed(g) -> set[str]:
    """The values a patch node with a streamed input reads from the caller's row source, never from the arena: its
    input, and the values that input is a view of (a reshape, back to the input's quantize)."""
    out: set[str] = set()
    made = {n.output: n for n in g.nodes if n.outputs}
    for node in g.nodes:
        if node.op == "patch" and node.attrs["plan"].streamed:
            v = node.inputs[0]
            while v is not None and v not in out:
                out.add(v)
                maker = made.get(v)
                v = maker.inputs[0] if maker is not None and maker.op in ALIAS_OPS else None
    return out


def arena_values(g) -> dict[str, int]:
    """value -> bytes, for every value of the step the generated C keeps in the arena."""
    outside = set(g.state) | set(g.state_updates.values()) | streamed(g)
    values = {}
    for name in g.inputs:
        v = g[name]
        if name not in outside and not v.is_const and v.dtype != "float32":
            values[name] = value_bytes(v)
    for node in g.nodes:
        for name in node.outputs:
            if name not in outside and not g[name].is_const:
                values[name] = value_bytes(g[name])
    return values


@dataclass(frozen=True)
class Order:
    """The documented order of a kernel that may run in place, for its first output over its first
    operand: the unit (element or plane, in execution order) that writes each output byte, and the last
    unit that reads each operand byte (bytes relative to each value's start)."""

    write_unit: Callable[[np.ndarray], np.ndarray]
    last_read_unit: Callable[[np.ndarray], np.ndarray]


def _is_depthwise_conv(g, node) -> bool:
    if node.op != "conv" or node.attrs.get("groups", 1) <= 1:
        return False
    w, x = g[node.inputs[1]].shape, g[node.inputs[0]].shape
    return w[1] == 1 and w[0] == node.attrs["groups"] == x[1]


def kernel_order(g, node) -> Order | None:
    """The in-place order of ``node``'s kernel (see the module docstring), or None: no overlap allowed."""
    if node.op in ("ste", "grad_add"):
        wi, ri = ITEMSIZE[g[node.outputs[0]].dtype], ITEMSIZE[g[node.inputs[0]].dtype]
        return Order(lambda b: b // wi, lambda b: b // ri)
    if _is_depthwise_conv(g, node):
        x, y = g[node.inputs[0]].shape, g[node.outputs[0]].shape
        in_plane, out_plane = x[2] * x[3], y[2] * y[3]
        return Order(lambda b: b // out_plane, lambda b: b // in_plane)
    if node.op == "conv_grad_input":
        _, c, h, w = node.attrs["in_shape"]
        dz = g[node.inputs[0]].shape
        o_all, c_per_group = g[node.inputs[1]].shape[:2]
        o_per_group = o_all // node.attrs["groups"]
        dx_plane, dz_plane = 4 * h * w, 4 * dz[2] * dz[3]

        def last_read(b: np.ndarray) -> np.ndarray:
            n, o = np.divmod(b // dz_plane, o_all)
            return n * c + (o // o_per_group + 1) * c_per_group - 1

        return Order(lambda b: b // dx_plane, last_read)
    if node.op == "patch":
        return _patch_order(g, node)
    return None


def _patch_order(g, node) -> Order:
    """A patch node runs band after band: in each band its ops read their operands' rows (the stage input's rows
    that the rows each of its readers computes in that band reach, by the op's stride, top padding and kernel
    height), then the band's rows of the result are stored.  The unit is the band: a result byte is written by the
    band that stores its row, an input byte last read by the last band that reads its row (from the plan's table of
    rows, not from the pass's own check)."""
    body, plan = node.attrs["body"], node.attrs["plan"]
    x, y = body.inputs[0], body.outputs[0]
    slot = {v: i for i, v in enumerate(plan.values)}
    channels_last = any(n.op == "transpose" and n.inputs[0] == x for n in body.nodes)
    xs, ys = body[x].shape, body[y].shape
    x_rows = xs[1] if channels_last else xs[2]
    last_read = np.full(x_rows, -1, np.int64)
    stored = np.full(ys[2], 1 << 40, np.int64)
    for band, rows in enumerate(plan.rows):
        first, end = rows[slot[y]]
        stored[first:end] = np.minimum(stored[first:end], band)
        for n in body.nodes:
            if x not in n.inputs:
                continue
            r0, r1 = rows[slot.get(f"{n.output}:new", slot[n.output])]
            if r0 >= r1:
                continue
            if n.op in ("conv", "pw_dw"):
                k = body[n.inputs[1 if n.op == "conv" else 3]].shape[2]
                s, top = n.attrs["strides"][0], n.attrs["pads"][0]
                r0, r1 = max(r0 * s - top, 0), min((r1 - 1) * s - top + k, x_rows)
            last_read[r0:r1] = band
    def read_row(b: np.ndarray) -> np.ndarray:  # the input row a byte belongs to
        return b // (xs[2] * xs[3]) if channels_last else (b % (xs[2] * xs[3])) // xs[3]

    return Order(lambda b: stored[(b % (ys[2] * ys[3])) // ys[3]], lambda b: last_read[read_row(b)])


@dataclass(frozen=True)
class Fault:
    """A value the step did not find where the plan put it."""

    kind: str  # "clobbered", "clobbered while read", "never written", "unplaced", "outside its buffer"
    value: str
    step: int  # the step that read it (len(nodes) for the end of the step)
    reader: str
    by: str | None = None  # the value whose bytes are there instead
    writer: str | None = None
    write_step: int | None = None

    def __str__(self) -> str:
        if self.kind in ("unplaced", "outside its buffer"):
            return f"{self.value}: {self.kind} ({self.reader})"
        if self.kind == "never written":
            return f"{self.value} read by {self.reader} at step {self.step} was never written there"
        if self.kind == "clobbered while read":
            return (f"{self.value} read by {self.reader} at step {self.step} is overwritten by that node's own "
                    f"output {self.by} before it has read it")
        return (f"{self.value} read by {self.reader} at step {self.step} was overwritten by {self.by}, written "
                f"by {self.writer} at step {self.write_step}")


def simulate_step(g, plan, root: dict[str, str]) -> list[Fault]:
    """Run one step of the scheduled training graph ``g`` over ``plan``'s arena (``root``: value -> the
    buffer holding it); every read of a value whose bytes are not all the ones last written for it."""
    faults: list[Fault] = []
    sizes = {b.name: b.size for b in plan.buffers}
    where: dict[str, tuple[int, int]] = {}  # value -> (offset, bytes)
    for v, n in arena_values(g).items():
        r = root.get(v)
        if r not in plan.offsets or r not in sizes:
            faults.append(Fault("unplaced", v, -1, f"no buffer in the plan (root {r!r})"))
            continue
        o = plan.offsets[r]
        if n > sizes[r] or o < 0 or o + n > plan.size:
            faults.append(Fault("outside its buffer", v, -1, f"{n} B at {o} in {r} of {sizes[r]} B, arena "
                                                             f"{plan.size} B"))
            continue
        where[v] = (o, n)
    stamps = np.full(plan.size, -1, dtype=np.int64)
    writes: list[tuple[str, str, int]] = []  # write id -> (value, node, step)
    holds: dict[str, int] = {}  # value -> the write id its bytes must carry

    def write(v: str, node: str, step: int) -> None:
        o, n = where[v]
        holds[v] = len(writes)
        stamps[o:o + n] = len(writes)
        writes.append((v, node, step))

    def check(v: str, reader: str, step: int) -> None:
        o, n = where[v]
        expected = holds.get(v, -2)
        wrong = np.flatnonzero(stamps[o:o + n] != expected)
        if not wrong.size:
            return
        found = int(stamps[o + wrong[0]])
        if found < 0 or expected < 0:
            faults.append(Fault("never written", v, step, reader))
        else:
            by, writer, write_step = writes[found]
            faults.append(Fault("clobbered", v, step, reader, by, writer, write_step))

    for v in g.inputs:
        if v in where:
            write(v, CALLER, -1)
    order = [i for i, n in enumerate(g.nodes) if n.op not in DEFERRED_OPS]
    order += [i for i, n in enumerate(g.nodes) if n.op in DEFERRED_OPS]
    for i in order:
        node = g.nodes[i]
        reads = [v for v in dict.fromkeys(node.inputs) if v in where]
        for v in reads:
            check(v, node.name, i)
        if node.op in ALIAS_OPS:
            for out in node.outputs:
                if out in where:
                    holds[out] = holds.get(node.inputs[0], -2)
            continue
        outs = [v for v in node.outputs if v in where]
        in_place = kernel_order(g, node)
        for out in outs:
            oo, on = where[out]
            for v in reads:
                vo, vn = where[v]
                lo, hi = max(oo, vo), min(oo + on, vo + vn)
                if lo >= hi:
                    continue
                if in_place is not None and out == node.outputs[0] and v == node.inputs[0]:
                    b = np.arange(lo, hi)
                    if not np.any(in_place.write_unit(b - oo) < in_place.last_read_unit(b - vo)):
                        continue
                faults.append(Fault("clobbered while read", v, i, node.name, out, node.name, i))
        for out in outs:
            write(out, node.name, i)
    for v in g.outputs:
        if v in where:
            check(v, END, len(g.nodes))
    return faults


def accesses(g, root: dict[str, str]) -> dict[str, tuple[int, int]]:
    """buffer -> (first, last) step at which the step writes or reads one of its values: graph inputs are
    written before step 0, graph outputs read after the last step (counted as the last step)."""
    values = arena_values(g)
    last = len(g.nodes) - 1
    span: dict[str, tuple[int, int]] = {}

    def touch(v: str, t: int) -> None:
        if v in values and v in root:
            lo, hi = span.get(root[v], (t, t))
            span[root[v]] = (min(lo, t), max(hi, t))

    for v in g.inputs:
        touch(v, 0)
    for i, node in enumerate(g.nodes):
        for v in node.inputs:
            touch(v, i)
        if node.op not in ALIAS_OPS:
            for v in node.outputs:
                touch(v, i)
    for v in g.outputs:
        touch(v, last)
    return span


def lifetime_problems(g, plan, root: dict[str, str]) -> list[str]:
    """Buffers of ``plan`` that are read or written at a step outside their lifetime."""
    problems = []
    by_name = {b.name: b for b in plan.buffers}
    for name, (first, last) in sorted(accesses(g, root).items()):
        b = by_name.get(name)
        if b is None:
            problems.append(f"{name} is accessed (steps {first}..{last}) but not in the plan")
        elif first < b.start or last > b.end:
            problems.append(f"{name} is accessed at steps {first}..{last} but alive only at {b.start}..{b.end}")
    return problems
