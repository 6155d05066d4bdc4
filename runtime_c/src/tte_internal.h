/* Helpers shared by the kernels (not part of the public API). */
#ifndef TTE_INTERNAL_H
#define TTE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tte_runtime.h"

/* clamp(round_half_even(v) + zero_point, qmin, qmax).  v is clamped to [-256, 256] first, which keeps
 * the float32 magic-number rounding exact ((v + 1.5 * 2^23) - 1.5 * 2^23 rounds half to even for
 * |v| < 2^22) and cannot change the clamped result since zero points lie in [-128, 127]. */
static inline int8_t tte_round_clamp(float v, int32_t zero_point, int32_t qmin, int32_t qmax) {
    if (!(v >= -256.0f)) v = -256.0f; /* NaN too: it rounds to the low end (semantics.py point 4) */
    if (v > 256.0f) v = 256.0f;
    float shifted = v + 12582912.0f; /* IEEE float32: the compiler may not fold this away */
    int32_t r = (int32_t)(shifted - 12582912.0f) + zero_point;
    if (r < qmin) r = qmin;
    if (r > qmax) r = qmax;
    return (int8_t)r;
}

/* tte_round_clamp that also records, in the bit-packed `mask` (NULL: not wanted), whether round(v) +
 * zero_point landed inside [qmin, qmax]: where the straight-through gradient passes. */
static inline int8_t tte_round_clamp_mask(float v, int32_t zero_point, int32_t qmin, int32_t qmax, uint8_t *mask,
                                          size_t index) {
    if (!(v >= -256.0f)) v = -256.0f;
    if (v > 256.0f) v = 256.0f;
    float shifted = v + 12582912.0f;
    int32_t r = (int32_t)(shifted - 12582912.0f) + zero_point;
    if (mask) {
        const uint8_t bit = (uint8_t)(1u << (index & 7u));
        if (r >= qmin && r <= qmax) mask[index >> 3] |= bit; else mask[index >> 3] &= (uint8_t)~bit;
    }
    if (r < qmin) r = qmin;
    if (r > qmax) r = qmax;
    return (int8_t)r;
}

/* acc + bias saturated to int32. */
static inline int32_t tte_add_sat(int32_t acc, int32_t bias) {
    int64_t s = (int64_t)acc + (int64_t)bias;
    if (s > INT32_MAX) s = INT32_MAX;
    if (s < INT32_MIN) s = INT32_MIN;
    return (int32_t)s;
}

/* acc + bias saturated to int32, as float32. */
static inline float tte_acc_to_float(int32_t acc, int32_t bias) { return (float)tte_add_sat(acc, bias); }

/* ---- TFLite's integer arithmetic (tte/reference/fixedpoint.py; double rounding, as TFLite builds by default) ----
 * Right shifts of negative values are arithmetic (implementation-defined in C99, arithmetic on every compiler tte
 * targets, and what TFLite itself relies on); no signed overflow anywhere. */

/* gemmlowp SaturatingRoundingDoublingHighMul: a * b / 2^31 rounded to nearest, ties upward (the +-2^30 nudge,
 * then C's truncating division); INT32_MIN * INT32_MIN, the one overflow, saturates to INT32_MAX. */
static inline int32_t tte_srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : 1 - ((int64_t)1 << 30);
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent (exponent in [0, 31]) rounded to nearest, ties away from zero. */
static inline int32_t tte_rdbpot(int32_t x, int32_t exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite's MultiplyByQuantizedMultiplier (double rounding): x * multiplier * 2^(shift - 31).  The left shift
 * (shift in [0, 31]) wraps in int32 as TFLite's compiled `x * (1 << shift)` does, without signed overflow. */
static inline int32_t tte_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0;
    return tte_rdbpot(tte_srdhm((int32_t)((uint32_t)x << left), multiplier), shift > 0 ? 0 : -shift);
}

/* clamp(r, qmin, qmax) for an exact integer r, recording in the bit-packed `mask` (NULL: not wanted) whether r
 * lay inside [qmin, qmax]. */
static inline int8_t tte_clamp_mask(int64_t r, int32_t qmin, int32_t qmax, uint8_t *mask, size_t index) {
    if (mask) {
        const uint8_t bit = (uint8_t)(1u << (index & 7u));
        if (r >= qmin && r <= qmax) mask[index >> 3] |= bit; else mask[index >> 3] &= (uint8_t)~bit;
    }
    if (r < qmin) r = qmin;
    if (r > qmax) r = qmax;
    return (int8_t)r;
}

