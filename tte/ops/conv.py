"""The conv family: ``conv`` (regular, grouped, depthwise), ``pw_dw`` (a frozen 1x1 expansion fused with
the depthwise conv it feeds), their input and weight gradients, and the fused weight update.

Layouts NCHW / OIHW; weights int8 per output channel, biases int32 in units of s_x * s_w.  With TFLite's
arithmetic the output stage is TFLite's ConvPerChannel one: MBQM of the accumulator by a Q31 multiplier per
channel (tte.reference.fixedpoint), carried to C in tte_quant_params.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, QuantParams
from ..ir.facts import is_depthwise
from ..ir.registry import NOT_DIFFERENTIATED, Shape, register
from ..reference import fixedpoint as fp
from ..reference import numerics as nx
from ..reference import semantics as sem
from . import cgen as cg
from .common import (
    channels_independent,
    channels_training_only,
    finish,
    finish_int,
    mask_output,
    masked,
    never,
    no_flash,
    no_scratch,
    one_literal,
    tflite,
    weight_scales,
    weight_zero_points,
    window_shape,
)
from .update import fused_update_extra, fused_update_shape, sgd, update_attrs

# -- C emitters (the ``emit`` facet) ------------------------------------------------------------


def emit_conv(e: cg.Emitter, node: Node) -> None:
    g = e.g
    x, w, b = node.inputs
    y = node.output
    cg.check_acc(g, node, w)
    geo = cg.conv_geo(node.attrs)
    if tflite(g):  # the Q31 multipliers ride in the quant params
        q, m = e.tflite_quant(x, y, node, tflite_multipliers(g, node), node.name), "NULL"
    else:
        q, m = e.quant(x, y, node), e.array(f"{node.name}_m", conv_multiplier(g, node), "float")
    args = (f"{geo}, {q}, {e.dims(x)}, {e.ptr(x)}, {e.dims(w)}, "
            f"{e.split_weights(w, is_depthwise(g, node))}, "
            f"{e.weight_zero_points(w)}, {e.value_const(b)}, {m}, {e.dims(y)}, {e.ptr(y)}, {e.mask(node)}")
    if is_depthwise(g, node):
        e.call(node, f"tte_conv_dw_s8({args}, tte_scratch, {e.scratch})")
    else:
        # the plan's scratch, free between calls: a pointwise conv stages its input there on Cortex-M
        e.call(node, f"tte_conv_s8({args}, {'tte_scratch' if e.scratch else 'NULL'}, {e.scratch})")


def emit_pw_dw(e: cg.Emitter, node: Node) -> None:
    g = e.g
    x, w1, b1, w2, b2 = node.inputs
    y = node.output
    a = node.attrs
    mq = a["mid_quant"]
    cg.check_acc(g, node, w1)
    cg.check_acc(g, node, w2)
    zx, zm, zy = int(g[x].quant.zero_point), int(mq.zero_point), int(g[y].quant.zero_point)
    geo = cg.conv_geo(a, groups=g[w2].shape[0])
    parts = node.name.split("+")  # the two convs it fuses: their multipliers are named (and shared) as theirs
    h1, h2 = parts if len(parts) == 2 else (f"{node.name}_1", f"{node.name}_2")
    if tflite(g):  # the Q31 multipliers ride in the quant params
        t1, t2 = pw_dw_tflite_multipliers(g, node)
        q1 = e.tflite_quant(x, y, node, t1, h1, z_in=zx, zy=zm, clamp=(a["mid_qmin"], a["mid_qmax"]))
        q2 = e.tflite_quant(x, y, node, t2, h2, z_in=zm, zy=zy)
        m1 = m2 = "NULL"
    else:
        q1, q2 = cg.quant_literal(zx, zm, a["mid_qmin"], a["mid_qmax"]), cg.quant_literal(zm, zy, a["qmin"], a["qmax"])
        f1, f2 = pw_dw_multipliers(g, node)
        n1, n2 = (f"{p}_m" for p in parts) if len(parts) == 2 else (f"{node.name}_m1", f"{node.name}_m2")
        m1, m2 = e.array(n1, f1, "float"), e.array(n2, f2, "float")
    e.call(node, f"tte_conv_pw_dw_s8({q1}, {e.value_const(w1)}, {e.weight_zero_points(w1)}, {e.value_const(b1)}, "
                 f"{m1}, {geo}, {q2}, {e.dims(w2)}, {e.value_const(w2)}, "
                 f"{e.weight_zero_points(w2)}, {e.value_const(b2)}, {m2}, "
                 f"{e.dims(x)}, {e.ptr(x)}, {e.dims(y)}, {e.ptr(y)}, tte_scratch, {e.scratch})")


def emit_conv_grad_input(e: cg.Emitter, node: Node) -> None:
    gy, w = node.inputs
    a = node.attrs
    geo = cg.conv_geo(a)
    in_dims = "&(const tte_dims){%d, %d, %d, %d}" % tuple(a["in_shape"])
    depthwise = e.g[w].shape[1] == 1 and a["groups"] == e.g[w].shape[0] and a["groups"] > 1
    e.call(node, f"tte_conv_grad_input_f32({geo}, {e.dims(w)}, {cg.weights(e, w, depthwise)}, {e.dims(gy)}, "
                 f"{e.ptr(gy)}, {in_dims}, {e.ptr(node.output)}, tte_fscratch)")


def emit_conv_weight_update(e: cg.Emitter, node: Node) -> None:
    gy, x, param, factor = node.inputs[:4]
    aux = node.inputs[4] if len(node.inputs) > 4 else None
    a = node.attrs
    kh, kw = a["kernel"]
    dw = 1 if a["depthwise"] else 0
    geo = cg.conv_geo(a)
    e.call(node, f"tte_conv_weight_update_s8({geo}, {dw}, {a['channels']}, {e.dims(x)}, {cg.saved(e, x)}, "
                 f"{e.dims(gy)}, {e.ptr(gy)}, {e.value_const(factor)}, {cg.sgd_params(e, node, aux)}, {e.dims(param)}, "
                 f"{e.ptr(param)}, tte_fscratch, {e.scratch})")


def emit_conv_grad_weight(e: cg.Emitter, node: Node) -> None:
    gy, x = node.inputs
    a = node.attrs
    geo = cg.conv_geo(a)
    o = e.g[gy].shape[1]
    w_dims = "&(const tte_dims){%d, %d, %d, %d}" % (o, e.g[x].shape[1] // a["groups"], *a["kernel"])
    e.call(node, f"tte_conv_grad_weight_f32({geo}, {1 if a['depthwise'] else 0}, {a['channels']}, {e.dims(x)}, "
                 f"{cg.saved(e, x)}, {e.dims(gy)}, {e.ptr(gy)}, {w_dims}, {e.ptr(node.output)})")


# -- conv ----------------------------------------------------------------------------------------------


def conv_shape(g: Graph, n: Node) -> Shape:
    x, w = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if len(x) != 4 or len(w) != 4:
        raise ValueError(f"conv expects 4-d input and weight, got {x} and {w}")
    groups = n.attrs["groups"]
    if x[1] != w[1] * groups:
        raise ValueError(f"conv input has {x[1]} channels, weight expects {w[1]} x {groups} groups")
    if w[0] % groups:
        raise ValueError(f"conv output channels {w[0]} not divisible by groups {groups}")
    if len(n.inputs) > 2 and g[n.inputs[2]].shape != (w[0],):
        raise ValueError(f"conv bias shape {g[n.inputs[2]].shape} != ({w[0]},)")
    return window_shape(x, w[2:], n.attrs["strides"], n.attrs["pads"], w[0])


def conv_accumulator(g: Graph, node: Node, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The exact int64 accumulator of a conv (point 1 of the semantics), NCHW."""
    a = node.attrs
    return _conv_acc(x, g[node.inputs[0]].quant, w, g[node.inputs[1]].quant, b, a["strides"], a["pads"], a["groups"])


