"""The patch family: ``patch``, a stage of frozen forward ops run band by band of its result's rows, as MCUNetV2 runs
the first layers of a network for inference (tte.passes.patch makes it).

For each band of rows of the stage's result, every op of the stage computes only the rows of its own result that the
band needs (the rows its readers' windows reach) into a *band buffer*: those rows of every channel, NCHW (channel c's
rows at ``c * rows * W``).  The halo, rows that two bands read, is either recomputed band after band, or *kept*
(``PatchPlan.carry``, line buffers): an op then computes only the rows no earlier band computed, into a staging buffer
(``value:new``), the rows its buffer keeps from the band before move to the top of it (``keep``), and the new rows
join them (``merge``); such a buffer lives across bands, its readers need only the rows below it that are new to
them, and no MAC is spent twice but the 1x1 half of a ``pw_dw`` over the kept rows it expands again.  No whole intermediate tensor of the stage exists:
only the stage's input and result are whole tensors, in the arena.  The band buffers live in the node's second output,
its *workspace*, an arena buffer alive during the node only (so that it overlaps whatever is dead then).

The node carries the stage as a small graph (``body``: the stage's input, its ops with their constants and values, its
result) and a :class:`PatchPlan`: the band height, each band's row window of every value, the band program (for each
op, the copies of operand rows it needs first) and the workspace layout.  The reference kernel runs that very program
on a numpy workspace, band by band, so the band arithmetic and the layout are exercised in Python as in C; its integers
are those of the stage's ops run whole.

Inner ops: ``conv`` (any kernel, stride, padding, groups), ``pw_dw``, ``add`` and ``requantize`` of residual
connections, and a ``transpose`` from a channels-last stage input (TFLite models).  A conv reads its operand's band
buffer directly, with the band's padding (a buffer holding rows above what the band reads gives a negative top
padding: the kernels then start that many rows into it); elementwise ops, ``pw_dw`` and stride-1 unpadded 1x1 convs
read exactly their rows, copied out first when their operand's buffer holds more (another reader needs a halo).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph, Node
from ..ir.facts import is_depthwise
from ..ir.registry import OPS, register
from ..reference import semantics as sem
from . import cgen as cg
from .common import channels_training_only, no_scratch, requantize_multiplier, tflite
from .conv import conv_multiplier, pw_dw_multipliers, pw_dw_tflite_multipliers, tflite_multipliers
from .elementwise import add_params

INNER = ("conv", "pw_dw", "add", "requantize", "transpose")
MAX_CONSTANTS = 1024  # the constants (weights, biases) one patch node reads: its operands after the stage input
NHWC_TO_NCHW = (0, 3, 1, 2)

Window = tuple[int, int]  # rows [first, end) of a whole tensor


@dataclass(frozen=True)
class Step:
    """One statement of a band's program: ``op`` runs inner node ``node`` into buffer ``buffer`` (its result's band
    buffer, or the staging buffer of its new rows); ``gather`` copies the rows the op ``node`` reads of its operand
    ``operand`` (an index into its inputs) into buffer ``buffer``; ``keep`` moves the rows the band buffer
    ``buffer`` keeps from the band before (window slot ``buffer:prev``) to this band's place; ``merge`` copies the
    new rows (slot ``buffer:new``) from their staging buffer into the band buffer ``buffer``; ``store`` copies the
    band of the stage's result into the whole result tensor."""

    kind: str
    node: int = -1
    operand: int = -1
    buffer: str = ""


@dataclass(frozen=True)
class WorkBuffer:
    """A buffer in the workspace, alive from step ``first`` to step ``last`` of the band program (inclusive): a band
    buffer of ``value`` (``window`` = ``value``: its rows are that value's window), a gathered copy of rows of
    ``value`` (``window`` None; its rows are the window slot named after it), or a kernel's scratch (no value)."""

    name: str
    bytes: int
    first: int
    last: int
    value: str = ""
    window: str | None = None  # the value whose row window it holds


@dataclass(frozen=True)
class PatchPlan:
    """How a patch node runs its stage: ``bands`` bands of ``band_rows`` rows of the result (the last one may be
    shorter); ``rows[b][v]``: the window of value ``values[v]`` in band ``b``; the band program ``steps``; the
    workspace ``buffers`` and their ``offsets`` in it (``work_bytes`` in all); the MACs of the stage's ops run band
    by band (``macs``) and whole (``whole_macs``); ``carry``: halo rows are kept between bands, not recomputed;
    ``over_input``: the result may be written over the stage's input (:func:`result_over_input`)."""

    band_rows: int
    bands: int
    values: tuple[str, ...]  # the slots of the window table: every value, then every gathered copy (its buffer)
    rows: tuple[tuple[Window, ...], ...]
    steps: tuple[Step, ...]
    buffers: tuple[WorkBuffer, ...]
    offsets: tuple[tuple[str, int], ...]
    work_bytes: int
    macs: int
    whole_macs: int
    carry: bool = False
    over_input: bool = False

    @property
    def extra_macs(self) -> int:
        return self.macs - self.whole_macs

    def offset(self, buffer: str) -> int:
        return dict(self.offsets)[buffer]

    def window(self, band: int, value: str) -> Window:
        return self.rows[band][self.values.index(value)]

    def __str__(self) -> str:
        return (f"{self.bands} bands of {self.band_rows} row{'s' if self.band_rows > 1 else ''}, halo "
                f"{'kept' if self.carry else 'recomputed'}, workspace {self.work_bytes:,} B, "
                f"+{self.extra_macs:,} MACs")


