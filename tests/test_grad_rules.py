"""Each backward kernel against central finite differences of the real-valued op it differentiates.

For an op y = f(theta) (linear or piecewise linear in theta) and a random output gradient gy, the
kernel's gradient g must satisfy the inner-product identity along a random direction d:

    <g, d>  ==  ( <gy, f(theta + eps d)> - <gy, f(theta - eps d)> ) / (2 eps)

The forward ops here are written independently in float64 (plain loops over kernel taps).
"""

from __future__ import annotations

import numpy as np
import pytest
from refkernels import GRAD_KERNELS

from tte.ir import Graph, Node, QuantParams, Value

EPS = 1e-3


def fd_check(loss, theta: np.ndarray, grad: np.ndarray, rng, mask=None, rtol=2e-5):
    d = rng.standard_normal(theta.shape)
    if mask is not None:
        d = d * mask
    numeric = (loss(theta + EPS * d) - loss(theta - EPS * d)) / (2 * EPS)
    analytic = float(np.sum(grad.astype(np.float64) * d))
    assert abs(numeric - analytic) <= rtol * max(abs(numeric), 1.0), (numeric, analytic)


def conv_real(x, w, strides, pads, groups):
    """float64 convolution with zero padding, groups, per-tap loops."""
    top, left, bottom, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, c, h, wd = xp.shape
    o, cg, kh, kw = w.shape
    sh, sw = strides
    ho, wo = (h - kh) // sh + 1, (wd - kw) // sw + 1
    og = o // groups
    y = np.zeros((n, o, ho, wo))
    for oc in range(o):
        gi = oc // og
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, gi * cg:(gi + 1) * cg, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
                y[:, oc] += np.einsum("nchw,c->nhw", patch, w[oc, :, i, j])
    return y


def graph_with(**values) -> Graph:
    g = Graph("rule")
    for name, v in values.items():
        g.values[name] = v
    return g


def quantized(rng, shape, axis=None):
    q = rng.integers(-128, 128, shape, dtype=np.int8)
    if axis is None:
        p = QuantParams.per_tensor(0.02, int(rng.integers(-20, 20)))
    else:
        p = QuantParams(rng.uniform(0.005, 0.02, shape[axis]).astype(np.float32), np.zeros(shape[axis], np.int32), axis)
    return q, p


def real(q, p):
    if p.axis is None:
        return p.scale.astype(np.float64) * (q.astype(np.float64) - float(p.zero_point))
    shape = (-1,) + (1,) * (q.ndim - 1)
    return p.scale.astype(np.float64).reshape(shape) * (q.astype(np.float64) - p.zero_point.reshape(shape))


# (C_in, C_out, kernel, stride, pads, groups, trained leading channels)
CONV_CASES = [
    (4, 6, 1, 1, (0, 0, 0, 0), 1, 4),
    (4, 6, 3, 1, (1, 1, 1, 1), 1, 2),
    (3, 5, 5, 2, (2, 2, 2, 2), 1, 3),
    (3, 4, 7, 2, (3, 3, 3, 3), 1, 1),
    (4, 4, 3, 2, (1, 0, 1, 0), 1, 4),
    (4, 4, 3, 1, (0, 0, 0, 0), 1, 3),
    (6, 6, 3, 2, (0, 0, 1, 1), 6, 3),
    (8, 8, 5, 1, (2, 2, 2, 2), 8, 8),
    (8, 8, 7, 2, (3, 3, 3, 3), 8, 5),
    (6, 6, 3, 1, (1, 1, 1, 1), 6, 6),
    (4, 6, 3, 1, (1, 1, 1, 1), 2, 2),
    (6, 12, 3, 2, (1, 1, 1, 1), 6, 1),
]


