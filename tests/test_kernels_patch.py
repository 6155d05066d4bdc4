"""Golden tests of the runtime's patch kernels (runtime_c/src/tte_patch_*.c), called directly through ctypes: a band
of a conv, a depthwise conv or a fused pointwise + depthwise conv, computed from a band buffer that holds exactly the
rows it reads, more rows (a negative top padding skips them), or the whole input, equals those rows of the reference
kernel run whole (tte/ops/conv.py); a buffer missing a row the band reads is refused; tte_patch_rows_s8 copies rows
between band buffers and whole tensors."""

from __future__ import annotations

import ctypes
import zlib

import cruntime as cr
import numpy as np
import pytest
from cruntime import TTE_ERROR_ARGUMENT, TTE_ERROR_SOURCE, TTE_OK, dims, lib, ptr, ref

from tte.ir import Graph, Node, QuantParams, Value
from tte.ops import OPS
from tte.ops.conv import conv_multiplier, pw_dw_multipliers


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def s8(rng, shape) -> np.ndarray:
    return rng.integers(-128, 127, size=shape, dtype=np.int8, endpoint=True)


KEEP: list[np.ndarray] = []  # the row pairs passed to C, alive until the test ends


def rows(first: int, end: int) -> np.ndarray:
    """A {first, end} row pair for C (kept alive: ptr() does not hold it)."""
    KEEP.append(np.array([first, end], np.int32))
    return KEEP[-1]


def conv_graph(x, w, b, strides, pads, groups, zx: int, zy: int, sy: float) -> tuple[Graph, Node]:
    g = Graph("conv")
    o = w.shape[0]
    g.add_input(Value("x", "int8", x.shape, QuantParams.per_tensor(0.05, zx)))
    g.add_input(Value("w", "int8", w.shape, QuantParams(np.linspace(0.002, 0.006, o, dtype=np.float32),
                                                        np.zeros(o, np.int32), axis=0)))
    g.add_input(Value("b", "int32", b.shape))
    g.add_value(Value("y", "int8", (), QuantParams.per_tensor(sy, zy)))
    return g, Node("conv", "conv", ["x", "w", "b"], ["y"], {"strides": strides, "pads": pads, "groups": groups,
                                                            "qmin": -128, "qmax": 127})


def band_cases(height: int, kernel: int, stride: int, top: int, out_height: int):
    """(out rows, in rows) of bands of 1, 2 and 3 rows: the buffer holds exactly the rows read, two more above and
    one more below (where the tensor has them), or the whole input."""
    for h in (1, 2, 3):
        for first in range(0, out_height, h):
            end = min(first + h, out_height)
            lo, hi = max(first * stride - top, 0), min((end - 1) * stride - top + kernel, height)
            yield (first, end), (lo, hi)
            yield (first, end), (max(lo - 2, 0), min(hi + 1, height))
            yield (first, end), (0, height)


CONVS = {  # x shape, w shape, strides, pads, groups
    "stem-3x3-s2": ((1, 3, 11, 9), (4, 3, 3, 3), (2, 2), (1, 1, 1, 1), 1),
    "5x5-s2-asym": ((1, 2, 12, 7), (3, 2, 5, 5), (2, 2), (2, 1, 0, 2), 1),
    "depthwise-3x3": ((1, 4, 9, 6), (4, 1, 3, 3), (1, 1), (1, 1, 1, 1), 4),
    "depthwise-7x7-s2-pad3": ((1, 3, 13, 8), (3, 1, 7, 7), (2, 2), (3, 3, 3, 3), 3),
    "pointwise": ((1, 5, 6, 4), (3, 5, 1, 1), (1, 1), (0, 0, 0, 0), 1),
}