# -- the band program: row windows, steps, buffers -----------------------------------------------------------------


def reads_rows_directly(g: Graph, node: Node) -> bool:
    """Whether ``node`` reads its operand's band buffer as it is, whatever rows it holds (a conv other than a
    stride-1 unpadded 1x1 one: its band padding skips rows), rather than exactly the rows it needs."""
    if node.op != "conv":
        return False
    a, k = node.attrs, g[node.inputs[1]].shape[2:]
    return not (k == (1, 1) and a["groups"] == 1 and tuple(a["strides"]) == (1, 1) and not any(a["pads"]))


def window_geometry(g: Graph, node: Node) -> tuple[int, int, int] | None:
    """(stride, top padding, kernel height) along the rows of a window op, None for a row-wise op."""
    if node.op == "conv":
        return node.attrs["strides"][0], node.attrs["pads"][0], g[node.inputs[1]].shape[2]
    if node.op == "pw_dw":
        return node.attrs["strides"][0], node.attrs["pads"][0], g[node.inputs[3]].shape[2]
    return None


def needed_rows(g: Graph, node: Node, operand: str, out: Window) -> Window:
    """The rows of ``operand`` that ``node`` reads to compute rows ``out`` of its result (clipped to the tensor)."""
    geo = window_geometry(g, node)
    height = g[operand].shape[1 if node.op == "transpose" else 2]
    if geo is None:
        return out
    s, pt, k = geo
    first, end = out[0] * s - pt, (out[1] - 1) * s - pt + k
    first = min(max(first, 0), height)
    return first, max(first, min(end, height))


def band_windows(body: Graph, band: Window) -> dict[str, Window]:
    """Every non-constant value's rows in one band whose result rows are ``band``, the halo recomputed: the stage's
    input is whole, the result's rows are the band, any other value's the hull of what its readers in the stage read
    (walking the ops backwards)."""
    x, y = body.inputs[0], body.outputs[0]
    windows: dict[str, Window] = {y: band}
    for node in reversed(body.nodes):
        out = windows[node.output]
        for u in node.inputs:
            if body[u].is_const or u == x:
                continue
            need = needed_rows(body, node, u, out)
            have = windows.get(u)
            windows[u] = need if have is None else (min(have[0], need[0]), max(have[1], need[1]))
    windows[x] = (0, body[x].shape[2])
    return windows


