"""Golden tests of runtime_c's int8 forward kernels, each called directly through ctypes (tests/cruntime.py).

Every kernel's int8 output and bit-packed saturation mask must equal, bit for bit, those of the numpy
reference kernels (each op's kernel in tte/ops/, which follow tte/reference/semantics.py) on seeded random
data and on the cases whole-program tests miss: asymmetric per-channel weight zero points, split weights,
asymmetric padding, int32 saturation both ways, the +-256 pre-clamp, round-half-even ties, narrowed clamps,
in-place depthwise, padded pools, broadcasting adds, channel offsets and every argument error.  The last
test checks that every runtime function is called directly here or in another tests/test_kernels_*.py.
"""

from __future__ import annotations

import re
import zlib

import cruntime as cr
import numpy as np
import pytest
import refkernels as K
from cruntime import ROOT, TTE_ERROR_ARGUMENT, TTE_OK, c_float, dims, lib, mask_bytes, ptr, ref

from tte.ir import Graph, Node, QuantParams, Value
from tte.ops.elementwise import broadcast_run
from tte.reference import semantics as sem

I32_MAX, I32_MIN = sem.INT32_MAX, sem.INT32_MIN
FILL = 0xAA  # mask pre-fill: the kernels must both set and clear bits
EDGE_M = float(np.float32(100.5 / 2**31))  # float32(INT32_MAX) * EDGE_M is the tie 100.5 exactly


