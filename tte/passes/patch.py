"""Patch-based execution of the frozen prefix (MCUNetV2's patch-based inference, for the training step).

With a sparse-update scheme the first layers train nothing, yet they hold the largest activations: at 128x128 the int8
input (48 KB) and the stem conv's result (64 KB) are alive at once, the arena's peak.  This pass replaces a leading run
of frozen forward ops of the scheduled graph, from right after the input's ``quantize`` (the int8 input stays an arena
buffer: firmware writes samples into it), by one ``patch`` node (:mod:`tte.ops.patch`) that runs them band by band of
rows, the halo kept in line buffers from band to band or recomputed: only the input (whose last reader it is) and
the result are whole tensors (the result in the input's bytes where every band stores its rows over input rows no
later band reads); the band buffers live in the node's workspace, an arena buffer alive during the node only.

The pass chooses where the stage ends, the band height and the halo mode by the peak SRAM of the whole step (the
arena's lower bound, which the planner reaches on almost every graph, and the kernel scratch; trained parameters and
optimizer state do not change): every end at which the stage's result is the only value crossing the cut gives its
lowest peak, nearly always, with its smallest workspace (bands of one or two rows, either mode; a taller band can
let the result live in the input's bytes); for the ends whose lowest peak is within :data:`TOLERANCE` of the best (not
patching included), every band height of a ladder is planned in both modes, and among all candidates within the
tolerance the one with the fewest extra MACs wins.  The log says what ends the stage, the choice, its peak and its
extra compute; the memory report gives the choice (``MemoryReport.patch``, ``"patch"`` of
``tte plan --json``).

Stage ops (:data:`tte.ops.patch.INNER`) must be frozen: no trained operand, no saturation mask (nothing saved for
backward), no reader outside the stage but the stage's last op's readers.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import TteError
from ..ir import Graph, Node, QuantParams, Value
from ..ir.facts import LABEL
from ..ops.patch import INNER, MAX_CONSTANTS, NHWC_TO_NCHW, PatchPlan, patch_stats, plan_bands, stage_input
from .arena import Buffer, check_overlaps, lower_bound, plan_arena
from .memory import graph_scratch, liveness

TOLERANCE = 1024  # bytes: peaks this close to the best one count as equal, and the fewest extra MACs win
HEIGHTS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)  # band heights tried (and the whole height)


def _layout(spans: list[tuple[str, int, int, int]]) -> tuple[dict[str, int], int]:
    """Offsets of a band program's buffers in its workspace: the arena planner on their lifetimes in the program."""
    plan = plan_arena([Buffer(*s) for s in spans], alignment=4, search=3)
    problems = check_overlaps(plan)
    if problems:  # a planner bug, never the user's: fail loudly
        raise AssertionError(f"workspace plan overlaps: {problems[0]}")
    return dict(plan.offsets), plan.size


def _why_not_inner(g: Graph, node: Node, stage: list[Node], x: str, trained: set[str]) -> str | None:
    """Why ``node`` cannot join the stage ``stage`` (which reads ``x``), or None."""
    if node.op not in INNER:
        return f"'{node.name}' is a {node.op}, which a patch does not run"
    if node.attrs.get("save_mask") or len(node.outputs) != 1:
        return f"'{node.name}' saves a mask for backward"
    if trained & set(node.inputs):
        return f"'{node.name}' reads a trained parameter"
    made = {n.output for n in stage} | {x}
    for u in node.inputs:
        if not g[u].is_const and u not in made:
            return f"'{node.name}' reads '{u}', made before the stage"
    y = g[node.output]
    if len(y.shape) != 4 or y.shape[0] != 1 or y.dtype != "int8":
        return f"'{node.name}' makes a {y.type_str()}, not a batch of one NCHW int8 tensor"
    if node.op == "transpose" and (stage or tuple(node.attrs["perm"]) != NHWC_TO_NCHW):
        return f"'{node.name}' is a transpose other than the channels-last input's"
    if node.op == "add" and (any(g[u].is_const for u in node.inputs) or g[node.inputs[0]].shape != y.shape
                             or g[node.inputs[1]].shape != y.shape):
        return f"'{node.name}' adds a constant or broadcasts"
    if node.op != "transpose" and g[node.inputs[0]].shape[0] != 1:
        return f"'{node.name}' reads a batch of more than one"
    consts = {u for n in stage + [node] for u in n.inputs if g[u].is_const}
    if len(consts) > MAX_CONSTANTS:
        return f"the stage would read more than {MAX_CONSTANTS} constants"
    return None