@pytest.mark.parametrize("case", CONVS)
def test_patch_conv_s8(case):
    xs, ws, strides, pads, groups = CONVS[case]
    rng = rng_for("patch conv", case)
    x, w = s8(rng, xs), s8(rng, ws)
    b = rng.integers(-2000, 2000, ws[0], dtype=np.int32)
    g, node = conv_graph(x, w, b, strides, pads, groups, zx=int(rng.integers(-20, 20)), zy=3, sy=0.02)
    want = OPS["conv"].kernel(g, node, x, w, b)
    m = np.ascontiguousarray(np.broadcast_to(conv_multiplier(g, node), (ws[0],)), np.float32)
    geo = cr.ConvGeometry(*strides, *pads, groups)
    q = cr.QuantParams(int(g["x"].quant.zero_point), 3, -128, 127)
    weights = cr.SplitWeights(ptr(w), None, ws[0] if groups > 1 else ws[1])
    xd, wd, yd = dims(x.shape), dims(w.shape), dims(want.shape)
    seen = 0
    for out_rows, in_rows in band_cases(xs[2], ws[2], strides[0], pads[0], want.shape[2]):
        band_in = np.ascontiguousarray(x[:, :, in_rows[0]:in_rows[1]])
        out = np.full((1, ws[0], out_rows[1] - out_rows[0], want.shape[3]), 99, np.int8)
        scratch = np.full(out[0, 0].size + 16, 0x55, np.int8)
        status = lib().tte_patch_conv_s8(ref(geo), ref(q), ref(xd), ptr(rows(*in_rows)), ptr(band_in), ref(wd),
                                         ref(weights), None, ptr(b), ptr(m), ref(yd), ptr(rows(*out_rows)), ptr(out),
                                         ptr(scratch))
        assert status == TTE_OK, (out_rows, in_rows)
        np.testing.assert_array_equal(out, want[:, :, out_rows[0]:out_rows[1]], err_msg=f"{out_rows} {in_rows}")
        assert (scratch[out[0, 0].size:] == 0x55).all()
        seen += 1
    assert seen > 10 and len(np.unique(want)) > 10
    # a buffer that lacks the last row the last band reads is refused, and nothing is written
    last = want.shape[2] - 1
    lo, hi = max(last * strides[0] - pads[0], 0), min(last * strides[0] - pads[0] + ws[2], xs[2])
    out = np.full((1, ws[0], 1, want.shape[3]), 99, np.int8)
    band_in = np.ascontiguousarray(x[:, :, lo:hi - 1])
    scratch = np.zeros(out.size, np.int8)
    assert lib().tte_patch_conv_s8(ref(geo), ref(q), ref(xd), ptr(rows(lo, hi - 1)), ptr(band_in), ref(wd),
                                   ref(weights), None, ptr(b), ptr(m), ref(yd), ptr(rows(last, last + 1)), ptr(out),
                                   ptr(scratch)) == TTE_ERROR_ARGUMENT
    assert (out == 99).all()


def test_patch_pw_dw_s8():
    rng = rng_for("patch pw_dw")
    xs, mid, k, strides, pads = (1, 3, 10, 7), 5, 5, (2, 2), (2, 2, 2, 2)
    x, w1, w2 = s8(rng, xs), s8(rng, (mid, 3, 1, 1)), s8(rng, (mid, 1, k, k))
    b1, b2 = (rng.integers(-2000, 2000, mid, dtype=np.int32) for _ in range(2))
    g = Graph("pw_dw")
    g.add_input(Value("x", "int8", xs, QuantParams.per_tensor(0.05, -7)))
    for name, a in (("w1", w1), ("w2", w2)):
        g.add_input(Value(name, "int8", a.shape, QuantParams(np.full(mid, 0.004, np.float32), np.zeros(mid, np.int32),
                                                             axis=0)))
    g.add_input(Value("b1", "int32", (mid,)))
    g.add_input(Value("b2", "int32", (mid,)))
    g.add_value(Value("y", "int8", (), QuantParams.per_tensor(0.03, 2)))
    mq = QuantParams.per_tensor(0.04, -5)
    node = Node("pw_dw", "pw_dw", ["x", "w1", "b1", "w2", "b2"], ["y"],
                {"strides": strides, "pads": pads, "mid_quant": mq, "mid_qmin": -5, "mid_qmax": 127, "qmin": -128,
                 "qmax": 127})
    want = OPS["pw_dw"].kernel(g, node, x, w1, b1, w2, b2)
    m1, m2 = (np.ascontiguousarray(np.broadcast_to(m, (mid,)), np.float32) for m in pw_dw_multipliers(g, node))
    q1, q2 = cr.QuantParams(-7, -5, -5, 127), cr.QuantParams(-5, 2, -128, 127)
    geo = cr.ConvGeometry(*strides, *pads, mid)
    w2d, xd, yd = dims(w2.shape), dims(xs), dims(want.shape)
    for out_rows, in_rows in band_cases(xs[2], k, strides[0], pads[0], want.shape[2]):
        band_in = np.ascontiguousarray(x[:, :, in_rows[0]:in_rows[1]])
        out = np.full((1, mid, out_rows[1] - out_rows[0], want.shape[3]), 99, np.int8)
        scratch = np.zeros(band_in[0, 0].size + 16, np.int8)
        assert lib().tte_patch_pw_dw_s8(ref(q1), ptr(w1), None, ptr(b1), ptr(m1), ref(geo), ref(q2), ref(w2d),
                                        ptr(w2), None, ptr(b2), ptr(m2), ref(xd), ptr(rows(*in_rows)), ptr(band_in),
                                        ref(yd), ptr(rows(*out_rows)), ptr(out), ptr(scratch)) == TTE_OK
        np.testing.assert_array_equal(out, want[:, :, out_rows[0]:out_rows[1]], err_msg=f"{out_rows} {in_rows}")
    assert len(np.unique(want)) > 10


