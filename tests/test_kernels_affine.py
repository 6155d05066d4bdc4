"""The per-channel affine op (tte/ops/affine.py): its C kernels called directly through ctypes (tests/cruntime.py)
against the numpy reference, bit for bit, and its gradient rule against central finite differences of the
real-valued map it computes."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from cruntime import TTE_OK, dims, lib, mask_bytes, ptr, ref

from tte.ir import Graph, Node, QuantParams, Value
from tte.ir.facts import set_arithmetic
from tte.ops import affine as A
from tte.ops.affine import affine, affine_grad, affine_shape, slope_ratio

F32 = np.float32
FILL = 0xAA  # mask pre-fill: the kernel must both set and clear bits


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def packed(mask: np.ndarray, fill: int = FILL) -> np.ndarray:
    bits = np.unpackbits(np.full((mask.size + 7) // 8, fill, np.uint8), bitorder="little")
    bits[: mask.size] = mask.ravel()
    return np.packbits(bits, bitorder="little")


def one_affine(rng, shape, qmin=-128, qmax=127, wide=False):
    """A one-node graph: x int8 ``shape`` -> affine -> y, random per-channel multipliers (both signs) and offsets."""
    c = shape[1]
    x = rng.integers(-128, 128, shape, dtype=np.int8)
    sx, zx = float(rng.uniform(0.01, 0.05)), int(rng.integers(-30, 30))
    sy, zy = float(rng.uniform(0.01, 0.05)), int(rng.integers(-30, 30))
    m = rng.uniform(-3 if wide else -1.2, 3 if wide else 1.2, c).astype(F32)
    o = rng.uniform(-80, 80, c).astype(F32)
    g = Graph("affine")
    g.add_input(Value("x", "int8", shape, QuantParams.per_tensor(sx, zx)))
    g.add_const("m", m)
    g.add_const("o", o)
    g.add_value(Value("y", "int8", shape, QuantParams.per_tensor(sy, zy)))
    g.add_value(Value("mask", "bool", shape))
    node = Node("affine", "n", ["x", "m", "o"], ["y", "mask"], {"qmin": qmin, "qmax": qmax, "save_mask": True})
    g.nodes.append(node)
    return g, node, x, m, o


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 4, 3, 3), (1, 10), (3, 6), (1, 1, 1, 9)])
@pytest.mark.parametrize("clamp", [(-128, 127), (-20, 127), (-128, 40)], ids=["none", "relu-like", "upper"])
def test_affine_s8_matches_reference(shape, clamp):
    rng = rng_for(shape, clamp)
    g, node, x, m, o = one_affine(rng, shape, *clamp, wide=True)
    want, want_mask = affine(g, node, x, m, o)
    assert want_mask.any() and not want_mask.all() or clamp == (-128, 127)
    zx, zy = int(g["x"].quant.zero_point), int(g["y"].quant.zero_point)
    out, mask = np.full(x.size, 99, np.int8), mask_bytes(x.size, FILL)
    assert lib().tte_affine_s8(ref(dims(shape)), ptr(x), zx, ptr(m), ptr(o), zy, *clamp, ptr(out), ptr(mask)) == TTE_OK
    np.testing.assert_array_equal(out.reshape(shape), want)
    np.testing.assert_array_equal(mask, packed(want_mask))
    # in place, no mask
    inplace = x.copy()
    status = lib().tte_affine_s8(ref(dims(shape)), ptr(inplace), zx, ptr(m), ptr(o), zy, *clamp, ptr(inplace), None)
    assert status == TTE_OK
    np.testing.assert_array_equal(inplace, want)


def test_affine_reference_rounds_each_float32_operation():
    """v = float32(float32(x - zx) * m) + o: one rounding per operation (a fused multiply-add would differ)."""
    g, node, x, _, _ = one_affine(rng_for("ties"), (1, 1, 1, 4))
    m = np.array([np.nextafter(F32(1.0), F32(2.0))], F32)  # 1 + 2^-23
    o = np.array([0.5], F32)
    x = np.array([[[[0, 1, 2, 3]]]], np.int8) + int(g["x"].quant.zero_point)
    node.attrs["save_mask"] = False
    y = affine(g, node, x, m, o)
    zy = int(g["y"].quant.zero_point)
    # 0.5 + 0 -> 0 (half to even); 1 * m + 0.5 = 1.5000001 -> 2; 2 * m + 0.5 -> 3; 3 * m + .5 -> 4 (3.5000004)
    assert (y.reshape(-1) - zy).tolist() == [0, 2, 3, 4]


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 4, 1, 1), (3, 6)])
def test_affine_grad_f32_matches_reference(shape):
    rng = rng_for("grad", shape)
    g, node, x, m, o = one_affine(rng, shape)
    ratio = slope_ratio(g, node)
    dz = rng.standard_normal(shape).astype(F32)
    dz.reshape(-1)[:3] = [-0.0, np.inf, 0.0]
    want = affine_grad(g, Node("affine_grad", "b", ["dz", "m"], ["dx"], {"ratio": ratio}), dz, m)
    slopes = A.slopes(m, ratio)
    out = np.full(dz.size, 7.0, F32)
    assert lib().tte_affine_grad_f32(ref(dims(shape)), ptr(dz), ptr(slopes), ptr(out)) == TTE_OK
    np.testing.assert_array_equal(out.view(np.uint32).reshape(shape), want.view(np.uint32))
    inplace = dz.copy()
    assert lib().tte_affine_grad_f32(ref(dims(shape)), ptr(inplace), ptr(slopes), ptr(inplace)) == TTE_OK
    np.testing.assert_array_equal(inplace.view(np.uint32), want.view(np.uint32))


def test_affine_gradient_rule_by_finite_differences():
    """The rule's dx (real units) against central differences of the real map a[c] * x + b[c] the op computes,
    a[c] = m[c] * s_y / s_x, along a random direction: <dx, d> == d/de <gy, f(x + e d)>."""
    rng = rng_for("fd")
    shape = (2, 3, 4, 5)
    g, node, x, m, o = one_affine(rng, shape)
    sx, sy = float(g["x"].quant.scale), float(g["y"].quant.scale)
    a = m.astype(np.float64) * sy / sx
    b = o.astype(np.float64) * sy
    gy = rng.standard_normal(shape)
    mask = rng.random(shape) < 0.8  # where the output did not saturate

    def f(xr):
        return np.where(mask, a.reshape(1, -1, 1, 1) * xr + b.reshape(1, -1, 1, 1), 0.0)

    dx = affine_grad(g, Node("affine_grad", "b", ["dz", "m"], ["dx"], {"ratio": slope_ratio(g, node)}),
                     np.where(mask, gy, 0).astype(F32), m)
    xr = sx * (x.astype(np.float64) - float(g["x"].quant.zero_point))
    d = rng.standard_normal(shape)
    eps = 1e-3
    numeric = (np.sum(gy * f(xr + eps * d)) - np.sum(gy * f(xr - eps * d))) / (2 * eps)
    analytic = float(np.sum(dx.astype(np.float64) * d))
    assert abs(numeric - analytic) <= 2e-5 * max(abs(numeric), 1.0), (numeric, analytic)


def test_tflite_arithmetic_refuses_affine():
    g, node, *_ = one_affine(rng_for("tflite"), (1, 2, 2, 2))
    assert affine_shape(g, node) == (1, 2, 2, 2)
    set_arithmetic(g, "tflite")
    with pytest.raises(ValueError, match="no TFLite integer arithmetic.*onnxruntime.quantization.preprocess"):
        affine_shape(g, node)