# ---- helpers ------------------------------------------------------------------------------------------------
def rng_for(*key) -> np.random.Generator:
    """A generator seeded from a test's parameters (stable across runs, unlike hash())."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def s8(rng, shape, lo=-128, hi=127) -> np.ndarray:
    return rng.integers(lo, hi, size=shape, dtype=np.int8, endpoint=True)


def channel_zps(rng, n: int) -> np.ndarray:
    """n distinct nonzero weight zero points (asymmetric: a sign flip changes the result)."""
    return rng.permutation(np.r_[-40:0, 1:41])[:n].astype(np.int32)


def pt(scale: float, zp: int = 0) -> QuantParams:
    return QuantParams.per_tensor(scale, zp)


def pc(scales, zps) -> QuantParams:
    return QuantParams(np.asarray(scales, np.float32), np.asarray(zps, np.int32), axis=0)


def conv_data(rng, xs, ws, zp: bool, bias: int):
    """Random x, w, per-channel zero points (None: NULL), bias and z_x, z_y for a conv-like kernel."""
    x, w = s8(rng, xs), s8(rng, ws)
    wz = channel_zps(rng, ws[0]) if zp else None
    return x, w, wz, rng.integers(-bias, bias, ws[0], dtype=np.int32), int(rng.integers(-128, 128)), \
        int(rng.integers(-20, 21))


def one_node(op: str, operands, yq: QuantParams, **attrs) -> tuple[Graph, Node]:
    """A one-node graph for a reference kernel: operands are (array, QuantParams or None) pairs."""
    g = Graph(op)
    for i, (a, q) in enumerate(operands):
        g.add_input(Value(f"x{i}", str(a.dtype), a.shape, q))
    g.add_value(Value("y", "int8", (), yq))
    return g, Node(op, op, [f"x{i}" for i in range(len(operands))], ["y"], {"qmin": -128, "qmax": 127, **attrs})


def fit_scale(acc, sx: float, sw) -> float:
    """An output scale that spreads the requantized values over roughly +-60 RMS: some clamp, most do not."""
    rms = float(np.sqrt(np.mean(np.square(acc.astype(np.float64))))) or 1.0
    return rms * sx * float(np.mean(sw)) / 60


def clamp_range(kind: str, zy: int) -> tuple[int, int]:
    """qmin/qmax of a folded activation: none, ReLU or ReLU6-like."""
    return {"none": (-128, 127), "relu": (max(-128, zy), 127), "relu6": (max(-128, zy), min(127, zy + 50))}[kind]


def packed(mask: np.ndarray, fill: int = FILL) -> np.ndarray:
    """The expected mask buffer: mask's bits over a buffer pre-filled with ``fill`` (bits past the end kept)."""
    bits = np.unpackbits(np.full((mask.size + 7) // 8, fill, np.uint8), bitorder="little")
    bits[: mask.size] = mask.ravel()
    return np.packbits(bits, bitorder="little")


def check(call, want: np.ndarray, want_mask: np.ndarray | None) -> None:
    """Run ``call(output, mask)`` with a pre-filled mask and with NULL: both outputs and the mask must match."""
    out, mask = np.full(want.shape, 99, np.int8), mask_bytes(want.size, FILL)
    assert call(out, mask) == TTE_OK
    np.testing.assert_array_equal(out, want)
    if want_mask is not None:
        np.testing.assert_array_equal(mask, packed(want_mask))
    out = np.full(want.shape, 99, np.int8)
    assert call(out, None) == TTE_OK
    np.testing.assert_array_equal(out, want)


def split(w: np.ndarray, channels: int | None, axis: int):
    """(trained, frozen, struct) of a tte_split_weights: leading ``channels`` along ``axis`` trained."""
    if channels is None:
        return w, None, cr.SplitWeights(ptr(w), None, w.shape[axis])
    t, f = (np.ascontiguousarray(a) for a in np.split(w, [channels], axis=axis))
    return t, f, cr.SplitWeights(ptr(t), ptr(f), channels)


# ---- conv and depthwise conv --------------------------------------------------------------------------------
def run_conv(x, zx, w, wz, b, strides, pads, groups, *, sx=0.05, sw=None, sy=None, zy=0, clamp="none",
             channels=None, depthwise=False, in_place=False):
    """tte_conv_s8 (or tte_conv_dw_s8) against the reference conv; wz None passes NULL zero points.

    Returns (output, exact accumulator)."""
    o = w.shape[0]
    sw = np.linspace(0.002, 0.006, o, dtype=np.float32) if sw is None else np.asarray(sw, np.float32)
    qmin, qmax = clamp_range(clamp, zy)
    zps = np.zeros(o, np.int32) if wz is None else wz
    g, node = one_node("conv", [(x, pt(sx, zx)), (w, pc(sw, zps)), (b, None)], pt(1.0, zy), strides=strides,
                       pads=pads, groups=groups, qmin=qmin, qmax=qmax, save_mask=True)
    acc = K.conv_accumulator(g, node, x, w, b)
    g["y"].quant = pt(fit_scale(acc, sx, sw) if sy is None else sy, zy)
    want, want_mask = K.conv(g, node, x, w, b)
    m = np.ascontiguousarray(np.broadcast_to(K.conv_multiplier(g, node), (o,)), np.float32)
    _t, _f, weights = split(w, channels, 0 if depthwise else 1)  # _t, _f keep the slices alive
    geo, q = cr.ConvGeometry(*strides, *pads, groups), cr.QuantParams(zx, zy, qmin, qmax)
    xd, wd, yd = dims(x.shape), dims(w.shape), dims(want.shape)

    def call(out, mask):
        src, dst = x, out
        if in_place:  # one buffer, input first, output written over it
            assert want.size <= x.size
            src = dst = x.ravel().copy()
        if depthwise:
            n = lib().tte_conv_dw_s8_get_buffer_size(ref(yd))
            assert n == want.shape[2] * want.shape[3]
            scratch = np.full(n + 16, 0x55, np.int8)  # 16 guard bytes past the size asked for
            status = lib().tte_conv_dw_s8(ref(geo), ref(q), ref(xd), ptr(src), ref(wd), ref(weights), ptr(wz),
                                          ptr(b), ptr(m), ref(yd), ptr(dst), ptr(mask), ptr(scratch), n)
            assert (scratch[n:] == 0x55).all()
        else:
            status = lib().tte_conv_s8(ref(geo), ref(q), ref(xd), ptr(src), ref(wd), ref(weights), ptr(wz), ptr(b),
                                       ptr(m), ref(yd), ptr(dst), ptr(mask), None, 0)
        if in_place:
            out.reshape(-1)[:] = dst[: out.size]
        return status

    check(call, want, want_mask)
    return want, acc


CONV_CASES = {  # x shape, w shape, strides, pads (top, left, bottom, right), groups, zero points, split, clamp
    "3x3": ((2, 3, 6, 5), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), 1, True, None, "none"),
    "5x5-s2-asym": ((1, 2, 9, 7), (3, 2, 5, 5), (2, 2), (2, 1, 0, 2), 1, True, None, "none"),
    "grouped-s2-asym": ((1, 4, 7, 6), (6, 2, 3, 3), (2, 2), (0, 1, 1, 0), 2, True, None, "none"),
    "3x1-s21": ((2, 2, 7, 4), (3, 2, 3, 1), (2, 1), (1, 0, 2, 0), 1, True, None, "none"),
    "depthwise-x2": ((1, 3, 6, 6), (6, 1, 3, 3), (1, 1), (1, 1, 1, 1), 3, True, None, "none"),
    "1x1": ((2, 5, 3, 4), (4, 5, 1, 1), (1, 1), (0, 0, 0, 0), 1, True, None, "none"),
    "1x1-null-zp": ((2, 5, 3, 4), (4, 5, 1, 1), (1, 1), (0, 0, 0, 0), 1, False, None, "none"),
    "1x1-null-zp-split": ((1, 5, 3, 3), (4, 5, 1, 1), (1, 1), (0, 0, 0, 0), 1, False, 2, "none"),
    "1x1-s2-null-zp": ((1, 3, 5, 5), (4, 3, 1, 1), (2, 2), (0, 0, 0, 0), 1, False, None, "none"),
    "1x1-padded": ((1, 3, 3, 3), (2, 3, 1, 1), (1, 1), (0, 1, 1, 0), 1, True, None, "none"),
    "3x3-null-zp-split": ((1, 3, 5, 6), (2, 3, 3, 3), (1, 1), (0, 2, 1, 1), 1, False, 1, "none"),
    "3x3-s2-split": ((1, 5, 7, 7), (3, 5, 3, 3), (2, 2), (1, 1, 1, 1), 1, True, 2, "relu"),
    "grouped-split": ((1, 6, 5, 5), (4, 3, 3, 3), (1, 1), (1, 0, 1, 2), 2, True, 1, "none"),
    "relu6": ((1, 3, 6, 5), (4, 3, 3, 3), (1, 2), (1, 1, 1, 1), 1, True, None, "relu6"),
}


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_s8(case):
    xs, ws, strides, pads, groups, zp, channels, clamp = CONV_CASES[case]
    x, w, wz, b, zx, zy = conv_data(rng_for("conv", case), xs, ws, zp, 5000)
    want, _ = run_conv(x, zx, w, wz, b, strides, pads, groups, zy=zy, clamp=clamp, channels=channels)
    assert len(np.unique(want)) > 10  # a spread of values, not a saturated constant


def test_conv_s8_multiplier_beyond_the_256_preclamp():
    """v = acc * M far beyond +-2**22, where the float32 rounding trick would break without the clamp."""
    rng = rng_for("conv-big")
    x, w, b = s8(rng, (1, 2, 5, 5)), s8(rng, (3, 2, 3, 3)), np.array([-7, 0, 9], np.int32)
    want, _ = run_conv(x, 5, w, channel_zps(rng, 3), b, (1, 1), (1, 1, 1, 1), 1, sy=1e-9, zy=-3)
    assert set(np.unique(want)) <= {-128, 127} and len(np.unique(want)) == 2


DW_CASES = {  # x shape, kernel, strides, pads, zero points, split, clamp
    "3x3": ((2, 4, 6, 7), (3, 3), (1, 1), (1, 1, 1, 1), True, None, "none"),
    "5x5-s2-asym": ((1, 3, 9, 8), (5, 5), (2, 2), (2, 1, 2, 2), True, None, "none"),
    "3x3-s2-null-zp": ((1, 3, 7, 5), (3, 3), (2, 2), (0, 0, 1, 1), False, None, "none"),
    "3x3-split": ((1, 5, 5, 6), (3, 3), (1, 2), (1, 2, 1, 0), True, 2, "none"),
    "3x3-split-null-zp": ((1, 4, 6, 6), (3, 3), (1, 1), (1, 1, 1, 1), False, 3, "relu"),
    "1x1": ((1, 3, 4, 5), (1, 1), (1, 1), (0, 0, 0, 0), True, None, "none"),
    "relu6": ((1, 4, 6, 5), (3, 3), (1, 1), (0, 1, 2, 1), True, None, "relu6"),
}


@pytest.mark.parametrize("in_place", [False, True], ids=["out-of-place", "in-place"])
@pytest.mark.parametrize("case", DW_CASES)
def test_conv_dw_s8(case, in_place):
    xs, (kh, kw), strides, pads, zp, channels, clamp = DW_CASES[case]
    x, w, wz, b, zx, zy = conv_data(rng_for("dw", case), xs, (xs[1], 1, kh, kw), zp, 3000)
    want, _ = run_conv(x, zx, w, wz, b, strides, pads, xs[1], zy=zy, clamp=clamp, channels=channels, depthwise=True,
                       in_place=in_place)
    assert len(np.unique(want)) > 10


# ---- int32 saturation at both edges, through every accumulating kernel -------------------------------------
EDGE_SIGNS = np.array([1, -1, 1, -1])  # sign of (w - z_w) per channel; x - z_x > 0 everywhere
EDGE_BIAS = np.array([I32_MAX - 50, I32_MIN + 50, I32_MAX - 3_000_000, I32_MIN + 3_000_000], np.int32)


def edge_inputs(rng, wshape, zero_points: bool):
    """Inputs whose channels 0 / 1 saturate the int32 sum up / down, channels 2 / 3 come close."""
    wz = np.array([-5, 3, 7, -2], np.int32) if zero_points else np.zeros(4, np.int32)
    per_row = (-1,) + (1,) * (len(wshape) - 1)
    w = wz.reshape(per_row) + EDGE_SIGNS.reshape(per_row) * rng.integers(1, 100, wshape, endpoint=True)
    return w.astype(np.int8), (wz if zero_points else None)


@pytest.mark.parametrize("kernel", ["gemm", "conv3x3", "conv1x1-fast", "depthwise"])
def test_int32_saturation_both_ways(kernel):
    """acc + bias beyond INT32_MAX / INT32_MIN saturates; M makes float32(INT32_MAX) * M the tie 100.5, so a
    saturated channel gives exactly 100 / -100 (unsaturated or wrapping sums would give 101 / -101 or worse)."""
    rng = rng_for("edge", kernel)
    sw, zx = np.full(4, EDGE_M, np.float32), -128
    if kernel == "gemm":
        x = s8(rng, (3, 8), 0, 127)
        w, wz = edge_inputs(rng, (4, 8), True)
        want, acc = (a.T for a in run_gemm(x, zx, w, wz, EDGE_BIAS, sx=1.0, sw=sw, sy=1.0, zy=0))
    else:
        depthwise = kernel == "depthwise"
        x = s8(rng, (1, 4 if depthwise else 2, 5, 4), 0, 127)
        wshape = {"conv3x3": (4, 2, 3, 3), "conv1x1-fast": (4, 2, 1, 1), "depthwise": (4, 1, 3, 3)}[kernel]
        w, wz = edge_inputs(rng, wshape, kernel != "conv1x1-fast")
        pads = (0, 0, 0, 0) if kernel == "conv1x1-fast" else (1, 0, 1, 1)
        groups = 4 if depthwise else 1
        want, acc = (a.swapaxes(0, 1) for a in run_conv(x, zx, w, wz, EDGE_BIAS, (1, 1), pads, groups, sx=1.0,
                                                          sw=sw, sy=1.0, depthwise=depthwise))
    assert (acc[0] > I32_MAX).all() and (acc[1] < I32_MIN).all()  # saturation is really reached
    assert (want[0] == 100).all() and (want[1] == -100).all()


@pytest.mark.parametrize("stage", [1, 2])
def test_pw_dw_int32_saturation_both_ways(stage):
    """The same edges through either half of the fused pointwise + depthwise kernel, the other half passing
    the signs through: stage 1 at the edges then a depthwise identity, or a clamped stage 1 then the edges."""
    rng = rng_for("edge-pw-dw", stage)
    x = s8(rng, (1, 3, 5, 4), 0, 127)
    w1, z1 = edge_inputs(rng, (4, 3, 1, 1), True)
    z2 = np.array([2, -3, 1, 4], np.int32)
    zero = np.zeros(4, np.int32)
    if stage == 1:  # mid = +-100 (saturated tie), then y = mid
        w2 = (z2 + 1).reshape(4, 1, 1, 1).astype(np.int8)
        want = run_pw_dw(x, -128, w1, z1, EDGE_BIAS, w2, z2, zero, (1, 1), (0, 0, 0, 0), sx=1.0, s1=EDGE_M, smid=1.0,
                         s2=1.0, sy=1.0)
    else:  # mid = 127 / -128 by channel sign, then the edges
        w2 = (rng.integers(1, 100, (4, 1, 3, 3), endpoint=True) + z2.reshape(4, 1, 1, 1)).astype(np.int8)
        want = run_pw_dw(x, -128, w1, z1, zero, w2, z2, EDGE_BIAS, (1, 1), (1, 1, 1, 1), sx=1.0, s1=1.0, smid=1.0,
                         s2=EDGE_M, sy=1.0)
    assert (want[:, 0] == 100).all() and (want[:, 1] == -100).all()


# ---- fused pointwise + depthwise ----------------------------------------------------------------------------
def run_pw_dw(x, zx, w1, z1, b1, w2, z2, b2, strides, pads, *, sx=0.05, s1=None, smid=None, zmid=0,
              mid_clamp="none", s2=None, sy=None, zy=0, clamp="none"):
    """tte_conv_pw_dw_s8 against the reference pw_dw; z1 / z2 None pass NULL zero points."""
    mch, c = w1.shape[:2]
    s1 = np.linspace(0.003, 0.005, mch, dtype=np.float32) if s1 is None else np.full(mch, s1, np.float32)
    s2 = np.linspace(0.004, 0.008, mch, dtype=np.float32) if s2 is None else np.full(mch, s2, np.float32)
    zp1, zp2 = (np.zeros(mch, np.int32) if z is None else z for z in (z1, z2))
    (mlo, mhi), (qmin, qmax) = clamp_range(mid_clamp, zmid), clamp_range(clamp, zy)
    # spread the intermediate and the output like the outputs of the other tests
    acc1 = np.einsum("mc,nchw->nmhw", w1[:, :, 0, 0].astype(np.int64) - zp1[:, None], x.astype(np.int64) - zx)
    acc1 += b1[:, None, None]
    smid = fit_scale(acc1, sx, s1) if smid is None else smid
    if sy is None:
        m1 = sem.multiplier(sem.f64(np.float32(sx)) * s1, np.float32(smid)).reshape(-1, 1, 1)
        mid = sem.requantize(acc1, m1, zmid, mlo, mhi).astype(np.int64) - zmid
        rms = np.sqrt(np.mean(np.square(mid)) * np.mean(np.square(w2.astype(np.int64) - zp2.reshape(-1, 1, 1, 1))))
        sy = fit_scale(np.array([rms * np.sqrt(w2.shape[2] * w2.shape[3])]), smid, s2)
    g, node = one_node("pw_dw", [(x, pt(sx, zx)), (w1, pc(s1, zp1)), (b1, None), (w2, pc(s2, zp2)), (b2, None)],
                       pt(sy, zy), strides=strides, pads=pads, mid_quant=pt(smid, zmid), mid_qmin=mlo, mid_qmax=mhi,
                       qmin=qmin, qmax=qmax)
    want = K.pw_dw(g, node, x, w1, b1, w2, b2)
    sx, smid, sy = (float(v.scale) for v in (g["x0"].quant, node.attrs["mid_quant"], g["y"].quant))  # float32
    m1 = sem.multiplier(sem.f64(sx) * sem.f64(s1), smid)
    m2 = sem.multiplier(sem.f64(smid) * sem.f64(s2), sy)
    q1, q2 = cr.QuantParams(zx, zmid, mlo, mhi), cr.QuantParams(zmid, zy, qmin, qmax)
    geo, xd, w2d, yd = cr.ConvGeometry(*strides, *pads, mch), dims(x.shape), dims(w2.shape), dims(want.shape)
    n = lib().tte_conv_pw_dw_s8_get_buffer_size(ref(xd))
    assert n == x.shape[2] * x.shape[3]
    out, scratch = np.full(want.shape, 99, np.int8), np.full(n + 16, 0x55, np.int8)  # with 16 guard bytes
    status = lib().tte_conv_pw_dw_s8(ref(q1), ptr(w1), ptr(z1), ptr(b1), ptr(m1), ref(geo), ref(q2), ref(w2d), ptr(w2),
                                     ptr(z2), ptr(b2), ptr(m2), ref(xd), ptr(x), ref(yd), ptr(out), ptr(scratch), n)
    assert status == TTE_OK and (scratch[n:] == 0x55).all()
    np.testing.assert_array_equal(out, want)
    return want


PW_DW_CASES = {  # x shape, expanded channels, kernel, strides, pads, w1 / w2 zero points, mid clamp, clamp
    "3x3": ((2, 3, 6, 5), 5, 3, (1, 1), (1, 1, 1, 1), (True, True), "relu6", "none"),
    "5x5-s2-asym-null-zp": ((1, 4, 7, 6), 3, 5, (2, 2), (2, 1, 1, 2), (False, False), "none", "relu"),
    "3x3-s2-w1-zp": ((1, 2, 5, 5), 4, 3, (2, 2), (0, 1, 1, 0), (True, False), "relu", "none"),
    "3x3-w2-zp": ((1, 3, 7, 8), 4, 3, (1, 2), (0, 0, 0, 0), (False, True), "none", "relu6"),
}


@pytest.mark.parametrize("case", PW_DW_CASES)
def test_conv_pw_dw_s8(case):
    xs, mch, k, strides, pads, (zp1, zp2), mid_clamp, clamp = PW_DW_CASES[case]
    rng = rng_for("pw_dw", case)
    x, w1, w2 = s8(rng, xs), s8(rng, (mch, xs[1], 1, 1)), s8(rng, (mch, 1, k, k))
    z1, z2 = (channel_zps(rng, mch) if zp else None for zp in (zp1, zp2))
    b1, b2 = (rng.integers(-3000, 3000, mch, dtype=np.int32) for _ in range(2))
    zx, zmid, zy = (int(v) for v in rng.integers(-20, 21, 3))
    want = run_pw_dw(x, zx, w1, z1, b1, w2, z2, b2, strides, pads, zmid=zmid, mid_clamp=mid_clamp, zy=zy, clamp=clamp)
    assert len(np.unique(want)) > 10


# ---- gemm ---------------------------------------------------------------------------------------------------
def run_gemm(x, zx, w, wz, b, *, sx=0.05, sw=None, sy=None, zy=0, clamp="none"):
    """tte_gemm_s8 against the reference gemm; returns (output, exact accumulator)."""
    (n, k), m = x.shape, w.shape[0]
    sw = np.linspace(0.002, 0.006, m, dtype=np.float32) if sw is None else sw
    qmin, qmax = clamp_range(clamp, zy)
    g, node = one_node("gemm", [(x, pt(sx, zx)), (w, pc(sw, np.zeros(m) if wz is None else wz)), (b, None)],
                       pt(1.0, zy), qmin=qmin, qmax=qmax, save_mask=True)
    acc = K.gemm_accumulator(g, node, x, w, b)
    g["y"].quant = pt(fit_scale(acc, sx, sw) if sy is None else sy, zy)
    want, want_mask = K.gemm(g, node, x, w, b)
    mult = np.ascontiguousarray(K.conv_multiplier(g, node), np.float32)
    q = cr.QuantParams(zx, zy, qmin, qmax)
    check(lambda out, mask: lib().tte_gemm_s8(ref(q), n, k, m, ptr(x), ptr(w), ptr(wz), ptr(b), ptr(mult), ptr(out),
                                              ptr(mask)), want, want_mask)
    return want, acc


@pytest.mark.parametrize("zp", [True, False], ids=["zp", "null-zp"])
@pytest.mark.parametrize("clamp", ["none", "relu6", "huge-m"])
def test_gemm_s8(zp, clamp):
    rng = rng_for("gemm", zp, clamp)
    x, w = s8(rng, (3, 37)), s8(rng, (7, 37))
    b = rng.integers(-20000, 20000, 7, dtype=np.int32)
    zx, zy = int(rng.integers(-128, 128)), int(rng.integers(-20, 21))
    sy = 1e-8 if clamp == "huge-m" else None
    want, _ = run_gemm(x, zx, w, channel_zps(rng, 7) if zp else None, b, sy=sy, zy=zy,
                       clamp="none" if clamp == "huge-m" else clamp)
    assert len(np.unique(want)) > (1 if clamp == "huge-m" else 6)


# ---- elementwise: requantize, add, concat -------------------------------------------------------------------
ALL_S8 = np.r_[np.arange(-128, 128), [0, 1, -1, 127, -128, 5, 7]].astype(np.int8)  # 263 values: a partial byte
REQ_CASES = {  # z_x, M, z_y, qmin, qmax
    "identity": (0, 1.0, 0, -128, 127),
    "ties": (3, 0.5, -7, -128, 127),
    "quarter-ties": (-1, 0.25, 0, -128, 127),
    "relu": (-128, 0.37, 10, 10, 127),
    "clamps": (5, 2.75, 0, -128, 127),
    "huge-m": (-20, 3e7, 3, -128, 127),
    "narrowed": (7, 0.0625, -100, -100, -40),
}


@pytest.mark.parametrize("case", REQ_CASES)
def test_requantize_s8(case):
    zx, mult, zy, qmin, qmax = REQ_CASES[case]
    x = rng_for("req", case).permutation(ALL_S8)
    g, node = one_node("requantize", [(x, pt(mult, zx))], pt(1.0, zy), qmin=qmin, qmax=qmax, save_mask=True)
    want, want_mask = K.requantize(g, node, x)
    m = c_float(mult)
    check(lambda out, mask: lib().tte_requantize_s8(x.size, ptr(x), zx, m, zy, qmin, qmax, ptr(out), ptr(mask)),
          want, want_mask)
    buf = x.copy()  # in place
    assert lib().tte_requantize_s8(x.size, ptr(buf), zx, m, zy, qmin, qmax, ptr(buf), None) == TTE_OK
    np.testing.assert_array_equal(buf, want)


ADD_CASES = {  # b shape (a is [2, 3, 4, 5]), z_a, M_a, z_b, M_b, z_y, qmin, qmax
    "same-size": ((2, 3, 4, 5), 3, 0.7, -9, 0.45, 2, -128, 127),
    "bias-last-axis": ((5,), -4, 0.9, 11, 1.3, -6, -128, 127),
    "bias-per-sample": ((3, 4, 5), 0, 1.0, 20, 0.6, 0, -128, 127),
    "ties": ((2, 3, 4, 5), 1, 0.5, -2, 0.25, 0, -128, 127),
    "relu6": ((2, 3, 4, 5), -7, 0.8, 5, 0.8, -30, -30, 20),
    "huge-m": ((5,), 2, 4e6, -3, 1e-3, 0, -128, 127),
    "per-channel": ((1, 3, 1, 1), 5, 0.7, -2, 0.9, 1, -128, 127),
    "per-channel-rank-3": ((3, 1, 1), -1, 0.6, 7, 1.1, 0, -128, 127),
    "per-row": ((1, 1, 4, 5), 0, 0.8, 3, 0.5, -3, -128, 127),
}


@pytest.mark.parametrize("case", ADD_CASES)
def test_add_s8(case):
    bs, za, ma, zb, mb, zy, qmin, qmax = ADD_CASES[case]
    rng = rng_for("add", case)
    a, b = s8(rng, (2, 3, 4, 5)), s8(rng, bs)
    g, node = one_node("add", [(a, pt(ma, za)), (b, pt(mb, zb))], pt(1.0, zy), qmin=qmin, qmax=qmax, save_mask=True)
    want, want_mask = K.add(g, node, a, b)
    size, inner = broadcast_run(a.shape, b.shape)
    check(lambda out, mask: lib().tte_add_s8(a.size, ptr(a), za, c_float(ma), size, inner, ptr(b), zb, c_float(mb),
                                             zy, qmin, qmax, ptr(out), ptr(mask)), want, want_mask)


@pytest.mark.parametrize("clamp", ["none", "relu"])
def test_concat_channels_s8(clamp):
    """Two operands with their own parameters into channel ranges [0, 3) and [3, 5) of one output."""
    rng = rng_for("concat", clamp)
    xs, qs, zy = [s8(rng, (2, 3, 3, 5)), s8(rng, (2, 2, 3, 5))], [pt(0.05, 4), pt(0.11, -9)], -3
    qmin, qmax = clamp_range(clamp, zy)
    g, node = one_node("concat", list(zip(xs, qs)), pt(0.07, zy), axis=1, qmin=qmin, qmax=qmax, save_mask=True)
    want, want_mask = K.concat(g, node, *xs)

    def call(out, mask):
        for x, q, offset in zip(xs, qs, (0, 3)):
            assert (out[:, offset:] == 99).all()  # the channels of later operands are still untouched
            m = c_float(sem.multiplier(q.scale, np.float32(0.07)))
            assert lib().tte_concat_channels_s8(ref(dims(x.shape)), ptr(x), int(q.zero_point), m, zy, qmin, qmax, 5,
                                                offset, ptr(out), ptr(mask)) == TTE_OK
        return TTE_OK

    check(call, want, want_mask)


# ---- pools --------------------------------------------------------------------------------------------------
POOL_CASES = {  # x shape, kernel, strides, pads, s_x, s_y
    "3x3-s2-pad1": ((2, 3, 7, 6), (3, 3), (2, 2), (1, 1, 1, 1), 0.05, 0.02),
    "3x2-asym": ((1, 2, 6, 9), (3, 2), (1, 2), (1, 0, 2, 1), 0.04, 0.03),
    "2x2-ties": ((1, 2, 5, 5), (2, 2), (2, 2), (0, 0, 1, 1), 0.05, 0.05),
    "5x5-pad2": ((1, 2, 6, 5), (5, 5), (1, 1), (2, 2, 2, 2), 0.03, 0.01),
    "unpadded": ((1, 3, 8, 12), (2, 3), (2, 3), (0, 0, 0, 0), 0.02, 0.01),
}


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avgpool_s8(case, count_include_pad):
    xs, (kh, kw), strides, pads, sx, sy = POOL_CASES[case]
    rng = rng_for("avgpool", case)
    x = s8(rng, xs)
    zx, zy = int(rng.integers(-30, 31)), int(rng.integers(-10, 11))
    qmin, qmax = clamp_range("relu" if case == "unpadded" else "none", zy)
    g, node = one_node("avgpool", [(x, pt(sx, zx))], pt(sy, zy), kernel=(kh, kw), strides=strides, pads=pads,
                       count_include_pad=count_include_pad, qmin=qmin, qmax=qmax, save_mask=True)
    want, want_mask = K.avgpool(g, node, x)
    counts = np.arange(kh * kw + 1, dtype=np.float64)
    counts[0] = 1  # multipliers[count]: entry 0 unused
    table = sem.multiplier(np.float32(sx), sem.f64(np.float32(sy)) * counts)
    geo, q = cr.PoolGeometry(kh, kw, *strides, *pads), cr.QuantParams(zx, zy, qmin, qmax)
    check(lambda out, mask: lib().tte_avgpool_s8(ref(geo), ref(q), count_include_pad, ref(dims(x.shape)), ptr(x),
                                                 ptr(table), ref(dims(want.shape)), ptr(out), ptr(mask)),
          want, want_mask)
    assert len(np.unique(want)) > 10


@pytest.mark.parametrize("case", ["random", "ties", "relu"])
def test_global_avgpool_s8(case):
    xs, sx, sy = {"random": ((2, 5, 5, 3), 0.05, 0.01), "ties": ((3, 4, 2, 2), 0.05, 0.05),
                  "relu": ((2, 4, 3, 3), 0.05, 0.004)}[case]
    rng = rng_for("gap", case)
    x, zx, zy = s8(rng, xs), 7, -5
    qmin, qmax = clamp_range("relu" if case == "relu" else "none", zy)
    g, node = one_node("global_avgpool", [(x, pt(sx, zx))], pt(sy, zy), qmin=qmin, qmax=qmax, save_mask=True)
    want, want_mask = K.global_avgpool(g, node, x)
    m = c_float(sem.multiplier(np.float32(sx), sem.f64(np.float32(sy)) * (xs[2] * xs[3])))
    q = cr.QuantParams(zx, zy, qmin, qmax)
    check(lambda out, mask: lib().tte_global_avgpool_s8(ref(q), m, ref(dims(xs)), ptr(x), ptr(out), ptr(mask)),
          want, want_mask)


MAXPOOL_CASES = {  # x shape, kernel, strides, pads, (s_x, z_x), (s_y, z_y), clamp
    "3x3-s2-pad1-same-params": ((2, 3, 6, 7), (3, 3), (2, 2), (1, 1, 1, 1), (0.05, 3), (0.05, 3), "none"),
    "3x3-s2-pad1-rescaled": ((2, 3, 6, 7), (3, 3), (2, 2), (1, 1, 1, 1), (0.05, 3), (0.03, -5), "none"),
    "2x2-asym": ((1, 2, 5, 5), (2, 2), (2, 2), (0, 0, 1, 1), (0.04, -10), (0.1, 0), "none"),
    "3x2-asym": ((1, 2, 5, 6), (3, 2), (1, 2), (0, 1, 2, 0), (0.02, 0), (0.015, 7), "relu"),
}


@pytest.mark.parametrize("case", MAXPOOL_CASES)
def test_maxpool_s8(case):
    xs, kernel, strides, pads, (sx, zx), (sy, zy), clamp = MAXPOOL_CASES[case]
    rng = rng_for("maxpool", case)
    x = s8(rng, xs)
    x[0, 0] = s8(rng, xs[2:], -128, -100)  # a plane below every zero point: padding must never win
    x[0, 1, 0] = -128
    qmin, qmax = clamp_range(clamp, zy)
    g, node = one_node("maxpool", [(x, pt(sx, zx))], pt(sy, zy), kernel=kernel, strides=strides, pads=pads,
                       qmin=qmin, qmax=qmax, save_mask=True)
    want, want_mask = K.maxpool(g, node, x)
    m = c_float(sem.multiplier(np.float32(sx), np.float32(sy)))
    geo, q = cr.PoolGeometry(*kernel, *strides, *pads), cr.QuantParams(zx, zy, qmin, qmax)
    check(lambda out, mask: lib().tte_maxpool_s8(ref(geo), ref(q), m, ref(dims(xs)), ptr(x), ref(dims(want.shape)),
                                                 ptr(out), ptr(mask)), want, want_mask)


# ---- quantize / dequantize ----------------------------------------------------------------------------------
@pytest.mark.parametrize("scale, zp", [(0.25, 0), (0.25, -3), (0.1, 17), (2**-7, -128), (3.3, 127)])
def test_quantize_f32(scale, zp):
    rng = rng_for("quantize", scale, zp)
    # (k + 0.5) * scale and its float32 neighbours: exact ties for power-of-two scales, otherwise values whose
    # rounding tells x / scale from x * (1 / scale)
    ties = ((np.arange(-140, 140) + 0.5) * np.float32(scale)).astype(np.float32)
    ties = np.r_[ties, np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))]
    x = np.r_[rng.normal(0, 20, 200).astype(np.float32), ties, np.float32([1e3, -1e3, 1e30, -1e30, np.inf, -np.inf,
                                                                           0.0, -0.0])]
    want = sem.quantize(x, scale, zp)
    out = np.zeros(x.size, np.int8)
    assert lib().tte_quantize_f32(x.size, ptr(x), c_float(scale), zp, ptr(out)) == TTE_OK
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("zp", [0, 5, 127, -3, -128])
def test_quantize_f32_nan(zp):
    """NaN quantizes to -128 whatever the zero point, in C and in the reference (semantics.py point 4; the
    reference used to give +127 for a negative zero point: NaN -> INT32_MIN, plus the zero point, wrapped)."""
    x = np.full(3, np.nan, np.float32)
    out = np.zeros(3, np.int8)
    assert lib().tte_quantize_f32(3, ptr(x), c_float(0.1), zp, ptr(out)) == TTE_OK
    assert (out == -128).all()
    np.testing.assert_array_equal(out, sem.quantize(x, 0.1, zp))