def test_patch_rows_s8():
    rng = rng_for("patch rows")
    whole = s8(rng, (1, 3, 9, 5))
    band = np.ascontiguousarray(whole[:, :, 2:7])  # a band buffer of rows [2, 7)
    out = np.full((1, 3, 3, 5), 99, np.int8)
    assert lib().tte_patch_rows_s8(3, 5, ptr(rows(3, 6)), ptr(rows(2, 7)), ptr(band), ptr(rows(3, 6)),
                                   ptr(out)) == TTE_OK
    np.testing.assert_array_equal(out, whole[:, :, 3:6])
    into = np.zeros_like(whole)
    assert lib().tte_patch_rows_s8(3, 5, ptr(rows(3, 6)), ptr(rows(3, 6)), ptr(out), ptr(rows(0, 9)),
                                   ptr(into)) == TTE_OK
    np.testing.assert_array_equal(into[:, :, 3:6], whole[:, :, 3:6])
    assert not into[:, :, :3].any() and not into[:, :, 6:].any()
    for bad in ((1, 6), (3, 8), (5, 4)):  # rows the source lacks, rows past the tensor, a reversed range
        assert lib().tte_patch_rows_s8(3, 5, ptr(rows(*bad)), ptr(rows(2, 7)), ptr(band), ptr(rows(0, 9)),
                                       ptr(into)) == TTE_ERROR_ARGUMENT


@pytest.mark.parametrize("before,now", [((2, 7), (4, 9)), ((2, 7), (4, 6)), ((0, 3), (1, 8)), ((3, 5), (3, 5)),
                                        ((0, 4), (6, 8)), ((0, 0), (0, 3)), ((2, 6), (5, 5))])
def test_patch_keep_s8(before, now):
    """The rows a band buffer keeps from one band to the next move, in place, from the layout of the rows it held to
    that of the rows it holds now (planes shrinking, growing, unchanged, nothing in common, empty windows), exactly as
    the reference's keep_rows moves them; rows only the new window holds are not touched."""
    from tte.ops.patch import keep_rows

    rng = rng_for("patch keep", before, now)
    planes, width = 4, 5
    whole = s8(rng, (1, planes, 10, width))
    size = planes * width * max(before[1] - before[0], now[1] - now[0], 1)
    buf = np.full(size + 8, 77, np.int8)
    old = np.ascontiguousarray(whole[:, :, before[0]:before[1]]).reshape(-1)
    buf[:old.size] = old
    want = buf.copy()
    keep_rows(want, 0, (1, planes, 10, width), before, now)
    assert lib().tte_patch_keep_s8(planes, width, ptr(rows(*before)), ptr(rows(*now)), ptr(buf)) == TTE_OK
    np.testing.assert_array_equal(buf, want)
    first, end = max(before[0], now[0]), min(before[1], now[1])
    if first < end:
        held = buf[:planes * width * (now[1] - now[0])].reshape(1, planes, now[1] - now[0], width)
        np.testing.assert_array_equal(held[:, :, first - now[0]:end - now[0]], whole[:, :, first:end])
    assert (buf[size:] == 77).all()
    assert lib().tte_patch_keep_s8(planes, width, ptr(rows(5, 4)), ptr(rows(*now)), ptr(buf)) == TTE_ERROR_ARGUMENT


ROW_SOURCE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_int8),
                              ctypes.c_int32)


@pytest.mark.parametrize("new,window", [((0, 2), (0, 2)), ((3, 5), (1, 5)), ((4, 5), (4, 5)), ((2, 2), (0, 2))])
def test_patch_fetch_s8(new, window):
    """The new rows of a streamed input come from the row source, each asked once in order, channel c's row at
    dst + c * channel_stride: straight into their places in a band buffer of rows `window` (plane p's row r at
    (p * rows + r - window[0]) * width); the rows before them are not touched; a failing source stops the fetch
    (TTE_ERROR_SOURCE), a window that does not hold the rows or a NULL source is refused."""
    rng = rng_for("patch fetch", new, window)
    planes, width = 3, 7
    whole = s8(rng, (planes, 9, width))
    held = window[1] - window[0]
    buf = np.full(planes * held * width + 8, 77, np.int8)
    asked: list[int] = []

    def source(context, row, dst, channel_stride):
        asked.append(row)
        if context is not None:  # the failing source
            return 5
        for c in range(planes):
            ctypes.memmove(ctypes.addressof(dst.contents) + c * channel_stride, whole[c, row].ctypes.data, width)
        return 0

    f = ROW_SOURCE(source)
    assert lib().tte_patch_fetch_s8(f, None, planes, width, ptr(rows(*new)), ptr(rows(*window)), ptr(buf)) == TTE_OK
    assert asked == list(range(*new))
    got = buf[:planes * held * width].reshape(planes, held, width)
    np.testing.assert_array_equal(got[:, new[0] - window[0]:new[1] - window[0]], whole[:, new[0]:new[1]])
    assert (got[:, :new[0] - window[0]] == 77).all() and (buf[planes * held * width:] == 77).all()
    if new[0] < new[1]:
        asked.clear()
        assert lib().tte_patch_fetch_s8(f, ctypes.c_void_p(1), planes, width, ptr(rows(*new)), ptr(rows(*window)),
                                        ptr(buf)) == TTE_ERROR_SOURCE
        assert asked == [new[0]]
    assert lib().tte_patch_fetch_s8(f, None, planes, width, ptr(rows(new[0], window[1] + 1)), ptr(rows(*window)),
                                    ptr(buf)) == TTE_ERROR_ARGUMENT
    assert lib().tte_patch_fetch_s8(ROW_SOURCE(), None, planes, width, ptr(rows(*new)), ptr(rows(*window)),
                                    ptr(buf)) == TTE_ERROR_ARGUMENT