@pytest.mark.parametrize("cin,cout,k,stride,pads,groups,channels", CONV_CASES)
def test_conv_rules(cin, cout, k, stride, pads, groups, channels):
    rng = np.random.default_rng(cin * 100 + k * 10 + stride)
    x, xq = quantized(rng, (2, cin, 9, 8))
    w, wq = quantized(rng, (cout, cin // groups, k, k), axis=0)
    g = graph_with(x=Value("x", "int8", x.shape, xq), w=Value("w", "int8", w.shape, wq))
    strides = (stride, stride)
    y_shape = conv_real(real(x, xq), real(w, wq), strides, pads, groups).shape
    gy = rng.standard_normal(y_shape).astype(np.float32)
    depthwise = groups == cin == cout
    attrs = dict(strides=strides, pads=pads, groups=groups)

    # input gradient: along x (real units), W fixed
    gx = GRAD_KERNELS["conv_grad_input"](g, Node("conv_grad_input", "n", ["gy", "w"], ["gx"],
                                                 dict(attrs, in_shape=x.shape)), gy, w)
    wr = real(w, wq)
    fd_check(lambda xr: np.sum(gy * conv_real(xr, wr, strides, pads, groups)), real(x, xq), gx, rng)

    # weight gradient for the leading channels (depthwise: leading channels of the weight's rows)
    gw = GRAD_KERNELS["conv_grad_weight"](g, Node("conv_grad_weight", "n", ["gy", "x"], ["gw"],
                                                  dict(attrs, kernel=(k, k), channels=channels,
                                                       depthwise=depthwise)), gy, x)
    full = np.zeros(w.shape)
    if depthwise:
        full[:channels] = gw
        mask = np.zeros(w.shape)
        mask[:channels] = 1
    else:
        full[:, :channels] = gw
        mask = np.zeros(w.shape)
        mask[:, :channels] = 1
    xr = real(x, xq)
    fd_check(lambda wv: np.sum(gy * conv_real(xr, wv, strides, pads, groups)), wr, full, rng, mask)

    # bias gradient
    gb = GRAD_KERNELS["bias_grad"](g, Node("bias_grad", "n", ["gy"], ["gb"]), gy)
    fd_check(lambda b: np.sum(gy * b[None, :, None, None]), np.zeros(cout), gb, rng)


@pytest.mark.parametrize("n,k,m,channels", [(1, 8, 5, 8), (3, 10, 4, 6), (2, 1, 3, 1)])
def test_gemm_rules(n, k, m, channels):
    rng = np.random.default_rng(k)
    x, xq = quantized(rng, (n, k))
    w, wq = quantized(rng, (m, k), axis=0)
    g = graph_with(x=Value("x", "int8", x.shape, xq), w=Value("w", "int8", w.shape, wq))
    gy = rng.standard_normal((n, m)).astype(np.float32)
    xr, wr = real(x, xq), real(w, wq)
    gx = GRAD_KERNELS["gemm_grad_input"](g, Node("gemm_grad_input", "n", ["gy", "w"], ["gx"]), gy, w)
    fd_check(lambda v: np.sum(gy * (v @ wr.T)), xr, gx, rng)
    gw = GRAD_KERNELS["gemm_grad_weight"](g, Node("gemm_grad_weight", "n", ["gy", "x"], ["gw"],
                                                  {"channels": channels}), gy, x)
    full = np.zeros(w.shape)
    full[:, :channels] = gw
    mask = np.zeros(w.shape)
    mask[:, :channels] = 1
    fd_check(lambda v: np.sum(gy * (xr @ v.T)), wr, full, rng, mask)


def avgpool_real(x, kernel, strides, pads, count_include_pad):
    top, left, bottom, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    ones = np.pad(np.ones(x.shape[2:]), ((top, bottom), (left, right)))
    kh, kw = kernel
    sh, sw = strides
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    y = np.zeros(x.shape[:2] + (ho, wo))
    for a in range(ho):
        for b in range(wo):
            win = xp[:, :, a * sh:a * sh + kh, b * sw:b * sw + kw]
            count = kh * kw if count_include_pad else ones[a * sh:a * sh + kh, b * sw:b * sw + kw].sum()
            y[:, :, a, b] = win.sum(axis=(2, 3)) / count
    return y


@pytest.mark.parametrize("kernel,stride,pads,cip", [
    (2, 2, (0, 0, 0, 0), 0), (3, 1, (1, 1, 1, 1), 0), (3, 2, (0, 0, 1, 1), 1), (3, 2, (1, 1, 1, 1), 1),
])
def test_avgpool_rule(kernel, stride, pads, cip):
    rng = np.random.default_rng(kernel + stride)
    x = rng.standard_normal((2, 3, 7, 6))
    attrs = dict(kernel=(kernel, kernel), strides=(stride, stride), pads=pads, count_include_pad=cip)
    y_shape = avgpool_real(x, attrs["kernel"], attrs["strides"], pads, cip).shape
    gy = rng.standard_normal(y_shape).astype(np.float32)
    gx = GRAD_KERNELS["avgpool_grad"](Graph(), Node("avgpool_grad", "n", ["gy"], ["gx"],
                                                    dict(attrs, in_shape=x.shape)), gy)
    fd_check(lambda v: np.sum(gy * avgpool_real(v, attrs["kernel"], attrs["strides"], pads, cip)), x, gx, rng)


def test_global_avgpool_rule():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 5, 3))
    gy = rng.standard_normal((2, 4, 1, 1)).astype(np.float32)
    gx = GRAD_KERNELS["global_avgpool_grad"](Graph(), Node("global_avgpool_grad", "n", ["gy"], ["gx"],
                                                           {"in_shape": x.shape}), gy)
    fd_check(lambda v: np.sum(gy * v.mean(axis=(2, 3), keepdims=True)), x, gx, rng)


