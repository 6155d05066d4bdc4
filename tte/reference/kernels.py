"""numpy kernels of the reference executor, one per IR op, following :mod:`.semantics` exactly.

Each kernel takes the graph, the node and the input arrays and returns the output array.  Integer
sums are computed exactly: small-integer products summed in float64 (exact below 2**53, far beyond
any layer here) so that the heavy lifting can use BLAS, then converted to int64.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..ir import Graph, Node, QuantParams
from . import semantics as sem


def _zp(q: QuantParams) -> int:
    return int(q.zero_point)


def _centered(x: np.ndarray, q: QuantParams) -> np.ndarray:
    """x - z as float64 (exact)."""
    return x.astype(np.float64) - float(q.zero_point)


def _pad(x: np.ndarray, pads, value: float = 0.0) -> np.ndarray:
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _windows(x: np.ndarray, kernel, strides) -> np.ndarray:
    """[N, C, Ho, Wo, kh, kw] view of windows of a padded NCHW array."""
    w = sliding_window_view(x, tuple(kernel), axis=(2, 3))
    return w[:, :, :: strides[0], :: strides[1]]


def _weight_centered(w: np.ndarray, q: QuantParams) -> np.ndarray:
    zw = q.zero_point.astype(np.float64)
    if q.axis is not None:
        zw = zw.reshape((-1,) + (1,) * (w.ndim - 1))
    return w.astype(np.float64) - zw


def _finish(node: Node, v: np.ndarray, zero_point: int):
    """Round and clamp the float32 pre-rounding value ``v``; with ``save_mask`` also return the mask."""
    lo, hi = node.attrs["qmin"], node.attrs["qmax"]
    if node.attrs.get("save_mask"):
        return sem.round_clamp_mask(v, zero_point, lo, hi)
    return sem.round_clamp(v, zero_point, lo, hi)


def _exact(acc: np.ndarray) -> np.ndarray:
    return np.rint(acc).astype(np.int64)


def conv_accumulator(g: Graph, node: Node, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The exact int64 accumulator of a conv (point 1 of the semantics), NCHW."""
    a = node.attrs
    return _conv_acc(x, g[node.inputs[0]].quant, w, g[node.inputs[1]].quant, b, a["strides"], a["pads"], a["groups"])


def _conv_acc(x, xq: QuantParams, w, wq: QuantParams, b, strides, pads, groups) -> np.ndarray:
    xc = _pad(_centered(x, xq), pads)
    wc = _weight_centered(w, wq)
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
                patch = xe[:, :, rows, cols]
                acc += patch * wc[:, 0, i, j][None, :, None, None]
    else:
        acc = np.empty((n, cout, ho, wo))
        win = _windows(xc, (kh, kw), strides)  # N, C, Ho, Wo, kh, kw
        for gi in range(groups):
            wg = wc[gi * cout_g : (gi + 1) * cout_g]  # O_g, C_g, kh, kw
            xg = win[:, gi * cin_g : (gi + 1) * cin_g]
            acc[:, gi * cout_g : (gi + 1) * cout_g] = np.einsum("nchwij,ocij->nohw", xg, wg, optimize=True)
    return _exact(acc) + b.astype(np.int64)[None, :, None, None]


