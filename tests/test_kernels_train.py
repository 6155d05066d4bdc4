"""Golden tests of the runtime_c training kernels, called one by one through ctypes (tests/cruntime.py).

Every float32 result is compared exactly with the ops' reference kernels in tte/ops/ (the C kernels follow their
documented summation orders), every int8 / int32 parameter exactly.  The reference kernels take a Graph
and a Node: :func:`_node` builds the smallest ones that carry the attributes and quantization they read.
"""

from __future__ import annotations

import ctypes
import zlib

import numpy as np
import pytest
import refkernels as gk
from cruntime import (
    ROUNDING,
    TTE_ERROR_ARGUMENT,
    TTE_OK,
    ConvGeometry,
    PoolGeometry,
    SavedS8,
    SgdParams,
    SplitWeights,
    WeightsS8,
    c_float,
    dims,
    lib,
    ptr,
    ref,
    unpack_mask,
)

from tte.ir import Graph, Node, QuantParams, Value

F32 = np.float32
I32 = np.iinfo(np.int32)
MODES = list(ROUNDING)


def same(c: np.ndarray, r: np.ndarray) -> None:
    """C and reference agree exactly (NaN where the other has NaN)."""
    r = np.asarray(r)
    assert c.shape == r.shape and c.dtype == r.dtype, (c.shape, r.shape, c.dtype, r.dtype)
    ok = c == r
    if c.dtype.kind == "f":
        ok |= np.isnan(c) & np.isnan(r)
    bad = ~ok
    assert not bad.any(), f"{bad.sum()} of {c.size} differ: C {c[bad][:6]} vs reference {r[bad][:6]}"


def _node(op: str, quant: QuantParams | None = None, **attrs) -> tuple[Graph, Node]:
    """A Graph holding the quantization the kernel reads at node.inputs[1], and the node."""
    g = Graph()
    if quant is not None:
        g.add_value(Value("q", "int8", (), quant))
    return g, Node(op, op, ["gy", "q"], ["out"], attrs)


def _rng(*key) -> np.random.Generator:
    """A generator seeded from the test's own key (stable across processes)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _weight_quant(rng, o: int, zero: bool) -> tuple[QuantParams, np.ndarray, np.ndarray]:
    """Per-output-channel weight quantization (scales, zero points: zero or mixed)."""
    scales = rng.uniform(0.005, 0.05, o).astype(F32)
    zps = np.zeros(o, np.int32) if zero else rng.integers(-20, 21, o).astype(np.int32)
    return QuantParams(scales, zps, axis=0), scales, zps


def _sgd(mode: str, lr: float, qmin: int, qmax: int, shape, rng, seed=11, stream=3, step=5):
    """(tte_sgd_params, C residual array or None, reference attrs, reference aux) for one rounding mode."""
    residual = rng.uniform(-0.5, 0.5, shape).astype(F32) if mode == "accumulate" else None
    c_res = None if residual is None else residual.copy().reshape(-1)
    p = SgdParams(lr, ROUNDING[mode], seed, stream, step if mode == "stochastic" else 0, qmin, qmax, ptr(c_res))
    attrs = dict(lr=lr, rounding=mode, seed=seed, stream=stream, qmin=qmin, qmax=qmax)
    return p, c_res, attrs, (step if mode == "stochastic" else residual)


def _ref_update(fn, *args):
    """A reference update as (param, residual or None), without numpy's warnings on NaN / inf steps."""
    with np.errstate(invalid="ignore", over="ignore"):
        out = fn(*args)
    return out if isinstance(out, tuple) else (out, None)


def _check_residual(c_res, r_res) -> None:
    if r_res is not None:
        same(c_res, r_res.reshape(-1))


# ---- expf, xent, ste --------------------------------------------------------------------------------