def _why_not_streamed(g: Graph, start: int, readers: dict[str, list[Node]]) -> str | None:
    """Why the int8 input cannot be streamed, or None: the quantize's result and every view of it before the stage
    must be read by the next view only (a streamed input has no bytes anywhere else)."""
    for node, view in zip(g.nodes[:start - 1], g.nodes[1:start]):
        names = [r.name for r in readers.get(node.output, [])]
        if node.output in g.outputs or names != [view.name]:
            others = sorted(set(names) - {view.name})
            return f"'{node.output}' is also read by {', '.join(repr(o) for o in others) or 'the graph outputs'}"
    return None


def _cut_ok(g: Graph, stage: list[Node], x: str, readers: dict[str, list[Node]]) -> str | None:
    """Why the stage cannot end after its last op, or None: its result must be the only value read after it, and
    the stage input must die in it."""
    inside = {id(n) for n in stage}
    for n in stage[:-1]:
        if n.output in g.outputs or any(id(r) not in inside for r in readers.get(n.output, [])):
            return f"'{n.output}' is also read after '{stage[-1].name}'"
    if x in g.outputs or any(id(r) not in inside for r in readers.get(x, [])):
        return f"the stage input '{x}' is read after it"
    return None


def _body(g: Graph, stage: list[Node], x: str, stream: bool = False) -> Graph:
    """The stage as a graph of its own, from ``x`` to its result; ``stream``: a leading transpose of a channels-last
    input is left out (the streamed rows arrive channel-planar: the body reads its result)."""
    from dataclasses import replace

    if stream and stage[0].op == "transpose":
        stage, x = stage[1:], stage[0].output

    body = Graph(f"stage {stage[0].name} .. {stage[-1].name}")
    body.metadata = dict(g.metadata)
    names = [x] + [u for n in stage for u in n.inputs if g[u].is_const] + [n.output for n in stage]
    for name in dict.fromkeys(names):
        body.values[name] = replace(g[name])
    body.inputs, body.outputs = [x], [stage[-1].output]
    body.nodes = [Node(n.op, n.name, list(n.inputs), list(n.outputs), dict(n.attrs)) for n in stage]
    return body


def _patched(g: Graph, start: int, stage: list[Node], x: str, body: Graph, plan: PatchPlan,
             light: bool = False) -> Graph:
    """``g`` with ``stage`` replaced by a patch node running ``plan``; ``light``: sharing ``g``'s values and nodes
    (a graph only to plan, never to return)."""
    if light:
        out = Graph(g.name)
        out.values, out.nodes = dict(g.values), list(g.nodes)
        out.inputs, out.outputs, out.state, out.state_updates = g.inputs, g.outputs, g.state, g.state_updates
    else:
        out = g.copy()
    name = f"patch({stage[0].name} .. {stage[-1].name})"
    work = out.unique_name(f"{name}.work")
    out.add_value(Value(work, "int8", (max(plan.work_bytes, 1),), QuantParams.per_tensor(1.0, 0)))
    consts = list(dict.fromkeys(u for n in stage for u in n.inputs if g[u].is_const))
    node = Node("patch", name, [x] + consts, [stage[-1].output, work], {"body": body, "plan": plan})
    out.nodes = out.nodes[:start] + [node] + out.nodes[start + len(stage):]
    if not light:
        out.remove_unused_values()
    return out


def heights(rows: int) -> list[int]:
    """The band heights tried for a result of ``rows`` rows."""
    return sorted({h for h in HEIGHTS if h < rows} | {rows})


def _peak(g: Graph) -> int:
    """The part of the peak SRAM a patch changes: the arena and the kernel scratch (trained parameters and optimizer
    state stay as they are; :func:`tte.passes.memory.memory_report` adds them).  The arena by its lower bound, the
    most bytes alive at one step (:func:`tte.passes.arena.lower_bound`): the planner reaches it on almost every
    graph, and a full plan per candidate (its search over insertion orders) would cost seconds per compile."""
    return lower_bound(liveness(g)[0], 4) + graph_scratch(g)


class StreamError(TteError):
    """The input cannot be streamed in rows (``stream_input=True``) into this graph's frozen prefix."""