@pytest.mark.parametrize("scale, zp", [(0.1, 0), (0.0235, -128), (3.0, 127), (1e-30, 9)])
def test_dequantize_s8(scale, zp):
    x = ALL_S8
    want = sem.dequantize(x, np.float32(scale), zp)
    out = np.full(x.size, np.nan, np.float32)
    assert lib().tte_dequantize_s8(x.size, ptr(x), c_float(scale), zp, ptr(out)) == TTE_OK
    np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))


# ---- argument errors ----------------------------------------------------------------------------------------
BIG = 4096  # every buffer of the error calls is this large, so a missing check cannot corrupt memory


def _error_call(kernel: str, **bad) -> tuple[int, np.ndarray]:
    """Call ``kernel`` with one bad argument; returns (status, output buffer)."""
    z, scratch = np.zeros(BIG, np.int8), np.zeros(BIG, np.int8)
    zi, mf = np.zeros(BIG, np.int32), np.ones(BIG, np.float32)
    out = np.full(BIG, 99, np.int8)
    q = cr.QuantParams(0, 0, -128, 127)
    if kernel in ("conv", "dw"):
        a = {"x": (1, 4, 5, 5), "w": (4, 1, 3, 3), "y": (1, 4, 5, 5), "groups": 4} | bad
        geo, wd = cr.ConvGeometry(1, 1, 1, 1, 1, 1, a["groups"]), dims(a["w"])
        weights = cr.SplitWeights(ptr(z), None, a["w"][0 if kernel == "dw" else 1])
        args = (ref(geo), ref(q), ref(dims(a["x"])), ptr(z), ref(wd), ref(weights), ptr(zi), ptr(zi), ptr(mf),
                ref(dims(a["y"])), ptr(out), None)
        status = (lib().tte_conv_s8(*args, None, 0) if kernel == "conv"
                  else lib().tte_conv_dw_s8(*args, ptr(scratch), scratch.size))
    elif kernel == "pw_dw":
        a = {"w2": (4, 1, 3, 3), "y": (1, 4, 5, 5), "groups": 4} | bad
        geo = cr.ConvGeometry(1, 1, 1, 1, 1, 1, a["groups"])
        status = lib().tte_conv_pw_dw_s8(ref(q), ptr(z), None, ptr(zi), ptr(mf), ref(geo), ref(q), ref(dims(a["w2"])),
                                         ptr(z), None, ptr(zi), ptr(mf), ref(dims((1, 2, 5, 5))), ptr(z),
                                         ref(dims(a["y"])), ptr(out), ptr(scratch), scratch.size)
    elif kernel == "add":
        a = {"size": 12, "b_size": 4, "b_inner": 1} | bad
        status = lib().tte_add_s8(a["size"], ptr(z), 0, c_float(1.0), a["b_size"], a["b_inner"], ptr(z), 0,
                                  c_float(1.0), 0, -128, 127, ptr(out), None)
    else:
        a = {"c": 3, "offset": 0, "out_c": 5} | bad
        status = lib().tte_concat_channels_s8(ref(dims((1, a["c"], 2, 2))), ptr(z), 0, c_float(1.0), 0, -128, 127,
                                              a["out_c"], a["offset"], ptr(out), None)
    return status, out


