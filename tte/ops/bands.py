"""The band program of a ``patch`` node (tte/ops/patch.py): which rows of every value of the stage each band
holds and computes (halos recomputed, or kept in line buffers), the statements each band runs, the workspace layout,
the MACs, and whether the stage's result may live in its input's bytes.  Pure planning on the stage's graph: the
reference kernel and the C emission (tte/ops/patch.py) run what it plans."""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph, Node
from ..ir.facts import is_depthwise

Window = tuple[int, int]  # rows [first, end) of a whole tensor


@dataclass(frozen=True)
class Step:
    """One statement of a band's program: ``op`` runs inner node ``node`` into buffer ``buffer`` (its result's band
    buffer, or the staging buffer of its new rows); ``gather`` copies the rows the op ``node`` reads of its operand
    ``operand`` (an index into its inputs) into buffer ``buffer``; ``keep`` moves the rows the band buffer
    ``buffer`` keeps from the band before (window slot ``buffer:prev``) to this band's place; ``merge`` copies the
    new rows (slot ``buffer:new``) from their staging buffer into the band buffer ``buffer``; ``fetch`` asks the row
    source for the new rows of the streamed stage input (slot ``buffer:new``), straight into their places in its band
    buffer ``buffer``; ``store`` copies the band of the stage's result into the whole result tensor."""

    kind: str
    node: int = -1
    operand: int = -1
    buffer: str = ""


@dataclass(frozen=True)
class WorkBuffer:
    """A buffer in the workspace, alive from step ``first`` to step ``last`` of the band program (inclusive): a band
    buffer of ``value`` (``window`` = ``value``: its rows are that value's window), the staging buffer of its new rows
    (``window`` = ``value:new``), a gathered copy of rows of ``value`` (``window`` None; its rows are the window slot
    named after it), or a kernel's scratch (no value)."""

    name: str
    bytes: int
    first: int
    last: int
    value: str = ""
    window: str | None = None  # the value whose row window it holds


@dataclass(frozen=True)
class PatchPlan:
    """How a patch node runs its stage: ``bands`` bands of ``band_rows`` rows of the result (the last one may be
    shorter), or with ``carry`` of the first op's result (then as many more as the last rows need); ``rows[b][v]``:
    the window of slot ``values[v]`` in band ``b``; the band program ``steps``; the
    workspace ``buffers`` and their ``offsets`` in it (``work_bytes`` in all); the MACs of the stage's ops run band
    by band (``macs``) and whole (``whole_macs``); ``carry``: halo rows are kept between bands, not recomputed;
    ``over_input``: the result may be written over the stage's input (:func:`result_over_input`); ``streamed``: the
    stage's input is no whole tensor but rows fetched band by band from the caller's row source into a band buffer of
    its own (slot ``values[0]``, its new rows ``x:new``, kept ones from ``x:prev``), each row once, in order."""

    band_rows: int
    bands: int
    values: tuple[str, ...]  # the window table's slots: every value, every gathered copy, then value:new, value:prev
    rows: tuple[tuple[Window, ...], ...]
    steps: tuple[Step, ...]
    buffers: tuple[WorkBuffer, ...]
    offsets: tuple[tuple[str, int], ...]
    work_bytes: int
    macs: int
    whole_macs: int
    carry: bool = False
    over_input: bool = False
    streamed: bool = False
    channels_last: bool = False  # streamed: the caller's input is channels-last, fetched channel-planar

    @property
    def extra_macs(self) -> int:
        return self.macs - self.whole_macs

    def offset(self, buffer: str) -> int:
        return dict(self.offsets)[buffer]

    def window(self, band: int, value: str) -> Window:
        return self.rows[band][self.values.index(value)]

    def __str__(self) -> str:
        return (f"{self.bands} bands of {self.band_rows} row{'s' if self.band_rows > 1 else ''}, halo "
                f"{'kept' if self.carry else 'recomputed'}{', input streamed' if self.streamed else ''}, workspace "
                f"{self.work_bytes:,} B, +{self.extra_macs:,} MACs")


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


