"""Numerical primitives the ops' reference kernels share: exact integer windows and float32 sums in the
order the C runtime follows.

**Summation order is part of the contract.**  Float32 sums depend on their order, and an integer
parameter absorbs a rounded step, so the C runtime can only train the same integers if it adds the
same terms in the same order.  Each kernel's docstring states its order; sums run strictly left to
right (:func:`seq_sum`, never numpy's pairwise ``sum`` or BLAS), every product and sum is rounded to
float32 on its own (C: ``-ffp-contract=off``), and exp is :func:`expf`, a fixed float32 sequence.

Integer sums are computed exactly: small-integer products summed in float64 (exact below 2**53, far
beyond any layer here) so that the heavy lifting can use BLAS, then converted to int64 (:func:`exact`).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..ir import Graph, QuantParams

F32 = np.float32


def zero_point(q: QuantParams) -> int:
    return int(q.zero_point)


def centered(x: np.ndarray, q: QuantParams) -> np.ndarray:
    """x - z as float64 (exact)."""
    return x.astype(np.float64) - float(q.zero_point)


def weight_centered(w: np.ndarray, q: QuantParams) -> np.ndarray:
    zw = q.zero_point.astype(np.float64)
    if q.axis is not None:
        zw = zw.reshape((-1,) + (1,) * (w.ndim - 1))
    return w.astype(np.float64) - zw


def exact(acc: np.ndarray) -> np.ndarray:
    return np.rint(acc).astype(np.int64)


def pad(x: np.ndarray, pads, value: float = 0.0) -> np.ndarray:
    """Pad NCHW by IR pads (top, left, bottom, right)."""
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def windows(x: np.ndarray, kernel, strides) -> np.ndarray:
    """[N, C, Ho, Wo, kh, kw] view of windows of a padded NCHW array."""
    w = sliding_window_view(x, tuple(kernel), axis=(2, 3))
    return w[:, :, :: strides[0], :: strides[1]]


def real(g: Graph, name: str, q: np.ndarray) -> np.ndarray:
    """An int8 tensor of ``g`` in real units, float32: (q - z) * s."""
    p = g[name].quant
    return ((q.astype(np.int32) - int(p.zero_point)).astype(F32) * F32(p.scale)).astype(F32)


def weight_real(g: Graph, name: str, w: np.ndarray) -> np.ndarray:
    """A per-output-channel weight in real units, float32."""
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


def uniform_hash(seed: int, step: int, stream: int, n: int) -> np.ndarray:
    """Deterministic uniforms in [0, 1) for elements 0..n-1 of one parameter's update (a counter-based
    hash, the same in C: murmur3's 32-bit finalizer of
    seed ^ step * 0x9E3779B9 ^ stream * 0x632BE5AB ^ index * 0x85EBCA6B, top 24 bits).  ``stream``
    numbers the trained parameters, so no two tensors draw the same numbers."""
    i = np.arange(n, dtype=np.uint32)
    with np.errstate(over="ignore"):
        # the int32 step counter as the C reads it: its uint32_t bits (it wraps negative after 2^31 steps)
        h = np.uint32(seed) ^ (np.uint32(int(step) & 0xFFFFFFFF) * np.uint32(0x9E3779B9)) ^ \
            (np.uint32(stream) * np.uint32(0x632BE5AB)) ^ (i * np.uint32(0x85EBCA6B))
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(F32) * F32(2.0 ** -24)
