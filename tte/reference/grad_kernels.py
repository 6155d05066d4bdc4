"""numpy kernels of the training ops: float32 backward in real units, loss, parameter updates.

Saved int8 tensors are read in real units, ``s * (q - z)``, with zero padding (padding with the zero
point in int8 is zero in real units).  Every float result is float32, as the C runtime computes it.

**Summation order is part of the contract.**  Float32 sums depend on their order, and an integer
parameter absorbs a rounded step, so the C runtime can only train the same integers if it adds the
same terms in the same order.  Each kernel's docstring states its order; sums run strictly left to
right (:func:`seq_sum`, never numpy's pairwise ``sum`` or BLAS), every product and sum is rounded to
float32 on its own (C: ``-ffp-contract=off``), and exp is :func:`expf`, a fixed float32 sequence.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from .kernels import _pad, _windows

F32 = np.float32


def _real(g: Graph, name: str, q: np.ndarray) -> np.ndarray:
    p = g[name].quant
    return ((q.astype(np.int32) - int(p.zero_point)).astype(F32) * F32(p.scale)).astype(F32)


def _weight_real(g: Graph, name: str, w: np.ndarray) -> np.ndarray:
    p = g[name].quant
    shape = (-1,) + (1,) * (w.ndim - 1)
    zp = p.zero_point.reshape(shape) if p.axis is not None else p.zero_point
    s = p.scale.reshape(shape) if p.axis is not None else p.scale
    return ((w.astype(np.int32) - zp).astype(F32) * s.astype(F32)).astype(F32)


def seq_sum(terms: np.ndarray, axis: int) -> np.ndarray:
    """Sum along ``axis`` strictly left to right in float32 (numpy's ``sum`` is pairwise: not C's order)."""
    return np.take(np.add.accumulate(terms.astype(F32), axis=axis, dtype=F32), -1, axis=axis)


LOG2E = F32(1.44269504088896341)
LN2_HI = F32(0.693359375)
LN2_LO = F32(-2.12194440e-4)
_EXP_POLY = [F32(1 / 720), F32(1 / 120), F32(1 / 24), F32(1 / 6), F32(0.5), F32(1.0), F32(1.0)]


def expf(x: np.ndarray) -> np.ndarray:
    """exp in float32 for x <= 0 with a fixed sequence of float32 operations (the C runtime's tte_expf):
    k = round_half_even(x * log2(e)); r = (x - k * LN2_HI) - k * LN2_LO; Horner polynomial of degree 6;
    times 2^k.  Below -87.3 the result is 0."""
    x = np.asarray(x, F32)
    k = np.rint((x * LOG2E).astype(F32)).astype(F32)
    r = ((x - (k * LN2_HI).astype(F32)).astype(F32) - (k * LN2_LO).astype(F32)).astype(F32)
    p = np.full_like(r, _EXP_POLY[0])
    for c in _EXP_POLY[1:]:
        p = ((p * r).astype(F32) + c).astype(F32)
    out = np.ldexp(p, k.astype(np.int32)).astype(F32)
    return np.where(x < F32(-87.3), F32(0), out).astype(F32)


def xent(g: Graph, node: Node, logits, label):
    """Softmax cross-entropy, mean over the batch: (loss, dloss/dlogits).

    Per sample: m = max(z); e_k = expf(z_k - m); s = sum of e_k, k ascending; p_k = e_k / s;
    gradient (p - onehot) / N.  The loss, log(s) - (z_y - m) averaged, is reported only."""
    z = logits.astype(F32)
    z = (z - z.max(axis=1, keepdims=True)).astype(F32)
    e = expf(z)
    total = seq_sum(e, axis=1)[:, None]
    p = (e / total).astype(F32)
    n = z.shape[0]
    idx = np.arange(n), label.astype(np.int64)
    loss = F32(np.mean(np.log(total[:, 0].astype(np.float64)) - z[idx]))
    d = p.copy()
    d[idx] = (d[idx] - F32(1)).astype(F32)
    return np.asarray(loss, F32), (d / F32(n)).astype(F32)


def ste(g: Graph, node: Node, gy, mask):
    return np.where(mask, gy, F32(0)).astype(F32)


def conv_grad_input(g: Graph, node: Node, gy, w):
    """dL/dx: for each input element, the sum over output channels o of its group (ascending), then taps
    i, j (ascending) of dz[o, ho, wo] * W[o, c, i, j], over the taps that reach it."""
    n, c, h, wd = node.attrs["in_shape"]
    top, left, bottom, right = node.attrs["pads"]
    sh, sw = node.attrs["strides"]
    groups = node.attrs["groups"]
    wr = _weight_real(g, node.inputs[1], w)
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


def conv_grad_weight(g: Graph, node: Node, gy, x):
    """dL/dW in real units for the leading ``channels`` input channels (depthwise: channels): for each
    weight, the sum over samples n, then output rows and columns (ascending) of dz * x (padding skipped,
    i.e. adding zero)."""
    k = node.attrs["channels"]
    xr = _pad(_real(g, node.inputs[1], x), node.attrs["pads"])
    kh, kw = node.attrs["kernel"]
    win = _windows(xr, (kh, kw), node.attrs["strides"])  # N, C, Ho, Wo, kh, kw
    n, o = gy.shape[:2]
    pos = gy.shape[2] * gy.shape[3]
    dz = gy.reshape(n, o, pos).transpose(0, 2, 1).reshape(n * pos, o)  # (positions, O)
    xw = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * pos, win.shape[1], kh, kw)  # (positions, C, kh, kw)
    if node.attrs["depthwise"]:
        terms = dz[:, :k, None, None] * xw[:, :k]  # positions, k, kh, kw
        return seq_sum(terms, axis=0)[:, None].astype(F32)
    groups = node.attrs["groups"]
    og, cg = o // groups, xw.shape[1] // groups
    parts = []
    for gi in range(groups):
        xg = xw[:, gi * cg:(gi + 1) * cg]
        parts.append(seq_sum(dz[:, gi * og:(gi + 1) * og, None, None, None] * xg[:, None], axis=0))
    return np.concatenate(parts, axis=0)[:, :k].astype(F32)


def bias_grad(g: Graph, node: Node, gy):
    """For each channel, the sum over samples, then positions (ascending)."""
    n, o = gy.shape[:2]
    return seq_sum(gy.reshape(n, o, -1).transpose(0, 2, 1).reshape(-1, o), axis=0).astype(F32)


def gemm_grad_input(g: Graph, node: Node, gy, w):
    """dx[n, k] = sum over m (ascending) of dz[n, m] * W[m, k]."""
    wr = _weight_real(g, node.inputs[1], w)
    return seq_sum(gy[:, :, None] * wr[None], axis=1).astype(F32)


def gemm_grad_weight(g: Graph, node: Node, gy, x):
    """dW[m, k] = sum over samples n (ascending) of dz[n, m] * x[n, k]."""
    k = node.attrs["channels"]
    xr = _real(g, node.inputs[1], x)[:, :k]
    return seq_sum(gy[:, :, None] * xr[:, None, :], axis=0).astype(F32)


def avgpool_grad(g: Graph, node: Node, gy):
    n, c, h, w = node.attrs["in_shape"]
    top, left, bottom, right = pads = node.attrs["pads"]
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["strides"]
    ho, wo = gy.shape[2:]
    if node.attrs["count_include_pad"]:
        count = np.full((ho, wo), kh * kw, F32)
    else:
        ones = _pad(np.ones((1, 1, h, w), F32), pads)
        count = _windows(ones, (kh, kw), (sh, sw)).sum(axis=(-2, -1))[0, 0].astype(F32)
    share = (gy / count).astype(F32)
    dx = np.zeros((n, c, h + top + bottom, w + left + right), F32)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += share
    return dx[:, :, top:top + h, left:left + w]


def global_avgpool_grad(g: Graph, node: Node, gy):
    n, c, h, w = node.attrs["in_shape"]
    return np.broadcast_to(gy / F32(h * w), (n, c, h, w)).astype(F32)


def maxpool_grad(g: Graph, node: Node, gy, x):
    """Route each output's gradient to the first maximum of its window (row-major), as PyTorch does."""
    top, left, bottom, right = pads = node.attrs["pads"]
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["strides"]
    n, c, h, w = x.shape
    win = _windows(_pad(x.astype(np.int16), pads, value=-32768), (kh, kw), (sh, sw))
    ho, wo = win.shape[2:4]
    arg = win.reshape(n, c, ho, wo, kh * kw).argmax(axis=-1)
    di, dj = np.divmod(arg, kw)
    rows = np.arange(ho)[None, None, :, None] * sh + di
    cols = np.arange(wo)[None, None, None, :] * sw + dj
    dx = np.zeros((n, c, h + top + bottom, w + left + right), F32)
    nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    np.add.at(dx, (nn[..., None, None], cc[..., None, None], rows, cols), gy)
    return dx[:, :, top:top + h, left:left + w]


def slice_(g: Graph, node: Node, gy):
    idx = [slice(None)] * gy.ndim
    idx[node.attrs["axis"]] = slice(node.attrs["start"], node.attrs["stop"])
    return np.ascontiguousarray(gy[tuple(idx)])


def freshape(g: Graph, node: Node, gy):
    return gy.reshape(node.attrs["shape"])


def grad_add(g: Graph, node: Node, a, b):
    return (a + b).astype(F32)


def momentum(g: Graph, node: Node, velocity, grad):
    return (F32(node.attrs["beta"]) * velocity + grad).astype(F32)


def count(g: Graph, node: Node, step):
    return (step + 1).astype(np.int32)


def uniform_hash(seed: int, step: int, stream: int, n: int) -> np.ndarray:
    """Deterministic uniforms in [0, 1) for elements 0..n-1 of one parameter's update (a counter-based
    hash, the same in C: murmur3's 32-bit finalizer of
    seed ^ step * 0x9E3779B9 ^ stream * 0x632BE5AB ^ index * 0x85EBCA6B, top 24 bits).  ``stream``
    numbers the trained parameters, so no two tensors draw the same numbers."""
    i = np.arange(n, dtype=np.uint32)
    with np.errstate(over="ignore"):
        h = np.uint32(seed) ^ (np.uint32(step) * np.uint32(0x9E3779B9)) ^ \
            (np.uint32(stream) * np.uint32(0x632BE5AB)) ^ (i * np.uint32(0x85EBCA6B))
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(F32) * F32(2.0 ** -24)


def sgd(g: Graph, node: Node, param, grad, factor, aux=None):
    """param -= absorb(lr * grad * factor) on the trained slice (see tte.autodiff.update)."""
    a = node.attrs
    step = (F32(a["lr"]) * grad * factor).astype(F32)  # in integer units of the parameter
    mode = a["rounding"]
    residual = None
    if mode == "nearest":
        delta = np.rint(step)
    elif mode == "trunc":
        delta = np.trunc(step)
    elif mode == "stochastic":
        u = uniform_hash(a["seed"], int(aux), a["stream"], step.size).reshape(step.shape)
        delta = np.floor(step + u)
    elif mode == "accumulate":
        total = (aux + step).astype(F32)
        delta = np.rint(total)
        residual = (total - delta).astype(F32)
    else:
        raise ValueError(f"unknown rounding '{mode}'")
    # a step can move a value across the whole range at most; a NaN step (a diverged gradient) moves nothing
    span = float(a["qmax"]) - float(a["qmin"])
    delta = np.clip(np.nan_to_num(delta, nan=0.0), -span, span).astype(np.int64)
    idx = [slice(None)] * param.ndim
    idx[a["axis"]] = slice(0, a["channels"])
    out = param.copy()
    cur = out[tuple(idx)].astype(np.int64)
    # values that do not move keep their value (even an int8 -128, outside the symmetric [-127, 127])
    out[tuple(idx)] = np.where(delta == 0, cur, np.clip(cur - delta, a["qmin"], a["qmax"])).astype(param.dtype)
    return out if residual is None else (out, residual)


def conv_weight_update(g: Graph, node: Node, gy, x, param, factor, aux=None):
    """conv_grad_weight then sgd, without a gradient buffer in C (same numbers as the two ops)."""
    return sgd(g, node, param, conv_grad_weight(g, node, gy, x), factor, aux)


def gemm_weight_update(g: Graph, node: Node, gy, x, param, factor, aux=None):
    return sgd(g, node, param, gemm_grad_weight(g, node, gy, x), factor, aux)


def bias_update(g: Graph, node: Node, gy, param, factor, aux=None):
    return sgd(g, node, param, bias_grad(g, node, gy), factor, aux)


GRAD_KERNELS = {
    "xent": xent,
    "ste": ste,
    "conv_grad_input": conv_grad_input,
    "conv_grad_weight": conv_grad_weight,
    "bias_grad": bias_grad,
    "gemm_grad_input": gemm_grad_input,
    "gemm_grad_weight": gemm_grad_weight,
    "avgpool_grad": avgpool_grad,
    "global_avgpool_grad": global_avgpool_grad,
    "maxpool_grad": maxpool_grad,
    "slice": slice_,
    "freshape": freshape,
    "grad_add": grad_add,
    "momentum": momentum,
    "count": count,
    "sgd": sgd,
    "conv_weight_update": conv_weight_update,
    "gemm_weight_update": gemm_weight_update,
    "bias_update": bias_update,
}
