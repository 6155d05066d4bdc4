"""Golden tests of runtime_c with TFLite's integer arithmetic, each kernel called directly through ctypes.

Every kernel's int8 output and bit-packed saturation mask must equal, bit for bit, those of the op's numpy
reference kernel run on a graph whose arithmetic is ``"tflite"`` (tte/ops/*, tte/reference/fixedpoint.py): the
conv family and max pool through the Q31 multipliers of tte_quant_params, the ``tte_*_tflite_*`` kernels for
the ops whose algorithm differs.  In ``"tflite-micro"`` the gemm is tte_gemm_s8 with Q31 multipliers (TFLite
Micro's FULLY_CONNECTED, MBQM per channel).  Data: seeded random tensors, exact rounding ties of both rounding stages,
int32 saturation, huge and tiny multipliers (left shifts that wrap, right shifts of 31), windows with no element,
NaN and infinities.  The primitives (SaturatingRoundingDoublingHighMul, RoundingDivideByPOT, MBQM) are checked
over the whole int32 range through a 1x1 conv whose bias carries the values; their hand-worked values are in
tests/test_tflite_arithmetic.py.
"""

from __future__ import annotations

import cruntime as cr
import numpy as np
import pytest
import refkernels as K
from cruntime import TTE_ERROR_ARGUMENT, TTE_OK, c_float, dims, lib, ptr, ref
from test_kernels_forward import (
    ALL_S8,
    CONV_CASES,
    DW_CASES,
    MAXPOOL_CASES,
    POOL_CASES,
    PW_DW_CASES,
    channel_zps,
    check,
    clamp_range,
    conv_data,
    fit_scale,
    one_node,
    pc,
    pt,
    rng_for,
    s8,
    split,
)

from tte.ir.facts import set_arithmetic
from tte.ops.conv import pw_dw_tflite_multipliers, tflite_multipliers
from tte.ops.elementwise import add_params, broadcast_run
from tte.ops.gemm import tflite_scales
from tte.reference import fixedpoint as fp

I32_MIN, I32_MAX = fp.INT32_MIN, fp.INT32_MAX


def tflite_node(op: str, operands, yq, arithmetic: str = "tflite", **attrs):
    """one_node with TFLite's arithmetic (or ``arithmetic``)."""
    g, node = one_node(op, operands, yq, **attrs)
    set_arithmetic(g, arithmetic)
    return g, node


def quant(zx, zy, qmin, qmax, multipliers):
    """A tte_quant_params with TFLite's multipliers; returns (struct, the arrays it points to)."""
    m, n = (np.ascontiguousarray(np.atleast_1d(v), np.int32) for v in multipliers)
    return cr.QuantParams(zx, zy, qmin, qmax, ptr(m), ptr(n)), (m, n)


# ---- conv, depthwise conv, pointwise + depthwise --------------------------------------------------------------
def run_conv(x, zx, w, wz, b, strides, pads, groups, *, sx=0.05, sw=None, sy=None, zy=0, clamp="none",
             channels=None, depthwise=False, in_place=False):
    """tte_conv_s8 / tte_conv_dw_s8 with TFLite's multipliers in q against the reference conv."""
    o = w.shape[0]
    sw = np.linspace(0.002, 0.006, o, dtype=np.float32) if sw is None else np.asarray(sw, np.float32)
    qmin, qmax = clamp_range(clamp, zy)
    zps = np.zeros(o, np.int32) if wz is None else wz
    wq = pt(float(sw), 0) if sw.ndim == 0 else pc(sw, zps)  # a 0-d scale: one for every channel
    g, node = tflite_node("conv", [(x, pt(sx, zx)), (w, wq), (b, None)], pt(1.0, zy), strides=strides,
                          pads=pads, groups=groups, qmin=qmin, qmax=qmax, save_mask=True)
    acc = K.conv_accumulator(g, node, x, w, b)
    g["y"].quant = pt(fit_scale(acc, sx, sw) if sy is None else sy, zy)
    want, want_mask = K.conv(g, node, x, w, b)
    _t, _f, weights = split(w, channels, 0 if depthwise else 1)
    q, _keep = quant(zx, zy, qmin, qmax, tflite_multipliers(g, node))
    geo, xd, wd, yd = cr.ConvGeometry(*strides, *pads, groups), dims(x.shape), dims(w.shape), dims(want.shape)

    def call(out, mask):
        src, dst = x, out
        if in_place:
            src = dst = x.ravel().copy()
        if depthwise:
            scratch = np.zeros(want.shape[2] * want.shape[3], np.int8)
            status = lib().tte_conv_dw_s8(ref(geo), ref(q), ref(xd), ptr(src), ref(wd), ref(weights), ptr(wz), ptr(b),
                                          None, ref(yd), ptr(dst), ptr(mask), ptr(scratch), scratch.size)
        else:
            status = lib().tte_conv_s8(ref(geo), ref(q), ref(xd), ptr(src), ref(wd), ref(weights), ptr(wz), ptr(b),
                                       None, ref(yd), ptr(dst), ptr(mask), None, 0)
        if in_place:
            out.reshape(-1)[:] = dst[: out.size]
        return status

    check(call, want, want_mask)
    return want


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_s8_tflite(case):
    xs, ws, strides, pads, groups, zp, channels, clamp = CONV_CASES[case]
    x, w, wz, b, zx, zy = conv_data(rng_for("conv-tflite", case), xs, ws, zp, 5000)
    want = run_conv(x, zx, w, wz, b, strides, pads, groups, zy=zy, clamp=clamp, channels=channels)
    assert len(np.unique(want)) > 10