@pytest.mark.parametrize("kernel,stride,pad", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_maxpool_rule(kernel, stride, pad):
    """Distinct int8 values (no ties), so the max is differentiable at the point."""
    rng = np.random.default_rng(kernel * 7 + pad)
    xq = rng.permutation(np.arange(-128, 128))[: 2 * 2 * 6 * 5].astype(np.int8).reshape(2, 2, 6, 5)
    p = QuantParams.per_tensor(0.05, 3)
    g = graph_with(x=Value("x", "int8", xq.shape, p))
    pads = (pad,) * 4

    def maxpool_real(v):
        vp = np.pad(v, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
        ho, wo = (vp.shape[2] - kernel) // stride + 1, (vp.shape[3] - kernel) // stride + 1
        return np.array([[[[vp[n, c, a * stride:a * stride + kernel, b * stride:b * stride + kernel].max()
                            for b in range(wo)] for a in range(ho)] for c in range(2)] for n in range(2)])

    xr = real(xq, p)
    gy = rng.standard_normal(maxpool_real(xr).shape).astype(np.float32)
    gx = GRAD_KERNELS["maxpool_grad"](g, Node("maxpool_grad", "n", ["gy", "x"], ["gx"],
                                              dict(kernel=(kernel, kernel), strides=(stride, stride), pads=pads)),
                                      gy, xq)
    fd_check(lambda v: np.sum(gy * maxpool_real(v)), xr, gx, rng)


def test_concat_slice_and_reshape_rules():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((1, 3, 2, 2)), rng.standard_normal((1, 5, 2, 2))
    gy = rng.standard_normal((1, 8, 2, 2)).astype(np.float32)
    ga = GRAD_KERNELS["slice"](Graph(), Node("slice", "n", ["gy"], ["g"], dict(axis=1, start=0, stop=3)), gy)
    gb = GRAD_KERNELS["slice"](Graph(), Node("slice", "n", ["gy"], ["g"], dict(axis=1, start=3, stop=8)), gy)
    fd_check(lambda v: np.sum(gy * np.concatenate([v, b], axis=1)), a, ga, rng)
    fd_check(lambda v: np.sum(gy * np.concatenate([a, v], axis=1)), b, gb, rng)
    gr = GRAD_KERNELS["freshape"](Graph(), Node("freshape", "n", ["gy"], ["g"], {"shape": (1, 8, 2, 2)}),
                                  gy.reshape(1, 32))
    fd_check(lambda v: np.sum(gy.reshape(1, 32) * v.reshape(1, 32)), rng.standard_normal((1, 8, 2, 2)), gr, rng)


def test_softmax_cross_entropy_rule():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((3, 7)).astype(np.float32) * 3
    label = np.array([1, 6, 0], np.int32)

    def loss(v):
        v = v - v.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(v).sum(axis=1)) - v[np.arange(3), label]))

    value, grad = GRAD_KERNELS["xent"](Graph(), Node("xent", "n", ["z", "l"], ["loss", "g"]), z, label)
    assert abs(float(value) - loss(z.astype(np.float64))) < 1e-5
    fd_check(loss, z.astype(np.float64), grad, rng, rtol=1e-4)


def test_straight_through_mask():
    gy = np.arange(6, dtype=np.float32).reshape(2, 3)
    mask = np.array([[True, False, True], [False, True, True]])
    out = GRAD_KERNELS["ste"](Graph(), Node("ste", "n", ["gy", "m"], ["g"]), gy, mask)
    assert out.tolist() == [[0, 0, 2], [0, 4, 5]]


def test_sums_run_left_to_right():
    """The C runtime adds in order; numpy's pairwise sum would not match it."""
    from tte.reference.numerics import seq_sum

    terms = np.array([1e8] + [1.0] * 15, np.float32)
    assert seq_sum(terms, axis=0) == np.float32(1e8)  # each +1 is lost in float32
    assert np.sum(terms) != np.float32(1e8)  # pairwise keeps them: a different number


def test_expf_is_accurate():
    from tte.reference.numerics import expf

    x = np.linspace(-87, 0, 100001, dtype=np.float32)
    rel = np.abs(expf(x).astype(np.float64) - np.exp(x.astype(np.float64))) / np.exp(x.astype(np.float64))
    assert rel.max() < 5e-7
    assert expf(np.float32(-100)) == 0 and expf(np.float32(0)) == 1