def stream_input_rows(g: Graph) -> tuple[Graph, list[str]]:
    """:func:`patch_frozen_prefix` with the input streamed (``stream_input=True`` of :func:`tte.pipeline.compile`):
    the stage reads the input in rows from the caller's row source, no whole input in the arena; raises
    :class:`StreamError` saying why when no stage can."""
    return patch_frozen_prefix(g, stream=True)


def patch_frozen_prefix(g: Graph, trained: Iterable[str] | None = None, stream: bool = False) \
        -> tuple[Graph, list[str]]:
    """Run the best leading stage of frozen ops band by band (see the module docstring).  ``trained``: the values
    that train or vary between steps (default: the graph's state and the label).  ``stream``: the stage's input
    comes in rows from a row source (no whole input in the arena; the halo kept, so each row comes once), always
    patched; :class:`StreamError` when no stage can take it."""
    tag = "patch_frozen_prefix"
    trained = set(g.state) | {LABEL} if trained is None else set(trained)
    found = stage_input(g)
    if found is None:
        if stream:
            raise StreamError("cannot stream the input: the graph does not start with the input's quantize")
        return g, [f"{tag}: not patched: the graph does not start with the input's quantize"]
    start, x = found
    run: list[Node] = []
    why = "the graph ends"
    for node in g.nodes[start:]:
        why = _why_not_inner(g, node, run, x, trained)
        if why is not None:
            break
        run.append(node)
    log = [f"{tag}: the frozen run from '{x}' has {len(run)} ops; it ends where {why}"]
    readers: dict[str, list[Node]] = {}
    for n in g.nodes:
        for u in n.inputs:
            readers.setdefault(u, []).append(n)
    # every stage end; its lowest peak comes with its smallest workspace, from bands of one or two rows, the halo
    # recomputed or kept
    def plan(body: Graph, h: int, carry: bool) -> PatchPlan | None:
        try:
            return plan_bands(body, h, _layout, carry, stream, channels_last=stream and run[0].op == "transpose")
        except ValueError:  # a band would read only padding (or a streamed input's halo would be recomputed)
            return None

    modes = (True,) if stream else (False, True)  # a streamed input: each row once, the halo kept

    def ladder(body: Graph, carry: bool) -> list[int]:  # band heights: of the result, or of the first op's result
        return heights(body[body.nodes[0].output if carry else body.outputs[0]].shape[2])

    chain = _why_not_streamed(g, start, readers) if stream else None
    if chain is not None:
        raise StreamError(f"cannot stream the input: {chain}")
    stages = []  # (stage, body, the plan of the smallest workspace, its peak)
    for end in range(0 if stream else 1, len(run)):  # a streamed input may feed a one-op stage
        stage = run[:end + 1]
        if [n.op for n in stage] == ["transpose"] or _cut_ok(g, stage, x, readers) is not None:
            continue
        body = _body(g, stage, x, stream)
        small = [p for carry in modes for p in (plan(body, h, carry) for h in ladder(body, carry)[:2])
                 if p is not None]
        if small:
            smallest = min(small, key=lambda p: (p.work_bytes, p.extra_macs))
            stages.append((stage, body, smallest, _peak(_patched(g, start, stage, x, body, smallest, light=True))))
    if stream and not stages:
        raise StreamError(f"cannot stream the input: no stage of the frozen run from '{x}' ({len(run)} ops; it ends "
                          f"where {why}) can read it in rows; a streamed input needs the first layers frozen (a "
                          f"sparse-update scheme, not the full update), a conv right after the input's quantize, and "
                          f"no later op reading the input")
    base = 2**62 if stream else _peak(g)  # a streamed input is always patched
    best = min([base, *(peak for *_, peak in stages)])
    # per end within reach, the band height with the fewest extra MACs whose peak is within TOLERANCE of the best
    choice: tuple[int, int, Graph | None] = (0, base, None) if base <= best + TOLERANCE else (2**62, base, None)
    tried = len(stages)
    for stage, body, smallest, lowest in stages:
        if lowest > best + TOLERANCE:
            continue
        for kept, h in [(mode, h) for mode in reversed(modes) for h in reversed(ladder(body, mode))]:
            candidate = smallest if (h, kept) == (smallest.band_rows, smallest.carry) else plan(body, h, kept)
            # fewer extra MACs win; equal ones, the lower peak; not patching wins its ties (no band copies)
            if candidate is None or candidate.extra_macs > choice[0] or \
                    (candidate.extra_macs == choice[0] and choice[2] is None):
                continue
            peak = lowest if candidate is smallest else _peak(_patched(g, start, stage, x, body, candidate,
                                                                         light=True))
            tried += candidate is not smallest
            if peak <= best + TOLERANCE and (candidate.extra_macs < choice[0] or peak < choice[1]):
                choice = (candidate.extra_macs, peak, _patched(g, start, stage, x, body, candidate))
    counted = len(stages)
    if choice[2] is None:
        log.append(f"{tag}: not patched: of {counted} stage ends ({tried} stages and band heights planned), none "
                   f"lowers the arena and scratch ({base:,} B) by more than {TOLERANCE:,} B (the best: {best:,} B)")
        return g, log
    out = choice[2]
    node = next(n for n in out.nodes if n.op == "patch")
    unpatched = "the input streamed" if stream else f"unpatched {base:,} B"
    log.append(f"{tag}: {describe(out, node)}; arena and scratch {choice[1]:,} B, {unpatched} (of "
               f"{counted} stage ends, {tried} stages and band heights planned: within {TOLERANCE:,} B of the "
               f"lowest, {best:,} B, the fewest extra MACs)")
    return out, log