@pytest.mark.parametrize("in_place", [False, True], ids=["out-of-place", "in-place"])
@pytest.mark.parametrize("case", DW_CASES)
def test_conv_dw_s8_tflite(case, in_place):
    xs, (kh, kw), strides, pads, zp, channels, clamp = DW_CASES[case]
    x, w, wz, b, zx, zy = conv_data(rng_for("dw-tflite", case), xs, (xs[1], 1, kh, kw), zp, 3000)
    want = run_conv(x, zx, w, wz, b, strides, pads, xs[1], zy=zy, clamp=clamp, channels=channels, depthwise=True,
                    in_place=in_place)
    assert len(np.unique(want)) > 10


def test_conv_s8_tflite_per_tensor_weight_scale():
    """A weight with one scale for every channel: TFLite still computes one multiplier per channel."""
    rng = rng_for("conv-tflite-per-tensor")
    x, w, wz, b, zx, zy = conv_data(rng, (1, 3, 6, 6), (4, 3, 3, 3), False, 4000)
    run_conv(x, zx, w, wz, b, (1, 1), (1, 1, 1, 1), 1, sw=np.float32(0.004), zy=zy)


# MBQM over the whole int32 range: a 1x1 conv reading x == z_x everywhere, so that the accumulator is the bias
EDGE_ACC = np.array([0, 1, -1, 2, -2, 3, -3, 5, -5, 255, -255, 1 << 20, -(1 << 20), (1 << 30) - 1, -(1 << 30),
                     1 << 30, I32_MAX, I32_MIN, I32_MAX - 1, I32_MIN + 1, 123456789, -987654321, 3 << 28, -(3 << 28)],
                    np.int64)