ERROR_CASES = {
    "conv-groups-0": ("conv", {"groups": 0}),
    "conv-channels-not-groups-x-cg": ("conv", {"w": (4, 2, 3, 3)}),
    "conv-out-channels-not-divisible": ("conv", {"x": (1, 6, 5, 5), "w": (5, 2, 3, 3), "y": (1, 5, 5, 5), "groups": 3}),
    "conv-out-dims-c": ("conv", {"y": (1, 3, 5, 5)}),
    "dw-channel-multiplier": ("dw", {"w": (8, 1, 3, 3), "y": (1, 8, 5, 5)}),
    "dw-w-c-not-1": ("dw", {"w": (4, 2, 3, 3)}),
    "dw-out-dims-c": ("dw", {"y": (1, 3, 5, 5)}),
    "dw-groups-not-c": ("dw", {"groups": 2}),
    "pw_dw-w2-c-not-1": ("pw_dw", {"w2": (4, 2, 3, 3)}),
    "pw_dw-out-dims-c": ("pw_dw", {"y": (1, 3, 5, 5)}),
    "pw_dw-groups-not-m": ("pw_dw", {"groups": 1}),
    "add-b_size-0": ("add", {"b_size": 0}),
    "add-b_size-negative": ("add", {"b_size": -4}),
    "add-size-not-multiple": ("add", {"b_size": 5}),
    "add-b_inner-0": ("add", {"b_inner": 0}),
    "add-b_inner-not-dividing": ("add", {"b_inner": 2}),
    "concat-past-out-channels": ("concat", {"offset": 3}),
    "concat-too-many-channels": ("concat", {"c": 6}),
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_argument_errors(case):
    kernel, bad = ERROR_CASES[case]
    assert _error_call(kernel)[0] == TTE_OK  # the same call without the bad argument is fine
    status, out = _error_call(kernel, **bad)
    assert status == TTE_ERROR_ARGUMENT
    assert (out == 99).all()  # nothing written


# ---- every runtime function has a direct test ---------------------------------------------------------------
DECLARATION = re.compile(r"^(?!static\b)(?:const\s+)?\w+[\s*]+(tte_\w+)\s*\(", re.M)
RUNTIME_FUNCTIONS = sorted({name for header in (ROOT / "runtime_c/include/tte_runtime.h",
                                                 ROOT / "runtime_c/src/tte_internal.h")
                            for name in DECLARATION.findall(header.read_text())})


def test_runtime_function_list_is_parsed():
    assert {"tte_conv_s8", "tte_quantize_f32", "tte_sgd_s32", "tte_expf"} <= set(RUNTIME_FUNCTIONS)
    assert "tte_round_clamp" not in RUNTIME_FUNCTIONS  # static inline helpers are not API
    assert len(RUNTIME_FUNCTIONS) > 30


@pytest.mark.parametrize("name", RUNTIME_FUNCTIONS)
def test_every_runtime_function_is_called_directly(name):
    files = sorted((ROOT / "tests").glob("test_kernels_*.py"))
    text = "".join(f.read_text() for f in files if f.exists())
    # a call `lib().name(` or the function taken from the library (`f = lib().name`) and called
    assert re.search(rf"\.{name}\b", text), f"{name} has no direct test in {[f.name for f in files]}"