def _computable(body: Graph, node: Node, u: str, done: int) -> int:
    """How many rows of ``node``'s result its operand ``u`` allows once ``u``'s rows [0, done) exist."""
    height, out = body[u].shape[2], body[node.output].shape[2]
    if done >= height:
        return out
    geo = window_geometry(body, node)
    if geo is None:
        return min(done, out)
    s, pt, k = geo
    return max(0, min(out, (done + pt - k) // s + 1))


def carry_windows(body: Graph, band_rows: int) -> list[tuple[dict[str, Window], dict[str, Window]]]:
    """Per band, with the halo kept (line buffers): every value's window (the rows its band buffer holds) and its
    new rows (those the band computes).  Each band, an op computes the rows its operands' rows so far allow, but no
    more than its share: ``band_rows`` rows of the first op's result, and as many of every other op's as its height
    is of the first one's (at least one); bands run until every result is complete.  A buffer holds its new rows and
    every earlier row a reader reads in this band or may read later; it drops the rest."""
    x = body.inputs[0]
    first_height = body[body.nodes[0].output].shape[2]
    readers: dict[str, list[Node]] = {}
    for node in body.nodes:
        for u in dict.fromkeys(node.inputs):
            if not body[u].is_const and u != x:
                readers.setdefault(u, []).append(node)
    share = {n.output: max(1, -(-band_rows * body[n.output].shape[2] // first_height)) for n in body.nodes}
    done: dict[str, int] = {}
    before: dict[str, Window] = {}
    out = []
    while not out or any(done[n.output] < body[n.output].shape[2] for n in body.nodes):
        if len(out) > 4 * first_height + 4 * len(body.nodes):  # a geometry no op advances on: never in a real stage
            raise ValueError("the stage's rows do not advance band after band")
        new: dict[str, Window] = {}
        for node in body.nodes:
            v, height = node.output, body[node.output].shape[2]
            first = done.get(v, 0)
            end = min(height, first + share[v])
            for u in node.inputs:
                if not body[u].is_const and u != x:
                    end = min(end, _computable(body, node, u, done[u]))
            new[v] = (first, max(first, end))
            done[v] = new[v][1]
        win: dict[str, Window] = {x: (0, body[x].shape[2])}
        for node in body.nodes:
            v = node.output
            low = new[v][0]
            for r in readers.get(v, []):
                rows_now, later = new[r.output], done[r.output]
                if rows_now[0] < rows_now[1]:
                    low = min(low, needed_rows(body, r, v, rows_now)[0])
                if later < body[r.output].shape[2]:
                    low = min(low, needed_rows(body, r, v, (later, later + 1))[0])
            w = (min(low, done[v]), done[v])
            held = before.get(v)
            if held is not None and held[0] < held[1] and w[0] < min(held[0], held[1]) and w[0] < w[1]:
                raise ValueError(f"'{v}' would need rows {w} after dropping those below {held[0]}")
            win[v] = w
        before = win
        out.append((win, new))
    return out


def operand_rows(body: Graph, node: Node, operand: str, windows: dict[str, Window],
                 new: dict[str, Window] | None = None) -> Window:
    """The rows of ``operand``'s buffer that ``node`` reads in a band to compute its new rows (``new``, default
    ``windows``): all the buffer holds for a conv that reads its buffer directly (:func:`reads_rows_directly`), else
    exactly the rows it needs."""
    if reads_rows_directly(body, node):
        return windows[operand]
    return needed_rows(body, node, operand, (new or windows)[node.output])


def gathers(body: Graph, node: Node, operand: str, per_band: list[tuple[dict[str, Window], dict[str, Window]]]) \
        -> bool:
    """Whether ``node`` reads a copy of the rows it needs of ``operand``: its buffer holds others too in some band
    (a transpose reads the rows of its channels-last input in place)."""
    if body[operand].is_const or node.op == "transpose" or reads_rows_directly(body, node):
        return False
    return any(w[operand] != needed_rows(body, node, operand, n[node.output]) for w, n in per_band
               if n[node.output][0] < n[node.output][1])


def node_macs(g: Graph, node: Node, rows_in: int, rows_out: int) -> int:
    """Multiply-accumulates of ``node`` computing ``rows_out`` rows of its result from ``rows_in`` rows of its input
    (a pw_dw's 1x1 conv runs over all of those)."""
    if rows_out == 0:
        return 0
    if node.op == "conv":
        o, cg_, kh, kw = g[node.inputs[1]].shape
        return rows_out * g[node.output].shape[3] * o * cg_ * kh * kw
    if node.op == "pw_dw":
        m, c = g[node.inputs[1]].shape[:2]
        kh, kw = g[node.inputs[3]].shape[2:]
        return rows_in * g[node.inputs[0]].shape[3] * m * c + rows_out * g[node.output].shape[3] * m * kh * kw
    return 0


def _size(w: Window) -> int:
    return w[1] - w[0]


def plan_bands(body: Graph, band_rows: int, layout, carry: bool = False) -> PatchPlan:
    """The :class:`PatchPlan` of running ``body`` in bands of ``band_rows`` result rows, the halo kept between bands
    (``carry``) or recomputed.  ``layout`` places the workspace buffers: ``[(name, bytes, first step, last step)] ->
    (offsets by name, total bytes)`` (the pass gives the arena planner).  Raises ValueError when a band would read
    nothing but padding."""
    y = body.outputs[0]
    height = body[y].shape[2]
    bands = -(-height // band_rows)
    results = [(b * band_rows, min((b + 1) * band_rows, height)) for b in range(bands)]
    values = tuple(n.output for n in body.nodes)
    if carry:  # bands of the first op's rows; an op computes no row in some of them
        per_band = carry_windows(body, band_rows)
        bands = len(per_band)
    else:
        per_band = [(w, w) for w in (band_windows(body, r) for r in results)]
        for w, _ in per_band:
            for v in values:
                if w[v][0] >= w[v][1]:
                    raise ValueError(f"a band of {band_rows} rows reads only padding rows of '{v}'")
    # a buffer that keeps rows between bands: its new rows are staged, then merged below the kept ones
    staged = {v for v in values if any(w[v][0] < w[v][1] and not n[v][0] <= w[v][0] < n[v][1]
                                       for w, n in per_band)}

    def plane(v: str) -> int:  # bytes of one row of every channel
        n, c, _, width = body[v].shape
        return n * c * width

    steps: list[Step] = []
    first_write: dict[str, int] = {}
    last_read: dict[str, int] = {}
    sizes: dict[str, int] = {}
    kinds: dict[str, tuple[str, str | None]] = {}  # buffer -> (value, whose window it holds)
    for k, node in enumerate(body.nodes):
        copies = []
        for i, u in enumerate(node.inputs):
            if body[u].is_const:
                continue
            if gathers(body, node, u, per_band):
                name = f"{node.name}:operand{i}"
                sizes[name] = max(_size(needed_rows(body, node, u, n[node.output])) for _, n in per_band
                                  if _size(n[node.output])) * plane(u)
                kinds[name] = (u, None)
                last_read[u] = first_write[name] = len(steps)
                steps.append(Step("gather", k, i, name))
                copies.append(name)
        step = len(steps)  # the op reads its operands' buffers, or the copies of their rows
        for i, u in enumerate(node.inputs):
            if not body[u].is_const:
                name = f"{node.name}:operand{i}"
                last_read[name if name in copies else u] = step
        v = node.output
        dest = f"{v}:new" if v in staged else v
        steps.append(Step("op", k, -1, dest))
        sizes[v] = max(_size(w[v]) for w, _ in per_band) * plane(v)
        kinds[v] = (v, v)
        first_write[v] = step
        if v in staged:
            sizes[dest], kinds[dest], first_write[dest] = max(_size(n[v]) for _, n in per_band) * plane(v), \
                (v, dest), step
            steps.append(Step("keep", k, -1, v))
            last_read[dest] = len(steps)
            steps.append(Step("merge", k, -1, v))
        scratch = _scratch_bytes(body, node, per_band)
        if scratch:
            name = f"{node.name}:scratch"
            sizes[name], kinds[name] = scratch, ("", None)
            first_write[name] = last_read[name] = step
    last_read[y] = len(steps)
    steps.append(Step("store", -1, -1, y))
    for v in staged:  # kept rows live from one band to the next: the whole program
        first_write[v], last_read[v] = 0, len(steps) - 1
    spans = [(name, sizes[name], first_write[name], max(last_read.get(name, first_write[name]), first_write[name]))
             for name in sizes]
    offsets, work = layout(spans)
    buffers = tuple(WorkBuffer(name, size, a, b, kinds[name][0], kinds[name][1]) for name, size, a, b in spans)
    macs = whole = 0
    for node in body.nodes:
        u = node.inputs[0]
        whole += node_macs(body, node, body[u].shape[2], body[node.output].shape[2])
        for w, n in per_band:
            if _size(n[node.output]):
                macs += node_macs(body, node, _size(operand_rows(body, node, u, w, n)), _size(n[node.output]))
    # the table of windows: every value's, then every gathered copy's (the rows its op needs), then the new rows and
    # the window in the band before of every buffer that keeps rows
    slots = values + tuple(st.buffer for st in steps if st.kind == "gather") + \
        tuple(f"{v}{part}" for v in values if v in staged for part in (":new", ":prev"))
    rows = []
    before: dict[str, Window] = {}
    for w, n in per_band:
        row = [w[v] for v in values]
        for st in steps:
            if st.kind == "gather":
                node = body.nodes[st.node]
                u = node.inputs[st.operand]
                row.append(needed_rows(body, node, u, n[node.output]) if _size(n[node.output]) else (w[u][0],) * 2)
        for v in values:
            if v in staged:
                row += [n[v], before.get(v, (0, 0))]
        before = w
        rows.append(tuple(row))
    return PatchPlan(band_rows, bands, slots, tuple(rows), tuple(steps), buffers, tuple(sorted(offsets.items())), work,
                     macs, whole, carry, result_over_input(body, per_band))


def result_over_input(body: Graph, per_band: list[tuple[dict[str, Window], dict[str, Window]]]) -> bool:
    """Whether the stage's result may live in its input's bytes (the patch node then writes it in place, and the
    arena holds one buffer, not two): in every band, each row of the result the band stores lands on bytes of the
    input that no later band reads.  The first op reads the input from its top row down; the rows above the first
    one a later band reads are dead (in each channel plane of an NCHW input, at the front of a channels-last one)."""
    x, y = body.inputs[0], body.outputs[0]
    if body[y].nbytes > body[x].nbytes:
        return False
    nhwc = any(n.op == "transpose" and n.inputs[0] == x for n in body.nodes)
    _, *dims = body[x].shape
    height = dims[0] if nhwc else dims[1]
    row = dims[1] * dims[2] if nhwc else dims[2]  # bytes of a row in one plane
    plane = body[x].nbytes if nhwc else height * row
    first_read = []  # per band, the first input row it reads
    for _, new in per_band:
        first_read.append(min([needed_rows(body, n, x, new[n.output])[0] for n in body.nodes
                               if x in n.inputs and new[n.output][0] < new[n.output][1]], default=height))
    dead = [height] * len(per_band)  # per band, the input rows no later band reads
    for b in range(len(per_band) - 2, -1, -1):
        dead[b] = min(first_read[b + 1], dead[b + 1])
    _, c, h, w = body[y].shape
    for b, (_, new) in enumerate(per_band):
        first, end = new[y]
        for p in range(c if first < end else 0):
            lo, hi = p * h * w + first * w, p * h * w + end * w  # the bytes of the rows stored, in plane p
            if lo // plane != (hi - 1) // plane or hi - 1 - lo // plane * plane >= dead[b] * row:
                return False
    return True


def _scratch_bytes(body: Graph, node: Node, per_band: list[tuple[dict[str, Window], dict[str, Window]]]) -> int:
    """A depthwise conv's scratch (one plane of the rows it computes); a pw_dw's (one plane of the rows it reads)."""
    if node.op == "conv" and is_depthwise(body, node):
        return max(_size(n[node.output]) for _, n in per_band) * body[node.output].shape[3]
    if node.op == "pw_dw":
        u = node.inputs[0]
        return max(_size(operand_rows(body, node, u, w, n)) for w, n in per_band if _size(n[node.output])) * \
            body[u].shape[3]
    return 0


# -- the reference kernel: the band program on a numpy workspace ---------------------------------------------------


def _band_node(node: Node, pads: tuple[int, int, int, int]) -> Node:
    return Node(node.op, node.name, node.inputs, node.outputs, {**node.attrs, "pads": pads})


def _view(work: np.ndarray, offset: int, shape: tuple[int, ...], rows: int) -> np.ndarray:
    n, c, _, w = shape
    return work[offset:offset + n * c * rows * w].reshape(n, c, rows, w)


def keep_rows(work: np.ndarray, offset: int, shape: tuple[int, ...], before: Window, now: Window) -> None:
    """Move the rows a band buffer keeps (those of window ``before`` that window ``now`` holds) to their places in
    ``now``'s layout, in place, plane by plane in the order that never overwrites a plane not moved yet (as
    tte_patch_keep_s8)."""
    first, end = max(before[0], now[0]), min(before[1], now[1])
    if first >= end:
        return
    n, c, _, w = shape
    old, new, count = _size(before) * w, _size(now) * w, (end - first) * w
    planes = range(n * c) if new <= old else reversed(range(n * c))
    for p in planes:
        src = offset + p * old + (first - before[0]) * w
        dst = offset + p * new + (first - now[0]) * w
        work[dst:dst + count] = work[src:src + count].copy()


def patch_kernel(g: Graph, node: Node, x, *consts):
    """The stage, band by band, exactly as the C runs it: each band's program on a workspace of ``work_bytes``; a
    result that lives over the input (``over_input``) is stored into the input's bytes band after band, as in C, so
    that a band reading input rows an earlier band overwrote would compute other integers."""
    body, plan = node.attrs["body"], node.attrs["plan"]
    xin, yout = body.inputs[0], body.outputs[0]
    env_const = dict(zip(node.inputs[1:], consts))
    work = np.zeros(plan.work_bytes, np.int8)
    if plan.over_input:  # one buffer: the input's bytes, the result's from its start
        memory = np.array(x, np.int8).reshape(-1)
        x = memory.reshape(np.shape(x))
        y = memory[:body[yout].nbytes].reshape(body[yout].shape)
    else:
        y = np.zeros(body[yout].shape, np.int8)
    at = dict(plan.offsets)

    def buffer(u: str, window: Window) -> np.ndarray:  # a band buffer, or the whole stage input
        return x if u == xin else _view(work, at[u], body[u].shape, _size(window))

    for b in range(plan.bands):
        win = dict(zip(plan.values, plan.rows[b]))
        win[xin] = (0, body[xin].shape[2])
        gathered: dict[tuple[int, int], Window] = {}
        for step in plan.steps:
            if step.kind == "store":
                w = win[yout]
                y[:, :, w[0]:w[1]] = buffer(yout, w)
                continue
            inner = body.nodes[step.node]
            if step.kind == "keep":
                keep_rows(work, at[step.buffer], body[step.buffer].shape, win[f"{step.buffer}:prev"],
                          win[step.buffer])
                continue
            if step.kind == "merge":
                new, have = win[f"{step.buffer}:new"], win[step.buffer]
                if new[0] < new[1]:
                    buffer(step.buffer, have)[:, :, new[0] - have[0]:new[1] - have[0]] = \
                        _view(work, at[f"{step.buffer}:new"], body[step.buffer].shape, _size(new))
                continue
            if step.kind == "gather":
                u = inner.inputs[step.operand]
                need, have = win[step.buffer], win[u]
                if need[0] < need[1]:
                    _view(work, at[step.buffer], body[u].shape, _size(need))[...] = \
                        buffer(u, have)[:, :, need[0] - have[0]:need[1] - have[0]]
                gathered[(step.node, step.operand)] = need
                continue
            out = win[step.buffer]
            if out[0] >= out[1]:  # no new rows in this band
                continue
            args, windows = [], []
            for i, u in enumerate(inner.inputs):
                if u in env_const:
                    args.append(env_const[u])
                    windows.append(None)
                elif (step.node, i) in gathered:
                    need = gathered[(step.node, i)]
                    args.append(_view(work, at[f"{inner.name}:operand{i}"], body[u].shape, _size(need)))
                    windows.append(need)
                else:
                    args.append(buffer(u, win[u]))
                    windows.append(win[u])
            _view(work, at[step.buffer], body[inner.output].shape, _size(out))[...] = \
                _run_band(body, inner, args, windows, out)
    return y.copy(), work


def _run_band(body: Graph, node: Node, args: list, windows: list, out: Window) -> np.ndarray:
    """Rows ``out`` of ``node``'s result from its operands' band buffers (``windows``: the rows each holds)."""
    if node.op == "transpose":
        return OPS["transpose"].kernel(body, node, args[0][:, out[0]:out[1]])
    geo = window_geometry(body, node)
    if geo is None:  # row-wise: every operand holds exactly the rows
        if any(w is not None and w != out for w in windows):
            raise AssertionError(f"'{node.name}' reads rows {windows} for rows {out}")
        return OPS[node.op].kernel(body, node, *args)
    s, pt, k = geo
    have, height = windows[0], body[node.inputs[0]].shape[2]
    first, end = out[0] * s - pt, (out[1] - 1) * s - pt + k
    if max(first, 0) < have[0] or min(end, height) > have[1]:
        raise AssertionError(f"'{node.name}' reads rows [{first}, {end}) from a buffer of rows {have}")
    lo, hi = max(first, have[0]), min(end, have[1])
    pads = node.attrs["pads"]
    band = _band_node(node, (lo - first, pads[1], end - hi, pads[3]))
    result = OPS[node.op].kernel(body, band, args[0][:, :, lo - have[0]:hi - have[0]], *args[1:])
    if result.shape[2] != _size(out):
        raise AssertionError(f"band of '{node.name}' computed {result.shape[2]} rows, not {_size(out)}")
    return result


def patch_stats(node: Node) -> dict:
    """The figures of a patch node the memory report gives (``"patch"`` of ``tte plan --json``)."""
    body, plan = node.attrs["body"], node.attrs["plan"]
    return {"start": body.nodes[0].name, "end": body.nodes[-1].name, "ops": len(body.nodes),
            "output": node.output, "band_rows": plan.band_rows, "bands": plan.bands,
            "halo": "kept" if plan.carry else "recomputed",
            "workspace_bytes": plan.work_bytes, "stage_macs": plan.whole_macs, "extra_macs": plan.extra_macs,
            "extra_macs_percent": round(100.0 * plan.extra_macs / max(plan.whole_macs, 1), 2)}


# -- facets -----------------------------------------------------------------------------------------------------


def patch_shape(g: Graph, n: Node):
    body = n.attrs["body"]
    x = n.inputs[0]
    if g[x].shape != body[body.inputs[0]].shape:
        raise ValueError(f"patch reads {g[x].shape}, its stage expects {body[body.inputs[0]].shape}")
    return body[body.outputs[0]].shape


def patch_extra(g: Graph, n: Node):
    """The workspace: the band buffers (and kernel scratch) of the stage's ops, alive during the node only."""
    return [("int8", (max(n.attrs["plan"].work_bytes, 1),))]


def patch_in_place(g: Graph, n: Node) -> bool:
    """The result overwrites the stage's input, which dies here, where every band stores its rows over input rows no
    later band reads (:func:`result_over_input`)."""
    return n.attrs["plan"].over_input


def patch_grad(b, node: Node, gy: str) -> None:
    raise AssertionError("patch runs frozen layers only (tte.passes.patch): no gradient passes through it")


def patch_flash(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """The stage's ops' quantization data, and the table of every band's row windows."""
    body, plan = n.attrs["body"], n.attrs["plan"]
    arrays, literals = [row_table(plan)], 0
    for inner in body.nodes:
        a, lit = OPS[inner.op].flash(body, inner)
        arrays += a
        literals += lit
    return arrays, literals


def row_table(plan: PatchPlan) -> np.ndarray:
    """Every band's windows as the C reads them: [band][value][first, end], int32."""
    return np.asarray(plan.rows, np.int32).reshape(plan.bands, len(plan.values) * 2)


# -- C ----------------------------------------------------------------------------------------------------------


def _dims(shape) -> str:
    return "&(const tte_dims){%d, %d, %d, %d}" % tuple(shape)


def _whole(shape) -> str:
    """The rows of a whole tensor."""
    return "(const int32_t[2]){0, %d}" % shape[2]


def emit_patch(e: cg.Emitter, node: Node) -> None:
    """The band loop: before it, a named pointer to each band buffer in the workspace; in it, for each band, the
    band program's calls, each op's as its whole call with the rows of its operand and result."""
    g, body, plan = e.g, node.attrs["body"], node.attrs["plan"]
    x, y = node.inputs[0], node.output
    xin, yout = body.inputs[0], body.outputs[0]
    work = e.ptr(node.outputs[1])
    slot = {v: i for i, v in enumerate(plan.values)}
    table = e.array(f"{node.name}_rows", row_table(plan), "int32_t")
    kind = e.shared.kind(node.op)
    names: dict[str, str] = {}
    staged = {st.buffer for st in plan.steps if st.kind == "keep"}
    decl = [f"        int8_t *const work = {work}; /* {plan.work_bytes:,} B */"]
    for b in sorted(plan.buffers, key=lambda b: plan.offset(b.name)):
        base = cg.c_name(b.name.replace(":", "_"), "band_", 48)
        name, i = base, 2
        while name in names.values():
            name, i = f"{base}_{i}", i + 1
        names[b.name] = name
        what = (f"rows of {b.value}" + (", kept from band to band" if b.value in staged else "")
                if b.window == b.value else f"the new rows of {b.value}" if b.window == f"{b.value}:new" else
                f"the rows {b.name.rsplit(':', 1)[0]} reads of {b.value}" if b.value else
                f"the scratch of {b.name.rsplit(':', 1)[0]}")
        decl += cg.c_comment(f"{what}: up to {b.bytes:,} B", 8)
        decl.append(f"        int8_t *const {name} = work + {plan.offset(b.name)};")
    if plan.carry:
        how = (f"{plan.bands} bands, each {plan.band_rows} row{'s' if plan.band_rows > 1 else ''} of "
               f"{body.nodes[0].output} and a like share of every other result; in each band every op computes the "
               f"rows no band computed before that its operands allow, and a band buffer keeps the rows its readers "
               f"still need from band to band (line buffers: no row is computed twice)")
    else:
        how = (f"{plan.bands} bands of {plan.band_rows} row{'s' if plan.band_rows > 1 else ''} of {y}; in each band "
               f"every op computes only the rows of its result the band needs (halo rows recomputed)")
    e.comment(f"{node.name}: its {len(body.nodes)} frozen ops run band by band (tte.passes.patch) into "
              f"{y} [{', '.join(map(str, g[y].shape))}], {how}.  The band buffers live in the workspace {work}, "
              f"alive during this stage only; {table}[band] holds each one's rows [first, end) in that band, two "
              f"int32 each (empty ones: no rows in that band).")
    e.body += ["    {"] + decl
    e.body.append(f"        for (int32_t band = 0; band < {plan.bands}; band++) {{")
    e.body.append(f"            const int32_t *rows = {table} + {2 * len(plan.values)} * band;")

    def rows(v: str) -> str:
        return f"rows + {2 * slot[v]}" if v in slot else _whole(body[v].shape)

    def where(v: str) -> str:
        return e.ptr(x) if v == xin else names[v]

    def call(text: str, comment: str, when: str | None = None) -> None:
        """A call; in a band that computes rows of ``when`` (a window slot) only, if given."""
        e.body.extend(cg.c_comment(comment, 12))
        if when is None:
            e.body.extend(cg.format_call(f"TTE_CALL({kind}, ", text, ");", indent=12))
            return
        k = 2 * slot[when]
        e.body.append(f"            if (rows[{k}] < rows[{k + 1}])")
        e.body.extend(cg.format_call(f"TTE_CALL({kind}, ", text, ");", indent=16))

    for step in plan.steps:
        if step.kind == "store":
            n, c, _, w = body[yout].shape
            call(f"tte_patch_rows_s8({n * c}, {w}, {rows(yout)}, {rows(yout)}, {names[yout]}, {_whole(g[y].shape)}, "
                 f"{e.ptr(y)})", f"the band's rows of {y} into the whole tensor", yout if plan.carry else None)
            continue
        inner = body.nodes[step.node]
        if step.kind in ("keep", "merge"):
            v = step.buffer
            n, c, _, w = body[v].shape
            if step.kind == "keep":
                call(f"tte_patch_keep_s8({n * c}, {w}, {rows(v + ':prev')}, {rows(v)}, {names[v]})",
                     f"the rows of {v} the band before computed that this band keeps, to their places")
            else:
                call(f"tte_patch_rows_s8({n * c}, {w}, {rows(v + ':new')}, {rows(v + ':new')}, {names[v + ':new']}, "
                     f"{rows(v)}, {names[v]})", f"the new rows of {v} below them", v + ":new")
            continue
        if step.kind == "gather":
            u = inner.inputs[step.operand]
            n, c, _, w = body[u].shape
            call(f"tte_patch_rows_s8({n * c}, {w}, {rows(step.buffer)}, {rows(u)}, {where(u)}, {rows(step.buffer)}, "
                 f"{names[step.buffer]})", f"the rows {inner.name} reads of {u}",
                 (f"{inner.output}:new" if inner.output in staged else inner.output) if plan.carry else None)
            continue
        operands = [names[f"{inner.name}:operand{i}"] if f"{inner.name}:operand{i}" in names else
                    (where(u) if not body[u].is_const else "") for i, u in enumerate(inner.inputs)]
        in_rows = [rows(f"{inner.name}:operand{i}") if f"{inner.name}:operand{i}" in slot else
                   (rows(u) if not body[u].is_const else "") for i, u in enumerate(inner.inputs)]
        call(_inner_call(e, body, inner, operands, in_rows, rows(step.buffer), names[step.buffer],
                         names.get(f"{inner.name}:scratch", "NULL")),
             f"{inner.op} {inner.name}" + (f": its new rows" if step.buffer != inner.output else ""),
             step.buffer if plan.carry else None)
    e.body += ["        }", "    }"]


def _inner_call(e: cg.Emitter, body: Graph, node: Node, operands: list[str], in_rows: list[str], out_rows: str,
                out: str, scratch: str) -> str:
    """The call of one op of the stage on its band buffers (``operands``; ``in_rows``: their rows slots)."""
    a = node.attrs
    x, y = node.inputs[0], node.output
    zx, zy = int(body[x].quant.zero_point), int(body[y].quant.zero_point)
    arith = tflite(body)
    if node.op == "conv":
        w, b = node.inputs[1:3]
        cg.check_acc(body, node, w)
        if arith:
            q, m = e.tflite_quant(x, y, node, tflite_multipliers(body, node), node.name, z_in=zx, zy=zy), "NULL"
        else:
            q, m = cg.quant_literal(zx, zy, a["qmin"], a["qmax"]), e.array(f"{node.name}_m",
                                                                            conv_multiplier(body, node), "float")
        return (f"tte_patch_conv_s8({cg.conv_geo(a)}, {q}, {_dims(body[x].shape)}, {in_rows[0]}, {operands[0]}, "
                f"{e.dims(w)}, {e.split_weights(w, is_depthwise(body, node))}, {e.weight_zero_points(w)}, "
                f"{e.value_const(b)}, {m}, {_dims(body[y].shape)}, {out_rows}, {out}, {scratch})")
    if node.op == "pw_dw":
        w1, b1, w2, b2 = node.inputs[1:]
        cg.check_acc(body, node, w1)
        cg.check_acc(body, node, w2)
        mq = a["mid_quant"]
        zm = int(mq.zero_point)
        geo = cg.conv_geo(a, groups=body[w2].shape[0])
        parts = node.name.split("+")
        h1, h2 = parts if len(parts) == 2 else (f"{node.name}_1", f"{node.name}_2")
        if arith:
            t1, t2 = pw_dw_tflite_multipliers(body, node)
            q1 = e.tflite_quant(x, y, node, t1, h1, z_in=zx, zy=zm, clamp=(a["mid_qmin"], a["mid_qmax"]))
            q2 = e.tflite_quant(x, y, node, t2, h2, z_in=zm, zy=zy)
            m1 = m2 = "NULL"
        else:
            q1 = cg.quant_literal(zx, zm, a["mid_qmin"], a["mid_qmax"])
            q2 = cg.quant_literal(zm, zy, a["qmin"], a["qmax"])
            f1, f2 = pw_dw_multipliers(body, node)
            n1, n2 = (f"{p}_m" for p in parts) if len(parts) == 2 else (f"{node.name}_m1", f"{node.name}_m2")
            m1, m2 = e.array(n1, f1, "float"), e.array(n2, f2, "float")
        return (f"tte_patch_pw_dw_s8({q1}, {e.value_const(w1)}, {e.weight_zero_points(w1)}, {e.value_const(b1)}, "
                f"{m1}, {geo}, {q2}, {e.dims(w2)}, {e.value_const(w2)}, {e.weight_zero_points(w2)}, "
                f"{e.value_const(b2)}, {m2}, {_dims(body[x].shape)}, {in_rows[0]}, {operands[0]}, "
                f"{_dims(body[y].shape)}, {out_rows}, {out}, {scratch})")
    n, c, _, w = body[y].shape
    size = f"{n * c * w} * (rows[{_slot_index(out_rows) + 1}] - rows[{_slot_index(out_rows)}])"
    if node.op == "add":
        bv = node.inputs[1]
        zb = int(body[bv].quant.zero_point)
        if arith:
            params = e.array(f"{node.name}_params", add_params(body, node), "int32_t")
            return (f"tte_add_tflite_s8({size}, {operands[0]}, {zx}, {size}, 1, {operands[1]}, {zb}, {params}, {zy}, "
                    f"{a['qmin']}, {a['qmax']}, {out}, NULL)")
        qy = body[y].quant
        ma, mb = (sem.multiplier(body[v].quant.scale, qy.scale) for v in (x, bv))
        return (f"tte_add_s8({size}, {operands[0]}, {zx}, {cg.c_float(ma)}, {size}, 1, {operands[1]}, {zb}, "
                f"{cg.c_float(mb)}, {zy}, {a['qmin']}, {a['qmax']}, {out}, NULL)")
    if node.op == "requantize":
        if arith:
            m, s = requantize_multiplier(body, x, y)
            return (f"tte_requantize_tflite_s8({size}, {operands[0]}, {zx}, {m}, {s}, {zy}, {a['qmin']}, "
                    f"{a['qmax']}, {out}, NULL)")
        return (f"tte_requantize_s8({size}, {operands[0]}, {zx}, {cg.rescale(body, x, y)}, {zy}, {a['qmin']}, "
                f"{a['qmax']}, {out}, NULL)")
    if node.op == "transpose":  # a channels-last stage input: the band's rows are contiguous there
        n, h, w, c = body[x].shape
        first = f"rows[{_slot_index(out_rows)}]"
        return (f"tte_transpose_s8(&(const tte_dims){{{n}, rows[{_slot_index(out_rows) + 1}] - {first}, {w}, {c}}}, "
                f"(const int32_t[4]){{0, 3, 1, 2}}, {operands[0]} + {first} * {w * c}, {out})")
    raise AssertionError(f"patch cannot emit '{node.op}'")


def _slot_index(rows: str) -> int:
    """The index of a band row pair's first entry in ``rows`` (``rows + K``)."""
    return int(rows.rsplit("+", 1)[1])


register(name="patch", operands=("int8",) + ("*",) * MAX_CONSTANTS, out_dtype="int8", shape=patch_shape,
         attrs=("body", "plan"), requantizes=False, extra=patch_extra, optional=MAX_CONSTANTS, kernel=patch_kernel,
         grad=patch_grad, emit=emit_patch,
         runtime=("tte_patch_conv_s8.c", "tte_patch_pw_dw_s8.c", "tte_patch_rows_s8.c", "tte_conv_s8.c",
                  "tte_conv_dw_s8.c", "tte_add_s8.c", "tte_add_tflite_s8.c", "tte_requantize_s8.c",
                  "tte_requantize_tflite_s8.c", "tte_transpose_s8.c"),
         scratch=no_scratch, in_place=patch_in_place, alias=False, flash=patch_flash, code_bytes=900,
         channels=channels_training_only, layer=False, onnx=())

