"""The pool family: average pool (``count_include_pad`` 0 or 1), global average pool, max pool, and
their gradients.  Pools requantize: the window's sum (or maximum) times a multiplier, rounded and
clamped (tte.reference.semantics).  With TFLite's arithmetic (tte.reference.fixedpoint): AVERAGE_POOL_2D's
integer average of the raw values (rounded half away from zero), MEAN for the global average pool, and
TFLite's Requantize where in and out parameters differ (TFLite's pools require them equal)."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from ..ir.registry import Shape, register
from ..reference import fixedpoint as fp
from ..reference import numerics as nx
from ..reference import semantics as sem
from . import cgen as cg
from .common import (
    attr_shape,
    channels_follow,
    finish,
    finish_int,
    mask_output,
    masked,
    never,
    no_scratch,
    one_rescale,
    requantize_multiplier,
    rescale_preround,
    tflite,
    tflite_rescale,
    window_shape,
)
from .update import TRAINING_ONLY

F32 = nx.F32


# -- C emitters (the ``emit`` facet) ------------------------------------------------------------


def emit_avgpool(e: cg.Emitter, node: Node) -> None:
    g = e.g
    x, y = node.inputs[0], node.output
    if tflite(g):
        m, n = requantize_multiplier(g, x, y)
        e.call(node, f"tte_avgpool_tflite_s8({cg.pool_geo(node.attrs)}, {e.quant(x, y, node)}, "
                     f"{node.attrs['count_include_pad']}, {e.dims(x)}, {e.ptr(x)}, {m}, {n}, {e.dims(y)}, {e.ptr(y)}, "
                     f"{e.mask(node)})")
        return
    table = avgpool_table(g, node)
    e.call(node, f"tte_avgpool_s8({cg.pool_geo(node.attrs)}, {e.quant(x, y, node)}, {node.attrs['count_include_pad']}, "
                 f"{e.dims(x)}, {e.ptr(x)}, {e.array(node.name + '_m', table, 'float')}, {e.dims(y)}, {e.ptr(y)}, "
                 f"{e.mask(node)})")


def emit_global_avgpool(e: cg.Emitter, node: Node) -> None:
    g = e.g
    x, y = node.inputs[0], node.output
    hw = g[x].shape[2] * g[x].shape[3]
    if tflite(g):
        m, n = fp.mean_multiplier(g[x].quant.scale, g[y].quant.scale, hw)
        e.call(node, f"tte_global_avgpool_tflite_s8({e.quant(x, y, node)}, {m}, {n}, {e.dims(x)}, {e.ptr(x)}, "
                     f"{e.ptr(y)}, {e.mask(node)})")
        return
    m = sem.multiplier(g[x].quant.scale, sem.f64(g[y].quant.scale) * hw)
    e.call(node, f"tte_global_avgpool_s8({e.quant(x, y, node)}, {cg.c_float(m)}, {e.dims(x)}, {e.ptr(x)}, {e.ptr(y)}, "
                 f"{e.mask(node)})")


def emit_maxpool(e: cg.Emitter, node: Node) -> None:
    g = e.g
    x, y = node.inputs[0], node.output
    if tflite(g):  # TFLite's Q31 multiplier rides in the quant params; the float one is unused
        m, n = requantize_multiplier(g, x, y)
        q = e.tflite_quant(x, y, node, ([m], [n]), node.name)
        e.call(node, f"tte_maxpool_s8({cg.pool_geo(node.attrs)}, {q}, 0.0f, {e.dims(x)}, {e.ptr(x)}, {e.dims(y)}, "
                     f"{e.ptr(y)}, {e.mask(node)})")
        return
    e.call(node, f"tte_maxpool_s8({cg.pool_geo(node.attrs)}, {e.quant(x, y, node)}, {cg.rescale(g, x, y)}, "
                 f"{e.dims(x)}, {e.ptr(x)}, {e.dims(y)}, {e.ptr(y)}, {e.mask(node)})")


def emit_avgpool_grad(e: cg.Emitter, node: Node) -> None:
    a = node.attrs
    geo = cg.pool_geo(a)
    in_dims = "&(const tte_dims){%d, %d, %d, %d}" % tuple(a["in_shape"])
    gy = node.inputs[0]
    e.call(node, f"tte_avgpool_grad_f32({geo}, {a['count_include_pad']}, {e.dims(gy)}, {e.ptr(gy)}, {in_dims}, "
                 f"{e.ptr(node.output)})")


def emit_global_avgpool_grad(e: cg.Emitter, node: Node) -> None:
    in_dims = "&(const tte_dims){%d, %d, %d, %d}" % tuple(node.attrs["in_shape"])
    e.call(node, f"tte_global_avgpool_grad_f32({in_dims}, {e.ptr(node.inputs[0])}, {e.ptr(node.output)})")


def emit_maxpool_grad(e: cg.Emitter, node: Node) -> None:
    gy, x = node.inputs
    a = node.attrs
    geo = cg.pool_geo(a)
    e.call(node, f"tte_maxpool_grad_f32({geo}, {e.dims(x)}, {e.ptr(x)}, {e.dims(gy)}, {e.ptr(gy)}, "
                 f"{e.ptr(node.output)})")


def pool_shape(g: Graph, n: Node) -> Shape:
    x = g[n.inputs[0]].shape
    return window_shape(x, n.attrs["kernel"], n.attrs["strides"], n.attrs["pads"], x[1])


def avgpool_accumulator(g: Graph, node: Node, x) -> tuple[np.ndarray, np.ndarray]:
    """(sum of q - z over each window, element count of each window)."""
    pads, kernel, strides = node.attrs["pads"], node.attrs["kernel"], node.attrs["strides"]
    xc = nx.pad(nx.centered(x, g[node.inputs[0]].quant), pads)
    acc = nx.exact(nx.windows(xc, kernel, strides).sum(axis=(-2, -1)))
    if node.attrs["count_include_pad"]:
        count = np.full(acc.shape[2:], kernel[0] * kernel[1])
    else:
        ones = nx.pad(np.ones((1, 1) + x.shape[2:]), pads)
        count = nx.exact(nx.windows(ones, kernel, strides).sum(axis=(-2, -1)))[0, 0]
    return acc, count


def avgpool(g: Graph, node: Node, x):
    acc, count = avgpool_accumulator(g, node, x)
    qx, qy = g[node.inputs[0]].quant, g[node.output].quant
    if tflite(g):  # the raw values' sum over the count, rounded half away from zero, then TFLite's Requantize
        zx = nx.zero_point(qx)
        average = np.where(count == 0, zx, fp.average(acc + zx * count, np.maximum(count, 1)))
        return finish_int(node, tflite_rescale(g, node.inputs[0], node.output, average))
    m = sem.multiplier(qx.scale, sem.f64(qy.scale) * count)
    return finish(node, sem.preround(acc, m), nx.zero_point(qy))


def avgpool_grad_rule(b, node: Node, gy: str) -> None:
    x = node.inputs[0]
    if b.wants(x):
        a = node.attrs
        b.contribute(x, b.emit("avgpool_grad", [masked(b, node, gy)], f"{x}.grad_from.{node.name}",
                               kernel=a["kernel"], strides=a["strides"], pads=a["pads"],
                               count_include_pad=a["count_include_pad"], in_shape=b.g[x].shape))


def avgpool_table(g: Graph, n: Node) -> np.ndarray:
    """multipliers[count] = s_x / (s_y * count) for every element count a window can have (entry 0 unused)."""
    kh, kw = n.attrs["kernel"]
    counts = np.arange(kh * kw + 1, dtype=np.float64)
    counts[0] = 1  # unused
    return sem.multiplier(g[n.inputs[0]].quant.scale, sem.f64(g[n.outputs[0]].quant.scale) * counts)


def avgpool_flash(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """The multiplier per window count, or (TFLite arithmetic) a multiplier and exponent literal."""
    return ([], 2) if tflite(g) else ([avgpool_table(g, n)], 0)


register(name="avgpool", operands=("int8",), out_dtype="int8", shape=pool_shape,
         attrs=("kernel", "strides", "pads", "count_include_pad", "qmin", "qmax"), requantizes=True,
         extra=mask_output, optional=0, kernel=avgpool, grad=avgpool_grad_rule, emit=emit_avgpool,
         runtime=("tte_avgpool_s8.c", "tte_avgpool_tflite_s8.c"), scratch=no_scratch, in_place=never, alias=False,
         flash=avgpool_flash, code_bytes=400,
         channels=channels_follow, layer=False, onnx=("AveragePool", "QLinearAveragePool"))


def global_avgpool(g: Graph, node: Node, x):
    qx, qy = g[node.inputs[0]].quant, g[node.output].quant
    if tflite(g):  # TFLite's MEAN: MBQM(sum - z_x * H * W) with 1 / (H * W) folded into the multiplier
        hw = x.shape[2] * x.shape[3]
        total = x.astype(np.int64).sum(axis=(2, 3), keepdims=True)
        return finish_int(node, fp.mean(total, nx.zero_point(qx), hw, *fp.mean_multiplier(qx.scale, qy.scale, hw),
                                        nx.zero_point(qy)))
    acc = x.astype(np.int64).sum(axis=(2, 3), keepdims=True) - nx.zero_point(qx) * x.shape[2] * x.shape[3]
    m = sem.multiplier(qx.scale, sem.f64(qy.scale) * (x.shape[2] * x.shape[3]))
    return finish(node, sem.preround(acc, m), nx.zero_point(qy))


def global_avgpool_grad_rule(b, node: Node, gy: str) -> None:
    x = node.inputs[0]
    if b.wants(x):
        b.contribute(x, b.emit("global_avgpool_grad", [masked(b, node, gy)], f"{x}.grad_from.{node.name}",
                               in_shape=b.g[x].shape))


register(name="global_avgpool", operands=("int8",), out_dtype="int8",
         shape=lambda g, n: (*g[n.inputs[0]].shape[:2], 1, 1), attrs=("qmin", "qmax"), requantizes=True,
         extra=mask_output, optional=0, kernel=global_avgpool, grad=global_avgpool_grad_rule,
         emit=emit_global_avgpool, runtime=("tte_global_avgpool_s8.c", "tte_global_avgpool_tflite_s8.c"),
         scratch=no_scratch, in_place=never, alias=False, flash=one_rescale, code_bytes=250, channels=channels_follow,
         layer=False, onnx=("GlobalAveragePool", "ReduceMean", "QLinearGlobalAveragePool"))


def maxpool(g: Graph, node: Node, x):
    xp = nx.pad(x.astype(np.int16), node.attrs["pads"], value=-32768)
    pooled = nx.windows(xp, node.attrs["kernel"], node.attrs["strides"]).max(axis=(-2, -1)).astype(np.int8)
    if tflite(g):  # TFLite's Requantize of the maximum: the identity when in and out parameters are equal
        return finish_int(node, tflite_rescale(g, node.inputs[0], node.output, pooled))
    qx, qy = g[node.inputs[0]].quant, g[node.output].quant
    return finish(node, rescale_preround(pooled, qx, qy), nx.zero_point(qy))


def maxpool_grad_rule(b, node: Node, gy: str) -> None:
    x = node.inputs[0]
    if b.wants(x):
        a = node.attrs
        b.contribute(x, b.emit("maxpool_grad", [masked(b, node, gy), b.saved(x)], f"{x}.grad_from.{node.name}",
                               kernel=a["kernel"], strides=a["strides"], pads=a["pads"]))


register(name="maxpool", operands=("int8",), out_dtype="int8", shape=pool_shape,
         attrs=("kernel", "strides", "pads", "qmin", "qmax"), requantizes=True, extra=mask_output, optional=0,
         kernel=maxpool, grad=maxpool_grad_rule, emit=emit_maxpool, runtime=("tte_maxpool_s8.c",),
         scratch=no_scratch, in_place=never, alias=False,
         flash=one_rescale, code_bytes=300, channels=channels_follow, layer=False,
         onnx=("MaxPool",))


# -- backward ------------------------------------------------------------------------------------------


def avgpool_grad(g: Graph, node: Node, gy):
    """share = dz / count per window; dx = sum over taps (i, j) ascending of the shares reaching it."""
    n, c, h, w = node.attrs["in_shape"]
    top, left, bottom, right = pads = node.attrs["pads"]
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["strides"]
    ho, wo = gy.shape[2:]
    if node.attrs["count_include_pad"]:
        count = np.full((ho, wo), kh * kw, F32)
    else:
        ones = nx.pad(np.ones((1, 1, h, w), F32), pads)
        count = nx.windows(ones, (kh, kw), (sh, sw)).sum(axis=(-2, -1))[0, 0].astype(F32)
    share = (gy / count).astype(F32)
    dx = np.zeros((n, c, h + top + bottom, w + left + right), F32)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += share
    return dx[:, :, top:top + h, left:left + w]


register(name="avgpool_grad", operands=("float32",), out_dtype="float32", shape=attr_shape("in_shape"),
         attrs=("kernel", "strides", "pads", "count_include_pad", "in_shape"), extra=None, optional=0,
         kernel=avgpool_grad, emit=emit_avgpool_grad, runtime=("tte_avgpool_grad_f32.c",), scratch=no_scratch,
         code_bytes=400, **TRAINING_ONLY)


def global_avgpool_grad(g: Graph, node: Node, gy):
    n, c, h, w = node.attrs["in_shape"]
    return np.broadcast_to(gy / F32(h * w), (n, c, h, w)).astype(F32)


register(name="global_avgpool_grad", operands=("float32",), out_dtype="float32", shape=attr_shape("in_shape"),
         attrs=("in_shape",), extra=None, optional=0, kernel=global_avgpool_grad, emit=emit_global_avgpool_grad,
         runtime=("tte_global_avgpool_grad_f32.c",), scratch=no_scratch, code_bytes=150, **TRAINING_ONLY)


def maxpool_grad(g: Graph, node: Node, gy, x):
    """Route each output's gradient to the first maximum of its window (row-major), as PyTorch does."""
    top, left, bottom, right = pads = node.attrs["pads"]
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["strides"]
    n, c, h, w = x.shape
    win = nx.windows(nx.pad(x.astype(np.int16), pads, value=-32768), (kh, kw), (sh, sw))
    ho, wo = win.shape[2:4]
    arg = win.reshape(n, c, ho, wo, kh * kw).argmax(axis=-1)
    di, dj = np.divmod(arg, kw)
    rows = np.arange(ho)[None, None, :, None] * sh + di
    cols = np.arange(wo)[None, None, None, :] * sw + dj
    dx = np.zeros((n, c, h + top + bottom, w + left + right), F32)
    nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    np.add.at(dx, (nn[..., None, None], cc[..., None, None], rows, cols), gy)
    return dx[:, :, top:top + h, left:left + w]


register(name="maxpool_grad", operands=("float32", "int8"), out_dtype="float32", shape=lambda g, n:
         g[n.inputs[1]].shape, attrs=("kernel", "strides", "pads"), extra=None, optional=0, kernel=maxpool_grad,
         emit=emit_maxpool_grad, runtime=("tte_maxpool_grad_f32.c",), scratch=no_scratch, code_bytes=400,
         **TRAINING_ONLY)
