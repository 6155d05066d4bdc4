"""Golden tests of the squeeze-and-excitation kernels (HardSwish / Sigmoid tables, elementwise Mul), called
directly through ctypes (tests/cruntime.py) against tte/reference/activations.py, and of that numpy math
against PyTorch.

C vs numpy is bit for bit: int8 outputs, bit-packed masks (pre-filled, so that bits must be both set and
cleared, and a partial last byte), float32 gradients compared as bit patterns.  The tables are exercised over
all 256 int8 inputs for several input / output quantizations: ReLU6-like clamps, saturating outputs, inputs
that land exactly on HardSwish's breakpoints +-3, sigmoid inputs past expf's underflow.  Mul covers broadcast
and same-shape operands, int8 extremes ((-128 - 127)^2), in-place calls and every argument error.  numpy vs
PyTorch (float64 autograd) checks the derivatives to float32 precision and HardSwish's convention at +-3.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cruntime import TTE_ERROR_ARGUMENT, TTE_OK, SavedS8, c_float, dims, lib, mask_bytes, ptr, ref

from tte.reference import activations as A
from tte.reference import numerics as nx
from tte.reference import semantics as sem

F32 = np.float32
FILL = 0xAA  # mask pre-fill: the kernels must both set and clear bits
ALL_S8 = np.r_[np.arange(-128, 128), [0, 1, -1, 127, -128, 5, 7]].astype(np.int8)  # 263 values: a partial byte
EPS = 2.0**-24  # half an ulp of 1 in float32: the unit of "float32 precision" below


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def s8(rng, shape) -> np.ndarray:
    return rng.integers(-128, 127, size=shape, dtype=np.int8, endpoint=True)


def packed(mask: np.ndarray, fill: int = FILL) -> np.ndarray:
    """The expected mask buffer: mask's bits over a buffer pre-filled with ``fill`` (bits past the end kept)."""
    bits = np.unpackbits(np.full((mask.size + 7) // 8, fill, np.uint8), bitorder="little")
    bits[: mask.size] = mask.ravel()
    return np.packbits(bits, bitorder="little")


def bits(a: np.ndarray) -> np.ndarray:
    """float32 bit patterns (so that -0.0 != 0.0 and NaN == NaN in comparisons)."""
    return np.ascontiguousarray(a, F32).view(np.uint32)


def same_f32(c: np.ndarray, r: np.ndarray) -> None:
    assert c.shape == r.shape and r.dtype == F32, (c.shape, r.shape, r.dtype)
    bad = bits(c) != bits(r)
    assert not bad.any(), f"{bad.sum()} of {c.size} differ: C {c[bad][:6]} vs reference {r[bad][:6]}"


def saved(q: np.ndarray, zp: int, scale: float) -> SavedS8:
    return SavedS8(ptr(q), zp, scale)


def real(q: np.ndarray, zp: int, scale: float) -> np.ndarray:
    return sem.dequantize(q, F32(scale), zp)


# ---- tables ---------------------------------------------------------------------------------------------------
# name: kind, s_x, z_x, s_y, z_y, qmin, qmax
TABLES = {
    "hardswish": ("hardswish", 0.05, 3, 0.045, -20, -128, 127),
    "hardswish-breakpoints": ("hardswish", 0.25, -7, 0.0625, -110, -128, 127),  # r = +-3 at q = -19, 5
    "hardswish-saturating": ("hardswish", 0.05, 0, 0.012, 0, -128, 127),  # |y| up to 6: most entries clamp
    "hardswish-relu6-clamp": ("hardswish", 0.06, -10, 0.05, -100, -100, 20),  # y in [0, 6]: dip and top clamp
    "hardswish-tiny-scale": ("hardswish", 1e-4, -128, 2e-3, 127, -128, 127),
    "sigmoid-tflite": ("sigmoid", 0.1, 10, 1 / 256, -128, -128, 127),  # sigmoid -> 1 saturates at 127
    "sigmoid-wide": ("sigmoid", 1.0, 0, 1 / 256, -128, -128, 127),  # r down to -128: expf underflows to 0
    "sigmoid-narrow-clamp": ("sigmoid", 0.07, -30, 1 / 200, -100, -100, 80),
    "sigmoid-zero-point-127": ("sigmoid", 0.02, 127, 1 / 128, 0, -128, 127),
}


def tables(case: str):
    kind, sx, zx, sy, zy, qmin, qmax = TABLES[case]
    return (kind, sx, zx) + A.unary_tables(kind, sx, zx, sy, zy, qmin, qmax)


@pytest.mark.parametrize("case", TABLES)
def test_unary_tables(case):
    """Layout and meaning of the three tables: entry i is q_x = i - 128; the forward entry is the quantized
    f(r) where the mask is set and a clamp bound where it is not; the gradient entry is f'(r) or 0."""
    kind, sx, zx, sy, zy, qmin, qmax = TABLES[case]
    fwd, mask, grad = A.unary_tables(kind, sx, zx, sy, zy, qmin, qmax)
    assert (fwd.dtype, mask.dtype, grad.dtype) == (np.int8, np.dtype(bool), F32)
    assert fwd.shape == mask.shape == grad.shape == (256,)
    r = (np.arange(-128, 128) - zx).astype(F32) * F32(sx)
    y = A.FORWARD[kind](r).astype(np.float64)
    err = np.abs(real(fwd, zy, sy).astype(np.float64) - y)
    assert (err[mask] <= sy / 2 * (1 + 1e-5)).all()  # rounding only
    assert np.isin(fwd[~mask], [qmin, qmax]).all()
    assert (fwd >= qmin).all() and (fwd <= qmax).all()
    same_f32(grad, np.where(mask, A.DERIVATIVE[kind](r), F32(0)).astype(F32))
    assert mask.any()
    if "saturating" in case or "clamp" in case or "tflite" in case:
        assert 0 < np.count_nonzero(~mask) < 256


def test_unary_tables_hit_the_hardswish_breakpoints():
    kind, sx, zx, fwd, mask, grad = tables("hardswish-breakpoints")
    r = (np.arange(-128, 128) - zx).astype(F32) * F32(sx)
    at = {v: int(np.flatnonzero(r == v)[0]) for v in (-3.0, 3.0)}
    assert mask[at[-3.0]] and mask[at[3.0]]
    assert grad[at[-3.0]] == 0 and grad[at[-3.0] + 1] == F32(-2.75) / F32(3) + F32(0.5)  # -0.41666...
    assert grad[at[3.0]] == 1 and grad[at[3.0] - 1] == F32(2.75) / F32(3) + F32(0.5)


def test_unary_tables_errors():
    with pytest.raises(ValueError, match="unknown table kind"):
        A.unary_tables("tanh", 0.1, 0, 0.1, 0)
    with pytest.raises(ValueError, match="256 entries"):
        A.pack_mask_table(np.ones(255, bool))
    with pytest.raises(TypeError, match="int8"):
        A.lut_forward(np.zeros(3, np.int16), np.zeros(256, np.int8), np.zeros(256, bool))


def test_pack_mask_table_layout():
    m = np.zeros(256, bool)
    m[[0, 9, 255]] = True
    p = A.pack_mask_table(m)
    assert p.dtype == np.uint8 and p.shape == (32,)
    assert p[0] == 1 and p[1] == 2 and p[31] == 0x80 and np.count_nonzero(p) == 3


@pytest.mark.parametrize("in_place", [False, True], ids=["out", "in-place"])
@pytest.mark.parametrize("case", TABLES)
def test_lut_s8(case, in_place):
    """Every int8 input (shuffled, some repeated, 263 values: a partial mask byte) through tte_lut_s8, with a
    pre-filled mask and with NULL mask / mask_table."""
    *_, fwd, mask, _grad = tables(case)
    x = rng_for("lut", case).permutation(ALL_S8)
    want, want_mask = A.lut_forward(x, fwd, mask)
    np.testing.assert_array_equal(want, fwd[x.astype(int) + 128])
    mt = A.pack_mask_table(mask)
    for m_out, m_table in ((mask_bytes(x.size, FILL), mt), (None, None), (None, mt)):
        out = x.copy() if in_place else np.full(x.size, 99, np.int8)
        src = out if in_place else x
        assert lib().tte_lut_s8(x.size, ptr(src), ptr(fwd), ptr(m_table), ptr(out), ptr(m_out)) == TTE_OK
        np.testing.assert_array_equal(out, want)
        if m_out is not None:
            np.testing.assert_array_equal(m_out, packed(want_mask))


def test_lut_s8_errors():
    """A mask without a mask table is an argument error, and nothing is written; size 0 writes nothing."""
    x, fwd = ALL_S8.copy(), np.arange(-128, 128).astype(np.int8)
    out, m = np.full(x.size, 99, np.int8), mask_bytes(x.size, FILL)
    assert lib().tte_lut_s8(x.size, ptr(x), ptr(fwd), None, ptr(out), ptr(m)) == TTE_ERROR_ARGUMENT
    assert (out == 99).all() and (m == FILL).all()
    assert lib().tte_lut_s8(0, ptr(x), ptr(fwd), ptr(np.zeros(32, np.uint8)), ptr(out), ptr(m)) == TTE_OK
    assert (out == 99).all() and (m == FILL).all()


@pytest.mark.parametrize("in_place", [False, True], ids=["out", "in-place"])
@pytest.mark.parametrize("case", TABLES)
def test_lut_grad_f32(case, in_place):
    """dx = dy * grad[x + 128] bit for bit, with signed zeros, infinities and NaN in dy."""
    *_, grad = tables(case)
    rng = rng_for("lutgrad", case)
    x = rng.permutation(np.r_[ALL_S8, ALL_S8])
    dy = (rng.normal(size=x.size) * 10).astype(F32)
    dy[:6] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-42]
    with np.errstate(invalid="ignore"):
        want = A.lut_grad(dy, x, grad)
    out = dy.copy() if in_place else np.full(x.size, 7, F32)
    src = out if in_place else dy
    assert lib().tte_lut_grad_f32(x.size, ptr(src), ptr(x), ptr(grad), ptr(out)) == TTE_OK
    same_f32(out, want)


@pytest.mark.parametrize("case", TABLES)
def test_lut_grad_is_ste_then_derivative(case):
    """The folded table is the straight-through mask of the output, then the derivative at the input:
    lut_grad(dy, x) == ste(dy, mask(x)) * f'(r(x)) for finite dy."""
    kind, sx, zx, fwd, mask, grad = tables(case)
    rng = rng_for("fold", case)
    x = rng.permutation(ALL_S8)
    dy = rng.normal(size=x.size).astype(F32)
    _, m = A.lut_forward(x, fwd, mask)
    r = real(x, zx, sx)
    want = (np.where(m, dy, F32(0)) * A.DERIVATIVE[kind](r)).astype(F32)  # the ste op, then f'
    np.testing.assert_array_equal(A.lut_grad(dy, x, grad), want)


# ---- numpy math vs PyTorch ------------------------------------------------------------------------------------
def torch64(fn, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(f(r), f'(r)) from float64 PyTorch autograd at the float32 points r."""
    t = torch.tensor(r.astype(np.float64), requires_grad=True)
    y = fn(t)
    y.sum().backward()
    return y.detach().numpy(), t.grad.numpy()


def grid() -> np.ndarray:
    """Dense float32 inputs over [-20, 20], the breakpoints +-3 and their float32 neighbours, every table's r."""
    pts = [np.linspace(-20, 20, 40001, dtype=F32), F32([-3, 3, 0, -0.0, -1.5])]
    for v in (F32(-3), F32(3)):
        pts.append(F32([np.nextafter(v, F32(-np.inf)), np.nextafter(v, F32(np.inf))]))
    for _kind, sx, zx, *_ in TABLES.values():
        pts.append(real(np.arange(-128, 128).astype(np.int8), zx, sx))
    return np.concatenate(pts).astype(F32)


def test_hardswish_matches_torch():
    """Forward and derivative agree with float64 PyTorch to float32 precision: relative 4 half-ulps, plus an
    absolute half-ulp of 1 near the derivative's zero at r = -1.5 (r / 3 + 0.5 cancels)."""
    r = grid()
    y, dy = torch64(F.hardswish, r)
    np.testing.assert_allclose(A.hardswish_f32(r), y, rtol=4 * EPS, atol=1e-30)
    np.testing.assert_allclose(A.hardswish_grad_f32(r), dy, rtol=4 * EPS, atol=2 * EPS)


def test_hardswish_grad_boundary_convention_matches_torch():
    """At exactly r = -3 the derivative is 0 and at r = +3 it is 1 (the outer pieces), as PyTorch's
    hardswish_backward: not the middle piece's -0.5 and 1.5.  Just inside, the middle piece applies."""
    r = np.array([-3.0, 3.0], F32)
    _, dy = torch64(F.hardswish, r)
    np.testing.assert_array_equal(dy, [0.0, 1.0])
    np.testing.assert_array_equal(A.hardswish_grad_f32(r), [0.0, 1.0])
    inside = F32([np.nextafter(F32(-3), F32(0)), np.nextafter(F32(3), F32(0))])
    _, dy = torch64(F.hardswish, inside)
    np.testing.assert_allclose(A.hardswish_grad_f32(inside), dy, rtol=4 * EPS)
    assert A.hardswish_grad_f32(inside)[0] < -0.49 and A.hardswish_grad_f32(inside)[1] > 1.49
    aten = torch.ops.aten.hardswish_backward(torch.ones(2, dtype=torch.float64), torch.tensor([-3.0, 3.0]).double())
    np.testing.assert_array_equal(aten.numpy(), [0.0, 1.0])


def test_hardswish_equals_torch_float32():
    """Bonus: our float32 op order is PyTorch's own, so float32 PyTorch gives the same bits (forward and
    derivative) on every point of the grid."""
    r = grid()
    t = torch.tensor(r, requires_grad=True)
    F.hardswish(t).sum().backward()
    same_f32(A.hardswish_f32(r), F.hardswish(torch.tensor(r)).numpy())
    same_f32(A.hardswish_grad_f32(r), t.grad.numpy())


def test_sigmoid_matches_torch():
    """Forward and derivative agree with float64 PyTorch to float32 precision: relative 12 half-ulps, and for
    the forward an absolute 2^-125 (expf flushes to 0 below -87.3, and exp(-87.3) < 2^-125: float32's edge),
    for the derivative an absolute half-ulp of 1 (its float64 PyTorch value is itself 0 from r = 36.7 on)."""
    r = np.concatenate([grid(), np.linspace(-90, 90, 20001, dtype=F32)])
    y, dy = torch64(torch.sigmoid, r)
    np.testing.assert_allclose(A.sigmoid_f32(r), y, rtol=12 * EPS, atol=2.0**-125)
    np.testing.assert_allclose(A.sigmoid_grad_f32(r), dy, rtol=12 * EPS, atol=EPS)
    assert A.sigmoid_f32(F32(0)) == 0.5 and A.sigmoid_grad_f32(F32(0)) == 0.25


def test_sigmoid_grad_is_relatively_accurate_in_the_tails():
    """Against the exact e / (1 + e)^2 (float64, e = exp(-|r|)) the derivative is within 16 half-ulps relative on
    [-80, 80], where s * (1 - s) by subtraction would be 0 from r = 17 on; it is exactly even in r."""
    r = np.linspace(-80, 80, 80001, dtype=F32)
    e = np.exp(-np.abs(r.astype(np.float64)))
    exact = e / (1 + e) ** 2
    ours = A.sigmoid_grad_f32(r).astype(np.float64)
    assert (np.abs(ours - exact) <= 16 * EPS * exact).all()
    same_f32(A.sigmoid_grad_f32(r), A.sigmoid_grad_f32(-r))
    s = A.sigmoid_f32(F32(20))
    assert s * (F32(1) - s) == 0 and A.sigmoid_grad_f32(F32(20)) > 0


def test_sigmoid_underflow_and_branches():
    """expf is only called on values <= 0; below -87.3 it is 0, so sigmoid(-100) = 0 and sigmoid(100) = 1."""
    np.testing.assert_array_equal(A.sigmoid_f32(F32([-100, 100, -0.0])), F32([0, 1, 0.5]))
    np.testing.assert_array_equal(A.sigmoid_grad_f32(F32([-100, 100])), F32([0, 0]))
    r = np.linspace(-10, 10, 2001, dtype=F32)
    e = nx.expf(-np.abs(r))
    want = np.where(r >= 0, F32(1) / (F32(1) + e), e / (F32(1) + e)).astype(F32)
    same_f32(A.sigmoid_f32(r), want)


# ---- Mul --------------------------------------------------------------------------------------------------------
# name: a shape, broadcast b, (s_a, z_a), (s_b, z_b), (s_y, z_y), clamp
MUL = {
    "se-gate": ((2, 5, 4, 3), True, (0.05, -3), (1 / 256, -128), (0.04, 7), (-128, 127)),
    "se-gate-1x1": ((1, 6, 1, 1), True, (0.1, 0), (0.02, 12), (0.01, -5), (-128, 127)),
    "same-shape": ((2, 3, 5, 7), False, (0.03, 11), (0.07, -20), (0.08, 0), (-128, 127)),
    "same-shape-relu6": ((1, 4, 3, 5), False, (0.05, 0), (0.05, 0), (0.03, -90), (-90, 110)),
    "saturating": ((2, 3, 4, 4), True, (0.1, 0), (0.1, 0), (0.005, 0), (-128, 127)),
    "flat": ((17, 1, 1, 1), False, (0.2, -1), (0.3, 2), (0.5, 3), (-128, 127)),
}


def mul_case(case: str):
    shape, broadcast, (sa, za), (sb, zb), (sy, zy), (qmin, qmax) = MUL[case]
    rng = rng_for("mul", case)
    bshape = (shape[0], shape[1], 1, 1) if broadcast else shape
    a, b = s8(rng, shape), s8(rng, bshape)
    a.flat[:3] = [-128, 127, -128]
    b.flat[0] = -128
    return a, b, sa, za, sb, zb, sy, zy, qmin, qmax


def test_mul_multiplier():
    m = A.mul_multiplier(0.05, 1 / 256, 0.04)
    assert m.dtype == F32 and m == F32(np.float64(F32(0.05)) * np.float64(F32(1 / 256)) / np.float64(F32(0.04)))


MUL_IN_PLACE = [(c, w) for c in MUL for w in ("out", "a", "b") if w != "b" or not MUL[c][1]]  # b: same shape only


@pytest.mark.parametrize("case, in_place", MUL_IN_PLACE)
def test_mul_s8(case, in_place):
    """tte_mul_s8 == mul_forward (output and mask, pre-filled and NULL mask), also in place over a, or over b
    when b has a's shape."""
    a, b, sa, za, sb, zb, sy, zy, qmin, qmax = mul_case(case)
    m = A.mul_multiplier(sa, sb, sy)
    want, want_mask = A.mul_forward(a, za, b, zb, m, zy, qmin, qmax)
    assert want.shape == a.shape and want.dtype == np.int8
    for mask in (mask_bytes(a.size, FILL), None):
        aa, bb = a.copy(), b.copy()
        out = {"out": np.full(a.shape, 99, np.int8), "a": aa, "b": bb}[in_place]
        status = lib().tte_mul_s8(ref(dims(a.shape)), ptr(aa), za, ref(dims(b.shape)), ptr(bb), zb, c_float(m), zy,
                                  qmin, qmax, ptr(out), ptr(mask))
        assert status == TTE_OK
        np.testing.assert_array_equal(out, want)
        if mask is not None:
            np.testing.assert_array_equal(mask, packed(want_mask))
    if case == "saturating":
        assert 0 < np.count_nonzero(~want_mask) < want.size


def test_mul_s8_int8_extremes():
    """(-128 - 127) * (-128 - 127) = 65025 and (127 + 128) * (-128 - 127) = -65025, exact in int32 and float32,
    with a multiplier that keeps them unsaturated; ties round half to even."""
    a = np.array([-128, 127, -128, 127, 0, 1, 3], np.int8).reshape(1, 7, 1, 1)
    b = np.array([-128, -128, 127, 127, 0, 1, 1], np.int8).reshape(1, 7, 1, 1)
    for za, zb, m in ((127, 127, 1 / 1024), (-128, 127, 1 / 1024), (0, 0, 0.5), (0, 0, 1.0)):
        m = F32(m)
        want, want_mask = A.mul_forward(a, za, b, zb, m, 0)
        acc = (a.astype(np.int64) - za) * (b.astype(np.int64) - zb)
        np.testing.assert_array_equal(want.astype(np.int64), np.clip(np.rint(acc * np.float64(m)), -128, 127))
        out, mask = np.full(7, 99, np.int8), mask_bytes(7, FILL)
        assert lib().tte_mul_s8(ref(dims(a.shape)), ptr(a), za, ref(dims(b.shape)), ptr(b), zb, c_float(m), 0,
                                -128, 127, ptr(out), ptr(mask)) == TTE_OK
        np.testing.assert_array_equal(out, want.ravel())
        np.testing.assert_array_equal(mask, packed(want_mask))
    assert A.mul_forward(a, 0, b, 0, F32(0.5), 0)[0].ravel()[5] == 0  # 0.5 rounds to even 0


MUL_ERRORS = {
    "b-h-not-1": (2, 3, 4, 1),
    "b-w-not-1": (2, 3, 1, 5),
    "b-channels": (2, 4, 1, 1),
    "b-batch-broadcast": (1, 3, 1, 1),
    "b-larger": (2, 3, 4, 6),
    "b-transposed": (2, 3, 5, 4),
}


@pytest.mark.parametrize("case", MUL_ERRORS)
def test_mul_errors(case):
    """b (or the other operand of a gradient) neither of a's dims nor [n, c, 1, 1]: TTE_ERROR_ARGUMENT, nothing
    written, and the numpy functions raise."""
    shape, bad = (2, 3, 4, 5), MUL_ERRORS[case]
    big = np.zeros(4096, np.int8)
    out, m = np.full(4096, 99, np.int8), mask_bytes(4096, FILL)
    assert lib().tte_mul_s8(ref(dims(shape)), ptr(big), 0, ref(dims(shape)), ptr(big), 0, c_float(1.0), 0, -128, 127,
                            ptr(out), ptr(m)) == TTE_OK
    out[:], m[:] = 99, FILL
    assert lib().tte_mul_s8(ref(dims(shape)), ptr(big), 0, ref(dims(bad)), ptr(big), 0, c_float(1.0), 0, -128, 127,
                            ptr(out), ptr(m)) == TTE_ERROR_ARGUMENT
    assert (out == 99).all() and (m == FILL).all()
    dz, d = np.ones(4096, F32), np.full(4096, 7, F32)
    assert lib().tte_mul_grad_f32(ref(dims(shape)), ptr(dz), ref(dims(bad)), ref(saved(big, 0, 1.0)),
                                  ptr(d)) == TTE_ERROR_ARGUMENT
    assert (d == 7).all()
    with pytest.raises(ValueError, match="per channel"):
        A.mul_forward(np.zeros(shape, np.int8), 0, np.zeros(bad, np.int8), 0, F32(1), 0)
    with pytest.raises(ValueError, match="per channel"):
        A.mul_grad(np.zeros(shape, F32), np.zeros(bad, F32))
    with pytest.raises(ValueError, match="dz's NCHW shape"):
        A.mul_grad_channel(np.zeros(shape, F32), np.zeros(bad, F32))


def grad_data(case: str):
    a, b, sa, za, sb, zb, *_ = mul_case(case)
    rng = rng_for("mulgrad", case)
    dz = (rng.normal(size=a.shape) * rng.choice([0.0, 1e-3, 1.0, 40.0], size=a.shape)).astype(F32)
    dz.flat[1] = -0.0
    return a, b, sa, za, sb, zb, dz


@pytest.mark.parametrize("in_place", [False, True], ids=["out", "in-place"])
@pytest.mark.parametrize("case", MUL)
def test_mul_grad_f32(case, in_place):
    """Gradient of a (other = b, same shape or broadcast), and of a same-shape b (other = a): bit for bit."""
    a, b, sa, za, sb, zb, dz = grad_data(case)
    pairs = [(b, zb, sb)] + ([(a, za, sa)] if b.shape == a.shape else [])
    for other, zo, so in pairs:
        want = A.mul_grad(dz, real(other, zo, so))
        assert want.shape == dz.shape
        out = dz.copy() if in_place else np.full(dz.shape, 7, F32)
        src = out if in_place else dz
        assert lib().tte_mul_grad_f32(ref(dims(dz.shape)), ptr(src), ref(dims(other.shape)),
                                      ref(saved(other, zo, so)), ptr(out)) == TTE_OK
        same_f32(out, want)


@pytest.mark.parametrize("in_place", [False, True], ids=["out", "in-place"])
@pytest.mark.parametrize("case", [c for c in MUL if MUL[c][1]])
def test_mul_grad_channel_f32(case, in_place):
    """Gradient of the per-channel operand: the left-to-right float32 sum over each plane, bit for bit (a plane
    of -0.0 terms sums to -0.0); in place it overwrites the head of dz."""
    a, b, sa, za, sb, zb, dz = grad_data(case)
    n, c = a.shape[:2]
    dz[0, 0], a[0, 0] = -0.0, za + 1  # a plane of -0.0 * positive terms
    want = A.mul_grad_channel(dz, real(a, za, sa))
    assert want.shape == b.shape and bits(want)[0, 0, 0, 0] == 0x80000000
    buf = dz.copy()
    out = buf if in_place else np.full(b.shape, 7, F32)
    assert lib().tte_mul_grad_channel_f32(ref(dims(dz.shape)), ptr(buf), ref(saved(a, za, sa)), ptr(out)) == TTE_OK
    same_f32(out.ravel()[: n * c].reshape(b.shape), want)


def test_mul_grad_channel_order_is_left_to_right():
    """Terms whose float32 sum depends on the order: 1e8, then 1.0 many times, then -1e8 gives 0 left to right
    (each 1.0 is absorbed), not numpy's pairwise 24."""
    hw = 26
    a = np.ones((1, 1, 1, hw), np.int8)
    dz = np.r_[F32(1e8), np.ones(hw - 2, F32), F32(-1e8)].reshape(1, 1, 1, hw)
    want = A.mul_grad_channel(dz, real(a, 0, 1.0))
    assert want.ravel()[0] == 0 and dz.sum(dtype=F32) != 0
    out = np.full(1, 7, F32)
    assert lib().tte_mul_grad_channel_f32(ref(dims(dz.shape)), ptr(dz), ref(saved(a, 0, 1.0)), ptr(out)) == TTE_OK
    same_f32(out, want.ravel())


@pytest.mark.parametrize("case", MUL)
def test_mul_math_matches_torch(case):
    """The forward is a*b up to one output rounding where unsaturated; the gradients agree with float64 PyTorch
    autograd of a * b (broadcast) to float32 precision (sums: relative to the sum of absolute terms)."""
    a, b, sa, za, sb, zb, dz = grad_data(case)
    *_, sy, zy, qmin, qmax = mul_case(case)
    ar, br = real(a, za, sa), real(b, zb, sb)
    y, mask = A.mul_forward(a, za, b, zb, A.mul_multiplier(sa, sb, sy), zy, qmin, qmax)
    exact = ar.astype(np.float64) * br.astype(np.float64)
    assert (np.abs(real(y, zy, sy) - exact) <= sy / 2 + 1e-6 * np.abs(exact))[mask].all()
    ta = torch.tensor(ar.astype(np.float64), requires_grad=True)
    tb = torch.tensor(br.astype(np.float64), requires_grad=True)
    (ta * tb).backward(torch.tensor(dz.astype(np.float64)))
    np.testing.assert_allclose(A.mul_grad(dz, br), ta.grad.numpy(), rtol=2 * EPS, atol=0)
    if b.shape == a.shape:
        np.testing.assert_allclose(A.mul_grad(dz, ar), tb.grad.numpy(), rtol=2 * EPS, atol=0)
    else:
        db = A.mul_grad_channel(dz, ar).astype(np.float64)
        scale = np.abs(dz.astype(np.float64) * ar).sum(axis=(2, 3), keepdims=True)
        assert (np.abs(db - tb.grad.numpy()) <= a.shape[2] * a.shape[3] * 2 * EPS * scale + 1e-30).all()


# ---- lut_global_avgpool --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,shape,qmin", [("hardswish", (1, 5, 7, 3), -128), ("sigmoid", (2, 3, 4, 4), -128),
                                             ("hardswish", (1, 4, 2, 2), -20)])
def test_lut_global_avgpool_s8(kind, shape, qmin):
    """The fused activation + global average pool: C == the op's reference kernel (values and mask)."""
    from tte.ir import Graph, Node, QuantParams, Value
    from tte.ops import OPS

    rng = rng_for("lut_gap", kind, shape)
    g = Graph()
    g.add_value(Value("x", "int8", shape, QuantParams.per_tensor(0.05, 7)))
    g.add_value(Value("y", "int8", (*shape[:2], 1, 1), QuantParams.per_tensor(0.01, -30)))
    g.add_value(Value("m", "bool", (*shape[:2], 1, 1)))
    node = Node("lut_global_avgpool", "n", ["x"], ["y", "m"], dict(kind=kind, qmin=qmin, qmax=127, save_mask=True))
    x = s8(rng, shape)
    ref_y, ref_m = OPS["lut_global_avgpool"].kernel(g, node, x)
    from tte.ops.activation import pool_multiplier, real_tables

    table = np.ascontiguousarray(real_tables(g, "x", kind)[0], np.float32)
    y = np.zeros(ref_y.size, np.int8)
    mask = mask_bytes(ref_y.size, FILL)
    status = lib().tte_lut_global_avgpool_s8(ref(dims(shape)), ptr(x), ptr(table),
                                             c_float(pool_multiplier(g, node)), -30, qmin, 127, ptr(y), ptr(mask))
    assert status == TTE_OK
    np.testing.assert_array_equal(y, ref_y.reshape(-1))
    assert (np.unpackbits(mask, bitorder="little")[:y.size].astype(bool) == ref_m.reshape(-1)).all()
    assert len(set(y.tolist())) > 1