def edge_multipliers(rng, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Q31 multipliers at and near both ends of [2^30, 2^31) and random ones, with exponents from -31 to 30 (and
    the flushed (0, 0) of a tiny multiplier)."""
    m = np.r_[1 << 30, I32_MAX, (1 << 30) + 1, 0, 3 << 29, rng.integers(1 << 30, 1 << 31, count)].astype(np.int64)
    n = np.r_[-31, -31, 0, 0, 1, 30, 7, -1, rng.integers(-31, 31, count)].astype(np.int64)
    return m[:count], n[:count]


@pytest.mark.parametrize("seed", range(6))
def test_conv_s8_tflite_mbqm_primitives(seed):
    """Each output channel's bias is one accumulator value, each channel has its own (multiplier, shift): the
    output is clamp(MBQM(acc, m, n) + z_y) over the whole int32 range, ties of both rounding steps included,
    C against tte/reference/fixedpoint.py (the int32 wrap of large left shifts included)."""
    rng = rng_for("mbqm", seed)
    acc = np.r_[EDGE_ACC, rng.integers(I32_MIN, I32_MAX, 40, endpoint=True)]
    m, n = edge_multipliers(rng, acc.size)
    # exact ties of SaturatingRoundingDoublingHighMul (odd x times 1/2) and of RoundingDivideByPOT (odd x * 2^k
    # times 1/2 then / 2^k), both signs
    odd = (2 * rng.integers(-60, 60, 24) + 1) << rng.integers(0, 20, 24)
    k = np.repeat(np.arange(12), 2)
    acc, m, n = np.r_[acc, odd], np.r_[m, np.full(24, 1 << 30)], np.r_[n, -k]
    # results spread over the int8 range: multipliers chosen from random accumulators of every magnitude
    spread = rng.integers(1, 1 << 31, 60) >> rng.integers(0, 31, 60)
    spread = spread[spread > 0] * rng.choice([-1, 1], spread[spread > 0].size)
    sm, sn = fp.quantize_multiplier(rng.uniform(1, 120, spread.size) / np.abs(spread))
    acc, m, n = np.r_[acc, spread], np.r_[m, sm], np.r_[n, sn]
    # the one overflow of SaturatingRoundingDoublingHighMul (not a multiplier QuantizeMultiplier makes)
    acc, m, n = np.r_[acc, I32_MIN, I32_MIN], np.r_[m, I32_MIN, I32_MIN], np.r_[n, 0, -25]
    zy = int(rng.integers(-20, 21))
    b = acc.astype(np.int32)
    x = np.full((1, 2, 1, 3), 9, np.int8)
    w = s8(rng, (b.size, 2, 1, 1))
    want_pre = fp.mbqm(acc, m, n) + zy
    want, want_mask = fp.clamp_mask(np.repeat(want_pre[:, None], 3, axis=1), -128, 127)
    q, _keep = quant(9, zy, -128, 127, (m, n))
    _t, _f, weights = split(w, None, 1)
    args = (ref(cr.ConvGeometry(1, 1, 0, 0, 0, 0, 1)), ref(q), ref(dims(x.shape)), ptr(x), ref(dims(w.shape)),
            ref(weights), None, ptr(b), None, ref(dims((1, b.size, 1, 3))))
    check(lambda out, mask: lib().tte_conv_s8(*args, ptr(out), ptr(mask), None, 0), want[None, :, None, :],
          want_mask[None, :, None, :])
    assert 0 < int(want_mask.sum()) < want_mask.size  # some saturate, some do not
    assert len(np.unique(want)) > 20


def test_conv_s8_tflite_int32_saturation():
    """acc + bias beyond INT32_MAX / INT32_MIN saturates before MBQM, as the reference says."""
    rng = rng_for("conv-tflite-edge")
    x = s8(rng, (1, 2, 4, 4), 0, 127)
    w = np.array([1, -1, 1, -1], np.int8).reshape(4, 1, 1, 1) * rng.integers(60, 100, (4, 2, 1, 1)).astype(np.int8)
    b = np.array([I32_MAX - 50, I32_MIN + 50, I32_MAX - 3_000_000, I32_MIN + 3_000_000], np.int32)
    want = run_conv(x, -128, w, None, b, (1, 1), (0, 0, 0, 0), 1, sx=1.0, sw=np.full(4, 2.0**-24, np.float32),
                    sy=1.0)
    assert (want[:, 0] == 127).all() and (want[:, 1] == -128).all()


@pytest.mark.parametrize("case", PW_DW_CASES)
def test_conv_pw_dw_s8_tflite(case):
    xs, mch, k, strides, pads, (zp1, zp2), mid_clamp, clamp = PW_DW_CASES[case]
    rng = rng_for("pw_dw-tflite", case)
    x, w1, w2 = s8(rng, xs), s8(rng, (mch, xs[1], 1, 1)), s8(rng, (mch, 1, k, k))
    z1, z2 = (channel_zps(rng, mch) if zp else None for zp in (zp1, zp2))
    b1, b2 = (rng.integers(-3000, 3000, mch, dtype=np.int32) for _ in range(2))
    zx, zmid, zy = (int(v) for v in rng.integers(-20, 21, 3))
    s1, s2 = np.linspace(0.003, 0.005, mch, dtype=np.float32), np.linspace(0.004, 0.008, mch, dtype=np.float32)
    zp1_, zp2_ = (np.zeros(mch, np.int32) if z is None else z for z in (z1, z2))
    (mlo, mhi), (qmin, qmax) = clamp_range(mid_clamp, zmid), clamp_range(clamp, zy)
    g, node = tflite_node("pw_dw", [(x, pt(0.05, zx)), (w1, pc(s1, zp1_)), (b1, None), (w2, pc(s2, zp2_)),
                                    (b2, None)], pt(0.05, zy), strides=strides, pads=pads, mid_quant=pt(0.02, zmid),
                          mid_qmin=mlo, mid_qmax=mhi, qmin=qmin, qmax=qmax)
    want = K.pw_dw(g, node, x, w1, b1, w2, b2)
    t1, t2 = pw_dw_tflite_multipliers(g, node)
    q1, _k1 = quant(zx, zmid, mlo, mhi, t1)
    q2, _k2 = quant(zmid, zy, qmin, qmax, t2)
    geo, xd, w2d, yd = cr.ConvGeometry(*strides, *pads, mch), dims(x.shape), dims(w2.shape), dims(want.shape)
    out, scratch = np.full(want.shape, 99, np.int8), np.zeros(x.shape[2] * x.shape[3], np.int8)
    assert lib().tte_conv_pw_dw_s8(ref(q1), ptr(w1), ptr(z1), ptr(b1), None, ref(geo), ref(q2), ref(w2d), ptr(w2),
                                   ptr(z2), ptr(b2), None, ref(xd), ptr(x), ref(yd), ptr(out), ptr(scratch),
                                   scratch.size) == TTE_OK
    np.testing.assert_array_equal(out, want)
    assert len(np.unique(want)) > 10


# ---- fully connected: one rounding in double precision ---------------------------------------------------------
def run_gemm(x, zx, w, wz, b, *, sx=0.05, sw=None, sy=None, zy=0, clamp="none"):
    (n, k), m = x.shape, w.shape[0]
    sw = np.linspace(0.002, 0.006, m, dtype=np.float32) if sw is None else sw
    qmin, qmax = clamp_range(clamp, zy)
    g, node = tflite_node("gemm", [(x, pt(sx, zx)), (w, pc(sw, np.zeros(m) if wz is None else wz)), (b, None)],
                          pt(1.0, zy), qmin=qmin, qmax=qmax, save_mask=True)
    acc = K.gemm_accumulator(g, node, x, w, b)
    g["y"].quant = pt(fit_scale(acc, sx, sw) if sy is None else sy, zy)
    want, want_mask = K.gemm(g, node, x, w, b)
    scales = np.ascontiguousarray(tflite_scales(g, node), np.float64)
    q = cr.QuantParams(zx, zy, qmin, qmax)
    check(lambda out, mask: lib().tte_gemm_tflite_s8(ref(q), n, k, m, ptr(x), ptr(w), ptr(wz), ptr(b), ptr(scales),
                                                     ptr(out), ptr(mask)), want, want_mask)
    return want


@pytest.mark.parametrize("zp", [True, False], ids=["zp", "null-zp"])
@pytest.mark.parametrize("clamp", ["none", "relu6", "huge-m", "tiny-m"])
def test_gemm_tflite_s8(zp, clamp):
    rng = rng_for("gemm-tflite", zp, clamp)
    x, w = s8(rng, (3, 37)), s8(rng, (7, 37))
    b = rng.integers(-20000, 20000, 7, dtype=np.int32)
    if clamp == "huge-m":  # acc * scale beyond +-2^40, clamped before the conversion to int64
        b[:2] = [I32_MAX - 10, I32_MIN + 10]
    zx, zy = int(rng.integers(-128, 128)), int(rng.integers(-20, 21))
    sy = {"huge-m": 1e-12, "tiny-m": 1e3}.get(clamp)
    want = run_gemm(x, zx, w, channel_zps(rng, 7) if zp else None, b, sy=sy, zy=zy,
                    clamp="relu6" if clamp == "relu6" else "none")
    assert len(np.unique(want)) > {"huge-m": 1, "tiny-m": 0}.get(clamp, 6)


def test_gemm_tflite_s8_ties_round_away_from_zero():
    """acc * 0.5 on odd accumulators: exact ties, rounded away from zero (std::round)."""
    x = np.arange(-9, 10, dtype=np.int8).reshape(-1, 1)
    w, b = np.ones((1, 1), np.int8), np.zeros(1, np.int32)
    want = run_gemm(x, 0, w, None, b, sx=1.0, sw=np.full(1, 0.5, np.float32), sy=1.0)
    np.testing.assert_array_equal(want[:, 0], np.r_[-5, -4, -4, -3, -3, -2, -2, -1, -1, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5])


# ---- fully connected in TFLite Micro's arithmetic: MBQM per channel (tte_gemm_s8 with Q31 multipliers) --------
def run_gemm_micro(x, zx, w, wz, b, *, sx=0.05, sw=None, sy=None, zy=0, clamp="none"):
    (n, k), m = x.shape, w.shape[0]
    sw = np.linspace(0.002, 0.006, m, dtype=np.float32) if sw is None else sw
    qmin, qmax = clamp_range(clamp, zy)
    g, node = tflite_node("gemm", [(x, pt(sx, zx)), (w, pc(sw, np.zeros(m) if wz is None else wz)), (b, None)],
                          pt(1.0, zy), arithmetic="tflite-micro", qmin=qmin, qmax=qmax, save_mask=True)
    acc = K.gemm_accumulator(g, node, x, w, b)
    g["y"].quant = pt(fit_scale(acc, sx, sw) if sy is None else sy, zy)
    want, want_mask = K.gemm(g, node, x, w, b)
    multipliers = tflite_multipliers(g, node)
    acc32 = np.clip(acc, I32_MIN, I32_MAX)  # the accumulator saturates to int32, then MBQM per output channel
    np.testing.assert_array_equal(want, fp.clamp_mask(fp.mbqm(acc32, *(v[None, :] for v in multipliers)) + zy,
                                                      qmin, qmax)[0])
    q, _keep = quant(zx, zy, qmin, qmax, multipliers)
    check(lambda out, mask: lib().tte_gemm_s8(ref(q), n, k, m, ptr(x), ptr(w), ptr(wz), ptr(b), None, ptr(out),
                                              ptr(mask)), want, want_mask)
    return want


@pytest.mark.parametrize("zp", [True, False], ids=["zp", "null-zp"])
@pytest.mark.parametrize("clamp", ["none", "relu6", "huge-m", "tiny-m"])
def test_gemm_s8_tflite_micro(zp, clamp):
    rng = rng_for("gemm-micro", zp, clamp)
    x, w = s8(rng, (3, 37)), s8(rng, (7, 37))
    b = rng.integers(-20000, 20000, 7, dtype=np.int32)
    if clamp == "huge-m":  # saturating accumulators, left shifts that wrap in int32
        b[:2] = [I32_MAX - 10, I32_MIN + 10]
    zx, zy = int(rng.integers(-128, 128)), int(rng.integers(-20, 21))
    sy = {"huge-m": 1e-12, "tiny-m": 1e3}.get(clamp)
    want = run_gemm_micro(x, zx, w, channel_zps(rng, 7) if zp else None, b, sy=sy, zy=zy,
                          clamp="relu6" if clamp == "relu6" else "none")
    assert len(np.unique(want)) > {"huge-m": 1, "tiny-m": 0}.get(clamp, 6)


def test_gemm_s8_tflite_micro_differs_from_tflite():
    """acc * 3/4 on accumulators 2 mod 4 (exact ties of the final rounding): TFLite's reference FULLY_CONNECTED
    (one rounding in double, away from zero) and TFLite Micro's (MBQM, double rounding) disagree on some; each
    arithmetic's C kernel gives its own."""
    x = np.arange(-126, 127, 4, dtype=np.int8).reshape(-1, 1)
    w, b = np.ones((1, 1), np.int8), np.zeros(1, np.int32)
    sw = np.full(1, 0.75, np.float32)
    micro = run_gemm_micro(x, 0, w, None, b, sx=1.0, sw=sw, sy=1.0)
    tfl = run_gemm(x, 0, w, None, b, sx=1.0, sw=sw, sy=1.0)
    assert (micro != tfl).any()


# ---- add, requantize, concat, mul -----------------------------------------------------------------------------
ADD_CASES = {  # b shape (a is [2, 3, 4, 5]), (s_a, z_a), (s_b, z_b), (s_y, z_y), qmin, qmax
    "same-size": ((2, 3, 4, 5), (0.07, 3), (0.045, -9), (0.1, 2), -128, 127),
    "bias-last-axis": ((5,), (0.09, -4), (0.13, 11), (0.1, -6), -128, 127),
    "bias-per-sample": ((3, 4, 5), (0.1, 0), (0.06, 20), (0.1, 0), -128, 127),
    "equal-scales": ((2, 3, 4, 5), (0.05, 1), (0.05, -2), (0.05, 0), -128, 127),
    "relu6": ((2, 3, 4, 5), (0.08, -7), (0.08, 5), (0.1, -30), -30, 20),
    "small-output-scale": ((5,), (0.4, 2), (1e-4, -3), (1e-3, 0), -128, 127),
    "per-channel": ((1, 3, 1, 1), (0.07, 3), (0.5, -9), (0.1, 2), -128, 127),
}


@pytest.mark.parametrize("case", ADD_CASES)
def test_add_tflite_s8(case):
    bs, (sa, za), (sb, zb), (sy, zy), qmin, qmax = ADD_CASES[case]
    rng = rng_for("add-tflite", case)
    a, b = s8(rng, (2, 3, 4, 5)), s8(rng, bs)
    g, node = tflite_node("add", [(a, pt(sa, za)), (b, pt(sb, zb))], pt(sy, zy), qmin=qmin, qmax=qmax, save_mask=True)
    want, want_mask = K.add(g, node, a, b)
    params = np.ascontiguousarray(add_params(g, node), np.int32)
    size, inner = broadcast_run(a.shape, b.shape)
    check(lambda out, mask: lib().tte_add_tflite_s8(a.size, ptr(a), za, size, inner, ptr(b), zb, ptr(params), zy,
                                                    qmin, qmax, ptr(out), ptr(mask)), want, want_mask)


@pytest.mark.parametrize("b_size, b_inner", [(0, 1), (-4, 1), (5, 1), (4, 0), (4, 2)])
def test_add_tflite_s8_argument_errors(b_size, b_inner):
    z, out, params = np.zeros(12, np.int8), np.full(12, 99, np.int8), np.zeros(6, np.int32)
    assert lib().tte_add_tflite_s8(12, ptr(z), 0, 4, 3, ptr(z), 0, ptr(params), 0, -128, 127, ptr(out), None) == TTE_OK
    assert lib().tte_add_tflite_s8(12, ptr(z), 0, b_size, b_inner, ptr(z), 0, ptr(params), 0, -128, 127, ptr(out),
                                   None) == TTE_ERROR_ARGUMENT


REQ_CASES = {  # (s_x, z_x), (s_y, z_y), qmin, qmax
    "identity": ((0.05, 3), (0.05, 3), -128, 127),
    "zero-point-shift": ((0.05, 3), (0.05, -20), -128, 127),
    "half": ((0.05, 3), (0.1, -7), -128, 127),
    "quarter-ties": ((0.025, -1), (0.1, 0), -128, 127),
    "relu": ((0.037, -128), (0.1, 10), 10, 127),
    "clamps": ((0.275, 5), (0.1, 0), -128, 127),
    "left-shift-wraps": ((3e6, -20), (0.1, 3), -128, 127),
    "tiny": ((1e-9, 7), (0.5, -1), -128, 127),
    "narrowed": ((0.00625, 7), (0.1, -100), -100, -40),
}


@pytest.mark.parametrize("case", REQ_CASES)
def test_requantize_tflite_s8(case):
    (sx, zx), (sy, zy), qmin, qmax = REQ_CASES[case]
    x = rng_for("req-tflite", case).permutation(ALL_S8)
    g, node = tflite_node("requantize", [(x, pt(sx, zx))], pt(sy, zy), qmin=qmin, qmax=qmax, save_mask=True)
    want, want_mask = K.requantize(g, node, x)
    m, n = (int(v) for v in fp.requantize_multiplier(sx, sy))
    check(lambda out, mask: lib().tte_requantize_tflite_s8(x.size, ptr(x), zx, m, n, zy, qmin, qmax, ptr(out),
                                                           ptr(mask)), want, want_mask)
    buf = x.copy()  # in place
    assert lib().tte_requantize_tflite_s8(x.size, ptr(buf), zx, m, n, zy, qmin, qmax, ptr(buf), None) == TTE_OK
    np.testing.assert_array_equal(buf, want)
    if case == "identity":
        assert (m, n) == (1 << 30, 1) and np.array_equal(want, x)


@pytest.mark.parametrize("params", ["equal", "rescaled"])
def test_concat_channels_tflite_s8(params):
    """Two operands into channel ranges [0, 3) and [3, 5): copies (equal parameters) or TFLite's Requantize."""
    rng = rng_for("concat-tflite", params)
    xs = [s8(rng, (2, 3, 3, 5)), s8(rng, (2, 2, 3, 5))]
    qs = [pt(0.07, -3), pt(0.07, -3)] if params == "equal" else [pt(0.05, 4), pt(0.11, -9)]
    qmin, qmax = clamp_range("relu" if params == "rescaled" else "none", -3)
    g, node = tflite_node("concat", list(zip(xs, qs)), pt(0.07, -3), axis=1, qmin=qmin, qmax=qmax, save_mask=True)
    want, want_mask = K.concat(g, node, *xs)
    if params == "equal":
        np.testing.assert_array_equal(want, np.concatenate(xs, axis=1))

    def call(out, mask):
        for x, q, offset in zip(xs, qs, (0, 3)):
            m, n = (int(v) for v in fp.requantize_multiplier(q.scale, 0.07))
            assert lib().tte_concat_channels_tflite_s8(ref(dims(x.shape)), ptr(x), int(q.zero_point), m, n, -3, qmin,
                                                       qmax, 5, offset, ptr(out), ptr(mask)) == TTE_OK
        return TTE_OK

    check(call, want, want_mask)
    out = np.full(want.shape, 99, np.int8)
    assert lib().tte_concat_channels_tflite_s8(ref(dims(xs[0].shape)), ptr(xs[0]), 0, 1 << 30, 1, 0, -128, 127, 5, 3,
                                               ptr(out), None) == TTE_ERROR_ARGUMENT
    assert (out == 99).all()


@pytest.mark.parametrize("b_shape", ["same", "per-channel"])
@pytest.mark.parametrize("scales", ["plain", "big", "tiny"])
def test_mul_tflite_s8(b_shape, scales):
    rng = rng_for("mul-tflite", b_shape, scales)
    a = s8(rng, (2, 3, 4, 5))
    b = s8(rng, (2, 3, 4, 5) if b_shape == "same" else (2, 3, 1, 1))
    (sa, za), (sb, zb) = (0.05, 3), (0.02, -7)
    sy, zy = {"plain": 0.004, "big": 0.5, "tiny": 1e-6}[scales], 5
    qmin, qmax = clamp_range("relu" if scales == "plain" else "none", zy)
    g, node = tflite_node("mul", [(a, pt(sa, za)), (b, pt(sb, zb))], pt(sy, zy), qmin=qmin, qmax=qmax, save_mask=True)
    want, want_mask = K.KERNELS["mul"](g, node, a, b)
    m, n = (int(v) for v in fp.mul_multiplier(sa, sb, sy))
    check(lambda out, mask: lib().tte_mul_tflite_s8(ref(dims(a.shape)), ptr(a), za, ref(dims(b.shape)), ptr(b), zb, m,
                                                    n, zy, qmin, qmax, ptr(out), ptr(mask)), want, want_mask)
    bad = np.full(a.size, 99, np.int8)
    assert lib().tte_mul_tflite_s8(ref(dims(a.shape)), ptr(a), za, ref(dims((2, 3, 4, 1))), ptr(b), zb, m, n, zy,
                                   qmin, qmax, ptr(bad), None) == TTE_ERROR_ARGUMENT
    assert (bad == 99).all()


# ---- pools ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("params", ["equal", "rescaled"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avgpool_tflite_s8(case, params, count_include_pad):
    xs, (kh, kw), strides, pads, sx, sy = POOL_CASES[case]
    rng = rng_for("avgpool-tflite", case, params)
    x = s8(rng, xs)
    zx, zy = int(rng.integers(-30, 31)), int(rng.integers(-10, 11))
    if params == "equal":
        sy, zy = sx, zx
    qmin, qmax = clamp_range("relu" if case == "unpadded" else "none", zy)
    g, node = tflite_node("avgpool", [(x, pt(sx, zx))], pt(sy, zy), kernel=(kh, kw), strides=strides, pads=pads,
                          count_include_pad=count_include_pad, qmin=qmin, qmax=qmax, save_mask=True)
    want, want_mask = K.avgpool(g, node, x)
    m, n = (int(v) for v in fp.requantize_multiplier(sx, sy))
    geo, q = cr.PoolGeometry(kh, kw, *strides, *pads), cr.QuantParams(zx, zy, qmin, qmax)
    check(lambda out, mask: lib().tte_avgpool_tflite_s8(ref(geo), ref(q), count_include_pad, ref(dims(x.shape)),
                                                        ptr(x), m, n, ref(dims(want.shape)), ptr(out), ptr(mask)),
          want, want_mask)
    assert len(np.unique(want)) > 10


def test_avgpool_tflite_s8_ties_and_empty_windows():
    """Sums of -3, -1, 1, 3 over two elements (ties, away from zero) and windows wholly in the padding
    (no element: the average is z_x)."""
    x = np.array([[-2, -1, 0, 1, 1, 2]], np.int8).reshape(1, 1, 1, 6)
    g, node = tflite_node("avgpool", [(x, pt(0.1, -4))], pt(0.1, -4), kernel=(1, 2), strides=(1, 1),
                          pads=(0, 3, 0, 3), count_include_pad=0, qmin=-128, qmax=127, save_mask=True)
    want, want_mask = K.avgpool(g, node, x)
    np.testing.assert_array_equal(want[0, 0, 0], [-4, -4, -2, -2, -1, 1, 1, 2, 2, -4, -4])
    geo, q = cr.PoolGeometry(1, 2, 1, 1, 0, 3, 0, 3), cr.QuantParams(-4, -4, -128, 127)
    check(lambda out, mask: lib().tte_avgpool_tflite_s8(ref(geo), ref(q), 0, ref(dims(x.shape)), ptr(x), 1 << 30, 1,
                                                        ref(dims(want.shape)), ptr(out), ptr(mask)), want, want_mask)


GAP_CASES = {  # x shape, (s_x, z_x), (s_y, z_y), clamp
    "7x7": ((2, 5, 7, 7), (0.05, 7), (0.01, -5), "none"),
    "equal-params": ((1, 4, 5, 3), (0.05, -3), (0.05, -3), "none"),
    "1x1": ((2, 3, 1, 1), (0.05, 7), (0.03, 2), "none"),
    "10x10-relu": ((1, 6, 10, 10), (0.02, -128), (0.004, -20), "relu"),
    "shift-clamped": ((1, 4, 8, 8), (1e-8, 0), (1.0, 0), "none"),  # exponent -31: 1/count cannot fold whole
}


@pytest.mark.parametrize("case", GAP_CASES)
def test_global_avgpool_tflite_s8(case):
    xs, (sx, zx), (sy, zy), clamp = GAP_CASES[case]
    rng = rng_for("gap-tflite", case)
    x = s8(rng, xs)
    qmin, qmax = clamp_range(clamp, zy)
    g, node = tflite_node("global_avgpool", [(x, pt(sx, zx))], pt(sy, zy), qmin=qmin, qmax=qmax, save_mask=True)
    want, want_mask = K.global_avgpool(g, node, x)
    m, n = fp.mean_multiplier(sx, sy, xs[2] * xs[3])
    q = cr.QuantParams(zx, zy, qmin, qmax)
    check(lambda out, mask: lib().tte_global_avgpool_tflite_s8(ref(q), m, n, ref(dims(xs)), ptr(x), ptr(out),
                                                               ptr(mask)), want, want_mask)


@pytest.mark.parametrize("case", MAXPOOL_CASES)
def test_maxpool_s8_tflite(case):
    xs, kernel, strides, pads, (sx, zx), (sy, zy), clamp = MAXPOOL_CASES[case]
    rng = rng_for("maxpool-tflite", case)
    x = s8(rng, xs)
    x[0, 0] = s8(rng, xs[2:], -128, -100)
    qmin, qmax = clamp_range(clamp, zy)
    g, node = tflite_node("maxpool", [(x, pt(sx, zx))], pt(sy, zy), kernel=kernel, strides=strides, pads=pads,
                          qmin=qmin, qmax=qmax, save_mask=True)
    want, want_mask = K.maxpool(g, node, x)
    q, _keep = quant(zx, zy, qmin, qmax, fp.requantize_multiplier(sx, sy))
    geo = cr.PoolGeometry(*kernel, *strides, *pads)
    check(lambda out, mask: lib().tte_maxpool_s8(ref(geo), ref(q), c_float(0.0), ref(dims(xs)), ptr(x),
                                                 ref(dims(want.shape)), ptr(out), ptr(mask)), want, want_mask)


# ---- quantize -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale, zp", [(0.25, 0), (0.25, -3), (0.1, 17), (2**-7, -128), (3.3, 127)])
def test_quantize_tflite_f32(scale, zp):
    """round(x / scale) half away from zero: exact ties, their float32 neighbours, huge values, infinities, NaN
    (-128 whatever the zero point), signed zeros."""
    rng = rng_for("quantize-tflite", scale, zp)
    ties = ((np.arange(-140, 140) + 0.5) * np.float32(scale)).astype(np.float32)
    ties = np.r_[ties, np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))]
    special = np.float32([1e3, -1e3, 1e30, -1e30, np.inf, -np.inf, np.nan, 0.0, -0.0, 0.49999997, -0.49999997])
    x = np.r_[rng.normal(0, 20, 200).astype(np.float32), ties, special].astype(np.float32)
    want = K.KERNELS["quantize"](*quantize_node(x, scale, zp), x)
    np.testing.assert_array_equal(want, fp.quantize(x, scale, zp))
    out = np.zeros(x.size, np.int8)
    assert lib().tte_quantize_tflite_f32(x.size, ptr(x), c_float(scale), zp, ptr(out)) == TTE_OK
    np.testing.assert_array_equal(out, want)
    assert out[-5] == -128  # NaN


def quantize_node(x, scale, zp):
    g, node = tflite_node("quantize", [(x, None)], pt(scale, zp))
    return g, node