def conv_multiplier(g: Graph, node: Node) -> np.ndarray:
    xq, wq, yq = (g[n].quant for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    return sem.multiplier(sem.f64(xq.scale) * sem.f64(wq.scale), yq.scale)


def pw_dw(g: Graph, node: Node, x, w1, b1, w2, b2):
    """A pointwise conv feeding a depthwise conv, fused (tte.passes.forward): the same integers as the
    two convs, computed here whole; the C kernel goes one intermediate channel plane at a time."""
    a = node.attrs
    xq, w1q, w2q = (g[n].quant for n in (node.inputs[0], node.inputs[1], node.inputs[3]))
    mq, yq = a["mid_quant"], g[node.output].quant
    acc = _conv_acc(x, xq, w1, w1q, b1, (1, 1), (0, 0, 0, 0), 1)
    m1 = sem.multiplier(sem.f64(xq.scale) * sem.f64(w1q.scale), mq.scale).reshape(1, -1, 1, 1)
    mid = sem.round_clamp(sem.preround(acc, m1), _zp(mq), a["mid_qmin"], a["mid_qmax"])
    acc = _conv_acc(mid, mq, w2, w2q, b2, a["strides"], a["pads"], w2.shape[0])
    m2 = sem.multiplier(sem.f64(mq.scale) * sem.f64(w2q.scale), yq.scale).reshape(1, -1, 1, 1)
    return _finish(node, sem.preround(acc, m2), _zp(yq))


def conv(g: Graph, node: Node, x, w, b):
    acc = conv_accumulator(g, node, x, w, b)
    m = np.broadcast_to(conv_multiplier(g, node), (w.shape[0],)).reshape(1, -1, 1, 1)
    return _finish(node, sem.preround(acc, m), _zp(g[node.output].quant))


def gemm_accumulator(g: Graph, node: Node, x, w, b) -> np.ndarray:
    xc = _centered(x, g[node.inputs[0]].quant)
    wc = _weight_centered(w, g[node.inputs[1]].quant)
    return _exact(xc @ wc.T) + b.astype(np.int64)[None, :]


def gemm(g: Graph, node: Node, x, w, b):
    acc = gemm_accumulator(g, node, x, w, b)
    m = np.broadcast_to(conv_multiplier(g, node), (w.shape[0],)).reshape(1, -1)
    return _finish(node, sem.preround(acc, m), _zp(g[node.output].quant))


def add_preround(g: Graph, node: Node, a, b) -> np.ndarray:
    qa, qb, qy = (g[n].quant for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    ma, mb = sem.multiplier(qa.scale, qy.scale), sem.multiplier(qb.scale, qy.scale)
    va = (a.astype(np.int32) - _zp(qa)).astype(np.float32) * ma
    vb = (b.astype(np.int32) - _zp(qb)).astype(np.float32) * mb
    return (va + vb).astype(np.float32)


def add(g: Graph, node: Node, a, b):
    return _finish(node, add_preround(g, node, a, b), _zp(g[node.output].quant))


def rescale_preround(x: np.ndarray, qx: QuantParams, qy: QuantParams) -> np.ndarray:
    """int8 ``x`` re-expressed in ``qy``, before rounding: float32(x - z_x) * (s_x / s_y).

    When the parameters are equal the multiplier is exactly 1 and rounding gives back ``x``."""
    return sem.preround(x.astype(np.int64) - _zp(qx), sem.multiplier(qx.scale, qy.scale))


def requantize(g: Graph, node: Node, x):
    qx, qy = g[node.inputs[0]].quant, g[node.output].quant
    return _finish(node, rescale_preround(x, qx, qy), _zp(qy))


def avgpool_accumulator(g: Graph, node: Node, x) -> tuple[np.ndarray, np.ndarray]:
    """(sum of q - z over each window, element count of each window)."""
    pads, kernel, strides = node.attrs["pads"], node.attrs["kernel"], node.attrs["strides"]
    xc = _pad(_centered(x, g[node.inputs[0]].quant), pads)
    acc = _exact(_windows(xc, kernel, strides).sum(axis=(-2, -1)))
    if node.attrs["count_include_pad"]:
        count = np.full(acc.shape[2:], kernel[0] * kernel[1])
    else:
        ones = _pad(np.ones((1, 1) + x.shape[2:]), pads)
        count = _exact(_windows(ones, kernel, strides).sum(axis=(-2, -1)))[0, 0]
    return acc, count


def avgpool(g: Graph, node: Node, x):
    acc, count = avgpool_accumulator(g, node, x)
    qx, qy = g[node.inputs[0]].quant, g[node.output].quant
    m = sem.multiplier(qx.scale, sem.f64(qy.scale) * count)
    return _finish(node, sem.preround(acc, m), _zp(qy))


def global_avgpool(g: Graph, node: Node, x):
    qx, qy = g[node.inputs[0]].quant, g[node.output].quant
    acc = x.astype(np.int64).sum(axis=(2, 3), keepdims=True) - _zp(qx) * x.shape[2] * x.shape[3]
    m = sem.multiplier(qx.scale, sem.f64(qy.scale) * (x.shape[2] * x.shape[3]))
    return _finish(node, sem.preround(acc, m), _zp(qy))


def maxpool(g: Graph, node: Node, x):
    xp = _pad(x.astype(np.int16), node.attrs["pads"], value=-32768)
    pooled = _windows(xp, node.attrs["kernel"], node.attrs["strides"]).max(axis=(-2, -1)).astype(np.int8)
    qx, qy = g[node.inputs[0]].quant, g[node.output].quant
    return _finish(node, rescale_preround(pooled, qx, qy), _zp(qy))


def concat(g: Graph, node: Node, *xs):
    qy = g[node.output].quant
    v = np.concatenate([rescale_preround(x, g[n].quant, qy) for n, x in zip(node.inputs, xs)], axis=node.attrs["axis"])
    return _finish(node, v, _zp(qy))


def reshape(g: Graph, node: Node, x) -> np.ndarray:
    return x.reshape(node.attrs["shape"])


def quantize(g: Graph, node: Node, x) -> np.ndarray:
    q = g[node.output].quant
    return sem.quantize(x, float(q.scale), _zp(q))


def dequantize(g: Graph, node: Node, x) -> np.ndarray:
    q = g[node.inputs[0]].quant
    return sem.dequantize(x, q.scale, q.zero_point)


KERNELS = {
    "conv": conv,
    "pw_dw": pw_dw,
    "gemm": gemm,
    "add": add,
    "requantize": requantize,
    "avgpool": avgpool,
    "global_avgpool": global_avgpool,
    "maxpool": maxpool,
    "concat": concat,
    "reshape": reshape,
    "quantize": quantize,
    "dequantize": dequantize,
}

from .grad_kernels import GRAD_KERNELS  # noqa: E402  (the training ops' kernels)

KERNELS.update(GRAD_KERNELS)
