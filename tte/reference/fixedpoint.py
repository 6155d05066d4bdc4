"""TFLite's integer arithmetics (``"tflite"`` and ``"tflite-micro"`` of :func:`tte.ir.facts.arithmetic`), in numpy.

Bit-exact ports of the reference int8 kernels of TFLite and TFLite Micro (``tensorflow/lite/kernels/internal``:
``common.h``/``common.cc``, ``quantization_util.cc``, ``reference/integer_ops/{conv,depthwise_conv,
fully_connected,add,mul,pooling}.h``, ``reference/{requantize,quantize,reduce,hard_swish}.h``,
``reference/integer_ops/logistic.h`` and gemmlowp's ``fixedpoint.h``), and of the kernels' ``Prepare`` code
that turns the float32 scales into integer multipliers in double precision.  The C runtime computes the same
integers (``runtime_c/src/tte_internal.h``: ``tte_mbqm`` and the ``tte_*_tflite_*`` kernels).

**Two variants.**  ``"tflite"`` is TFLite's reference kernels (``ai-edge-litert``, ``BUILTIN_REF``);
``"tflite-micro"`` is TFLite Micro, which devices run (its CMSIS-NN kernels are bit-exact with its reference
ones).  They agree on every op tte has but two:

* FULLY_CONNECTED: TFLite rounds ``acc * s_x * s_w / s_y`` once, in double (:func:`fully_connected`); TFLite
  Micro requantizes like a conv, MBQM by a Q31 multiplier per channel (:func:`conv_multipliers`,
  :func:`requantize_acc`).
* LOGISTIC: TFLite tabulates the float32 sigmoid (:func:`logistic_lut`, its ``LUTPopulate``); TFLite Micro runs
  gemmlowp's fixed-point logistic (:func:`logistic_table`).  They differ on about one table in a thousand, by
  one step.

**Rounding variant.**  TFLite builds without ``TFLITE_SINGLE_ROUNDING`` (the default, and what the
``ai-edge-litert`` 2.3 wheels and the ``tflite-micro`` Python package run: checked layer by layer on the MLPerf
Tiny models in tests/test_tflite_arithmetic.py) use the *double-rounding* ``MultiplyByQuantizedMultiplier``::

    MBQM(x, m, n) = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2^max(n, 0), m), max(-n, 0))

with ``x * 2^max(n, 0)`` wrapping in int32 as the compiled C++ does.  That is the variant implemented here.

Every function takes and returns numpy integer arrays (int64 holding int32 values unless said otherwise),
elementwise, broadcasting multipliers and shifts against the data.  The per-op functions return the exact
integer *before* the final clamp (output zero point included): :func:`clamp_mask` clamps it to the op's
[qmin, qmax] and gives the straight-through mask (where the clamp did not act).  Multipliers are ``(m, n)`` pairs from
:func:`quantize_multiplier`: ``m`` a Q31 int32 in [2^30, 2^31) (or 0), ``n`` the power-of-two exponent.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
I64 = np.int64


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=I64)


def wrap32(x) -> np.ndarray:
    """int64 values wrapped to int32 (two's complement), as a C++ int32 overflow does in practice."""
    return ((_i64(x) + 2**31) & 0xFFFFFFFF) - 2**31


def round_away(v) -> np.ndarray:
    """Round half away from zero (``std::round``, TfLiteRound) of float values, as float64 (exact for float32)."""
    v = np.asarray(v, np.float64)
    return np.copysign(np.floor(np.abs(v) + 0.5), v)


def trunc_div(a, b) -> np.ndarray:
    """C integer division (truncates toward zero) of int64 arrays."""
    a, b = _i64(a), _i64(b)
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


# ---- multipliers (quantization_util.cc) -----------------------------------------------------------------------
def quantize_multiplier(real) -> tuple[np.ndarray, np.ndarray]:
    """QuantizeMultiplier: ``real`` (float64, >= 0) as (m int32, n int32) with real ~ m * 2^(n - 31).

    ``frexp`` gives q in [0.5, 1); ``m = round_away(q * 2^31)``, halved (n + 1) when it rounds up to 2^31;
    ``n < -31`` flushes to (0, 0), as does a zero multiplier."""
    real = np.asarray(real, np.float64)
    if np.any(real < 0) or not np.all(np.isfinite(real)):
        raise ValueError("multipliers must be finite and non-negative")
    q, n = np.frexp(real)
    m = round_away(q * 2.0**31).astype(I64)
    n = n.astype(I64)
    top = m == 2**31
    m, n = np.where(top, m // 2, m), np.where(top, n + 1, n)
    tiny = (n < -31) | (real == 0)
    if np.any(n[~tiny] > 30):
        raise ValueError("multipliers of 2^30 and more are not supported (TFLite shifts left by the exponent in int32)")
    return np.where(tiny, 0, m).astype(np.int32), np.where(tiny, 0, n).astype(np.int32)


def multiplier_value(m, n) -> np.ndarray:
    """The real number a (m, n) pair stands for (exact in float64)."""
    return np.asarray(m, np.float64) * np.exp2(np.asarray(n, np.float64) - 31)


# ---- gemmlowp primitives --------------------------------------------------------------------------------------
def srdhm(a, b) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul (int32): a * b / 2^31 rounded to nearest, ties upward (the +-2^30
    nudge, then a division that truncates toward zero), INT32_MIN * INT32_MIN saturated to INT32_MAX."""
    a, b = _i64(a), _i64(b)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    out = trunc_div(ab + nudge, 1 << 31)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, out)


def rdbpot(x, exponent) -> np.ndarray:
    """RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero (exponent in [0, 31])."""
    x, e = _i64(x), _i64(exponent)
    if np.any(e < 0) or np.any(e > 31):
        raise ValueError("RoundingDivideByPOT exponents lie in [0, 31]")
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def mbqm(x, m, n) -> np.ndarray:
    """MultiplyByQuantizedMultiplier (int32 x, double rounding): ``x * m * 2^(n - 31)`` rounded twice."""
    n = _i64(n)
    left, right = np.maximum(n, 0), np.maximum(-n, 0)
    return rdbpot(srdhm(wrap32(_i64(x) << left), m), right)


def mbqm_smaller_than_one(x, m, n) -> np.ndarray:
    """MultiplyByQuantizedMultiplierSmallerThanOneExp (n <= 0): RDBPOT(SRDHM(x, m), -n)."""
    return rdbpot(srdhm(x, m), -_i64(n))


def clamp_mask(r, qmin: int, qmax: int):
    """(clamp(r) as int8, mask): the mask is True where the integer r lies inside [qmin, qmax] (where the clamp
    did not act: the straight-through gradient passes there)."""
    r = _i64(r)
    return np.clip(r, qmin, qmax).astype(np.int8), (r >= qmin) & (r <= qmax)


# ---- conv, depthwise conv, fully connected --------------------------------------------------------------------
def conv_multipliers(s_x, s_w, s_y) -> tuple[np.ndarray, np.ndarray]:
    """PopulateConvolutionQuantizationParams: per output channel ``double(s_x) * double(s_w[c]) / double(s_y)``
    (all three float32 scales widened to double first).  Also TFLite Micro's FULLY_CONNECTED, per channel
    (CalculateOpDataFullyConnected) and per tensor (GetQuantizedConvolutionMultipler, which the ``tflite-micro``
    package computes from the double product as well: tests/test_tflite_arithmetic.py)."""
    real = np.float64(np.float32(s_x)) * np.asarray(s_w, np.float32).astype(np.float64) / np.float64(np.float32(s_y))
    return quantize_multiplier(real)


def fc_scales(s_x, s_w, s_y) -> np.ndarray:
    """The effective output scales of TFLite's reference FULLY_CONNECTED (per channel or per tensor), float64:
    ``double(s_x) * double(s_w[c]) / double(s_y)``."""
    return np.float64(np.float32(s_x)) * np.asarray(s_w, np.float32).astype(np.float64) / np.float64(np.float32(s_y))


def fully_connected(acc, scales, z_y: int) -> np.ndarray:
    """The output stage of TFLite's reference FULLY_CONNECTED (reference_integer_ops::FullyConnected and
    FullyConnectedPerChannel with float scales, which TFLite's reference kernel runs): ``round(double(acc) *
    scale[c])`` half away from zero, in double precision, plus z_y; one rounding, unlike MBQM.  The product is
    clamped to +-2^40 (far outside int8) as the C does before converting it."""
    v = np.clip(_i64(acc).astype(np.float64) * np.asarray(scales, np.float64), -2.0**40, 2.0**40)
    return round_away(v).astype(I64) + int(z_y)


def requantize_acc(acc, m, n, z_y: int) -> np.ndarray:
    """ConvPerChannel / DepthwiseConvPerChannel output stage: ``MBQM(acc, m[c], n[c]) + z_y``; ``acc`` (the
    int32 accumulator + bias) broadcasts against m and n."""
    return mbqm(acc, m, n) + int(z_y)


# ---- add ------------------------------------------------------------------------------------------------------
ADD_LEFT_SHIFT = 20  # int8 ADD: both inputs are shifted left by 20 bits before rescaling


def add_multipliers(s_a, s_b, s_y) -> np.ndarray:
    """Prepare of ADD (int8): [m_a, n_a, m_b, n_b, m_y, n_y] as int32, from twice the larger input scale:
    ``s_i / (2 max)`` for the inputs and ``2 max / (2^20 s_y)`` for the output (double precision), each below 1
    (QuantizeMultiplierSmallerThanOneExp)."""
    s_a, s_b, s_y = (np.float64(np.float32(s)) for s in (s_a, s_b, s_y))
    twice_max = 2 * max(s_a, s_b)
    out = twice_max / ((1 << ADD_LEFT_SHIFT) * s_y)
    if out >= 1:
        raise ValueError(f"ADD's output multiplier {out} is not below 1 (output scale {s_y} too small for TFLite)")
    parts = [quantize_multiplier(s_a / twice_max), quantize_multiplier(s_b / twice_max), quantize_multiplier(out)]
    return np.array([int(v) for pair in parts for v in pair], np.int32)


def add(a, z_a: int, b, z_b: int, params, z_y: int) -> np.ndarray:
    """reference_integer_ops::AddFunc: each input ``(q - z) << 20`` scaled by its multiplier
    (MBQM smaller than one), the sum scaled by the output multiplier, plus z_y."""
    m_a, n_a, m_b, n_b, m_y, n_y = (int(v) for v in params)
    sa = mbqm_smaller_than_one((_i64(a) - z_a) << ADD_LEFT_SHIFT, m_a, n_a)
    sb = mbqm_smaller_than_one((_i64(b) - z_b) << ADD_LEFT_SHIFT, m_b, n_b)
    return mbqm_smaller_than_one(sa + sb, m_y, n_y) + int(z_y)


# ---- mul ------------------------------------------------------------------------------------------------------
def mul_multiplier(s_a, s_b, s_y) -> tuple[np.ndarray, np.ndarray]:
    """Prepare of MUL: ``double(s_a) * double(s_b) / double(s_y)``."""
    return quantize_multiplier(np.float64(np.float32(s_a)) * np.float64(np.float32(s_b)) / np.float64(np.float32(s_y)))


def mul(a, z_a: int, b, z_b: int, m, n, z_y: int) -> np.ndarray:
    """MulElementwise: ``MBQM((a - z_a) * (b - z_b), m, n) + z_y``."""
    return mbqm((_i64(a) - z_a) * (_i64(b) - z_b), m, n) + int(z_y)


# ---- requantize, quantize -------------------------------------------------------------------------------------
def requantize_multiplier(s_x, s_y) -> tuple[np.ndarray, np.ndarray]:
    """Prepare of QUANTIZE int8 -> int8 (and of tte's requantizing copies): ``double(s_x) / double(s_y)``.
    Equal scales give (2^30, 1): MBQM is then exactly the identity."""
    return quantize_multiplier(np.float64(np.float32(s_x)) / np.float64(np.float32(s_y)))


def requantize(x, z_x: int, m, n, z_y: int) -> np.ndarray:
    """reference_ops::Requantize: ``MBQM(x - z_x, m, n) + z_y``."""
    return mbqm(_i64(x) - z_x, m, n) + int(z_y)


def quantize(x, scale, z: int) -> np.ndarray:
    """AffineQuantize (float32 -> int8): ``round_away(float32(x) / float32(scale)) + z``, clamped to int8.

    The quotient is first clamped to [-256, 256] (which cannot change a clamped result, and keeps the C
    conversion to int32 defined); NaN counts as -256, so it quantizes to -128 whatever the zero point."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        v = np.asarray(x, np.float32) / np.float32(scale)
    v = np.where(np.isnan(v), np.float32(-256), np.clip(v, np.float32(-256), np.float32(256)))
    return np.clip(round_away(v).astype(I64) + int(z), -128, 127).astype(np.int8)


# ---- pools ----------------------------------------------------------------------------------------------------
def average(total, count) -> np.ndarray:
    """AveragePool's integer average of raw int8 values: ``total / count`` rounded half away from zero,
    ``(total +- count / 2) / count`` with C's truncating division."""
    total, count = _i64(total), _i64(count)
    return np.where(total > 0, trunc_div(total + count // 2, count), trunc_div(total - count // 2, count))


def mean_multiplier(s_x, s_y, count: int) -> tuple[int, int]:
    """QuantizedMeanOrSum's multiplier for a mean over ``count`` elements: QuantizeMultiplier(s_x / s_y) with
    1/count folded in: ``s = min(floor(log2(count)), 32, 31 + n)``, ``m' = (m << s) // count``, ``n' = n - s``."""
    m, n = (int(v) for v in requantize_multiplier(s_x, s_y))
    if count < 1:
        raise ValueError("a mean needs at least one element")
    s = min(int(count).bit_length() - 1, 32, 31 + n)
    return int((m << s) // count), n - s


def mean(total, z_x: int, count: int, m: int, n: int, z_y: int) -> np.ndarray:
    """QuantizedMeanOrSum (MEAN, int8): ``MBQM(total - z_x * count, m', n') + z_y``; ``total`` is the int32 sum
    of the raw int8 values and (m', n') is :func:`mean_multiplier`."""
    return mbqm(wrap32(_i64(total) - int(z_x) * int(count)), m, n) + int(z_y)


# ---- gemmlowp fixed-point functions (logistic) ----------------------------------------------------------------
def _sat_shift_left(x, k: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT<k> for k > 0: x * 2^k saturated to int32."""
    x = _i64(x)
    threshold = (1 << (31 - k)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << k))


def _exp_on_interval(a) -> np.ndarray:
    """exp_on_interval_between_negative_one_quarter_and_0_excl (Q0.31 in, Q0.31 out): Taylor around -1/8."""
    x = wrap32(_i64(a) + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    tail = rdbpot(wrap32(srdhm(wrap32(rdbpot(x4, 2) + x3), 715827883) + x2), 1)
    return wrap32(1895147668 + srdhm(1895147668, wrap32(x + tail)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401),
               (4, 242))


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: exp(a) for a <= 0 in Q(integer_bits), result in Q0.31."""
    frac = 31 - integer_bits
    a = _i64(a)
    quarter = 1 << (frac - 2)
    a_mod = wrap32((a & (quarter - 1)) - quarter)
    result = _exp_on_interval(_sat_shift_left(a_mod, integer_bits) if integer_bits else a_mod)
    remainder = wrap32(a_mod - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = (remainder >> (frac + exponent)) & 1
            result = np.where(bit == 1, srdhm(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def rounding_half_sum(a, b) -> np.ndarray:
    s = _i64(a) + _i64(b)
    return trunc_div(s + np.where(s >= 0, 1, -1), 2)


def one_over_one_plus_x(a) -> np.ndarray:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1 (Q0.31 in and out): three Newton-Raphson steps in Q2.29."""
    half_den = rounding_half_sum(a, INT32_MAX)
    x = wrap32(1515870810 + srdhm(half_den, -1010580540))
    for _ in range(3):
        one_minus = wrap32((1 << 29) - srdhm(half_den, x))
        x = wrap32(x + _sat_shift_left(srdhm(x, one_minus), 2))
    return _sat_shift_left(x, 1)


def gemmlowp_logistic(a, integer_bits: int) -> np.ndarray:
    """gemmlowp logistic: Q(integer_bits) in, Q0.31 out."""
    a = _i64(a)
    positive = a > 0
    absolute = np.where(positive, a, wrap32(-a))
    rp = one_over_one_plus_x(exp_on_negative_values(wrap32(-absolute), integer_bits))
    return np.where(a == 0, 1 << 30, np.where(positive, rp, wrap32(INT32_MAX - rp)))


# ---- LOGISTIC and HARD_SWISH: 256-entry tables ----------------------------------------------------------------
ALL_S8 = np.arange(-128, 128, dtype=I64)  # table entry i holds q = i - 128
LOGISTIC_SCALE, LOGISTIC_ZERO_POINT = 1.0 / 256, -128  # the only output parameters TFLite Micro's LOGISTIC has


def logistic_table(s_x, z_x: int) -> np.ndarray:
    """reference_integer_ops::Logistic (TFLite Micro) for every int8 input: int64[256] in [-128, 127], on the
    output parameters (1/256, -128).  Prepare: ``frexp(double(s_x) * 2^27)`` gives the Q31 input multiplier and
    left shift; the radius ``floor(15 * 2^27 / 2^shift)`` saturates; inside it the input is rescaled to Q4.27
    (MBQM), gemmlowp's fixed-point logistic gives Q0.31, rounded down to 1/256 steps (RDBPOT by 23)."""
    q, shift = np.frexp(np.float64(np.float32(s_x)) * 2.0**27)
    multiplier = int(wrap32(int(round_away(q * 2.0**31))))
    radius = int(np.floor(15.0 * 2.0**27 / 2.0**int(shift)))
    x = ALL_S8 - int(z_x)
    inner = rdbpot(gemmlowp_logistic(mbqm(np.clip(x, -radius, radius), multiplier, int(shift)), 4), 23) - 128
    return np.where(x <= -radius, -128, np.where(x >= radius, 127, np.clip(inner, -128, 127)))


def _srdhm16(a, b) -> np.ndarray:
    a, b = _i64(a), _i64(b)
    ab = a * b
    out = trunc_div(ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14)), 1 << 15)
    return np.where((a == -32768) & (b == -32768), 32767, out)


def _sat_left16(x, k: int) -> np.ndarray:
    return np.clip(_i64(x) * (1 << k), -32768, 32767)


def _to_int16_multiplier(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    return 32767 if m >= INT32_MAX - (1 << 15) else (m + (1 << 15)) >> 16


def hardswish_params(s_x, s_y) -> tuple[int, int, int, int]:
    """Prepare of HARD_SWISH (int8), float32 scale arithmetic as TFLite does it: (output multiplier int16, its
    exponent, reluish multiplier int16, its exponent)."""
    hires = np.float32(np.float32(1.0 / 128.0) * np.float32(s_x))
    m_out, n_out = (int(v) for v in quantize_multiplier(np.float64(np.float32(hires / np.float32(s_y)))))
    reluish = np.float32(np.float32(3.0) / np.float32(32768.0))
    m_rel, n_rel = (int(v) for v in quantize_multiplier(np.float64(np.float32(hires / reluish))))
    if n_out > 0:
        raise ValueError("HARD_SWISH needs an output multiplier below 1 (TFLite's Prepare checks it)")
    return _to_int16_multiplier(m_out), n_out, _to_int16_multiplier(m_rel), n_rel


def hardswish_table(s_x, z_x: int, s_y, z_y: int) -> np.ndarray:
    """reference_ops::HardSwish<int8_t> for every int8 input: int64[256], the int16 value after adding z_y
    (before the final clamp).  int16 fixed point: the input on a 2^7 finer scale, a "reluish" factor in [0, 1]
    from x in [-3, 3], their product with a truncating doubling high multiply, a rounding shift."""
    m_out, n_out, m_rel, n_rel = hardswish_params(s_x, s_y)
    hires = (ALL_S8 - int(z_x)) * 128
    preshift = _srdhm16(hires, m_out)
    reluish = _sat_left16(hires, n_rel - 1) if n_rel > 0 else hires
    reluish = _srdhm16(reluish, m_rel)
    if n_rel > 0:
        reluish = _sat_left16(reluish, 1)
    elif n_rel < 0:
        reluish = rdbpot(reluish, -n_rel)
    reluish = (reluish + (1 << 15)) >> 1
    product = trunc_div(reluish * preshift, 1 << 15)  # SaturatingDoublingHighMul: no overflow case for these
    return rdbpot(product, -n_out) + int(z_y)


def expf(x) -> np.ndarray:
    """float32 ``exp`` of float32 values (``std::exp(float)``): the double-precision exp rounded to float32, i.e.
    the correctly rounded result but where the exact value lies within about 2^-28 (relative) of a float32 rounding
    boundary.  glibc's ``expf``, which the litert wheels call, is also correctly rounded outside such hard cases
    (its error is below 0.502 ulp).  Arguments are clamped to [-110, 100] first: exp then underflows to 0 or
    overflows to infinity in float32 exactly as it would unclamped."""
    x = np.clip(np.asarray(x, np.float32).astype(np.float64), -110.0, 100.0)
    with np.errstate(over="ignore"):
        return np.array([math.exp(v) for v in x.reshape(-1)], np.float64).astype(np.float32).reshape(x.shape)


def logistic_lut(s_x, z_x: int, s_y, z_y: int) -> np.ndarray:
    """TFLite's reference LOGISTIC (int8) for every int8 input: int64[256], before the final clamp.  Its Prepare
    fills a table with ``LUTPopulate<int8_t>`` and the float32 function ``1.0f / (1.0f + std::exp(-v))``, all in
    float32: ``v = s_x * float(q - z_x)``, then ``TfLiteRound(sigmoid(v) * (1 / s_y)) + z_y`` (half away from zero),
    clamped to int8.  TFLite takes only s_y = 1/256 (any z_y); tte computes the same table for any output parameters.
    The rounded value is saturated to int32 (C's conversion of an out-of-range float is undefined)."""
    f32 = np.float32
    q = ALL_S8 - int(z_x)
    v = f32(s_x) * q.astype(f32)
    sigmoid = f32(1) / (f32(1) + expf(-v))
    with np.errstate(over="ignore"):
        scaled = sigmoid * (f32(1) / f32(s_y))
    r = round_away(scaled) + int(z_y)
    return np.clip(r, INT32_MIN, INT32_MAX).astype(I64)


def sigmoid_table(s_x, z_x: int, s_y, z_y: int) -> np.ndarray:
    """The logistic of every int8 input on the output parameters (s_y, z_y), before the clamp, in the ``"tflite"``
    arithmetic: TFLite's reference table, :func:`logistic_lut`."""
    return logistic_lut(s_x, z_x, s_y, z_y)


def sigmoid_table_micro(s_x, z_x: int, s_y, z_y: int) -> np.ndarray:
    """The logistic of every int8 input on the output parameters (s_y, z_y), before the clamp, in the
    ``"tflite-micro"`` arithmetic: TFLite Micro's :func:`logistic_table` on (1/256, -128), then TFLite's Requantize
    to (s_y, z_y) -- the identity for the parameters TFLite Micro's LOGISTIC requires, what a converter's extra
    QUANTIZE would compute for any others."""
    return requantize(logistic_table(s_x, z_x), LOGISTIC_ZERO_POINT, *requantize_multiplier(LOGISTIC_SCALE, s_y),
                      z_y)