def test_expf_matches_reference_on_a_dense_sweep():
    """tte_expf(x) == tte.reference.numerics.expf(x) bit for bit over x <= 0: a dense grid, -0, denormals, the
    -87.3 cutoff and its neighbours, random bit patterns, large negatives and -inf."""
    f = lib().tte_expf
    f.restype, f.argtypes = ctypes.c_float, [ctypes.c_float]
    rng = _rng("expf")
    cut = F32(-87.3)
    special = np.array([0.0, -0.0, -1e-45, -1e-40, -1.2e-38, -1e-30, -1e-7, -0.5, -1.0, -87.0, cut,
                        np.nextafter(cut, F32(0)), np.nextafter(cut, F32(-100)), -88.0, -103.0, -1e10, -3.4e38,
                        -np.inf], F32)
    bits = rng.integers(0x80000000, 0xC2B00000, 60000, dtype=np.uint64).astype(np.uint32).view(F32)
    x = np.concatenate([special, np.linspace(-90, 0, 120001, dtype=F32), bits])
    c = np.array([f(float(v)) for v in x], F32)
    with np.errstate(invalid="ignore", over="ignore"):
        r = gk.expf(x)
    same(c.view(np.uint32), r.view(np.uint32))
    assert c[0] == 1 and c[1] == 1 and np.count_nonzero(c == 0) > 1000


@pytest.mark.parametrize("n,k,spread", [(1, 2, 25), (3, 10, 25), (5, 7, 25), (9, 4, 25), (64, 3, 3)])
def test_xent(n, k, spread):
    """Loss and gradient exactly as the reference, with ties and underflowing exponentials; many samples
    whose losses only sum exactly in double."""
    rng = _rng("xent", n, k)
    z = (rng.normal(size=(n, k)) * spread).astype(F32)
    z[0, 0] = z[0, -1] = z[0].max()  # a tie for the maximum
    labels = rng.integers(0, k, n).astype(np.int32)
    loss, grad = np.full(1, 7, F32), np.full((n, k), 7, F32)
    assert lib().tte_xent_f32(n, k, ptr(z), ptr(labels), ptr(loss), ptr(grad)) == TTE_OK
    r_loss, r_grad = gk.xent(Graph(), None, z, labels)
    same(loss, r_loss.reshape(1))
    same(grad, r_grad)
    assert r_loss > 0


@pytest.mark.parametrize("bad", [-1, 4])
def test_xent_label_out_of_range(bad):
    z, loss, grad = np.zeros((2, 4), F32), np.zeros(1, F32), np.zeros((2, 4), F32)
    labels = np.array([1, bad], np.int32)
    assert lib().tte_xent_f32(2, 4, ptr(z), ptr(labels), ptr(loss), ptr(grad)) == TTE_ERROR_ARGUMENT