/* The output stage of conv channel c: acc + bias (saturated), then TFLite's MBQM by q->multiplier[c] and
 * q->shift[c] when they are set, else the float32 multipliers[c]; plus z_y, clamped, the mask bit recorded. */
static inline int8_t tte_requantize_channel(int32_t acc, int32_t bias, const tte_quant_params *q,
                                            const float *multipliers, int32_t c, uint8_t *mask, size_t index) {
    if (q->multiplier)
        return tte_clamp_mask((int64_t)tte_mbqm(tte_add_sat(acc, bias), q->multiplier[c], q->shift[c]) +
                                  q->output_zero_point, q->qmin, q->qmax, mask, index);
    return tte_round_clamp_mask(tte_acc_to_float(acc, bias) * multipliers[c], q->output_zero_point, q->qmin,
                                q->qmax, mask, index);
}

/* Taps t in [lo, hi) of a window starting at `start` that land inside [0, size): no check in inner loops. */
static inline void tte_tap_range(int32_t start, int32_t taps, int32_t size, int32_t *lo, int32_t *hi) {
    *lo = start < 0 ? -start : 0;
    *hi = size - start < taps ? size - start : taps;
    if (*hi < *lo) *hi = *lo;
}

/* sum over a KH x KW window of one channel plane (H x W) of (x - zx) * (w - wz); taps outside the plane
 * are padding, which reads as zx and so contributes nothing. */
static inline int32_t tte_window_dot_s8(const int8_t *x, int32_t H, int32_t W, int32_t top, int32_t left,
                                        const int8_t *w, int32_t KH, int32_t KW, int32_t zx, int32_t wz) {
    int32_t i0, i1, j0, j1, acc = 0;
    tte_tap_range(top, KH, H, &i0, &i1);
    tte_tap_range(left, KW, W, &j0, &j1);
    for (int32_t i = i0; i < i1; i++) {
        const int8_t *xr = x + (top + i) * W + left;
        const int8_t *wr = w + i * KW;
        for (int32_t j = j0; j < j1; j++) acc += ((int32_t)xr[j] - zx) * ((int32_t)wr[j] - wz);
    }
    return acc;
}

/* Output positions o in [lo, hi) whose tap `t` (stride s, padding p) lands inside [0, size):
 * o * s - p + t in [0, size). */
static inline void tte_out_range(int32_t t, int32_t s, int32_t p, int32_t size, int32_t outs, int32_t *lo,
                                 int32_t *hi) {
    const int32_t a = p - t; /* o * s >= a */
    int32_t l = a <= 0 ? 0 : (a + s - 1) / s;
    const int32_t b = size - 1 + p - t; /* o * s <= b */
    int32_t h = b < 0 ? 0 : b / s + 1;
    if (h > outs) h = outs;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* The KH*KW taps of weight row (o, c) of a conv weight that may be split (see tte_split_weights). */
static inline const int8_t *tte_weight_row(const tte_split_weights *w, int32_t depthwise, int32_t o, int32_t c,
                                           int32_t cg, int32_t kk) {
    if (depthwise)
        return o < w->channels ? w->trained + (size_t)o * (size_t)kk
                               : w->frozen + (size_t)(o - w->channels) * (size_t)kk;
    if (c < w->channels) return w->trained + ((size_t)o * (size_t)w->channels + (size_t)c) * (size_t)kk;
    return w->frozen + ((size_t)o * (size_t)(cg - w->channels) + (size_t)(c - w->channels)) * (size_t)kk;
}

/* exp for x <= 0 as tte/reference/grad_kernels.py:expf computes it, operation by operation. */
float tte_expf(float x);

/* The counter-based hash of tte/reference/grad_kernels.py:uniform_hash, a uniform in [0, 1). */
static inline float tte_uniform(uint32_t seed, uint32_t step, uint32_t stream, uint32_t index) {
    uint32_t h = seed ^ (step * 0x9E3779B9u) ^ (stream * 0x632BE5ABu) ^ (index * 0x85EBCA6Bu);
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return (float)(h >> 8) * 5.9604644775390625e-08f; /* 2^-24 */
}

#endif /* TTE_INTERNAL_H */