def patch_like(g: Graph, like: Node, trained: Iterable[str]) -> Graph:
    """``g`` with the stage, band height and halo mode of ``like``, a patch node of another graph of the same program
    (the training step's, for inference: one band program and one table of rows in the C), or ``g`` unchanged when
    its frozen run does not start with that stage."""
    body = like.attrs["body"]
    plan = like.attrs["plan"]
    out = patch_stage(g, body.nodes[-1].name, plan.band_rows, trained, plan.carry, plan.streamed)
    if out is None and plan.streamed:  # never: inference's frozen run holds the training step's
        raise StreamError(f"cannot stream the input of inference: its frozen run does not end at "
                          f"'{body.nodes[-1].name}' as the training step's does")
    return out or g


def patch_stage(g: Graph, end: str, band_rows: int, trained: Iterable[str] | None = None,
                carry: bool = False, stream: bool = False) -> Graph | None:
    """``g`` with its frozen run up to the op named ``end`` run in bands of ``band_rows`` rows, the halo kept between
    bands (``carry``) or recomputed, the input streamed (``stream``, with ``carry``) or whole, or None when the run
    does not reach that op or cannot end there (``trained`` as for :func:`patch_frozen_prefix`)."""
    trained = set(g.state) | {LABEL} if trained is None else set(trained)
    found = stage_input(g)
    if found is None:
        return None
    start, x = found
    stage: list[Node] = []
    for node in g.nodes[start:]:
        if _why_not_inner(g, node, stage, x, trained) is not None:
            return None
        stage.append(node)
        if node.name == end:
            break
    readers: dict[str, list[Node]] = {}
    for n in g.nodes:
        for u in n.inputs:
            readers.setdefault(u, []).append(n)
    if not stage or stage[-1].name != end or _cut_ok(g, stage, x, readers) is not None:
        return None
    if stream and ([n.op for n in stage] == ["transpose"] or _why_not_streamed(g, start, readers)):
        return None  # a streamed stage leaves the transpose out: no ops; or the input is read elsewhere too
    body = _body(g, stage, x, stream)
    try:
        plan = plan_bands(body, band_rows, _layout, carry, stream, channels_last=stream and stage[0].op == "transpose")
    except ValueError:
        return None
    return _patched(g, start, stage, x, body, plan)


def describe(g: Graph, node: Node) -> str:
    """One line on a patch node: its stage, bands, workspace and extra compute."""
    s = patch_stats(node)
    rows = f"{s['band_rows']} row{'s' if s['band_rows'] > 1 else ''}"
    bands = f"{s['bands']} band{'s' if s['bands'] > 1 else ''}"
    of = f"of {node.attrs['body'].nodes[0].output} (and a like share of the others), halo kept" if s["halo"] == "kept" \
        else f"of {node.output}, halo recomputed"
    if s["input"] == "streamed":
        of += f", the input '{node.inputs[0]}' streamed in rows from the caller's row source"
    return (f"'{s['start']}' .. '{s['end']}' ({s['ops']} ops) -> patch, {bands} of {rows} "
            f"{of}, result {list(g[node.output].shape)}, workspace {s['workspace_bytes']:,} B, extra "
            f"{s['extra_macs']:,} MACs ({s['extra_macs_percent']:.1f}% of the stage's {s['stage_macs']:,})")