@pytest.mark.parametrize("inplace", [False, True])
def test_ste(inplace):
    """grad * mask with a bit-packed mask whose bits vary (size not a multiple of 8)."""
    rng = _rng("ste")
    n = 45
    gy = rng.normal(size=n).astype(F32)
    m = rng.integers(0, 256, (n + 7) // 8, dtype=np.uint8)
    want = gk.ste(Graph(), None, gy, unpack_mask(m, n))
    out = gy if inplace else np.full(n, 9, F32)
    assert lib().tte_ste_f32(n, ptr(gy), ptr(m), ptr(out)) == TTE_OK
    same(out, want)
    assert 0 < np.count_nonzero(want) < n


# ---- conv gradients ------------------------------------------------------------------------------------

# name: N, C, H, W, O, kernel, strides, pads (top, left, bottom, right), groups
CONV = {
    "regular": (2, 3, 7, 6, 4, (3, 3), (1, 1), (1, 1, 1, 1), 1),
    "regular-s2-asym": (1, 3, 8, 7, 2, (3, 2), (2, 2), (0, 1, 2, 1), 1),
    "grouped": (2, 4, 6, 7, 6, (3, 3), (2, 1), (1, 0, 1, 2), 2),
    "pointwise": (2, 5, 4, 3, 3, (1, 1), (1, 1), (0, 0, 0, 0), 1),
    "pointwise-s2": (1, 4, 5, 6, 2, (1, 1), (2, 2), (0, 0, 0, 0), 1),
    "depthwise-s2": (2, 5, 7, 6, 5, (3, 3), (2, 2), (1, 1, 0, 0), 5),
    "depthwise-same": (1, 4, 6, 5, 4, (3, 3), (1, 1), (1, 0, 1, 2), 4),
    # the float kernels' tiles (runtime_c/src/tte_conv_grad_input_f32.c, tte_grad_core.h): full tiles, then a last
    # tile that overlaps the one before, on positions, input and output channels; depthwise rows wider than a
    # block of lanes; a kernel too large for the depthwise path
    "pointwise-tiles": (2, 19, 5, 7, 21, (1, 1), (1, 1), (0, 0, 0, 0), 1),
    "pointwise-grouped": (1, 18, 4, 5, 20, (1, 1), (1, 1), (0, 0, 0, 0), 2),
    "depthwise-wide": (2, 3, 9, 19, 3, (5, 5), (1, 2), (2, 2, 2, 3), 3),
    "depthwise-k13": (1, 3, 14, 13, 3, (13, 13), (1, 1), (6, 6, 6, 6), 3),
}


def _conv_case(name: str):
    """Shapes and a C geometry of a CONV case: (N, C, H, W, O, CG, kh, kw, HO, WO, strides, pads, groups, dw, geo)."""
    n, c, h, w, o, (kh, kw), (sh, sw), pads, groups = CONV[name]
    ho = (h + pads[0] + pads[2] - kh) // sh + 1
    wo = (w + pads[1] + pads[3] - kw) // sw + 1
    dw = groups > 1 and groups == o == c
    return n, c, h, w, o, c // groups, kh, kw, ho, wo, (sh, sw), pads, groups, dw, ConvGeometry(sh, sw, *pads, groups)


def _split(w: np.ndarray, channels: int, dw: bool):
    """(trained slice, frozen rest or None) of a conv weight, as tte_split_weights lays them out."""
    axis = 0 if dw else 1
    trained = np.ascontiguousarray(np.take(w, range(channels), axis=axis))
    frozen = np.ascontiguousarray(np.take(w, range(channels, w.shape[axis]), axis=axis))
    return trained, (frozen if frozen.size else None)


@pytest.mark.parametrize("zero_zp", [True, False], ids=["zp0", "zp"])
@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
@pytest.mark.parametrize("case", list(CONV))
def test_conv_grad_input(case, split, zero_zp):
    """dL/dx of regular, grouped, pointwise and depthwise convs (depthwise also in place with the scratch
    of get_buffer_size), per-channel weight zero points, weights split into trained + frozen parts."""
    n, c, h, w, o, cg, kh, kw, ho, wo, strides, pads, groups, dw, geo = _conv_case(case)
    rng = _rng("cgi", case, split, zero_zp)
    quant, scales, zps = _weight_quant(rng, o, zero_zp)
    wt = rng.integers(-128, 128, (o, cg, kh, kw), dtype=np.int8)
    gy = rng.normal(size=(n, o, ho, wo)).astype(F32)
    channels = ((o if dw else cg) - 1 or 1) if split else (o if dw else cg)
    trained, frozen = _split(wt, channels, dw)
    ws = WeightsS8(SplitWeights(ptr(trained), ptr(frozen), channels), None if zero_zp else ptr(zps), ptr(scales))
    g, node = _node("conv_grad_input", quant, in_shape=(n, c, h, w), pads=pads, strides=strides, groups=groups)
    want = gk.conv_grad_input(g, node, gy, wt)
    size = lib().tte_conv_grad_input_f32_get_buffer_size(ref(dims((n, c, h, w))))
    assert size == 4 * h * w
    scratch = np.full(size // 4, np.nan, F32)
    dx = np.full((n, c, h, w), np.nan, F32)
    args = (ref(geo), ref(dims(wt.shape)), ref(ws), ref(dims(gy.shape)))
    assert lib().tte_conv_grad_input_f32(*args, ptr(gy), ref(dims(dx.shape)), ptr(dx), ptr(scratch)) == TTE_OK
    same(dx, want)
    if dw and ho * wo == h * w:  # in place: dx overwrites dz
        buf = gy.copy()
        assert lib().tte_conv_grad_input_f32(*args, ptr(buf), ref(dims(dx.shape)), ptr(buf), ptr(scratch)) == TTE_OK
        same(buf.reshape(dx.shape), want)


def test_conv_grad_input_rejects_bad_dims():
    """Input channels that are not CG * groups, dz channels that are not O, or O not a multiple of the groups."""
    w = np.zeros((4, 3, 3, 3), np.int8)
    scales = np.ones(4, F32)
    ws = WeightsS8(SplitWeights(ptr(w), None, 3), None, ptr(scales))
    dz, dx, scratch = np.zeros(4 * 25, F32), np.zeros(3 * 25, F32), np.zeros(25, F32)
    geo = ConvGeometry(1, 1, 1, 1, 1, 1, 1)
    for in_c, dz_c in [(4, 4), (3, 5)]:
        st = lib().tte_conv_grad_input_f32(ref(geo), ref(dims(w.shape)), ref(ws), ref(dims((1, dz_c, 5, 5))), ptr(dz),
                                           ref(dims((1, in_c, 5, 5))), ptr(dx), ptr(scratch))
        assert st == TTE_ERROR_ARGUMENT
    # output channels that do not split into the groups (1 output channel, 2 groups of 3 input channels): no group
    # may be left with no output channel, whose input gradient nothing would write
    w1 = np.zeros((1, 3, 1, 1), np.int8)
    ws1 = WeightsS8(SplitWeights(ptr(w1), None, 3), None, ptr(scales))
    dx6 = np.full(6 * 9, 7.0, F32)
    geo2 = ConvGeometry(1, 1, 0, 0, 0, 0, 2)
    st = lib().tte_conv_grad_input_f32(ref(geo2), ref(dims(w1.shape)), ref(ws1), ref(dims((1, 1, 3, 3))), ptr(dz),
                                       ref(dims((1, 6, 3, 3))), ptr(dx6), ptr(scratch))
    assert st == TTE_ERROR_ARGUMENT and (dx6 == 7.0).all()


def _conv_weight_setup(case: str, split: bool, key):
    """Data of a conv weight gradient: saved input with a nonzero zero point, dz, channels, attrs."""
    n, c, h, w, o, cg, kh, kw, ho, wo, strides, pads, groups, dw, geo = _conv_case(case)
    rng = _rng("cgw", case, split, *key)
    x = rng.integers(-128, 128, (n, c, h, w), dtype=np.int8)
    xq = QuantParams.per_tensor(0.02, 5)
    gy = rng.normal(size=(n, o, ho, wo)).astype(F32)
    channels = ((o if dw else cg) - 1 or 1) if split else (o if dw else cg)
    attrs = dict(strides=strides, pads=pads, groups=groups, kernel=(kh, kw), depthwise=dw, channels=channels)
    saved = SavedS8(ptr(x), 5, 0.02)
    return rng, x, xq, gy, channels, attrs, saved, geo, (o, cg, kh, kw), dw


@pytest.mark.parametrize("split", [False, True], ids=["all", "slice"])
@pytest.mark.parametrize("case", list(CONV))
def test_conv_grad_weight(case, split):
    """dW of the leading `channels` input channels (depthwise: channels) as a buffer."""
    rng, x, xq, gy, channels, attrs, saved, geo, wshape, dw = _conv_weight_setup(case, split, ())
    g, node = _node("conv_grad_weight", xq, **attrs)
    want = gk.conv_grad_weight(g, node, gy, x)
    grad = np.full(want.shape, np.nan, F32)
    assert lib().tte_conv_grad_weight_f32(ref(geo), int(dw), channels, ref(dims(x.shape)), ref(saved),
                                          ref(dims(gy.shape)), ptr(gy), ref(dims(wshape)), ptr(grad)) == TTE_OK
    same(grad, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("split", [False, True], ids=["all", "slice"])
@pytest.mark.parametrize("case", list(CONV))
def test_conv_weight_update(case, split, mode):
    """The fused gradient + SGD on the trained slice, every rounding mode, clamped to [-127, 127]."""
    rng, x, xq, gy, channels, attrs, saved, geo, wshape, dw = _conv_weight_setup(case, split, (mode,))
    wt = rng.integers(-128, 128, wshape, dtype=np.int8)
    rows = channels if dw else wshape[0]
    factors = rng.uniform(20, 200, rows).astype(F32)
    axis = 0 if dw else 1
    trained = np.ascontiguousarray(np.take(wt, range(channels), axis=axis))
    sgd, c_res, sattrs, aux = _sgd(mode, 0.005, -127, 127, trained.shape, rng, seed=7, stream=2, step=9)
    g, node = _node("conv_weight_update", xq, axis=axis, **attrs, **sattrs)
    want, r_res = _ref_update(gk.conv_weight_update, g, node, gy, x, wt, factors.reshape(-1, 1, 1, 1), aux)
    want = np.take(want, range(channels), axis=axis)
    size = lib().tte_conv_weight_update_get_buffer_size(ref(dims(wshape)), channels, int(dw))
    assert size == 4 * (1 if dw else channels) * wshape[2] * wshape[3]
    scratch = np.full(size // 4, np.nan, F32)
    c_w = trained.copy()
    assert lib().tte_conv_weight_update_s8(ref(geo), int(dw), channels, ref(dims(x.shape)), ref(saved),
                                           ref(dims(gy.shape)), ptr(gy), ptr(factors), ref(sgd), ref(dims(wshape)),
                                           ptr(c_w), ptr(scratch), size) == TTE_OK
    same(c_w, want)
    _check_residual(c_res, r_res)
    assert not np.array_equal(want, trained)


# ---- bias and gemm -------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (3, 6), (2, 11, 3, 4), (3, 13)])
def test_bias_grad(shape):
    """Sum over samples then positions, for conv (NCHW) and gemm ([n, m]) gradients."""
    gy = _rng("bg", shape).normal(size=shape).astype(F32)
    grad = np.full(shape[1], np.nan, F32)
    assert lib().tte_bias_grad_f32(ref(dims(shape)), ptr(gy), ptr(grad)) == TTE_OK
    same(grad, gk.bias_grad(Graph(), None, gy))


@pytest.mark.parametrize("mode", MODES)
def test_bias_update_saturates_and_uses_factors(mode):
    """int32 bias SGD with per-channel (QAS) factors; channel 0 saturates at INT32_MAX, channel 1 at
    INT32_MIN, channel 2 at INT32_MAX from a small step."""
    rng = _rng("bu", mode)
    shape = (2, 11, 3, 3)  # 11 channels: a block of 8, then one at a time
    gy = rng.normal(size=shape).astype(F32)
    gy[:, 0], gy[:, 1], gy[:, 2] = -50, 50, -1e-2
    bias = rng.integers(-10**6, 10**6, 11).astype(np.int32)
    bias[:3] = [I32.max - 3, I32.min + 3, I32.max - 1]
    factors = rng.uniform(1e3, 1e5, 11).astype(F32)
    factors[2] = 1e4
    sgd, c_res, attrs, aux = _sgd(mode, 0.01, I32.min, I32.max, (11,), rng)
    g, node = _node("bias_update", axis=0, channels=11, **attrs)
    want, r_res = _ref_update(gk.bias_update, g, node, gy, bias, factors, aux)
    c_b = bias.copy()
    assert lib().tte_bias_update_s32(ref(dims(shape)), ptr(gy), ptr(factors), ref(sgd), ptr(c_b)) == TTE_OK
    same(c_b, want)
    _check_residual(c_res, r_res)
    assert c_b[0] == I32.max and c_b[1] == I32.min and c_b[2] == I32.max
    unit = _ref_update(gk.bias_update, g, node, gy, bias, np.ones(11, F32), aux)[0]
    assert not np.array_equal(unit[3:], want[3:])  # the factors matter


@pytest.mark.parametrize("k", [10, 37])
@pytest.mark.parametrize("zero_zp", [True, False], ids=["zp0", "zp"])
def test_gemm_grad_input(zero_zp, k):
    """dx[b, k] = sum over m (ascending) of dz[b, m] * W[m, k], with per-row zero points (k: fewer columns than a
    block of the C kernel, or two blocks and an overlapping last one)."""
    rng = _rng("ggi", zero_zp, k)
    n, m = 3, 4
    quant, scales, zps = _weight_quant(rng, m, zero_zp)
    w = rng.integers(-128, 128, (m, k), dtype=np.int8)
    gy = rng.normal(size=(n, m)).astype(F32)
    ws = WeightsS8(SplitWeights(ptr(w), None, k), None if zero_zp else ptr(zps), ptr(scales))
    dx = np.full((n, k), np.nan, F32)
    assert lib().tte_gemm_grad_input_f32(n, k, m, ptr(gy), ref(ws), ptr(dx)) == TTE_OK
    g, node = _node("gemm_grad_input", quant)
    same(dx, gk.gemm_grad_input(g, node, gy, w))


def _gemm_setup(channels: int, key, k: int = 9):
    rng = _rng("gemm", channels, *key)
    n, m = 5, 4
    x = rng.integers(-128, 128, (n, k), dtype=np.int8)
    gy = rng.normal(size=(n, m)).astype(F32)
    return rng, n, k, m, x, gy, QuantParams.per_tensor(0.03, -7), SavedS8(ptr(x), -7, 0.03)


@pytest.mark.parametrize("k, channels", [(9, 9), (9, 4), (40, 40), (40, 35)])
def test_gemm_grad_weight(k, channels):
    """dW[m, k] for the leading `channels` inputs, saved input with a nonzero zero point."""
    rng, n, k, m, x, gy, xq, saved = _gemm_setup(channels, (), k)
    grad = np.full((m, channels), np.nan, F32)
    assert lib().tte_gemm_grad_weight_f32(n, k, m, channels, ref(saved), ptr(gy), ptr(grad)) == TTE_OK
    g, node = _node("gemm_grad_weight", xq, channels=channels)
    same(grad, gk.gemm_grad_weight(g, node, gy, x))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k, channels", [(9, 9), (9, 4), (40, 40), (40, 35)])
def test_gemm_weight_update(k, channels, mode):
    """The fused gemm gradient + SGD on the leading `channels` columns; the others stay as they were."""
    rng, n, k, m, x, gy, xq, saved = _gemm_setup(channels, (mode,), k)
    w = rng.integers(-128, 128, (m, k), dtype=np.int8)
    factors = rng.uniform(20, 200, m).astype(F32)
    sgd, c_res, attrs, aux = _sgd(mode, 0.05, -127, 127, (m, channels), rng, seed=123, stream=4, step=4000000000)
    g, node = _node("gemm_weight_update", xq, axis=1, channels=channels, **attrs)
    want, r_res = _ref_update(gk.gemm_weight_update, g, node, gy, x, w, factors.reshape(-1, 1), aux)
    c_w = w.copy()
    assert lib().tte_gemm_weight_update_s8(n, k, m, channels, ref(saved), ptr(gy), ptr(factors), ref(sgd),
                                           ptr(c_w)) == TTE_OK
    same(c_w, want)
    _check_residual(c_res, r_res)
    assert not np.array_equal(want, w)


# ---- SGD on a gradient buffer, momentum ----------------------------------------------------------------

@pytest.mark.parametrize("qrange", [(-127, 127), (-100, 90)])
@pytest.mark.parametrize("mode", MODES)
def test_sgd_s8(mode, qrange):
    """int8 SGD with per-row factors, NaN and +-inf gradients, steps past the clamp, an unmoved -128."""
    rng = _rng("sgd8", mode, qrange)
    rows, length = 4, 7
    grad = (rng.normal(size=(rows, length)) * 3).astype(F32)
    param = rng.integers(-128, 128, (rows, length), dtype=np.int8)
    grad[0, :5] = [np.nan, np.inf, -np.inf, 60.0, -60.0]
    param[0, :5] = [17, 0, 0, -95, 95]
    grad[1, :4], param[1, :4] = [0.0, 2.0, -2.0, 6.0], [-128, 0, 0, 0]  # steps 0, 2.5, -2.5, 7.5: ties
    factors = np.array([0.5, 1.0, 2.0, 30.0], F32)
    qmin, qmax = qrange
    sgd, c_res, attrs, aux = _sgd(mode, 1.25, qmin, qmax, grad.shape, rng, seed=99, stream=17, step=12)
    g, node = _node("sgd", axis=0, channels=rows, **attrs)
    want, r_res = _ref_update(gk.sgd, g, node, param, grad, factors.reshape(-1, 1), aux)
    c_p = param.copy().reshape(-1)
    assert lib().tte_sgd_s8(grad.size, length, ptr(grad.reshape(-1)), ptr(factors), ref(sgd), ptr(c_p)) == TTE_OK
    same(c_p, want.reshape(-1))
    _check_residual(c_res, r_res)
    assert c_p[0] == 17 and c_p[1] == qmin and c_p[2] == qmax and c_p[3] == qmin and c_p[4] == qmax
    assert c_p[length] == -128


def test_sgd_s8_rejects_row_length():
    """row_length < 1 is an argument error."""
    grad, factors, param = np.ones(4, F32), np.ones(4, F32), np.zeros(4, np.int8)
    sgd = SgdParams(1.0, ROUNDING["nearest"], 0, 0, 0, -127, 127, None)
    assert lib().tte_sgd_s8(4, 0, ptr(grad), ptr(factors), ref(sgd), ptr(param)) == TTE_ERROR_ARGUMENT
    assert np.array_equal(param, np.zeros(4, np.int8))


@pytest.mark.parametrize("mode", MODES)
def test_sgd_s32(mode):
    """int32 SGD with per-value factors, NaN / +-inf gradients, saturation at INT32_MAX and INT32_MIN."""
    rng = _rng("sgd32", mode)
    grad = (rng.normal(size=12) * 100).astype(F32)
    param = rng.integers(-10**7, 10**7, 12).astype(np.int32)
    grad[:6] = [np.nan, np.inf, -np.inf, -10.0, 10.0, 0.0]
    param[:6] = [5, 0, 0, I32.max - 2, I32.min + 2, I32.min]
    factors = rng.uniform(0.5, 2000, 12).astype(F32)
    factors[3:5] = 1.0
    sgd, c_res, attrs, aux = _sgd(mode, 0.75, I32.min, I32.max, (12,), rng, seed=2**31 + 3, stream=0, step=1)
    g, node = _node("sgd", axis=0, channels=12, **attrs)
    want, r_res = _ref_update(gk.sgd, g, node, param, grad, factors, aux)
    c_p = param.copy()
    assert lib().tte_sgd_s32(12, ptr(grad), ptr(factors), ref(sgd), ptr(c_p)) == TTE_OK
    same(c_p, want)
    _check_residual(c_res, r_res)
    assert c_p[:6].tolist() == [5, I32.min, I32.max, I32.max, I32.min, I32.min]


@pytest.mark.parametrize("qmin, qmax", [(I32.max - 10, I32.max), (I32.min, I32.min + 300), (-1000, 1000)])
def test_sgd_s32_narrow_ranges(qmin, qmax):
    """Ranges near the int32 limits (their span exact, not rounded to float32) and values far outside the range."""
    rng = _rng("sgd32-narrow", qmin)
    grad = np.array([-5.0, 5.0, 400.0, -400.0, 3e9, -3e9, np.nan, 1.0], F32)
    lo, hi = max(qmin, I32.min + 3), min(qmax, I32.max - 3)
    param = np.array([lo, hi, lo, hi, lo, hi, I32.min, I32.max], np.int32)
    factors = np.ones(8, F32)
    sgd, c_res, attrs, aux = _sgd("nearest", 1.0, qmin, qmax, (8,), rng)
    g, node = _node("sgd", axis=0, channels=8, **attrs)
    want, _ = _ref_update(gk.sgd, g, node, param, grad, factors, aux)
    c_p = param.copy()
    assert lib().tte_sgd_s32(8, ptr(grad), ptr(factors), ref(sgd), ptr(c_p)) == TTE_OK
    same(c_p, want)
    assert ((c_p[:6] >= qmin) & (c_p[:6] <= qmax)).all() and c_p[6] == I32.min  # a NaN step moves nothing


def test_momentum():
    """velocity = beta * velocity + grad, in place."""
    rng = _rng("momentum")
    vel, grad = rng.normal(size=(2, 33)).astype(F32)
    vel = vel.copy()
    want = gk.momentum(Graph(), Node("momentum", "m", [], [], dict(beta=0.9)), vel, grad)
    assert lib().tte_momentum_f32(vel.size, c_float(0.9), ptr(grad), ptr(vel)) == TTE_OK
    same(vel, want)


# ---- pooling, add, slice -------------------------------------------------------------------------------

# name: in shape, kernel, strides, pads (top, left, bottom, right)
AVGPOOL = {
    "k3s2-pad1": ((2, 3, 7, 6), (3, 3), (2, 2), (1, 1, 1, 1)),
    "overlap-bottom": ((1, 2, 6, 5), (3, 2), (1, 1), (0, 1, 2, 0)),
    "overlap-right": ((1, 2, 5, 6), (2, 3), (1, 2), (1, 0, 0, 2)),
    "bottom-right-only": ((2, 2, 6, 6), (3, 3), (2, 1), (0, 0, 1, 2)),
    "no-pad": ((1, 3, 6, 7), (2, 3), (2, 2), (0, 0, 0, 0)),
}


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("case", list(AVGPOOL))
def test_avgpool_grad(case, include_pad):
    """Each output's share (dz / count, count with or without padding) added to its window's inputs,
    asymmetric pads and overlapping windows."""
    shape, kernel, strides, pads = AVGPOOL[case]
    n, c, h, w = shape
    ho = (h + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    wo = (w + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    gy = _rng("ap", case, include_pad).normal(size=(n, c, ho, wo)).astype(F32)
    attrs = dict(kernel=kernel, strides=strides, pads=pads, in_shape=shape)
    want = gk.avgpool_grad(*_node("avgpool_grad", count_include_pad=include_pad, **attrs), gy)
    dx = np.full(shape, np.nan, F32)
    geo = PoolGeometry(*kernel, *strides, *pads)
    assert lib().tte_avgpool_grad_f32(ref(geo), include_pad, ref(dims(gy.shape)), ptr(gy), ref(dims(shape)),
                                      ptr(dx)) == TTE_OK
    same(dx, want)
    other = gk.avgpool_grad(*_node("avgpool_grad", count_include_pad=1 - include_pad, **attrs), gy)
    assert np.array_equal(want, other) == (not any(pads))  # padding changes the counts


def test_global_avgpool_grad():
    """dz / (H * W) broadcast over each plane."""
    rng = _rng("gap")
    shape = (4, 16, 5, 7)
    gy = rng.normal(size=(4, 16, 1, 1)).astype(F32)
    dx = np.full(shape, np.nan, F32)
    assert lib().tte_global_avgpool_grad_f32(ref(dims(shape)), ptr(gy), ptr(dx)) == TTE_OK
    same(dx, gk.global_avgpool_grad(*_node("global_avgpool_grad", in_shape=shape), gy))


MAXPOOL = {
    "k3s1-pad1": ((2, 2, 6, 5), (3, 3), (1, 1), (1, 1, 1, 1)),
    "k2s2": ((1, 3, 6, 6), (2, 2), (2, 2), (0, 0, 0, 0)),
    "k3x2-asym": ((1, 2, 7, 5), (3, 2), (2, 1), (1, 0, 2, 1)),
}


@pytest.mark.parametrize("case", list(MAXPOOL))
def test_maxpool_grad(case):
    """Each window's gradient to its first maximum (ties in windows, -128 inputs next to padding)."""
    shape, kernel, strides, pads = MAXPOOL[case]
    n, c, h, w = shape
    rng = _rng("mp", case)
    x = rng.integers(-3, 3, shape).astype(np.int8)
    x[:, :, 0, :] = -128
    x[:, :, :, -1] = -128
    ho = (h + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    wo = (w + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    gy = rng.normal(size=(n, c, ho, wo)).astype(F32)
    want = gk.maxpool_grad(*_node("maxpool_grad", kernel=kernel, strides=strides, pads=pads), gy, x)
    dx = np.full(shape, np.nan, F32)
    geo = PoolGeometry(*kernel, *strides, *pads)
    assert lib().tte_maxpool_grad_f32(ref(geo), ref(dims(shape)), ptr(x), ref(dims(gy.shape)), ptr(gy),
                                      ptr(dx)) == TTE_OK
    same(dx, want)


@pytest.mark.parametrize("out", ["new", "a", "b"])
def test_add_f32(out):
    """a + b, out of place and in place on either operand."""
    rng = _rng("add", out)
    a, b = rng.normal(size=(2, 29)).astype(F32)
    a, b = a.copy(), b.copy()
    want = gk.grad_add(Graph(), None, a, b)
    o = {"new": np.full(29, np.nan, F32), "a": a, "b": b}[out]
    assert lib().tte_add_f32(29, ptr(a), ptr(b), ptr(o)) == TTE_OK
    same(o, want)


@pytest.mark.parametrize("start,stop", [(0, 5), (1, 4), (3, 5), (2, 2), (0, 1)])
def test_slice_channels(start, stop):
    """Channels [start, stop) of an NCHW tensor."""
    gy = _rng("slice").normal(size=(3, 5, 2, 3)).astype(F32)
    want = gk.slice_(*_node("slice", axis=1, start=start, stop=stop), gy)
    out = np.full(want.shape, np.nan, F32)
    assert lib().tte_slice_channels_f32(ref(dims(gy.shape)), start, stop, ptr(gy), ptr(out)) == TTE_OK
    same(out, want)


@pytest.mark.parametrize("start,stop", [(-1, 2), (0, 6), (3, 2)])
def test_slice_channels_rejects_bad_ranges(start, stop):
    gy, out = np.zeros((1, 5, 2, 2), F32), np.full(20, 7, F32)
    assert lib().tte_slice_channels_f32(ref(dims(gy.shape)), start, stop, ptr(gy), ptr(out)) == TTE_ERROR_ARGUMENT
    assert (out == 7).all()
