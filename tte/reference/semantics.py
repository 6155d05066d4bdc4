"""Integer semantics of tte's int8 ops: the single definition shared by the reference and the C runtime.

Notation: an int8 tensor q with scale s and zero point z stands for the real value s * (q - z).

A graph uses one of three integer arithmetics (``tte.ir.facts.arithmetic``).  This module defines the default,
``"onnxruntime"`` (points 1 to 5 below).  ``"tflite"`` -- set by the TFLite frontend, or ``tte.load(path,
arithmetic="tflite")`` -- is TFLite's reference int8 kernels bit for bit, defined in
:mod:`tte.reference.fixedpoint`: the same exact accumulators (point 1), then Q31 multipliers computed from the
scales in double precision and TFLite's per-op integer algorithms instead of points 2 to 5 (conv: MBQM per
channel; fully connected: one rounding of ``acc * scale`` in double; ADD's 20-bit left shift; AVERAGE_POOL's
half-away-from-zero integer average; MEAN's folded 1/count; Requantize; AffineQuantize rounding half away from
zero; HARD_SWISH's table from its integer algorithm, LOGISTIC's from the float32 sigmoid).  ``"tflite-micro"``
is TFLite Micro's (and CMSIS-NN's) kernels: ``"tflite"`` but for fully connected layers, requantized as convs
(MBQM per channel), and LOGISTIC, gemmlowp's integer algorithm.  In all, the saturation mask of a requantizing
op is set where the integer before the final clamp lies inside [qmin, qmax].

1. **Accumulation.**  Conv and gemm accumulate ``acc = sum((q_x - z_x) * (q_w - z_w)) + bias`` exactly
   (int64 in numpy; the C kernels accumulate the products in int32, which cannot overflow for the
   layer sizes we accept, and add the bias with saturation).  Pools accumulate ``sum(q_x - z_x)``.
   The accumulator is then **saturated to int32**.  This matters only for the dead channels of the
   paper's models whose int32 bias sits at the int32 limits: they saturate to a constant either way,
   and no C code ever overflows.
2. **Multipliers.**  Each requantizing op has a real multiplier M computed once, in float64, from the
   float32 scales and then rounded to float32:
   conv/gemm ``M_c = s_x * s_w[c] / s_y`` (per output channel), average pools
   ``M = s_x / (s_y * count)`` (count = the number of elements in the window, padding excluded unless
   ``count_include_pad``), add/concat/maxpool/requantize ``M_i = s_i / s_y`` for each operand.
3. **Requantization** (float32 arithmetic, no fused multiply-add):
   ``v = float32(acc) * M``; for add, ``v = float32(q1 - z1) * M1 + float32(q2 - z2) * M2``.
   Then ``q_y = clamp(round_half_even(v) + z_y, qmin, qmax)``.  ``qmin``/``qmax`` default to -128/127;
   folded activations narrow them (ReLU: ``qmin = max(-128, z_y)``; Clip(lo, hi):
   ``qmin, qmax = quantize(lo), quantize(hi)``), which equals applying the activation before the
   final quantization exactly, because rounding and clamping are monotonic.  This is the arithmetic
   of onnxruntime's int8 kernels (float32 rescale, round half to even), fast on a Cortex-M4F, and
   reproducible bit for bit in C by clamping v to [-256, 256] and rounding with the float32
   magic-number trick ``(v + 1.5 * 2**23) - 1.5 * 2**23``.
4. **Input quantization**: ``q = clamp(round_half_even(float32(x) / s) + z)``, a float32 division as in
   the ONNX QuantizeLinear definition.  NaN quantizes to -128 whatever the zero point (both arithmetics;
   :func:`round_clamp` takes NaN as the low end, -256, as the C does), and +-inf to the clamp's ends.
   **Output dequantization**: ``float32(q - z) * s``.
5. **Max pooling** takes the int8 maximum of the window (padding never wins), then requantizes it as
   ``acc = q - z_x`` when the output parameters differ from the input's; otherwise only the clamp
   applies.  **Reshape** moves no data and keeps the parameters.

Known, documented divergence from the paper's authors' simulation: their global average pool rounds
``mean(q)`` (zero point included) whereas ONNX's DequantizeLinear -> GlobalAveragePool ->
QuantizeLinear, which we follow, rounds ``mean(q - z)``.  The two differ on exact .5 ties when ``z``
is odd (mcunet-5fps only).
"""

from __future__ import annotations

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def multiplier(numerator, denominator) -> np.ndarray:
    """float32(numerator / denominator) computed in float64, elementwise (point 2 above).

    Callers form products of scales with :func:`f64` so that nothing is rounded before the division.
    """
    return (f64(numerator) / f64(denominator)).astype(np.float32)


def _clamped(v: np.ndarray) -> np.ndarray:
    """float32 ``v`` clamped to [-256, 256], NaN to -256 (as the C's ``if (!(v >= -256.0f))``)."""
    v = np.asarray(v, dtype=np.float32)
    return np.where(np.isnan(v), np.float32(-256), np.clip(v, np.float32(-256), np.float32(256)))


def round_clamp(v: np.ndarray, zero_point: int, qmin: int = -128, qmax: int = 127) -> np.ndarray:
    """``clamp(round_half_even(v) + zero_point, qmin, qmax)`` as int8, for float32 ``v`` (NaN: the low end)."""
    r = np.rint(_clamped(v))
    return np.clip(r.astype(np.int32) + int(zero_point), qmin, qmax).astype(np.int8)


def round_clamp_mask(v: np.ndarray, zero_point: int, qmin: int = -128, qmax: int = 127):
    """:func:`round_clamp` and its saturation mask: True where ``round(v) + zero_point`` lies in
    [qmin, qmax], i.e. where the clamp did not act (the straight-through gradient passes there)."""
    r = np.rint(_clamped(v)).astype(np.int32) + int(zero_point)
    return np.clip(r, qmin, qmax).astype(np.int8), (r >= qmin) & (r <= qmax)


def saturate_int32(acc: np.ndarray) -> np.ndarray:
    return np.clip(acc, INT32_MIN, INT32_MAX).astype(np.int32)


def requantize(acc: np.ndarray, m: np.ndarray, zero_point: int, qmin: int = -128, qmax: int = 127) -> np.ndarray:
    """Point 3: int32-saturated accumulator times a float32 multiplier, rounded and clamped."""
    v = saturate_int32(acc).astype(np.float32) * np.asarray(m, dtype=np.float32)
    return round_clamp(v, zero_point, qmin, qmax)


def preround(acc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The float32 value that :func:`requantize` rounds (used by tests to find rounding ties)."""
    return saturate_int32(acc).astype(np.float32) * np.asarray(m, dtype=np.float32)


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Point 4: float32 input to int8."""
    v = np.asarray(x, dtype=np.float32) / np.float32(scale)
    return round_clamp(v, zero_point)


def dequantize(q: np.ndarray, scale, zero_point) -> np.ndarray:
    return (q.astype(np.int32) - np.asarray(zero_point, dtype=np.int32)).astype(np.float32) * np.asarray(
        scale, dtype=np.float32
    )


def clamp_bounds(lo: float | None, hi: float | None, scale: float, zero_point: int) -> tuple[int, int]:
    """The int8 clamp [qmin, qmax] equal to clipping the real value to [lo, hi] before quantizing."""
    qmin = -128 if lo is None else int(quantize(np.float32(lo), scale, zero_point))
    qmax = 127 if hi is None else int(quantize(np.float32(hi), scale, zero_point))
    return qmin, qmax