def _conv_acc(x, xq: QuantParams, w, wq: QuantParams, b, strides, pads, groups) -> np.ndarray:
    xc = nx.pad(nx.centered(x, xq), pads)
    wc = nx.weight_centered(w, wq)
    kh, kw = w.shape[2:]
    cout, cin_g = w.shape[0], w.shape[1]
    cout_g = cout // groups
    n, cin = x.shape[:2]
    ho = (xc.shape[2] - kh) // strides[0] + 1
    wo = (xc.shape[3] - kw) // strides[1] + 1
    if cin_g == 1 and groups == cin:  # depthwise (channel multiplier cout_g)
        xe = np.repeat(xc, cout_g, axis=1) if cout_g > 1 else xc
        acc = np.zeros((n, cout, ho, wo))
        for i in range(kh):
            for j in range(kw):
                rows = slice(i, i + strides[0] * (ho - 1) + 1, strides[0])
                cols = slice(j, j + strides[1] * (wo - 1) + 1, strides[1])
                acc += xe[:, :, rows, cols] * wc[:, 0, i, j][None, :, None, None]
    else:
        acc = np.empty((n, cout, ho, wo))
        win = nx.windows(xc, (kh, kw), strides)  # N, C, Ho, Wo, kh, kw
        for gi in range(groups):
            wg = wc[gi * cout_g : (gi + 1) * cout_g]  # O_g, C_g, kh, kw
            xg = win[:, gi * cin_g : (gi + 1) * cin_g]
            acc[:, gi * cout_g : (gi + 1) * cout_g] = np.einsum("nchwij,ocij->nohw", xg, wg, optimize=True)
    return nx.exact(acc) + b.astype(np.int64)[None, :, None, None]