def carry_windows(body: Graph, band_rows: int, streamed: bool = False) \
        -> list[tuple[dict[str, Window], dict[str, Window]]]:
    """Per band, with the halo kept (line buffers): every value's window (the rows its band buffer holds) and its
    new rows (those the band computes).  Each band, an op computes the rows its operands' rows so far allow, but no
    more than its share: ``band_rows`` rows of the first op's result, and as many of every other op's as its height
    is of the first one's (at least one); bands run until every result is complete.  A buffer holds its new rows and
    every earlier row a reader reads in this band or may read later; it drops the rest.  ``streamed``: the stage's
    input is such a buffer too, each band fetching its share of rows (else it is whole, every row at hand)."""
    x = body.inputs[0]
    first_height = body[body.nodes[0].output].shape[2]
    tracked = [x] if streamed else []  # values with band buffers that no op of the stage makes
    readers: dict[str, list[Node]] = {}
    for node in body.nodes:
        for u in dict.fromkeys(node.inputs):
            if not body[u].is_const and (u != x or streamed):
                readers.setdefault(u, []).append(node)
    made = tracked + [n.output for n in body.nodes]
    share = {v: max(1, -(-band_rows * body[v].shape[2] // first_height)) for v in made}
    done: dict[str, int] = {}
    out = []
    while not out or any(done[v] < body[v].shape[2] for v in made):
        if len(out) > 4 * first_height + 4 * len(made):  # a geometry no op advances on: never in a real stage
            raise ValueError("the stage's rows do not advance band after band")
        new: dict[str, Window] = {}
        for v in tracked:
            first = done.get(v, 0)
            new[v] = (first, min(body[v].shape[2], first + share[v]))
            done[v] = new[v][1]
        for node in body.nodes:
            v, height = node.output, body[node.output].shape[2]
            first = done.get(v, 0)
            end = min(height, first + share[v])
            for u in node.inputs:
                if not body[u].is_const and (u != x or streamed):
                    end = min(end, _computable(body, node, u, done[u]))
            new[v] = (first, max(first, end))
            done[v] = new[v][1]
        win: dict[str, Window] = {} if streamed else {x: (0, body[x].shape[2])}
        for v in made:
            low = new[v][0]
            for r in readers.get(v, []):
                rows_now, later = new[r.output], done[r.output]
                if rows_now[0] < rows_now[1]:
                    low = min(low, needed_rows(body, r, v, rows_now)[0])
                if later < body[r.output].shape[2]:
                    low = min(low, needed_rows(body, r, v, (later, later + 1))[0])
            win[v] = (min(low, done[v]), done[v])
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


def size(w: Window) -> int:
    """Rows in a window."""
    return w[1] - w[0]


def plan_bands(body: Graph, band_rows: int, layout, carry: bool = False, streamed: bool = False,
               channels_last: bool = False) -> PatchPlan:
    """The :class:`PatchPlan` of running ``body`` in bands of ``band_rows`` result rows, the halo kept between bands
    (``carry``: ``band_rows`` rows of the first op's result, see :func:`carry_windows`) or recomputed.  ``layout``
    places the workspace buffers: ``[(name, bytes, first step, last step)] -> (offsets by name, total bytes)`` (the
    pass gives the arena planner).  ``streamed`` (with ``carry`` only): the stage's input comes in rows from a row
    source, each band fetching its share below the rows its buffer keeps; ``channels_last``: the caller's input is
    channels-last (the stage's leading transpose left out: the fetch gives channel-planar rows).  Raises ValueError
    when a band of a recomputed halo would read nothing but padding, or ``streamed`` comes without ``carry``."""
    x, y = body.inputs[0], body.outputs[0]
    height = body[y].shape[2]
    if streamed and not carry:
        raise ValueError("a streamed input needs the halo kept: each row is fetched once")
    values = ((x,) if streamed else ()) + tuple(n.output for n in body.nodes)
    if carry:  # bands of the first op's rows; an op computes no row in some of them
        per_band = carry_windows(body, band_rows, streamed)
    else:
        per_band = [(w, w) for w in (band_windows(body, (b * band_rows, min((b + 1) * band_rows, height)))
                                     for b in range(-(-height // band_rows)))]
        for w, _ in per_band:
            for v in values:
                if w[v][0] >= w[v][1]:
                    raise ValueError(f"a band of {band_rows} rows reads only padding rows of '{v}'")
    # a buffer that keeps rows between bands: its new rows are staged, then merged below the kept ones (the streamed
    # input's are fetched into their places)
    staged = {v for v in values if v != x and any(w[v][0] < w[v][1] and not n[v][0] <= w[v][0] < n[v][1]
                                                  for w, n in per_band)}

    def plane(v: str) -> int:  # bytes of one row of every channel
        n, c, _, width = body[v].shape
        return n * c * width

    steps: list[Step] = []
    first_write: dict[str, int] = {}
    last_read: dict[str, int] = {}
    sizes: dict[str, int] = {}
    kinds: dict[str, tuple[str, str | None]] = {}  # buffer -> (value, whose window it holds)
    if streamed:  # the input's kept rows move up, then the source writes the new ones below them
        sizes[x], kinds[x] = max(size(w[x]) for w, _ in per_band) * plane(x), (x, x)
        steps += [Step("keep", -1, -1, x), Step("fetch", -1, -1, x)]
    for k, node in enumerate(body.nodes):
        copies = []
        for i, u in enumerate(node.inputs):
            if body[u].is_const:
                continue
            if gathers(body, node, u, per_band):
                name = f"{node.name}:operand{i}"
                sizes[name] = max(size(needed_rows(body, node, u, n[node.output])) for _, n in per_band
                                  if size(n[node.output])) * plane(u)
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
        sizes[v] = max(size(w[v]) for w, _ in per_band) * plane(v)
        kinds[v] = (v, v)
        first_write[v] = step
        if v in staged:
            sizes[dest], kinds[dest], first_write[dest] = max(size(n[v]) for _, n in per_band) * plane(v), \
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
    for v in staged | ({x} if streamed else set()):  # kept rows live from one band to the next: the whole program
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
            if size(n[node.output]):
                macs += node_macs(body, node, size(operand_rows(body, node, u, w, n)), size(n[node.output]))
    # the table of windows: every value's, then every gathered copy's (the rows its op needs), then the new rows and
    # the window in the band before of every buffer that keeps rows
    kept = [v for v in values if v in staged or (streamed and v == x)]
    slots = values + tuple(st.buffer for st in steps if st.kind == "gather") + \
        tuple(f"{v}{part}" for v in kept for part in (":new", ":prev"))
    rows = []
    before: dict[str, Window] = {}
    for w, n in per_band:
        row = [w[v] for v in values]
        for st in steps:
            if st.kind == "gather":
                node = body.nodes[st.node]
                u = node.inputs[st.operand]
                row.append(needed_rows(body, node, u, n[node.output]) if size(n[node.output]) else (w[u][0],) * 2)
        for v in kept:
            row += [n[v], before.get(v, (0, 0))]
        before = w
        rows.append(tuple(row))
    return PatchPlan(band_rows, len(per_band), slots, tuple(rows), tuple(steps), buffers,
                     tuple(sorted(offsets.items())), work, macs, whole, carry,
                     not streamed and result_over_input(body, per_band), streamed, streamed and channels_last)


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
        return max(size(n[node.output]) for _, n in per_band) * body[node.output].shape[3]
    if node.op == "pw_dw":
        u = node.inputs[0]
        return max(size(operand_rows(body, node, u, w, n)) for w, n in per_band if size(n[node.output])) * \
            body[u].shape[3]
    return 0
