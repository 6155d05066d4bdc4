"""The patch family: ``patch``, a stage of frozen forward ops run band by band of its result's rows, as MCUNetV2 runs
the first layers of a network for inference (tte.passes.patch makes it).

For each band, every op of the stage computes only the rows of its own result that the band needs (the rows its
readers' windows reach) into a *band buffer*: those rows of every channel, NCHW (channel c's rows at
``c * rows * W``).  The halo, rows that two bands read, is either recomputed band after band (bands of ``band_rows``
rows of the stage's result), or *kept* (``PatchPlan.carry``, line buffers; bands of ``band_rows`` rows of the first
op's result, and a like share of every other op's): an op then computes only the rows no earlier band computed, into
a staging buffer (``value:new``), the rows its buffer keeps from earlier bands move to their places (``keep``), and
the new rows join them (``merge``); such a buffer lives across bands, and no MAC is spent twice but the 1x1 half of
a ``pw_dw``, which expands the kept rows it reads again.  No whole intermediate tensor of the stage exists: only the
stage's input and result are whole tensors, in the arena (the result in the input's bytes where
:func:`result_over_input` allows).  The band buffers live in the node's second output,
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

import numpy as np

from ..ir import Graph, Node
from ..ir.facts import is_depthwise
from ..ir.registry import OPS, register
from ..reference import semantics as sem
from . import cgen as cg
from .bands import PatchPlan, Window, plan_bands, window_geometry  # noqa: F401 (PatchPlan, plan_bands: the family's API)
from .bands import size as _size
from .common import channels_training_only, no_scratch, requantize_multiplier, tflite
from .conv import conv_multiplier, pw_dw_multipliers, pw_dw_tflite_multipliers, tflite_multipliers
from .elementwise import add_params

INNER = ("conv", "pw_dw", "add", "requantize", "transpose")
MAX_CONSTANTS = 1024  # the constants (weights, biases) one patch node reads: its operands after the stage input
NHWC_TO_NCHW = (0, 3, 1, 2)

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
    if plan.channels_last:  # the row source gives the stage channel-planar rows
        x = np.transpose(x, NHWC_TO_NCHW)
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
        return x if u == xin and not plan.streamed else _view(work, at[u], body[u].shape, _size(window))

    for b in range(plan.bands):
        win = dict(zip(plan.values, plan.rows[b]))
        if not plan.streamed:
            win[xin] = (0, body[xin].shape[2])
        gathered: dict[tuple[int, int], Window] = {}
        for step in plan.steps:
            if step.kind == "store":
                w = win[yout]
                y[:, :, w[0]:w[1]] = buffer(yout, w)
                continue
            if step.kind == "fetch":  # the row source's rows: those of the whole input the caller holds
                new, have = win[f"{xin}:new"], win[xin]
                buffer(xin, have)[:, :, new[0] - have[0]:new[1] - have[0]] = x[:, :, new[0]:new[1]]
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
            "halo": "kept" if plan.carry else "recomputed", "input": "streamed" if plan.streamed else "arena",
            "workspace_bytes": plan.work_bytes, "stage_macs": plan.whole_macs, "extra_macs": plan.extra_macs,
            "extra_macs_percent": round(100.0 * plan.extra_macs / max(plan.whole_macs, 1), 2)}


def stage_input(g: Graph) -> tuple[int, str] | None:
    """The index of the first node after the input's quantize (and views of it), and the value it reads; None when
    the graph does not start with the input's quantize."""
    if not g.nodes or g.nodes[0].op != "quantize":
        return None
    x, i = g.nodes[0].output, 1
    while i < len(g.nodes) and OPS[g.nodes[i].op].alias and g.nodes[i].inputs[0] == x:
        x, i = g.nodes[i].output, i + 1
    return i, x


def streamed_values(g: Graph) -> set[str]:
    """The values a streamed input's patch node holds in no arena buffer: the int8 input and its views up to the
    stage's input (:func:`stage_input`; empty unless ``g`` has a patch node whose plan streams)."""
    if not any(n.op == "patch" and n.attrs["plan"].streamed for n in g.nodes):
        return set()
    start, _ = stage_input(g)
    return {n.output for n in g.nodes[:start]}


# -- facets -----------------------------------------------------------------------------------------------------


def patch_shape(g: Graph, n: Node):
    body = n.attrs["body"]
    x = n.inputs[0]
    want = tuple(body[body.inputs[0]].shape)
    if n.attrs["plan"].channels_last:  # a streamed channels-last input
        want = tuple(want[i] for i in (0, 2, 3, 1))
    if tuple(g[x].shape) != want:
        raise ValueError(f"patch reads {g[x].shape}, its stage expects {list(want)}")
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
               f"still need from band to band (line buffers: only a fused 1x1 + depthwise op expands its kept rows "
               f"again)" + (f"; the input {x} is no tensor in the arena: each band asks the caller's row source "
                            f"for its new rows, each row once, in order" if plan.streamed else ""))
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
        return e.ptr(x) if v == xin and not plan.streamed else names[v]

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
        if step.kind == "fetch":
            n, c, _, w = body[xin].shape
            call(f"tte_patch_fetch_s8(tte_row_source_now, tte_row_context_now, {n * c}, {w}, {rows(xin + ':new')}, "
                 f"{rows(xin)}, {names[xin]})", f"the new rows of the input {x}, from the caller's row source",
                 xin + ":new")
            continue
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
                     f"the rows of {v} earlier bands made that this band keeps, to their places")
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
             f"{inner.op} {inner.name}" + (": its new rows" if step.buffer != inner.output else ""),
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
         scratch=no_scratch, in_place=patch_in_place, alias=False, flash=patch_flash, code_bytes=1050,
         channels=channels_training_only, layer=False, onnx=())