def conv_multiplier(g: Graph, node: Node) -> np.ndarray:
    """M_c = s_x * s_w[c] / s_y (also the gemm's)."""
    xq, wq, yq = (g[n].quant for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    return sem.multiplier(sem.f64(xq.scale) * sem.f64(wq.scale), yq.scale)


def tflite_multipliers(g: Graph, node: Node) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's per-output-channel (Q31 multiplier, exponent) of a conv: s_x * s_w[c] / s_y in double."""
    xq, wq, yq = (g[n].quant for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    channels = g[node.inputs[1]].shape[0]
    return fp.conv_multipliers(xq.scale, np.broadcast_to(np.float32(wq.scale), (channels,)), yq.scale)


def requantize_channels(acc: np.ndarray, multipliers: tuple[np.ndarray, np.ndarray], zero_point: int) -> np.ndarray:
    """TFLite's output stage before the clamp: MBQM of the int32-saturated accumulator by channel (axis 1)."""
    shape = (1, -1) + (1,) * (acc.ndim - 2)
    m, n = (np.asarray(v).reshape(shape) for v in multipliers)
    return fp.mbqm(sem.saturate_int32(acc), m, n) + int(zero_point)


def conv(g: Graph, node: Node, x, w, b):
    acc = conv_accumulator(g, node, x, w, b)
    zy = nx.zero_point(g[node.output].quant)
    if tflite(g):
        return finish_int(node, requantize_channels(acc, tflite_multipliers(g, node), zy))
    m = np.broadcast_to(conv_multiplier(g, node), (w.shape[0],)).reshape(1, -1, 1, 1)
    return finish(node, sem.preround(acc, m), zy)


def conv_grad(b, node: Node, gy: str) -> None:
    x, w, bias = node.inputs
    dz = masked(b, node, gy)
    a = node.attrs
    if b.wants(x):
        b.contribute(x, b.emit("conv_grad_input", [dz, w], f"{x}.grad_from.{node.name}", strides=a["strides"],
                               pads=a["pads"], groups=a["groups"], in_shape=b.g[x].shape))
    if b.wants(w):
        b.param_grad(w, b.emit("conv_grad_weight", [dz, b.saved(x)], f"{w}.grad", strides=a["strides"],
                               pads=a["pads"], groups=a["groups"], kernel=b.g[w].shape[2:], channels=b.channels(w),
                               depthwise=is_depthwise(b.g, node)))
    if b.wants(bias):
        b.param_grad(bias, b.emit("bias_grad", [dz], f"{bias}.grad"))


def conv_scratch(g: Graph, n: Node) -> int:
    """A depthwise conv computes one output plane into scratch, so that it can run in place."""
    return g[n.outputs[0]].shape[2] * g[n.outputs[0]].shape[3] if is_depthwise(g, n) else 0


def conv_channels(g: Graph, n: Node, c) -> None:
    x, y = n.inputs[0], n.outputs[0]
    if is_depthwise(g, n):  # input and output channels are the same channels
        c.union(x, y)
    elif n.attrs["groups"] > 1:  # grouped: channels stay inside their group
        c.freeze(x)
        c.freeze(y)
    else:
        channels_independent(g, n, c)


def conv_flash(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """The per-channel multipliers (TFLite arithmetic: Q31 multipliers and exponents), and the weight's zero
    points when not all zero."""
    multipliers = list(tflite_multipliers(g, n)) if tflite(g) else [conv_multiplier(g, n)]
    return [*multipliers, *weight_zero_points(g, n.inputs[1])], 0


def grad_input_flash(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """An input gradient reads its weight in real units: the per-channel scales (and zero points)."""
    return weight_scales(g, n.inputs[1]), 0


register(name="conv", operands=("int8", "int8", "int32"), out_dtype="int8", shape=conv_shape,
         attrs=("strides", "pads", "groups", "qmin", "qmax"), requantizes=True, extra=mask_output, optional=0,
         kernel=conv, grad=conv_grad, emit=emit_conv,
         runtime=("tte_conv_s8.c", "tte_conv_dw_s8.c"), scratch=conv_scratch, in_place=is_depthwise, alias=False,
         flash=conv_flash, code_bytes=1600, channels=conv_channels, layer=True, onnx=("Conv", "QLinearConv"))


# -- pw_dw ---------------------------------------------------------------------------------------------


def pw_dw_shape(g: Graph, n: Node) -> Shape:
    x, w1, w2 = g[n.inputs[0]].shape, g[n.inputs[1]].shape, g[n.inputs[3]].shape
    if w1[2:] != (1, 1) or w1[1] != x[1] or w2[1] != 1 or w2[0] != w1[0]:
        raise ValueError(f"pw_dw expects a 1x1 conv {w1} reading {x} and a depthwise conv {w2} on its output")
    return window_shape((x[0], w1[0], x[2], x[3]), w2[2:], n.attrs["strides"], n.attrs["pads"], w2[0])


def pw_dw(g: Graph, node: Node, x, w1, b1, w2, b2):
    """A pointwise conv feeding a depthwise conv, fused (tte.passes.forward): the same integers as the
    two convs, computed here whole; the C kernel goes one intermediate channel plane at a time."""
    a = node.attrs
    xq, w1q, w2q = (g[n].quant for n in (node.inputs[0], node.inputs[1], node.inputs[3]))
    mq, yq = a["mid_quant"], g[node.output].quant
    acc = _conv_acc(x, xq, w1, w1q, b1, (1, 1), (0, 0, 0, 0), 1)
    if tflite(g):
        t1, t2 = pw_dw_tflite_multipliers(g, node)
        mid = np.clip(requantize_channels(acc, t1, nx.zero_point(mq)), a["mid_qmin"], a["mid_qmax"]).astype(np.int8)
        acc = _conv_acc(mid, mq, w2, w2q, b2, a["strides"], a["pads"], w2.shape[0])
        return finish_int(node, requantize_channels(acc, t2, nx.zero_point(yq)))
    m1 = sem.multiplier(sem.f64(xq.scale) * sem.f64(w1q.scale), mq.scale).reshape(1, -1, 1, 1)
    mid = sem.round_clamp(sem.preround(acc, m1), nx.zero_point(mq), a["mid_qmin"], a["mid_qmax"])
    acc = _conv_acc(mid, mq, w2, w2q, b2, a["strides"], a["pads"], w2.shape[0])
    m2 = sem.multiplier(sem.f64(mq.scale) * sem.f64(w2q.scale), yq.scale).reshape(1, -1, 1, 1)
    return finish(node, sem.preround(acc, m2), nx.zero_point(yq))


def pw_dw_scratch(g: Graph, n: Node) -> int:
    """One plane of the expanded tensor."""
    return g[n.inputs[0]].shape[2] * g[n.inputs[0]].shape[3]


def speed_scratch(g: Graph, n: Node) -> int:
    """The kernel scratch with which a conv runs fastest on Cortex-M (the Arm DSP paths; ``--favor speed`` gives
    scratch up to this where the budget has room, :func:`tte.plan.with_speed_scratch`): a fused 1x1 + depthwise conv
    whose 1x1 weights are symmetric, with channels in groups of 4 and an even width, stages its whole input as
    halfword pairs beside its padded plane (tte_conv_pw_dw_s8's staged path: with less, bands of rows, the rows between
    bands recomputed); a pointwise conv stages 32 positions of its input (tte_conv_s8); a depthwise conv copies its
    input plane inside its padding beside its output plane (tte_conv_dw_s8).  0 for any other op."""
    if n.op == "pw_dw":
        (_, c, h, w), (pt, pl, pb, pr) = g[n.inputs[0]].shape, n.attrs["pads"]
        if c % 4 or w % 2 or weight_zero_points(g, n.inputs[1]):
            return 0
        plane = ((h + pt + pb) * (w + pl + pr) + 3) // 4 * 4
        return plane + (c // 4 + 1) // 2 * ((h * w + 1) // 2) * 32
    if n.op == "conv" and is_depthwise(g, n):  # its output plane, then its input plane inside its padding
        (_, _, h, w), (pt, pl, pb, pr) = g[n.inputs[0]].shape, n.attrs["pads"]
        ho, wo = g[n.outputs[0]].shape[2:]
        return (ho * wo + 3) // 4 * 4 + (h + pt + pb) * (w + pl + pr)
    if n.op == "conv" and n.attrs["groups"] == 1 and tuple(g[n.inputs[1]].shape[2:]) == (1, 1):
        c = g[n.inputs[0]].shape[1]
        return 256 * (c // 4) + (c + 3) // 4 * 4  # 32 positions of its channel groups, and a joined weight row
    return 0


def pw_dw_grad(b, node: Node, gy: str) -> None:
    raise AssertionError("pw_dw fuses frozen layers only (tte.passes.forward): no gradient passes through it")


def pw_dw_flash(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """Both convs' multipliers and non-zero weight zero points."""
    multipliers = [v for pair in pw_dw_tflite_multipliers(g, n) for v in pair] if tflite(g) else \
        list(pw_dw_multipliers(g, n))
    return [*multipliers, *weight_zero_points(g, n.inputs[1]), *weight_zero_points(g, n.inputs[3])], 0


def pw_dw_multipliers(g: Graph, n: Node) -> tuple[np.ndarray, np.ndarray]:
    """The 1x1 conv's multipliers into the intermediate's parameters, and the depthwise conv's out of them."""
    x, w1, w2, mid = n.inputs[0], n.inputs[1], n.inputs[3], n.attrs["mid_quant"]
    return (sem.multiplier(sem.f64(g[x].quant.scale) * sem.f64(g[w1].quant.scale), mid.scale),
            sem.multiplier(sem.f64(mid.scale) * sem.f64(g[w2].quant.scale), g[n.outputs[0]].quant.scale))


def pw_dw_tflite_multipliers(g: Graph, n: Node):
    """TFLite's (Q31 multipliers, exponents) of the 1x1 conv into the intermediate and of the depthwise conv."""
    x, w1, w2, mid = n.inputs[0], n.inputs[1], n.inputs[3], n.attrs["mid_quant"]
    c1, c2 = g[w1].shape[0], g[w2].shape[0]
    return (fp.conv_multipliers(g[x].quant.scale, np.broadcast_to(np.float32(g[w1].quant.scale), (c1,)), mid.scale),
            fp.conv_multipliers(mid.scale, np.broadcast_to(np.float32(g[w2].quant.scale), (c2,)),
                                g[n.outputs[0]].quant.scale))


register(name="pw_dw", operands=("int8", "int8", "int32", "int8", "int32"), out_dtype="int8", shape=pw_dw_shape,
         attrs=("strides", "pads", "mid_quant", "mid_qmin", "mid_qmax", "qmin", "qmax"), requantizes=True,
         extra=None, optional=0, kernel=pw_dw, grad=pw_dw_grad, emit=emit_pw_dw, runtime=("tte_conv_pw_dw_s8.c",),
         scratch=pw_dw_scratch, in_place=never, alias=False,
         flash=pw_dw_flash, code_bytes=1800, channels=channels_training_only,
         layer=False, onnx=())


# -- backward ------------------------------------------------------------------------------------------


def conv_grad_input(g: Graph, node: Node, gy, w):
    """dL/dx: for each input element, the sum over output channels o of its group (ascending), then taps
    i, j (ascending) of dz[o, ho, wo] * W[o, c, i, j], over the taps that reach it."""
    F32 = nx.F32
    n, c, h, wd = node.attrs["in_shape"]
    top, left, bottom, right = node.attrs["pads"]
    sh, sw = node.attrs["strides"]
    groups = node.attrs["groups"]
    wr = nx.weight_real(g, node.inputs[1], w)
    o, cg, kh, kw = wr.shape
    og = o // groups
    ho, wo = gy.shape[2:]
    dx = np.zeros((n, c, h + top + bottom, wd + left + right), F32)
    for gi in range(groups):
        cs = slice(gi * cg, (gi + 1) * cg)
        for oc in range(gi * og, (gi + 1) * og):
            dz = gy[:, oc:oc + 1]
            for i in range(kh):
                rows = slice(i, i + sh * (ho - 1) + 1, sh)
                for j in range(kw):
                    cols = slice(j, j + sw * (wo - 1) + 1, sw)
                    term = (dz * wr[oc, :, i, j][None, :, None, None]).astype(F32)
                    dx[:, cs, rows, cols] = (dx[:, cs, rows, cols] + term).astype(F32)
    return dx[:, :, top:top + h, left:left + wd].astype(F32)


def _depthwise_grad_input(g: Graph, node: Node) -> bool:
    w = g[node.inputs[1]].shape
    return node.attrs["groups"] > 1 and w[1] == 1 and w[0] == node.attrs["groups"]


def conv_grad_input_scratch(g: Graph, n: Node) -> int:
    """One float input plane, accumulated then stored (so that a depthwise one can run in place)."""
    return 4 * n.attrs["in_shape"][2] * n.attrs["in_shape"][3]


register(name="conv_grad_input", operands=("float32", "int8"), out_dtype="float32", shape=lambda g, n:
         tuple(n.attrs["in_shape"]), attrs=("strides", "pads", "groups", "in_shape"), requantizes=False, extra=None,
         optional=0, kernel=conv_grad_input, grad=NOT_DIFFERENTIATED, emit=emit_conv_grad_input,
         runtime=("tte_conv_grad_input_f32.c",), scratch=conv_grad_input_scratch, in_place=_depthwise_grad_input,
         alias=False, flash=grad_input_flash, code_bytes=1400, channels=channels_training_only, layer=False, onnx=())


def conv_grad_weight_shape(g: Graph, n: Node) -> Shape:
    o = g[n.inputs[0]].shape[1]
    kh, kw = n.attrs["kernel"]
    k = n.attrs["channels"]
    if n.attrs["depthwise"]:
        return (k, 1, kh, kw)
    return (o, k, kh, kw)


def conv_grad_weight(g: Graph, node: Node, gy, x):
    """dL/dW in real units for the leading ``channels`` input channels (depthwise: channels): for each
    weight, the sum over samples n, then output rows and columns (ascending) of dz * x (padding skipped,
    i.e. adding zero)."""
    k = node.attrs["channels"]
    xr = nx.pad(nx.real(g, node.inputs[1], x), node.attrs["pads"])
    kh, kw = node.attrs["kernel"]
    win = nx.windows(xr, (kh, kw), node.attrs["strides"])  # N, C, Ho, Wo, kh, kw
    n, o = gy.shape[:2]
    pos = gy.shape[2] * gy.shape[3]
    dz = gy.reshape(n, o, pos).transpose(0, 2, 1).reshape(n * pos, o)  # (positions, O)
    xw = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * pos, win.shape[1], kh, kw)  # (positions, C, kh, kw)
    if node.attrs["depthwise"]:
        terms = dz[:, :k, None, None] * xw[:, :k]  # positions, k, kh, kw
        return nx.seq_sum(terms, axis=0)[:, None].astype(nx.F32)
    groups = node.attrs["groups"]
    og, cg = o // groups, xw.shape[1] // groups
    parts = []
    for gi in range(groups):
        xg = xw[:, gi * cg:(gi + 1) * cg]
        parts.append(nx.seq_sum(dz[:, gi * og:(gi + 1) * og, None, None, None] * xg[:, None], axis=0))
    return np.concatenate(parts, axis=0)[:, :k].astype(nx.F32)


register(name="conv_grad_weight", operands=("float32", "int8"), out_dtype="float32", shape=conv_grad_weight_shape,
         attrs=("strides", "pads", "groups", "kernel", "channels", "depthwise"), requantizes=False, extra=None,
         optional=0, kernel=conv_grad_weight, grad=NOT_DIFFERENTIATED, emit=emit_conv_grad_weight,
         runtime=("tte_conv_grad_weight_f32.c",), scratch=no_scratch, in_place=never, alias=False,
         flash=no_flash, code_bytes=1200,
         channels=channels_training_only, layer=False, onnx=())


def conv_weight_update(g: Graph, node: Node, gy, x, param, factor, aux=None):
    """conv_grad_weight then sgd, without a gradient buffer in C (same numbers as the two ops)."""
    return sgd(g, node, param, conv_grad_weight(g, node, gy, x), factor, aux)


def conv_weight_update_scratch(g: Graph, n: Node) -> int:
    """One output channel's gradient slice of floats."""
    kh, kw = n.attrs["kernel"]
    return (1 if n.attrs["depthwise"] else n.attrs["channels"]) * kh * kw * 4


register(name="conv_weight_update", operands=("float32", "int8", "int8", "float32", "*"), out_dtype="same:2",
         shape=fused_update_shape(2, conv_grad_weight_shape),
         attrs=("strides", "pads", "groups", "kernel", "depthwise") + update_attrs, requantizes=False,
         extra=fused_update_extra(4), optional=1, kernel=conv_weight_update, grad=NOT_DIFFERENTIATED,
         emit=emit_conv_weight_update, runtime=("tte_conv_weight_update_s8.c",), scratch=conv_weight_update_scratch,
         in_place=never, alias=False,
         flash=one_literal, code_bytes=1700, channels=channels_training_only, layer=False, onnx=())
